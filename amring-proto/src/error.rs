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
