//! The serde Deserializer over MessagePack bodies with the reference's
//! tolerance rules (spec §4.6, §9 note 1).
//!
//! * Compact body: the envelope's elements after the name are presented as
//!   the struct's fields; their count must equal the field count exactly
//!   (also for every nested positional array).
//! * Map body: a map keyed by field name (unknown keys ignored, duplicate key:
//!   last wins, missing keys: zero values synthesised), or a positional array
//!   of exactly the field count.
//! * `c0` (nil): accepted everywhere in map bodies (zero value); in compact
//!   bodies accepted for option / seq / map / bytes / str positions (empty or
//!   absent — Go sends it there although its own decoder refuses it), refused
//!   with `codec error: EOF` elsewhere, like Go.
//! * Integers convert between all widths wrapping like Go; int → float and
//!   f32 → f64 are accepted; f64 → f32, float → int, int → bool, str ↔ int are
//!   refused; bin ↔ str are interchangeable.
//! * `&'de str` / `&'de [u8]` borrow from the payload.
//! * Newtype structs are transparent, except the markers
//!   `$amring::timestamp` (ext −1 presented as the tuple `(secs: i64, nanos: u32)`)
//!   and `$amring::embedded` (map codec: the embedded struct's fields are read
//!   from the parent map, where the reference inlines them).
//! * Nesting is bounded by [`MAX_DEPTH`]; no input makes anything panic.
//!
//! Layout of this module:
//! * here: the entry point [`decode_body`] (with its two-pass retry for
//!   repeated map keys), the limits and marker names, and the top level of a
//!   compact body (`TopCompact`);
//! * `value`: the deserializer for one value (`De`), where the per-type
//!   conversion and nil rules live;
//! * `access`: the serde `SeqAccess` / `MapAccess` / `EnumAccess` types over
//!   arrays, maps, struct maps (last key wins, absent fields zero-filled) and
//!   enums;
//! * `gocompat`: what only exists to match Go — timestamps (ext −1, Go's zero
//!   time) and the zero-value deserializer (absent keys, nil, embedded
//!   structs read from the parent map).

mod access;
mod gocompat;
mod value;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::de_read::Reader;
use super::envelope::{BodyKind, Envelope};
use super::error::DecodeError;
use access::Seq;
use value::De;

/// Maximum nesting of containers/structs in a body.
pub(crate) const MAX_DEPTH: u16 = 128;

/// Marker newtype name for timestamps.
pub(crate) const TIMESTAMP: &str = "$amring::timestamp";
/// Marker newtype name for embedded structs.
pub(crate) const EMBEDDED: &str = "$amring::embedded";

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z): what a nil
/// timestamp decodes to in the map codec.
pub(crate) const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DecodeError::Codec(msg.to_string())
    }
}

fn depth_exceeded() -> DecodeError {
    DecodeError::Codec("msgpack: exceeded max depth".into())
}

/// Decodes an envelope's body into `T`.
///
/// Map bodies are decoded in one pass, each struct field delivered at its
/// first occurrence. Serde's derived visitors reject a repeated field, and the
/// reference keeps the *last* one, so when a struct map meets a known key twice
/// the whole body is decoded again in two-pass mode (a key pre-scan per struct
/// map finds each field's last occurrence). The flag lives in the reader, so a
/// `Deserialize` impl that swallows the first attempt's error cannot hide it.
#[inline]
pub(crate) fn decode_body<'de, T: Deserialize<'de>>(env: &Envelope<'de>) -> Result<T, DecodeError> {
    let mut rd = Reader::new(env.body);
    let first = decode_with(&mut rd, env);
    if !rd.dup_seen {
        return first;
    }
    drop(first);
    let mut rd = Reader::new(env.body);
    rd.two_pass = true;
    decode_with(&mut rd, env)
}

#[inline]
fn decode_with<'de, T: Deserialize<'de>>(rd: &mut Reader<'de>, env: &Envelope<'de>) -> Result<T, DecodeError> {
    match env.kind {
        BodyKind::CompactFields { fields } => T::deserialize(TopCompact { rd, fields }),
        BodyKind::MapData => T::deserialize(De {
            rd,
            mode: Mode::Map,
            depth: 0,
            map_value: false,
        }),
        BodyKind::Custom => Err(DecodeError::Codec("not a MessagePack body".into())),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Compact,
    Map,
}

// ---------------------------------------------------------------------------
// Top level of a compact body: `fields` consecutive values.

struct TopCompact<'r, 'de> {
    rd: &'r mut Reader<'de>,
    fields: u32,
}

impl<'r, 'de> TopCompact<'r, 'de> {
    fn check(&self, expected: usize) -> Result<(), DecodeError> {
        if expected != self.fields as usize {
            return Err(DecodeError::CompactFieldCount {
                expected,
                got: self.fields as usize,
            });
        }
        Ok(())
    }

    fn seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let mut acc = Seq {
            rd: self.rd,
            mode: Mode::Compact,
            depth: 1,
            left: self.fields,
        };
        let v = visitor.visit_seq(&mut acc)?;
        acc.finish()?;
        Ok(v)
    }
}

impl<'r, 'de> Deserializer<'de> for TopCompact<'r, 'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.check(fields.len())?;
        self.seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        self.check(len)?;
        self.seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.check(len)?;
        self.seq(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.check(0)?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.rd.skip(u64::from(self.fields))?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option seq map enum identifier
    }
}

#[cfg(test)]
mod tests;
