//! Unit tests of the body deserializer: embedded structs, timestamps,
//! borrowing, integer wrapping and zero fill, duplicate keys (single and
//! two-pass), wide structs, and the depth bound.

use serde::Deserialize;

use super::*;
use crate::codec::de_read::eof;

fn map_env(body: &[u8]) -> Envelope<'_> {
    Envelope {
        wire: "x",
        body,
        kind: BodyKind::MapData,
    }
}

fn compact_env(body: &[u8], fields: u32) -> Envelope<'_> {
    Envelope {
        wire: "x",
        body,
        kind: BodyKind::CompactFields { fields },
    }
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[derive(Debug, Deserialize, PartialEq)]
struct Base {
    base_id: i64,
    kind: String,
}

#[derive(Debug, PartialEq)]
struct Emb(Base);

impl<'de> Deserialize<'de> for Emb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Emb, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Emb;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("embedded")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Emb, D::Error> {
                Base::deserialize(d).map(Emb)
            }
        }
        d.deserialize_newtype_struct(EMBEDDED, V)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct Embedded {
    base: Emb,
    extra: String,
}

#[test]
fn embedded_compact_and_map() {
    // Reference bytes (codec.json `embedded`): compact `[.., [7, "k"], "e"]`.
    let c = h("92d30000000000000007a16ba165");
    let v: Embedded = decode_body(&compact_env(&c, 2)).unwrap();
    assert_eq!(
        v.base,
        Emb(Base {
            base_id: 7,
            kind: "k".into()
        })
    );
    assert_eq!(v.extra, "e");
    // Map: fields inlined in the parent map.
    let m = h("83a7626173655f6964d30000000000000007a46b696e64a16ba56578747261a165");
    let v: Embedded = decode_body(&map_env(&m)).unwrap();
    assert_eq!(
        v.base,
        Emb(Base {
            base_id: 7,
            kind: "k".into()
        })
    );
    assert_eq!(v.extra, "e");
}

#[derive(Debug, PartialEq)]
struct Ts(i64, u32);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("timestamp")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Ts, D::Error> {
                let (s, n) = <(i64, u32)>::deserialize(d)?;
                Ok(Ts(s, n))
            }
        }
        d.deserialize_newtype_struct(TIMESTAMP, V)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct TimeMsg {
    v: Ts,
}

#[test]
fn timestamps_three_forms_and_nil() {
    let t: TimeMsg = decode_body(&compact_env(&h("d6ff6553f100"), 1)).unwrap();
    assert_eq!(t.v, Ts(1_700_000_000, 0));
    // d7: nanos << 34 | secs.
    let v: u64 = (5u64 << 34) | 1_700_000_000;
    let mut b = h("d7ff");
    b.extend_from_slice(&v.to_be_bytes());
    let t: TimeMsg = decode_body(&compact_env(&b, 1)).unwrap();
    assert_eq!(t.v, Ts(1_700_000_000, 5));
    let mut b = h("c70cff");
    b.extend_from_slice(&7u32.to_be_bytes());
    b.extend_from_slice(&(-5i64).to_be_bytes());
    let t: TimeMsg = decode_body(&compact_env(&b, 1)).unwrap();
    assert_eq!(t.v, Ts(-5, 7));
    // nil: compact refuses like Go; map gives Go's zero time.
    assert_eq!(decode_body::<TimeMsg>(&compact_env(&[0xc0], 1)).unwrap_err(), eof());
    let t: TimeMsg = decode_body(&map_env(&h("81a176c0"))).unwrap();
    assert_eq!(t.v, Ts(GO_ZERO_TIME_SECS, 0));
    let t: TimeMsg = decode_body(&map_env(&h("80"))).unwrap();
    assert_eq!(t.v, Ts(GO_ZERO_TIME_SECS, 0));
    assert!(decode_body::<TimeMsg>(&compact_env(&h("d5ff0000"), 1)).is_err());
    assert!(decode_body::<TimeMsg>(&compact_env(&h("d6010000000a"), 1)).is_err());
}

#[derive(Debug, Deserialize, PartialEq)]
struct Borrowed<'a> {
    s: &'a str,
    #[serde(borrow, with = "serde_bytes")]
    b: &'a [u8],
    n: u8,
    i: i32,
    f: f64,
}

#[test]
fn borrowing_wrapping_and_zero_fill() {
    let body = h("a26869c4020102cd012cd3000000010000002a03");
    let env = compact_env(&body, 5);
    let v: Borrowed<'_> = decode_body(&env).unwrap();
    assert_eq!(
        v,
        Borrowed {
            s: "hi",
            b: &[1, 2],
            n: 44,
            i: 42,
            f: 3.0
        }
    );
    assert!(
        std::ptr::eq(v.s.as_ptr(), body[1..].as_ptr()),
        "str borrows from the payload"
    );
    // Map: duplicate key last wins, missing keys are zero, unknown keys skipped.
    let m = h("84a173a161a17a01a173a162a16ecc05");
    let v: Borrowed<'_> = decode_body(&map_env(&m)).unwrap();
    assert_eq!(
        v,
        Borrowed {
            s: "b",
            b: &[],
            n: 5,
            i: 0,
            f: 0.0
        }
    );
    // Compact count mismatch.
    assert_eq!(
        decode_body::<Borrowed<'_>>(&compact_env(&body[..body.len() - 1], 4)).unwrap_err(),
        DecodeError::CompactFieldCount { expected: 5, got: 4 }
    );
    // Float → int and f64 → f32 refused; int → bool refused.
    #[derive(Debug, Deserialize)]
    struct F32 {
        _v: f32,
    }
    #[derive(Debug, Deserialize)]
    struct B {
        _v: bool,
    }
    assert!(decode_body::<F32>(&compact_env(&h("cb3ff8000000000000"), 1)).is_err());
    assert!(decode_body::<B>(&compact_env(&h("01"), 1)).is_err());
    assert!(decode_body::<Borrowed<'_>>(&compact_env(&h("a0c400cb3ff000000000000000cb00"), 5)).is_err());
}

#[derive(Debug, Deserialize, PartialEq)]
struct Pair {
    a: u8,
    b: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Outer {
    list: Vec<Pair>,
    tail: u8,
}

#[test]
fn duplicates_last_wins_single_and_two_pass() {
    // No duplicate: out-of-order keys, unknown key skipped, missing key zeroed.
    let v: Pair = decode_body(&map_env(&h("83a162a178a17ac0a161cc07"))).unwrap();
    assert_eq!(v, Pair { a: 7, b: "x".into() });
    let v: Pair = decode_body(&map_env(&h("81a162a178"))).unwrap();
    assert_eq!(v, Pair { a: 0, b: "x".into() });
    // Duplicate deep inside a list element: the retry keeps the last value
    // and the outer fields are still decoded.
    // {"list": [{"a":1,"b":"p","a":2}], "tail": 9}
    let m = h("82a46c6973749183a16101a162a170a16102a47461696c09");
    let v: Outer = decode_body(&map_env(&m)).unwrap();
    assert_eq!(
        v,
        Outer {
            list: vec![Pair { a: 2, b: "p".into() }],
            tail: 9
        }
    );
    // Three occurrences, last one differs in type family (int widths).
    let v: Pair = decode_body(&map_env(&h("83a16101a161cd0101a161d00c"))).unwrap();
    assert_eq!(v.a, 12);
    // A first value of the wrong type fails before the duplicate is seen,
    // like Go's sequential decoder.
    assert!(decode_body::<Pair>(&map_env(&h("82a161a178a16103"))).is_err());
    // A bad value that is not overwritten still fails.
    assert!(decode_body::<Pair>(&map_env(&h("81a161a178"))).is_err());
}

/// A struct with more fields than the single-pass bitset holds, read into a Vec.
struct Many<const N: usize>(Vec<(String, u8)>);

impl<'de, const N: usize> Deserialize<'de> for Many<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Many<N>, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = Many<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("many")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Many<N>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    if out.iter().any(|(x, _)| *x == k) {
                        return Err(de::Error::custom("duplicate"));
                    }
                    let v: u8 = m.next_value()?;
                    out.push((k, v));
                }
                Ok(Many(out))
            }
        }
        let names: Vec<&'static str> = (0..N).map(|i| &*Box::leak(format!("f{i}").into_boxed_str())).collect();
        d.deserialize_struct("Many", Box::leak(names.into_boxed_slice()), V::<N>)
    }
}

fn wide<const N: usize>() {
    let get = |m: &Many<N>, k: &str| m.0.iter().find(|(x, _)| x == k).map(|(_, v)| *v);
    // {"f69": 1, "f3": 2, "f69": 5}
    let m = h("83a366363901a2663302a366363905");
    let v: Many<N> = decode_body(&map_env(&m)).unwrap();
    assert_eq!(v.0.len(), N);
    // Two-pass retry: only the last `f69` is delivered (after `f3`).
    assert_eq!(v.0[0], ("f3".to_string(), 2));
    assert_eq!(get(&v, "f69"), Some(5));
    assert_eq!(v.0.iter().filter(|(_, x)| *x != 0).count(), 2);
    let m = h("82a366363901a2663302");
    let v: Many<N> = decode_body(&map_env(&m)).unwrap();
    assert_eq!(v.0[0], ("f69".to_string(), 1));
    assert_eq!(v.0[1], ("f3".to_string(), 2));
    assert_eq!(v.0.len(), N);
    assert_eq!(get(&v, "f0"), Some(0));
}

#[test]
fn wide_structs_and_duplicates() {
    wide::<70>(); // two-word bitset
    wide::<300>(); // heap flags
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Deep {
    v: Vec<Deep>,
}

#[test]
fn depth_is_bounded() {
    // 100k nested single-field positional structs: error, not a stack overflow.
    let mut b = vec![0x91u8; 100_000];
    b.push(0x90);
    let err = decode_body::<Deep>(&compact_env(&b, 1)).unwrap_err();
    assert_eq!(err, depth_exceeded());
    let err = decode_body::<Deep>(&map_env(&b)).unwrap_err();
    assert_eq!(err, depth_exceeded());
    // Within the bound it decodes.
    let mut b = vec![0x91u8; 50];
    b.push(0x90);
    assert!(decode_body::<Deep>(&map_env(&b[1..])).is_ok());
    // Skipping (IgnoredAny) is iterative: any nesting is fine.
    let mut b = vec![0x91u8; 100_000];
    b.push(0xc0);
    assert!(decode_body::<serde::de::IgnoredAny>(&map_env(&b)).is_ok());
    assert!(decode_body::<serde::de::IgnoredAny>(&map_env(&b[..b.len() - 1])).is_err());
}
