//! Codec errors. Display texts mirror the reference (they travel inside
//! `ErrorReply{codec_error, ...}`).

/// Encoding failed; nothing is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A serde-level error (unsupported type, custom error from a Serialize impl).
    #[error("codec error: {0}")]
    Custom(String),
    /// The message is not a struct (compact needs the fields as envelope
    /// elements; the map body must be a map).
    #[error("message must be a struct")]
    NotAStruct,
    /// The message's wire name is empty (reference: `ErrInvalidMessage`).
    #[error("message wire name must be non-empty")]
    EmptyWireName,
    /// `Profile::Interop` compact met `None` at a field or list-element position:
    /// the Go compact decoder cannot read `c0` there (spec §4.8, §9 note 1).
    /// Use `attrs::nil_as_zero` on the field, or `Profile::Exact`.
    #[error("codec error: compact encoding cannot carry nil at a field or list-element position")]
    NilInCompact,
    /// Compact met a field marked `attrs::unexported` (reference: `ErrInvalidMessage`).
    #[error("compact encoding does not support unexported fields")]
    UnexportedField,
    /// A string, byte string, array or map longer than MessagePack can describe (2³²−1).
    #[error("codec error: length {0} too large for msgpack")]
    TooLong(usize),
    /// A Rust shape with no Go counterpart (enum variants with data, 128-bit integers, ...).
    #[error("codec error: unsupported type: {0}")]
    Unsupported(&'static str),
    /// An `attrs` marker wrapped a value it cannot apply to (e.g. `embedded` on a non-struct).
    #[error("codec error: invalid use of {0}")]
    BadMarker(&'static str),
    /// A timestamp with nanoseconds ≥ 10⁹.
    #[error("codec error: timestamp nanoseconds out of range: {0}")]
    InvalidTimestamp(u32),
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
