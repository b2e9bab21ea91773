// amring patch 12: one place to park (see `AMRING-PATCH.md`, "Part 5").
//
//! The executor's one wait, and a door into it for a runtime's own
//! io_uring operations.
//!
//! By default (amring patch 12) every executor parks in exactly one kernel
//! wait: `io_uring_enter(main ring, min_complete = 1, IORING_ENTER_GETEVENTS)`.
//! Every source of work completes into that ring: sockets (glommio's and the
//! raw operations submitted here), accept, connect, the timer armed for the
//! sleep, and the read of the executor's eventfd that other threads write to
//! wake it. No wake-up travels through a second ring's descriptor or a poll of
//! an eventfd registered on another ring. `io_uring_enter(2)`: "If the
//! `IORING_ENTER_GETEVENTS` bit is set in flags, then the system call will
//! attempt to wait for `min_complete` event completions before returning."
//!
//! At start the executor proves that wait: it parks on a read of a pipe while
//! a helper thread, once it sees the executor thread sleeping, writes the
//! pipe (see [`wake_path`]). If that completion does not end the wait, the
//! executor falls back to upstream's layout (latency ring linked into the main
//! ring, with patch 11's bounded sleep), logs one warning, and [`register`]
//! refuses: the caller keeps glommio's own socket I/O.
//!
//! [`register`] gives a runtime (amring's server sockets) the main ring
//! itself: it pushes raw 64-byte SQEs, and receives their completions in a
//! callback as the executor reaps the ring, with no task in between.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    io,
    os::unix::io::RawFd,
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

/// Bit 63 of `user_data` marks a raw operation (see [`RawRing::push`]);
/// glommio's own operations never set it.
pub const RAW_USER_DATA_BIT: u64 = 1 << 63;

/// Receives the completions of the raw operations of one executor.
///
/// Called on the executor thread while it reaps its ring. An implementation
/// may wake tasks and push new SQEs ([`RawRing::push`]); it must not block,
/// and must not re-enter the executor (no `spawn`, no polling).
pub trait RawCompletions {
    /// One completion: the SQE's `user_data` (with [`RAW_USER_DATA_BIT`]),
    /// `res` and `flags` as the kernel wrote them (`io_uring_enter(2)`,
    /// "IO completion data structure").
    fn complete(&self, user_data: u64, res: i32, flags: u32);
    /// The end of a batch of completions (after at least one `complete`):
    /// the moment to publish returned provided buffers, say.
    fn batch_end(&self);
}

/// Shared between the executor's main ring and the [`RawRing`] handle.
#[derive(Default)]
pub(crate) struct RawState {
    pub(crate) queue: RefCell<VecDeque<[u8; 64]>>,
    pub(crate) handler: RefCell<Option<Rc<dyn RawCompletions>>>,
    /// A raw completion was handed out since the last `batch_end`.
    pub(crate) seen: Cell<bool>,
}

impl std::fmt::Debug for RawState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawState")
            .field("queued", &self.queue.borrow().len())
            .field("registered", &self.handler.borrow().is_some())
            .finish()
    }
}

/// The executor's main ring, lent to a runtime (see the module docs). Drop
/// it to unregister the handler; completions that arrive later are dropped.
#[derive(Debug)]
pub struct RawRing {
    state: Rc<RawState>,
    fd: RawFd,
}

impl RawRing {
    /// The ring's descriptor, for `io_uring_register(2)` calls such as
    /// `IORING_REGISTER_PBUF_RING` (the ring lives as long as the executor).
    pub fn ring_fd(&self) -> RawFd {
        self.fd
    }

    /// Queues one SQE; it reaches the kernel at the executor's next reactor
    /// pass (before it parks, at the latest). Its `user_data` (bytes 32..40)
    /// must carry [`RAW_USER_DATA_BIT`].
    ///
    /// # Safety
    ///
    /// Every pointer in the SQE must stay valid until its last completion
    /// (for a multishot operation, the one without `IORING_CQE_F_MORE`).
    pub unsafe fn push(&self, sqe: [u8; 64]) {
        let ud = u64::from_ne_bytes(sqe[32..40].try_into().unwrap());
        debug_assert!(
            ud & RAW_USER_DATA_BIT != 0,
            "raw SQE without RAW_USER_DATA_BIT"
        );
        self.state.queue.borrow_mut().push_back(sqe);
    }

    /// SQEs queued and not yet handed to the kernel.
    pub fn queued(&self) -> usize {
        self.state.queue.borrow().len()
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        self.state.handler.borrow_mut().take();
    }
}

/// Lends the current executor's main ring to `handler`.
///
/// Fails when the executor does not park in one ring (its wake path was not
/// proven, or `AMRING_GLOMMIO_SINGLE_RING=0`), when its ring was built without
/// `IORING_SETUP_COOP_TASKRUN` (`AMRING_URING_COOP=0`, or a kernel before
/// 5.19), or when a handler is already registered. Must be called on an executor thread.
pub fn register(handler: Rc<dyn RawCompletions>) -> io::Result<RawRing> {
    let reactor = crate::executor().reactor();
    let (state, fd) = reactor.sys.raw_state().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the executor's ring is not lent: it parks in one ring only with a proven wake \
                 path, and lends it only when built with COOP_TASKRUN ({})",
                reactor.sys.wake_path()
            ),
        )
    })?;
    let mut h = state.handler.borrow_mut();
    if h.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "raw ring already lent",
        ));
    }
    *h = Some(handler);
    drop(h);
    Ok(RawRing { state, fd })
}

/// How the current executor parks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WakePath {
    /// One ring: every source completes into the ring it sleeps on; the
    /// start-up probe saw a completion end a park (in this many µs after the
    /// helper's write).
    SingleRing {
        /// Microseconds from the helper's write to the end of the park.
        probe_us: u64,
    },
    /// Upstream's layout (the latency ring polled from the main ring), with
    /// patch 11's bounded sleep; why.
    Fallback(String),
}

impl std::fmt::Display for WakePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WakePath::SingleRing { probe_us } => {
                write!(f, "single ring (probe woke in {probe_us} µs)")
            }
            WakePath::Fallback(why) => write!(f, "fallback: {why}"),
        }
    }
}

/// How the current executor parks (see [`WakePath`]). Must be called on an
/// executor thread.
pub fn wake_path() -> WakePath {
    crate::executor().reactor().sys.wake_path()
}

/// Counts of the executor's parks and of what ended each one. Every park
/// ends for exactly one counted cause, so `parks` is the sum of the `woke_*`
/// fields once the executor is awake.
#[derive(Debug, Default)]
pub struct ParkCounters {
    /// Times the executor slept in the kernel.
    pub parks: AtomicU64,
    /// Parks ended by an I/O completion (socket, accept, raw operation).
    pub woke_completion: AtomicU64,
    /// Parks ended by the timer armed for the sleep (a user timer due).
    pub woke_timer: AtomicU64,
    /// Parks ended by patch 11's bound with nothing found (an idle tick).
    pub woke_bound_idle: AtomicU64,
    /// Parks ended by patch 11's bound that found completions waiting: a
    /// wake-up the kernel should have delivered and did not. Zero on a
    /// healthy wake path.
    pub woke_bound_missed: AtomicU64,
    /// Parks ended by another thread writing the executor's eventfd.
    pub woke_kick: AtomicU64,
    /// Parks that ended with nothing to show (a signal, `EINTR`).
    pub woke_spurious: AtomicU64,
}

/// A copy of [`ParkCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ParkSnapshot {
    pub parks: u64,
    pub woke_completion: u64,
    pub woke_timer: u64,
    pub woke_bound_idle: u64,
    pub woke_bound_missed: u64,
    pub woke_kick: u64,
    pub woke_spurious: u64,
}

impl ParkCounters {
    /// Reads every counter (relaxed; each is exact, the set is not atomic).
    pub fn snapshot(&self) -> ParkSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ParkSnapshot {
            parks: r(&self.parks),
            woke_completion: r(&self.woke_completion),
            woke_timer: r(&self.woke_timer),
            woke_bound_idle: r(&self.woke_bound_idle),
            woke_bound_missed: r(&self.woke_bound_missed),
            woke_kick: r(&self.woke_kick),
            woke_spurious: r(&self.woke_spurious),
        }
    }
}

impl ParkSnapshot {
    /// The counts since `earlier`.
    pub fn since(&self, earlier: &ParkSnapshot) -> ParkSnapshot {
        ParkSnapshot {
            parks: self.parks - earlier.parks,
            woke_completion: self.woke_completion - earlier.woke_completion,
            woke_timer: self.woke_timer - earlier.woke_timer,
            woke_bound_idle: self.woke_bound_idle - earlier.woke_bound_idle,
            woke_bound_missed: self.woke_bound_missed - earlier.woke_bound_missed,
            woke_kick: self.woke_kick - earlier.woke_kick,
            woke_spurious: self.woke_spurious - earlier.woke_spurious,
        }
    }
}

/// The current executor's park counters (readable from any thread). Must be
/// called on an executor thread.
pub fn park_counters() -> Arc<ParkCounters> {
    crate::executor().reactor().sys.park_counters()
}

/// What ended one park, for [`ParkCounters`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum WakeCause {
    Completion,
    Timer,
    BoundIdle,
    BoundMissed,
    Kick,
    Spurious,
}

impl ParkCounters {
    pub(crate) fn count(&self, cause: WakeCause) {
        let c = match cause {
            WakeCause::Completion => &self.woke_completion,
            WakeCause::Timer => &self.woke_timer,
            WakeCause::BoundIdle => &self.woke_bound_idle,
            WakeCause::BoundMissed => &self.woke_bound_missed,
            WakeCause::Kick => &self.woke_kick,
            WakeCause::Spurious => &self.woke_spurious,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.parks.fetch_add(1, Ordering::Relaxed);
    }
}
