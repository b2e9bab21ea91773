//! Codec encode cost: amring's compact and map encoders against
//! `rmp_serde` writing the same envelope shape (the baseline).
//!
//! Run: `cargo bench -p amring-bench --bench codec -- --quick`
#![allow(missing_docs)]

use amring::codec::{CodecKind, Profile};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Serialize;

#[derive(Serialize)]
struct EchoRequest {
    text: String,
}
amring::impl_message!(EchoRequest, package = "capmsg");

/// About 1 KiB on the wire: a 1 KiB string and a few integers.
#[derive(Serialize)]
struct Big {
    id: i64,
    seq: u32,
    flags: u16,
    #[serde(with = "amring::codec::attrs::smallest")]
    count: i64,
    text: String,
}
amring::impl_message!(Big, package = "capmsg");

/// Baseline map envelope `{"type": .., "data": {..}}` for `rmp_serde::encode::write_named`.
#[derive(Serialize)]
struct MapEnv<'a, T> {
    r#type: &'a str,
    data: &'a T,
}

fn encode(c: &mut Criterion) {
    let echo = EchoRequest { text: "hello".into() };
    let big = Big {
        id: 42,
        seq: 7,
        flags: 3,
        count: 1000,
        text: "x".repeat(1024),
    };
    let mut g = c.benchmark_group("codec_encode");
    g.throughput(Throughput::Elements(1));

    for (name, kind) in [("compact", CodecKind::Compact), ("map", CodecKind::Map)] {
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function(BenchmarkId::new(format!("amring_{name}"), "echo"), |b| {
            b.iter(|| {
                out.clear();
                kind.encode(std::hint::black_box(&echo), Profile::Interop, &mut out)
                    .unwrap();
                std::hint::black_box(out.len())
            })
        });
        g.bench_function(BenchmarkId::new(format!("amring_{name}"), "1k"), |b| {
            b.iter(|| {
                out.clear();
                kind.encode(std::hint::black_box(&big), Profile::Interop, &mut out)
                    .unwrap();
                std::hint::black_box(out.len())
            })
        });
    }

    // Baselines: rmp_serde into a reused Vec (same bytes modulo integer widths).
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    g.bench_function(BenchmarkId::new("rmp_serde_compact", "echo"), |b| {
        b.iter(|| {
            buf.clear();
            let e = std::hint::black_box(&echo);
            rmp_serde::encode::write(&mut buf, &("am.capmsg.EchoRequest", &e.text)).unwrap();
            std::hint::black_box(buf.len())
        })
    });
    g.bench_function(BenchmarkId::new("rmp_serde_compact", "1k"), |b| {
        b.iter(|| {
            buf.clear();
            let m = std::hint::black_box(&big);
            rmp_serde::encode::write(&mut buf, &("am.capmsg.Big", m.id, m.seq, m.flags, m.count, &m.text)).unwrap();
            std::hint::black_box(buf.len())
        })
    });
    g.bench_function(BenchmarkId::new("rmp_serde_map", "echo"), |b| {
        b.iter(|| {
            buf.clear();
            let env = MapEnv {
                r#type: "am.capmsg.EchoRequest",
                data: std::hint::black_box(&echo),
            };
            rmp_serde::encode::write_named(&mut buf, &env).unwrap();
            std::hint::black_box(buf.len())
        })
    });
    g.bench_function(BenchmarkId::new("rmp_serde_map", "1k"), |b| {
        b.iter(|| {
            buf.clear();
            let env = MapEnv {
                r#type: "am.capmsg.Big",
                data: std::hint::black_box(&big),
            };
            rmp_serde::encode::write_named(&mut buf, &env).unwrap();
            std::hint::black_box(buf.len())
        })
    });
    g.finish();
}

// Decode benches (envelope-only and full, both codecs, next to
// `rmp_serde::from_slice`) live in `codec_decode.rs`.

criterion_group!(benches, encode);
criterion_main!(benches);
