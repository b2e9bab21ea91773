//! Envelope-first decode (spec §4.6, §4.7): the wire name as a borrowed `&str`
//! and the body as a borrowed slice, without decoding the body and without
//! allocating. (Decode work item.)

use super::error::DecodeError;

/// How the body slice of an [`Envelope`] is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Compact: `fields` consecutive MessagePack values (the elements after the name).
    CompactFields {
        /// Number of elements after the wire name.
        fields: u32,
    },
    /// Map codec: one MessagePack value (the `"data"` entry: a map, or an array).
    MapData,
}

/// A decoded envelope: routing information plus the undecoded body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The wire name, borrowed from the payload.
    pub wire: &'a str,
    /// The undecoded body, borrowed from the payload.
    pub body: &'a [u8],
    /// Layout of `body`.
    pub kind: BodyKind,
}

/// Compact envelope: `[name, f1, ..., fn]`.
pub(crate) fn decode_compact(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let _ = payload;
    todo!("decode work item")
}

/// Map envelope: `{"type": name, "data": body}` in any key order, or `[name, body]`.
pub(crate) fn decode_map(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let _ = payload;
    todo!("decode work item")
}
