//! The client API (runs inside a glommio executor): dial, v2 handshake, and a
//! [`Connection`] that is also stream 0 (spec §6).
//!
//! ```no_run
//! # async fn f() -> Result<(), amring::Error> {
//! # use amring::{Client, codec::OkReply};
//! let conn = Client::builder().timeout(Some(std::time::Duration::from_secs(1))).connect("127.0.0.1:7000").await?;
//! let s = conn.new_stream()?;
//! let _r: OkReply = s.send_recv(&OkReply {}).await?;
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::fmt::Display;
use std::future::Future;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use serde::de::DeserializeOwned;

use crate::addr::Addr;
use crate::codec::{CodecId, CodecKind, CodecRegistry, Message, Reply};
use crate::conn::context::StreamContext;
use crate::conn::handler::{HandlerTable, Hooks};
use crate::conn::info::ConnDebugState;
use crate::conn::info::ConnInfo;
use crate::conn::limits::Limits;
use crate::conn::state::{ConnRef, ConnState};
use crate::conn::stream::Stream;
use crate::error::Error;
use crate::proto::attach::{AttachError, AttachRequest};
use crate::proto::frame::DEFAULT_MAX_FRAME;
use crate::proto::handshake::{credit_flags, ClientHandshakeConfig};
use crate::proto::recovery::CAP_GRACEFUL_CLOSE;
use crate::proto::{ConnConfig, Role, Version};
use crate::runtime::conn::{drive, ConnHooks};
use crate::runtime::handshake;
use crate::runtime::recovery::{client_supervisor, ClientResume};
use crate::runtime::socket::dial;

/// Entry point: `Client::builder()`. Clients run inside a glommio executor
/// (for other threads see [`ClientThread`](crate::ClientThread)).
///
/// # Examples
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
/// use std::time::Duration;
/// use amring::{Client, ClientRecoveryOptions};
/// # async fn f() -> Result<(), amring::Error> {
/// let conn = Client::builder()
///     .timeout(Some(Duration::from_secs(2)))
///     .recovery(ClientRecoveryOptions::default()) // v3: survive transport loss
///     .connect("127.0.0.1:7000")
///     .await?;
/// let reply: Ping = conn.send_recv(&Ping { n: 1 }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Defaults: compact then map, max_frame `0xFFFFFFFF`, no timeout.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            codecs: vec![crate::codec::COMPACT_ID, crate::codec::MAP_ID],
            registry: CodecRegistry::default(),
            max_frame: DEFAULT_MAX_FRAME,
            timeout: None,
            limits: Limits::default(),
            recovery: None,
            stream_credit: false,
            table: HandlerTable::registered(),
        }
    }
}

/// Client v3 recovery options (spec §7.6, §7.10). Zero values mean the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRecoveryOptions {
    /// First wait after a failed resume attempt (default 100 ms).
    pub min_backoff: Duration,
    /// Backoff cap; the wait doubles up to it (default 2 s, raised to `min_backoff`).
    pub max_backoff: Duration,
    /// Bound of the client's replay ring in accounted bytes (default 8 MiB).
    pub max_replay_bytes: usize,
}

impl Default for ClientRecoveryOptions {
    fn default() -> Self {
        ClientRecoveryOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_replay_bytes: 8 * 1024 * 1024,
        }
    }
}

impl ClientRecoveryOptions {
    fn normalized(&self) -> ClientRecoveryOptions {
        let d = ClientRecoveryOptions::default();
        let min_backoff = if self.min_backoff.is_zero() {
            d.min_backoff
        } else {
            self.min_backoff
        };
        let max_backoff = if self.max_backoff.is_zero() {
            d.max_backoff
        } else {
            self.max_backoff
        };
        ClientRecoveryOptions {
            min_backoff,
            max_backoff: max_backoff.max(min_backoff),
            max_replay_bytes: if self.max_replay_bytes == 0 {
                d.max_replay_bytes
            } else {
                self.max_replay_bytes
            },
        }
    }
}

/// Configures and dials a client connection.
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    codecs: Vec<CodecId>,
    registry: CodecRegistry,
    max_frame: u32,
    timeout: Option<Duration>,
    limits: Limits,
    recovery: Option<ClientRecoveryOptions>,
    stream_credit: bool,
    table: HandlerTable,
}

impl ClientBuilder {
    /// Codecs offered, in preference order. User codecs in the list
    /// (`CodecKind::Custom`, e.g. `codec::postcard::POSTCARD` with the
    /// `postcard` feature) are registered locally too, so the server may
    /// select them (an id already in the local registry keeps its codec).
    pub fn codecs(mut self, codecs: impl IntoIterator<Item = CodecKind>) -> Self {
        let kinds: Vec<CodecKind> = codecs.into_iter().collect();
        for &k in &kinds {
            // Already there (a built-in, or the same id): nothing to add.
            let _ = self.registry.register(k);
        }
        self.codecs = kinds.into_iter().map(CodecKind::id).collect();
        self
    }

    /// Raw codec ids offered (validated before the hello is sent, §2.8:
    /// each must be in the local registry, see [`ClientBuilder::registry`]).
    pub fn codec_ids(mut self, ids: Vec<CodecId>) -> Self {
        self.codecs = ids;
        self
    }

    /// The local codec registry (the reference's `RegisterCodec` set): the
    /// ids [`ClientBuilder::codec_ids`] may offer and the codecs a server's
    /// choice resolves to. Defaults to compact and map.
    pub fn registry(mut self, registry: CodecRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// The largest payload this client accepts (offered in the hello).
    pub fn max_frame(mut self, max_frame: u32) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Bounds dial + handshake (`Error::ConnectTimeout`); `None` = no bound.
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t.filter(|d| !d.is_zero());
        self
    }

    /// Per-stream credit with amring servers (default off): each end
    /// advertises its receive window in the handshake (its
    /// [`Limits::max_inbound_bytes`] rounded down to a power of two), and a
    /// sender may have at most that many accounted bytes in flight that the
    /// receiver has not consumed, and at most
    /// [`STREAM_WINDOW`](crate::STREAM_WINDOW) of them on one stream. So a
    /// stream nobody reads never holds up the others, and both ends always
    /// read: grants and v3 ACKs never wait behind held requests. A Go
    /// reference server does not confirm it and the connection runs without
    /// it (connection-level backpressure, see the README).
    ///
    /// Off by default because it lowers the pipelining depth at which a
    /// caller that sends before it reads waits: a stream's handler runs its
    /// requests one at a time, so once a stream window of replies is unread
    /// the handler waits, stops taking requests, and the caller's `send`
    /// waits too. Read replies while sending (a reader task) when more than
    /// a window may be outstanding on one stream.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), amring::Error> {
    /// let conn = amring::Client::builder().stream_credit(true).connect("127.0.0.1:7000").await?;
    /// # Ok(()) }
    /// ```
    pub fn stream_credit(mut self, on: bool) -> Self {
        self.stream_credit = on;
        self
    }

    /// Hello byte 4: the credit byte advertising this client's receive
    /// window (its `max_inbound_bytes`), or 0 without credit.
    fn credit_flags(&self) -> u8 {
        if self.stream_credit {
            credit_flags(self.limits.max_inbound_bytes)
        } else {
            0
        }
    }

    /// Per-connection limits (byte limits, stream count).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// v3 recovery (spec §7): the hello asks for v3 and the connection
    /// survives transport loss by resuming with backoff. Against a server
    /// without v3 the client falls back to v2 on a new connection (§2.6).
    pub fn recovery(mut self, opts: ClientRecoveryOptions) -> Self {
        self.recovery = Some(opts.normalized());
        self
    }

    /// One request and its reply on a fresh connection with this builder's
    /// settings (codecs, limits, max_frame, recovery), closed afterwards: the
    /// reference's `Once` with options. The builder's `timeout` (5 s when
    /// unset) bounds the dial and the reply.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), amring::Error> {
    /// use amring::codec::{CodecKind, OkReply};
    /// let r: OkReply = amring::Client::builder()
    ///     .codecs([CodecKind::Map])
    ///     .once("127.0.0.1:7000", &OkReply {})
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn once<Req: Message + ?Sized, Rep: Message + DeserializeOwned>(
        &self,
        addr: &str,
        req: &Req,
    ) -> Result<Rep, Error> {
        let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
        let conn = self.clone().timeout(Some(timeout)).connect(addr).await?;
        conn.set_recv_timeout(Some(timeout));
        let r = conn.send_recv(req).await;
        conn.close();
        r
    }

    /// Registers a handler for `Req` messages the server sends (spec §5.3:
    /// a client dispatches inbound messages to its handlers like a server):
    /// a server push of that type on any stream runs `f`, one at a time per
    /// stream in arrival order, and its `Ok` value is sent back on that
    /// stream as with a server handler. Messages without a handler go to the
    /// stream's receivers as before.
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Tick { n: u64 }
    /// # impl amring::codec::Message for Tick { const WIRE_NAME: &'static str = "am.x.Tick"; }
    /// # async fn f() -> Result<(), amring::Error> {
    /// let conn = amring::Client::builder()
    ///     .handler(|_ctx: amring::StreamContext, t: Tick| async move {
    ///         println!("tick {}", t.n);
    ///         Ok::<_, String>(())
    ///     })
    ///     .connect("127.0.0.1:7000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn handler<Req, F, Fut, R, E>(mut self, f: F) -> Self
    where
        Req: Message + DeserializeOwned + 'static,
        F: Fn(StreamContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + 'static,
        R: Reply + 'static,
        E: Display + 'static,
    {
        self.table.add(f);
        self
    }

    /// The driver's handler context: `None` without handlers.
    fn conn_hooks(&self, addr: &Addr) -> Option<ConnHooks> {
        if self.table.is_empty() {
            return None;
        }
        Some(ConnHooks {
            hooks: Arc::new(Hooks::default()),
            table: Arc::new(self.table.clone()),
            info: Rc::new(ConnInfo {
                id: 0,
                shard: glommio::executor().id(),
                peer: addr.to_string(),
            }),
        })
    }

    /// Dials `addr` (spec §1.1 forms), runs the handshake (v3 + attach when
    /// recovery is set) and starts the driver.
    pub async fn connect(&self, addr: &str) -> Result<Connection, Error> {
        let addr = Addr::parse(addr)?;
        let setup = async {
            let mut io = dial(&addr).await?;
            let cfg = ClientHandshakeConfig {
                version: if self.recovery.is_some() {
                    Version::V3
                } else {
                    Version::V2
                },
                codecs: self.codecs.clone(),
                max_frame: self.max_frame,
                flags: self.credit_flags(),
            };
            let mut rbuf = BytesMut::new();
            let neg = match handshake::client_raw(&mut io, cfg.clone(), &self.registry, &mut rbuf).await {
                Ok(n) => n,
                Err(handshake::ClientHsError::Hs(e)) if e.is_v3_fallback() => {
                    // §2.6: a plain server; v2 hello on a new connection.
                    io.close().await;
                    io = dial(&addr).await?;
                    rbuf.clear();
                    match handshake::client(&mut io, cfg.fallback_v2(), &self.registry, &mut rbuf).await {
                        Ok(n) => n,
                        Err(e) => {
                            io.close().await;
                            return Err(e);
                        }
                    }
                }
                Err(e) => {
                    io.close().await;
                    return Err(e.into());
                }
            };
            let attach = match (neg.version, &self.recovery) {
                (Version::V3, Some(ro)) => {
                    let r =
                        crate::runtime::recovery::client_attach(&mut io, &mut rbuf, AttachRequest::new_session()).await;
                    let checked = match r {
                        Ok(resp) => match resp.validate_initial(ro.max_replay_bytes) {
                            Ok(params) => Ok((resp, params)),
                            Err(e @ AttachError::InitialRejected { .. }) => Err(Error::ResumeRejected(e.to_string())),
                            Err(e) => Err(Error::InvalidMessage(e.to_string())),
                        },
                        Err(e) => Err(Error::Io(e)),
                    };
                    match checked {
                        Ok(v) => Some(v),
                        Err(e) => {
                            io.close().await;
                            return Err(e);
                        }
                    }
                }
                _ => None,
            };
            Ok((io, neg, rbuf, attach))
        };
        let (io, neg, rbuf, attach) = match self.timeout {
            None => setup.await?,
            Some(t) => {
                let timer = async {
                    crate::exec::sleep(t).await;
                    Err(Error::ConnectTimeout)
                };
                future::or(setup, timer).await?
            }
        };
        let mut proto = crate::proto::Connection::new(
            ConnConfig {
                role: Role::Client,
                version: neg.version,
                max_frame: neg.max_frame,
                recovery: attach.as_ref().map(|(_, p)| *p),
            },
            Instant::now(),
        );
        if let Some((resp, _)) = &attach {
            proto.set_graceful_close(resp.reserved[0] & CAP_GRACEFUL_CLOSE != 0);
        }
        let hooks = self.conn_hooks(&addr);
        let routes = hooks.as_ref().map(|h| h.table.routes());
        let mut st = ConnState::new(
            proto,
            neg.codec,
            neg.version,
            neg.max_frame,
            self.limits.clone(),
            routes,
        );
        st.set_credit(neg.flags, self.credit_flags());
        if let Some((resp, _)) = &attach {
            st.session_id = Some(resp.connection_id);
        }
        let conn: ConnRef = Rc::new(RefCell::new(st));
        match (attach, &self.recovery) {
            (Some((resp, params)), Some(ro)) => {
                let r = ClientResume {
                    addr,
                    id: resp.connection_id,
                    secret: resp.resume_secret,
                    codec: neg.codec,
                    max_frame: neg.max_frame,
                    registry: self.registry.clone(),
                    min_backoff: ro.min_backoff,
                    max_backoff: ro.max_backoff,
                    max_replay_bytes: ro.max_replay_bytes,
                    attempt_timeout: params.heartbeat_timeout,
                };
                crate::exec::spawn(client_supervisor(conn.clone(), io, rbuf, r, hooks));
            }
            _ => {
                crate::exec::spawn({
                    let conn = conn.clone();
                    async move {
                        drive(conn, io, rbuf, hooks).await;
                    }
                });
            }
        }
        Ok(Connection {
            stream0: Stream::new(conn, 0),
        })
    }
}

/// A client connection; derefs to its stream 0. Dropping it (or
/// [`Connection::close`]) closes the connection.
///
/// # Examples
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
/// # async fn f() -> Result<(), amring::Error> {
/// let conn = amring::Client::builder().connect("127.0.0.1:7000").await?;
/// // Stream 0 through Deref:
/// let a: Ping = conn.send_recv(&Ping { n: 1 }).await?;
/// // More streams: each has its own order and its own server-side handler queue.
/// let s = conn.new_stream()?;
/// let b: Ping = s.send_recv(&Ping { n: 2 }).await?;
/// println!("{} streams, {:?}", conn.debug_state().stream_count, conn.debug_state().last_failure);
/// # Ok(()) }
/// ```
pub struct Connection {
    stream0: Stream,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Deref for Connection {
    type Target = Stream;
    fn deref(&self) -> &Stream {
        &self.stream0
    }
}

impl Connection {
    fn conn(&self) -> &ConnRef {
        &self.stream0.conn
    }

    /// A new stream with the next id (1, 2, 3, … like the reference); nothing
    /// is sent until its first message.
    pub fn new_stream(&self) -> Result<Stream, Error> {
        let mut st = self.conn().borrow_mut();
        if st.closed {
            return Err(Error::Closed);
        }
        st.next_stream_id = st.next_stream_id.wrapping_add(1);
        let id = st.next_stream_id;
        if st.slot_or_create(id, Instant::now()).is_none() {
            return Err(Error::TooManyStreams(st.limits.max_streams));
        }
        drop(st);
        Ok(Stream::new(self.conn().clone(), id))
    }

    /// The negotiated codec.
    pub fn codec(&self) -> CodecKind {
        self.conn().borrow().codec
    }

    /// The negotiated max_frame.
    pub fn max_frame(&self) -> u32 {
        self.conn().borrow().max_frame
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.conn().borrow().closed
    }

    /// Closes at once: queued but unwritten frames are lost (spec §6 Close).
    ///
    /// v3 between two amring peers (graceful close negotiated in the attach
    /// exchange) with a transport attached: the queued frames and a CLOSE
    /// control frame are flushed first, so the server drops the session at
    /// once instead of keeping it for DetachedTTL. Pending receives end with
    /// `Error::Closed` either way.
    pub fn close(&self) {
        close_conn(self.conn());
    }

    /// Waits until the connection has ended (peer close, error or `close`).
    pub async fn wait_closed(&self) {
        future::poll_fn(|cx| {
            let mut st = self.conn().borrow_mut();
            if st.closed {
                Poll::Ready(())
            } else {
                st.closed_wakers.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Snapshot of the connection's debug state (§8.2).
    pub fn debug_state(&self) -> ConnDebugState {
        ConnDebugState::of(self.conn())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.stream0.conn.try_borrow_mut().is_ok() {
            close_conn(&self.stream0.conn);
        }
    }
}

fn close_conn(conn: &ConnRef) {
    let mut st = conn.borrow_mut();
    if st.closed || st.closing {
        return;
    }
    if st.version == Version::V3 && st.proto.is_attached() && st.proto.close_gracefully(Instant::now()) {
        // The driver flushes what is queued plus CLOSE, then finishes the state.
        st.closing = true;
        st.wake_driver();
        return;
    }
    st.mark_closed();
}

/// One request/reply over a fresh connection (v2, default codecs), with a 5 s
/// timeout on connect and on the receive (spec §6 Once).
pub async fn once<Req: Message + ?Sized, Rep: Message + DeserializeOwned>(addr: &str, req: &Req) -> Result<Rep, Error> {
    once_with_timeout(addr, req, Duration::from_secs(5)).await
}

/// [`once`] with an explicit timeout.
pub async fn once_with_timeout<Req: Message + ?Sized, Rep: Message + DeserializeOwned>(
    addr: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Rep, Error> {
    Client::builder().timeout(Some(timeout)).once(addr, req).await
}
