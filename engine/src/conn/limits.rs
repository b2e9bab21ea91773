//! What a connection may hold: [`Limits`], the per-message accounting
//! ([`MESSAGE_OVERHEAD`]), the credit windows and the shard-wide
//! [`SharedBudget`]. The bottom of the connection layer: plain values and
//! arithmetic, no state machine.

use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;

use crate::proto;
use std::cell::RefCell;

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
pub(crate) fn windows(flags: u8) -> (u64, u64) {
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
    /// streams"}` (inbound) or [`Error::TooManyStreams`](crate::Error::TooManyStreams) (`new_stream`).
    pub max_streams: usize,
    /// Bytes of inbound messages held: requests queued for handlers plus
    /// messages waiting in stream inboxes. At the limit the connection stops
    /// reading the socket until handlers and receivers catch up (counted in
    /// `intake_pauses`). The read buffer is separate: it holds at most one
    /// frame (bounded by the negotiated `max_frame`) plus one read.
    pub max_inbound_bytes: usize,
    /// Bytes of frames queued for the socket and not yet written. At the
    /// limit `send` waits (`try_send` fails with [`Error::Full`](crate::Error::Full)), handler
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
    pub(super) waiters: RefCell<Vec<Waker>>,
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

    pub(super) fn over(&self) -> bool {
        self.held.get() >= self.limit
    }

    pub(super) fn add(&self, n: usize) {
        self.held.set(self.held.get() + n);
    }

    pub(super) fn sub(&self, n: usize) {
        let was_over = self.over();
        self.held.set(self.held.get().saturating_sub(n));
        if was_over && !self.over() {
            for w in self.waiters.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }
}
