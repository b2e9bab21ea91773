//! Mux routing: 1024 small frames (a compact `am.capmsg.EchoRequest{"hello"}`,
//! 40 B on the v2 wire) spread over 1, 64 or 1024 distinct streams.
//!
//! * `mux_demux/{v2,v3}/N`: the sans-IO demultiplexing of one read buffer
//!   holding the 1024 frames, `Connection::handle_input` until `Ok(None)`
//!   (every `Delivered` counted and checked; v3: seq tracking and the ACK
//!   policy included). A fresh connection and buffer per batch (untimed setup).
//! * `mux_route/N`: the stream-table routing of `engine/src/conn/state.rs`
//!   (envelope decode, stream lookup or creation, inbox push, then the
//!   receiver's pop) of the 1024 delivered frames. The table is crate-private:
//!   this goes through the `bench-internals` hook `amring::bench_internals::bench_router`.
//! * `mux_demux_route/N`: both in a row (v2), the runtime's read path minus
//!   the socket.
//! * `mux_transmit/{v2,v3}/N`: the outgoing side, 1024 replies queued with
//!   `Connection::send` on N streams, then one `poll_transmit` into one buffer
//!   (v3: the peer's ACK for them is fed back so the replay ring stays bounded;
//!   its cost is included).
//!
//! Throughput is `Elements(1024)` (frames): criterion's elem/s is frames/s.
//! There is no baseline here: compare N = 1 / 64 / 1024 (routing cost per
//! frame should not grow with the number of streams) and v2 / v3.
//! `cargo bench -p amring-bench --bench mux -- --quick`
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::Instant;

use amring::codec::{CodecKind, Profile};
use amring_bench::EchoRequest;
use amring_proto::{ConnConfig, Connection, Control, Delivered, FrameEncoder, RecoveryParams, Role, Version};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Frames per batch (the same for every stream count).
const FRAMES: usize = 1024;
const STREAM_COUNTS: [usize; 3] = [1, 64, 1024];

fn conn(role: Role, version: Version, now: Instant) -> Connection {
    let recovery = (version == Version::V3).then(|| RecoveryParams {
        max_replay_bytes: 1 << 30,
        ..RecoveryParams::default()
    });
    Connection::new(
        ConnConfig {
            role,
            version,
            max_frame: u32::MAX,
            recovery,
        },
        now,
    )
}

/// The compact `am.capmsg.EchoRequest{"hello"}` payload.
fn payload() -> Bytes {
    let mut out = BytesMut::new();
    CodecKind::Compact
        .encode(&EchoRequest { text: "hello".into() }, Profile::Interop, &mut out)
        .unwrap();
    out.freeze()
}

/// Stream of frame `i` when `streams` streams share the batch.
fn stream_of(i: usize, streams: usize) -> u32 {
    (i % streams) as u32
}

/// The read buffer: `FRAMES` frames, seq 1.. in v3.
fn wire(version: Version, streams: usize, payload: &[u8]) -> Bytes {
    let enc = FrameEncoder::new(version, u32::MAX);
    let mut out = BytesMut::new();
    for i in 0..FRAMES {
        enc.encode(&mut out, stream_of(i, streams), i as u64 + 1, payload)
            .unwrap();
    }
    out.freeze()
}

fn demux(c: &mut Criterion) {
    let p = payload();
    let mut g = c.benchmark_group("mux_demux");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for (version, name) in [(Version::V2, "v2"), (Version::V3, "v3")] {
        for streams in STREAM_COUNTS {
            let w = wire(version, streams, &p);
            g.bench_with_input(BenchmarkId::new(name, streams), &streams, |b, _| {
                let now = Instant::now();
                b.iter_batched(
                    || (conn(Role::Server, version, now), BytesMut::from(&w[..])),
                    |(mut cn, mut buf)| {
                        let mut n = 0;
                        while let Some(d) = cn.handle_input(now, &mut buf).unwrap() {
                            std::hint::black_box(d.stream_id);
                            n += 1;
                        }
                        assert_eq!(n, FRAMES);
                        (cn, buf)
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn route(c: &mut Criterion) {
    let p = payload();
    let mut g = c.benchmark_group("mux_route");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for streams in STREAM_COUNTS {
        let frames: Vec<Delivered> = (0..FRAMES)
            .map(|i| Delivered {
                stream_id: stream_of(i, streams),
                payload: p.clone(),
            })
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(streams), &streams, |b, _| {
            let mut router = amring::bench_internals::bench_router(CodecKind::Compact);
            let now = Instant::now();
            b.iter(|| assert_eq!(router(&frames, now), FRAMES))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("mux_demux_route");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for streams in STREAM_COUNTS {
        let w = wire(Version::V2, streams, &p);
        g.bench_with_input(BenchmarkId::from_parameter(streams), &streams, |b, _| {
            let mut router = amring::bench_internals::bench_router(CodecKind::Compact);
            let mut cn = conn(Role::Client, Version::V2, Instant::now());
            let mut buf = BytesMut::with_capacity(w.len());
            let mut delivered = Vec::with_capacity(FRAMES);
            let now = Instant::now();
            b.iter(|| {
                buf.extend_from_slice(&w);
                delivered.clear();
                while let Some(d) = cn.handle_input(now, &mut buf).unwrap() {
                    delivered.push(d);
                }
                assert_eq!(router(&delivered, now), FRAMES);
            })
        });
    }
    g.finish();
}

fn transmit(c: &mut Criterion) {
    let p = payload();
    let mut g = c.benchmark_group("mux_transmit");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for (version, name) in [(Version::V2, "v2"), (Version::V3, "v3")] {
        let frame_len = p.len() + if version == Version::V3 { 18 } else { 10 };
        for streams in STREAM_COUNTS {
            g.bench_with_input(BenchmarkId::new(name, streams), &streams, |b, _| {
                let now = Instant::now();
                let mut cn = conn(Role::Server, version, now);
                let mut out = BytesMut::with_capacity(FRAMES * frame_len);
                let mut ack = BytesMut::new();
                b.iter(|| {
                    for i in 0..FRAMES {
                        cn.send(now, stream_of(i, streams), |b: &mut BytesMut| {
                            b.extend_from_slice(&p);
                            Ok::<(), Infallible>(())
                        })
                        .unwrap();
                    }
                    out.clear();
                    let n = cn.poll_transmit(now, &mut out);
                    assert_eq!(n, FRAMES * frame_len);
                    if version == Version::V3 {
                        Control::Ack(cn.last_sent_seq()).write_frame(&mut ack);
                        assert!(cn.handle_input(now, &mut ack).unwrap().is_none());
                    }
                    n
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, demux, route, transmit);
criterion_main!(benches);
