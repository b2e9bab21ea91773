//! Generator workers: one pinned glommio executor per generator core, each
//! with its own connections and its own histogram.
//!
//! A worker runs three phases:
//! 1. **connect**: dial and handshake its share of the connections, paced by
//!    `--connect-rate` and bounded by `--connect-concurrency` in flight
//!    (`connect`);
//! 2. **barrier**: report readiness and wait until every worker is connected
//!    (the run's `t0`, set by the coordinator);
//! 3. **load**: until `t0 + warmup + duration`, either the epoll loop of
//!    `epoll_drive` (closed-loop v2 over TCP, `--io auto`) or one
//!    local task per connection (`v2_drive::drive_v2` for v2,
//!    `v3_drive::drive` through `proto::Connection` for v3).
//!
//! One connection task does everything for its connection (no split
//! reader/writer): write the batch of due requests in one call, then wait for
//! whichever comes first of readable bytes, the next intended send time (open
//! loop), the oldest request's timeout, or the end of the run.
//!
//! Imports go one way: this module uses `connect` and the three drivers
//! (`epoll_drive`, `v2_drive`, `v3_drive`), which use `connect` (for
//! `Ready`) and `conn_state` (the state they share, including [`Shared`] and
//! [`WorkerLive`], re-exported here); none of them uses this module.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use glommio::{LocalExecutorBuilder, Placement};

use amring_proto::Version;

pub use crate::conn_state::{Shared, WorkerLive};

use crate::conn_state::ConnCtx;
use crate::connect::connect_all;
use crate::stats::WorkerStats;
use crate::v2_drive::{drive_v2, watchdog, Watch};
use crate::v3_drive::drive;

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
        .ring_depth(amring::RING_DEPTH)
        .spawn(move || async move { run(idx, shared).await })
        .map_err(|e| std::io::Error::other(e.to_string()))
}

async fn run(idx: usize, shared: Arc<Shared>) -> WorkerStats {
    let opts = &shared.opts;
    let cores = opts.cores;
    let mine: Vec<usize> = (idx..opts.conns).step_by(cores).collect();
    let ctx = Rc::new(ConnCtx {
        shared: shared.clone(),
        stats: Rc::new(RefCell::new(WorkerStats {
            intervals: (opts.intervals.is_some() || opts.ramp_to.is_some()).then(Vec::new),
            seconds: opts.ramp_to.map(|_| Vec::new()),
            ..WorkerStats::default()
        })),
        idx,
        workload: shared.workload.clone(),
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
        if opts.io == crate::opts::IoMode::Auto
            && conns.iter().all(|r| crate::epoll_drive::raw_fd(&r.transport).is_some())
        {
            // TCP: the batched epoll data phase (see `epoll_drive`).
            crate::epoll_drive::run(&ctx, conns, t0, warm_end, end);
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
