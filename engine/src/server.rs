//! The server API: a builder with codecs, shards, limits and per-message-type
//! handlers; `serve` starts one glommio executor per shard, each with its own
//! listener on the address (SO_REUSEPORT), and returns a [`ServerHandle`].
//!
//! ```no_run
//! # use amring::{Server, codec::Message, StreamContext};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
//! # impl Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
//! let handle = Server::builder()
//!     .handler(|_ctx: StreamContext, p: Ping| async move { Ok::<_, String>(Ping { n: p.n + 1 }) })
//!     .serve("127.0.0.1:0")
//!     .unwrap();
//! handle.shutdown(std::time::Duration::from_secs(1));
//! handle.join().unwrap();
//! ```

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::codec::{CodecKind, CodecRegistry, Message, Reply};
use crate::conn::context::StreamContext;
use crate::conn::handler::{HandlerTable, Hooks};
use crate::conn::info::ConnInfo;
use crate::conn::limits::Limits;
use crate::error::Error;
use crate::proto::attach::RecoveryOptions;
use crate::runtime::config::{
    default_max_connections, system_max_backlog, ServerConfig, Shards, DEFAULT_MAX_DETACHED_SESSIONS,
    DEFAULT_MAX_HELD_BYTES, DEFAULT_SERVER_MAX_FRAME,
};
use crate::runtime::shard;
use crate::runtime::shared::{ServerShared, ShardStats};

pub(crate) use crate::addr::BoundAddr;

/// Entry point: `Server::builder()`.
///
/// # Examples
///
/// A server with one handler per message type, one shard per core:
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
/// use amring::{Server, StreamContext};
/// let handle = Server::builder()
///     .handler(|_ctx: StreamContext, p: Ping| async move { Ok::<_, String>(Ping { n: p.n + 1 }) })
///     .serve("0.0.0.0:7000")?;
/// // ... later:
/// handle.shutdown(std::time::Duration::from_secs(5));
/// handle.join()?;
/// # Ok::<(), amring::Error>(())
/// ```
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults (both codecs, one shard per core,
    /// the system's maximum listen backlog, handshake timeout 10 s,
    /// max_frame [`DEFAULT_SERVER_MAX_FRAME`] (16 MiB)).
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            shards: Shards::PerCore,
            cfg: ServerConfig {
                codecs: CodecRegistry::default(),
                backlog: system_max_backlog(),
                limits: Limits::default(),
                handshake_timeout: Duration::from_secs(10),
                max_frame: DEFAULT_SERVER_MAX_FRAME,
                recovery: None,
                max_detached_sessions: DEFAULT_MAX_DETACHED_SESSIONS,
                max_connections: default_max_connections(),
                max_held_bytes: DEFAULT_MAX_HELD_BYTES,
                io_memory: crate::exec::IO_MEMORY,
                spin_before_park: None,
                uring_io: crate::runtime::config::default_uring_io(),
                table: Arc::new(HandlerTable::default()),
                hooks: Arc::new(Hooks::default()),
            },
            table: HandlerTable::registered(),
            hooks: Hooks::default(),
        }
    }
}

/// Configures and starts a server.
pub struct ServerBuilder {
    shards: Shards,
    cfg: ServerConfig,
    table: HandlerTable,
    hooks: Hooks,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("shards", &self.shards)
            .field("handlers", &self.table.names())
            .finish()
    }
}

impl ServerBuilder {
    /// Supported codecs (selection walks the client's list, §2.5).
    pub fn codecs(mut self, codecs: CodecRegistry) -> Self {
        self.cfg.codecs = codecs;
        self
    }

    /// Supports one more codec (the reference's `RegisterCodec`), e.g. a
    /// user codec (`CodecKind::Custom`) such as `codec::postcard::POSTCARD`
    /// (feature `postcard`). A client offering its id may then get it;
    /// clients that do not offer it are unaffected. Adding an id already
    /// supported changes nothing.
    pub fn codec(mut self, codec: impl Into<CodecKind>) -> Self {
        let _ = self.cfg.codecs.register(codec);
        self
    }

    /// Shard placement.
    pub fn shards(mut self, shards: Shards) -> Self {
        self.shards = shards;
        self
    }

    /// Listen backlog of every listener, TCP and Unix (default: the system
    /// maximum, `net.core.somaxconn`, as the Go reference uses; the kernel
    /// clamps larger values to it).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.cfg.backlog = backlog;
        self
    }

    /// Per-connection limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.cfg.limits = limits;
        self
    }

    /// Deadline, from accept, for a connection to become live (the reference
    /// has none): the hello and, for v3, the attach or resume exchange up to
    /// the attach response. Past it the connection is closed and counted in
    /// `handshake_timeouts` (`handshake.timeout`).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.cfg.handshake_timeout = t;
        self
    }

    /// The server's max_frame limit (negotiated as `min(client, this)`, §2.7;
    /// Go clients adopt the server's value). Default
    /// [`DEFAULT_SERVER_MAX_FRAME`]; `u32::MAX` is the reference's (no limit).
    pub fn max_frame(mut self, max_frame: u32) -> Self {
        self.cfg.max_frame = max_frame;
        self
    }

    /// v3 recovery options (spec §7): with `Some`, v3 hellos are accepted and
    /// logical connections survive transport loss for `detached_ttl`; with
    /// `None` a v3 hello gets `accept=0, version=2` so clients fall back (§2.6).
    pub fn recovery(mut self, opts: Option<RecoveryOptions>) -> Self {
        self.cfg.recovery = opts;
        self
    }

    /// v3: the most logical connections the server keeps without a transport
    /// (detached, waiting for a resume), across all shards. When a session
    /// detaches beyond the cap, the session of the same shard that detached
    /// longest ago is dropped at once (as if its DetachedTTL had expired:
    /// streams closed, `on_disconnect` runs; a later resume is rejected) and
    /// counted in `detached_evictions` of [`ServerHandle::stats`].
    /// The count is server-wide; eviction picks the oldest on the detaching
    /// shard (shards share no session order), so the oldest session overall
    /// may survive a younger one of another shard.
    ///
    /// Memory bound: a detached session holds its replay ring (at most the
    /// negotiated `max_replay_bytes`, default 8 MiB; on detach the retained
    /// frames are compacted into one exact-size allocation and the encode
    /// arena and transmit buffer are released) and a fixed part (logical
    /// state, stream table and per-stream state, session entry). The worst
    /// case is therefore `max_detached_sessions × (max_replay_bytes + fixed)`;
    /// with the defaults (1024 × 8 MiB) about 8 GiB. Typical sessions hold
    /// only their un-ACKed frames (up to `ack_every` frames or `ack_delay`
    /// worth of traffic): measured ≈ 3.7 KiB RSS per detached session with one
    /// stream and 4 retained replies (`tests/tests/recovery_memory.rs`).
    /// Default [`DEFAULT_MAX_DETACHED_SESSIONS`]; `usize::MAX` disables the cap.
    pub fn max_detached_sessions(mut self, n: usize) -> Self {
        self.cfg.max_detached_sessions = n;
        self
    }

    /// Connections open at once across all shards; more are closed on accept
    /// (counted in `rejected_limit`). Default: what the process's
    /// `RLIMIT_NOFILE` allows when the builder is made, less a reserve (64 +
    /// 1/16 of the limit), so descriptors run out for new connections before
    /// they run out for the rest of the process.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.cfg.max_connections = n;
        self
    }

    /// Server-wide byte budget: what all connections together may hold
    /// (inbound and outbound, as accounted for `Limits::max_inbound_bytes`
    /// and `Limits::max_outbound_bytes`), split evenly between the shards.
    /// While a shard's share is spent, its connections that hold anything
    /// stop reading until the total drops. Default
    /// [`DEFAULT_MAX_HELD_BYTES`]; `usize::MAX` turns it off.
    pub fn max_held_bytes(mut self, bytes: usize) -> Self {
        self.cfg.max_held_bytes = bytes;
        self
    }

    /// `io_memory` of each shard executor.
    pub fn io_memory(mut self, bytes: usize) -> Self {
        self.cfg.io_memory = bytes;
        self
    }

    /// Lets each shard busy-poll for up to `spin` after its last piece of
    /// work before it parks in the kernel (glommio's `spin_before_park`).
    ///
    /// A parked core needs an interrupt and a scheduler wake-up before it
    /// sees the next request, which dominates a lightly loaded round trip on
    /// virtual machines (tens of µs). Spinning trades that latency for CPU
    /// time of an otherwise idle core; a busy shard never parks, so this costs
    /// nothing under load. Default: off (park at once). Typical: 50–200 µs.
    pub fn spin_before_park(mut self, spin: Duration) -> Self {
        self.cfg.spin_before_park = (!spin.is_zero()).then_some(spin);
        self
    }

    /// Drives TCP connections with amring's own io_uring per shard instead of
    /// glommio's sockets: multishot receive into a shared provided-buffer
    /// ring, sends as SQEs, every connection's submissions in one
    /// `io_uring_enter` per pass (see the README's "I/O" section). Unix
    /// sockets always use glommio's. Falls back to glommio's sockets when
    /// the ring cannot be set up. Off by default (an open stall under load,
    /// see the README's "Socket I/O" section); the environment variable
    /// `AMRING_IO` (`uring` or `glommio`) sets the default.
    pub fn uring_io(mut self, on: bool) -> Self {
        self.cfg.uring_io = on;
        self
    }

    /// Registers the handler for `Req`'s wire name (a later registration of the
    /// same name wins). `Ok(R)` replies with `R` (`()` → `OkReply`), `Err(e)`
    /// with `ErrorReply{handler_error, e.to_string()}`; a panic is caught and
    /// answered like an error.
    pub fn handler<Req, F, Fut, R, E>(mut self, f: F) -> Self
    where
        Req: Message + DeserializeOwned + 'static,
        F: Fn(StreamContext, Req) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<R, E>> + 'static,
        R: Reply + 'static,
        E: Display + 'static,
    {
        self.table.add(f);
        self
    }

    /// Runs after the accept reply; an `Err` closes the connection (§2.4).
    pub fn on_connect(mut self, f: impl Fn(&ConnInfo) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.hooks.on_connect = Some(Box::new(f));
        self
    }

    /// Runs when a connection ends.
    pub fn on_disconnect(mut self, f: impl Fn(&ConnInfo) + Send + Sync + 'static) -> Self {
        self.hooks.on_disconnect = Some(Box::new(f));
        self
    }

    /// Runs when an inbound frame creates a stream state (§3.4).
    pub fn on_new_stream(mut self, f: impl Fn(&StreamContext) + Send + Sync + 'static) -> Self {
        self.hooks.on_new_stream = Some(Box::new(f));
        self
    }

    /// Runs when a stream state is discarded, evicted or its connection ends.
    pub fn on_close_stream(mut self, f: impl Fn(&StreamContext) + Send + Sync + 'static) -> Self {
        self.hooks.on_close_stream = Some(Box::new(f));
        self
    }

    /// Binds `addr` on every shard and starts serving.
    pub fn serve(mut self, addr: &str) -> Result<ServerHandle, Error> {
        self.cfg.table = Arc::new(self.table);
        self.cfg.hooks = Arc::new(self.hooks);
        let addr = crate::addr::Addr::parse(addr)?;
        let s = shard::start(addr, self.shards, Arc::new(self.cfg))?;
        Ok(ServerHandle {
            addrs: s.addrs,
            shared: s.shared,
            joins: s.joins,
        })
    }
}

/// A running server.
pub struct ServerHandle {
    addrs: Vec<BoundAddr>,
    shared: Arc<ServerShared>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("addrs", &self.addrs).finish()
    }
}

impl ServerHandle {
    /// The address clients dial (port 0 resolved).
    pub fn local_addr(&self) -> &BoundAddr {
        &self.addrs[0]
    }

    /// The dialable address as a string (`127.0.0.1:port`, `uds:///p`, `uds://@n`).
    pub fn dial_addr(&self) -> String {
        match &self.addrs[0] {
            BoundAddr::Tcp(a) => a.to_string(),
            other => other.to_string(),
        }
    }

    /// Every shard's listening address.
    pub fn addrs(&self) -> &[BoundAddr] {
        &self.addrs
    }

    /// Per-shard counters.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.shared.snapshot()
    }

    /// Stops accepting; in-flight handlers may finish until `deadline`, then
    /// every connection is closed. Returns at once; see [`ServerHandle::join`].
    pub fn shutdown(&self, deadline: Duration) {
        self.shared.request_stop(deadline);
    }

    /// Waits for every shard to finish (after [`ServerHandle::shutdown`]).
    pub fn join(self) -> Result<(), Error> {
        for j in self.joins {
            j.join().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        }
        Ok(())
    }
}
