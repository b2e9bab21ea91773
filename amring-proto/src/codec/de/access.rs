//! The serde access types the deserializer hands containers to:
//! * `Seq` (array elements) and `BytesSeq` (a bin/str read as a byte sequence);
//! * `GenMap` (a map read as a map);
//! * `StructMap` (a map body read as a struct: each known field delivered
//!   once, a repeated key flagging the reader for the two-pass retry where the
//!   last occurrence wins, unknown keys skipped, absent fields fed zero values);
//! * `Enum` (a unit variant as a string, or a one-entry map `{variant: value}`).
//!
//! Each one skips, when finished, whatever its visitor left unread.

use serde::de::value::{BorrowedStrDeserializer, U8Deserializer};
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::gocompat::Zero;
use super::value::De;
use super::Mode;
use crate::codec::de_read::{invalid_code, Head, Reader};
use crate::codec::error::DecodeError;

pub(super) struct Seq<'r, 'de> {
    pub(super) rd: &'r mut Reader<'de>,
    pub(super) mode: Mode,
    pub(super) depth: u16,
    pub(super) left: u32,
}

impl<'r, 'de> Seq<'r, 'de> {
    /// Skips elements the visitor did not consume.
    pub(super) fn finish(&mut self) -> Result<(), DecodeError> {
        let left = std::mem::take(&mut self.left);
        self.rd.skip(u64::from(left))
    }
}

impl<'r, 'de> de::SeqAccess<'de> for Seq<'r, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left as usize)
    }
}

pub(super) struct BytesSeq<'de> {
    pub(super) bytes: &'de [u8],
    pub(super) idx: usize,
}

impl<'de> de::SeqAccess<'de> for BytesSeq<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        match self.bytes.get(self.idx) {
            Some(&b) => {
                self.idx += 1;
                seed.deserialize(U8Deserializer::<DecodeError>::new(b)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len() - self.idx)
    }
}

pub(super) struct GenMap<'r, 'de> {
    pub(super) rd: &'r mut Reader<'de>,
    pub(super) mode: Mode,
    pub(super) depth: u16,
    pub(super) left: u32,
    pub(super) value_pending: bool,
}

impl<'r, 'de> GenMap<'r, 'de> {
    pub(super) fn finish(&mut self) -> Result<(), DecodeError> {
        let mut n = 2 * u64::from(std::mem::take(&mut self.left));
        if std::mem::take(&mut self.value_pending) {
            n += 1;
        }
        self.rd.skip(n)
    }
}

impl<'r, 'de> de::MapAccess<'de> for GenMap<'r, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.value_pending = true;
        seed.deserialize(De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        })
        .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DecodeError> {
        if !self.value_pending {
            return Err(DecodeError::Codec("map value requested before its key".into()));
        }
        self.value_pending = false;
        seed.deserialize(De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: true,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left as usize)
    }
}

/// Per-field state of a struct map: which fields were delivered (single pass)
/// or where each field last occurs (two-pass, `u32::MAX`: absent).
enum Fields {
    /// Single pass, up to 64 fields: bit `i` set once field `i` was delivered.
    Bits(u64),
    /// Single pass, up to 256 fields.
    Wide([u64; 4]),
    /// Single pass, more fields: one flag per field.
    Flags(Vec<bool>),
    /// Two-pass: ordinal of the last occurrence of each field.
    Last(Vec<u32>),
}

/// A map body presented to a struct visitor: each known field is delivered
/// once (single pass: at its first occurrence, a second one flags the reader
/// for a two-pass retry; two-pass: only at its last occurrence), unknown keys
/// are skipped, then every absent field is fed a zero value.
pub(super) struct StructMap<'r, 'de> {
    rd: &'r mut Reader<'de>,
    depth: u16,
    left: u32,
    ordinal: u32,
    fields: &'static [&'static str],
    state: Fields,
    /// Where the next key is expected in `fields` (encoders follow declaration order).
    hint: usize,
    missing_cursor: usize,
    /// `Some(true)`: a real value follows; `Some(false)`: a synthesised zero.
    pending: Option<bool>,
    /// The whole parent map (from its header): where embedded fields live.
    parent_map: &'de [u8],
}

#[inline]
fn field_index(fields: &[&str], hint: usize, key: &[u8]) -> Option<usize> {
    if let Some(f) = fields.get(hint) {
        if f.as_bytes() == key {
            return Some(hint);
        }
    }
    fields.iter().position(|f| f.as_bytes() == key)
}

#[inline]
fn read_key<'de>(rd: &mut Reader<'de>) -> Result<&'de [u8], DecodeError> {
    match rd.read_head()? {
        Head::Str(s) | Head::Bin(s) => Ok(s),
        _ => Err(invalid_code(rd.last_marker(), "string/bytes length")),
    }
}

/// The single-pass attempt met a repeated field; the body is decoded again.
fn duplicate_field() -> DecodeError {
    DecodeError::Codec("msgpack: duplicate field (retried in two-pass mode)".into())
}

impl<'r, 'de> StructMap<'r, 'de> {
    #[inline]
    pub(super) fn new(
        rd: &'r mut Reader<'de>,
        depth: u16,
        n: u32,
        fields: &'static [&'static str],
        parent_map: &'de [u8],
    ) -> Result<StructMap<'r, 'de>, DecodeError> {
        let state = if rd.two_pass {
            Self::prescan(rd, n, fields)?
        } else if fields.len() <= 64 {
            Fields::Bits(0)
        } else if fields.len() <= 256 {
            Fields::Wide([0; 4])
        } else {
            Fields::Flags(vec![false; fields.len()])
        };
        Ok(StructMap {
            rd,
            depth,
            left: n,
            ordinal: 0,
            fields,
            state,
            hint: 0,
            missing_cursor: 0,
            pending: None,
            parent_map,
        })
    }

    /// Two-pass mode: the last occurrence of every known field.
    #[cold]
    fn prescan(rd: &mut Reader<'de>, n: u32, fields: &'static [&'static str]) -> Result<Fields, DecodeError> {
        let mut last = vec![u32::MAX; fields.len()];
        let start = rd.pos();
        for ord in 0..n {
            let key = read_key(rd)?;
            if let Some(i) = field_index(fields, 0, key) {
                last[i] = ord;
            }
            rd.skip(1)?;
        }
        rd.seek(start);
        Ok(Fields::Last(last))
    }

    /// Whether the entry `ord` with field `i` is delivered; flags duplicates.
    #[inline]
    fn take(&mut self, i: usize, ord: u32) -> Result<bool, DecodeError> {
        match &mut self.state {
            Fields::Bits(bits) => {
                let bit = 1u64 << i;
                if *bits & bit != 0 {
                    self.rd.dup_seen = true;
                    return Err(duplicate_field());
                }
                *bits |= bit;
                Ok(true)
            }
            Fields::Wide(words) => {
                let (w, bit) = (i / 64, 1u64 << (i % 64));
                if words[w] & bit != 0 {
                    self.rd.dup_seen = true;
                    return Err(duplicate_field());
                }
                words[w] |= bit;
                Ok(true)
            }
            Fields::Flags(seen) => {
                if std::mem::replace(&mut seen[i], true) {
                    self.rd.dup_seen = true;
                    return Err(duplicate_field());
                }
                Ok(true)
            }
            Fields::Last(last) => Ok(last[i] == ord),
        }
    }

    /// Whether field `i` never occurred in the map.
    #[inline]
    fn absent(&self, i: usize) -> bool {
        match &self.state {
            Fields::Bits(bits) => *bits & (1u64 << i) == 0,
            Fields::Wide(words) => words[i / 64] & (1u64 << (i % 64)) == 0,
            Fields::Flags(seen) => !seen[i],
            Fields::Last(last) => last[i] == u32::MAX,
        }
    }

    pub(super) fn finish(&mut self) -> Result<(), DecodeError> {
        let mut n = 2 * u64::from(std::mem::take(&mut self.left));
        if self.pending.take() == Some(true) {
            n += 1;
        }
        self.rd.skip(n)
    }
}

impl<'r, 'de> de::MapAccess<'de> for StructMap<'r, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        if self.pending.take() == Some(true) {
            // The visitor skipped a value it had asked the key of.
            self.rd.skip(1)?;
        }
        while self.left > 0 {
            self.left -= 1;
            let ord = self.ordinal;
            self.ordinal += 1;
            let key = read_key(self.rd)?;
            if let Some(i) = field_index(self.fields, self.hint, key) {
                self.hint = i + 1;
                if self.take(i, ord)? {
                    self.pending = Some(true);
                    let name: &'static str = self.fields[i];
                    return seed
                        .deserialize(BorrowedStrDeserializer::<DecodeError>::new(name))
                        .map(Some);
                }
            }
            self.rd.skip(1)?;
        }
        while self.missing_cursor < self.fields.len() {
            let i = self.missing_cursor;
            self.missing_cursor += 1;
            if self.absent(i) {
                self.pending = Some(false);
                let name: &'static str = self.fields[i];
                return seed
                    .deserialize(BorrowedStrDeserializer::<DecodeError>::new(name))
                    .map(Some);
            }
        }
        Ok(None)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DecodeError> {
        match self.pending.take() {
            Some(true) => seed.deserialize(De {
                rd: self.rd,
                mode: Mode::Map,
                depth: self.depth,
                map_value: false,
            }),
            Some(false) => seed.deserialize(Zero {
                parent_map: Some(self.parent_map),
                depth: self.depth,
                mode: Mode::Map,
            }),
            None => Err(DecodeError::Codec("map value requested before its key".into())),
        }
    }
}

pub(super) struct Enum<'r, 'de> {
    pub(super) rd: &'r mut Reader<'de>,
    pub(super) mode: Mode,
    pub(super) depth: u16,
}

impl<'r, 'de> de::EnumAccess<'de> for Enum<'r, 'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DecodeError> {
        let v = seed.deserialize(De {
            rd: &mut *self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        })?;
        Ok((v, self))
    }
}

impl<'r, 'de> de::VariantAccess<'de> for Enum<'r, 'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        self.rd.skip(1)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DecodeError> {
        seed.deserialize(De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        }
        .deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        De {
            rd: self.rd,
            mode: self.mode,
            depth: self.depth,
            map_value: false,
        }
        .deserialize_struct("", fields, visitor)
    }
}
