//! v3 (recovery) echo throughput next to v2 in the same run: one server
//! (recovery enabled, so it speaks both) pinned on core 0, two clients on
//! core 1, each with 64 streams pipelined (as in `e2e.rs`).
//!
//! Ratio = v2 median / v3 median time per batch (target: v3 ≥ 0.9 × v2 throughput).
//! `cargo bench -p amring-bench --bench v3 -- --quick`
//!
//! On the shared 2-core dev box (load ≈ 6) single runs swing by 2×; compare
//! medians of several runs. Before the single re-armed ACK timer and the
//! lone-ACK hold-back: v3/v2 throughput ≈ 0.52 (3 runs); after: ≈ 0.96
//! (ratio of medians over 6 runs, per-run ratios 0.52–1.6).
#![allow(missing_docs)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use amring::{Client, ClientRecoveryOptions, Server, Shards, StreamContext};
use amring_bench::{client_loop, Echo};
use amring_proto::attach::RecoveryOptions;
use criterion::{criterion_main, Criterion, Throughput};

const STREAMS: usize = 64;

/// A client executor (see [`client_loop`]) running pipelined batches on request.
fn client(addr: String, v3: bool) -> (mpsc::Sender<u64>, mpsc::Receiver<Duration>) {
    client_loop(move |irx, dtx| async move {
        let mut b = Client::builder();
        if v3 {
            b = b.recovery(ClientRecoveryOptions::default());
        }
        let conn = b.connect(&addr).await.unwrap();
        assert_eq!(conn.debug_state().protocol, if v3 { 3 } else { 2 });
        let streams: Vec<_> = (0..STREAMS).map(|_| conn.new_stream().unwrap()).collect();
        while let Ok(iters) = irx.recv() {
            let t = Instant::now();
            for i in 0..iters {
                for s in &streams {
                    s.send(&Echo { n: i }).await.unwrap();
                }
                for s in &streams {
                    let r: Echo = s.recv().await.unwrap();
                    debug_assert_eq!(r.n, i + 1);
                }
            }
            dtx.send(t.elapsed()).unwrap();
        }
    })
}

fn bench(c: &mut Criterion) {
    let handle = Server::builder()
        .shards(Shards::Cores(vec![0]))
        .io_memory(512 * 1024)
        .recovery(Some(RecoveryOptions::default()))
        .handler(|_ctx: StreamContext, e: Echo| async move { Ok::<_, String>(Echo { n: e.n + 1 }) })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = handle.dial_addr();
    let (v2_tx, v2_rx) = client(addr.clone(), false);
    let (v3_tx, v3_rx) = client(addr, true);
    let mut g = c.benchmark_group("pipelined_64_streams_v2_v3");
    g.throughput(Throughput::Elements(STREAMS as u64));
    g.bench_function("v2", |b| {
        b.iter_custom(|iters| {
            v2_tx.send(iters).unwrap();
            v2_rx.recv().unwrap()
        })
    });
    g.bench_function("v3", |b| {
        b.iter_custom(|iters| {
            v3_tx.send(iters).unwrap();
            v3_rx.recv().unwrap()
        })
    });
    g.finish();
    drop(v2_tx);
    drop(v3_tx);
    handle.shutdown(Duration::from_millis(200));
    let _ = handle.join();
}

criterion::criterion_group!(benches, bench);
criterion_main!(benches);
