//! Generator workers: one pinned glommio executor per generator core, each
//! with its own connections and its own histogram.
//!
//! A worker runs three phases:
//! 1. **connect**: dial and handshake its share of the connections, paced by
//!    `--connect-rate` and bounded by `--connect-concurrency` in flight;
//! 2. **barrier**: report readiness and wait until every worker is connected
//!    (the run's `t0`, set by the coordinator);
//! 3. **load**: until `t0 + warmup + duration`, either the epoll loop of
//!    `epoll_drive` (closed-loop v2 over TCP, `--io auto`) or one
//!    local task per connection (`drive_v2` for v2, `drive` through
//!    `proto::Connection` for v3).
//!
//! One connection task does everything for its connection (no split
//! reader/writer): write the batch of due requests in one call, then wait for
//! whichever comes first of readable bytes, the next intended send time (open
//! loop), the oldest request's timeout, or the end of the run.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::timer::sleep;
use glommio::{LocalExecutorBuilder, Placement};

use amring::codec::{CodecKind, CodecRegistry};
use amring_proto::attach::{AttachRequest, AttachResponse, RecoveryOptions};
use amring_proto::frame::V2_HEADER_LEN;
use amring_proto::{
    ClientHandshake, ClientHandshakeConfig, ConnConfig, ConnError, Connection, FrameHeader, Role, Version,
};

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

/// Largest single read of a connection (smaller with small pipelines).
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
        .ring_depth(amring::runtime::RING_DEPTH)
        .spawn(move || async move { run(idx, shared).await })
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Per-connection protocol parameters, fixed for the whole run.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Rc<RefCell<WorkerStats>>,
    pub(crate) idx: usize,
    pub(crate) templates: Templates,
}

/// What became of one reply frame (see [`ConnCtx::complete_reply`]).
pub(crate) enum ReplyOutcome {
    /// No request was in flight on its stream (counted as a mismatch).
    Unmatched,
    /// The expected reply: its latency was recorded.
    Good,
    /// Another reply (an `ErrorReply`, or other bytes): counted by kind.
    Bad,
}

impl ConnCtx {
    /// Matches a reply on `stream` to that stream's oldest request in flight.
    /// The expected reply records its latency from the request's `t`
    /// (warm-up separately); anything else is counted as an error by kind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete_reply(
        &self,
        streams: &mut [StreamState],
        stream: u32,
        payload: &[u8],
        codec: CodecKind,
        now: Instant,
        in_warmup: bool,
        stats: &mut WorkerStats,
    ) -> ReplyOutcome {
        let live = &self.shared.live[self.idx];
        let Some(req) = streams.get_mut(stream as usize).and_then(|st| st.inflight.pop_front()) else {
            // A reply nobody asked for.
            stats.errors.add(ErrorKind::Mismatch);
            live.errors.fetch_add(1, Ordering::Relaxed);
            return ReplyOutcome::Unmatched;
        };
        if self.templates.check_reply(req.id, payload) {
            let ns = now.saturating_duration_since(req.t).as_nanos() as u64;
            if in_warmup {
                stats.record_warmup(ns);
            } else {
                stats.record(ns);
            }
            ReplyOutcome::Good
        } else {
            let kind = if crate::msg::is_error_reply(codec, payload) {
                ErrorKind::Remote
            } else {
                ErrorKind::Mismatch
            };
            stats.errors.add(kind);
            live.errors.fetch_add(1, Ordering::Relaxed);
            ReplyOutcome::Bad
        }
    }
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
        if opts.rate.is_none()
            && conns
                .iter()
                .all(|r| r.version == Version::V2 && crate::epoll_drive::raw_fd(&r.transport).is_some())
            && opts.io == crate::opts::IoMode::Auto
        {
            // Closed-loop v2: the epoll data phase (see `epoll_drive`).
            crate::epoll_drive::run(&ctx, conns, warm_end, end);
            let mut st = ctx.stats.borrow().clone();
            st.cpu_s = crate::sys::thread_cpu_time().as_secs_f64();
            shared.finished_workers.fetch_add(1, Ordering::AcqRel);
            return st;
        }
        let p99 = glommio::spawn_local(publish_p99(ctx.clone(), end)).detach();
        let watches: Rc<Vec<Rc<Watch>>> = Rc::new(
            conns
                .iter()
                .filter(|r| r.version == Version::V2)
                .map(|_| Rc::new(Watch::new(end)))
                .collect(),
        );
        let dog = glommio::spawn_local(watchdog(watches.clone(), end, shared.opts.timeout)).detach();
        let mut v2 = watches.iter();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|r| {
                if r.version == Version::V2 {
                    // One watch per v2 connection, in order.
                    let w = v2.next().cloned().unwrap_or_else(|| Rc::new(Watch::new(end)));
                    glommio::spawn_local(drive_v2(ctx.clone(), r, w, t0, warm_end, end)).detach()
                } else {
                    glommio::spawn_local(drive(ctx.clone(), r, t0, warm_end, end)).detach()
                }
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let _ = p99.await;
        let _ = dog.await;
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

/// A connection that completed its handshake (and, in v3, its attach).
pub(crate) struct Ready {
    pub(crate) gidx: usize,
    pub(crate) transport: Transport,
    /// The sans-IO connection (v2, or v3 with the negotiated recovery parameters).
    conn: Connection,
    pub(crate) codec: CodecKind,
    /// Negotiated version (v2 takes the direct path, [`drive_v2`]).
    pub(crate) version: Version,
    /// Negotiated largest payload.
    pub(crate) max_frame: u32,
    /// Bytes read after the handshake reply (v3: after the attach response).
    pub(crate) rest: BytesMut,
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
            // loadgen's own client speaks the reference protocol: no amring extensions.
            flags: 0,
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
            read_more(&mut transport, &mut buf).await?;
        };
        let recovery = if done.version == Version::V3 {
            // Initial attach (spec §7.2–7.5): new session, then the server's
            // negotiated values, checked like the reference client does.
            let mut req = BytesMut::with_capacity(64);
            AttachRequest::new_session().write(&mut req);
            transport.write_all(&req).await.map_err(|_| ErrorKind::Connect)?;
            let resp = loop {
                if let Some(r) = AttachResponse::decode(&mut buf) {
                    break r;
                }
                read_more(&mut transport, &mut buf).await?;
            };
            let max_replay = RecoveryOptions::default().max_replay_bytes;
            Some(resp.validate_initial(max_replay).map_err(|_| ErrorKind::Handshake)?)
        } else {
            None
        };
        let conn = Connection::new(
            ConnConfig {
                role: Role::Client,
                version: done.version,
                max_frame: done.max_frame,
                recovery,
            },
            Instant::now(),
        );
        Ok::<_, ErrorKind>(Ready {
            gidx,
            transport,
            conn,
            codec: done.codec,
            version: done.version,
            max_frame: done.max_frame,
            rest: buf,
        })
    };
    let timeout = async {
        sleep(opts.timeout).await;
        Err(ErrorKind::Connect)
    };
    future::or(attempt, timeout).await
}

/// Reads more handshake/attach bytes; EOF or an error is a handshake failure.
async fn read_more(t: &mut Transport, buf: &mut BytesMut) -> Result<(), ErrorKind> {
    let mut chunk = [0u8; 64];
    match t.read(&mut chunk).await {
        Ok(0) | Err(_) => Err(ErrorKind::Handshake),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Maps a connection error to the kind reported.
fn conn_error_kind(e: &ConnError) -> ErrorKind {
    match e {
        ConnError::HeartbeatTimeout => ErrorKind::Timeout,
        ConnError::PeerClosed => ErrorKind::Closed,
        _ => ErrorKind::Protocol,
    }
}

/// One request in flight: its id and the instant latency is measured from
/// (the actual send time in closed loop, the intended send time in open loop).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlight {
    pub(crate) id: u64,
    pub(crate) t: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) inflight: VecDeque<InFlight>,
    /// Open loop: intended send times not sent yet (pipeline full).
    backlog: VecDeque<Instant>,
}

/// Per-connection schedule of an open-loop run.
struct Schedule {
    next: Instant,
    interval: Duration,
    k: u64,
}

impl Schedule {
    /// The schedule of connection `gidx` of `conns` sharing a total `rate`
    /// (req/s) from `t0`: connections are staggered evenly over one interval.
    fn for_conn(rate: u64, conns: usize, gidx: usize, t0: Instant) -> Schedule {
        let per_conn = rate as f64 / conns as f64;
        let interval = Duration::from_secs_f64(1.0 / per_conn);
        let offset = interval.mul_f64(gidx as f64 / conns as f64);
        Schedule {
            next: t0 + offset,
            interval,
            k: 0,
        }
    }

    /// Appends every intended send time due by `now` to the backlog of its
    /// stream (round robin over the streams).
    fn pump(&mut self, now: Instant, streams: &mut [StreamState]) {
        while self.next <= now {
            let s = (self.k % streams.len() as u64) as usize;
            streams[s].backlog.push_back(self.next);
            self.k += 1;
            self.next += self.interval;
        }
    }
}

async fn drive(ctx: Rc<ConnCtx>, ready: Ready, t0: Instant, warm_end: Instant, end: Instant) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let Ready {
        gidx,
        transport: mut t,
        mut conn,
        codec,
        rest,
        ..
    } = ready;
    let nstreams = opts.streams;
    let mut streams: Vec<StreamState> = (0..nstreams).map(|_| StreamState::default()).collect();
    let mut next_id: u64 = (gidx as u64) << 32;
    let req_len = ctx.templates.request_len() + 18;
    let mut wbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).min(1 << 20));
    let mut rbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).clamp(4096, 256 << 10));
    rbuf.extend_from_slice(&rest);
    // Each read offers (and zero-fills) room for about two full pipelines of
    // replies, not a fixed 32 KiB: the memset is paid on every read.
    let read_chunk = (2 * req_len * nstreams * opts.pipeline).clamp(2048, READ_CHUNK);
    let mut sched = opts.rate.map(|rate| Schedule::for_conn(rate, opts.conns, gidx, t0));

    // Queues one request through the sans-IO connection (v3: seq + replay ring).
    let send = |conn: &mut Connection, now: Instant, s: usize, id: u64| -> Result<(), ErrorKind> {
        conn.send(now, s as u32, |b| {
            ctx.templates.write_request(id, b);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|_| ErrorKind::Protocol)
    };

    let outcome: Result<(), ErrorKind> = 'conn: {
        // Closed loop: fill every stream's pipeline at once.
        if sched.is_none() {
            let now = Instant::now();
            for (s, st) in streams.iter_mut().enumerate() {
                for _ in 0..opts.pipeline {
                    if let Err(k) = send(&mut conn, now, s, next_id) {
                        break 'conn Err(k);
                    }
                    st.inflight.push_back(InFlight { id: next_id, t: now });
                    next_id += 1;
                }
            }
        }
        loop {
            let now = Instant::now();
            if now >= end {
                break Ok(());
            }
            if let Some(sc) = sched.as_mut() {
                // Due requests join their stream's backlog, then go out as the pipeline allows.
                sc.pump(now, &mut streams);
                for (s, st) in streams.iter_mut().enumerate() {
                    while st.inflight.len() < opts.pipeline {
                        let Some(intended) = st.backlog.pop_front() else { break };
                        if let Err(k) = send(&mut conn, now, s, next_id) {
                            break 'conn Err(k);
                        }
                        st.inflight.push_back(InFlight {
                            id: next_id,
                            t: intended,
                        });
                        next_id += 1;
                    }
                }
            }
            // Requests, and in v3 due ACKs/PINGs.
            conn.poll_transmit(now, &mut wbuf);
            if !wbuf.is_empty() {
                if t.write_all(&wbuf).await.is_err() {
                    break Err(ErrorKind::Io);
                }
                wbuf.clear();
            }

            // Wait for bytes, the next intended send, the oldest timeout, a
            // protocol timer (v3 ACK delay, heartbeat) or the end.
            let mut deadline = end;
            if let Some(sc) = &sched {
                deadline = deadline.min(sc.next);
            }
            if let Some(pt) = conn.poll_timeout() {
                deadline = deadline.min(pt);
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
            rbuf.resize(rbuf.capacity().min(start + read_chunk), 0);
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
                    if let Err(e) = conn.handle_timeout(now) {
                        break Err(conn_error_kind(&e));
                    }
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
                        let frame = match conn.handle_input(now, &mut rbuf) {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) => {
                                drop(stats);
                                break 'conn Err(conn_error_kind(&e));
                            }
                        };
                        let s = frame.stream_id as usize;
                        let outcome = ctx.complete_reply(
                            &mut streams,
                            frame.stream_id,
                            &frame.payload,
                            codec,
                            now,
                            in_warmup,
                            &mut stats,
                        );
                        match outcome {
                            ReplyOutcome::Unmatched => continue,
                            ReplyOutcome::Good => done += 1,
                            ReplyOutcome::Bad => {}
                        }
                        if sched.is_none() {
                            if let Err(k) = send(&mut conn, now, s, next_id) {
                                drop(stats);
                                break 'conn Err(k);
                            }
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
        }
    };
    live.conns_up.fetch_sub(1, Ordering::Relaxed);
    if let Err(kind) = outcome {
        count_error(&ctx, kind);
    }
}

/// What wakes a v2 connection task besides its socket: the end of the run or
/// the deadline of its oldest request, checked by one [`watchdog`] per worker
/// (no timer is armed per read).
struct Watch {
    /// When the oldest request in flight times out (`end` when none is in flight).
    deadline: Cell<Instant>,
    /// Set by the watchdog once `deadline` (or the end of the run) has passed.
    fired: Cell<bool>,
    /// The connection task's waker while it waits for bytes.
    waker: Cell<Option<Waker>>,
    /// The connection task returned.
    done: Cell<bool>,
}

impl Watch {
    fn new(end: Instant) -> Watch {
        Watch {
            deadline: Cell::new(end),
            fired: Cell::new(false),
            waker: Cell::new(None),
            done: Cell::new(false),
        }
    }

    /// Resolves once the watchdog fires.
    fn wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            let w = match self.waker.take() {
                Some(w) if w.will_wake(cx.waker()) => w,
                _ => cx.waker().clone(),
            };
            self.waker.set(Some(w));
            Poll::Pending
        })
    }
}

/// Period of the watchdog: end-of-run and timeout detection are this late at most.
fn watchdog_tick(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(5))
}

/// Fires the watches whose deadline (or the end of the run) has passed,
/// until every v2 connection task returned.
async fn watchdog(watches: Rc<Vec<Rc<Watch>>>, end: Instant, timeout: Duration) {
    let tick = watchdog_tick(timeout);
    // Bounded: connection tasks return by `end` plus one tick, or at a timeout.
    let hard = end + timeout + Duration::from_secs(30);
    loop {
        if watches.iter().all(|w| w.done.get()) {
            return;
        }
        let now = Instant::now();
        if now > hard {
            return;
        }
        for w in watches.iter() {
            if !w.done.get() && !w.fired.get() && now >= w.deadline.get().min(end) {
                w.fired.set(true);
                if let Some(waker) = w.waker.take() {
                    waker.wake();
                }
            }
        }
        sleep(tick).await;
    }
}

/// Outcome of one wait of [`drive_v2`].
enum Woke {
    /// The read returned.
    Read(std::io::Result<usize>),
    /// The watchdog fired.
    Watch,
    /// The next intended send time (open loop).
    Schedule,
}

/// The v2 connection task: frames written and parsed directly (pre-encoded
/// request frames patched in place, replies compared byte for byte with the
/// expected reply), all due requests in one write, every complete frame of
/// a read handled before the next wait, one clock read per wake, and no
/// timer per wait in closed loop (the worker's [`watchdog`] wakes the task
/// at the end of the run or when its oldest request times out).
async fn drive_v2(ctx: Rc<ConnCtx>, ready: Ready, watch: Rc<Watch>, t0: Instant, warm_end: Instant, end: Instant) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let tpl = &ctx.templates;
    let Ready {
        gidx,
        transport: mut t,
        codec,
        max_frame,
        rest,
        ..
    } = ready;
    let nstreams = opts.streams;
    let mut streams: Vec<StreamState> = (0..nstreams).map(|_| StreamState::default()).collect();
    let mut next_id: u64 = (gidx as u64) << 32;
    let window = nstreams * opts.pipeline;
    let mut wbuf: Vec<u8> = Vec::with_capacity((tpl.frame_v2_len() * window).min(1 << 20));
    // Room for about two full pipelines of replies; zeroed once, never again.
    let rcap = (2 * tpl.reply_frame_v2_len() * window).clamp(4096, 256 << 10);
    let mut rbuf: Vec<u8> = vec![0; rcap.max(rest.len() + 1024)];
    rbuf[..rest.len()].copy_from_slice(&rest);
    let (mut head, mut tail) = (0usize, rest.len());
    let mut sched = opts.rate.map(|rate| Schedule::for_conn(rate, opts.conns, gidx, t0));

    let mut now = Instant::now();
    let outcome: Result<(), ErrorKind> = 'conn: {
        if sched.is_none() {
            for (s, st) in streams.iter_mut().enumerate() {
                for _ in 0..opts.pipeline {
                    tpl.write_request_frame_v2(s as u32, next_id, &mut wbuf);
                    st.inflight.push_back(InFlight { id: next_id, t: now });
                    next_id += 1;
                }
            }
        }
        loop {
            if now >= end {
                break Ok(());
            }
            if let Some(sc) = sched.as_mut() {
                sc.pump(now, &mut streams);
                for (s, st) in streams.iter_mut().enumerate() {
                    while st.inflight.len() < opts.pipeline {
                        let Some(intended) = st.backlog.pop_front() else { break };
                        tpl.write_request_frame_v2(s as u32, next_id, &mut wbuf);
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

            // The oldest request's deadline, for the watchdog.
            let mut deadline = end;
            for st in &streams {
                if let Some(f) = st.inflight.front() {
                    deadline = deadline.min(f.t.max(now) + opts.timeout);
                }
            }
            watch.deadline.set(deadline);

            // Room to read: move a partial frame to the front, grow for a large one.
            if tail == rbuf.len() {
                if head > 0 {
                    rbuf.copy_within(head..tail, 0);
                    tail -= head;
                    head = 0;
                } else {
                    let n = rbuf.len();
                    rbuf.resize(n * 2, 0);
                }
            }
            let read = async { Woke::Read(t.read(&mut rbuf[tail..]).await) };
            let watched = future::or(read, async {
                watch.wait().await;
                Woke::Watch
            });
            let woke = match &sched {
                None => watched.await,
                Some(sc) => {
                    let wait = sc.next.saturating_duration_since(now);
                    future::or(watched, async {
                        sleep(wait).await;
                        Woke::Schedule
                    })
                    .await
                }
            };
            now = Instant::now();
            let n = match woke {
                Woke::Schedule => continue,
                Woke::Watch => {
                    watch.fired.set(false);
                    if now >= end {
                        break Ok(());
                    }
                    let expired = streams.iter().any(|st| {
                        st.inflight
                            .front()
                            .is_some_and(|f| now.duration_since(f.t) >= opts.timeout)
                    });
                    if expired {
                        break Err(ErrorKind::Timeout);
                    }
                    continue;
                }
                Woke::Read(Err(_)) => break Err(ErrorKind::Io),
                Woke::Read(Ok(0)) => break Err(ErrorKind::Closed),
                Woke::Read(Ok(n)) => n,
            };
            tail += n;
            if now >= end {
                break Ok(());
            }
            let in_warmup = now < warm_end;
            let mut done = 0u64;
            let mut stats = ctx.stats.borrow_mut();
            loop {
                let avail = &rbuf[head..tail];
                let h = match FrameHeader::parse(avail, Version::V2, max_frame) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(_) => {
                        drop(stats);
                        break 'conn Err(ErrorKind::Protocol);
                    }
                };
                let flen = h.frame_len();
                if avail.len() < flen {
                    if flen > rbuf.len() {
                        // Make room for the whole frame (bounded by max_frame).
                        rbuf.resize(flen.next_power_of_two(), 0);
                    }
                    break;
                }
                let payload = &avail[V2_HEADER_LEN..flen];
                head += flen;
                let s = h.stream_id as usize;
                match ctx.complete_reply(&mut streams, h.stream_id, payload, codec, now, in_warmup, &mut stats) {
                    ReplyOutcome::Unmatched => continue,
                    ReplyOutcome::Good => done += 1,
                    ReplyOutcome::Bad => {}
                }
                if sched.is_none() {
                    tpl.write_request_frame_v2(s as u32, next_id, &mut wbuf);
                    streams[s].inflight.push_back(InFlight { id: next_id, t: now });
                    next_id += 1;
                }
            }
            drop(stats);
            if head == tail {
                head = 0;
                tail = 0;
            }
            if done > 0 {
                live.done.fetch_add(done, Ordering::Relaxed);
            }
        }
    };
    watch.done.set(true);
    live.conns_up.fetch_sub(1, Ordering::Relaxed);
    if let Err(kind) = outcome {
        count_error(&ctx, kind);
    }
}
