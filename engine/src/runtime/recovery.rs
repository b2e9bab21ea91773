//! v3 recovery in the glommio shell (spec §7): the attach exchange over a
//! socket, the server's per-shard session table and DetachedTTL sweep, the
//! cross-shard resume hand-off, and the client's reconnect supervisor.
//!
//! Server, one logical connection:
//! ```text
//!  hello v3 ─► attach request ─┬─ new ─► SessionTable (id[0] = shard) ─► reply ─► on_connect ─► run transport
//!                              └─ resume ─┬─ id[0] == shard ─► lookup ─► attach ─► reply ─► run transport (replay first)
//!                                         └─ other shard ─► fd + request over the shard mesh ─► owner does the above
//!  run transport ends: Detached ─► TTL armed (sweep task) ─► expired: finish + on_disconnect
//!                      Closed   ─► session dropped at once (permanent error, graceful CLOSE, shutdown)
//!                      Replaced ─► a resume took over: just drop this socket
//! ```
//!
//! The logical state (`ConnState`: streams, handler workers, replay ring) is
//! never tied to a socket: a resume swaps the transport under it and bumps
//! the session's transport epoch, which stops the previous driver.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};

use super::conn::{finish, run_transport, ConnHooks, TransportEnd};
use super::handshake::until;
use super::io::Transport;
use super::uring::dup_socket;
use crate::codec::CodecKind;
use crate::conn::info::ConnInfo;
use crate::conn::limits::SharedBudget;
use crate::conn::state::{ConnRef, ConnState};
use crate::proto::attach::{AttachMode, AttachRequest, AttachResponse, ATTACH_RESPONSE_LEN};
use crate::proto::recovery::CAP_GRACEFUL_CLOSE;
use crate::proto::{ConnConfig, ConnectionId, RecoveryParams, Role, SessionTable, Version};
use crate::runtime::config::ServerConfig;

use super::shared::ServerShared;

/// A resume that landed on a shard that does not own the connection id:
/// the socket and the already-read attach request travel to the owner.
pub(crate) struct Handoff {
    fd: OwnedFd,
    req: AttachRequest,
    rest: Vec<u8>,
    codec: CodecKind,
    max_frame: u32,
    peer: String,
    /// The connection's handshake deadline (set at accept): the owner must
    /// have written the attach response by then.
    deadline: Instant,
}

/// One per shard pair, created at server start (control path only).
pub(crate) type HandoffTx = SharedSender<Handoff>;
/// Receiving end of [`HandoffTx`].
pub(crate) type HandoffRx = SharedReceiver<Handoff>;

/// Per shard, one optional channel end per peer shard (`None` for itself).
pub(crate) type MeshRows<T> = Vec<Vec<Option<T>>>;

/// Creates the `n × n` hand-off channels: `(senders[i][j], receivers[j][i])`
/// carry hand-offs from shard `i` to shard `j`.
pub(crate) fn handoff_mesh(n: usize) -> (MeshRows<HandoffTx>, MeshRows<HandoffRx>) {
    let mut tx: MeshRows<HandoffTx> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut rx: MeshRows<HandoffRx> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for (i, row) in tx.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                let (s, r) = glommio::channels::shared_channel::new_bounded(64);
                *slot = Some(s);
                rx[j][i] = Some(r);
            }
        }
    }
    (tx, rx)
}

/// A registered logical connection of the server.
pub(crate) struct Session {
    conn: ConnRef,
    /// Bumped on every attach; a driver whose epoch is stale stops.
    epoch: Cell<u64>,
    hooks: ConnHooks,
    id: ConnectionId,
}

/// The v3 state of one server shard.
pub(crate) struct ShardRecovery {
    idx: usize,
    params: RecoveryParams,
    cfg: Arc<ServerConfig>,
    shared: Arc<ServerShared>,
    table: RefCell<SessionTable<Rc<Session>>>,
    peers: RefCell<Vec<Option<Rc<ConnectedSender<Handoff>>>>>,
    live: super::shared::Live,
    budget: Rc<SharedBudget>,
}

impl ShardRecovery {
    /// The shard's recovery state; `None` when the server has no recovery options.
    pub(crate) fn new(
        idx: usize,
        cfg: Arc<ServerConfig>,
        shared: Arc<ServerShared>,
        live: super::shared::Live,
        budget: Rc<SharedBudget>,
    ) -> Option<Rc<ShardRecovery>> {
        let opts = cfg.recovery?;
        let params = crate::proto::normalize_server_options(&opts).unwrap_or_default();
        let ttl = opts.normalized().detached_ttl;
        Some(Rc::new(ShardRecovery {
            idx,
            params,
            cfg,
            shared,
            table: RefCell::new(SessionTable::new(idx as u8, ttl)),
            peers: RefCell::new(Vec::new()),
            live,
            budget,
        }))
    }

    fn counters(&self) -> &super::shared::ShardCounters {
        &self.shared.shards[self.idx]
    }

    /// Connects this shard's ends of the hand-off mesh and starts the TTL
    /// sweep (all as local tasks).
    pub(crate) fn start(self: &Rc<Self>, tx: Vec<Option<HandoffTx>>, rx: Vec<Option<HandoffRx>>) {
        *self.peers.borrow_mut() = tx.iter().map(|_| None).collect();
        for (j, s) in tx.into_iter().enumerate() {
            let Some(s) = s else { continue };
            let me = self.clone();
            crate::exec::spawn(async move {
                let c = s.connect().await;
                me.peers.borrow_mut()[j] = Some(Rc::new(c));
            });
        }
        for r in rx.into_iter().flatten() {
            let me = self.clone();
            crate::exec::spawn(async move {
                let r: ConnectedReceiver<Handoff> = r.connect().await;
                while let Some(h) = r.recv().await {
                    if me.shared.stopping() {
                        continue;
                    }
                    let me2 = me.clone();
                    crate::exec::spawn(async move { me2.adopt(h).await });
                }
            });
        }
        let me = self.clone();
        crate::exec::spawn(async move {
            let tick = me
                .table
                .borrow()
                .ttl()
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            while !me.shared.stopping() {
                crate::exec::sleep(tick).await;
                let expired = me.table.borrow_mut().expire(Instant::now());
                for (_, s) in expired {
                    me.finalize(&s);
                }
                me.publish_detached();
            }
        });
    }

    /// Publishes this shard's detached count (read by the other shards and
    /// the stats snapshot).
    fn publish_detached(&self) {
        let n = self.table.borrow().detached_len() as u64;
        self.counters().detached.store(n, Ordering::Relaxed);
    }

    /// A session just detached: while the server-wide detached count exceeds
    /// `max_detached_sessions`, drop this shard's oldest detached session.
    fn enforce_detached_cap(&self) {
        self.publish_detached();
        let cap = self.cfg.max_detached_sessions as u64;
        let mut total: u64 = self
            .shared
            .shards
            .iter()
            .map(|c| c.detached.load(Ordering::Relaxed))
            .sum();
        while total > cap {
            let Some((_, s)) = self.table.borrow_mut().evict_oldest_detached() else {
                break;
            };
            total -= 1;
            self.counters().detached_evictions.fetch_add(1, Ordering::Relaxed);
            self.finalize(&s);
        }
        self.publish_detached();
    }

    /// Shutdown: every session without a transport is dropped now.
    pub(crate) fn drop_detached(&self) {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let expired = self.table.borrow_mut().expire(far);
        for (_, s) in expired {
            self.finalize(&s);
        }
        self.publish_detached();
    }

    /// The logical connection is over: streams closed, hooks, on_disconnect.
    fn finalize(&self, s: &Session) {
        if tracing::enabled!(target: "amring", tracing::Level::DEBUG) {
            let why = s.conn.borrow().failure.get().map(|f| f.to_string());
            tracing::debug!(target: "amring", conn = s.hooks.info.id, peer = %s.hooks.info.peer, reason = why.as_deref().unwrap_or("closed"), "v3 connection closed");
        }
        finish(&s.conn, Some(&s.hooks));
        let key = s.hooks.info.id;
        self.live.borrow_mut().retain(|(id, _)| *id != key);
        self.counters().sessions.fetch_sub(1, Ordering::Relaxed);
        self.cfg.hooks.disconnect(&s.hooks.info, &self.counters().hook_panics);
    }

    /// A connection was not live by its handshake deadline (§1.3): counted
    /// and recorded like a hello that timed out.
    fn timed_out(&self, peer: &str) {
        super::handshake::count_timeout(self.counters(), peer, self.cfg.handshake_timeout);
    }

    /// Serves a transport that completed a v3 hello: reads the attach request
    /// and dispatches on its mode. Everything up to the attach response (the
    /// read, a hand-off to the owner shard, the response write) must finish
    /// before `deadline`, the handshake deadline set at accept.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn serve(
        self: &Rc<Self>,
        mut io: Transport,
        mut rbuf: BytesMut,
        codec: CodecKind,
        max_frame: u32,
        flags: u8,
        info: Rc<ConnInfo>,
        deadline: Instant,
    ) {
        let read = async {
            loop {
                if let Some(r) = AttachRequest::decode(&mut rbuf) {
                    return Some(r);
                }
                match io.read_buf(&mut rbuf).await {
                    Ok(n) if n > 0 => {}
                    _ => return None,
                }
            }
        };
        let req = match until(deadline, read).await {
            Some(Some(req)) => req,
            Some(None) => {
                // The peer went away (or the socket failed) before its attach request.
                self.counters().handshake_failures.fetch_add(1, Ordering::Relaxed);
                self.counters().record(
                    crate::debug::FailureCode::Handshake,
                    format!("handshake failed from {}: no v3 attach request", info.peer),
                );
                io.close().await;
                return;
            }
            None => {
                self.timed_out(&info.peer);
                io.close().await;
                return;
            }
        };
        match req.mode {
            AttachMode::New => {
                self.attach_new(io, rbuf, req, codec, max_frame, flags, info, deadline)
                    .await
            }
            AttachMode::Resume => {
                let owner = usize::from(SessionTable::<()>::owner_shard(&req.connection_id));
                if owner != self.idx {
                    self.hand_off(io, rbuf, req, codec, max_frame, owner, &info.peer, deadline)
                        .await;
                } else {
                    self.resume(io, rbuf, req, codec, &info.peer, deadline).await;
                }
            }
            AttachMode::Other(_) => self.reject(io, deadline).await,
        }
    }

    /// Answers a rejected attach (the write bounded by the handshake
    /// deadline) and closes the socket.
    async fn reject(&self, mut io: Transport, deadline: Instant) {
        let n = self.counters().resume_rejects.fetch_add(1, Ordering::Relaxed) + 1;
        // Logged at 1, 2, 4, 8, … rejections: a brute-force attempt cannot flood the log.
        if n.is_power_of_two() {
            tracing::warn!(target: "amring", rejects = n, "v3 attach rejected (unknown or expired session, wrong secret, codec or mode)");
        }
        let mut out = BytesMut::with_capacity(ATTACH_RESPONSE_LEN);
        AttachResponse::rejected(&self.params).write(&mut out);
        let _ = until(deadline, io.write_all(&out)).await;
        io.close().await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn attach_new(
        self: &Rc<Self>,
        mut io: Transport,
        rbuf: BytesMut,
        req: AttachRequest,
        codec: CodecKind,
        max_frame: u32,
        flags: u8,
        info: Rc<ConnInfo>,
        deadline: Instant,
    ) {
        let Ok((id, secret)) = self.table.borrow().generate() else {
            return self.reject(io, deadline).await;
        };
        let proto = crate::proto::Connection::new(
            ConnConfig {
                role: Role::Server,
                version: Version::V3,
                max_frame,
                recovery: Some(self.params),
            },
            Instant::now(),
        );
        let graceful = req.reserved[0] & CAP_GRACEFUL_CLOSE != 0;
        let mut st = ConnState::new(
            proto,
            codec,
            Version::V3,
            max_frame,
            self.cfg.limits.clone(),
            Some(self.cfg.table.routes()),
        );
        st.set_budget(self.budget.clone());
        st.server = true;
        st.set_credit(
            flags,
            crate::proto::handshake::credit_flags(self.cfg.limits.max_inbound_bytes),
        );
        st.proto.set_graceful_close(graceful);
        st.session_id = Some(id);
        st.record_events = self.cfg.hooks.on_new_stream.is_some() || self.cfg.hooks.on_close_stream.is_some();
        let conn: ConnRef = Rc::new(RefCell::new(st));
        crate::conn::post::register(info.id, &conn);
        let session = Rc::new(Session {
            conn,
            epoch: Cell::new(1),
            hooks: ConnHooks {
                hooks: self.cfg.hooks.clone(),
                table: self.cfg.table.clone(),
                info: info.clone(),
            },
            id,
        });
        // Registered before the reply: a resume can never miss it.
        self.table.borrow_mut().insert(id, secret, codec.id(), session.clone());
        self.counters().sessions.fetch_add(1, Ordering::Relaxed);
        let unregister = || {
            self.table.borrow_mut().remove(&id);
            self.counters().sessions.fetch_sub(1, Ordering::Relaxed);
            crate::conn::post::unregister(info.id);
        };
        let mut resp = AttachResponse::accepted(id, secret, 0, &self.params);
        if graceful {
            resp.reserved[0] = CAP_GRACEFUL_CLOSE;
        }
        let mut out = BytesMut::with_capacity(ATTACH_RESPONSE_LEN);
        resp.write(&mut out);
        let written = until(deadline, io.write_all(&out)).await;
        if !matches!(written, Some(Ok(()))) {
            unregister();
            if written.is_none() {
                self.timed_out(&info.peer);
            }
            io.close().await;
            return;
        }
        self.counters().served.fetch_add(1, Ordering::Relaxed);
        // §7.4: OnConnect runs after the attach response.
        if !self.cfg.hooks.connect(&info, &self.counters().hook_panics) {
            unregister();
            io.close().await;
            return;
        }
        self.live
            .borrow_mut()
            .push((session.hooks.info.id, session.conn.clone()));
        self.run(session, io, rbuf, 1).await;
    }

    async fn resume(
        self: &Rc<Self>,
        mut io: Transport,
        rbuf: BytesMut,
        req: AttachRequest,
        codec: CodecKind,
        peer: &str,
        deadline: Instant,
    ) {
        let now = Instant::now();
        let found = self
            .table
            .borrow_mut()
            .lookup_resume(&req.connection_id, &req.resume_secret, codec.id(), now)
            .map(|e| (e.value.clone(), *e.secret()));
        self.publish_detached();
        let Ok((session, secret)) = found else {
            return self.reject(io, deadline).await;
        };
        // Stop a driver still attached to an old transport (§7.4).
        let epoch = session.epoch.get() + 1;
        session.epoch.set(epoch);
        let (attached, last_recv) = {
            let mut st = session.conn.borrow_mut();
            st.wake_driver();
            let r = st.proto.attach(now, req.last_recv_seq);
            if r.is_ok() && req.reserved[0] & CAP_GRACEFUL_CLOSE != 0 {
                st.proto.set_graceful_close(true);
            }
            (r, st.proto.last_recv_seq())
        };
        if attached.is_err() {
            // The peer is behind what the ring still holds: the session is lost.
            self.table.borrow_mut().remove(&session.id);
            self.finalize(&session);
            return self.reject(io, deadline).await;
        }
        let mut resp = AttachResponse::accepted(session.id, secret, last_recv, &self.params);
        if req.reserved[0] & CAP_GRACEFUL_CLOSE != 0 {
            resp.reserved[0] = CAP_GRACEFUL_CLOSE;
        }
        let mut out = BytesMut::with_capacity(ATTACH_RESPONSE_LEN);
        resp.write(&mut out);
        self.counters().resumes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "amring", conn = session.hooks.info.id, last_recv, "v3 session resumed");
        let written = until(deadline, io.write_all(&out)).await;
        if !matches!(written, Some(Ok(()))) {
            if written.is_none() {
                self.timed_out(peer);
            }
            if session.epoch.get() == epoch {
                session.conn.borrow_mut().proto.detach(Instant::now());
                self.table.borrow_mut().detach(&session.id, Instant::now());
                self.enforce_detached_cap();
            }
            io.close().await;
            return;
        }
        self.run(session, io, rbuf, epoch).await;
    }

    /// Drives one transport of a session and applies how it ended.
    async fn run(&self, session: Rc<Session>, mut io: Transport, rbuf: BytesMut, epoch: u64) {
        let end = run_transport(
            &session.conn,
            &mut io,
            rbuf,
            Some(&session.hooks),
            Some((&session.epoch, epoch)),
        )
        .await;
        match end {
            TransportEnd::Closed(_) => {
                let mine = self
                    .table
                    .borrow()
                    .get(&session.id)
                    .is_some_and(|e| Rc::ptr_eq(&e.value, &session));
                if mine {
                    self.table.borrow_mut().remove(&session.id);
                    self.finalize(&session);
                }
            }
            TransportEnd::Detached => {
                tracing::debug!(target: "amring", conn = session.hooks.info.id, "v3 transport lost: session detached, waiting for a resume");
                self.table.borrow_mut().detach(&session.id, Instant::now());
                self.enforce_detached_cap();
            }
            TransportEnd::Replaced => {}
        }
        io.close().await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn hand_off(
        &self,
        io: Transport,
        rbuf: BytesMut,
        req: AttachRequest,
        codec: CodecKind,
        max_frame: u32,
        owner: usize,
        peer: &str,
        deadline: Instant,
    ) {
        let sender = self.peers.borrow().get(owner).cloned().flatten();
        let Some(sender) = sender else {
            return self.reject(io, deadline).await;
        };
        let (fd, rest) = match io {
            // Our copy is dropped without shutdown: the socket lives on in `fd`.
            Transport::Tcp(s) => match dup_socket(&s) {
                Ok(fd) => (fd, rbuf.to_vec()),
                Err(_) => return self.reject(Transport::Tcp(s), deadline).await,
            },
            Transport::Unix(s) => match dup_socket(&s) {
                Ok(fd) => (fd, rbuf.to_vec()),
                Err(_) => return self.reject(Transport::Unix(s), deadline).await,
            },
            // The ring's receive stops first; what it had read goes along.
            Transport::Uring(u) => match u.into_fd().await {
                Ok((fd, extra)) => {
                    let mut rest = rbuf.to_vec();
                    rest.extend_from_slice(&extra);
                    (fd, rest)
                }
                Err(_) => return,
            },
        };
        let h = Handoff {
            fd,
            req,
            rest,
            codec,
            max_frame,
            peer: peer.to_owned(),
            deadline,
        };
        // A full mesh channel must not hold the socket past the deadline
        // (dropped with the hand-off, the socket is closed).
        match until(deadline, sender.send(h)).await {
            Some(Ok(())) => {
                self.counters().handoffs_out.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(_)) => {}
            None => self.timed_out(peer),
        }
    }

    /// Owner side of a hand-off: adopt the socket and finish the resume.
    async fn adopt(self: Rc<Self>, h: Handoff) {
        let io = Transport::from_owned_fd(h.fd);
        let _ = h.max_frame;
        self.counters().handoffs_in.fetch_add(1, Ordering::Relaxed);
        self.counters().active.fetch_add(1, Ordering::Relaxed);
        self.shared.active.fetch_add(1, Ordering::AcqRel);
        let rbuf = BytesMut::from(&h.rest[..]);
        let io = io.native(self.cfg.uring_io, &self.counters().uring_connections);
        self.resume(io, rbuf, h.req, h.codec, &h.peer, h.deadline).await;
        self.counters().active.fetch_sub(1, Ordering::Relaxed);
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

// ---- client ----

/// What a client needs to resume its logical connection.
pub(crate) struct ClientResume {
    pub(crate) addr: crate::addr::Addr,
    pub(crate) id: ConnectionId,
    pub(crate) secret: crate::proto::ResumeSecret,
    pub(crate) codec: CodecKind,
    pub(crate) max_frame: u32,
    pub(crate) registry: crate::codec::CodecRegistry,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_replay_bytes: usize,
    /// Bound of one resume attempt (the negotiated heartbeat timeout).
    pub(crate) attempt_timeout: Duration,
}

/// Why one attach exchange failed.
pub(crate) enum AttachFail {
    /// Worth another attempt after the backoff.
    Retry(String),
    /// Terminal (§7.10): `ErrResumeRejected` or `ErrUnsupportedFrameVersion`.
    Terminal(crate::error::Error),
}

/// Client side of the attach exchange: writes the 44-byte request, reads the
/// 60-byte response. Bytes after it stay in `rbuf`.
pub(crate) async fn client_attach(
    io: &mut Transport,
    rbuf: &mut BytesMut,
    mut req: AttachRequest,
) -> std::io::Result<AttachResponse> {
    req.reserved[0] |= CAP_GRACEFUL_CLOSE;
    let mut out = BytesMut::with_capacity(crate::proto::ATTACH_REQUEST_LEN);
    req.write(&mut out);
    io.write_all(&out).await?;
    loop {
        if let Some(r) = AttachResponse::decode(rbuf) {
            return Ok(r);
        }
        if io.read_buf(rbuf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn resume_once(r: &ClientResume, last_recv: u64) -> Result<(Transport, BytesMut, AttachResponse), AttachFail> {
    use super::handshake::ClientHsError;
    use crate::proto::handshake::{ClientHandshakeConfig, HandshakeError};
    use crate::proto::AttachError;
    let mut io = crate::runtime::socket::dial(&r.addr)
        .await
        .map_err(|e| AttachFail::Retry(e.to_string()))?;
    let mut rbuf = BytesMut::new();
    // A resume keeps the extensions negotiated when the session was created.
    let cfg = ClientHandshakeConfig {
        version: Version::V3,
        codecs: vec![r.codec.id()],
        max_frame: r.max_frame,
        flags: 0,
    };
    let neg = match super::handshake::client_raw(&mut io, cfg, &r.registry, &mut rbuf).await {
        Ok(n) => n,
        Err(e) => {
            io.close().await;
            return Err(match e {
                ClientHsError::Hs(
                    h @ (HandshakeError::UnsupportedVersion(_) | HandshakeError::VersionMismatch { .. }),
                ) => AttachFail::Terminal(h.into()),
                e => AttachFail::Retry(crate::error::Error::from(e).to_string()),
            });
        }
    };
    if neg.codec != r.codec {
        io.close().await;
        return Err(AttachFail::Terminal(crate::error::Error::ResumeRejected(
            "resume rejected: codec changed on resume".into(),
        )));
    }
    let req = AttachRequest::resume(r.id, r.secret, last_recv);
    let resp = match client_attach(&mut io, &mut rbuf, req).await {
        Ok(resp) => resp,
        Err(e) => {
            io.close().await;
            return Err(AttachFail::Retry(e.to_string()));
        }
    };
    match resp.validate_client(r.max_replay_bytes) {
        Ok(_) => Ok((io, rbuf, resp)),
        Err(e @ AttachError::ResumeRejected { .. }) => {
            io.close().await;
            Err(AttachFail::Terminal(crate::error::Error::ResumeRejected(e.to_string())))
        }
        Err(e) => {
            io.close().await;
            Err(AttachFail::Retry(e.to_string()))
        }
    }
}

/// Resolves once the connection is marked closed.
pub(crate) async fn wait_closed(conn: &ConnRef) {
    std::future::poll_fn(|cx| {
        let mut st = conn.borrow_mut();
        if st.closed {
            std::task::Poll::Ready(())
        } else {
            st.closed_wakers.push(cx.waker().clone());
            std::task::Poll::Pending
        }
    })
    .await
}

/// The client's connection task in v3: drives the transport; on loss resumes
/// with exponential backoff (forever, until a terminal failure or a local
/// close), replaying un-ACKed frames before new ones.
pub(crate) async fn client_supervisor(
    conn: ConnRef,
    io: Transport,
    rbuf: BytesMut,
    r: ClientResume,
    hooks: Option<ConnHooks>,
) {
    use crate::debug::FailureCode;
    let epoch = Cell::new(0u64);
    let mut cur = Some((io, rbuf));
    'outer: while let Some((mut io, rbuf)) = cur.take() {
        let end = run_transport(&conn, &mut io, rbuf, hooks.as_ref(), Some((&epoch, 0))).await;
        io.close().await;
        if !matches!(end, TransportEnd::Detached) {
            break;
        }
        let mut backoff = r.min_backoff;
        conn.borrow_mut().reconnecting = true;
        loop {
            if conn.borrow().closed {
                break 'outer;
            }
            let last = conn.borrow().proto.last_recv_seq();
            conn.borrow_mut().counters.reconnect_attempts += 1;
            let attempt = async {
                let timeout = async {
                    crate::exec::sleep(r.attempt_timeout).await;
                    Err(AttachFail::Retry("resume timeout".into()))
                };
                Some(future::or(resume_once(&r, last), timeout).await)
            };
            let closed = async {
                wait_closed(&conn).await;
                None
            };
            let Some(res) = future::or(attempt, closed).await else {
                break 'outer;
            };
            match res {
                Ok((io, rb, resp)) => {
                    let attached = {
                        let mut st = conn.borrow_mut();
                        let a = st.proto.attach(Instant::now(), resp.last_recv_seq);
                        st.proto.set_graceful_close(resp.reserved[0] & CAP_GRACEFUL_CLOSE != 0);
                        a
                    };
                    match attached {
                        Ok(()) => {
                            let mut st = conn.borrow_mut();
                            st.counters.reconnect_successes += 1;
                            st.reconnecting = false;
                            drop(st);
                            cur = Some((io, rb));
                            continue 'outer;
                        }
                        Err(e) => {
                            {
                                let mut st = conn.borrow_mut();
                                st.counters.reconnect_failures += 1;
                                st.fail(None, FailureCode::RecoveryReconnectTerminal, e.to_string());
                            }
                            io.close().await;
                            break 'outer;
                        }
                    }
                }
                Err(AttachFail::Terminal(e)) => {
                    let mut st = conn.borrow_mut();
                    st.counters.reconnect_failures += 1;
                    st.fail(None, FailureCode::RecoveryReconnectTerminal, e.to_string());
                    break 'outer;
                }
                Err(AttachFail::Retry(text)) => {
                    {
                        let mut st = conn.borrow_mut();
                        st.counters.reconnect_failures += 1;
                        st.fail(None, FailureCode::RecoveryResume, format!("resume failed: {text}"));
                    }
                    let sleep = async {
                        crate::exec::sleep(backoff).await;
                    };
                    future::or(sleep, wait_closed(&conn)).await;
                    backoff = backoff.saturating_mul(2).min(r.max_backoff);
                }
            }
        }
    }
    conn.borrow_mut().reconnecting = false;
    finish(&conn, hooks.as_ref());
}
