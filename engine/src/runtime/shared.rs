//! What the shards of one server share (control plane only: counters,
//! stop requests, the detached-session count) and each shard's table of
//! live connections. Below both `shard.rs` and `recovery.rs`.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};

use futures_lite::future;
use std::time::{Duration, Instant};

use crate::conn::state::ConnRef;

/// Counters of one shard (atomics: read from the handle's thread).
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) served: AtomicU64,
    pub(crate) rejected_limit: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) sessions: AtomicU64,
    pub(crate) resumes: AtomicU64,
    pub(crate) resume_rejects: AtomicU64,
    pub(crate) handoffs_in: AtomicU64,
    pub(crate) handoffs_out: AtomicU64,
    pub(crate) detached: AtomicU64,
    pub(crate) detached_evictions: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) uring_connections: AtomicU64,
    /// The shard executor's park counters and wake path (set once at start).
    pub(crate) park: std::sync::OnceLock<(std::sync::Arc<glommio::raw_ring::ParkCounters>, WakePathInfo)>,
    /// Whether amring's ring I/O is up on the shard (set once at start).
    pub(crate) ring_io: AtomicBool,
    /// The shard's last failure outside any connection (`handshake.timeout`,
    /// `handshake.rejected`, `limit.connections`).
    pub(crate) failure: Mutex<crate::debug::LastFailure>,
}

/// Snapshot of one shard's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Shard index.
    pub shard: usize,
    /// Sockets accepted.
    pub accepted: u64,
    /// Live connections now.
    pub active: u64,
    /// Connections that completed the handshake.
    pub served: u64,
    /// Closed on accept because of `max_connections` (`limit.connections`).
    pub rejected_limit: u64,
    /// Connections not live within the handshake timeout of their accept:
    /// hello, or v3 attach/resume, unfinished (`handshake.timeout`).
    pub handshake_timeouts: u64,
    /// Hellos rejected or malformed (`handshake.rejected`).
    pub handshake_failures: u64,
    /// v3 logical connections registered on this shard now (attached or detached).
    pub sessions: u64,
    /// v3 resumes accepted by this shard (as owner).
    pub resumes: u64,
    /// v3 attach requests rejected (unknown id, wrong secret, expired, codec, bad mode).
    pub resume_rejects: u64,
    /// v3 resumes received from another shard (socket handed over to this owner).
    pub handoffs_in: u64,
    /// v3 resumes that landed here and were handed to the owning shard.
    pub handoffs_out: u64,
    /// v3 sessions of this shard without a transport now (waiting for a resume).
    pub detached: u64,
    /// v3 detached sessions dropped early because the server-wide
    /// `max_detached_sessions` cap was reached (oldest first).
    pub detached_evictions: u64,
    /// `on_connect` / `on_disconnect` panics, contained (a panicking
    /// `on_connect` rejects its connection; code `hook.panic`).
    pub hook_panics: u64,
    /// Failed accepts (out of descriptors or memory: the shard backs off
    /// and retries; the listener keeps its backlog meanwhile).
    pub accept_errors: u64,
    /// TCP connections (and v3 resumes) driven by the shard's own io_uring
    /// ([`ServerBuilder::uring_io`](crate::ServerBuilder::uring_io)); the
    /// others use glommio's sockets.
    pub uring_connections: u64,
    /// How the shard parks, proven at its start (see [`WakePathInfo`]).
    pub wake_path: WakePathInfo,
    /// What ended each of the shard's parks (sleeps in the kernel).
    pub wakeups: Wakeups,
    /// The shard's most recent failure outside any connection, with the
    /// shared failure codes: `handshake.timeout`, `handshake.rejected` (a
    /// hello refused or malformed) or `limit.connections` (closed on accept
    /// at `max_connections`). Connection failures are in each connection's
    /// debug state.
    pub last_failure: Option<crate::debug::Failure>,
}

/// How a shard's executor parks (`glommio::raw_ring::wake_path`, proven by a
/// probe when the executor starts: a completion that arrives while it is
/// parked must wake it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WakePathInfo {
    /// The probe failed (or `AMRING_GLOMMIO_SINGLE_RING=0`): the shard runs
    /// on glommio's linked rings and sockets, with a bounded sleep (slower,
    /// never stalled); one `warn` line said so.
    pub fallback: bool,
    /// The path in words: `single ring (probe woke in N µs)`, or
    /// `fallback: <why>`.
    pub detail: String,
    /// amring drives the shard's server sockets on that ring
    /// (`ServerBuilder::uring_io` on and the ring lent; false on a fallback,
    /// on a ring without `COOP_TASKRUN`, or before Linux 6.0).
    pub ring_io: bool,
}

/// A shard's wake-ups by cause: every park (sleep in the kernel) ends for
/// exactly one counted cause, so `parks` is the sum of the others once the
/// shard is awake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// Sleeps in the kernel.
    pub parks: u64,
    /// Ended by an I/O completion (a socket's receive or send, an accept).
    pub completion: u64,
    /// Ended by a timer the shard armed (a handshake or protocol deadline).
    pub timer: u64,
    /// Ended by the fork's safety-net bound with nothing to do (an idle tick).
    pub bound_idle: u64,
    /// Ended by the safety-net bound with completions waiting: a wake-up the
    /// kernel did not deliver. Zero on a healthy wake path.
    pub bound_missed: u64,
    /// Ended by another thread (a `ClientThread` or `RemoteStream` post, a v3
    /// hand-off from another shard, a stop request).
    pub kick: u64,
    /// Ended with nothing to show (a signal).
    pub spurious: u64,
}

impl Wakeups {
    /// Wake-ups by the safety-net bound, idle or not.
    pub fn bound(&self) -> u64 {
        self.bound_idle + self.bound_missed
    }

    /// The sum of two counts (shards added up).
    pub fn plus(&self, other: &Wakeups) -> Wakeups {
        Wakeups {
            parks: self.parks + other.parks,
            completion: self.completion + other.completion,
            timer: self.timer + other.timer,
            bound_idle: self.bound_idle + other.bound_idle,
            bound_missed: self.bound_missed + other.bound_missed,
            kick: self.kick + other.kick,
            spurious: self.spurious + other.spurious,
        }
    }

    /// The counts since `earlier`.
    pub fn since(&self, earlier: &Wakeups) -> Wakeups {
        Wakeups {
            parks: self.parks - earlier.parks,
            completion: self.completion - earlier.completion,
            timer: self.timer - earlier.timer,
            bound_idle: self.bound_idle - earlier.bound_idle,
            bound_missed: self.bound_missed - earlier.bound_missed,
            kick: self.kick - earlier.kick,
            spurious: self.spurious - earlier.spurious,
        }
    }
}

impl From<glommio::raw_ring::ParkSnapshot> for Wakeups {
    fn from(p: glommio::raw_ring::ParkSnapshot) -> Wakeups {
        Wakeups {
            parks: p.parks,
            completion: p.woke_completion,
            timer: p.woke_timer,
            bound_idle: p.woke_bound_idle,
            bound_missed: p.woke_bound_missed,
            kick: p.woke_kick,
            spurious: p.woke_spurious,
        }
    }
}

/// This executor's park counters and wake path (on a shard thread).
pub(crate) fn this_park() -> (std::sync::Arc<glommio::raw_ring::ParkCounters>, WakePathInfo) {
    let path = glommio::raw_ring::wake_path();
    let info = WakePathInfo {
        fallback: !matches!(path, glommio::raw_ring::WakePath::SingleRing { .. }),
        detail: path.to_string(),
        ring_io: false,
    };
    (glommio::raw_ring::park_counters(), info)
}

/// State shared by the shards of one server (control plane only).
pub(crate) struct ServerShared {
    pub(crate) stop: AtomicBool,
    /// Accept loops waiting for `stop` (foreign-woken by `request_stop`; no
    /// polling timer, so an idle shard keeps no timer armed).
    pub(crate) stop_wakers: Mutex<Vec<Option<Waker>>>,
    pub(crate) deadline: Mutex<Option<Instant>>,
    pub(crate) active: AtomicUsize,
    pub(crate) next_conn: AtomicU64,
    pub(crate) shards: Vec<ShardCounters>,
}

impl ServerShared {
    pub(crate) fn snapshot(&self) -> Vec<ShardStats> {
        self.shards
            .iter()
            .enumerate()
            .map(|(i, c)| ShardStats {
                shard: i,
                accepted: c.accepted.load(Ordering::Relaxed),
                active: c.active.load(Ordering::Relaxed),
                served: c.served.load(Ordering::Relaxed),
                rejected_limit: c.rejected_limit.load(Ordering::Relaxed),
                handshake_timeouts: c.handshake_timeouts.load(Ordering::Relaxed),
                handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
                sessions: c.sessions.load(Ordering::Relaxed),
                resumes: c.resumes.load(Ordering::Relaxed),
                resume_rejects: c.resume_rejects.load(Ordering::Relaxed),
                handoffs_in: c.handoffs_in.load(Ordering::Relaxed),
                handoffs_out: c.handoffs_out.load(Ordering::Relaxed),
                detached: c.detached.load(Ordering::Relaxed),
                detached_evictions: c.detached_evictions.load(Ordering::Relaxed),
                hook_panics: c.hook_panics.load(Ordering::Relaxed),
                accept_errors: c.accept_errors.load(Ordering::Relaxed),
                uring_connections: c.uring_connections.load(Ordering::Relaxed),
                wake_path: c
                    .park
                    .get()
                    .map(|p| WakePathInfo {
                        ring_io: c.ring_io.load(Ordering::Relaxed),
                        ..p.1.clone()
                    })
                    .unwrap_or_default(),
                wakeups: c.park.get().map(|p| Wakeups::from(p.0.snapshot())).unwrap_or_default(),
                last_failure: lock(&c.failure).get().cloned(),
            })
            .collect()
    }

    pub(crate) fn request_stop(&self, grace: Duration) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + grace);
        self.stop.store(true, Ordering::Release);
        let wakers: Vec<Waker> = lock(&self.stop_wakers).iter_mut().filter_map(Option::take).collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once a stop is requested; shard `idx`'s waker is parked in
    /// `stop_wakers` meanwhile.
    pub(crate) fn stopped(&self, idx: usize) -> impl Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            if self.stopping() {
                return Poll::Ready(());
            }
            let mut w = lock(&self.stop_wakers);
            if let Some(slot) = w.get_mut(idx) {
                match slot {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
            }
            drop(w);
            // Re-check after publishing the waker: `request_stop` stores
            // `stop` before it takes the wakers.
            if self.stopping() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Drops shard `idx`'s parked waker (on its own thread).
    pub(crate) fn clear_stop_waker(&self, idx: usize) {
        let old = lock(&self.stop_wakers).get_mut(idx).and_then(Option::take);
        drop(old);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks `m`, ignoring poisoning (the data are plain values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The live connections of one shard (for graceful shutdown).
pub(crate) type Live = Rc<RefCell<Vec<(u64, ConnRef)>>>;

impl ShardCounters {
    /// Records a failure outside any connection (see `ShardStats::last_failure`).
    pub(crate) fn record(&self, code: crate::debug::FailureCode, text: String) {
        lock(&self.failure).record(code, text);
    }
}
