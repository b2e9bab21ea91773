//! Payload codecs (spec §4): MessagePack *compact* (id 1) and *map* (id 2),
//! plus user codecs registered by id ([`CodecImpl`], [`CodecRegistry::register`];
//! with the `postcard` feature, adaptivemsg-rust's `postcard::POSTCARD`, id 64).
//!
//! How the codecs work:
//! * encode writes the whole envelope straight into the outgoing frame buffer;
//! * [`Codec::decode_envelope`] reads only the wire name (borrowed `&str`) and
//!   locates the body (borrowed slice) without decoding it and without
//!   allocating: this is what routing and `peek_wire` use;
//! * [`Codec::decode_body`] decodes the body into a serde type afterwards,
//!   borrowing from the payload where the type allows.

#[doc(hidden)]
#[path = "wire_const.rs"]
pub mod __wire;
pub mod attrs;
mod custom;
mod de;
mod de_read;
mod envelope;
mod error;
mod macros;
mod message;
#[cfg(feature = "postcard")]
pub mod postcard;
mod ser;

pub use attrs::Timestamp;
pub use custom::{BodySink, CodecImpl};
pub use envelope::{BodyKind, Envelope};
pub use error::{DecodeError, EncodeError};
pub use message::{wire_name_for, AnyMessage, ErrorReply, Message, OkReply, Reply};

use bytes::BytesMut;
use serde::Deserialize;

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

/// A negotiated codec: the two built-ins, dispatched without dynamic calls,
/// or a user codec behind a trait object.
///
/// Two kinds are equal (and hash alike) when their handshake ids are.
#[derive(Clone, Copy)]
pub enum CodecKind {
    /// MessagePack compact (id 1).
    Compact,
    /// MessagePack map (id 2).
    Map,
    /// A user codec ([`CodecImpl`]), e.g. `postcard::POSTCARD` (feature `postcard`).
    Custom(&'static dyn CodecImpl),
}

impl CodecKind {
    /// Looks up a built-in codec by its handshake id (user codecs are found
    /// through [`CodecRegistry::get`]).
    pub const fn from_id(id: CodecId) -> Option<CodecKind> {
        match id {
            COMPACT_ID => Some(CodecKind::Compact),
            MAP_ID => Some(CodecKind::Map),
            _ => None,
        }
    }

    /// A user codec owned by value, leaked to get the `'static` reference
    /// [`CodecKind::Custom`] holds (do it once per codec, at start-up).
    pub fn leak(codec: impl CodecImpl) -> CodecKind {
        CodecKind::Custom(Box::leak(Box::new(codec)))
    }

    /// The handshake id.
    #[inline]
    pub fn id(self) -> CodecId {
        match self {
            CodecKind::Compact => COMPACT_ID,
            CodecKind::Map => MAP_ID,
            CodecKind::Custom(c) => c.id(),
        }
    }

    /// The debug-state name (`compact` / `map` / the user codec's).
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Compact => "compact",
            CodecKind::Map => "map",
            CodecKind::Custom(c) => c.name(),
        }
    }
}

impl From<&'static dyn CodecImpl> for CodecKind {
    fn from(codec: &'static dyn CodecImpl) -> CodecKind {
        CodecKind::Custom(codec)
    }
}

impl PartialEq for CodecKind {
    fn eq(&self, other: &CodecKind) -> bool {
        self.id() == other.id()
    }
}

impl Eq for CodecKind {}

impl std::hash::Hash for CodecKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl std::fmt::Debug for CodecKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecKind::Compact => f.write_str("Compact"),
            CodecKind::Map => f.write_str("Map"),
            CodecKind::Custom(c) => write!(f, "Custom({}, id {})", c.name(), c.id()),
        }
    }
}

/// A payload codec (spec §4). Implemented by [`Compact`] and [`Map`]; the
/// runtime dispatches through [`CodecKind`] without dynamic calls.
pub trait Codec {
    /// Handshake id.
    const ID: CodecId;
    /// Debug-state name.
    const NAME: &'static str;

    /// Appends the whole envelope of `msg` (wire name + body) to `out`.
    /// On error `out` may hold a partial envelope: callers truncate (the frame
    /// encoder does).
    fn encode<M: Message + ?Sized>(&self, msg: &M, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError>;

    /// Reads only the envelope: borrowed wire name and the undecoded body.
    /// Never allocates.
    fn decode_envelope<'a>(&self, payload: &'a [u8]) -> Result<Envelope<'a>, DecodeError>;

    /// Decodes the body of an envelope produced by this codec into `T`,
    /// borrowing from the payload where `T` allows.
    fn decode_body<'de, T: Deserialize<'de>>(&self, env: &Envelope<'de>) -> Result<T, DecodeError>;
}

/// MessagePack compact codec (id 1): `[wire_name, field_1, ..., field_n]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Compact;

/// MessagePack map codec (id 2): `{"type": wire_name, "data": {field: value}}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Map;

impl Codec for Compact {
    const ID: CodecId = COMPACT_ID;
    const NAME: &'static str = "compact";

    fn encode<M: Message + ?Sized>(&self, msg: &M, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError> {
        ser::encode_compact(M::WIRE_NAME, msg, profile, out)
    }

    fn decode_envelope<'a>(&self, payload: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        envelope::decode_compact(payload)
    }

    fn decode_body<'de, T: Deserialize<'de>>(&self, env: &Envelope<'de>) -> Result<T, DecodeError> {
        de::decode_body(env)
    }
}

impl Codec for Map {
    const ID: CodecId = MAP_ID;
    const NAME: &'static str = "map";

    fn encode<M: Message + ?Sized>(&self, msg: &M, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError> {
        ser::encode_map(M::WIRE_NAME, msg, profile, out)
    }

    fn decode_envelope<'a>(&self, payload: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        envelope::decode_map(payload)
    }

    fn decode_body<'de, T: Deserialize<'de>>(&self, env: &Envelope<'de>) -> Result<T, DecodeError> {
        de::decode_body(env)
    }
}

impl CodecKind {
    /// Encodes `msg` with this codec (see [`Codec::encode`]).
    #[inline]
    pub fn encode<M: Message + ?Sized>(self, msg: &M, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            CodecKind::Compact => Compact.encode(msg, profile, out),
            CodecKind::Map => Map.encode(msg, profile, out),
            CodecKind::Custom(c) => c.encode(M::WIRE_NAME, &custom::AsSized(msg), profile, out),
        }
    }

    /// Reads only the envelope (see [`Codec::decode_envelope`]).
    #[inline]
    pub fn decode_envelope(self, payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
        match self {
            CodecKind::Compact => Compact.decode_envelope(payload),
            CodecKind::Map => Map.decode_envelope(payload),
            CodecKind::Custom(c) => c.decode_envelope(payload),
        }
    }

    /// Decodes an envelope's body (see [`Codec::decode_body`]).
    #[inline]
    pub fn decode_body<'de, T: Deserialize<'de>>(self, env: &Envelope<'de>) -> Result<T, DecodeError> {
        match self {
            CodecKind::Compact => Compact.decode_body(env),
            CodecKind::Map => Map.decode_body(env),
            CodecKind::Custom(c) => decode_custom(c, env),
        }
    }
}

/// [`CodecKind::decode_body`] through a user codec: `T` is deserialized from
/// the codec's erased deserializer.
#[inline(never)]
fn decode_custom<'de, T: Deserialize<'de>>(codec: &dyn CodecImpl, env: &Envelope<'de>) -> Result<T, DecodeError> {
    let mut out: Option<T> = None;
    codec.decode_body(env, &mut |de| {
        out = Some(erased_serde::deserialize::<T>(de)?);
        Ok(())
    })?;
    out.ok_or_else(|| DecodeError::Codec(format!("codec {} decoded no body", codec.name())))
}

/// Why [`CodecRegistry::register`] refused a codec (the reference's
/// `RegisterCodec` errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// Id 0 is invalid in the handshake.
    #[error("codec ID must be non-zero")]
    ZeroId,
    /// Another codec of this registry already has the id.
    #[error("codec ID {0} already registered")]
    Duplicate(CodecId),
}

/// The codecs a peer supports, in its order of preference (spec §2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecRegistry {
    kinds: Vec<CodecKind>,
}

impl Default for CodecRegistry {
    /// Compact then map, like the reference's default.
    fn default() -> Self {
        CodecRegistry {
            kinds: vec![CodecKind::Compact, CodecKind::Map],
        }
    }
}

impl CodecRegistry {
    /// A registry of the given codecs in preference order (duplicate ids and
    /// id 0 removed).
    pub fn new(kinds: impl IntoIterator<Item = CodecKind>) -> CodecRegistry {
        let mut v: Vec<CodecKind> = Vec::new();
        for k in kinds {
            if k.id() != 0 && !v.contains(&k) {
                v.push(k);
            }
        }
        CodecRegistry { kinds: v }
    }

    /// Adds a codec, last in preference order (the reference's
    /// `RegisterCodec`): a user codec (`CodecKind::Custom`, or a
    /// `&'static dyn CodecImpl`) or a built-in left out of [`CodecRegistry::new`].
    /// A peer that does not know the id simply never selects it (§2.5).
    pub fn register(&mut self, codec: impl Into<CodecKind>) -> Result<(), RegisterError> {
        let codec = codec.into();
        match codec.id() {
            0 => Err(RegisterError::ZeroId),
            id if self.supports(id) => Err(RegisterError::Duplicate(id)),
            _ => {
                self.kinds.push(codec);
                Ok(())
            }
        }
    }

    /// [`CodecRegistry::register`] by value, for chaining; panics on the
    /// errors (the reference's `MustRegisterCodec`).
    ///
    /// # Panics
    /// When `codec`'s id is 0 or already registered.
    #[must_use]
    pub fn with(mut self, codec: impl Into<CodecKind>) -> CodecRegistry {
        if let Err(e) = self.register(codec) {
            panic!("CodecRegistry::with: {e}");
        }
        self
    }

    /// The registered codec of handshake id `id`.
    pub fn get(&self, id: CodecId) -> Option<CodecKind> {
        if id == 0 {
            return None;
        }
        self.kinds.iter().copied().find(|k| k.id() == id)
    }

    /// The codecs in preference order.
    pub fn kinds(&self) -> &[CodecKind] {
        &self.kinds
    }

    /// True when `id` is supported here.
    pub fn supports(&self, id: CodecId) -> bool {
        self.get(id).is_some()
    }

    /// Server-side selection (spec §2.5): the first id of the *client's* list
    /// that is supported here; unknown ids, 0 and duplicates are skipped.
    pub fn select(&self, client_ids: &[CodecId]) -> Option<CodecKind> {
        client_ids.iter().find_map(|&id| self.get(id))
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn selection_walks_client_order() {
        let both = CodecRegistry::default();
        assert_eq!(both.select(&[2, 1]), Some(CodecKind::Map));
        assert_eq!(both.select(&[3, 2]), Some(CodecKind::Map));
        assert_eq!(both.select(&[0, 0, 1]), Some(CodecKind::Compact));
        assert_eq!(both.select(&[3, 4]), None);
        let map_only = CodecRegistry::new([CodecKind::Map]);
        assert_eq!(map_only.select(&[1, 2]), Some(CodecKind::Map));
        assert_eq!(map_only.select(&[1]), None);
    }

    #[test]
    fn registration_rules() {
        let mut reg = CodecRegistry::new([CodecKind::Map]);
        assert_eq!(reg.register(CodecKind::Map), Err(RegisterError::Duplicate(2)));
        reg.register(CodecKind::Compact).unwrap();
        assert_eq!(reg.kinds(), &[CodecKind::Map, CodecKind::Compact]);
        assert_eq!(reg.get(0), None);
        assert_eq!(reg.get(1), Some(CodecKind::Compact));
        assert_eq!(CodecKind::Compact.id(), 1);
        assert_eq!(format!("{:?}", CodecKind::Map), "Map");
    }
}
