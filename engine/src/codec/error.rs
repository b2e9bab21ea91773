//! Codec errors. Display texts mirror the reference (they travel inside
//! `ErrorReply{codec_error, ...}`).

/// Encoding failed; nothing is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A serde-level error (unsupported type, custom error from a Serialize impl).
    #[error("codec error: {0}")]
    Custom(String),
}

/// Decoding failed (envelope or body).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Generic codec failure (`ErrCodec`), text as the reference words it where known.
    #[error("codec error: {0}")]
    Codec(String),
    /// Compact body or nested array length ≠ field count (`ErrCompactFieldCount`).
    #[error("compact field count mismatch: expected {expected}, got {got}")]
    CompactFieldCount {
        /// Fields of the target type.
        expected: usize,
        /// Elements present.
        got: usize,
    },
}
