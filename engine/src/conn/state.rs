//! The logical connection on its core: [`ConnState`] with its stream table,
//! and inbound dispatch (spec §5.4).
//!
//! ```text
//!  Delivered{stream, payload} ──► envelope decode ──fail──► ErrorReply{codec_error} + discard stream
//!                                     │
//!                    handler for wire? ──yes──► stream handler queue ──► stream worker (sequential)
//!                                     │no
//!                                     ▼
//!                               stream inbox (held bytes counted against the limits)
//! ```
//!
//! Nothing here touches a socket: the runtime driver feeds `ConnState::route`
//! and drains `proto` for writing. The transport can be swapped (v3 resume)
//! without touching this state. The other `impl ConnState` blocks sit beside
//! this file: `credit.rs`, `holdings.rs` and `send.rs`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{CodecKind, ErrorReply};
use crate::conn::limits::{held_cost, Limits, SharedBudget, CREDIT_STREAM, MESSAGE_OVERHEAD};
use crate::debug::{ConnCounters, FailureCode, LastFailure, StreamCounters};
use crate::proto::{self, Version};

/// Handler indices by wire name (a snapshot taken by `serve`, §5.3): what
/// routing needs of the handler table.
///
/// Fx-hashed: looked up once per inbound message, and the peer chooses only
/// the key looked up, never what the map holds (no flooding possible).
#[derive(Clone, Default, Debug)]
pub(crate) struct Routes {
    pub(super) by_name: HashMap<&'static str, usize, rustc_hash::FxBuildHasher>,
}

impl Routes {
    /// The handler index for a wire name.
    pub(crate) fn lookup(&self, wire: &str) -> Option<usize> {
        self.by_name.get(wire).copied()
    }

    /// Registers (or replaces) the handler index of a wire name.
    pub(crate) fn insert(&mut self, wire: &'static str, idx: usize) {
        self.by_name.insert(wire, idx);
    }

    /// The registered wire names.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
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
    pub(super) credit_sent: u64,
    pub(super) credit_granted: u64,
    /// Per-stream credit, receiving side: bytes consumed, not granted yet.
    pub(super) credit_consumed: u64,
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
    pub(super) fn new(gen: u64, now: Instant) -> StreamSlot {
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

    pub(super) fn wake_all(&mut self) {
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
    pub(super) fn has_reader(&self) -> bool {
        self.receiving || self.task_busy
    }

    /// True when nothing references the state but the table (eviction candidate).
    pub(super) fn is_idle(&self) -> bool {
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
    pub(super) budget: Option<Rc<SharedBudget>>,
    pub(super) budget_reported: usize,
    /// Per-stream credit negotiated (both ends are amring).
    pub(crate) credit: bool,
    /// Per-stream credit: the peer's receive windows (what this end may
    /// send ahead): connection, stream.
    pub(super) peer_windows: (u64, u64),
    /// Per-stream credit: this end's receive windows, as advertised.
    pub(super) own_windows: (u64, u64),
    /// Per-stream credit, connection-wide: accounted bytes sent and granted.
    pub(super) credit_conn_sent: u64,
    pub(super) credit_conn_granted: u64,
    /// Server: the handler index by wire name (the handlers themselves run
    /// in the runtime's stream workers).
    pub(crate) routes: Option<Arc<Routes>>,
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
    /// v3: senders waiting for replay-ring room (woken on `Event::ReplayRoom` and on close).
    pub(crate) room_wakers: Vec<Waker>,
    /// Senders waiting for the output to drop below its limit (woken by the
    /// driver after writing, or when the shard budget drops).
    pub(crate) out_wakers: Vec<Waker>,
    /// Senders waiting for per-stream credit (woken by grants).
    pub(super) credit_wakers: Vec<Waker>,
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
    /// v3: the session's connection id (debug state `ConnectionID`).
    pub(crate) session_id: Option<proto::ConnectionId>,
    /// v3 client: a resume loop is running (debug state `ReconnectActive`).
    pub(crate) reconnecting: bool,
    /// The server end of a connection: messages that no handler, task or
    /// receiver can ever take are dropped beyond `max_unread_bytes` (a
    /// client keeps them for its streams' receives).
    pub(crate) server: bool,
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
        routes: Option<Arc<Routes>>,
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
            routes,
            driver_waker: None,
            closed_wakers: Vec::new(),
            room_wakers: Vec::new(),
            out_wakers: Vec::new(),
            credit_wakers: Vec::new(),
            transport_stats: proto::TransportStats::default(),
            events: Vec::new(),
            record_events: false,
            session_id: None,
            reconnecting: false,
            server: false,
        }
    }

    /// A v2 client-side state without a transport (benches and tests).
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) fn client_v2(codec: CodecKind, limits: Limits) -> ConnState {
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
            Ok(env) => self.routes.as_ref().and_then(|h| h.lookup(env.wire)),
            Err(e) => {
                self.grant(stream_id, payload.len() as u64);
                let created = self.slot_or_create(stream_id, now).is_some_and(|(_, c)| c);
                self.count_decode_error(stream_id, e.to_string());
                self.protocol_reply(stream_id, ErrorReply::CODEC_ERROR, e.to_string());
                self.discard(stream_id);
                return (Routed::Done, created);
            }
        };
        let server = self.server;
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

    /// At the stream cap: evicts the least recently used idle streams, an
    /// eighth of the cap at once (one scan serves many new streams).
    /// Returns how many were evicted.
    pub(super) fn evict_lru(&mut self) -> usize {
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
