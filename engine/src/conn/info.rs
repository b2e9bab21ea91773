//! What users can see of a connection and its streams: [`ConnInfo`] and the
//! debug-state snapshots (§8.2).

use crate::conn::state::ConnRef;
use crate::debug::{ConnCounters, Failure, StreamCounters};
use std::time::Duration;

/// Who is on the other end, for hooks and handlers.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Server-unique connection id.
    pub id: u64,
    /// Shard (core index) that owns the connection.
    pub shard: usize,
    /// Peer address as text.
    pub peer: String,
}

/// Debug snapshot of one stream (spec §8.2).
#[derive(Clone, Debug)]
pub struct StreamDebugState {
    /// Stream id.
    pub id: u32,
    /// The stream's connection is closed (a snapshot lists live stream
    /// states only, so a stream is closed exactly when its connection is).
    pub closed: bool,
    /// Last failure on the stream.
    pub last_failure: Option<Failure>,
    /// Receive timeout in effect.
    pub recv_timeout: Option<Duration>,
    /// Messages waiting in the inbox.
    pub inbox_depth: usize,
    /// Raw frames not yet envelope-decoded (the reference's `IncomingDepth`).
    /// Always 0: amring routes each frame as it is read; frames it cannot
    /// take yet stay unread in the connection's read buffer (`read_buffer`).
    pub incoming_depth: usize,
    /// Requests waiting for the handler.
    pub handler_q_depth: usize,
    /// Counters.
    pub counters: StreamCounters,
}

impl StreamDebugState {
    pub(crate) fn of(id: u32, s: &crate::conn::state::StreamSlot, closed: bool) -> StreamDebugState {
        StreamDebugState {
            id,
            closed,
            incoming_depth: 0,
            last_failure: s.failure.get().cloned(),
            recv_timeout: s.recv_timeout,
            inbox_depth: s.inbox.len(),
            handler_q_depth: s.handler_q.len(),
            counters: s.counters,
        }
    }
}

/// Debug snapshot of a connection (spec §8.2).
#[derive(Clone, Debug)]
pub struct ConnDebugState {
    /// Connection closed.
    pub closed: bool,
    /// Last failure on the connection.
    pub last_failure: Option<Failure>,
    /// Protocol version (2/3).
    pub protocol: u8,
    /// Codec id.
    pub codec_id: u8,
    /// Codec name (`compact` / `map`).
    pub codec_name: &'static str,
    /// Negotiated max_frame.
    pub max_frame: u32,
    /// Live stream states.
    pub stream_count: usize,
    /// amring: accounted bytes of inbound messages held (handler queues and
    /// inboxes; see `Limits::max_inbound_bytes`).
    pub held_inbound: usize,
    /// amring: bytes waiting to be written (see `Limits::max_outbound_bytes`).
    pub held_outbound: usize,
    /// amring: capacity of the connection's read buffer at its last read.
    pub read_buffer: usize,
    /// amring (server): bytes held by all connections of this connection's
    /// shard (see `ServerBuilder::max_held_bytes`).
    pub shard_held: Option<usize>,
    /// Counters (frame/byte counters from the transport included).
    pub counters: ConnCounters,
    /// Per stream, sorted by id.
    pub streams: Vec<StreamDebugState>,
    /// v3 only: the §8.2 "Recovery" fields.
    pub recovery: Option<crate::proto::RecoveryDebug>,
    /// v3 only: the session's connection id in hex (the reference's
    /// `Recovery.ConnectionID`).
    pub connection_id: Option<String>,
    /// v3 client: a resume loop is running (the reference's
    /// `Recovery.ReconnectActive`); false otherwise.
    pub reconnect_active: bool,
}

impl ConnDebugState {
    pub(crate) fn of(conn: &ConnRef) -> ConnDebugState {
        let st = conn.borrow();
        let mut counters = st.counters;
        counters.set_transport(&st.transport_stats);
        let recovery = st.proto.recovery_debug();
        if let Some(r) = &recovery {
            counters.transport_attaches = r.transport_attaches;
            counters.transport_detaches = r.transport_detaches;
        }
        let mut streams: Vec<_> = st
            .streams
            .iter()
            .map(|(id, s)| StreamDebugState::of(*id, s, st.closed))
            .collect();
        streams.sort_by_key(|s| s.id);
        ConnDebugState {
            closed: st.closed,
            last_failure: st.failure.get().cloned(),
            protocol: st.version.as_u8(),
            codec_id: st.codec.id(),
            codec_name: st.codec.name(),
            max_frame: st.max_frame,
            stream_count: st.streams.len(),
            held_inbound: st.inbound_held(),
            held_outbound: st.outbound_held(),
            read_buffer: st.read_buffer,
            shard_held: st.budget_held(),
            counters,
            streams,
            recovery,
            connection_id: st.session_id.map(|id| id.iter().map(|b| format!("{b:02x}")).collect()),
            reconnect_active: st.reconnecting,
        }
    }
}
