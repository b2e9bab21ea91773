//! Codec decode cost: envelope-only and full body decode, compact and map,
//! for a small echo and a ~1 KiB message, next to `rmp_serde::from_slice`.
//! Inputs are built with rmp / rmp-serde directly (independent of the encoder).
//! Throughput: `Elements(1)` = messages decoded.
//!
//! Run: `cargo bench -p amring-bench --bench codec_decode -- --quick`
#![allow(missing_docs)]

use amring::codec::CodecKind;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
struct EchoRequest {
    text: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct Item {
    name: String,
    count: i32,
}

#[derive(Debug, Deserialize, Serialize)]
struct Big {
    id: i64,
    title: String,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    tags: Vec<String>,
    items: Vec<Item>,
    ratio: f64,
    ok: bool,
}

fn big() -> Big {
    Big {
        id: 123_456_789,
        title: "a reasonably long title for the benchmark message".into(),
        blob: vec![7u8; 400],
        tags: (0..16).map(|i| format!("tag-{i}")).collect(),
        items: (0..16)
            .map(|i| Item {
                name: format!("item-{i}"),
                count: i,
            })
            .collect(),
        ratio: 0.75,
        ok: true,
    }
}

/// Compact envelope `[wire, fields...]` from rmp-serde's positional struct encoding.
fn compact<T: Serialize>(wire: &str, v: &T) -> Vec<u8> {
    let body = rmp_serde::to_vec(v).unwrap(); // array of fields
    let mut rd = &body[..];
    let n = rmp::decode::read_array_len(&mut rd).unwrap();
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, n + 1).unwrap();
    rmp::encode::write_str(&mut out, wire).unwrap();
    out.extend_from_slice(rd);
    out
}

/// Map envelope `{"type": wire, "data": {...}}`.
fn map<T: Serialize>(wire: &str, v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, 2).unwrap();
    rmp::encode::write_str(&mut out, "type").unwrap();
    rmp::encode::write_str(&mut out, wire).unwrap();
    rmp::encode::write_str(&mut out, "data").unwrap();
    out.extend_from_slice(&rmp_serde::to_vec_named(v).unwrap());
    out
}

fn bench_one<T>(c: &mut Criterion, label: &str, wire: &str, value: &T)
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let mut g = c.benchmark_group(format!("codec_decode/{label}"));
    g.throughput(Throughput::Elements(1));
    let cpt = compact(wire, value);
    let mp = map(wire, value);
    let plain_array = rmp_serde::to_vec(value).unwrap();
    let plain_map = rmp_serde::to_vec_named(value).unwrap();
    println!("{label}: compact {} B, map {} B", cpt.len(), mp.len());
    for (name, codec, payload) in [("compact", CodecKind::Compact, &cpt), ("map", CodecKind::Map, &mp)] {
        g.bench_function(format!("envelope_{name}"), |b| {
            b.iter(|| {
                std::hint::black_box(codec.decode_envelope(std::hint::black_box(payload)).unwrap())
                    .wire
                    .len()
            })
        });
        g.bench_function(format!("full_{name}"), |b| {
            b.iter(|| {
                let env = codec.decode_envelope(std::hint::black_box(payload)).unwrap();
                std::hint::black_box(codec.decode_body::<T>(&env).unwrap())
            })
        });
    }
    g.bench_function("rmp_serde_from_slice_array", |b| {
        b.iter(|| std::hint::black_box(rmp_serde::from_slice::<T>(std::hint::black_box(&plain_array)).unwrap()))
    });
    g.bench_function("rmp_serde_from_slice_map", |b| {
        b.iter(|| std::hint::black_box(rmp_serde::from_slice::<T>(std::hint::black_box(&plain_map)).unwrap()))
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let echo = EchoRequest { text: "hello".into() };
    assert_eq!(
        compact("am.capmsg.EchoRequest", &echo),
        hex_literal("92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6f")
    );
    bench_one(c, "echo", "am.capmsg.EchoRequest", &echo);
    bench_one(c, "1k", "am.capmsg.Big", &big());
}

fn hex_literal(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

criterion_group!(benches, decode);
criterion_main!(benches);
