//! Stream handles (spec §3.3, §6): [`Stream`] for sending and receiving on
//! one stream id, and [`RawMessage`] for untyped receives.

use std::any::Any;
use std::cell::Cell;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use serde::de::DeserializeOwned;

use crate::codec::{AnyMessage, CodecKind, ErrorReply, Message};
use crate::conn::info::StreamDebugState;
use crate::conn::state::ConnRef;
use crate::debug::FailureCode;
use crate::error::Error;

/// One stream of a connection. The client's `Connection` derefs to stream 0.
///
/// # Examples
///
/// Pipelining on one stream, then reading the replies in order:
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
/// # impl amring::codec::Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
/// # async fn f(conn: amring::Connection) -> Result<(), amring::Error> {
/// let s = conn.new_stream()?;
/// s.set_recv_timeout(Some(std::time::Duration::from_secs(1)));
/// for n in 0..10 {
///     s.send(&Ping { n }).await?; // waits only when the connection's output is full
/// }
/// for _ in 0..10 {
///     let p: Ping = s.recv().await?;
///     println!("{}", p.n);
/// }
/// # Ok(()) }
/// ```
pub struct Stream {
    pub(crate) conn: ConnRef,
    pub(crate) id: u32,
    recv_timeout: Cell<Option<Duration>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

/// An untyped received message: the wire name and the undecoded payload.
#[derive(Clone, Debug)]
pub struct RawMessage {
    codec: CodecKind,
    payload: Bytes,
    wire: Bytes,
}

impl RawMessage {
    fn new(codec: CodecKind, payload: Bytes) -> Result<RawMessage, crate::codec::DecodeError> {
        let wire = {
            let env = codec.decode_envelope(&payload)?;
            payload.slice_ref(env.wire.as_bytes())
        };
        Ok(RawMessage { codec, payload, wire })
    }

    /// The wire name.
    pub fn wire(&self) -> &str {
        std::str::from_utf8(&self.wire).unwrap_or("")
    }

    /// The whole envelope as received.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Decodes the body as `T`; another wire name gives `Error::TypeMismatch`
    /// (nothing is sent to the peer).
    pub fn decode<T: Message + DeserializeOwned>(&self) -> Result<T, Error> {
        if self.wire() != T::WIRE_NAME {
            return Err(Error::TypeMismatch {
                expected: T::WIRE_NAME.to_owned(),
                got: self.wire().to_owned(),
            });
        }
        let env = self.codec.decode_envelope(&self.payload)?;
        Ok(self.codec.decode_body(&env)?)
    }
}

/// Decodes one registered type from a received envelope.
type Decoder = fn(&RawMessage) -> Result<Box<dyn Any>, Error>;

/// The message types a dynamic receive decodes into (the reference's
/// registered types behind `Stream[Message]`): built once, shared by
/// receives.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Joined { who: String }
/// # impl amring::codec::Message for Joined { const WIRE_NAME: &'static str = "am.chat.Joined"; }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Said { text: String }
/// # impl amring::codec::Message for Said { const WIRE_NAME: &'static str = "am.chat.Said"; }
/// # async fn f(stream: amring::Stream) -> Result<(), amring::Error> {
/// let types = amring::MessageTypes::new().with::<Joined>().with::<Said>();
/// let m = stream.recv_dynamic(&types).await?;
/// match m.wire() {
///     "am.chat.Joined" => println!("{} joined", m.downcast::<Joined>().ok().unwrap().who),
///     _ => println!("said {}", m.downcast::<Said>().ok().unwrap().text),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MessageTypes {
    decoders: std::collections::HashMap<&'static str, Decoder>,
}

impl std::fmt::Debug for MessageTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.decoders.keys()).finish()
    }
}

impl MessageTypes {
    /// No types.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `T` under its wire name.
    pub fn with<T: Message + DeserializeOwned + 'static>(mut self) -> Self {
        self.decoders.insert(T::WIRE_NAME, |raw| {
            raw.decode::<T>().map(|v| Box::new(v) as Box<dyn Any>)
        });
        self
    }

    /// Whether a wire name is registered.
    pub fn contains(&self, wire: &str) -> bool {
        self.decoders.contains_key(wire)
    }

    /// Decodes `raw` into its registered type; an unregistered wire name is
    /// [`Error::UnknownMessage`].
    pub fn decode(&self, raw: &RawMessage) -> Result<Received, Error> {
        let Some(d) = self.decoders.get(raw.wire()) else {
            return Err(Error::UnknownMessage(raw.wire().to_owned()));
        };
        Ok(Received {
            wire: raw.wire().to_owned(),
            value: d(raw)?,
        })
    }
}

/// A message of one of the [`MessageTypes`], decoded: match on its wire name
/// or try its type.
#[derive(Debug)]
pub struct Received {
    wire: String,
    value: Box<dyn Any>,
}

impl Received {
    /// The wire name.
    pub fn wire(&self) -> &str {
        &self.wire
    }

    /// Whether the message is a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.value.is::<T>()
    }

    /// The message as a `T`, or `self` back when it is another type.
    pub fn downcast<T: Any>(self) -> Result<T, Received> {
        match self.value.downcast::<T>() {
            Ok(v) => Ok(*v),
            Err(value) => Err(Received { wire: self.wire, value }),
        }
    }
}

/// Clears the stream's single-receiver flag when a receive ends (or is dropped).
struct RecvGuard<'a> {
    conn: &'a ConnRef,
    id: u32,
    gen: u64,
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.conn.try_borrow_mut() {
            if let Some(s) = st.streams.get_mut(&self.id) {
                if s.gen == self.gen {
                    s.receiving = false;
                    s.recv_waker = None;
                }
            }
        }
    }
}

impl Stream {
    pub(crate) fn new(conn: ConnRef, id: u32) -> Stream {
        Stream {
            conn,
            id,
            recv_timeout: Cell::new(None),
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Encodes and queues `msg` on this stream (spec §6 Send: returns once
    /// queued). When the connection already holds
    /// [`Limits::max_outbound_bytes`](crate::Limits::max_outbound_bytes) to
    /// write (the peer reads slower than we send), or the v3 replay ring is
    /// full, it waits for room: nothing is dropped.
    pub async fn send<M: AnyMessage + ?Sized>(&self, msg: &M) -> Result<(), Error> {
        self.claim_slot()?;
        crate::conn::send::send_waiting(&self.conn, self.id, msg).await
    }

    /// Like [`Stream::send`], but fails at once with [`Error::Full`] instead
    /// of waiting for room.
    pub fn try_send<M: AnyMessage + ?Sized>(&self, msg: &M) -> Result<(), Error> {
        self.claim_slot()?;
        crate::conn::send::try_send(&mut self.conn.borrow_mut(), self.id, msg)
    }

    /// Like [`Stream::send`], waiting for room at most `timeout`
    /// ([`Error::SendTimeout`] then; nothing was queued).
    pub async fn send_timeout<M: AnyMessage + ?Sized>(&self, msg: &M, timeout: Duration) -> Result<(), Error> {
        self.claim_slot()?;
        send_within(&self.conn, self.id, msg, timeout).await
    }

    /// The stream's state, created when missing (the stream limit applies).
    fn claim_slot(&self) -> Result<(), Error> {
        let mut st = self.conn.borrow_mut();
        if st.slot_or_create_now(self.id).is_none() {
            return Err(Error::TooManyStreams(st.limits.max_streams));
        }
        Ok(())
    }

    /// Receive timeout for this stream (`None` or zero: wait forever).
    pub fn set_recv_timeout(&self, timeout: Option<Duration>) {
        let t = timeout.filter(|d| !d.is_zero());
        self.recv_timeout.set(t);
        if let Some(s) = self.conn.borrow_mut().streams.get_mut(&self.id) {
            s.recv_timeout = t;
        }
    }

    /// Takes (or peeks) the next inbox payload, honouring the timeout and the
    /// single-receiver rule (§6).
    async fn next_payload(&self, peek: bool) -> Result<Bytes, Error> {
        let gen = {
            let mut st = self.conn.borrow_mut();
            let closed = st.closed;
            let max = st.limits.max_streams;
            let Some((slot, _)) = st.slot_or_create_now(self.id) else {
                return Err(Error::TooManyStreams(max));
            };
            if slot.receiving {
                return Err(Error::ConcurrentRecv);
            }
            if closed && slot.inbox.is_empty() {
                return Err(Error::Closed);
            }
            slot.receiving = true;
            slot.recv_timeout = self.recv_timeout.get();
            slot.gen
        };
        let _guard = RecvGuard {
            conn: &self.conn,
            id: self.id,
            gen,
        };
        let id = self.id;
        let wait = future::poll_fn(|cx| {
            let mut st = self.conn.borrow_mut();
            let closed = st.closed;
            let evicting = st.limits.idle_stream_timeout.is_some();
            let st = &mut *st;
            let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) else {
                return Poll::Ready(Err(Error::Closed));
            };
            let item = if peek {
                s.inbox.front().cloned()
            } else {
                s.inbox.pop_front()
            };
            match item {
                Some(p) => {
                    s.counters.data_messages_received += 1;
                    if evicting {
                        // Only idle eviction reads it: no clock read otherwise.
                        s.last_active = Instant::now();
                    }
                    st.counters.data_messages_received += 1;
                    if !peek {
                        st.took_parked(id, crate::conn::limits::held_cost(&p));
                    }
                    Poll::Ready(Ok(p))
                }
                None if closed => Poll::Ready(Err(Error::Closed)),
                None => {
                    s.recv_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        match self.recv_timeout.get() {
            None => wait.await,
            Some(d) => {
                let timer = async {
                    crate::exec::sleep(d).await;
                    Err(Error::RecvTimeout)
                };
                let r = future::or(wait, timer).await;
                if matches!(r, Err(Error::RecvTimeout)) {
                    self.conn
                        .borrow_mut()
                        .fail(Some(id), FailureCode::StreamRecvTimeout, "stream recv timeout".into());
                }
                r
            }
        }
    }

    /// The peer's `ErrorReply` to a `send_recv`: counted, as [`Error::Remote`].
    fn remote_error(&self, er: ErrorReply) -> Error {
        let mut st = self.conn.borrow_mut();
        st.counters.remote_errors += 1;
        if let Some(s) = st.streams.get_mut(&self.id) {
            s.counters.remote_errors += 1;
        }
        Error::Remote {
            code: er.code,
            message: er.message,
        }
    }

    /// A receive-path failure: count, answer with an `ErrorReply`, discard the stream (§5.5).
    fn protocol_failure(&self, code: &str, message: String, decode_text: String) {
        let mut st = self.conn.borrow_mut();
        st.count_decode_error(self.id, decode_text);
        st.protocol_reply(self.id, code, message);
        st.discard(self.id);
    }

    fn interpret<T: Message + DeserializeOwned>(&self, payload: Bytes, remote: bool) -> Result<T, Error> {
        let codec = self.conn.borrow().codec;
        let env = match codec.decode_envelope(&payload) {
            Ok(env) => env,
            Err(e) => {
                self.protocol_failure(ErrorReply::CODEC_ERROR, e.to_string(), e.to_string());
                return Err(e.into());
            }
        };
        if remote && env.wire == ErrorReply::WIRE_NAME && T::WIRE_NAME != ErrorReply::WIRE_NAME {
            return Err(self.remote_error(codec.decode_body(&env).unwrap_or_default()));
        }
        if env.wire != T::WIRE_NAME {
            let err = Error::TypeMismatch {
                expected: T::WIRE_NAME.to_owned(),
                got: env.wire.to_owned(),
            };
            let msg = format!("expected {} got {}", T::WIRE_NAME, env.wire);
            self.protocol_failure(ErrorReply::PROTOCOL_ERROR, msg, err.to_string());
            return Err(err);
        }
        match codec.decode_body::<T>(&env) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.protocol_failure(ErrorReply::CODEC_ERROR, e.to_string(), e.to_string());
                Err(e.into())
            }
        }
    }

    /// Receives the next message as `T` (§5.5 typed `Recv`: an `ErrorReply` is a mismatch).
    pub async fn recv<T: Message + DeserializeOwned>(&self) -> Result<T, Error> {
        let p = self.next_payload(false).await?;
        self.interpret(p, false)
    }

    /// Receives the next message untyped.
    pub async fn recv_any(&self) -> Result<RawMessage, Error> {
        let p = self.next_payload(false).await?;
        let codec = self.conn.borrow().codec;
        RawMessage::new(codec, p).map_err(|e| {
            self.protocol_failure(ErrorReply::CODEC_ERROR, e.to_string(), e.to_string());
            Error::Decode(e)
        })
    }

    /// Receives the next message and decodes it into its type in `types`
    /// (the reference's dynamic receive, §5.5): an unregistered wire name is
    /// [`Error::UnknownMessage`], counted as a decode error; nothing is sent
    /// and the stream stays usable.
    pub async fn recv_dynamic(&self, types: &MessageTypes) -> Result<Received, Error> {
        let raw = self.recv_any().await?;
        self.decode_dynamic(types, &raw)
    }

    /// Sends `req` and receives the reply decoded by `types` (dynamic
    /// `SendRecv`): an `ErrorReply` becomes [`Error::Remote`] unless
    /// `ErrorReply` itself is registered.
    pub async fn send_recv_dynamic<Req: AnyMessage + ?Sized>(
        &self,
        req: &Req,
        types: &MessageTypes,
    ) -> Result<Received, Error> {
        self.send(req).await?;
        let raw = self.recv_any().await?;
        if raw.wire() == ErrorReply::WIRE_NAME && !types.contains(ErrorReply::WIRE_NAME) {
            return Err(self.remote_error(raw.decode()?));
        }
        self.decode_dynamic(types, &raw)
    }

    fn decode_dynamic(&self, types: &MessageTypes, raw: &RawMessage) -> Result<Received, Error> {
        types.decode(raw).inspect_err(|e| {
            self.conn.borrow_mut().count_decode_error(self.id, e.to_string());
        })
    }

    /// Sends `req` and receives the reply as `Rep`; an `ErrorReply` becomes `Error::Remote`.
    pub async fn send_recv<Req: AnyMessage + ?Sized, Rep: Message + DeserializeOwned>(
        &self,
        req: &Req,
    ) -> Result<Rep, Error> {
        self.send(req).await?;
        let p = self.next_payload(false).await?;
        self.interpret(p, true)
    }

    /// The next message's wire name, without consuming it.
    pub async fn peek_wire(&self) -> Result<String, Error> {
        let p = self.next_payload(true).await?;
        let codec = self.conn.borrow().codec;
        let r = codec.decode_envelope(&p).map(|e| e.wire.to_owned());
        r.map_err(|e| {
            self.protocol_failure(ErrorReply::CODEC_ERROR, e.to_string(), e.to_string());
            Error::Decode(e)
        })
    }

    /// Discards this stream's local state (nothing is sent, §3.4).
    pub fn close(self) {
        self.conn.borrow_mut().discard(self.id);
    }

    /// Snapshot of this stream's debug state, `None` when it has no state.
    pub fn debug_state(&self) -> Option<StreamDebugState> {
        let st = self.conn.borrow();
        st.streams
            .get(&self.id)
            .map(|s| StreamDebugState::of(self.id, s, st.closed))
    }
}

/// [`crate::conn::send::send_waiting`] bounded by `timeout`.
pub(crate) async fn send_within<M: AnyMessage + ?Sized>(
    conn: &ConnRef,
    id: u32,
    msg: &M,
    timeout: Duration,
) -> Result<(), Error> {
    let send = crate::conn::send::send_waiting(conn, id, msg);
    let timer = async {
        crate::exec::sleep(timeout).await;
        Err(Error::SendTimeout)
    };
    future::or(send, timer).await
}
