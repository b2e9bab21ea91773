//! Payload codecs (spec §4): `CodecKind::decode_envelope` for both codecs on
//! arbitrary payloads, then `CodecKind::decode_body` of every envelope that
//! decoded into a few representative types (strings, borrowed str/bytes,
//! integers of several widths, options, lists, nested structs, maps).
//!
//! Invariants checked besides "no panic":
//! * the envelope's wire name and body are sub-slices of the payload;
//! * decoding is deterministic (the same input decodes to the same value).
#![no_main]

use std::collections::BTreeMap;

use amring_proto::codec::CodecKind;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct EchoRequest {
    text: String,
}

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct Borrowed<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct Scalars {
    a: i64,
    b: u8,
    c: Option<u32>,
    d: bool,
    e: f64,
    f: i16,
}

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct Inner {
    x: u64,
    y: String,
}

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct Nested {
    inner: Inner,
    list: Vec<Inner>,
    tags: BTreeMap<String, i32>,
    blob: Option<serde_bytes::ByteBuf>,
}

#[allow(dead_code)]
#[derive(Debug, PartialEq, Deserialize)]
struct Empty {}

fn bodies(kind: CodecKind, payload: &[u8]) {
    let Ok(env) = kind.decode_envelope(payload) else {
        return;
    };
    let range = payload.as_ptr_range();
    assert!(range.contains(&env.wire.as_ptr()) || env.wire.is_empty());
    assert!(range.contains(&env.body.as_ptr()) || env.body.is_empty());
    assert_eq!(
        kind.decode_envelope(payload),
        Ok(env),
        "envelope decode not deterministic"
    );

    macro_rules! body {
        ($t:ty) => {{
            let a = kind.decode_body::<$t>(&env);
            let b = kind.decode_body::<$t>(&env);
            assert_eq!(a, b, "body decode not deterministic");
        }};
    }
    body!(EchoRequest);
    body!(Borrowed<'_>);
    body!(Scalars);
    body!(Nested);
    body!(Empty);
    body!(Vec<u32>);
    body!(String);
}

fuzz_target!(|data: &[u8]| {
    // An owned copy, like a frame payload cut from the read buffer.
    let payload = Bytes::copy_from_slice(data);
    bodies(CodecKind::Compact, &payload);
    bodies(CodecKind::Map, &payload);
});
