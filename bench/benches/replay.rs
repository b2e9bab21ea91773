//! v3 recovery costs: send into the replay ring (v3) vs a plain v2 send,
//! trimming 64 frames with one ACK, and replaying N frames after a resume.
//! Throughput: `Elements` = frames sent, trimmed or replayed.
//!
//! Run: `cargo bench -p amring-bench --bench replay -- --quick`
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Instant;

use amring_proto::{ConnConfig, Connection, Control, RecoveryParams, Role, Version};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn conn(version: Version, now: Instant) -> Connection {
    let recovery = (version == Version::V3).then(|| RecoveryParams {
        max_replay_bytes: 1 << 30,
        ..RecoveryParams::default()
    });
    Connection::new(
        ConnConfig {
            role: Role::Client,
            version,
            max_frame: u32::MAX,
            recovery,
        },
        now,
    )
}

fn payload(size: usize) -> impl Fn(&mut BytesMut) -> Result<(), Infallible> {
    move |b: &mut BytesMut| {
        b.extend_from_slice(&[7u8; 1024][..size]);
        Ok(())
    }
}

/// An inbound ACK frame for `seq`.
fn ack(seq: u64) -> BytesMut {
    let mut b = BytesMut::new();
    Control::Ack(seq).write_frame(&mut b);
    b
}

fn send64(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_send64");
    g.throughput(Throughput::Elements(64));
    for &size in &[32usize, 1024] {
        for (version, name) in [(Version::V2, "v2"), (Version::V3, "v3")] {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                let now = Instant::now();
                let mut cn = conn(version, now);
                let mut out = BytesMut::with_capacity(64 * (size + 18));
                b.iter(|| {
                    for _ in 0..64 {
                        cn.send(now, 1, payload(size)).unwrap();
                    }
                    out.clear();
                    let n = cn.poll_transmit(now, &mut out);
                    if version == Version::V3 {
                        // Keep the ring bounded: ACK what was just sent.
                        let mut a = ack(cn.last_sent_seq());
                        let _ = cn.handle_input(now, &mut a);
                    }
                    n
                })
            });
        }
    }
    g.finish();
}

fn ack_trim64(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_ack_trim64");
    g.throughput(Throughput::Elements(64));
    g.bench_function("v3", |b| {
        let now = Instant::now();
        let mut cn = conn(Version::V3, now);
        let mut out = BytesMut::new();
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..64 {
                    cn.send(now, 1, payload(32)).unwrap();
                }
                out.clear();
                cn.poll_transmit(now, &mut out);
                let mut a = ack(cn.last_sent_seq());
                let t = Instant::now();
                std::hint::black_box(cn.handle_input(now, &mut a).unwrap());
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn replay_after_resume(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_resume");
    for &n in &[64usize, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let now = Instant::now();
            let mut cn = conn(Version::V3, now);
            for _ in 0..n {
                cn.send(now, 1, payload(128)).unwrap();
            }
            let mut out = BytesMut::with_capacity(n * 146);
            b.iter(|| {
                cn.detach(now);
                cn.attach(now, 0).unwrap();
                out.clear();
                cn.poll_transmit(now, &mut out)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, send64, ack_trim64, replay_after_resume);
criterion_main!(benches);
