//! The v2 connection task on glommio, one local task per connection (open
//! loop, Unix sockets, `--io glommio`; closed-loop v2 over TCP takes
//! `epoll_drive` by default): pre-encoded frames written and parsed
//! directly, and one [`watchdog`] per worker instead of a timer per wait.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::timer::sleep;

use crate::conn_state::{
    any_in_flight, count_error, drain_limit, ConnCtx, InFlight, Phase, ReplyOutcome, Schedule, StreamState, V2Reader,
};
use crate::connect::Ready;
use crate::stats::ErrorKind;

/// What wakes a v2 connection task besides its socket: the end of the run or
/// the deadline of its oldest request, checked by one [`watchdog`] per worker
/// (no timer is armed per read).
pub(crate) struct Watch {
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
    pub(crate) fn new(end: Instant) -> Watch {
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
pub(crate) async fn watchdog(watches: Rc<Vec<Rc<Watch>>>, end: Instant, timeout: Duration) {
    let tick = watchdog_tick(timeout);
    // Bounded: connection tasks return by the end of their drain plus one tick, or at a timeout.
    let hard = end + 2 * timeout + Duration::from_secs(30);
    loop {
        if watches.iter().all(|w| w.done.get()) {
            return;
        }
        let now = Instant::now();
        if now > hard {
            return;
        }
        for w in watches.iter() {
            // The task keeps its deadline at or before `end` until the run
            // ends, and at or before the end of its drain after that.
            if !w.done.get() && !w.fired.get() && now >= w.deadline.get() {
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
pub(crate) async fn drive_v2(
    ctx: Rc<ConnCtx>,
    ready: Ready,
    watch: Rc<Watch>,
    t0: Instant,
    warm_end: Instant,
    end: Instant,
) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let tpl = &ctx.workload;
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
    let mut rd = V2Reader::new(rcap, &rest, max_frame);
    let mut sched = opts.rate.map(|rate| Schedule::for_conn(rate, opts.conns, gidx, t0));

    let mut now = Instant::now();
    // After `end`: no new requests; the replies in flight are awaited until `drain_end`.
    let drain_end = end + drain_limit(opts);
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
            if now >= end && (now >= drain_end || !any_in_flight(&streams)) {
                break Ok(());
            }
            if let Some(sc) = sched.as_mut().filter(|_| now < end) {
                sc.pump(now, warm_end, &mut streams, &ctx);
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

            // The oldest request's deadline, for the watchdog (and the end of the phase).
            let mut deadline = if now < end { end } else { drain_end };
            for st in &streams {
                if let Some(f) = st.inflight.front() {
                    deadline = deadline.min(f.t.max(now) + opts.timeout);
                }
            }
            watch.deadline.set(deadline);

            let read = async { Woke::Read(t.read(rd.room()).await) };
            let watched = future::or(read, async {
                watch.wait().await;
                Woke::Watch
            });
            let woke = match sched.as_ref().filter(|_| now < end) {
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
                    if now >= end && (now >= drain_end || !any_in_flight(&streams)) {
                        break Ok(());
                    }
                    if ctx.expired(&streams, now) {
                        break Err(ErrorKind::Timeout);
                    }
                    continue;
                }
                Woke::Read(Err(_)) => break Err(ErrorKind::Io),
                Woke::Read(Ok(0)) => break Err(ErrorKind::Closed),
                Woke::Read(Ok(n)) => n,
            };
            rd.filled(n);
            let phase = Phase::at(now, warm_end, end);
            let mut done = 0u64;
            let mut stats = ctx.stats.borrow_mut();
            loop {
                let (stream_id, payload) = match rd.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(kind) => {
                        drop(stats);
                        break 'conn Err(kind);
                    }
                };
                let s = stream_id as usize;
                match ctx.complete_reply(&mut streams, stream_id, payload, codec, now, phase, &mut stats) {
                    ReplyOutcome::Unmatched => continue,
                    ReplyOutcome::Good => done += 1,
                    ReplyOutcome::Bad => {}
                }
                if sched.is_none() && phase != Phase::Drain {
                    tpl.write_request_frame_v2(s as u32, next_id, &mut wbuf);
                    streams[s].inflight.push_back(InFlight { id: next_id, t: now });
                    next_id += 1;
                }
            }
            drop(stats);
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
