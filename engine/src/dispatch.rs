//! Per-connection logical state and inbound dispatch (spec §5.4), shared by
//! the server and the client. Lives on the connection's core (`Rc<RefCell>`).
//!
//! ```text
//!  Delivered{stream, payload} ──► envelope decode ──fail──► ErrorReply{codec_error} + discard stream
//!                                     │
//!                    handler for wire? ──yes──► stream handler queue ──► stream worker (sequential)
//!                                     │no
//!                                     ▼
//!                               stream inbox (bounded; full → drop + count, never blocks the reader)
//! ```
//!
//! Nothing here touches a socket: the runtime driver feeds `ConnState::route`
//! and drains `proto` for writing. The transport can be swapped (v3 resume)
//! without touching this state.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{CodecKind, ErrorReply, Message, Profile};
use crate::debug::{ConnCounters, FailureCode, LastFailure, StreamCounters};
use crate::error::Error;
use crate::proto::{self, SendError, Version};
use crate::server::HandlerTable;

/// Resource limits of a connection (spec: amring limits; each hit is counted
/// and recorded with a [`FailureCode`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live stream states per connection; inbound frames for a new stream
    /// beyond it get `ErrorReply{protocol_error, "too many streams"}`.
    pub max_streams: usize,
    /// Messages parked in one stream's inbox; beyond it new ones are dropped.
    pub inbox_per_stream: usize,
    /// Messages parked in all inboxes of a connection; beyond it new ones are dropped.
    pub inbox_per_conn: usize,
    /// Requests queued for handlers on a connection; beyond it the connection
    /// stops reading until handlers catch up (TCP backpressure).
    pub max_pending_requests: usize,
    /// Server: evict a stream state idle for this long (no close frame on the wire).
    pub idle_stream_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 4096,
            inbox_per_stream: 1024,
            inbox_per_conn: 16 * 1024,
            max_pending_requests: 4096,
            idle_stream_timeout: None,
        }
    }
}

/// One queued handler request.
pub(crate) struct Pending {
    pub(crate) handler: usize,
    pub(crate) payload: Bytes,
}

/// Local state of one stream (spec §3.4).
pub(crate) struct StreamSlot {
    /// Incremented on every (re)creation: an ABA guard for waiters.
    pub(crate) gen: u64,
    pub(crate) inbox: VecDeque<Bytes>,
    pub(crate) recv_waker: Option<Waker>,
    pub(crate) receiving: bool,
    pub(crate) handler_q: VecDeque<Pending>,
    pub(crate) worker_waker: Option<Waker>,
    pub(crate) worker_alive: bool,
    pub(crate) handler_busy: bool,
    pub(crate) task_busy: bool,
    /// A task started by a handler waits here until that handler's reply is queued.
    pub(crate) task_gate: Option<Waker>,
    pub(crate) value: Option<Box<dyn Any>>,
    pub(crate) counters: StreamCounters,
    pub(crate) failure: LastFailure,
    pub(crate) last_active: Instant,
    pub(crate) recv_timeout: Option<Duration>,
}

impl StreamSlot {
    fn new(gen: u64, now: Instant) -> StreamSlot {
        StreamSlot {
            gen,
            inbox: VecDeque::new(),
            recv_waker: None,
            receiving: false,
            handler_q: VecDeque::new(),
            worker_waker: None,
            worker_alive: false,
            handler_busy: false,
            task_busy: false,
            task_gate: None,
            value: None,
            counters: StreamCounters::default(),
            failure: LastFailure::default(),
            last_active: now,
            recv_timeout: None,
        }
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
        if let Some(w) = self.worker_waker.take() {
            w.wake();
        }
        if let Some(w) = self.task_gate.take() {
            w.wake();
        }
    }

    /// True when nothing references the state but the table (eviction candidate).
    fn is_idle(&self) -> bool {
        self.inbox.is_empty() && self.handler_q.is_empty() && !self.handler_busy && !self.task_busy && !self.receiving
    }
}

/// The logical connection on its core.
pub(crate) struct ConnState {
    pub(crate) proto: proto::Connection,
    pub(crate) codec: CodecKind,
    pub(crate) version: Version,
    pub(crate) max_frame: u32,
    pub(crate) closed: bool,
    /// Close requested locally (graceful: flush first).
    pub(crate) closing: bool,
    pub(crate) streams: StreamMap,
    pub(crate) counters: ConnCounters,
    pub(crate) failure: LastFailure,
    pub(crate) next_stream_id: u32,
    pub(crate) next_gen: u64,
    pub(crate) limits: Limits,
    pub(crate) parked: usize,
    pub(crate) pending_requests: usize,
    pub(crate) handlers: Option<Arc<HandlerTable>>,
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
    /// v3: senders waiting for replay-ring room (woken on `Event::ReplayRoom` and on close).
    pub(crate) room_wakers: Vec<Waker>,
    /// Messages dropped because nobody could take them (limits).
    pub(crate) drops: u64,
    /// Copy of the transport counters, refreshed by the driver.
    pub(crate) transport_stats: proto::TransportStats,
    /// Stream opened (`true`) / closed (`false`) events for the server hooks.
    pub(crate) events: Vec<(bool, u32)>,
    /// Whether to record `events` (a server with hooks).
    pub(crate) record_events: bool,
    /// The latest clock reading seen (frame arrival). Handed to the sans-IO
    /// `send`, which only queues and does not read it, so that a send costs
    /// no clock read.
    pub(crate) clock: Instant,
}

/// Stream states by id. Stream ids are small integers chosen by the peer's
/// counter: the Fx hash is several times cheaper than SipHash on this
/// per-frame lookup, and a hostile peer gains nothing beyond the stream limit.
pub(crate) type StreamMap = HashMap<u32, StreamSlot, rustc_hash::FxBuildHasher>;

/// Shared handle to a connection's state (single core).
pub(crate) type ConnRef = Rc<RefCell<ConnState>>;

/// Outcome of routing one delivered frame.
pub(crate) enum Routed {
    /// Parked in the inbox (or dropped and counted).
    Parked,
    /// Queued for a handler; the stream needs a worker if `spawn` is set.
    Handler {
        /// True when no worker runs for the stream yet.
        spawn: bool,
    },
    /// Answered or dropped by the dispatch layer itself.
    Done,
}

impl ConnState {
    pub(crate) fn new(
        proto: proto::Connection,
        codec: CodecKind,
        version: Version,
        max_frame: u32,
        limits: Limits,
        handlers: Option<Arc<HandlerTable>>,
    ) -> ConnState {
        ConnState {
            proto,
            codec,
            version,
            max_frame,
            closed: false,
            closing: false,
            streams: StreamMap::default(),
            clock: Instant::now(),
            counters: ConnCounters::default(),
            failure: LastFailure::default(),
            next_stream_id: 0,
            next_gen: 0,
            limits,
            parked: 0,
            pending_requests: 0,
            handlers,
            driver_waker: None,
            closed_wakers: Vec::new(),
            room_wakers: Vec::new(),
            drops: 0,
            transport_stats: proto::TransportStats::default(),
            events: Vec::new(),
            record_events: false,
        }
    }

    /// Wakes the driver so it flushes / notices a close.
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver_waker.take() {
            w.wake();
        }
    }

    /// The slot of `id`, created when missing. `None` when the stream limit
    /// forbids creating it. The flag tells whether it was created now.
    pub(crate) fn slot_or_create(&mut self, id: u32, now: Instant) -> Option<(&mut StreamSlot, bool)> {
        let created = if !self.streams.contains_key(&id) {
            if self.streams.len() >= self.limits.max_streams {
                self.counters.stream_limit_hits += 1;
                self.failure.record(
                    FailureCode::LimitStreams,
                    format!("stream limit reached: {}", self.limits.max_streams),
                );
                return None;
            }
            self.next_gen += 1;
            self.streams.insert(id, StreamSlot::new(self.next_gen, now));
            self.counters.streams_opened += 1;
            if self.record_events {
                self.events.push((true, id));
            }
            true
        } else {
            false
        };
        self.streams.get_mut(&id).map(|s| (s, created))
    }

    /// Like [`ConnState::slot_or_create`], reading the clock only when the
    /// slot has to be created.
    pub(crate) fn slot_or_create_now(&mut self, id: u32) -> Option<(&mut StreamSlot, bool)> {
        if self.streams.contains_key(&id) {
            return self.streams.get_mut(&id).map(|s| (s, false));
        }
        self.slot_or_create(id, Instant::now())
    }

    /// Discards a stream's local state (spec §5.4 step 1): waiters see `Closed`.
    pub(crate) fn discard(&mut self, id: u32) -> bool {
        match self.streams.remove(&id) {
            Some(mut slot) => {
                self.parked -= slot.inbox.len();
                self.pending_requests -= slot.handler_q.len();
                if let Some(f) = slot.failure.get() {
                    self.failure.record(f.code, f.text.clone());
                }
                slot.wake_all();
                self.counters.streams_closed += 1;
                if self.record_events {
                    self.events.push((false, id));
                }
                true
            }
            None => false,
        }
    }

    /// Records a failure on a stream (if present) and the connection.
    pub(crate) fn fail(&mut self, id: Option<u32>, code: FailureCode, text: String) {
        if let Some(slot) = id.and_then(|id| self.streams.get_mut(&id)) {
            slot.failure.record(code, text.clone());
        }
        self.failure.record(code, text);
    }

    /// Records a contained panic of user code (a task or a hook): failure
    /// code, counter and one `tracing` line.
    pub(crate) fn record_panic(&mut self, stream: Option<u32>, code: FailureCode, text: String) {
        tracing::warn!(target: "amring", stream, code = code.as_str(), "{text}");
        self.counters.panics += 1;
        self.fail(stream, code, text);
    }

    /// Encodes `msg` into a frame on `id` (spec §6 Send: queue only).
    pub(crate) fn send_msg<M: Message + ?Sized>(&mut self, id: u32, msg: &M) -> Result<(), Error> {
        if self.closed {
            self.fail(
                Some(id),
                FailureCode::StreamEnqueue,
                "enqueue failed: connection closed".into(),
            );
            return Err(Error::Closed);
        }
        let codec = self.codec;
        let r = self
            .proto
            .send(self.clock, id, |buf| codec.encode(msg, Profile::Interop, buf));
        match r {
            Ok(()) => {
                self.counters.data_messages_sent += 1;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.counters.data_messages_sent += 1;
                }
                self.wake_driver();
                Ok(())
            }
            Err(SendError::Encode(e)) => {
                self.fail(Some(id), FailureCode::StreamEncode, format!("encode failed: {e}"));
                Err(Error::Encode(e))
            }
            Err(SendError::Frame(fe)) => {
                // v2 (§3.5): the reference's writer refuses the frame and closes
                // the whole connection; we do the same, and also say why.
                let len = match fe {
                    proto::FrameError::TooLarge { len, .. } => len,
                    proto::FrameError::BadVersion { got } => u32::from(got),
                };
                self.fail(None, FailureCode::ConnectionWriter, format!("writer loop failed: {fe}"));
                self.closing = true;
                self.closed = true;
                self.wake_driver();
                Err(Error::FrameTooLarge(len))
            }
            Err(SendError::ReplayFull { size, limit }) => {
                let e = Error::ReplayBufferFull { size, limit };
                self.fail(Some(id), FailureCode::StreamEnqueue, format!("enqueue failed: {e}"));
                Err(e)
            }
            Err(SendError::Closed) => {
                self.fail(
                    Some(id),
                    FailureCode::StreamEnqueue,
                    "enqueue failed: connection closed".into(),
                );
                Err(Error::Closed)
            }
        }
    }

    /// Sends an `ErrorReply` generated by dispatch/receive (§5.4, §5.5), counted.
    pub(crate) fn protocol_reply(&mut self, id: u32, code: &str, message: String) {
        self.counters.protocol_errors += 1;
        if let Some(s) = self.streams.get_mut(&id) {
            s.counters.protocol_errors += 1;
        }
        let text = format!("{code}: {message}");
        if let Some(s) = self.streams.get_mut(&id) {
            s.failure.record(FailureCode::StreamProtocol, text.clone());
        }
        self.failure
            .record(FailureCode::StreamProtocol, format!("stream protocol error: {text}"));
        let reply = ErrorReply {
            code: code.to_owned(),
            message,
        };
        if self.send_msg(id, &reply).is_err() {
            self.counters.protocol_error_reply_send_failures += 1;
            if let Some(s) = self.streams.get_mut(&id) {
                s.counters.protocol_error_reply_send_failures += 1;
            }
            self.fail(
                Some(id),
                FailureCode::StreamProtocolReplySend,
                "protocol error reply send failed".into(),
            );
        }
    }

    /// Counts a decode error on a stream and the connection.
    pub(crate) fn count_decode_error(&mut self, id: u32, text: String) {
        self.counters.decode_errors += 1;
        if let Some(s) = self.streams.get_mut(&id) {
            s.counters.decode_errors += 1;
        }
        self.fail(Some(id), FailureCode::StreamDecode, format!("decode failed: {text}"));
    }

    /// Routes one delivered data frame (spec §5.4); the flag tells whether
    /// the stream state was created by it.
    pub(crate) fn route(&mut self, stream_id: u32, payload: Bytes, now: Instant) -> (Routed, bool) {
        self.clock = now;
        let codec = self.codec;
        // Step 1: envelope decode (borrowed, no allocation).
        let handler = match codec.decode_envelope(&payload) {
            Ok(env) => self.handlers.as_ref().and_then(|h| h.lookup(env.wire)),
            Err(e) => {
                let created = self.slot_or_create(stream_id, now).is_some_and(|(_, c)| c);
                self.count_decode_error(stream_id, e.to_string());
                self.protocol_reply(stream_id, ErrorReply::CODEC_ERROR, e.to_string());
                self.discard(stream_id);
                return (Routed::Done, created);
            }
        };
        let limits_stream = self.limits.inbox_per_stream;
        let limits_conn = self.limits.inbox_per_conn;
        let parked = self.parked;
        let Some((slot, created)) = self.slot_or_create(stream_id, now) else {
            let msg = format!("too many streams: limit {}", self.limits.max_streams);
            self.protocol_reply(stream_id, ErrorReply::PROTOCOL_ERROR, msg);
            return (Routed::Done, false);
        };
        slot.last_active = now;
        match handler {
            // Step 2: a handler → the stream's sequential handler queue.
            Some(h) => {
                slot.handler_q.push_back(Pending { handler: h, payload });
                let spawn = !slot.worker_alive;
                if spawn {
                    slot.worker_alive = true;
                } else if let Some(w) = slot.worker_waker.take() {
                    w.wake();
                }
                self.pending_requests += 1;
                (Routed::Handler { spawn }, created)
            }
            // Step 3: no handler → the inbox, bounded; full never blocks the reader.
            None => {
                if slot.inbox.len() >= limits_stream || parked >= limits_conn {
                    slot.counters.inbox_overflows += 1;
                    let text = format!("inbox full: stream {stream_id} dropped a message");
                    slot.failure.record(FailureCode::LimitInbox, text.clone());
                    self.counters.inbox_overflows += 1;
                    self.drops += 1;
                    self.failure.record(FailureCode::LimitInbox, text);
                    return (Routed::Done, created);
                }
                slot.inbox.push_back(payload);
                if let Some(w) = slot.recv_waker.take() {
                    w.wake();
                }
                self.parked += 1;
                (Routed::Parked, created)
            }
        }
    }

    /// Marks the connection closed and wakes every waiter.
    pub(crate) fn mark_closed(&mut self) {
        if !self.closed {
            self.closed = true;
        }
        for slot in self.streams.values_mut() {
            slot.wake_all();
        }
        for w in self.closed_wakers.drain(..) {
            w.wake();
        }
        self.wake_driver();
    }

    /// Ids of streams idle longer than the eviction timeout (never stream 0 on a client).
    pub(crate) fn idle_streams(&self, now: Instant) -> Vec<u32> {
        let Some(t) = self.limits.idle_stream_timeout else {
            return Vec::new();
        };
        self.streams
            .iter()
            .filter(|(_, s)| s.is_idle() && now.saturating_duration_since(s.last_active) >= t)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Evicts a stream state (counted; invisible on the wire, §9 note 7).
    pub(crate) fn evict(&mut self, id: u32) {
        if self.discard(id) {
            self.counters.streams_evicted += 1;
            self.failure.record(
                FailureCode::StreamEvicted,
                format!("stream {id} evicted after idle timeout"),
            );
        }
    }

    /// True when no handler work is queued or running.
    pub(crate) fn handlers_idle(&self) -> bool {
        self.pending_requests == 0 && self.streams.values().all(|s| !s.handler_busy)
    }
}

/// Bench hook for `bench/benches/mux.rs`, not part of the API: the stream
/// table of a client-side connection (no handlers) whose messages are in
/// `codec`. Each call of the returned closure routes `frames` exactly as the
/// runtime routes delivered frames (`ConnState::route`: envelope decode,
/// stream lookup or creation, inbox push), then takes every parked message
/// back out as `Stream::recv` does. Returns how many messages went through.
#[doc(hidden)]
pub fn bench_router(codec: CodecKind) -> impl FnMut(&[proto::Delivered], Instant) -> usize {
    let config = proto::ConnConfig {
        role: proto::Role::Client,
        version: Version::V2,
        max_frame: u32::MAX,
        recovery: None,
    };
    let conn = proto::Connection::new(config, Instant::now());
    let mut st = ConnState::new(conn, codec, Version::V2, u32::MAX, Limits::default(), None);
    move |frames, now| {
        for d in frames {
            st.route(d.stream_id, d.payload.clone(), now);
        }
        let mut n = 0;
        for d in frames {
            if let Some(slot) = st.streams.get_mut(&d.stream_id) {
                if slot.inbox.pop_front().is_some() {
                    st.parked -= 1;
                    n += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(now: Instant) -> StreamSlot {
        StreamSlot::new(1, now)
    }

    #[test]
    fn idle_detection() {
        let now = Instant::now();
        let mut s = slot(now);
        assert!(s.is_idle());
        s.inbox.push_back(Bytes::from_static(b"x"));
        assert!(!s.is_idle());
        s.inbox.clear();
        s.task_busy = true;
        assert!(!s.is_idle());
    }

    #[test]
    fn bench_router_parks_and_takes_valid_messages_only() {
        let mut out = bytes::BytesMut::new();
        CodecKind::Compact
            .encode(
                &ErrorReply {
                    code: "x".into(),
                    message: "y".into(),
                },
                Profile::Interop,
                &mut out,
            )
            .unwrap();
        let good = out.freeze();
        let d = |stream_id, payload: &Bytes| proto::Delivered {
            stream_id,
            payload: payload.clone(),
        };
        let mut route = bench_router(CodecKind::Compact);
        let now = Instant::now();
        // Three messages on two streams, twice: every call empties the inboxes again.
        for _ in 0..2 {
            assert_eq!(route(&[d(1, &good), d(2, &good), d(1, &good)], now), 3);
        }
        // A payload that is no envelope is answered with a codec error, never parked.
        let bad = Bytes::from_static(&[0xc1]);
        assert_eq!(route(&[d(3, &bad), d(1, &good)], now), 1);
    }

    #[test]
    fn limits_defaults_match_reference_inbox() {
        let l = Limits::default();
        assert_eq!(l.inbox_per_stream, 1024);
        assert!(l.inbox_per_conn >= l.inbox_per_stream);
        assert!(l.idle_stream_timeout.is_none());
    }
}
