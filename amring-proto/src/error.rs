//! Errors of the sans-IO protocol layer. Texts mirror the reference's error
//! kinds (spec §8.1) where one exists.

/// A frame header or payload broke a framing rule (spec §3.2, §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The version byte differs from the negotiated version (`ErrUnsupportedFrameVersion`).
    #[error("unsupported frame version: {got}")]
    BadVersion {
        /// The version byte received.
        got: u8,
    },
    /// `payload_len` exceeds the negotiated max_frame (`ErrFrameTooLarge`).
    #[error("frame too large: {len}")]
    TooLarge {
        /// The announced (or attempted) payload length.
        len: u32,
        /// The negotiated limit.
        max: u32,
    },
}

/// A v3 control payload is malformed (spec §7.8); always a permanent close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Zero-length control payload.
    #[error("empty control payload")]
    Empty,
    /// An ACK payload that is not exactly 9 bytes.
    #[error("invalid ack control payload length: {0}")]
    AckLength(usize),
    /// A PING payload that is not exactly 1 byte.
    #[error("invalid heartbeat control payload length: {0}")]
    PingLength(usize),
    /// A type byte other than ACK (1) or PING (2).
    #[error("unknown control frame type: {0}")]
    UnknownType(u8),
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
    /// The peer sent a graceful CLOSE (amring extension, only when negotiated): permanent close.
    #[error("connection closed by peer")]
    PeerClosed,
    /// The logical connection is already permanently closed.
    #[error("connection closed")]
    Closed,
    /// On resume the peer reported a `last_recv_seq` below frames that were
    /// already trimmed from the replay ring: the gap cannot be replayed. Permanent.
    #[error("resume rejected: peer last_recv_seq {peer} is behind the oldest retained frame {oldest}")]
    ResumeBehind {
        /// The peer's reported `last_recv_seq`.
        peer: u64,
        /// Seq of the oldest frame still retained.
        oldest: u64,
    },
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
    /// True when the logical connection is gone (never resumable). Only
    /// meaningful in v3: in v2 every error ends the connection.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnError::Control(_)
                | ConnError::SeqZero
                | ConnError::SeqGap { .. }
                | ConnError::PeerClosed
                | ConnError::Closed
                | ConnError::ResumeBehind { .. }
        )
    }
}
