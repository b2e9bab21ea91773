//! What the decoder does only to match the Go reference:
//! * timestamps: the `$amring::timestamp` marker reads ext −1 in its three
//!   lengths (4, 8, 12 bytes) and presents it as the tuple
//!   `(secs: i64, nanos: u32)`; a nil timestamp is Go's zero `time.Time`
//!   ([`GO_ZERO_TIME_SECS`]);
//! * zero values: `Zero` answers every type hint with Go's zero value, for
//!   absent keys of a struct map and nil in map bodies; for the
//!   `$amring::embedded` marker it reads the embedded struct's fields from the
//!   parent map, where the reference inlines them.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::access::BytesSeq;
use super::value::De;
use super::{depth_exceeded, Mode, EMBEDDED, GO_ZERO_TIME_SECS, MAX_DEPTH, TIMESTAMP};
use crate::codec::de_read::Reader;
use crate::codec::error::DecodeError;

// ---------------------------------------------------------------------------
// Timestamps.

/// A decoded ext −1, presented as the tuple `(secs: i64, nanos: u32)`.
pub(super) struct TimestampDe {
    secs: i64,
    nanos: u32,
}

impl TimestampDe {
    pub(super) fn go_zero() -> TimestampDe {
        TimestampDe {
            secs: GO_ZERO_TIME_SECS,
            nanos: 0,
        }
    }

    pub(super) fn parse(data: &[u8]) -> Result<TimestampDe, DecodeError> {
        match data.len() {
            4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(data);
                Ok(TimestampDe {
                    secs: i64::from(u32::from_be_bytes(b)),
                    nanos: 0,
                })
            }
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(data);
                let v = u64::from_be_bytes(b);
                Ok(TimestampDe {
                    secs: (v & ((1u64 << 34) - 1)) as i64,
                    nanos: (v >> 34) as u32,
                })
            }
            12 => {
                let mut n = [0u8; 4];
                n.copy_from_slice(&data[..4]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&data[4..]);
                Ok(TimestampDe {
                    secs: i64::from_be_bytes(s),
                    nanos: u32::from_be_bytes(n),
                })
            }
            n => Err(DecodeError::Codec(format!(
                "msgpack: invalid ext len={n} decoding time"
            ))),
        }
    }
}

impl<'de> Deserializer<'de> for TimestampDe {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            [TsPart::Secs(self.secs), TsPart::Nanos(self.nanos)].into_iter(),
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

enum TsPart {
    Secs(i64),
    Nanos(u32),
}

impl<'de> IntoDeserializer<'de, DecodeError> for TsPart {
    type Deserializer = TsPartDe;

    fn into_deserializer(self) -> TsPartDe {
        TsPartDe(self)
    }
}

struct TsPartDe(TsPart);

impl<'de> Deserializer<'de> for TsPartDe {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            TsPart::Secs(s) => visitor.visit_i64(s),
            TsPart::Nanos(n) => visitor.visit_u32(n),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

// ---------------------------------------------------------------------------
// Zero values (absent map keys, nil in map bodies).

/// Answers every type hint with its zero value. For `$amring::embedded` with
/// a parent map at hand, decodes the embedded struct from that map (its
/// fields are inlined there by the map codec).
pub(super) struct Zero<'de> {
    pub(super) parent_map: Option<&'de [u8]>,
    pub(super) depth: u16,
    pub(super) mode: Mode,
}

impl<'de> Zero<'de> {
    fn enter(&self) -> Result<u16, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(depth_exceeded());
        }
        Ok(self.depth + 1)
    }

    fn empty_seq<V: Visitor<'de>>(visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(BytesSeq { bytes: &[], idx: 0 })
    }
}

struct ZeroSeq {
    left: usize,
    depth: u16,
    mode: Mode,
}

impl<'de> de::SeqAccess<'de> for ZeroSeq {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Zero {
            parent_map: None,
            depth: self.depth,
            mode: self.mode,
        })
        .map(Some)
    }
}

struct ZeroStruct {
    fields: &'static [&'static str],
    idx: usize,
    depth: u16,
    mode: Mode,
}

impl<'de> de::MapAccess<'de> for ZeroStruct {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        match self.fields.get(self.idx) {
            Some(&name) => {
                self.idx += 1;
                seed.deserialize(BorrowedStrDeserializer::<DecodeError>::new(name))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DecodeError> {
        seed.deserialize(Zero {
            parent_map: None,
            depth: self.depth,
            mode: self.mode,
        })
    }
}

impl<'de> Deserializer<'de> for Zero<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_bool(false)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i8(0)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i16(0)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i32(0)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i64(0)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i128(0)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u8(0)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u16(0)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u32(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u64(0)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u128(0)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_char('\0')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_str("")
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_borrowed_bytes(&[])
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_none()
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == TIMESTAMP {
            return visitor.visit_newtype_struct(TimestampDe::go_zero());
        }
        if name == EMBEDDED {
            if let Some(map) = self.parent_map {
                let depth = self.enter()?;
                // Embedded fields: always two-pass (a duplicate found here could
                // not flag the outer reader).
                let mut rd = Reader::new(map);
                rd.two_pass = true;
                return visitor.visit_newtype_struct(De {
                    rd: &mut rd,
                    mode: Mode::Map,
                    depth,
                    map_value: false,
                });
            }
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        Self::empty_seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        let depth = self.enter()?;
        visitor.visit_seq(ZeroSeq {
            left: len,
            depth,
            mode: self.mode,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(ZeroStruct {
            fields: &[],
            idx: 0,
            depth: self.depth,
            mode: self.mode,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let depth = self.enter()?;
        visitor.visit_map(ZeroStruct {
            fields,
            idx: 0,
            depth,
            mode: self.mode,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(DecodeError::Codec("msgpack: cannot assign nil to an enum".into()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::Codec("msgpack: cannot assign nil to an identifier".into()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
