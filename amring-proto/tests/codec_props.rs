//! Property tests of the decode side: arbitrary bytes never panic the
//! envelope or body decoders, and random valid MessagePack trees give exact
//! envelope extents and decode generically.

use std::collections::HashMap;

use amring_proto::codec::{BodyKind, CodecKind, Envelope};
use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Inner {
    name: String,
    count: i32,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Wide<'a> {
    s: &'a str,
    o: Option<String>,
    b: serde_bytes_like::Bytes,
    l: Vec<i64>,
    m: HashMap<String, u8>,
    f: f64,
    t: bool,
    inner: Inner,
    list: Option<Vec<Inner>>,
    arr: [u8; 4],
}

/// `Vec<u8>` through `deserialize_bytes` without an extra crate.
mod serde_bytes_like {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    pub(crate) struct Bytes(#[allow(dead_code)] pub(crate) Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

fn all_bodies(codec: CodecKind, env: &Envelope<'_>) {
    let _ = codec.decode_body::<IgnoredAny>(env);
    let _ = codec.decode_body::<Wide<'_>>(env);
    let _ = codec.decode_body::<Inner>(env);
    let _ = codec.decode_body::<(i8, u64, f32)>(env);
    let _ = codec.decode_body::<Vec<Option<String>>>(env);
    let _ = codec.decode_body::<HashMap<String, Vec<u16>>>(env);
    let _ = codec.decode_body::<amring_proto::codec::ErrorReply>(env);
}

/// A random MessagePack value tree.
#[derive(Clone, Debug)]
enum Tree {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Ext(i8, Vec<u8>),
    Arr(Vec<Tree>),
    Map(Vec<(Tree, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        Just(Tree::Nil),
        any::<bool>().prop_map(Tree::Bool),
        any::<i64>().prop_map(Tree::Int),
        any::<u64>().prop_map(Tree::Uint),
        any::<f32>().prop_map(Tree::F32),
        any::<f64>().prop_map(Tree::F64),
        ".{0,40}".prop_map(Tree::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Tree::Bin),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, d)| Tree::Ext(t, d)),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Tree::Arr),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Tree::Map),
        ]
    })
}

fn write(t: &Tree, out: &mut Vec<u8>) {
    use rmp::encode as e;
    match t {
        Tree::Nil => e::write_nil(out).unwrap(),
        Tree::Bool(b) => e::write_bool(out, *b).unwrap(),
        Tree::Int(i) => {
            e::write_sint(out, *i).unwrap();
        }
        Tree::Uint(u) => {
            e::write_uint(out, *u).unwrap();
        }
        Tree::F32(f) => e::write_f32(out, *f).unwrap(),
        Tree::F64(f) => e::write_f64(out, *f).unwrap(),
        Tree::Str(s) => e::write_str(out, s).unwrap(),
        Tree::Bin(b) => e::write_bin(out, b).unwrap(),
        Tree::Ext(ty, d) => {
            e::write_ext_meta(out, d.len() as u32, *ty).unwrap();
            out.extend_from_slice(d);
        }
        Tree::Arr(v) => {
            e::write_array_len(out, v.len() as u32).unwrap();
            for x in v {
                write(x, out);
            }
        }
        Tree::Map(v) => {
            e::write_map_len(out, v.len() as u32).unwrap();
            for (k, x) in v {
                write(k, out);
                write(x, out);
            }
        }
    }
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            if let Ok(env) = codec.decode_envelope(&bytes) {
                all_bodies(codec, &env);
            }
            // Raw bytes as a body of either layout.
            all_bodies(codec, &Envelope { wire: "x", body: &bytes, kind: BodyKind::MapData });
            all_bodies(codec, &Envelope { wire: "x", body: &bytes, kind: BodyKind::CompactFields { fields: 10 } });
        }
    }

    #[test]
    fn valid_trees_give_exact_extents(
        name in "[a-zA-Z.]{1,30}",
        fields in proptest::collection::vec(tree(), 0..6),
        data in tree(),
        trailing in proptest::collection::vec(any::<u8>(), 0..8),
        as_bin in any::<bool>(),
    ) {
        // Compact: [name, fields...] + trailing garbage.
        let mut p = Vec::new();
        rmp::encode::write_array_len(&mut p, fields.len() as u32 + 1).unwrap();
        if as_bin {
            rmp::encode::write_bin(&mut p, name.as_bytes()).unwrap();
        } else {
            rmp::encode::write_str(&mut p, &name).unwrap();
        }
        let body_start = p.len();
        for f in &fields {
            write(f, &mut p);
        }
        let body_end = p.len();
        p.extend_from_slice(&trailing);
        let env = CodecKind::Compact.decode_envelope(&p).unwrap();
        prop_assert_eq!(env.wire, name.as_str());
        prop_assert_eq!(env.body, &p[body_start..body_end]);
        prop_assert_eq!(env.kind, BodyKind::CompactFields { fields: fields.len() as u32 });
        prop_assert!(CodecKind::Compact.decode_body::<IgnoredAny>(&env).is_ok());
        all_bodies(CodecKind::Compact, &env);

        // Map: {"x": junk, "data": data, "type": name} + trailing.
        let mut p = Vec::new();
        rmp::encode::write_map_len(&mut p, 3).unwrap();
        rmp::encode::write_str(&mut p, "x").unwrap();
        write(&fields.first().cloned().unwrap_or(Tree::Nil), &mut p);
        rmp::encode::write_str(&mut p, "data").unwrap();
        let data_start = p.len();
        write(&data, &mut p);
        let data_end = p.len();
        rmp::encode::write_str(&mut p, "type").unwrap();
        rmp::encode::write_str(&mut p, &name).unwrap();
        p.extend_from_slice(&trailing);
        match CodecKind::Map.decode_envelope(&p) {
            Ok(env) => {
                prop_assert!(!matches!(data, Tree::Nil));
                prop_assert_eq!(env.wire, name.as_str());
                prop_assert_eq!(env.body, &p[data_start..data_end]);
                prop_assert!(CodecKind::Map.decode_body::<IgnoredAny>(&env).is_ok());
                all_bodies(CodecKind::Map, &env);
            }
            Err(e) => {
                prop_assert!(matches!(data, Tree::Nil));
                prop_assert_eq!(e.to_string(), "codec error: EOF");
            }
        }
    }

    #[test]
    fn truncated_valid_payloads_fail_cleanly(data in tree(), cut in any::<proptest::sample::Index>()) {
        let mut p = Vec::new();
        rmp::encode::write_array_len(&mut p, 2).unwrap();
        rmp::encode::write_str(&mut p, "n").unwrap();
        write(&data, &mut p);
        let cut = cut.index(p.len());
        // Every strict prefix fails (the array announces 2 elements).
        prop_assert!(CodecKind::Compact.decode_envelope(&p[..cut]).is_err());
    }
}
