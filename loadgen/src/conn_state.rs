//! State shared by a worker's connection drivers (the glommio tasks of
//! `v2_drive` and `v3_drive`, the epoll loop of `epoll_drive`) and by its
//! connect phase (`connect`). It sits below all of them, so that no driver
//! imports another driver or the worker:
//!
//! * [`Shared`] and [`WorkerLive`]: what the coordinator and the workers
//!   share (re-exported by `worker`, their public home);
//! * [`ConnCtx`]: a worker's per-connection parameters, and the matching of a
//!   reply to its request ([`ConnCtx::complete_reply`]);
//! * [`StreamState`] and [`InFlight`]: the requests of one stream;
//! * [`Schedule`]: the intended send times of an open-loop connection;
//! * [`V2Reader`]: a v2 connection's read buffer and its frame cutter.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use amring::codec::CodecKind;
use amring_proto::frame::V2_HEADER_LEN;
use amring_proto::{FrameHeader, Version};

use crate::opts::{Options, Target};
use crate::stats::{ErrorKind, WorkerStats};
use crate::workload::{Verdict, Workload};

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
    /// The workload compiled for the offered codec (`--workload`).
    pub workload: Workload,
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
    pub fn new(opts: Options, target: Target, workload: Workload, workers: usize) -> Shared {
        Shared {
            opts,
            target,
            workload,
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

/// Per-connection protocol parameters, fixed for the whole run.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Rc<RefCell<WorkerStats>>,
    pub(crate) idx: usize,
    pub(crate) workload: Workload,
}

/// The phase a reply arrives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Warm-up: latencies kept apart, not reported.
    Warmup,
    /// The measured phase.
    Measured,
    /// After the measured phase: no new requests; the replies still in
    /// flight are awaited (bounded by [`drain_limit`]) and checked, so the
    /// connections close with nothing outstanding, but they are not timed.
    Drain,
}

impl Phase {
    /// The phase at `now`.
    pub(crate) fn at(now: Instant, warm_end: Instant, end: Instant) -> Phase {
        if now < warm_end {
            Phase::Warmup
        } else if now < end {
            Phase::Measured
        } else {
            Phase::Drain
        }
    }
}

/// How long after the measured phase a connection waits for its replies in
/// flight before it closes: `--timeout`, at most 2 s.
pub(crate) fn drain_limit(opts: &Options) -> Duration {
    opts.timeout.min(Duration::from_secs(2))
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
    /// (warm-up separately, drain not at all); anything else is counted as
    /// an error by kind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete_reply(
        &self,
        streams: &mut [StreamState],
        stream: u32,
        payload: &[u8],
        codec: CodecKind,
        now: Instant,
        phase: Phase,
        stats: &mut WorkerStats,
    ) -> ReplyOutcome {
        let live = &self.shared.live[self.idx];
        let Some(req) = streams.get_mut(stream as usize).and_then(|st| st.inflight.pop_front()) else {
            // A reply nobody asked for.
            stats.errors.add(ErrorKind::Mismatch);
            self.error_second(stats, now);
            live.errors.fetch_add(1, Ordering::Relaxed);
            return ReplyOutcome::Unmatched;
        };
        let (k, verdict) = self.workload.check(codec, req.id, payload);
        let kind = stats.kind(k);
        match verdict {
            Verdict::Good => kind.ok += 1,
            Verdict::Remote => kind.remote += 1,
            Verdict::Mismatch => kind.mismatch += 1,
        }
        if verdict == Verdict::Good {
            let ns = now.saturating_duration_since(req.t).as_nanos() as u64;
            if phase == Phase::Drain {
                stats.drained += 1;
            } else if phase == Phase::Warmup {
                stats.record_warmup(ns);
            } else {
                stats.record(ns);
                if stats.intervals.is_some() {
                    if let Some(t0) = self.shared.t0.get() {
                        let warm_end = *t0 + self.shared.opts.warmup;
                        let secs = self.shared.opts.measured_seconds();
                        stats.record_interval(ns, now.saturating_duration_since(warm_end).as_secs() as usize, secs);
                    }
                }
            }
            ReplyOutcome::Good
        } else {
            let kind = if verdict == Verdict::Remote {
                ErrorKind::Remote
            } else {
                ErrorKind::Mismatch
            };
            stats.errors.add(kind);
            self.error_second(stats, now);
            live.errors.fetch_add(1, Ordering::Relaxed);
            ReplyOutcome::Bad
        }
    }
}

impl ConnCtx {
    /// Ramp runs: the second of the measured phase `now` falls in (`None`
    /// before it, or when seconds are not collected).
    pub(crate) fn second_of(&self, now: Instant) -> Option<usize> {
        let t0 = self.shared.t0.get()?;
        let warm_end = *t0 + self.shared.opts.warmup;
        let secs = self.shared.opts.measured_seconds();
        (now >= warm_end).then(|| (now.duration_since(warm_end).as_secs() as usize).min(secs - 1))
    }

    /// Ramp runs: counts one error in the second `now` falls in.
    pub(crate) fn error_second(&self, stats: &mut WorkerStats, now: Instant) {
        if stats.seconds.is_some() {
            if let Some(i) = self.second_of(now) {
                if let Some(s) = stats.second(i) {
                    s.errors += 1;
                }
            }
        }
    }

    /// If a request in flight on `streams` has waited `--timeout` by `now`,
    /// counts it as a timeout of its request kind and returns true (the
    /// connection is then dropped and [`ErrorKind::Timeout`] counted once).
    pub(crate) fn expired(&self, streams: &[StreamState], now: Instant) -> bool {
        let timeout = self.shared.opts.timeout;
        let expired = streams
            .iter()
            .filter_map(|st| st.inflight.front())
            .find(|f| now.saturating_duration_since(f.t) >= timeout);
        if let Some(f) = expired {
            self.stats.borrow_mut().kind(self.workload.kind_of(f.id)).timeout += 1;
        }
        expired.is_some()
    }
}

/// Counts one error of `kind` for the worker of `ctx` (report and progress line).
pub(crate) fn count_error(ctx: &ConnCtx, kind: ErrorKind) {
    let mut stats = ctx.stats.borrow_mut();
    stats.errors.add(kind);
    ctx.error_second(&mut stats, Instant::now());
    drop(stats);
    ctx.shared.live[ctx.idx].errors.fetch_add(1, Ordering::Relaxed);
}

/// One request in flight: its id and the instant latency is measured from
/// (the actual send time in closed loop, the intended send time in open loop).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlight {
    pub(crate) id: u64,
    pub(crate) t: Instant,
}

/// The requests of one stream: in flight, and (open loop) due but not sent yet.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) inflight: VecDeque<InFlight>,
    /// Open loop: intended send times not sent yet (pipeline full).
    pub(crate) backlog: VecDeque<Instant>,
}

/// True while a request of `streams` waits for its reply.
pub(crate) fn any_in_flight(streams: &[StreamState]) -> bool {
    streams.iter().any(|st| !st.inflight.is_empty())
}

/// Per-connection schedule of an open-loop run.
pub(crate) struct Schedule {
    pub(crate) next: Instant,
    interval: Duration,
    k: u64,
}

impl Schedule {
    /// The schedule of connection `gidx` of `conns` sharing a total `rate`
    /// (req/s) from `t0`: connections are staggered evenly over one interval.
    pub(crate) fn for_conn(rate: u64, conns: usize, gidx: usize, t0: Instant) -> Schedule {
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
    /// stream (round robin over the streams), recording in `ctx`'s stats how
    /// late the generator is (`now` − intended: the generator's slip) for the
    /// sends of the measured phase (from `warm_end`).
    pub(crate) fn pump(&mut self, now: Instant, warm_end: Instant, streams: &mut [StreamState], ctx: &ConnCtx) {
        if self.next > now {
            return;
        }
        let mut st = ctx.stats.borrow_mut();
        while self.next <= now {
            if self.next >= warm_end {
                st.slip
                    .saturating_record(now.duration_since(self.next).as_nanos() as u64);
            }
            let s = (self.k % streams.len() as u64) as usize;
            streams[s].backlog.push_back(self.next);
            self.k += 1;
            self.next += self.interval;
        }
    }
}

/// A v2 connection's received bytes and the frames cut from them: the read
/// buffer is zeroed once at its start and reused (a partial frame moves to
/// the front; it grows only for a frame bigger than itself, bounded by the
/// negotiated max_frame).
pub(crate) struct V2Reader {
    /// Received bytes `buf[head..tail]` not parsed yet.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    max_frame: u32,
}

impl V2Reader {
    /// A reader of `cap` bytes (more if `rest` needs them) holding `rest`,
    /// the bytes that arrived with the handshake.
    pub(crate) fn new(cap: usize, rest: &[u8], max_frame: u32) -> V2Reader {
        let mut buf = vec![0; cap.max(rest.len() + 1024)];
        buf[..rest.len()].copy_from_slice(rest);
        V2Reader {
            buf,
            head: 0,
            tail: rest.len(),
            max_frame,
        }
    }

    /// Free room for the next read (never empty).
    pub(crate) fn room(&mut self) -> &mut [u8] {
        if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            } else {
                let n = self.buf.len();
                self.buf.resize(n * 2, 0);
            }
        }
        &mut self.buf[self.tail..]
    }

    /// `n` bytes were read into [`V2Reader::room`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.tail += n;
    }

    /// The next whole frame: its stream id and payload; `Ok(None)` when
    /// more bytes are needed, `Err` for a frame the protocol refuses.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(u32, &[u8])>, ErrorKind> {
        let avail = &self.buf[self.head..self.tail];
        let h = match FrameHeader::parse(avail, Version::V2, self.max_frame) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(_) => return Err(ErrorKind::Protocol),
        };
        let flen = h.frame_len();
        if avail.len() < flen {
            if flen > self.buf.len() {
                self.buf.resize(flen.next_power_of_two(), 0);
            }
            return Ok(None);
        }
        let start = self.head;
        self.head += flen;
        if self.head == self.tail {
            // Everything parsed: the next read starts at the front again
            // (the payload returned stays valid, it is not overwritten here).
            self.head = 0;
            self.tail = 0;
        }
        Ok(Some((h.stream_id, &self.buf[start + V2_HEADER_LEN..start + flen])))
    }
}
