//! End-to-end echo through amring next to a raw glommio TCP echo floor, in the
//! same run: server pinned on core 0, client pinned on core 1. Both servers
//! busy-poll 50 µs before parking (`amring_bench::server_spin`).
//!
//! * `rtt_1x1/{amring,floor}`: one request, one reply, repeated.
//! * `pipelined_64_streams/{amring,floor}`: 64 requests (one per stream) in
//!   flight, then 64 replies; throughput in messages.
//!
//! Ratio = amring median / floor median (target ≤ 1.1 for 1×1). After the
//! criterion groups an interleaved A/B run prints the median per-round
//! ratio, which is steadier on a loaded machine.
//! `cargo bench -p amring-bench --bench e2e -- --quick`
#![allow(missing_docs)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use amring::Client;
use amring_bench::{client_loop, echo_server, server_spin, Echo};
use criterion::{criterion_main, Criterion, Throughput};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

/// Bytes of one amring echo frame: 10-byte header + compact `[name, n]`.
const FRAME: usize = 10 + 1 + 1 + 13 + 9;
const STREAMS: usize = 64;

fn floor_server() -> std::net::SocketAddr {
    let (tx, rx) = mpsc::channel();
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .io_memory(512 * 1024)
        .spin_before_park(server_spin())
        .spawn(move || async move {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let Ok(mut s) = l.accept().await else { return };
                s.set_nodelay(true).unwrap();
                glommio::spawn_local(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        })
        .unwrap();
    rx.recv().unwrap()
}

fn bench(c: &mut Criterion) {
    let handle = echo_server();
    let am_addr = handle.dial_addr();
    let floor_addr = floor_server();

    // amring client: rtt and pipelined jobs share one connection.
    let (am_tx, am_rx) = client_loop(move |irx, dtx| async move {
        let conn = Client::builder().connect(&am_addr).await.unwrap();
        let streams: Vec<_> = (0..STREAMS).map(|_| conn.new_stream().unwrap()).collect();
        while let Ok(job) = irx.recv() {
            let pipelined = job & (1 << 63) != 0;
            let iters = job & !(1 << 63);
            let t = Instant::now();
            for i in 0..iters {
                if pipelined {
                    for s in &streams {
                        s.send(&Echo { n: i }).await.unwrap();
                    }
                    for s in &streams {
                        let _: Echo = s.recv().await.unwrap();
                    }
                } else {
                    let r: Echo = conn.send_recv(&Echo { n: i }).await.unwrap();
                    assert_eq!(r.n, i + 1);
                }
            }
            dtx.send(t.elapsed()).unwrap();
        }
    });
    let (fl_tx, fl_rx) = client_loop(move |irx, dtx| async move {
        let mut s = TcpStream::connect(floor_addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let out = vec![7u8; FRAME * STREAMS];
        let mut inb = vec![0u8; FRAME * STREAMS];
        while let Ok(job) = irx.recv() {
            let pipelined = job & (1 << 63) != 0;
            let iters = job & !(1 << 63);
            let len = if pipelined { FRAME * STREAMS } else { FRAME };
            let t = Instant::now();
            for _ in 0..iters {
                s.write_all(&out[..len]).await.unwrap();
                s.read_exact(&mut inb[..len]).await.unwrap();
            }
            dtx.send(t.elapsed()).unwrap();
        }
    });

    let mut g = c.benchmark_group("rtt_1x1");
    g.throughput(Throughput::Elements(1));
    g.bench_function("amring", |b| {
        b.iter_custom(|iters| {
            am_tx.send(iters).unwrap();
            am_rx.recv().unwrap()
        })
    });
    g.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            fl_tx.send(iters).unwrap();
            fl_rx.recv().unwrap()
        })
    });
    g.finish();
    let mut g = c.benchmark_group("pipelined_64_streams");
    g.throughput(Throughput::Elements(STREAMS as u64));
    g.bench_function("amring", |b| {
        b.iter_custom(|iters| {
            am_tx.send(iters | (1 << 63)).unwrap();
            am_rx.recv().unwrap()
        })
    });
    g.bench_function("floor", |b| {
        b.iter_custom(|iters| {
            fl_tx.send(iters | (1 << 63)).unwrap();
            fl_rx.recv().unwrap()
        })
    });
    g.finish();

    // Interleaved A/B: amring and floor alternate in short rounds, so both
    // see the same machine load (the shared machine is noisy); the median of
    // the per-round ratios is printed.
    let rounds = 15;
    for (name, flag, iters) in [("rtt_1x1", 0u64, 2_000u64), ("pipelined_64_streams", 1 << 63, 100)] {
        let mut ratios = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            am_tx.send(iters | flag).unwrap();
            let am = am_rx.recv().unwrap();
            fl_tx.send(iters | flag).unwrap();
            let fl = fl_rx.recv().unwrap();
            ratios.push(am.as_secs_f64() / fl.as_secs_f64());
        }
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "{name}: amring/floor ratio, median of {rounds} interleaved rounds: {:.3} (min {:.3}, max {:.3})",
            ratios[rounds / 2],
            ratios[0],
            ratios[rounds - 1]
        );
    }
    drop(am_tx);
    drop(fl_tx);
    handle.shutdown(Duration::from_millis(200));
    let _ = handle.join();
}

criterion::criterion_group!(benches, bench);
criterion_main!(benches);
