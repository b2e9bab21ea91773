//! The glommio shell: executors (shards), listeners, the connection driver and
//! timers. Everything glommio-specific lives here; the rest of the crate uses
//! `spawn`, `sleep` and the driver functions.

pub(crate) mod conn;
pub(crate) mod handshake;
pub(crate) mod io;
pub(crate) mod recovery;
pub(crate) mod shard;
pub(crate) mod socket;

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
