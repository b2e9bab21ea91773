//! What `serve` hands the shards: the server configuration, where the shards
//! run, and the defaults of the server's limits.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::CodecRegistry;
use crate::conn::handler::{HandlerTable, Hooks};
use crate::conn::limits::Limits;
use crate::proto::attach::RecoveryOptions;

/// Where the shards run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shards {
    /// One pinned executor per online core (default).
    PerCore,
    /// One pinned executor per listed core.
    Cores(Vec<usize>),
    /// `n` executors the OS may move (tests, shared machines).
    Unpinned(usize),
}

/// Default of [`ServerBuilder::max_frame`](crate::ServerBuilder::max_frame): 16 MiB.
///
/// The reference's `0xFFFFFFFF` lets one frame make a server hold 4 GiB; a
/// frame is read whole before it is delivered, so this is also the most one
/// connection's read buffer holds. 16 MiB is far above any request/reply
/// message of an RPC service (gRPC's default message limit is 4 MiB) and
/// four times the default per-connection byte limits, yet bounds what a peer
/// can make a server allocate. The handshake takes the minimum (§2.7), so a
/// lower server value is compatible: Go clients adopt it and refuse larger
/// frames locally.
pub const DEFAULT_SERVER_MAX_FRAME: u32 = 16 << 20;

/// Default of [`ServerBuilder::max_held_bytes`](crate::ServerBuilder::max_held_bytes): 1 GiB for the whole server.
pub const DEFAULT_MAX_HELD_BYTES: usize = 1 << 30;

/// Default of [`ServerBuilder::max_detached_sessions`](crate::ServerBuilder::max_detached_sessions).
pub const DEFAULT_MAX_DETACHED_SESSIONS: usize = 1024;

/// The system's maximum listen backlog (`/proc/sys/net/core/somaxconn`, as
/// Go's `net` package reads it), 4096 when it cannot be read.
pub(crate) fn system_max_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// Default of [`ServerBuilder::max_connections`]: what `RLIMIT_NOFILE` (soft)
/// allows, less a reserve of 64 + 1/16 of it for listeners, rings, timers,
/// files and the process's own use; 100,000 when the limit is unlimited or
/// unreadable.
pub(crate) fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if r != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return 100_000;
    }
    let n = usize::try_from(lim.rlim_cur).unwrap_or(100_000);
    n.saturating_sub(64 + n / 16).max(1)
}

/// Everything `serve` needs, shared read-only by the shards.
pub(crate) struct ServerConfig {
    pub(crate) codecs: CodecRegistry,
    pub(crate) backlog: i32,
    pub(crate) limits: Limits,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_frame: u32,
    pub(crate) recovery: Option<RecoveryOptions>,
    pub(crate) max_detached_sessions: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_held_bytes: usize,
    pub(crate) io_memory: usize,
    pub(crate) spin_before_park: Option<Duration>,
    /// TCP connections on the shard's own io_uring (`runtime::uring`).
    pub(crate) uring_io: bool,
    pub(crate) table: Arc<HandlerTable>,
    pub(crate) hooks: Arc<Hooks>,
}

/// Whether TCP server connections use amring's own io_uring by default:
/// `AMRING_IO=glommio` or `AMRING_IO=uring` in the environment decide (for
/// A/B measurements), else [`DEFAULT_URING_IO`].
pub(crate) fn default_uring_io() -> bool {
    match std::env::var("AMRING_IO").as_deref() {
        Ok("glommio") => false,
        Ok("uring") => true,
        _ => DEFAULT_URING_IO,
    }
}

/// The built-in default of `ServerBuilder::uring_io`: off. Both paths park
/// in the shard's one ring; amring's raw ring I/O stays opt-in
/// (`AMRING_IO=uring`, `uring_io(true)`) while a stall it shows under load is
/// open: `tests/tests/backpressure.rs`'s shard-wide budget test (four
/// connections sharing a 256 KiB budget, read one after another) stops with
/// replies unsent, reliably on plain rings and sometimes on COOP rings under
/// CPU load, and never on glommio's sockets (see the README, "Socket I/O").
pub(crate) const DEFAULT_URING_IO: bool = false;
