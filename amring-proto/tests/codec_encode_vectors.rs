//! Replays every `encode_cases` entry of `vectors/codec.json` through the
//! amring encoders (`Profile::Exact`) and compares byte for byte with the Go
//! reference (semantically, maps unordered, where `map_entries_unordered`).
//! Also checks that `Profile::Interop` compact never emits `c0` at a field or
//! list-element position (spec §4.8, §9 note 1).

#[path = "../../tests/src/capmsg.rs"]
#[allow(unreachable_pub, dead_code)]
mod capmsg;
#[path = "../../tests/src/msgtree.rs"]
#[allow(unreachable_pub, dead_code)]
mod msgtree;
#[path = "../../tests/src/vectors.rs"]
#[allow(unreachable_pub, dead_code)]
mod vectors;

use std::collections::HashMap;

use amring_proto::codec::{attrs, CodecKind, EncodeError, Message, Profile};
use bytes::BytesMut;
use capmsg::*;
use msgtree::{tree, Tree};
use serde::Serialize;
use serde_json::Value;
use vectors::{f32v, f64v, field, int, load_vectors, opt, s, unhex};

/// Divergences from the reference that are expected and documented
/// (`<case id>/<codec>`, reason).
const EXPECTED_SKIPS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------- JSON → Rust

fn bytes_opt(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        _ => Some(unhex(v.as_str().unwrap_or_else(|| panic!("bytes not hex: {v}")))),
    }
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(f)
        .collect()
}

fn map<T>(v: &Value, f: impl Fn(&Value) -> T) -> HashMap<String, T> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a map: {v}"))
        .iter()
        .map(|(k, x)| (k.clone(), f(x)))
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z` → Timestamp.
fn timestamp(v: &Value) -> Timestamp {
    let t = v.as_str().unwrap_or_else(|| panic!("timestamp not a string: {v}"));
    assert!(t.ends_with('Z') && t.len() >= 20, "bad timestamp {t}");
    let n = |a: usize, b: usize| -> i64 { t[a..b].parse().unwrap_or_else(|_| panic!("bad timestamp {t}")) };
    let days = days_from_civil(n(0, 4), n(5, 7), n(8, 10));
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    let frac = &t[19..t.len() - 1];
    let nanos = match frac.strip_prefix('.') {
        Some(f) => {
            let digits: u32 = f.parse().unwrap_or_else(|_| panic!("bad fraction {t}"));
            digits * 10u32.pow(9 - f.len() as u32)
        }
        None => 0,
    };
    Timestamp::new(secs, nanos)
}

fn inner(v: &Value) -> Inner {
    Inner {
        name: s(field(v, "Name")),
        count: int(field(v, "Count")),
    }
}

// ---------------------------------------------------------------- encoding

/// Both encodings of one message, plus its wire name and the Interop compact result.
struct Encoded {
    wire: &'static str,
    compact: Result<Vec<u8>, EncodeError>,
    map: Result<Vec<u8>, EncodeError>,
    interop_compact: Result<Vec<u8>, EncodeError>,
}

fn enc_one<M: Message>(kind: CodecKind, m: &M, profile: Profile) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    kind.encode(m, profile, &mut out)?;
    Ok(out.to_vec())
}

fn enc<M: Message>(m: M) -> Option<Encoded> {
    Some(Encoded {
        wire: M::WIRE_NAME,
        compact: enc_one(CodecKind::Compact, &m, Profile::Exact),
        map: enc_one(CodecKind::Map, &m, Profile::Exact),
        interop_compact: enc_one(CodecKind::Compact, &m, Profile::Interop),
    })
}

/// Builds the Rust value of a case and encodes it; `None` for an unknown type.
fn encode_case(id: &str, ty: &str, v: &Value) -> Option<Encoded> {
    let fv = |name: &str| field(v, name);
    let neg = id.ends_with("neg0");
    match ty {
        "StrMsg" => enc(StrMsg { v: s(fv("V")) }),
        "BytesMsg" => enc(BytesMsg { v: bytes_opt(fv("V")) }),
        "BoolMsg" => enc(BoolMsg {
            v: fv("V").as_bool().expect("bool"),
        }),
        "IntMsg" => enc(IntMsg { v: int(fv("V")) }),
        "UintMsg" => enc(UintMsg { v: int(fv("V")) }),
        "I8Msg" => enc(I8Msg { v: int(fv("V")) }),
        "I16Msg" => enc(I16Msg { v: int(fv("V")) }),
        "I32Msg" => enc(I32Msg { v: int(fv("V")) }),
        "I64Msg" => enc(I64Msg { v: int(fv("V")) }),
        "U8Msg" => enc(U8Msg { v: int(fv("V")) }),
        "U16Msg" => enc(U16Msg { v: int(fv("V")) }),
        "U32Msg" => enc(U32Msg { v: int(fv("V")) }),
        "U64Msg" => enc(U64Msg { v: int(fv("V")) }),
        "F32Msg" => enc(F32Msg { v: f32v(fv("V"), neg) }),
        "F64Msg" => enc(F64Msg { v: f64v(fv("V"), neg) }),
        "OptStrMsg" => enc(OptStrMsg { v: opt(fv("V"), s) }),
        "OptI64Msg" => enc(OptI64Msg { v: opt(fv("V"), int) }),
        "ListStrMsg" => enc(ListStrMsg {
            v: opt(fv("V"), |x| list(x, s)),
        }),
        "ListI32Msg" => enc(ListI32Msg { v: list(fv("V"), int) }),
        "ListIntMsg" => enc(ListIntMsg { v: list(fv("V"), int) }),
        "MapStrI64Msg" => enc(MapStrI64Msg {
            v: opt(fv("V"), |x| map(x, int)),
        }),
        "MapStrStrMsg" => enc(MapStrStrMsg { v: map(fv("V"), s) }),
        "ByteArrMsg" => enc(ByteArrMsg {
            v: list(fv("V"), int::<u8>).try_into().expect("4 bytes"),
        }),
        "I32ArrMsg" => enc(I32ArrMsg {
            v: list(fv("V"), int::<i32>).try_into().expect("3 ints"),
        }),
        "TimeMsg" => enc(TimeMsg { v: timestamp(fv("V")) }),
        "Scalars" => enc(Scalars {
            s: s(fv("S")),
            b: fv("B").as_bool().expect("bool"),
            i: int(fv("I")),
            i8: int(fv("I8")),
            i16: int(fv("I16")),
            i32: int(fv("I32")),
            i64: int(fv("I64")),
            u: int(fv("U")),
            u8: int(fv("U8")),
            u16: int(fv("U16")),
            u32: int(fv("U32")),
            u64: int(fv("U64")),
            f32: f32v(fv("F32"), false),
            f64: f64v(fv("F64"), false),
            raw: bytes_opt(fv("Raw")),
        }),
        "Nested" => enc(Nested {
            id: int(fv("ID")),
            inner: inner(fv("Inner")),
            opt: opt(fv("Opt"), inner),
            list: opt(fv("List"), |x| list(x, inner)),
            by_key: opt(fv("ByKey"), |x| map(x, inner)),
        }),
        "Embedded" => enc(Embedded {
            base: Base {
                base_id: int(field(fv("Base"), "BaseID")),
                kind: s(field(fv("Base"), "Kind")),
            },
            extra: s(fv("Extra")),
        }),
        "TagVariants" => enc(TagVariants {
            no_tag: s(fv("NoTag")),
            skip: s(fv("Skip")),
            omit: s(fv("Omit")),
            renamed: s(fv("Renamed")),
            both: s(fv("Both")),
        }),
        "Hidden" => enc(Hidden {
            visible: s(fv("Visible")),
            hidden: s(fv("hidden")),
        }),
        "WithHiddenInner" => enc(WithHiddenInner {
            name: s(fv("Name")),
            inner: HiddenInner {
                visible: s(field(fv("Inner"), "Visible")),
                hidden: s(field(fv("Inner"), "hidden")),
            },
        }),
        "Empty" => enc(Empty {}),
        "Named" => enc(Named { v: s(fv("V")) }),
        "Local" => enc(Local { v: s(fv("V")) }),
        "Thing" => enc(Thing { v: s(fv("V")) }),
        "EchoRequest" => enc(EchoRequest { text: s(fv("Text")) }),
        "HelloRequest" => enc(HelloRequest {
            who: s(fv("Who")),
            question: s(fv("Question")),
        }),
        "HelloReply" => enc(HelloReply {
            answer: s(fv("Answer")),
            internal: HelloInternal {
                trace_id: s(field(fv("Internal"), "TraceID")),
            },
        }),
        "OkReply" => enc(OkReply {}),
        "ErrorReply" => enc(ErrorReply {
            code: s(fv("Code")),
            message: s(fv("Message")),
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------- generic msgpack tree

/// True when a nil sits where Go's compact decoder rejects it: any array
/// element (struct field or list element); map values may be nil.
fn nil_at_array_position(t: &Tree) -> bool {
    match t {
        Tree::Nil | Tree::Int(..) | Tree::Bin(..) | Tree::Scalar(_) => false,
        Tree::Array(items) => items.iter().any(|x| *x == Tree::Nil || nil_at_array_position(x)),
        Tree::Map(entries) => entries.iter().any(|(_, v)| nil_at_array_position(v)),
    }
}

// ---------------------------------------------------------------- the tests

#[test]
fn encode_cases_match_go_bytes() {
    let vectors = load_vectors("codec.json");
    let cases = vectors["encode_cases"].as_array().expect("encode_cases");
    let mut ran = 0usize;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut interop_refused: Vec<&str> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    for case in cases {
        let id = case["id"].as_str().expect("id");
        let ty = case["type"].as_str().expect("type");
        let unordered = case["map_entries_unordered"].as_bool().unwrap_or(false);
        let Some(e) = encode_case(id, ty, &case["value"]) else {
            skipped.push((format!("{id}/both"), format!("no Rust type for {ty}")));
            continue;
        };
        ran += 1;
        assert_eq!(e.wire, case["wire"].as_str().expect("wire"), "{id}: wire name");

        for (codec, got, hex_key, err_key) in [
            ("compact", &e.compact, "compact_hex", "compact_error"),
            ("map", &e.map, "map_hex", "map_error"),
        ] {
            let key = format!("{id}/{codec}");
            if let Some(go_err) = case[err_key].as_str() {
                if let Err(err) = got {
                    // Same wording as the reference (which prefixes its error type).
                    if !go_err.ends_with(&err.to_string()) {
                        failures.push(format!("{key}: refused with {err:?}, Go said {go_err}"));
                    }
                } else {
                    let reason = EXPECTED_SKIPS.iter().find(|(k, _)| *k == key).map_or_else(
                        || format!("Go refused ({go_err}) but amring encoded"),
                        |(_, r)| r.to_string(),
                    );
                    skipped.push((key, reason));
                }
                continue;
            }
            let want = unhex(case[hex_key].as_str().expect("hex"));
            let got = match got {
                Ok(g) => g,
                Err(err) => {
                    failures.push(format!("{key}: encode failed: {err}"));
                    continue;
                }
            };
            let same = if unordered {
                tree(got) == tree(&want)
            } else {
                *got == want
            };
            if !same {
                failures.push(format!(
                    "{key}:\n   got  {}\n   want {}",
                    hex::encode(got),
                    hex::encode(&want)
                ));
            }
        }

        // Interop: identical to Exact unless Exact has a nil at an array position,
        // in which case Interop must refuse with NilInCompact.
        if let Ok(exact) = &e.compact {
            let has_nil = nil_at_array_position(&tree(exact));
            match (&e.interop_compact, has_nil) {
                (Ok(b), false) if b == exact => {}
                (Err(EncodeError::NilInCompact), true) => interop_refused.push(id),
                (other, _) => failures.push(format!("{id}: interop compact {other:?} (exact has nil: {has_nil})")),
            }
        }
    }

    let list: Vec<String> = skipped.iter().map(|(k, r)| format!("{k}: {r}")).collect();
    println!("ran {ran} cases, skipped {}: {}", skipped.len(), list.join("; "));
    println!("interop compact refused (nil at a field/element position): {interop_refused:?}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let expected: Vec<(String, String)> = EXPECTED_SKIPS
        .iter()
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .collect();
    assert_eq!(skipped, expected, "skip list changed");
    assert_eq!(ran, cases.len(), "every case has a Rust type");
    assert_eq!(
        interop_refused,
        [
            "bytes_nil",
            "optstr_nil",
            "opti64_nil",
            "liststr_nil",
            "mapstri64_nil",
            "scalars_zero",
            "nested_min"
        ],
        "exactly the cases where Go itself sends c0 in a compact field are refused in Interop"
    );
}

/// `nil_as_zero` gives Go-decodable compact output for absent values in Interop.
#[test]
fn nil_as_zero_is_go_decodable_in_interop() {
    #[derive(Serialize, Default)]
    struct Lenient {
        #[serde(with = "attrs::nil_as_zero")]
        raw: Option<serde_bytes::ByteBuf>,
        #[serde(with = "attrs::nil_as_zero")]
        list: Option<Vec<String>>,
        #[serde(with = "attrs::nil_as_zero")]
        opt: Option<i64>,
        #[serde(with = "attrs::nil_as_zero")]
        by_key: Option<HashMap<String, i64>>,
    }
    amring_proto::message!(Lenient, package = "capmsg");
    let mut out = BytesMut::new();
    CodecKind::Compact
        .encode(&Lenient::default(), Profile::Interop, &mut out)
        .expect("encodes");
    let mut want = b"\x95\xb1am.capmsg.Lenient".to_vec();
    want.extend_from_slice(&[0xc4, 0x00, 0x90, 0xd3, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    assert_eq!(&out[..], &want[..]);
    assert!(!nil_at_array_position(&tree(&out)));
    // The map codec keeps Go's nil.
    let mut out = BytesMut::new();
    CodecKind::Map
        .encode(&Lenient::default(), Profile::Interop, &mut out)
        .expect("encodes");
    let Tree::Map(env) = tree(&out) else {
        panic!("map envelope")
    };
    // Sorted entries: "data" < "type".
    let Tree::Map(body) = &env[0].1 else {
        panic!("data is a map")
    };
    assert_eq!(body.len(), 4);
    assert!(body.iter().all(|(_, v)| *v == Tree::Nil));
}

/// The macro derives the reference's wire names.
#[test]
fn message_macro_wire_names() {
    assert_eq!(EchoRequest::WIRE_NAME, "am.capmsg.EchoRequest");
    assert_eq!(HelloReply::WIRE_NAME, "am.hello.HelloReply");
    assert_eq!(Named::WIRE_NAME, "example.v1.CustomName");
    assert_eq!(Thing::WIRE_NAME, "am.suffix.Thing");
    assert_eq!(Local::WIRE_NAME, "am.main.Local");
    assert_eq!(
        Scalars::WIRE_NAME,
        amring_proto::codec::wire_name_for("example.com/amcap/capmsg", "Scalars")
    );
}

/// The `attrs` markers are transparent for other serde formats: every capmsg
/// type with a marker round-trips through serde_json and rmp_serde.
#[test]
fn attrs_are_transparent_in_other_formats() {
    fn both<T>(v: &T)
    where
        T: Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_string(v).expect("json encode");
        let back: T = serde_json::from_str(&json).expect("json decode");
        assert_eq!(&back, v, "json {json}");
        let mp = rmp_serde::to_vec_named(v).expect("rmp encode");
        let back: T = rmp_serde::from_slice(&mp).expect("rmp decode");
        assert_eq!(&back, v, "rmp {}", hex::encode(&mp));
    }
    both(&Embedded {
        base: Base {
            base_id: 7,
            kind: "k".into(),
        },
        extra: "e".into(),
    });
    both(&ByteArrMsg { v: [1, 2, 3, 4] });
    both(&TimeMsg {
        v: Timestamp::new(1_700_000_000, 123_456_789),
    });
    both(&IntMsg { v: -300 });
    both(&ListIntMsg { v: vec![1, 200, -300] });
    both(&TagVariants {
        no_tag: "n".into(),
        skip: "s".into(),
        omit: "o".into(),
        renamed: "r".into(),
        both: "b".into(),
    });
    both(&WithHiddenInner {
        name: "n".into(),
        inner: HiddenInner {
            visible: "v".into(),
            hidden: "h".into(),
        },
    });
}
