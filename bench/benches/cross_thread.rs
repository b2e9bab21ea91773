//! The cost of calling amring from another thread (`ClientThread` /
//! `SharedConnection`) next to the in-shard call, in the same run, against
//! one amring echo server pinned on core 0.
//!
//! * `cross_thread_rtt/in_shard`: `Connection::send_recv` from a glommio
//!   client executor (pinned on core 1), one request in flight.
//! * `cross_thread_rtt/from_thread`: `SharedConnection::send_recv_blocking`
//!   from the bench thread; the connection lives on an amring client thread,
//!   so each call adds two channel hand-offs and two thread wake-ups.
//!
//! Ratio = from_thread median / in_shard median; after the criterion groups
//! an interleaved A/B prints the median per-round ratio.
//! `cargo bench -p amring-bench --bench cross_thread -- --quick`
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use amring::{Client, ClientThread};
use amring_bench::{client_loop, echo_server, Echo};
use criterion::{criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let handle = echo_server();
    let addr = handle.dial_addr();
    let a2 = addr.clone();
    let (tx, rx) = client_loop(move |irx, dtx| async move {
        let conn = Client::builder().connect(&a2).await.unwrap();
        while let Ok(iters) = irx.recv() {
            let t = Instant::now();
            for i in 0..iters {
                let r: Echo = conn.send_recv(&Echo { n: i }).await.unwrap();
                assert_eq!(r.n, i + 1);
            }
            dtx.send(t.elapsed()).unwrap();
        }
    });
    let remote = ClientThread::start().unwrap();
    let shared = remote.connect_blocking(Client::builder(), &addr).unwrap();
    let from_thread = |iters: u64| {
        let t = Instant::now();
        for i in 0..iters {
            let r: Echo = shared.send_recv_blocking(Echo { n: i }).unwrap();
            assert_eq!(r.n, i + 1);
        }
        t.elapsed()
    };
    let in_shard = |iters: u64| {
        tx.send(iters).unwrap();
        rx.recv().unwrap()
    };

    let mut g = c.benchmark_group("cross_thread_rtt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("in_shard", |b| b.iter_custom(in_shard));
    g.bench_function("from_thread", |b| b.iter_custom(from_thread));
    g.finish();

    // Interleaved A/B: rounds of 2,000 calls each way, median of the ratios.
    let mut ratios = Vec::new();
    for _ in 0..15 {
        let a = in_shard(2_000);
        let b = from_thread(2_000);
        ratios.push(b.as_secs_f64() / a.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / 2_000.0;
    println!(
        "cross_thread A/B: from_thread / in_shard median ratio {:.2} (min {:.2}, max {:.2}, 15 rounds); last round {:.1} µs vs {:.1} µs per call",
        ratios[7],
        ratios[0],
        ratios[14],
        per(from_thread(2_000)),
        per(in_shard(2_000)),
    );
    drop(shared);
    handle.shutdown(Duration::from_millis(200));
    handle.join().unwrap();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
