//! The kernel's floor per TCP segment on this machine: the sender's CPU time
//! for one small segment over loopback, the peer draining it on another core.
//!
//! On loopback the sender's `send(2)` also runs the receiver's TCP input path
//! (the softirq runs in the sending thread's context), so this is what every
//! packet costs whoever sends it, whatever the I/O interface (readiness,
//! io_uring, busy-poll) — submitting through io_uring still runs the same
//! path on the submitting core. It is the floor under:
//!
//! * a server at 10,000 connections × 1 request in flight (closed loop): each
//!   reply goes to its own socket, so each request costs the server at least
//!   one segment (issue 15's "10k closed" row);
//! * a v3 generator at a few requests per second per connection: a request
//!   and, `ack_delay` (20 ms) later, the ACK of its reply — two segments per
//!   request, since no next request comes within 20 ms for the ACK to ride on
//!   (issue 16, item 4).
//!
//! * `loopback/segment_64B`: CPU time of the sending thread per `send(2)` of
//!   64 bytes (`TCP_NODELAY`, one segment each), from
//!   `getrusage(RUSAGE_THREAD)` (`loadgen::sys::thread_cpu_time`), not wall
//!   time.
//! * `loopback/batch_16x64B`: the same 16 frames in one `send(2)` (one
//!   segment): what a stream with many requests in flight pays instead.
//!
//! `cargo bench -p amring-bench --bench loopback -- --quick`
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use criterion::{criterion_main, BenchmarkGroup, Criterion, Throughput};
use loadgen::sys::thread_cpu_time;

/// Pins the calling thread to `cpu` when the machine has it (best effort).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn bench(c: &mut Criterion) {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let drain = thread::spawn(move || {
        pin(0);
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    if cores > 1 {
        pin(1);
    }
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("TCP_NODELAY");
    let mut sent = 0u64;

    // One `send(2)` of `frames` 64-byte frames per iteration, timed in the
    // sending thread's CPU.
    let mut sends = |g: &mut BenchmarkGroup<'_, _>, name: &str, frames: usize| {
        let buf = vec![0x5au8; frames * 64];
        g.throughput(Throughput::Elements(frames as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = thread_cpu_time();
                for _ in 0..iters {
                    s.write_all(&buf).expect("send");
                }
                sent += iters * buf.len() as u64;
                thread_cpu_time() - t
            })
        });
    };
    let mut g = c.benchmark_group("loopback");
    sends(&mut g, "segment_64B", 1);
    sends(&mut g, "batch_16x64B", 16);
    g.finish();
    drop(s);
    let got = drain.join().expect("drain thread");
    assert_eq!(got, sent, "the peer received every byte sent");
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
