//! Unit tests for the tricky bits of the serializer.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;
use crate::codec::attrs::{self, Timestamp};

fn compact<T: Serialize + ?Sized>(v: &T, profile: Profile) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    encode_compact("W", v, profile, &mut out)?;
    Ok(out.to_vec())
}

fn map<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_map("W", v, Profile::Exact, &mut out).expect("map encode");
    out.to_vec()
}

/// Compact envelope prefix for an `n`-field message named `W`.
fn cprefix(n: usize) -> Vec<u8> {
    let mut v = if n + 1 < 16 {
        vec![0x90 | (n as u8 + 1)]
    } else {
        let mut h = vec![0xdc];
        h.extend_from_slice(&((n + 1) as u16).to_be_bytes());
        h
    };
    v.extend_from_slice(b"\xa1W");
    v
}

const MPREFIX: &[u8] = b"\x82\xa4type\xa1W\xa4data";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[derive(Serialize)]
struct S<T>(T);

#[derive(Serialize)]
struct One<T> {
    v: T,
}

#[test]
fn array_header_boundary_15_16() {
    let fifteen: Vec<u8> = (0..15).collect();
    let got = compact(&One { v: fifteen.clone() }, Profile::Exact).unwrap();
    assert_eq!(&got[..4], &cat(&[&cprefix(1), &[0x9f]])[..]);
    let sixteen: Vec<u8> = (0..16).collect();
    let got = compact(&One { v: sixteen }, Profile::Exact).unwrap();
    assert_eq!(&got[..6], &cat(&[&cprefix(1), &[0xdc, 0x00, 0x10]])[..]);
    assert_eq!(got.len(), 6 + 32, "u8 elements keep their fixed cc width");
}

#[derive(Serialize, Default)]
struct Fifteen {
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    e: u8,
    f: u8,
    g: u8,
    h: u8,
    i: u8,
    j: u8,
    k: u8,
    l: u8,
    m: u8,
    n: u8,
    o: u8,
}

#[test]
fn fifteen_fields_need_array16_envelope() {
    let got = compact(&Fifteen::default(), Profile::Exact).unwrap();
    assert_eq!(&got[..3], &[0xdc, 0x00, 0x10], "15 fields + wire = 16 elements");
    assert_eq!(got.len(), 3 + 2 + 15 * 2);
    let m = map(&Fifteen::default());
    assert_eq!(m[MPREFIX.len()], 0x8f);
}

#[test]
fn str_header_boundaries() {
    for (n, hdr) in [
        (31usize, vec![0xbf]),
        (32, vec![0xd9, 32]),
        (255, vec![0xd9, 255]),
        (256, vec![0xda, 1, 0]),
        (65535, vec![0xda, 0xff, 0xff]),
        (65536, vec![0xdb, 0, 1, 0, 0]),
    ] {
        let s = "x".repeat(n);
        let got = compact(&One { v: s.as_str() }, Profile::Exact).unwrap();
        let p = cprefix(1).len();
        assert_eq!(&got[p..p + hdr.len()], &hdr[..], "str len {n}");
        assert_eq!(got.len(), p + hdr.len() + n);
    }
}

#[test]
fn bin_header_boundaries() {
    for (n, hdr) in [
        (0usize, vec![0xc4, 0]),
        (255, vec![0xc4, 255]),
        (256, vec![0xc5, 1, 0]),
        (65536, vec![0xc6, 0, 1, 0, 0]),
    ] {
        let b = vec![7u8; n];
        let got = compact(
            &One {
                v: serde_bytes::Bytes::new(&b),
            },
            Profile::Exact,
        )
        .unwrap();
        let p = cprefix(1).len();
        assert_eq!(&got[p..p + hdr.len()], &hdr[..], "bin len {n}");
        assert_eq!(got.len(), p + hdr.len() + n);
    }
}

#[test]
fn fixed_and_smallest_integers() {
    #[derive(Serialize)]
    struct Ints {
        a: i8,
        b: i16,
        c: i32,
        d: i64,
        e: u8,
        f: u16,
        g: u32,
        h: u64,
        #[serde(with = "attrs::smallest")]
        i: i64,
        #[serde(with = "attrs::smallest")]
        j: u64,
        #[serde(with = "attrs::smallest")]
        k: Vec<Option<i64>>,
    }
    let v = Ints {
        a: 1,
        b: 1,
        c: 1,
        d: 1,
        e: 1,
        f: 1,
        g: 1,
        h: 1,
        i: -33,
        j: 300,
        k: vec![Some(5), Some(-1), Some(200)],
    };
    let got = compact(&v, Profile::Exact).unwrap();
    let body: &[u8] = &[
        0xd0, 1, 0xd1, 0, 1, 0xd2, 0, 0, 0, 1, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, 0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1,
        0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xd0, 0xdf, 0xcd, 0x01, 0x2c, 0x93, 0x05, 0xff, 0xcc, 200,
    ];
    assert_eq!(got, cat(&[&cprefix(11), body]));
}

#[test]
fn smallest_extremes() {
    #[derive(Serialize)]
    struct X {
        #[serde(with = "attrs::smallest")]
        a: i64,
        #[serde(with = "attrs::smallest")]
        b: i64,
        #[serde(with = "attrs::smallest")]
        c: i64,
        #[serde(with = "attrs::smallest")]
        d: u64,
    }
    let got = compact(
        &X {
            a: i64::MAX,
            b: i64::MIN,
            c: -32,
            d: u64::MAX,
        },
        Profile::Exact,
    )
    .unwrap();
    let mut body = vec![0xcf];
    body.extend_from_slice(&i64::MAX.to_be_bytes());
    body.push(0xd3);
    body.extend_from_slice(&i64::MIN.to_be_bytes());
    body.push(0xe0);
    body.push(0xcf);
    body.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(got, cat(&[&cprefix(4), &body]));
}

#[test]
fn floats_keep_bits() {
    #[derive(Serialize)]
    struct F {
        a: f32,
        b: f64,
        c: f64,
    }
    let nan = f64::from_bits(0x7ff8_0000_0000_0001);
    let got = compact(
        &F {
            a: -0.0,
            b: nan,
            c: 1.5,
        },
        Profile::Exact,
    )
    .unwrap();
    let body: &[u8] = &[
        0xca, 0x80, 0, 0, 0, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(got, cat(&[&cprefix(3), body]));
}

#[derive(Serialize, Default)]
struct Wide {
    f00: u8,
    f01: u8,
    f02: u8,
    f03: u8,
    f04: u8,
    f05: u8,
    f06: u8,
    f07: u8,
    f08: u8,
    f09: u8,
}

#[derive(Serialize, Default)]
struct Inlining {
    #[serde(with = "attrs::embedded")]
    a: Wide,
    x: u8,
    #[serde(with = "attrs::embedded")]
    b: Wide2,
}

#[derive(Serialize, Default)]
struct Wide2 {
    g00: u8,
    g01: u8,
    g02: u8,
    g03: u8,
    g04: u8,
}

#[test]
fn map_header_shift_when_inlining_exceeds_15() {
    let got = map(&Inlining::default());
    let body = &got[MPREFIX.len()..];
    // 10 + 1 + 5 = 16 entries: the reserved fixmap (3 fields) grows to map16.
    assert_eq!(&body[..3], &[0xde, 0x00, 0x10]);
    assert_eq!(&body[3..7], b"\xa3f00");

    let mut expected = vec![0xde, 0x00, 0x10];
    for i in 0..10 {
        expected.push(0xa3);
        expected.extend_from_slice(format!("f{i:02}").as_bytes());
        expected.extend_from_slice(&[0xcc, 0]);
    }
    expected.extend_from_slice(&[0xa1, b'x', 0xcc, 0]);
    for i in 0..5 {
        expected.push(0xa3);
        expected.extend_from_slice(format!("g{i:02}").as_bytes());
        expected.extend_from_slice(&[0xcc, 0]);
    }
    assert_eq!(body, &expected[..]);
    // Compact: embedded structs are nested positional arrays.
    let c = compact(&Inlining::default(), Profile::Exact).unwrap();
    let mut ce = cprefix(3);
    ce.push(0x9a);
    ce.extend(std::iter::repeat([0xcc, 0]).take(10).flatten());
    ce.extend_from_slice(&[0xcc, 0, 0x95]);
    ce.extend(std::iter::repeat([0xcc, 0]).take(5).flatten());
    assert_eq!(c, ce);
}

#[test]
fn map_header_shrinks_when_entries_are_skipped() {
    #[derive(Serialize, Default)]
    struct Many {
        #[serde(with = "attrs::compact_only")]
        a0: u8,
        #[serde(with = "attrs::compact_only")]
        a1: u8,
        #[serde(with = "attrs::omitempty")]
        a2: u8,
        a3: u8,
        a4: u8,
        a5: u8,
        a6: u8,
        a7: u8,
        a8: u8,
        a9: u8,
        b0: u8,
        b1: u8,
        b2: u8,
        b3: u8,
        b4: u8,
        b5: u8,
    }
    let got = map(&Many::default());
    let body = &got[MPREFIX.len()..];
    assert_eq!(body[0], 0x8d, "16 fields, 2 skipped, 1 omitted: fixmap 13");
    assert_eq!(&body[1..4], b"\xa2a3");
    assert_eq!(body.len(), 1 + 13 * 5);
    let c = compact(&Many::default(), Profile::Exact).unwrap();
    assert_eq!(&c[..3], &[0xdc, 0, 17], "compact keeps every field");
}

#[test]
fn omitempty_rules() {
    #[derive(Serialize)]
    struct O {
        #[serde(with = "attrs::omitempty")]
        s: String,
        #[serde(with = "attrs::omitempty")]
        p: Option<i64>,
        #[serde(with = "attrs::omitempty")]
        q: Option<i64>,
        #[serde(with = "attrs::omitempty")]
        l: Vec<u8>,
        #[serde(with = "attrs::omitempty")]
        f: f64,
        #[serde(with = "attrs::omitempty")]
        t: Timestamp,
        #[serde(with = "attrs::omitempty")]
        b: bool,
    }
    let v = O {
        s: String::new(),
        p: None,
        q: Some(0),
        l: vec![],
        f: -0.0,
        t: Timestamp::GO_ZERO,
        b: false,
    };
    let got = map(&v);
    // Only `q` stays: a non-nil pointer to zero is not empty in Go.
    assert_eq!(&got[MPREFIX.len()..], b"\x81\xa1q\xd3\0\0\0\0\0\0\0\0");
    let v = O {
        s: "x".into(),
        p: Some(1),
        q: None,
        l: vec![1],
        f: 0.5,
        t: Timestamp::new(0, 0),
        b: true,
    };
    let got = map(&v);
    assert_eq!(got[MPREFIX.len()], 0x86);
}

#[test]
fn nested_markers() {
    #[derive(Serialize, Default)]
    struct Hidden {
        visible: String,
    }
    #[derive(Serialize, Default)]
    struct Outer {
        #[serde(with = "attrs::as_map")]
        h: Hidden,
        #[serde(with = "attrs::byte_array")]
        arr: [u8; 3],
        #[serde(with = "attrs::smallest")]
        m: BTreeMap<String, Vec<i32>>,
        t: Timestamp,
    }
    let mut m = BTreeMap::new();
    m.insert("k".to_string(), vec![1, -100]);
    let v = Outer {
        h: Hidden { visible: "v".into() },
        arr: [1, 2, 3],
        m,
        t: Timestamp::new(1_700_000_000, 123_456_789),
    };
    let got = compact(&v, Profile::Exact).unwrap();
    let body: &[u8] = &[
        0x81, 0xa7, b'v', b'i', b's', b'i', b'b', b'l', b'e', 0xa1, b'v', // as_map
        0x93, 0xcc, 1, 0xcc, 2, 0xcc, 3, // byte_array compact
        0x81, 0xa1, b'k', 0x92, 0x01, 0xd0, 0x9c, // smallest through map + vec
        0xd7, 0xff, 0x1d, 0x6f, 0x34, 0x54, 0x65, 0x53, 0xf1, 0x00, // timestamp ext8
    ];
    assert_eq!(got, cat(&[&cprefix(4), body]));
    let got = map(&v);
    let mut expected =
        b"\x84\xa1h\x81\xa7visible\xa1v\xa3arr\xc4\x03\x01\x02\x03\xa1m\x81\xa1k\x92\x01\xd0\x9c\xa1t".to_vec();
    expected.extend_from_slice(&[0xd7, 0xff, 0x1d, 0x6f, 0x34, 0x54, 0x65, 0x53, 0xf1, 0x00]);
    assert_eq!(&got[MPREFIX.len()..], &expected[..]);
}

/// Go `[N]byte` decodes from both of its forms: compact's array of `cc xx`
/// and map's bin (the compact form used to fail with "invalid code=93").
#[test]
fn byte_array_round_trips_in_both_codecs() {
    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct B {
        #[serde(with = "attrs::byte_array")]
        arr: [u8; 3],
        n: u8,
    }
    impl crate::codec::Message for B {
        const WIRE_NAME: &'static str = "am.t.B";
    }
    let v = B { arr: [1, 200, 3], n: 9 };
    for codec in [crate::codec::CodecKind::Compact, crate::codec::CodecKind::Map] {
        let mut buf = BytesMut::new();
        codec.encode(&v, Profile::Interop, &mut buf).unwrap();
        let env = codec.decode_envelope(&buf).unwrap();
        let back: B = codec.decode_body(&env).unwrap();
        assert_eq!(back, v, "{codec:?}");
    }
}

#[test]
fn timestamp_forms() {
    let cases: [(Timestamp, &[u8]); 4] = [
        (Timestamp::new(0, 0), &[0xd6, 0xff, 0, 0, 0, 0]),
        (Timestamp::new(1_700_000_000, 0), &[0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00]),
        (
            Timestamp::new(1 << 34, 1),
            &[0xc7, 0x0c, 0xff, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0],
        ),
        (
            Timestamp::GO_ZERO,
            &[
                0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf1, 0x88, 0x6e, 0x09, 0x00,
            ],
        ),
    ];
    for (t, bytes) in cases {
        let got = compact(&One { v: t }, Profile::Exact).unwrap();
        assert_eq!(&got[cprefix(1).len()..], bytes, "{t:?}");
    }
    let bad = compact(
        &One {
            v: Timestamp::new(0, 1_000_000_000),
        },
        Profile::Exact,
    );
    assert_eq!(bad, Err(EncodeError::InvalidTimestamp(1_000_000_000)));
}

#[test]
fn interop_refuses_nil_at_field_and_element_positions() {
    let none: Option<String> = None;
    assert_eq!(
        compact(&One { v: none.clone() }, Profile::Interop),
        Err(EncodeError::NilInCompact)
    );
    assert_eq!(
        compact(
            &One {
                v: vec![Some(1u8), None]
            },
            Profile::Interop
        ),
        Err(EncodeError::NilInCompact)
    );
    // Exact reproduces Go's c0.
    assert_eq!(
        compact(&One { v: none }, Profile::Exact).unwrap(),
        cat(&[&cprefix(1), &[0xc0]])
    );
    // A nil map value is fine for Go's compact decoder (pointer-typed values).
    let mut m = BTreeMap::new();
    m.insert("k", None::<Vec<u8>>);
    assert_eq!(
        compact(&One { v: m }, Profile::Interop).unwrap(),
        cat(&[&cprefix(1), &[0x81, 0xa1, b'k', 0xc0]])
    );
    // ...but not inside a list held by a map value.
    let mut m = BTreeMap::new();
    m.insert("k", vec![None::<u8>]);
    assert_eq!(compact(&One { v: m }, Profile::Interop), Err(EncodeError::NilInCompact));
    // Map codec: always c0.
    assert_eq!(&map(&One { v: None::<u8> })[MPREFIX.len()..], b"\x81\xa1v\xc0");
}

#[test]
fn nil_as_zero() {
    #[derive(Serialize)]
    struct N {
        #[serde(with = "attrs::nil_as_zero")]
        a: Option<String>,
        #[serde(with = "attrs::nil_as_zero")]
        b: Option<Vec<u8>>,
        #[serde(with = "attrs::nil_as_zero")]
        c: Option<i32>,
    }
    let v = N {
        a: None,
        b: None,
        c: Some(7),
    };
    let got = compact(&v, Profile::Interop).unwrap();
    assert_eq!(got, cat(&[&cprefix(3), &[0xa0, 0x90, 0xd2, 0, 0, 0, 7]]));
    assert_eq!(&map(&v)[MPREFIX.len()..], b"\x83\xa1a\xc0\xa1b\xc0\xa1c\xd2\0\0\0\x07");
}

#[test]
fn envelopes_and_refusals() {
    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Empty {}
    assert_eq!(compact(&Unit, Profile::Exact).unwrap(), b"\x91\xa1W");
    assert_eq!(compact(&Empty {}, Profile::Exact).unwrap(), b"\x91\xa1W");
    assert_eq!(map(&Unit), cat(&[MPREFIX, &[0x80]]));
    assert_eq!(map(&Empty {}), cat(&[MPREFIX, &[0x80]]));
    assert_eq!(compact(&5u8, Profile::Exact), Err(EncodeError::NotAStruct));
    assert_eq!(compact(&vec![Empty {}], Profile::Exact), Err(EncodeError::NotAStruct));
    assert_eq!(compact(&S(1u8), Profile::Exact), Err(EncodeError::NotAStruct));
    let mut out = BytesMut::new();
    assert_eq!(
        encode_map("W", &5u8, Profile::Exact, &mut out),
        Err(EncodeError::NotAStruct)
    );
    assert_eq!(
        encode_compact("", &Unit, Profile::Exact, &mut out),
        Err(EncodeError::EmptyWireName)
    );
    #[derive(Serialize)]
    enum E {
        A(u8),
    }
    assert_eq!(
        compact(&One { v: E::A(1) }, Profile::Exact),
        Err(EncodeError::Unsupported("enum variant with data"))
    );
}

#[test]
fn appends_after_existing_bytes() {
    let mut out = BytesMut::from(&b"HDR"[..]);
    encode_compact("W", &One { v: 1u8 }, Profile::Exact, &mut out).unwrap();
    assert_eq!(&out[..], b"HDR\x92\xa1W\xcc\x01");
    let mut out = BytesMut::from(&b"HDR"[..]);
    encode_map("W", &Inlining::default(), Profile::Exact, &mut out).unwrap();
    assert_eq!(&out[..3], b"HDR");
    assert_eq!(&out[3..3 + MPREFIX.len() + 3], cat(&[MPREFIX, &[0xde, 0, 16]]));
}

#[test]
fn unknown_length_sequences_get_patched_headers() {
    struct Iter(usize);
    impl Serialize for Iter {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..self.0).filter(|_| true).map(|i| i as u8))
        }
    }
    // `filter` hides the length from serde: the header starts as fixarray 0.
    let got = compact(&One { v: Iter(20) }, Profile::Exact).unwrap();
    let p = cprefix(1).len();
    assert_eq!(&got[p..p + 3], &[0xdc, 0, 20]);
    assert_eq!(&got[p + 3..p + 5], &[0xcc, 0]);
    assert_eq!(got.len(), p + 3 + 40);
}

#[test]
fn unexported_field() {
    #[derive(Serialize, Default)]
    struct Hidden {
        visible: String,
        #[serde(with = "attrs::unexported")]
        hidden: String,
    }
    #[derive(Serialize, Default)]
    struct Outer {
        #[serde(with = "attrs::as_map")]
        inner: Hidden,
        plain: Vec<Hidden>,
    }
    assert_eq!(
        compact(&Hidden::default(), Profile::Exact),
        Err(EncodeError::UnexportedField)
    );
    assert_eq!(
        EncodeError::UnexportedField.to_string(),
        "compact encoding does not support unexported fields"
    );
    assert_eq!(&map(&Hidden::default())[MPREFIX.len()..], b"\x81\xa7visible\xa0");
    // Nested: as_map gives Go's map fallback; a plain nested one is refused.
    let v = Outer {
        inner: Hidden::default(),
        plain: vec![],
    };
    assert_eq!(
        compact(&v, Profile::Exact).unwrap(),
        cat(&[&cprefix(2), b"\x81\xa7visible\xa0\x90"])
    );
    let v = Outer {
        inner: Hidden::default(),
        plain: vec![Hidden::default()],
    };
    assert_eq!(compact(&v, Profile::Exact), Err(EncodeError::UnexportedField));
}

mod props {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Inner {
        name: String,
        #[serde(with = "attrs::smallest")]
        n: i64,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Msg {
        s: String,
        b: bool,
        i8: i8,
        i16: i16,
        i32: i32,
        #[serde(with = "attrs::smallest")]
        i: i64,
        #[serde(with = "attrs::smallest")]
        u: u64,
        u8: u8,
        u16: u16,
        u32: u32,
        u64: u64,
        f32: f32,
        f64: f64,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        list: Vec<Inner>,
        map: BTreeMap<String, Inner>,
        opt: Option<Inner>,
    }

    fn inner() -> impl Strategy<Value = Inner> {
        (".{0,40}", any::<i64>()).prop_map(|(name, n)| Inner { name, n })
    }

    fn msg() -> impl Strategy<Value = Msg> {
        (
            (
                ".{0,300}",
                any::<bool>(),
                any::<i8>(),
                any::<i16>(),
                any::<i32>(),
                any::<i64>(),
                any::<u64>(),
            ),
            (
                any::<u8>(),
                any::<u16>(),
                any::<u32>(),
                any::<u64>(),
                any::<f32>(),
                any::<f64>(),
            ),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(inner(), 0..20),
                proptest::collection::btree_map(".{0,8}", inner(), 0..20),
                proptest::option::of(inner()),
            ),
        )
            .prop_map(
                |((s, b, i8, i16, i32, i, u), (u8, u16, u32, u64, f32, f64), (raw, list, map, opt))| Msg {
                    s,
                    b,
                    i8,
                    i16,
                    i32,
                    i,
                    u,
                    u8,
                    u16,
                    u32,
                    u64,
                    f32,
                    f64,
                    raw,
                    list,
                    map,
                    opt,
                },
            )
    }

    /// Same value with NaNs replaced, so `PartialEq` can compare.
    fn canon(mut m: Msg) -> Msg {
        if m.f32.is_nan() {
            m.f32 = 0.0;
        }
        if m.f64.is_nan() {
            m.f64 = 0.0;
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever we write is well-formed MessagePack that an independent
        /// decoder (rmp_serde) reads back to the same value, in both codecs.
        #[test]
        fn independent_decoder_reads_back(m in msg()) {
            let m = canon(m);
            let bytes = compact(&m, Profile::Exact).unwrap();
            let (wire, back): (String, Msg) = {
                // [wire, f1..fn] → decode as a tuple of the name and the struct's fields.
                let mut b = bytes.clone();
                // Re-shape `[W, fields...]` as `[W, [fields...]]` for rmp_serde.
                let n = match b[0] { 0x90..=0x9f => usize::from(b[0] & 0x0f), _ => usize::from(u16::from_be_bytes([b[1], b[2]])) };
                let hdr = if b[0] == 0xdc { 3 } else { 1 };
                let rest = b.split_off(hdr + 2); // after the header and "\xa1W"
                let mut v = vec![0x92, 0xa1, b'W', 0xdc];
                v.extend_from_slice(&((n - 1) as u16).to_be_bytes());
                v.extend_from_slice(&rest);
                rmp_serde::from_slice(&v).unwrap()
            };
            prop_assert_eq!(wire, "W");
            prop_assert_eq!(&back, &m);

            let bytes = map(&m);
            #[derive(Deserialize)]
            struct Env {
                r#type: String,
                data: Msg,
            }
            let env: Env = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(env.r#type, "W");
            prop_assert_eq!(env.data, m);
        }
    }
}
