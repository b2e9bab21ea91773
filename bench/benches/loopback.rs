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
//!
//! With `AMRING_LOOPBACK_JSON=PATH` set the binary skips criterion, measures
//! the same two figures itself and writes them to PATH as JSON (schema
//! `amring-kernel-floor/1`, µs of sender CPU per `send(2)`; see
//! [`emit_json`]). `scripts/compare-go.sh` runs it this way, with the sender
//! on core 0 (the servers' core) and the drainer on core 1 (loadgen's). The
//! cores come from `AMRING_LOOPBACK_CPUS=SENDER,DRAINER` (JSON mode default
//! `0,1`; the criterion mode keeps the sender on 1 and the drainer on 0).
//! The JSON mode also drops samples whose sends the kernel coalesced into
//! fewer segments, and runs the drainer in `SCHED_FIFO` where allowed
//! (`AMRING_LOOPBACK_NO_RT` set: not), see [`floor_figure`]. The criterion
//! mode does neither: on a busy machine its figures can fall to the cost of
//! a copy (≈ 0.9 µs instead of ≈ 4.5 µs seen here).
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput};
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

/// A loopback connection: the connected sender (`TCP_NODELAY`) and the
/// thread draining the peer (returns the bytes it read; `read` counts them
/// as it goes).
struct Pair {
    s: TcpStream,
    drain: JoinHandle<u64>,
    read: Arc<AtomicU64>,
    sent: u64,
    /// Whether the drainer runs in `SCHED_FIFO`.
    drain_rt: bool,
}

/// Puts the calling thread in `SCHED_FIFO` at priority 1; false where that
/// is refused (no `CAP_SYS_NICE`).
fn realtime() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain syscall on the calling thread with a valid sched_param.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// Connects over loopback, the drainer pinned to `drain_cpu`, the calling
/// (sending) thread to `send_cpu` — each only when the machine has that many
/// cores; with `rt` the drainer asks for `SCHED_FIFO` ([`realtime`]; the
/// answer in `Pair::drain_rt`).
fn pair(send_cpu: usize, drain_cpu: usize, rt: bool) -> Pair {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let read = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&read);
    let (rt_tx, rt_rx) = std::sync::mpsc::channel();
    let drain = thread::spawn(move || {
        if drain_cpu < cores {
            pin(drain_cpu);
        }
        let _ = rt_tx.send(rt && realtime());
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            counter.store(total, Ordering::Release);
        }
        total
    });
    if send_cpu < cores {
        pin(send_cpu);
    }
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("TCP_NODELAY");
    let drain_rt = rt_rx.recv().unwrap_or(false);
    Pair {
        s,
        drain,
        read,
        sent: 0,
        drain_rt,
    }
}

impl Pair {
    /// `iters` sends of `buf`; the sending thread's CPU time for them.
    fn sends(&mut self, buf: &[u8], iters: u64) -> Duration {
        let t = thread_cpu_time();
        for _ in 0..iters {
            self.s.write_all(buf).expect("send");
        }
        self.sent += iters * buf.len() as u64;
        thread_cpu_time() - t
    }

    /// Waits (≤ 1 s) until the drainer has read every byte sent, so that the
    /// next sends find an empty receive queue and an open window.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.read.load(Ordering::Acquire) < self.sent && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Segments this socket has sent (`TCP_INFO` `tcpi_segs_out`; the sender
    /// receives no data, so these are its data segments), None where the
    /// kernel does not say.
    fn segs_out(&self) -> Option<u32> {
        // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes of it.
        unsafe {
            let mut ti: libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let rc = libc::getsockopt(
                self.s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut ti as *mut libc::tcp_info).cast(),
                &mut len,
            );
            let end = std::mem::offset_of!(libc::tcp_info, tcpi_segs_out) + 4;
            (rc == 0 && len as usize >= end).then_some(ti.tcpi_segs_out)
        }
    }

    fn close(self) {
        drop(self.s);
        let got = self.drain.join().expect("drain thread");
        assert_eq!(got, self.sent, "the peer received every byte sent");
    }
}

fn bench(c: &mut Criterion) {
    let mut p = pair(1, 0, false);
    // One `send(2)` of `frames` 64-byte frames per iteration, timed in the
    // sending thread's CPU.
    let mut sends = |g: &mut BenchmarkGroup<'_, _>, name: &str, frames: usize| {
        let buf = vec![0x5au8; frames * 64];
        g.throughput(Throughput::Elements(frames as u64));
        g.bench_function(name, |b| b.iter_custom(|iters| p.sends(&buf, iters)));
    };
    let mut g = c.benchmark_group("loopback");
    sends(&mut g, "segment_64B", 1);
    sends(&mut g, "batch_16x64B", 16);
    g.finish();
    p.close();
}

/// Samples kept per figure in the JSON mode.
const SAMPLES: usize = 15;
/// Samples tried per figure: at least this many, then until [`SAMPLES`] are
/// kept or [`TRY_FOR`] has passed (coalesced ones are dropped).
const MIN_TRIES: usize = 3 * SAMPLES;
/// How long a figure keeps trying for clean samples.
const TRY_FOR: Duration = Duration::from_secs(8);
/// A sample counts when at least this many segments left per send.
const MIN_SEGS_PER_SEND: f64 = 0.9;

/// One figure of the JSON mode.
struct Figure {
    /// µs of sender CPU per send over the kept samples (sorted).
    per_send_us: Vec<f64>,
    /// Segments per send of the kept samples (None: no `TCP_INFO`).
    segs_per_send: Vec<f64>,
    /// Samples dropped because the sends were coalesced into fewer segments.
    coalesced: usize,
    iters: u64,
}

impl Figure {
    fn median(&self) -> Option<f64> {
        self.per_send_us.get(self.per_send_us.len() / 2).copied()
    }

    fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.4}"));
        let mut segs = self.segs_per_send.clone();
        segs.sort_by(f64::total_cmp);
        format!(
            "{{\"median\": {}, \"min\": {}, \"max\": {}, \"samples_kept\": {}, \"samples_coalesced\": {}, \
             \"sends_per_sample\": {}, \"segments_per_send\": {}}}",
            opt(self.median()),
            opt(self.per_send_us.first().copied()),
            opt(self.per_send_us.last().copied()),
            self.per_send_us.len(),
            self.coalesced,
            self.iters,
            opt(segs.get(segs.len() / 2).copied()),
        )
    }
}

/// µs of sender CPU per send of `frames` 64-byte frames: up to [`SAMPLES`]
/// samples of ≈ 50 ms of CPU each (1,000-50,000 sends), after ≈ 200 ms of
/// warm-up, each started with the drainer caught up ([`MIN_TRIES`] tries,
/// more for up to [`TRY_FOR`] while samples are dropped).
///
/// When the drainer lags (it is descheduled, or slow to wake), the ACKs that
/// its reads release come late, the sender runs into its congestion window
/// and queues the sends; the queued data then leaves in a few large
/// segments, transmitted in the drainer's context when its ACK arrives, and
/// each send is a copy into the socket (≈ 0.8 µs instead of ≈ 4.5 µs here).
/// Such samples (< [`MIN_SEGS_PER_SEND`] segments per send by
/// `tcpi_segs_out`) do not measure the cost of a packet and are dropped.
/// On a machine whose other work keeps the drainer's core busy every sample
/// can coalesce, hence the drainer in `SCHED_FIFO` (it runs ≈ 1-2 µs per
/// read, only while data arrives; `drain_sched` in the JSON says whether it
/// got it). It then wakes at once on every send, which the sender pays for as
/// a real peer blocked in a read would make it pay. (Pacing the sender to a
/// bounded backlog instead made it worse: a drainer that sleeps acknowledges
/// later still.)
fn floor_figure(p: &mut Pair, frames: usize) -> Figure {
    let buf = vec![0x5au8; frames * 64];
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        p.sends(&buf, 1000);
    }
    // Calibrate: sends per ≈ 50 ms of CPU.
    p.settle();
    let probe = 2000;
    let cpu = p.sends(&buf, probe).as_secs_f64().max(1e-6);
    let iters = ((0.05 / cpu) * probe as f64).clamp(1000.0, 50_000.0) as u64;
    let mut f = Figure {
        per_send_us: Vec::new(),
        segs_per_send: Vec::new(),
        coalesced: 0,
        iters,
    };
    let t0 = Instant::now();
    for tries in 0.. {
        if f.per_send_us.len() == SAMPLES || (tries >= MIN_TRIES && t0.elapsed() > TRY_FOR) {
            break;
        }
        p.settle();
        let s0 = p.segs_out();
        let us = p.sends(&buf, iters).as_secs_f64() * 1e6 / iters as f64;
        match s0
            .zip(p.segs_out())
            .map(|(a, b)| b.wrapping_sub(a) as f64 / iters as f64)
        {
            Some(segs) if segs < MIN_SEGS_PER_SEND => f.coalesced += 1,
            segs => {
                f.per_send_us.push(us);
                f.segs_per_send.extend(segs);
            }
        }
    }
    f.per_send_us.sort_by(f64::total_cmp);
    f
}

/// `AMRING_LOOPBACK_JSON=PATH`: both figures, without criterion, to PATH (and
/// stdout): `segment_64B_us` and `batch_16x64B_us` {median, min, max over
/// the kept samples, samples_kept, samples_coalesced, sends_per_sample,
/// segments_per_send (median)}, `per_packet_us` (= the segment median) and
/// `per_frame_16_us` (= the batch median / 16), null when no sample was kept;
/// sender_cpu, drain_cpu, cores, pinned, drain_sched ("fifo" / "other").
fn emit_json(path: &str) {
    let cpus = std::env::var("AMRING_LOOPBACK_CPUS").unwrap_or_else(|_| "0,1".into());
    let (send_cpu, drain_cpu): (usize, usize) = cpus
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .expect("AMRING_LOOPBACK_CPUS=SENDER,DRAINER (two core numbers)");
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut p = pair(send_cpu, drain_cpu, std::env::var_os("AMRING_LOOPBACK_NO_RT").is_none());
    let seg = floor_figure(&mut p, 1);
    let bat = floor_figure(&mut p, 16);
    let drain_sched = if p.drain_rt { "fifo" } else { "other" };
    p.close();
    let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.4}"));
    let json = format!(
        "{{\"schema\": \"amring-kernel-floor/1\", \"unit\": \"us of sender CPU per send(2)\", \
         \"source\": \"bench/benches/loopback.rs (AMRING_LOOPBACK_JSON)\", \"samples\": {SAMPLES}, \
         \"sender_cpu\": {send_cpu}, \"drain_cpu\": {drain_cpu}, \"cores\": {cores}, \"pinned\": {pinned}, \
         \"drain_sched\": \"{drain_sched}\", \"segment_64B_us\": {}, \"batch_16x64B_us\": {}, \"per_packet_us\": {}, \"per_frame_16_us\": {}}}\n",
        seg.json(),
        bat.json(),
        opt(seg.median()),
        opt(bat.median().map(|m| m / 16.0)),
        pinned = send_cpu < cores && drain_cpu < cores,
    );
    std::fs::write(path, &json).expect("write AMRING_LOOPBACK_JSON");
    print!("{json}");
}

fn main() {
    if let Ok(path) = std::env::var("AMRING_LOOPBACK_JSON") {
        emit_json(&path);
        return;
    }
    // What criterion_main! expands to.
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    Criterion::default().configure_from_args().final_summary();
}
