//! Shards: one glommio `LocalExecutor` per core, each with its own listener
//! on the same TCP address (SO_REUSEPORT; the kernel spreads connections) and
//! an accept loop spawning one driver task per connection.
//!
//! Unix listeners cannot share an address via SO_REUSEPORT: a UDS (or
//! abstract) address is bound once, with the configured backlog, and every
//! shard accepts on a duplicate of that socket.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::net::{TcpListener, UnixListener};
use glommio::{LocalExecutorBuilder, Placement};

use super::conn::{drive, ConnHooks};
use super::handshake::{self, ServerHsFail};
use super::io::Transport;
use super::recovery::{HandoffRx, HandoffTx, ShardRecovery};
use super::shared::{Live, ServerShared, ShardCounters};
use super::socket;
use crate::addr::{Addr, BoundAddr};
use crate::conn::info::ConnInfo;
use crate::conn::limits::SharedBudget;
use crate::conn::state::{ConnRef, ConnState};
use crate::debug::FailureCode;
use crate::error::Error;
use crate::proto::handshake::{credit_flags, ServerHandshakeConfig};
use crate::proto::{ConnConfig, Role, Version};
use crate::runtime::config::{ServerConfig, Shards};

/// A listener created on the caller's thread, adopted inside its shard.
enum ListenSock {
    Tcp(socket2::Socket),
    Unix(socket2::Socket),
}

fn placements(shards: &Shards) -> Vec<Placement> {
    match shards {
        Shards::PerCore => {
            let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (0..n).map(Placement::Fixed).collect()
        }
        Shards::Cores(cores) => cores.iter().map(|&c| Placement::Fixed(c)).collect(),
        Shards::Unpinned(n) => (0..(*n).max(1)).map(|_| Placement::Unbound).collect(),
    }
}

/// The running shards of one `serve` call (the API wraps them in its
/// `ServerHandle`).
pub(crate) struct Started {
    /// Every shard's listening address.
    pub(crate) addrs: Vec<BoundAddr>,
    /// State and counters shared by the shards.
    pub(crate) shared: Arc<ServerShared>,
    /// One join handle per shard.
    pub(crate) joins: Vec<glommio::ExecutorJoinHandle<()>>,
}

/// Binds and starts every shard (see the module docs).
pub(crate) fn start(addr: Addr, shards: Shards, cfg: Arc<ServerConfig>) -> Result<Started, Error> {
    let places = placements(&shards);
    let mut socks = Vec::with_capacity(places.len());
    let mut addrs = Vec::new();
    match &addr {
        Addr::Tcp(hp) => {
            let mut sa = Addr::resolve_tcp(hp)?;
            for _ in 0..places.len() {
                let s = socket::tcp_listener(sa, cfg.backlog)?;
                // Port 0: shard 0 picked the port; the others bind to it.
                sa = s.local_addr()?.as_socket().unwrap_or(sa);
                addrs.push(BoundAddr::Tcp(sa));
                socks.push(ListenSock::Tcp(s));
            }
        }
        Addr::Unix(_) | Addr::Abstract(_) => {
            let s = socket::unix_listener(&addr, cfg.backlog)
                .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("bind {addr}: {e}"))))?;
            addrs.push(match &addr {
                Addr::Unix(p) => BoundAddr::Unix(p.clone()),
                Addr::Abstract(n) => BoundAddr::Abstract(n.clone()),
                Addr::Tcp(_) => unreachable!("matched above"),
            });
            // Every shard accepts on a duplicate of the one listening socket.
            for _ in 1..places.len() {
                socks.push(ListenSock::Unix(s.try_clone()?));
            }
            socks.insert(0, ListenSock::Unix(s));
        }
    }
    let shared = Arc::new(ServerShared {
        stop: AtomicBool::new(false),
        stop_wakers: Mutex::new(places.iter().map(|_| None).collect()),
        deadline: Mutex::new(None),
        active: AtomicUsize::new(0),
        next_conn: AtomicU64::new(1),
        shards: places.iter().map(|_| ShardCounters::default()).collect(),
    });
    let mut joins = Vec::with_capacity(places.len());
    // v3 resume hand-off channels between every pair of shards (TCP and
    // Unix sockets alike: every shard accepts, so a resume may land anywhere).
    let (mut htx, mut hrx) = if cfg.recovery.is_some() {
        super::recovery::handoff_mesh(places.len())
    } else {
        (Vec::new(), Vec::new())
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for (idx, (place, sock)) in places.into_iter().zip(socks).enumerate() {
        let cfg = cfg.clone();
        let shared2 = shared.clone();
        let ready = ready_tx.clone();
        let mesh = (
            std::mem::take(htx.get_mut(idx).unwrap_or(&mut Vec::new())),
            std::mem::take(hrx.get_mut(idx).unwrap_or(&mut Vec::new())),
        );
        let mut b = LocalExecutorBuilder::new(place)
            .name(&format!("amring-shard-{idx}"))
            .io_memory(cfg.io_memory)
            .ring_depth(crate::exec::RING_DEPTH);
        if let Some(spin) = cfg.spin_before_park {
            b = b.spin_before_park(spin);
        }
        let j = b
            .spawn(move || async move { shard_main(idx, sock, cfg, shared2, ready, mesh).await })
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        joins.push(j);
    }
    drop(ready_tx);
    let handle = Started { addrs, shared, joins };
    for _ in 0..handle.joins.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(text)) => {
                handle.shared.request_stop(Duration::ZERO);
                for j in handle.joins {
                    let _ = j.join();
                }
                return Err(Error::Io(std::io::Error::other(text)));
            }
            Err(_) => break,
        }
    }
    Ok(handle)
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<(Transport, String)> {
        match self {
            Listener::Tcp(l) => {
                let s = l.accept().await.map_err(std::io::Error::from)?;
                socket::borrow_tune_tcp(s.as_raw_fd())?;
                let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                Ok((Transport::Tcp(s), peer))
            }
            Listener::Unix(l) => {
                let s = l.accept().await.map_err(std::io::Error::from)?;
                Ok((Transport::Unix(s), "unix".to_owned()))
            }
        }
    }
}

/// What the accept loop does after a failed accept.
///
/// glommio reports some accept errors synchronously (its first, direct
/// `accept(2)`), so retrying at once would spin the shard and starve every
/// task on it, including the drivers that close sockets and free the very
/// descriptors the accept is waiting for. Out of descriptors or memory
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM) the loop sleeps, 1 ms doubling to 100 ms
/// while the errors last; any other error (a connection aborted before it was
/// accepted, …) only yields. Every failure is counted (`accept_errors`); a
/// burst is logged once, when it starts, and its end once.
#[derive(Default)]
struct AcceptBackoff {
    /// Failures in the current burst (0: none).
    burst: u64,
    delay: Duration,
}

impl AcceptBackoff {
    const MIN: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(100);

    fn reset(&mut self) {
        if self.burst > 0 {
            tracing::info!(target: "amring", failures = self.burst, "accept recovered");
        }
        self.burst = 0;
        self.delay = Duration::ZERO;
    }

    async fn failed(&mut self, shard: usize, e: &std::io::Error, counters: &ShardCounters) {
        counters.accept_errors.fetch_add(1, Ordering::Relaxed);
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if self.burst == 0 {
            tracing::warn!(target: "amring", shard, error = %e, "accept failed; backing off while it lasts");
        }
        self.burst += 1;
        if exhausted {
            self.delay = (self.delay * 2).clamp(Self::MIN, Self::MAX);
            crate::exec::sleep(self.delay).await;
        } else {
            future::yield_now().await;
        }
    }
}

async fn shard_main(
    idx: usize,
    sock: ListenSock,
    cfg: Arc<ServerConfig>,
    shared: Arc<ServerShared>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mesh: (Vec<Option<HandoffTx>>, Vec<Option<HandoffRx>>),
) {
    let listener = match sock {
        // SAFETY: the fd comes from a listening socket2 socket we own.
        ListenSock::Tcp(s) => Some(Listener::Tcp(unsafe { TcpListener::from_raw_fd(s.into_raw_fd()) })),
        // SAFETY: the fd comes from a listening socket2 Unix socket we own.
        ListenSock::Unix(s) => Some(Listener::Unix(unsafe { UnixListener::from_raw_fd(s.into_raw_fd()) })),
    };
    // How this shard parks (proven when its executor started), and its ring
    // I/O set up now, so that a fallback is logged once, at start.
    let _ = shared.shards[idx].park.set(super::shared::this_park());
    if cfg.uring_io {
        let up = super::uring::Reactor::get().is_ok();
        shared.shards[idx].ring_io.store(up, Ordering::Relaxed);
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    // Work other threads post to this shard (`RemoteStream` sends).
    crate::exec::spawn(crate::conn::post::run_jobs(crate::conn::post::open_post()));
    let live: Live = Rc::new(RefCell::new(Vec::new()));
    // This shard's share of the server-wide byte budget.
    let budget = SharedBudget::new(cfg.max_held_bytes / shared.shards.len().max(1));
    let rec = ShardRecovery::new(idx, cfg.clone(), shared.clone(), live.clone(), budget.clone());
    if let Some(r) = &rec {
        r.start(mesh.0, mesh.1);
    }
    if let Some(l) = &listener {
        let mut backoff = AcceptBackoff::default();
        while !shared.stopping() {
            let accepted = future::or(async { Some(l.accept().await) }, async {
                shared.stopped(idx).await;
                None
            })
            .await;
            let Some(r) = accepted else { continue };
            let counters = &shared.shards[idx];
            let (io, peer) = match r {
                Ok(x) => {
                    backoff.reset();
                    x
                }
                Err(e) => {
                    backoff.failed(idx, &e, counters).await;
                    continue;
                }
            };
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            if shared.active.fetch_add(1, Ordering::AcqRel) >= cfg.max_connections {
                shared.active.fetch_sub(1, Ordering::AcqRel);
                let n = counters.rejected_limit.fetch_add(1, Ordering::Relaxed) + 1;
                counters.record(
                    FailureCode::LimitConnections,
                    format!(
                        "connection closed on accept: max_connections {} reached",
                        cfg.max_connections
                    ),
                );
                if n.is_power_of_two() {
                    tracing::warn!(target: "amring", shard = idx, rejected = n, limit = cfg.max_connections, "max_connections reached: connection closed on accept");
                }
                crate::exec::spawn(io.close());
                continue;
            }
            counters.active.fetch_add(1, Ordering::Relaxed);
            let io = io.native(cfg.uring_io, &counters.uring_connections);
            let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
            let info = Rc::new(ConnInfo { id, shard: idx, peer });
            crate::exec::spawn(serve_conn(
                io,
                info,
                cfg.clone(),
                shared.clone(),
                live.clone(),
                rec.clone(),
                budget.clone(),
            ));
        }
    }
    shared.clear_stop_waker(idx);
    if let (0, Some(Listener::Unix(l))) = (idx, &listener) {
        // A filesystem socket is unlinked when its server stops (by shard 0;
        // the others hold duplicates of the same socket).
        if let Ok(Some(p)) = l.local_addr().map(|a| a.as_pathname().map(|p| p.to_path_buf())) {
            let _ = std::fs::remove_file(p);
        }
    }
    drop(listener);
    if let Some(r) = &rec {
        r.drop_detached();
    }
    // Graceful: stop reading, let handlers finish and replies flush.
    for (_, c) in live.borrow().iter() {
        let mut st = c.borrow_mut();
        st.closing = true;
        st.wake_driver();
    }
    let deadline = shared.deadline().unwrap_or_else(Instant::now);
    while !live.borrow().is_empty() && Instant::now() < deadline {
        crate::exec::sleep(Duration::from_millis(5)).await;
    }
    // Deadline: force-close what is left.
    for (_, c) in live.borrow().iter() {
        c.borrow_mut().mark_closed();
    }
    let hard = Instant::now() + Duration::from_secs(1);
    while !live.borrow().is_empty() && Instant::now() < hard {
        crate::exec::sleep(Duration::from_millis(5)).await;
    }
    crate::conn::post::close_post();
    super::uring::Reactor::shutdown_shard().await;
}

async fn serve_conn(
    mut io: Transport,
    info: Rc<ConnInfo>,
    cfg: Arc<ServerConfig>,
    shared: Arc<ServerShared>,
    live: Live,
    rec: Option<Rc<ShardRecovery>>,
    budget: Rc<SharedBudget>,
) {
    let counters = &shared.shards[info.shard];
    let mut rbuf = BytesMut::new();
    let hs_cfg = ServerHandshakeConfig {
        codecs: cfg.codecs.clone(),
        // Without recovery options a v3 hello gets accept=0, version=2 (§2.6).
        recovery: rec.is_some(),
        max_frame: cfg.max_frame,
        flags: credit_flags(cfg.limits.max_inbound_bytes),
    };
    let done = || {
        counters.active.fetch_sub(1, Ordering::Relaxed);
        shared.active.fetch_sub(1, Ordering::AcqRel);
    };
    // One deadline from accept bounds all of the pre-live phase: the hello
    // here, then for v3 the attach or resume exchange (`ShardRecovery::serve`).
    let deadline = Instant::now() + cfg.handshake_timeout;
    let neg = match handshake::server(&mut io, hs_cfg, &mut rbuf, deadline).await {
        Ok(n) => n,
        Err(fail) => {
            tracing::debug!(target: "amring", peer = %info.peer, failure = ?fail, "handshake failed");
            match fail {
                ServerHsFail::Timeout => handshake::count_timeout(counters, &info.peer, cfg.handshake_timeout),
                ServerHsFail::Rejected | ServerHsFail::Io => {
                    counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    counters.record(
                        FailureCode::Handshake,
                        format!("handshake failed from {}: {fail:?}", info.peer),
                    );
                }
            };
            io.close().await;
            done();
            return;
        }
    };
    if let (Version::V3, Some(r)) = (neg.version, &rec) {
        r.serve(io, rbuf, neg.codec, neg.max_frame, neg.flags, info, deadline)
            .await;
        done();
        return;
    }
    counters.served.fetch_add(1, Ordering::Relaxed);
    if !cfg.hooks.connect(&info, &counters.hook_panics) {
        io.close().await;
        done();
        return;
    }
    let proto = crate::proto::Connection::new(
        ConnConfig {
            role: Role::Server,
            version: neg.version,
            max_frame: neg.max_frame,
            recovery: None,
        },
        Instant::now(),
    );
    let mut st = ConnState::new(
        proto,
        neg.codec,
        neg.version,
        neg.max_frame,
        cfg.limits.clone(),
        Some(cfg.table.routes()),
    );
    st.record_events = cfg.hooks.on_new_stream.is_some() || cfg.hooks.on_close_stream.is_some();
    st.set_budget(budget);
    st.server = true;
    st.set_credit(neg.flags, credit_flags(cfg.limits.max_inbound_bytes));
    let conn: ConnRef = Rc::new(RefCell::new(st));
    live.borrow_mut().push((info.id, conn.clone()));
    crate::conn::post::register(info.id, &conn);
    let hooks = ConnHooks {
        hooks: cfg.hooks.clone(),
        table: cfg.table.clone(),
        info: info.clone(),
    };
    tracing::debug!(target: "amring", conn = info.id, peer = %info.peer, shard = info.shard, version = ?neg.version, codec = neg.codec.name(), "connection open");
    let end = drive(conn.clone(), io, rbuf, Some(hooks)).await;
    if tracing::enabled!(target: "amring", tracing::Level::DEBUG) {
        let why = conn.borrow().failure.get().map(|f| f.to_string());
        tracing::debug!(target: "amring", conn = info.id, end = ?end, reason = why.as_deref().unwrap_or("closed"), "connection closed");
    }
    live.borrow_mut().retain(|(id, _)| *id != info.id);
    cfg.hooks.disconnect(&info, &counters.hook_panics);
    done();
}
