//! Generator workers: one pinned glommio executor per generator core, each
//! with its own connections and its own histogram.
//!
//! A worker runs three phases:
//! 1. **connect**: dial and handshake its share of the connections, paced by
//!    `--connect-rate` and bounded by `--connect-concurrency` in flight;
//! 2. **barrier**: report readiness and wait until every worker is connected
//!    (the run's `t0`, set by the coordinator);
//! 3. **load**: one local task per connection until `t0 + warmup + duration`.
//!
//! One connection task does everything for its connection (no split
//! reader/writer): write the batch of due requests in one call, then wait for
//! whichever comes first of readable bytes, the next intended send time (open
//! loop), the oldest request's timeout, or the end of the run.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::timer::sleep;
use glommio::{LocalExecutorBuilder, Placement};

use amring::codec::CodecRegistry;
use amring::proto::{ClientDone, ClientHandshake, ClientHandshakeConfig, FrameDecoder, FrameEncoder, Version};

use crate::msg::Templates;
use crate::opts::{Options, Target};
use crate::stats::{ErrorKind, WorkerStats};
use crate::transport::{dial, Transport};

/// Live counters of one worker, read by the progress line.
#[derive(Debug, Default)]
pub struct WorkerLive {
    /// Correct replies so far (all phases).
    pub done: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections currently up.
    pub conns_up: AtomicU64,
    /// p99 of the measured phase so far (ns).
    pub p99_ns: AtomicU64,
}

/// State shared by the coordinator and the workers (never on the data path).
#[derive(Debug)]
pub struct Shared {
    /// The run's options.
    pub opts: Options,
    /// Where to connect.
    pub target: Target,
    /// One entry per worker.
    pub live: Vec<WorkerLive>,
    /// Workers that finished their connect phase.
    pub connected_workers: AtomicUsize,
    /// Start of warm-up (all workers connected), set by the coordinator.
    pub t0: OnceLock<Instant>,
    /// Workers that returned.
    pub finished_workers: AtomicUsize,
    /// Set to stop everything early (e.g. a failed coordinator).
    pub abort: AtomicBool,
}

impl Shared {
    /// Shared state for `workers` workers.
    pub fn new(opts: Options, target: Target, workers: usize) -> Shared {
        Shared {
            opts,
            target,
            live: (0..workers).map(|_| WorkerLive::default()).collect(),
            connected_workers: AtomicUsize::new(0),
            finished_workers: AtomicUsize::new(0),
            t0: OnceLock::new(),
            abort: AtomicBool::new(false),
        }
    }

    /// End of warm-up and end of the run, given `t0`.
    pub fn phases(&self, t0: Instant) -> (Instant, Instant) {
        let warm_end = t0 + self.opts.warmup;
        (warm_end, warm_end + self.opts.duration)
    }
}

/// Largest single read of a connection.
const READ_CHUNK: usize = 32 << 10;

/// io_uring memory per generator executor.
const IO_MEMORY: usize = 512 << 10;

/// Starts worker `idx` pinned on `core`; its thread returns the worker's stats.
pub fn spawn(
    idx: usize,
    core: usize,
    shared: Arc<Shared>,
) -> std::io::Result<glommio::ExecutorJoinHandle<WorkerStats>> {
    LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(&format!("loadgen-{idx}"))
        .io_memory(IO_MEMORY)
        .spawn(move || async move { run(idx, shared).await })
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Per-connection protocol parameters, fixed for the whole run.
struct ConnCtx {
    shared: Arc<Shared>,
    stats: Rc<RefCell<WorkerStats>>,
    idx: usize,
    templates: Templates,
}

async fn run(idx: usize, shared: Arc<Shared>) -> WorkerStats {
    let opts = &shared.opts;
    let cores = opts.cores;
    let mine: Vec<usize> = (idx..opts.conns).step_by(cores).collect();
    let ctx = Rc::new(ConnCtx {
        shared: shared.clone(),
        stats: Rc::new(RefCell::new(WorkerStats::default())),
        idx,
        templates: Templates::new(opts.codec.kind(), opts.payload),
    });

    // Phase 1: connect, paced and bounded.
    let conns = connect_all(&ctx, &mine).await;
    ctx.stats.borrow_mut().connected = conns.len() as u64;
    shared.connected_workers.fetch_add(1, Ordering::AcqRel);

    // Phase 2: wait for t0 (bounded by the hard deadline of the connect phase).
    let wait_limit = Instant::now() + Duration::from_secs(600);
    let t0 = loop {
        if let Some(t0) = shared.t0.get() {
            break Some(*t0);
        }
        if shared.abort.load(Ordering::Relaxed) || Instant::now() > wait_limit {
            break None;
        }
        sleep(Duration::from_millis(1)).await;
    };

    // Phase 3: load.
    if let Some(t0) = t0 {
        let (warm_end, end) = shared.phases(t0);
        let p99 = glommio::spawn_local(publish_p99(ctx.clone(), end)).detach();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|r| glommio::spawn_local(drive(ctx.clone(), r, t0, warm_end, end)).detach())
            .collect();
        for t in tasks {
            t.await;
        }
        let _ = p99.await;
    }
    let mut st = ctx.stats.borrow().clone();
    st.cpu_s = crate::sys::thread_cpu_time().as_secs_f64();
    shared.finished_workers.fetch_add(1, Ordering::AcqRel);
    st
}

/// Publishes this worker's p99 once a second for the progress line.
async fn publish_p99(ctx: Rc<ConnCtx>, end: Instant) {
    while Instant::now() < end {
        sleep(Duration::from_millis(500)).await;
        let p = ctx.stats.borrow().hist.value_at_quantile(0.99);
        ctx.shared.live[ctx.idx].p99_ns.store(p, Ordering::Relaxed);
    }
}

fn count_error(ctx: &ConnCtx, kind: ErrorKind) {
    ctx.stats.borrow_mut().errors.add(kind);
    ctx.shared.live[ctx.idx].errors.fetch_add(1, Ordering::Relaxed);
}

/// A connection that completed its handshake.
struct Ready {
    gidx: usize,
    transport: Transport,
    done: ClientDone,
    /// Bytes read after the handshake reply.
    rest: BytesMut,
}

async fn connect_all(ctx: &Rc<ConnCtx>, mine: &[usize]) -> Vec<Ready> {
    let opts = &ctx.shared.opts;
    let per_worker_rate = (opts.connect_rate as f64 / opts.cores as f64).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / per_worker_rate);
    let sem = Rc::new(glommio::sync::Semaphore::new(opts.connect_concurrency as u64));
    let out: Rc<RefCell<Vec<Ready>>> = Rc::new(RefCell::new(Vec::with_capacity(mine.len())));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(mine.len());
    for (i, &gidx) in mine.iter().enumerate() {
        let slot = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if slot > now + Duration::from_millis(1) {
            sleep(slot - now).await;
        }
        let Ok(permit) = sem.acquire_static_permit(1).await else {
            break;
        };
        let ctx = ctx.clone();
        let out = out.clone();
        tasks.push(
            glommio::spawn_local(async move {
                let r = connect_one(&ctx, gidx).await;
                drop(permit);
                match r {
                    Ok(r) => {
                        ctx.shared.live[ctx.idx].conns_up.fetch_add(1, Ordering::Relaxed);
                        out.borrow_mut().push(r);
                    }
                    Err(kind) => count_error(&ctx, kind),
                }
            })
            .detach(),
        );
    }
    for t in tasks {
        t.await;
    }
    let v = std::mem::take(&mut *out.borrow_mut());
    v
}

/// Dials and handshakes one connection (amring's sans-IO client
/// handshake), bounded by `--timeout`.
async fn connect_one(ctx: &ConnCtx, gidx: usize) -> Result<Ready, ErrorKind> {
    let opts = &ctx.shared.opts;
    let attempt = async {
        let mut transport = dial(&ctx.shared.target, gidx, opts.conns)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let cfg = ClientHandshakeConfig {
            version: if opts.recovery { Version::V3 } else { Version::V2 },
            codecs: vec![opts.codec.kind().id()],
            max_frame: u32::MAX,
        };
        let mut hs = ClientHandshake::new(cfg, &CodecRegistry::default()).map_err(|_| ErrorKind::Handshake)?;
        let mut buf = BytesMut::with_capacity(64);
        hs.write_hello(&mut buf);
        transport.write_all(&buf).await.map_err(|_| ErrorKind::Connect)?;
        buf.clear();
        let done = loop {
            match hs.handle_reply(&mut buf) {
                Ok(Some(done)) => break done,
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::Handshake),
            }
            let mut chunk = [0u8; 64];
            match transport.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(ErrorKind::Handshake),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        Ok::<_, ErrorKind>(Ready {
            gidx,
            transport,
            done,
            rest: buf,
        })
    };
    let timeout = async {
        sleep(opts.timeout).await;
        Err(ErrorKind::Connect)
    };
    future::or(attempt, timeout).await
}

/// One request in flight: its id and the instant latency is measured from
/// (the actual send time in closed loop, the intended send time in open loop).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    t: Instant,
}

#[derive(Debug, Default)]
struct StreamState {
    inflight: VecDeque<InFlight>,
    /// Open loop: intended send times not sent yet (pipeline full).
    backlog: VecDeque<Instant>,
}

/// Per-connection schedule of an open-loop run.
struct Schedule {
    next: Instant,
    interval: Duration,
    k: u64,
}

async fn drive(ctx: Rc<ConnCtx>, ready: Ready, t0: Instant, warm_end: Instant, end: Instant) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let Ready {
        gidx,
        transport: mut t,
        done,
        rest,
    } = ready;
    let codec = done.codec;
    let enc = FrameEncoder::new(done.version, done.max_frame);
    let mut dec = FrameDecoder::new(done.version, done.max_frame);
    let nstreams = opts.streams;
    let mut streams: Vec<StreamState> = (0..nstreams).map(|_| StreamState::default()).collect();
    let mut next_id: u64 = (gidx as u64) << 32;
    let req_len = ctx.templates.request_len() + 10;
    let mut wbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).min(1 << 20));
    let mut rbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).clamp(4096, 256 << 10));
    rbuf.extend_from_slice(&rest);
    let mut sched = opts.rate.map(|rate| {
        let per_conn = rate as f64 / opts.conns as f64;
        let interval = Duration::from_secs_f64(1.0 / per_conn);
        // Stagger connections evenly over one interval.
        let offset = interval.mul_f64(gidx as f64 / opts.conns as f64);
        Schedule {
            next: t0 + offset,
            interval,
            k: 0,
        }
    });

    let send = |s: usize, id: u64, wbuf: &mut BytesMut| {
        let _ = enc.encode_with(wbuf, s as u32, 0, |b| {
            ctx.templates.write_request(id, b);
            Ok::<(), std::convert::Infallible>(())
        });
    };

    // Closed loop: fill every stream's pipeline at once.
    if sched.is_none() {
        let now = Instant::now();
        for (s, st) in streams.iter_mut().enumerate() {
            for _ in 0..opts.pipeline {
                send(s, next_id, &mut wbuf);
                st.inflight.push_back(InFlight { id: next_id, t: now });
                next_id += 1;
            }
        }
    }

    let outcome: Result<(), ErrorKind> = 'conn: loop {
        let now = Instant::now();
        if now >= end {
            break Ok(());
        }
        if let Some(sc) = sched.as_mut() {
            // Due requests join their stream's backlog, then go out as the pipeline allows.
            while sc.next <= now {
                let s = (sc.k % nstreams as u64) as usize;
                streams[s].backlog.push_back(sc.next);
                sc.k += 1;
                sc.next += sc.interval;
            }
            for (s, st) in streams.iter_mut().enumerate() {
                while st.inflight.len() < opts.pipeline {
                    let Some(intended) = st.backlog.pop_front() else { break };
                    send(s, next_id, &mut wbuf);
                    st.inflight.push_back(InFlight {
                        id: next_id,
                        t: intended,
                    });
                    next_id += 1;
                }
            }
        }
        if !wbuf.is_empty() {
            if t.write_all(&wbuf).await.is_err() {
                break Err(ErrorKind::Io);
            }
            wbuf.clear();
        }

        // Wait for bytes, the next intended send, the oldest timeout or the end.
        let mut deadline = end;
        if let Some(sc) = &sched {
            deadline = deadline.min(sc.next);
        }
        for st in &streams {
            if let Some(f) = st.inflight.front() {
                deadline = deadline.min(f.t.max(now) + opts.timeout);
            }
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(rbuf.capacity().max(4096));
        }
        let start = rbuf.len();
        // Zero-fill at most one read chunk of the spare capacity.
        rbuf.resize(rbuf.capacity().min(start + READ_CHUNK), 0);
        let wait = deadline.saturating_duration_since(Instant::now());
        let got = future::or(async { Some(t.read(&mut rbuf[start..]).await) }, async {
            sleep(wait).await;
            None
        })
        .await;
        match got {
            None => {
                rbuf.truncate(start);
                let now = Instant::now();
                let expired = streams.iter().any(|st| {
                    st.inflight
                        .front()
                        .is_some_and(|f| now.duration_since(f.t) >= opts.timeout)
                });
                if expired {
                    break Err(ErrorKind::Timeout);
                }
            }
            Some(Err(_)) => break Err(ErrorKind::Io),
            Some(Ok(0)) => break Err(ErrorKind::Closed),
            Some(Ok(n)) => {
                rbuf.truncate(start + n);
                let now = Instant::now();
                let in_warmup = now < warm_end;
                if now >= end {
                    break Ok(());
                }
                let mut done = 0u64;
                let mut stats = ctx.stats.borrow_mut();
                loop {
                    let frame = match dec.decode(&mut rbuf) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(_) => {
                            drop(stats);
                            break 'conn Err(ErrorKind::Protocol);
                        }
                    };
                    let s = frame.header.stream_id as usize;
                    let Some(req) = streams.get_mut(s).and_then(|st| st.inflight.pop_front()) else {
                        // A reply nobody asked for.
                        stats.errors.add(ErrorKind::Mismatch);
                        live.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if ctx.templates.check_reply(req.id, &frame.payload) {
                        let ns = now.saturating_duration_since(req.t).as_nanos() as u64;
                        if in_warmup {
                            stats.record_warmup(ns);
                        } else {
                            stats.record(ns);
                        }
                        done += 1;
                    } else {
                        let kind = if crate::msg::is_error_reply(codec, &frame.payload) {
                            ErrorKind::Remote
                        } else {
                            ErrorKind::Mismatch
                        };
                        stats.errors.add(kind);
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if sched.is_none() {
                        send(s, next_id, &mut wbuf);
                        streams[s].inflight.push_back(InFlight { id: next_id, t: now });
                        next_id += 1;
                    }
                }
                drop(stats);
                if done > 0 {
                    live.done.fetch_add(done, Ordering::Relaxed);
                }
            }
        }
    };
    live.conns_up.fetch_sub(1, Ordering::Relaxed);
    if let Err(kind) = outcome {
        count_error(&ctx, kind);
    }
}
