//! The server API: a builder with codecs, shards, limits and per-message-type
//! handlers; `serve` starts one glommio executor per shard, each with its own
//! listener on the address (SO_REUSEPORT), and returns a [`ServerHandle`].
//!
//! ```no_run
//! # use amring::{server::Server, codec::Message, stream::StreamContext};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
//! # impl Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
//! let handle = Server::builder()
//!     .handler(|_ctx: StreamContext, p: Ping| async move { Ok::<_, String>(Ping { n: p.n + 1 }) })
//!     .serve("127.0.0.1:0")
//!     .unwrap();
//! handle.shutdown(std::time::Duration::from_secs(1));
//! handle.join().unwrap();
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec::{CodecRegistry, DecodeError, Message, Reply};
use crate::dispatch::{wait_room, Limits, RoomFor};
use crate::error::Error;
use crate::proto::attach::RecoveryOptions;
use crate::runtime::shard::{self, ServerShared, ShardStats};
use crate::stream::{ConnInfo, StreamContext};

pub use crate::addr::BoundAddr;

/// What one handler invocation produced.
pub(crate) enum HandlerOutcome {
    /// The reply was queued.
    Replied,
    /// The reply could not be encoded/queued: nothing is sent (§5.4).
    SendFailed,
    /// The handler returned an error (or panicked): its text.
    Failed(String),
    /// The request body did not decode into the handler's type.
    Decode(DecodeError),
}

/// A reusable call slot of one handler on one stream worker: the handler's
/// future lives in it, so a request costs no allocation (the slot is
/// allocated once per stream worker and handler, not per request).
pub(crate) trait HandlerRunner {
    /// Decodes the request and starts the handler in the slot (dropping any
    /// call still in it); a decode failure is returned at once.
    fn start(self: Pin<&mut Self>, ctx: &StreamContext, payload: Bytes) -> Result<(), DecodeError>;
    /// Polls the running call; on completion the reply is queued on `ctx`'s
    /// stream and the slot is emptied.
    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>, ctx: &StreamContext) -> Poll<HandlerOutcome>;
    /// Drops the running call, if any (after a panic).
    fn reset(self: Pin<&mut Self>);
}

/// A pinned, boxed [`HandlerRunner`] borrowing its handler from the table.
pub(crate) type BoxedRunner<'a> = Pin<Box<dyn HandlerRunner + 'a>>;

trait ErasedHandler: Send + Sync {
    fn runner(&self) -> BoxedRunner<'_>;
}

struct TypedHandler<Req, F> {
    f: F,
    _req: PhantomData<fn() -> Req>,
}

/// Waiting for output room or replay-ring room (rare): boxed, off the hot path.
type RoomWait = Pin<Box<dyn Future<Output = bool>>>;

pin_project_lite::pin_project! {
    struct Runner<'a, Req, F, Fut, R> {
        f: &'a F,
        #[pin]
        call: Option<Fut>,
        // A reply refused with `ReplayBufferFull`, retried once room frees.
        reply: Option<R>,
        wait: Option<RoomWait>,
        _req: PhantomData<fn() -> Req>,
    }
}

impl<Req, F, Fut, R, E> HandlerRunner for Runner<'_, Req, F, Fut, R>
where
    Req: Message + DeserializeOwned + 'static,
    F: Fn(StreamContext, Req) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Reply,
    E: Display,
{
    fn start(self: Pin<&mut Self>, ctx: &StreamContext, payload: Bytes) -> Result<(), DecodeError> {
        let mut this = self.project();
        this.call.set(None);
        *this.reply = None;
        *this.wait = None;
        let codec = ctx.conn.borrow().codec;
        let req = codec
            .decode_envelope(&payload)
            .and_then(|env| codec.decode_body::<Req>(&env))?;
        drop(payload);
        this.call.set(Some((this.f)(ctx.clone(), req)));
        Ok(())
    }

    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>, ctx: &StreamContext) -> Poll<HandlerOutcome> {
        let mut this = self.project();
        loop {
            if let Some(w) = this.wait.as_mut() {
                let room = std::task::ready!(w.as_mut().poll(cx));
                *this.wait = None;
                if !room {
                    *this.reply = None;
                    return Poll::Ready(HandlerOutcome::SendFailed);
                }
            }
            if let Some(r) = this.reply.take() {
                // Output at its limit: the reply waits for the peer to read.
                let (full, credit) = {
                    let st = ctx.conn.borrow();
                    (st.outbound_full(), st.credit_blocked(ctx.id))
                };
                let why = if full {
                    Some(RoomFor::Output)
                } else if credit {
                    Some(RoomFor::Credit(ctx.id))
                } else {
                    match ctx.conn.borrow_mut().send_msg(ctx.id, r.message()) {
                        Ok(()) => return Poll::Ready(HandlerOutcome::Replied),
                        // v3, detached or un-ACKed: wait for ring room (no seq was used).
                        Err(Error::ReplayBufferFull { .. }) => Some(RoomFor::Ring),
                        Err(_) => None,
                    }
                };
                let Some(why) = why else {
                    return Poll::Ready(HandlerOutcome::SendFailed);
                };
                *this.reply = Some(r);
                let conn = ctx.conn.clone();
                *this.wait = Some(Box::pin(async move { wait_room(&conn, why).await }));
                continue;
            }
            let Some(fut) = this.call.as_mut().as_pin_mut() else {
                return Poll::Ready(HandlerOutcome::Failed("handler not started".to_owned()));
            };
            let r = std::task::ready!(fut.poll(cx));
            this.call.set(None);
            match r {
                Ok(r) => *this.reply = Some(r),
                Err(e) => return Poll::Ready(HandlerOutcome::Failed(e.to_string())),
            }
        }
    }

    fn reset(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.call.set(None);
        *this.reply = None;
        *this.wait = None;
    }
}

impl<Req, F, Fut, R, E> ErasedHandler for TypedHandler<Req, F>
where
    Req: Message + DeserializeOwned + 'static,
    F: Fn(StreamContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + 'static,
    R: Reply + 'static,
    E: Display + 'static,
{
    fn runner(&self) -> BoxedRunner<'_> {
        Box::pin(Runner::<Req, F, Fut, R> {
            f: &self.f,
            call: None,
            reply: None,
            wait: None,
            _req: PhantomData,
        })
    }
}

/// Handlers by wire name (a snapshot taken by `serve`, §5.3).
#[derive(Default)]
pub(crate) struct HandlerTable {
    by_name: HashMap<&'static str, usize>,
    entries: Vec<Box<dyn ErasedHandler>>,
}

impl HandlerTable {
    /// The handler index for a wire name.
    pub(crate) fn lookup(&self, wire: &str) -> Option<usize> {
        self.by_name.get(wire).copied()
    }

    /// Number of registered handlers (valid indices are `0..len()`).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A fresh call slot for handler `idx` (panics are caught by the caller).
    pub(crate) fn runner(&self, idx: usize) -> BoxedRunner<'_> {
        self.entries[idx].runner()
    }
}

type ConnHook = Box<dyn Fn(&ConnInfo) -> Result<(), String> + Send + Sync>;
type InfoHook = Box<dyn Fn(&ConnInfo) + Send + Sync>;
type StreamHook = Box<dyn Fn(&StreamContext) + Send + Sync>;

/// Lifecycle callbacks (run on the connection's core).
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) on_connect: Option<ConnHook>,
    pub(crate) on_disconnect: Option<InfoHook>,
    pub(crate) on_new_stream: Option<StreamHook>,
    pub(crate) on_close_stream: Option<StreamHook>,
}

impl Hooks {
    /// Runs `on_connect`, contained: `false` rejects the connection (the hook
    /// returned `Err` or panicked; a panic is counted in `panics` and logged).
    pub(crate) fn connect(&self, info: &ConnInfo, panics: &std::sync::atomic::AtomicU64) -> bool {
        let Some(f) = &self.on_connect else { return true };
        match crate::panic::contain(|| f(info)) {
            Ok(r) => r.is_ok(),
            Err(text) => {
                panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(target: "amring", conn = info.id, "on_connect panicked: {text}");
                false
            }
        }
    }

    /// Runs `on_disconnect`, contained (a panic is counted in `panics` and logged).
    pub(crate) fn disconnect(&self, info: &ConnInfo, panics: &std::sync::atomic::AtomicU64) {
        let Some(f) = &self.on_disconnect else { return };
        if let Err(text) = crate::panic::contain(|| f(info)) {
            panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(target: "amring", conn = info.id, "on_disconnect panicked: {text}");
        }
    }
}

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

/// Default of [`ServerBuilder::max_frame`]: 16 MiB.
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

/// Default of [`ServerBuilder::max_held_bytes`]: 1 GiB for the whole server.
pub const DEFAULT_MAX_HELD_BYTES: usize = 1 << 30;

/// Default of [`ServerBuilder::max_detached_sessions`].
pub const DEFAULT_MAX_DETACHED_SESSIONS: usize = 1024;

/// The system's maximum listen backlog (`/proc/sys/net/core/somaxconn`, as
/// Go's `net` package reads it), 4096 when it cannot be read.
fn system_max_backlog() -> i32 {
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
fn default_max_connections() -> usize {
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
    pub(crate) table: Arc<HandlerTable>,
    pub(crate) hooks: Arc<Hooks>,
}

/// Entry point: `Server::builder()`.
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
                io_memory: crate::runtime::IO_MEMORY,
                spin_before_park: None,
                table: Arc::new(HandlerTable::default()),
                hooks: Arc::new(Hooks::default()),
            },
            table: HandlerTable::default(),
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
            .field("handlers", &self.table.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ServerBuilder {
    /// Supported codecs (selection walks the client's list, §2.5).
    pub fn codecs(mut self, codecs: CodecRegistry) -> Self {
        self.cfg.codecs = codecs;
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

    /// Deadline for a client to complete its hello (the reference has none).
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
        let h: Box<dyn ErasedHandler> = Box::new(TypedHandler::<Req, F> { f, _req: PhantomData });
        match self.table.by_name.get(Req::WIRE_NAME) {
            Some(&i) => self.table.entries[i] = h,
            None => {
                self.table.by_name.insert(Req::WIRE_NAME, self.table.entries.len());
                self.table.entries.push(h);
            }
        }
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
        shard::start(addr, self.shards, Arc::new(self.cfg))
    }
}

/// A running server.
pub struct ServerHandle {
    pub(crate) addrs: Vec<BoundAddr>,
    pub(crate) shared: Arc<ServerShared>,
    pub(crate) joins: Vec<glommio::ExecutorJoinHandle<()>>,
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
