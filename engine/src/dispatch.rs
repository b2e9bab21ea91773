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

/// amring↔amring per-stream credit (negotiated in the handshake with
/// `proto::handshake::FLAG_STREAM_CREDIT`; never with a Go peer): a sender may
/// have at most this many accounted bytes (payload plus
/// [`MESSAGE_OVERHEAD`] per message) on one stream that the receiver has not
/// consumed yet (taken by a handler or a receive), or the receiver's
/// connection window if that is smaller. The receiver grants consumed bytes
/// back in batches of a quarter window, so one stream that nobody reads
/// holds at most a window at its receiver and never holds up the
/// connection's other streams.
pub const STREAM_WINDOW: usize = 256 << 10;

/// With per-stream credit, the connection-wide window of a receiver with the
/// default limits: accounted bytes a sender may have unconsumed at its peer
/// over all streams together. Each end advertises its own window in the
/// handshake: [`Limits::max_inbound_bytes`] rounded down to a power of two
/// (1 KiB to 1 GiB), so this is the window of `Limits::default()`. A
/// receiver with credit reads on up to its window and so never stops reading
/// for a compliant peer: the grants (and v3 ACKs) that the other direction
/// waits for are always read (no head-of-line deadlock behind held requests).
pub const CONN_WINDOW: usize = 4 << 20;

/// The receive windows of one direction of a connection with credit:
/// `(connection window, stream window)` for an advertised credit byte.
fn windows(flags: u8) -> (u64, u64) {
    let conn = proto::handshake::credit_window(flags).unwrap_or(CONN_WINDOW);
    (conn as u64, conn.min(STREAM_WINDOW) as u64)
}

/// With per-stream credit: the stream whose frames carry grants (12-byte
/// records: stream id u32 BE, bytes u64 BE). Ids count up from 1, so no user
/// stream reaches it.
pub(crate) const CREDIT_STREAM: u32 = 0xFFFF_FFFE;

/// Bytes a held message is accounted for (see [`MESSAGE_OVERHEAD`]).
pub(crate) fn held_cost(payload: &Bytes) -> usize {
    payload.len() + MESSAGE_OVERHEAD
}
use crate::proto::{self, SendError, Version};
use crate::server::HandlerTable;

/// Resource limits of a connection: what it may hold, in bytes, and how
/// many stream states it keeps. Nothing accepted is ever dropped: at a byte
/// limit the connection pushes back instead (it stops reading, so TCP pushes
/// back on the peer; `send` waits). Each message held is counted as its
/// payload plus [`MESSAGE_OVERHEAD`] bytes, so many tiny messages are bounded
/// too. The defaults keep one busy connection under a few MiB and cost an
/// idle connection nothing (limits, not reservations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live stream states per connection. At the cap, the least recently
    /// used idle streams (nothing queued, no handler or task running, nobody
    /// receiving) are evicted to make room (`streams_evicted`, code
    /// `stream.evicted`; an evicted stream is indistinguishable from a new
    /// one, except that its context value is gone and `on_close_stream` /
    /// `on_new_stream` run again when it comes back). Only when no stream is
    /// idle is a new one refused: `ErrorReply{protocol_error, "too many
    /// streams"}` (inbound) or [`Error::TooManyStreams`] (`new_stream`).
    pub max_streams: usize,
    /// Bytes of inbound messages held: requests queued for handlers plus
    /// messages waiting in stream inboxes. At the limit the connection stops
    /// reading the socket until handlers and receivers catch up (counted in
    /// `intake_pauses`). The read buffer is separate: it holds at most one
    /// frame (bounded by the negotiated `max_frame`) plus one read.
    pub max_inbound_bytes: usize,
    /// Bytes of frames queued for the socket and not yet written. At the
    /// limit `send` waits (`try_send` fails with [`Error::Full`]), handler
    /// replies wait, and the connection stops reading new requests until the
    /// peer reads. (v3: the replay ring, `max_replay_bytes`, bounds unacknowledged frames
    /// besides.)
    pub max_outbound_bytes: usize,
    /// Server: bytes of messages parked for which nothing can ever ask (no
    /// handler for their type, no task or receiver on their stream). Within
    /// the limit they wait, as in the reference, for a task started later on
    /// the stream; beyond it they are dropped and counted as unknown messages
    /// (`unknown_messages`, code `dispatch.unknown_message`) instead of
    /// wedging the connection as in the reference (spec §9 note 5).
    pub max_unread_bytes: usize,
    /// Server: evict a stream state idle for this long (no close frame on the wire).
    pub idle_stream_timeout: Option<Duration>,
}

/// Bytes accounted per held message on top of its payload (queue slot,
/// buffer handle and allocator overhead), so that counts are bounded too.
pub const MESSAGE_OVERHEAD: usize = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 4096,
            max_inbound_bytes: 4 << 20,
            max_outbound_bytes: 4 << 20,
            max_unread_bytes: 256 << 10,
            idle_stream_timeout: None,
        }
    }
}

/// A byte budget shared by the connections of one server shard: its part of
/// `ServerBuilder::max_held_bytes`. Each connection reports what it holds
/// (inbound and outbound, as accounted for its own limits); while the shard
/// total is at the budget, every connection that holds anything stops
/// reading, and the waiting drivers are woken when the total drops below it.
pub(crate) struct SharedBudget {
    limit: usize,
    held: std::cell::Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
}

impl SharedBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Rc<SharedBudget> {
        Rc::new(SharedBudget {
            limit,
            held: std::cell::Cell::new(0),
            waiters: RefCell::new(Vec::new()),
        })
    }

    /// Bytes held by the shard's connections now.
    pub(crate) fn held(&self) -> usize {
        self.held.get()
    }

    fn over(&self) -> bool {
        self.held.get() >= self.limit
    }

    fn add(&self, n: usize) {
        self.held.set(self.held.get() + n);
    }

    fn sub(&self, n: usize) {
        let was_over = self.over();
        self.held.set(self.held.get().saturating_sub(n));
        if was_over && !self.over() {
            for w in self.waiters.borrow_mut().drain(..) {
                w.wake();
            }
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
    /// Accounted bytes of `inbox` (see [`held_cost`]).
    pub(crate) inbox_bytes: usize,
    /// Per-stream credit, sending side: payload bytes sent and granted back.
    credit_sent: u64,
    credit_granted: u64,
    /// Per-stream credit, receiving side: bytes consumed, not granted yet.
    credit_consumed: u64,
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
            inbox_bytes: 0,
            credit_sent: 0,
            credit_granted: 0,
            credit_consumed: 0,
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

    /// True when somebody may read the inbox (a receiver or the stream's task).
    fn has_reader(&self) -> bool {
        self.receiving || self.task_busy
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
    /// Messages in all inboxes.
    pub(crate) parked: usize,
    /// Accounted bytes in all inboxes.
    pub(crate) parked_bytes: usize,
    /// Requests in all handler queues.
    pub(crate) pending_requests: usize,
    /// Accounted bytes in all handler queues.
    pub(crate) pending_bytes: usize,
    /// Bytes the driver holds written-to-be (its write buffer's unwritten tail).
    pub(crate) unwritten: usize,
    /// Capacity of the driver's read buffer at its last read (debug state).
    pub(crate) read_buffer: usize,
    /// The driver stopped reading at a limit and waits for a wake when
    /// holdings drop below it.
    pub(crate) intake_waiting: bool,
    /// Server: the shard's shared byte budget, and what this connection
    /// last reported to it.
    budget: Option<Rc<SharedBudget>>,
    budget_reported: usize,
    /// Per-stream credit negotiated (both ends are amring).
    pub(crate) credit: bool,
    /// Per-stream credit: the peer's receive windows (what this end may
    /// send ahead): connection, stream.
    peer_windows: (u64, u64),
    /// Per-stream credit: this end's receive windows, as advertised.
    own_windows: (u64, u64),
    /// Per-stream credit, connection-wide: accounted bytes sent and granted.
    credit_conn_sent: u64,
    credit_conn_granted: u64,
    pub(crate) handlers: Option<Arc<HandlerTable>>,
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
    /// v3: senders waiting for replay-ring room (woken on `Event::ReplayRoom` and on close).
    pub(crate) room_wakers: Vec<Waker>,
    /// Senders waiting for the output to drop below its limit (woken by the
    /// driver after writing, or when the shard budget drops).
    pub(crate) out_wakers: Vec<Waker>,
    /// Senders waiting for per-stream credit (woken by grants).
    credit_wakers: Vec<Waker>,
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
            parked_bytes: 0,
            pending_requests: 0,
            pending_bytes: 0,
            unwritten: 0,
            read_buffer: 0,
            intake_waiting: false,
            budget: None,
            budget_reported: 0,
            credit: false,
            peer_windows: (0, 0),
            own_windows: (0, 0),
            credit_conn_sent: 0,
            credit_conn_granted: 0,
            handlers,
            driver_waker: None,
            closed_wakers: Vec::new(),
            room_wakers: Vec::new(),
            out_wakers: Vec::new(),
            credit_wakers: Vec::new(),
            transport_stats: proto::TransportStats::default(),
            events: Vec::new(),
            record_events: false,
        }
    }

    /// A v2 client-side state without a transport (benches and tests).
    fn client_v2(codec: CodecKind, limits: Limits) -> ConnState {
        let config = proto::ConnConfig {
            role: proto::Role::Client,
            version: Version::V2,
            max_frame: u32::MAX,
            recovery: None,
        };
        let conn = proto::Connection::new(config, Instant::now());
        ConnState::new(conn, codec, Version::V2, u32::MAX, limits, None)
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
            if self.streams.len() >= self.limits.max_streams && self.evict_lru() == 0 {
                self.counters.stream_limit_hits += 1;
                if self.counters.stream_limit_hits.is_power_of_two() {
                    tracing::warn!(target: "amring", limit = self.limits.max_streams, hits = self.counters.stream_limit_hits, "stream limit reached with no idle stream: new stream refused");
                }
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
                let queued: usize = slot.handler_q.iter().map(|p| p.payload.len()).sum();
                let queued_cost = queued + slot.handler_q.len() * MESSAGE_OVERHEAD;
                if self.credit {
                    // What the stream held is gone: the sender gets it back.
                    self.grant(id, slot.credit_consumed + (slot.inbox_bytes + queued_cost) as u64);
                }
                self.parked -= slot.inbox.len();
                self.parked_bytes -= slot.inbox_bytes;
                self.pending_requests -= slot.handler_q.len();
                self.pending_bytes -= queued_cost;
                self.wake_intake();
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
        let mut len = 0;
        let r = self.proto.send(self.clock, id, |buf| {
            let start = buf.len();
            let r = codec.encode(msg, Profile::Interop, buf);
            len = buf.len() - start;
            r
        });
        match r {
            Ok(()) => {
                self.counters.data_messages_sent += 1;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.counters.data_messages_sent += 1;
                    s.credit_sent += (len + MESSAGE_OVERHEAD) as u64;
                }
                if self.credit && id != CREDIT_STREAM {
                    self.credit_conn_sent += (len + MESSAGE_OVERHEAD) as u64;
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
        if self.credit && stream_id == CREDIT_STREAM {
            self.apply_grants(&payload);
            return (Routed::Done, false);
        }
        let codec = self.codec;
        // Step 1: envelope decode (borrowed, no allocation).
        let handler = match codec.decode_envelope(&payload) {
            Ok(env) => self.handlers.as_ref().and_then(|h| h.lookup(env.wire)),
            Err(e) => {
                self.grant(stream_id, payload.len() as u64);
                let created = self.slot_or_create(stream_id, now).is_some_and(|(_, c)| c);
                self.count_decode_error(stream_id, e.to_string());
                self.protocol_reply(stream_id, ErrorReply::CODEC_ERROR, e.to_string());
                self.discard(stream_id);
                return (Routed::Done, created);
            }
        };
        let server = self.handlers.is_some();
        let max_unread = self.limits.max_unread_bytes;
        let parked_bytes = self.parked_bytes;
        let Some((slot, created)) = self.slot_or_create(stream_id, now) else {
            self.grant(stream_id, payload.len() as u64);
            let msg = format!("too many streams: limit {}", self.limits.max_streams);
            self.protocol_reply(stream_id, ErrorReply::PROTOCOL_ERROR, msg);
            return (Routed::Done, false);
        };
        slot.last_active = now;
        match handler {
            // Step 2: a handler → the stream's sequential handler queue.
            Some(h) => {
                let cost = held_cost(&payload);
                slot.handler_q.push_back(Pending { handler: h, payload });
                let spawn = !slot.worker_alive;
                if spawn {
                    slot.worker_alive = true;
                } else if let Some(w) = slot.worker_waker.take() {
                    w.wake();
                }
                self.pending_requests += 1;
                self.pending_bytes += cost;
                (Routed::Handler { spawn }, created)
            }
            // Step 3: no handler → the inbox. Held (the reader stops at the
            // byte limit); only a server's messages that nothing can ever
            // ask for are dropped, beyond `max_unread_bytes`.
            None => {
                let cost = held_cost(&payload);
                if server && !slot.has_reader() && parked_bytes + cost > max_unread {
                    slot.counters.unknown_messages += 1;
                    let text = format!("no handler and no reader on stream {stream_id}: message dropped");
                    slot.failure.record(FailureCode::UnknownMessage, text.clone());
                    self.counters.unknown_messages += 1;
                    if self.counters.unknown_messages == 1 {
                        tracing::warn!(target: "amring", stream = stream_id, "{text} (limit max_unread_bytes; logged once per connection)");
                    }
                    self.failure.record(FailureCode::UnknownMessage, text);
                    self.grant(stream_id, payload.len() as u64);
                    return (Routed::Done, created);
                }
                slot.inbox.push_back(payload);
                slot.inbox_bytes += cost;
                if let Some(w) = slot.recv_waker.take() {
                    w.wake();
                }
                self.parked += 1;
                self.parked_bytes += cost;
                (Routed::Parked, created)
            }
        }
    }

    /// Per-stream credit: the receiver consumed `len` accounted bytes of
    /// stream `id`; grants them back once a quarter window accumulated.
    pub(crate) fn consumed(&mut self, id: u32, len: usize) {
        if !self.credit {
            return;
        }
        let Some(s) = self.streams.get_mut(&id) else {
            self.grant(id, len as u64);
            return;
        };
        s.credit_consumed += len as u64;
        if s.credit_consumed >= self.own_windows.1 / 4 {
            let n = std::mem::take(&mut s.credit_consumed);
            self.grant(id, n);
        }
    }

    /// Queues a grant of `bytes` on stream `id` to the peer (credit frames
    /// bypass the output limit: they are what lets the peer go on).
    fn grant(&mut self, id: u32, bytes: u64) {
        if !self.credit || bytes == 0 || self.closed {
            return;
        }
        let r = self.proto.send(self.clock, CREDIT_STREAM, |buf| {
            bytes::BufMut::put_u32(buf, id);
            bytes::BufMut::put_u64(buf, bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        match r {
            Ok(()) => self.wake_driver(),
            // v3 ring full: keep it for the next grant of the stream.
            Err(_) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.credit_consumed += bytes;
                }
            }
        }
    }

    /// Applies the peer's grants (12-byte records) and wakes waiting senders.
    fn apply_grants(&mut self, payload: &Bytes) {
        for rec in payload.chunks_exact(12) {
            let id = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let mut n = [0u8; 8];
            n.copy_from_slice(&rec[4..]);
            let n = u64::from_be_bytes(n);
            self.credit_conn_granted = (self.credit_conn_granted + n).min(self.credit_conn_sent);
            if let Some(s) = self.streams.get_mut(&id) {
                s.credit_granted = (s.credit_granted + n).min(s.credit_sent);
            }
        }
        self.wake_credit();
    }

    /// Wakes senders waiting for per-stream credit (grants arrived, closed).
    fn wake_credit(&mut self) {
        for w in self.credit_wakers.drain(..) {
            w.wake();
        }
    }

    /// Per-stream credit: stream `id` has a window's worth of bytes in flight.
    pub(crate) fn credit_blocked(&self, id: u32) -> bool {
        self.credit
            && (self.credit_conn_sent - self.credit_conn_granted >= self.peer_windows.0
                || self
                    .streams
                    .get(&id)
                    .is_some_and(|s| s.credit_sent - s.credit_granted >= self.peer_windows.1))
    }

    /// Applies the handshake's outcome: `peer_flags` is the peer's credit
    /// byte when both ends asked for per-stream credit (0: no credit), and
    /// `own_flags` the byte this end advertised.
    pub(crate) fn set_credit(&mut self, peer_flags: u8, own_flags: u8) {
        self.credit = proto::handshake::credit_window(peer_flags).is_some();
        self.peer_windows = windows(peer_flags);
        self.own_windows = windows(own_flags);
    }

    /// A parked message of `cost` accounted bytes was taken from stream
    /// `id`'s inbox.
    pub(crate) fn took_parked(&mut self, id: u32, cost: usize) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.inbox_bytes -= cost;
        }
        self.consumed(id, cost);
        self.parked -= 1;
        self.parked_bytes -= cost;
        self.wake_intake();
    }

    /// A stream worker of stream `id` took a queued request of `cost` accounted bytes.
    pub(crate) fn took_request(&mut self, id: u32, cost: usize) {
        self.consumed(id, cost);
        self.pending_requests -= 1;
        self.pending_bytes -= cost;
        self.wake_intake();
    }

    /// Accounted bytes of inbound messages held (see [`Limits::max_inbound_bytes`]).
    pub(crate) fn inbound_held(&self) -> usize {
        self.parked_bytes + self.pending_bytes
    }

    /// Bytes waiting to be written: queued frames plus the driver's unwritten tail.
    pub(crate) fn outbound_held(&self) -> usize {
        self.proto.queued_bytes() + self.unwritten
    }

    /// At [`Limits::max_outbound_bytes`], or the shard's budget spent while
    /// this connection holds something: senders wait.
    pub(crate) fn outbound_full(&self) -> bool {
        self.outbound_held() >= self.limits.max_outbound_bytes || self.budget_spent()
    }

    /// Whether the driver must stop reading: inbound holdings or pending
    /// output at their limits, or the shard's budget spent while this
    /// connection holds something.
    ///
    /// With per-stream credit the peer sends at most this end's window
    /// (`max_inbound_bytes` rounded down to a power of two) ahead of what was
    /// consumed, so the connection reads on up to that (twice
    /// `max_inbound_bytes` for a peer that ignores its windows). The shard's
    /// budget holds back both, with credit or without: it is the bound of
    /// last resort on what the whole shard holds.
    pub(crate) fn intake_full(&self) -> bool {
        let inbound = if self.credit {
            self.inbound_held() >= 2 * self.limits.max_inbound_bytes.max(self.own_windows.0 as usize)
        } else {
            self.inbound_held() >= self.limits.max_inbound_bytes
        };
        inbound || (self.outbound_held() >= self.limits.max_outbound_bytes) || self.budget_spent()
    }

    /// Inbound holdings at which the driver stops routing frames it has read
    /// (they wait whole in its read buffer). With per-stream credit the
    /// windows bound the intake (see [`ConnState::intake_full`]), so every
    /// frame read is routed.
    pub(crate) fn route_limit(&self) -> usize {
        if self.credit {
            usize::MAX
        } else {
            self.limits.max_inbound_bytes
        }
    }

    /// The shard's budget is spent and this connection holds something (a
    /// connection holding nothing may still read: one message at a time).
    pub(crate) fn budget_spent(&self) -> bool {
        self.budget.as_ref().is_some_and(|b| b.over()) && self.budget_reported > 0
    }

    /// Joins the shard's byte budget (server connections).
    pub(crate) fn set_budget(&mut self, budget: Rc<SharedBudget>) {
        self.budget = Some(budget);
        self.report_held();
    }

    /// The shard budget's total, when the connection has one.
    pub(crate) fn budget_held(&self) -> Option<usize> {
        self.budget.as_ref().map(|b| b.held())
    }

    /// Tells the shard's budget what this connection holds now.
    pub(crate) fn report_held(&mut self) {
        let Some(b) = &self.budget else { return };
        let now = self.inbound_held() + self.outbound_held();
        let was = self.budget_reported;
        if now > was {
            b.add(now - was);
        } else if now < was {
            b.sub(was - now);
        }
        self.budget_reported = now;
    }

    /// The connection is over: returns what it reported to the budget.
    pub(crate) fn leave_budget(&mut self) {
        if let Some(b) = self.budget.take() {
            b.sub(self.budget_reported);
            self.budget_reported = 0;
        }
    }

    /// A driver stopped by the shard budget waits for it to drop.
    pub(crate) fn wait_budget(&self, w: &Waker) {
        if let Some(b) = &self.budget {
            b.waiters.borrow_mut().push(w.clone());
        }
    }

    /// Wakes a driver that stopped reading once holdings are below the limits.
    pub(crate) fn wake_intake(&mut self) {
        self.report_held();
        if self.intake_waiting && !self.intake_full() {
            self.intake_waiting = false;
            self.wake_driver();
        }
    }

    /// Wakes senders waiting for replay-ring room (ring room freed).
    pub(crate) fn wake_room(&mut self) {
        for w in self.room_wakers.drain(..) {
            w.wake();
        }
    }

    /// Wakes senders waiting for the output to drain.
    pub(crate) fn wake_out(&mut self) {
        for w in self.out_wakers.drain(..) {
            w.wake();
        }
    }

    /// Wakes every waiting sender (closed).
    pub(crate) fn wake_senders(&mut self) {
        self.wake_room();
        self.wake_out();
        self.wake_credit();
    }

    /// At the stream cap: evicts the least recently used idle streams, an
    /// eighth of the cap at once (one scan serves many new streams).
    /// Returns how many were evicted.
    fn evict_lru(&mut self) -> usize {
        let mut idle: Vec<(Instant, u32)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.is_idle())
            .map(|(id, s)| (s.last_active, *id))
            .collect();
        let n = idle.len().min((self.limits.max_streams / 8).max(1));
        if n == 0 {
            return 0;
        }
        if n < idle.len() {
            idle.select_nth_unstable(n - 1);
        }
        for &(_, id) in &idle[..n] {
            self.evict(id, "least recently used at the stream limit");
        }
        n
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
        self.wake_senders();
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
    pub(crate) fn evict(&mut self, id: u32, why: &str) {
        if self.discard(id) {
            self.counters.streams_evicted += 1;
            self.failure
                .record(FailureCode::StreamEvicted, format!("stream {id} evicted: {why}"));
        }
    }

    /// True when no handler work is queued or running.
    pub(crate) fn handlers_idle(&self) -> bool {
        self.pending_requests == 0 && self.streams.values().all(|s| !s.handler_busy)
    }
}

/// Why a sender waits (see [`wait_room`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoomFor {
    /// Pending output is at [`Limits::max_outbound_bytes`].
    Output,
    /// v3: the replay ring refused the frame (`ReplayBufferFull`).
    Ring,
    /// Per-stream credit: the stream has a window in flight.
    Credit(u32),
}

/// Waits until a send may be tried again: pending output below its limit
/// and, for [`RoomFor::Ring`], more replay-ring room than now. `false` when
/// the connection closed, or when waiting cannot help (the ring holds
/// nothing to be acknowledged, so the frame will never fit).
pub(crate) async fn wait_room(conn: &ConnRef, why: RoomFor) -> bool {
    let ring_start = {
        let mut st = conn.borrow_mut();
        st.counters.send_waits += 1;
        match why {
            RoomFor::Output | RoomFor::Credit(_) => None,
            RoomFor::Ring => {
                let limit = st.proto.config().recovery.map_or(0, |p| p.max_replay_bytes);
                let room = st.proto.replay_room();
                if st.closed || st.proto.is_closed() || room >= limit {
                    return false;
                }
                Some(room)
            }
        }
    };
    std::future::poll_fn(|cx| {
        let mut st = conn.borrow_mut();
        if st.closed || st.proto.is_closed() {
            return std::task::Poll::Ready(false);
        }
        // Each condition has its own waiters, woken only by what can end it
        // (a wake that cannot help would make the waiter and the driver
        // wake each other in a loop).
        let w = cx.waker().clone();
        if st.outbound_full() {
            st.out_wakers.push(w);
        } else if ring_start.is_some_and(|start| st.proto.replay_room() <= start) {
            st.room_wakers.push(w);
            // A driver that stopped reading re-checks: in v3 it reads on for
            // the ACKs this sender needs.
            if st.intake_waiting {
                st.wake_driver();
            }
        } else if matches!(why, RoomFor::Credit(id) if st.credit_blocked(id)) {
            st.credit_wakers.push(w);
        } else {
            return std::task::Poll::Ready(true);
        }
        std::task::Poll::Pending
    })
    .await
}

/// Queues `msg` on stream `id`, waiting for room at the output limit or a
/// full replay ring (spec §6 Send: returns once queued).
pub(crate) async fn send_waiting<M: Message + ?Sized>(conn: &ConnRef, id: u32, msg: &M) -> Result<(), Error> {
    loop {
        let why = {
            let mut st = conn.borrow_mut();
            if st.closed {
                return st.send_msg(id, msg);
            }
            if st.outbound_full() {
                RoomFor::Output
            } else if st.credit_blocked(id) {
                RoomFor::Credit(id)
            } else {
                match st.send_msg(id, msg) {
                    Err(Error::ReplayBufferFull { .. }) => RoomFor::Ring,
                    r => return r,
                }
            }
        };
        if !wait_room(conn, why).await {
            // Closed, or a frame the ring can never take: the error says which.
            return conn.borrow_mut().send_msg(id, msg);
        }
    }
}

/// Queues `msg` on stream `id` only if there is room now: [`Error::Full`]
/// at the output limit or with a full replay ring.
pub(crate) fn try_send<M: Message + ?Sized>(st: &mut ConnState, id: u32, msg: &M) -> Result<(), Error> {
    if st.outbound_full() {
        return Err(Error::Full {
            held: st.outbound_held(),
            limit: st.limits.max_outbound_bytes,
        });
    }
    if st.credit_blocked(id) {
        return Err(Error::Full {
            held: STREAM_WINDOW,
            limit: STREAM_WINDOW,
        });
    }
    match st.send_msg(id, msg) {
        Err(Error::ReplayBufferFull { size, limit }) => Err(Error::Full { held: size, limit }),
        r => r,
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
    let mut st = ConnState::client_v2(codec, Limits::default());
    move |frames, now| {
        for d in frames {
            st.route(d.stream_id, d.payload.clone(), now);
        }
        let mut n = 0;
        for d in frames {
            let taken = st.streams.get_mut(&d.stream_id).and_then(|s| s.inbox.pop_front());
            if let Some(p) = taken {
                st.took_parked(d.stream_id, held_cost(&p));
                n += 1;
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
    fn limits_defaults_bound_a_busy_connection() {
        let l = Limits::default();
        // A few MiB per busy connection, in both directions.
        assert!(l.max_inbound_bytes + l.max_outbound_bytes <= 8 << 20);
        assert!(l.max_unread_bytes <= l.max_inbound_bytes);
        assert!(l.idle_stream_timeout.is_none());
    }

    fn state(limits: Limits) -> ConnState {
        ConnState::client_v2(CodecKind::Compact, limits)
    }

    fn ok_reply() -> Bytes {
        let mut out = bytes::BytesMut::new();
        CodecKind::Compact
            .encode(&crate::codec::OkReply {}, Profile::Interop, &mut out)
            .unwrap();
        out.freeze()
    }

    #[test]
    fn inbound_accounting_balances_and_nothing_is_dropped() {
        let mut st = state(Limits {
            max_inbound_bytes: 1000,
            ..Limits::default()
        });
        let p = ok_reply();
        let now = Instant::now();
        // Far past the limit: every message is kept; the driver stops reading.
        for _ in 0..100 {
            st.route(1, p.clone(), now);
        }
        assert_eq!(st.parked, 100);
        assert_eq!(st.inbound_held(), 100 * held_cost(&p));
        assert!(st.intake_full());
        st.intake_waiting = true;
        for _ in 0..100 {
            let taken = st.streams.get_mut(&1).and_then(|s| s.inbox.pop_front()).unwrap();
            st.took_parked(1, held_cost(&taken));
        }
        assert_eq!(st.inbound_held(), 0);
        assert!(!st.intake_full());
        assert!(!st.intake_waiting, "the driver was woken below the limit");
        st.route(2, p.clone(), now);
        assert!(st.discard(2));
        assert_eq!((st.parked, st.parked_bytes), (0, 0));
    }

    #[test]
    fn the_stream_cap_evicts_least_recently_used_idle_streams() {
        let mut st = state(Limits {
            max_streams: 16,
            ..Limits::default()
        });
        let t0 = Instant::now();
        for id in 1..=16u32 {
            st.slot_or_create(id, t0 + Duration::from_millis(u64::from(id)))
                .unwrap();
        }
        // Stream 1 (the oldest) holds a message: it is not idle, never evicted.
        st.route(1, ok_reply(), t0);
        let (_, created) = st.slot_or_create(100, t0 + Duration::from_secs(1)).unwrap();
        assert!(created);
        // An eighth of the cap (2) went: the least recently used idle ones, 2 and 3.
        assert_eq!(st.counters.streams_evicted, 2);
        assert!(st.streams.contains_key(&1));
        assert!(!st.streams.contains_key(&2) && !st.streams.contains_key(&3));
        assert!(st.streams.contains_key(&4));
        assert_eq!(st.counters.stream_limit_hits, 0);
        // With nothing idle the cap refuses.
        st.slot_or_create(101, t0).unwrap();
        assert_eq!(st.streams.len(), 16);
        for s in st.streams.values_mut() {
            s.task_busy = true;
        }
        assert!(st.slot_or_create(200, t0).is_none());
        assert_eq!(st.counters.stream_limit_hits, 1);
    }
}
