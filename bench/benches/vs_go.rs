//! End-to-end amring vs the Go reference in the same run: the same client
//! workload (amring client, in process, pinned on core 1) against an amring
//! server and against the Go peer server (`tests/go-peer`), both pinned on
//! core 0 (amring: one shard on core 0; Go: `taskset -c 0`, `GOMAXPROCS=1`),
//! each in its own process (amring: this binary re-executed as a server). The
//! amring server busy-polls 50 µs before parking (`AMRING_BENCH_SPIN_US`),
//! as the Go runtime spins before it parks; with 0 it parks at once and a
//! 1×1 round trip pays a wake-up (measured: 1×1 amring/go 0.46 with the spin,
//! 1.15 without; pipelined unaffected).
//! Both servers run with recovery enabled, so one server serves v2 and v3.
//!
//! Workload: `am.capmsg.EchoRequest{text}` → `am.capmsg.EchoReply{text}`; the
//! text carries a per-request counter and every reply is checked with
//! `assert_eq!`, so a server that stops being compatible fails the bench.
//!
//! * `vs_go_{v2,v3}_1x1/{amring,go}`: one request, one reply, repeated;
//!   `Elements(1)`.
//! * `vs_go_{v2,v3}_pipelined_64/{amring,go}`: 64 streams, one request in
//!   flight on each, then the 64 replies; `Elements(64)`.
//!
//! Ratio = amring median / go median (time per batch: < 1 means amring is
//! faster). After the criterion groups an interleaved A/B run prints, per
//! group, the median of 15 per-round ratios ("amring/go time ratio"), which
//! is steadier on a loaded machine than the ratio of two criterion medians
//! (at most 15 rounds, fewer when a group's rounds exceed 20 s). Last, per
//! connection, the number of batches slower than 5 ms ("stalls").
//!
//! Go peer: wherever Go is installed, `tests/go-peer` is built with `go build`
//! (`amring_tests::gopeer`, through `../shared/goproxy` when that exists);
//! `AMRING_GO_PEER=/path/to/go-peer` overrides the build. Without Go the bench
//! runs the amring functions only and prints
//! `vs_go: Go peer absent (<reason>): amring only`; `AMRING_REQUIRE_GO=1`
//! turns that into a failure.
//! `cargo bench -p amring-bench --bench vs_go -- --quick`
#![allow(missing_docs)]

use std::cell::Cell;
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use amring::{Client, ClientRecoveryOptions};
use amring_bench::{client_loop, server_spin, EchoReply, EchoRequest};
use amring_tests::gopeer::{go_peer, go_peer_status, go_required, settle, GoServer};
use std::io::{Read, Write};

use criterion::{Criterion, Throughput};

const STREAMS: usize = 64;
/// Job flags (the low bits are the iteration count).
const PIPELINED: u64 = 1 << 63;
const GO: u64 = 1 << 62;
const V3: u64 = 1 << 61;
const ITERS: u64 = V3 - 1;
/// Job: print the stall counts.
const REPORT: u64 = u64::MAX;
/// A batch slower than this counts as a stall (reported at the end).
const STALL: Duration = Duration::from_millis(5);
/// Wall-clock budget of one group's interleaved A/B rounds.
const AB_BUDGET: Duration = Duration::from_secs(20);

/// Waits for the next job without blocking the executor (so idle v3
/// connections keep answering heartbeats and ACK timers); `None` when the
/// bench is done.
async fn next_job(irx: &mpsc::Receiver<u64>) -> Option<u64> {
    loop {
        match irx.try_recv() {
            Ok(j) => return Some(j),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => glommio::timer::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// One client connection with its 64 streams.
struct Target {
    name: String,
    /// Batches run, and those slower than [`STALL`].
    batches: Cell<u64>,
    stalls: Cell<u64>,
    conn: amring::Connection,
    streams: Vec<amring::Stream>,
}

impl Target {
    async fn connect(server: &str, addr: &str, v3: bool) -> Target {
        let mut b = Client::builder();
        if v3 {
            b = b.recovery(ClientRecoveryOptions::default());
        }
        let conn = b
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr} (v3 {v3}): {e}"));
        assert_eq!(conn.debug_state().protocol, if v3 { 3 } else { 2 }, "{addr}");
        let streams = (0..STREAMS).map(|_| conn.new_stream().unwrap()).collect();
        let name = format!("{server} v{} ({addr})", if v3 { 3 } else { 2 });
        Target {
            name,
            batches: Cell::new(0),
            stalls: Cell::new(0),
            conn,
            streams,
        }
    }

    /// Panics with the connection's state: a failed request fails the bench.
    fn fail(&self, what: &str, e: amring::Error) -> ! {
        let d = self.conn.debug_state();
        panic!(
            "{}: {what} failed: {e}; closed {}, last failure {:?}, recovery {:?}",
            self.name, d.closed, d.last_failure, d.recovery
        )
    }

    /// Runs `iters` batches; `ctr` makes every request text unique.
    async fn run(&self, iters: u64, pipelined: bool, ctr: &mut u64, texts: &mut Vec<String>) -> Duration {
        let t = Instant::now();
        let mut last = t;
        for _ in 0..iters {
            if pipelined {
                texts.clear();
                for s in &self.streams {
                    *ctr += 1;
                    let req = EchoRequest {
                        text: format!("r{ctr}"),
                    };
                    if let Err(e) = s.send(&req).await {
                        self.fail("send", e);
                    }
                    texts.push(req.text);
                }
                for (s, want) in self.streams.iter().zip(texts.iter()) {
                    let r: EchoReply = s.recv().await.unwrap_or_else(|e| self.fail("recv", e));
                    assert_eq!(&r.text, want);
                }
            } else {
                *ctr += 1;
                let req = EchoRequest {
                    text: format!("r{ctr}"),
                };
                let r: EchoReply = self
                    .conn
                    .send_recv(&req)
                    .await
                    .unwrap_or_else(|e| self.fail("send_recv", e));
                assert_eq!(r.text, req.text);
            }
            // One clock read per batch (≥ one round trip): the stall count.
            let now = Instant::now();
            if now - last > STALL {
                self.stalls.set(self.stalls.get() + 1);
            }
            last = now;
        }
        self.batches.set(self.batches.get() + iters);
        t.elapsed()
    }
}

/// The Go server pinned like the amring server, or why there is none.
fn start_go() -> Result<GoServer, String> {
    let Some(peer) = go_peer() else {
        return Err(go_peer_status().err().unwrap_or_default());
    };
    GoServer::start_pinned(&peer, true, Some("0"), Some(1)).map_err(|e| {
        assert!(
            !go_required(),
            "AMRING_REQUIRE_GO=1 but the Go server did not start: {e}"
        );
        e
    })
}

/// Set in the environment of the amring server child (see [`AmringServer`]).
const SERVE_ENV: &str = "AMRING_VS_GO_SERVE";

/// Body of the amring server child: serves on core 0 (the same server as
/// loadgen's embedded one), prints
/// `listening ADDR`, and stops when its stdin closes (the parent exited).
fn serve_child() {
    // loadgen's embedded echo server: one shard on core 0, recovery enabled.
    let handle = loadgen::embedded::start_amring(1, true, server_spin()).expect("amring server child");
    println!("listening {}", handle.dial_addr());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    handle.shutdown(Duration::from_millis(200));
    let _ = handle.join();
}

/// The amring server in its own process (this bench binary re-executed with
/// [`SERVE_ENV`]), like the Go server: a server in the client's process would
/// share its process-wide costs (glommio's `membarrier` before parking
/// interrupts every core running a thread of the process).
struct AmringServer {
    child: std::process::Child,
    addr: String,
}

impl AmringServer {
    fn start() -> AmringServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("bench binary path"))
            .env(SERVE_ENV, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the amring server child");
        let mut line = String::new();
        let out = child.stdout.take().expect("child stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("child address");
        let addr = line
            .strip_prefix("listening ")
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|| panic!("amring server child said {line:?}"));
        AmringServer { child, addr }
    }
}

impl Drop for AmringServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // EOF: the child shuts down
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench(c: &mut Criterion) {
    let server = AmringServer::start();
    let am_addr = server.addr.clone();
    let mut go = match start_go() {
        Ok(g) => Some(g),
        Err(reason) => {
            eprintln!("vs_go: Go peer absent ({reason}): amring only");
            None
        }
    };
    let go_addr = go.as_ref().map(GoServer::dial_addr);

    // One client executor holds every connection and runs one job at a time.
    let (tx, rx) = client_loop(move |irx, dtx| async move {
        let am = [
            Target::connect("amring", &am_addr, false).await,
            Target::connect("amring", &am_addr, true).await,
        ];
        let go = match &go_addr {
            Some(a) => Some([
                Target::connect("go", a, false).await,
                Target::connect("go", a, true).await,
            ]),
            None => None,
        };
        let mut ctr = 0u64;
        let mut texts = Vec::with_capacity(STREAMS);
        while let Some(job) = next_job(&irx).await {
            if job == REPORT {
                for t in am.iter().chain(go.iter().flatten()) {
                    eprintln!(
                        "vs_go: {}: {} of {} batches took > {STALL:?}",
                        t.name,
                        t.stalls.get(),
                        t.batches.get()
                    );
                }
                dtx.send(Duration::ZERO).unwrap();
                continue;
            }
            let set = if job & GO != 0 { go.as_ref().unwrap() } else { &am };
            let target = &set[usize::from(job & V3 != 0)];
            let d = target
                .run(job & ITERS, job & PIPELINED != 0, &mut ctr, &mut texts)
                .await;
            dtx.send(d).unwrap();
        }
    });
    let run = |job: u64| {
        tx.send(job).unwrap();
        rx.recv().expect("client executor failed (see the panic above)")
    };

    let groups = [
        ("vs_go_v2_1x1", 0, 1u64, 500u64),
        ("vs_go_v2_pipelined_64", PIPELINED, STREAMS as u64, 100),
        ("vs_go_v3_1x1", V3, 1, 500),
        ("vs_go_v3_pipelined_64", V3 | PIPELINED, STREAMS as u64, 100),
    ];
    for &(name, flags, elements, _) in &groups {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(elements));
        g.bench_function("amring", |b| b.iter_custom(|iters| run(iters | flags)));
        if go.is_some() {
            g.bench_function("go", |b| b.iter_custom(|iters| run(iters | flags | GO)));
        }
        g.finish();
    }

    // Interleaved A/B: amring and Go alternate in short rounds, so both see
    // the same machine load; the median of the per-round ratios is printed.
    if go.is_some() {
        let rounds = 15;
        for &(name, flags, _, iters) in &groups {
            let start = Instant::now();
            let mut ratios = Vec::with_capacity(rounds);
            // Bounded in rounds and time (a stalling server must not hang the run).
            while ratios.len() < rounds && (ratios.len() < 3 || start.elapsed() < AB_BUDGET) {
                let am = run(iters | flags);
                let g = run(iters | flags | GO);
                ratios.push(am.as_secs_f64() / g.as_secs_f64());
            }
            let rounds = ratios.len();
            ratios.sort_by(f64::total_cmp);
            eprintln!(
                "{name}: amring/go time ratio, median of {rounds} interleaved rounds: {:.3} (min {:.3}, max {:.3})",
                ratios[rounds / 2],
                ratios[0],
                ratios[rounds - 1]
            );
        }
    }

    if let Some(g) = go.as_mut() {
        if let Err(e) = g.check_alive() {
            panic!("the Go server died during the bench: {e}");
        }
        settle();
    }
    run(REPORT);
    drop(tx);
    drop(server);
    drop(go);
}

criterion::criterion_group!(benches, bench);

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve_child();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
