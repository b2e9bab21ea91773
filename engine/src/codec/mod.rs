//! Payload codecs (spec §4): MessagePack *compact* (id 1) and *map* (id 2).
//!
//! CONTRACT (skeleton; bodies are being written in the codec work item):
//! * encode writes the whole envelope straight into the outgoing frame buffer;
//! * [`Codec::decode_envelope`] reads only the wire name (borrowed `&str`) and
//!   locates the body (borrowed slice) without decoding it and without
//!   allocating: this is what routing and `peek_wire` use;
//! * [`Codec::decode_body`] decodes the body into a serde type afterwards,
//!   borrowing from the payload where the type allows.

mod message;

pub use message::{wire_name_for, ErrorReply, Message, OkReply};

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

/// A codec id as carried in the handshake (0 is invalid).
pub type CodecId = u8;
/// Id of the MessagePack compact codec.
pub const COMPACT_ID: CodecId = 1;
/// Id of the MessagePack map codec.
pub const MAP_ID: CodecId = 2;

/// Which byte layout the encoder aims at (spec §4.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// What a Go peer can decode: never `c0` at a compact field / list-element position.
    #[default]
    Interop,
    /// Byte-for-byte what the Go encoder emits (golden tests), `c0` for `None` included.
    Exact,
}

/// The two built-in codecs, dispatched without dynamic calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// MessagePack compact (id 1).
    Compact,
    /// MessagePack map (id 2).
    Map,
}

impl CodecKind {
    /// Looks up a built-in codec by its handshake id.
    pub const fn from_id(id: CodecId) -> Option<CodecKind> {
        match id {
            COMPACT_ID => Some(CodecKind::Compact),
            MAP_ID => Some(CodecKind::Map),
            _ => None,
        }
    }

    /// The handshake id.
    pub const fn id(self) -> CodecId {
        match self {
            CodecKind::Compact => COMPACT_ID,
            CodecKind::Map => MAP_ID,
        }
    }

    /// The debug-state name (`compact` / `map`).
    pub const fn name(self) -> &'static str {
        match self {
            CodecKind::Compact => "compact",
            CodecKind::Map => "map",
        }
    }
}
