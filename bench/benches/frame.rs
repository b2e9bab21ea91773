//! Frame encode/decode cost, 64 frames per batch (`Elements(64)`), v2 and v3,
//! 32 B and 1 KiB payloads.
//!
//! Run: `cargo bench -p amring-bench --bench frame -- --quick`
#![allow(missing_docs)]

use amring_proto::{FrameDecoder, FrameEncoder, Version};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for &(version, name) in &[(Version::V2, "v2"), (Version::V3, "v3")] {
        for &size in &[32usize, 1024] {
            let payload = vec![7u8; size];
            let enc = FrameEncoder::new(version, u32::MAX);
            g.throughput(Throughput::Elements(64));
            g.bench_with_input(BenchmarkId::new(format!("encode64_{name}"), size), &size, |b, _| {
                let mut out = BytesMut::with_capacity(64 * (size + 18));
                b.iter(|| {
                    out.clear();
                    for i in 0..64u32 {
                        enc.encode(&mut out, i, u64::from(i), &payload).unwrap();
                    }
                    std::hint::black_box(out.len())
                })
            });
            let mut wire = BytesMut::new();
            for i in 0..64u32 {
                enc.encode(&mut wire, i, u64::from(i) + 1, &payload).unwrap();
            }
            let wire = wire.freeze();
            g.bench_with_input(BenchmarkId::new(format!("decode64_{name}"), size), &size, |b, _| {
                let mut dec = FrameDecoder::new(version, u32::MAX);
                let mut buf = BytesMut::with_capacity(wire.len());
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&wire);
                    let mut n = 0;
                    while let Some(f) = dec.decode(&mut buf).unwrap() {
                        n += f.payload.len();
                    }
                    std::hint::black_box(n)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
