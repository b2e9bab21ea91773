//! The executor primitives that the connection layer needs (spawn a task on
//! this core, sleep on its timer wheel) and the executor defaults. The one
//! place below the runtime shell that names glommio: swapping the executor
//! means changing this file and `runtime/`.

use std::future::Future;
use std::time::Duration;

/// Spawns a detached task on the current core.
pub(crate) fn spawn(fut: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(fut).detach();
}

/// Sleeps on the current core's timer wheel.
pub(crate) async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Default `io_memory` of executors built by amring (the machine's locked
/// memory limit is small; the driver does not use registered buffers).
pub const IO_MEMORY: usize = 512 * 1024;

/// Default io_uring depth of a shard (glommio's default is 128).
///
/// Not for I/O concurrency (a network shard has few SQEs in flight) but for
/// the kernel's cancel table, which it sizes from the completion queue (16 ×
/// 2 × depth / 32 buckets, at most 256): every shard loop cancels and re-arms
/// one timer on the main ring, and each cancel walks one bucket of *all*
/// armed readiness polls, one per connection. At depth 128 that is 8 buckets,
/// so with 10k connections a cancel walked ~1250 entries and dominated the
/// shard (47 % of its CPU at 10k v3 connections). Depth 4096 gives the full
/// 256 buckets for ~1 MiB of ring memory per shard.
pub const RING_DEPTH: usize = 4096;
