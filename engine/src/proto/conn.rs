//! The sans-IO connection: frames in, frames out, for v2 and v3 (CONTRACT).
//!
//! One [`Connection`] per *logical* connection. It owns the frame decoder and
//! encoder of the current transport, the outbound transmit buffer and, in v3,
//! the recovery state (sequence numbers, ACK policy, heartbeat deadlines and
//! the replay ring), which survives transports. It never touches a socket, a
//! clock or a task: the runtime passes `now`, feeds read bytes, drains
//! transmit bytes, and arms one timer at [`Connection::poll_timeout`].
//!
//! Driver loop of the runtime (per wake):
//! ```text
//!   read → handle_input(now, &mut rbuf) until Ok(None)  → route each Delivered
//!   timer → handle_timeout(now)
//!   app sends → send(stream, |buf| codec.encode(..))
//!   poll_transmit(now, &mut wbuf) → one write of wbuf
//! ```
//!
//! Method groups follow quinn-proto: getters, `handle_*`, mutators, `poll_*`.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::error::{ControlError, FrameError};
use super::frame::Version;

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Dialed the connection; owns reconnects in v3.
    Client,
    /// Accepted the connection; authoritative for v3 timing options.
    Server,
}

/// v3 parameters in effect for a logical connection (after normalisation, §7.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryParams {
    /// ACK after this many unacknowledged data frames (≤ 1: immediately).
    pub ack_every: u32,
    /// ACK at the latest this long after the first unacknowledged frame.
    pub ack_delay: Duration,
    /// Send a PING after this long without writing anything.
    pub heartbeat_interval: Duration,
    /// Consider the transport dead after this long without a complete inbound frame.
    pub heartbeat_timeout: Duration,
    /// Bound of the replay ring in accounted bytes (`18 + payload_len` per frame).
    pub max_replay_bytes: usize,
}

impl Default for RecoveryParams {
    fn default() -> Self {
        RecoveryParams {
            ack_every: 64,
            ack_delay: Duration::from_millis(20),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            max_replay_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Configuration of a [`Connection`], fixed by the handshake (and attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Client or server.
    pub role: Role,
    /// Negotiated protocol version.
    pub version: Version,
    /// Negotiated max_frame, enforced both ways.
    pub max_frame: u32,
    /// v3 only: the negotiated recovery parameters.
    pub recovery: Option<RecoveryParams>,
}

/// A data frame delivered in order (v3: exactly once) to the layer above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Stream the payload belongs to.
    pub stream_id: u32,
    /// The payload: a zero-copy slice of the read buffer.
    pub payload: Bytes,
}

/// Byte and frame counters of the connection (feed §8.2 counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames handed to transmit (control and replayed frames included).
    pub frames_written: u64,
    /// Bytes handed to transmit.
    pub bytes_written: u64,
    /// Complete frames read (control frames and duplicates included).
    pub frames_read: u64,
    /// Bytes of complete frames read.
    pub bytes_read: u64,
    /// Control frames written (v3: ACK/PING).
    pub control_frames_written: u64,
    /// Frames read on stream `0xFFFFFFFF`.
    pub control_frames_read: u64,
}

/// Why the connection stopped: `is_permanent()` tells close from detach.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// A framing rule was broken (bad version byte, oversized frame): v2 close, v3 detach.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// No complete frame within the heartbeat timeout (v3): detach.
    #[error("heartbeat timeout")]
    HeartbeatTimeout,
    /// Malformed control frame (v3): permanent close.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A v3 data frame carried seq 0: permanent close.
    #[error("recovery data frame missing seq")]
    SeqZero,
    /// A v3 data frame skipped sequence numbers: permanent close.
    #[error("recovery frame sequence gap: expected {expected}, got {got}")]
    SeqGap {
        /// The next seq that was expected.
        expected: u64,
        /// The seq received.
        got: u64,
    },
}

impl ConnError {
    /// True when the logical connection is gone (never resumable).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnError::Control(_) | ConnError::SeqZero | ConnError::SeqGap { .. }
        )
    }
}

/// Why a send was refused. Nothing of the frame was queued, and (v3) no
/// sequence number was consumed.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E> {
    /// The payload writer (codec) failed.
    #[error("encode failed: {0}")]
    Encode(E),
    /// The payload exceeds the negotiated max_frame.
    #[error(transparent)]
    Frame(FrameError),
    /// v3: retaining the frame would exceed the replay bound.
    #[error("replay buffer full: size={size} limit={limit}")]
    ReplayFull {
        /// Accounted bytes the ring would hold with this frame.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// The logical connection is closed.
    #[error("connection closed")]
    Closed,
}

/// The sans-IO connection. See the module docs for the driver contract.
#[derive(Debug)]
pub struct Connection {
    _private: (),
}

#[allow(unused_variables, missing_docs)]
impl Connection {
    /// A connection whose transport has just completed the handshake (and attach).
    pub fn new(config: ConnConfig, now: Instant) -> Connection {
        todo!("recovery work item")
    }

    // ---- getters ----

    /// The fixed configuration.
    pub fn config(&self) -> &ConnConfig {
        todo!()
    }

    /// Counters since creation.
    pub fn stats(&self) -> &TransportStats {
        todo!()
    }

    /// True when bytes are waiting for [`Connection::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        todo!()
    }

    // ---- handle_* ----

    /// Consumes complete frames from the front of `buf`; returns the next
    /// data frame to deliver, `Ok(None)` when `buf` holds no complete frame.
    /// Control frames and duplicates are consumed silently. Call until `Ok(None)`.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) -> Result<Option<Delivered>, ConnError> {
        todo!()
    }

    /// Runs due timers (ACK delay, PING, heartbeat expiry).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnError> {
        todo!()
    }

    // ---- mutators ----

    /// Queues one data frame whose payload `body` writes in place.
    pub fn send<E>(
        &mut self,
        now: Instant,
        stream_id: u32,
        body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), SendError<E>> {
        todo!()
    }

    // ---- poll_* ----

    /// Moves everything due for the wire into `out` (appending): a due ACK
    /// first, then frames waiting for replay, then new frames, and a PING when
    /// the heartbeat interval passed idle. Returns the bytes appended.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        todo!()
    }

    /// The earliest instant at which [`Connection::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
}
