//! The deserializer for one MessagePack value (`De`): every serde type hint
//! mapped onto the MessagePack heads it accepts, with the reference's rules —
//! integers of any width wrapped like Go (the int64 bit pattern, truncated),
//! int → float and f32 → f64 accepted, bin ↔ str interchangeable, and nil
//! taken as the zero value in map bodies but refused at compact scalar
//! positions with Go's error texts. Containers hand over to the access types
//! in `access`; zero values and timestamps come from `gocompat`.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{Deserializer, Visitor};

use super::access::{BytesSeq, Enum, GenMap, Seq, StructMap};
use super::gocompat::{TimestampDe, Zero};
use super::{depth_exceeded, Mode, MAX_DEPTH, TIMESTAMP};
use crate::codec::de_read::{eof, invalid_code, utf8, Head, Reader};
use crate::codec::error::DecodeError;

pub(super) struct De<'r, 'de> {
    pub(super) rd: &'r mut Reader<'de>,
    pub(super) mode: Mode,
    pub(super) depth: u16,
    /// This value is a map value in a compact body (Go's nil error text differs there).
    pub(super) map_value: bool,
}

/// Integer read as Go does: the int64 bit pattern of any integer format.
enum IntRead {
    Bits(u64),
    Nil,
}

impl<'r, 'de> De<'r, 'de> {
    #[inline]
    fn enter(&self) -> Result<u16, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(depth_exceeded());
        }
        Ok(self.depth + 1)
    }

    /// The error for a nil the compact codec cannot take here (Go's texts).
    fn nil_err(&self) -> DecodeError {
        if self.map_value {
            DecodeError::Codec("compact decode cannot assign nil to value".into())
        } else {
            eof()
        }
    }

    /// True (and the nil consumed) when the next value is nil and nil is
    /// acceptable here; `Err(EOF)` when it is nil and not acceptable (compact
    /// scalar position, like Go).
    #[inline]
    fn take_nil(&mut self, compact_ok: bool) -> Result<bool, DecodeError> {
        if self.rd.peek() != Some(0xc0) {
            return Ok(false);
        }
        if self.mode == Mode::Compact && !compact_ok {
            return Err(self.nil_err());
        }
        self.rd.skip(1)?;
        Ok(true)
    }

    fn zero(&self) -> Zero<'de> {
        Zero {
            parent_map: None,
            depth: self.depth,
            mode: self.mode,
        }
    }

    #[inline]
    fn int(&mut self, what: &str) -> Result<IntRead, DecodeError> {
        match self.rd.read_head()? {
            Head::Uint(u) => Ok(IntRead::Bits(u)),
            Head::Int(i) => Ok(IntRead::Bits(i as u64)),
            Head::Nil if self.mode == Mode::Map => Ok(IntRead::Nil),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), what)),
        }
    }

    fn str_bytes(&mut self) -> Result<Option<&'de [u8]>, DecodeError> {
        match self.rd.read_head()? {
            Head::Str(s) | Head::Bin(s) => Ok(Some(s)),
            Head::Nil => Ok(None),
            _ => Err(invalid_code(self.rd.last_marker(), "string/bytes length")),
        }
    }

    fn seq_body<V: Visitor<'de>>(&mut self, n: u32, visitor: V) -> Result<V::Value, DecodeError> {
        let depth = self.enter()?;
        let mut acc = Seq {
            rd: self.rd,
            mode: self.mode,
            depth,
            left: n,
        };
        let v = visitor.visit_seq(&mut acc)?;
        acc.finish()?;
        Ok(v)
    }

    fn map_body<V: Visitor<'de>>(&mut self, n: u32, visitor: V) -> Result<V::Value, DecodeError> {
        let depth = self.enter()?;
        let mut acc = GenMap {
            rd: self.rd,
            mode: self.mode,
            depth,
            left: n,
            value_pending: false,
        };
        let v = visitor.visit_map(&mut acc)?;
        acc.finish()?;
        Ok(v)
    }
}

macro_rules! de_int {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.int($what)? {
                // Go semantics: int64 bit pattern, truncated to the target width.
                IntRead::Bits(b) => visitor.$visit(b as $ty),
                IntRead::Nil => visitor.$visit(0),
            }
        }
    )*};
}

impl<'r, 'de> Deserializer<'de> for De<'r, 'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Nil => visitor.visit_unit(),
            Head::Bool(b) => visitor.visit_bool(b),
            Head::Uint(u) => visitor.visit_u64(u),
            Head::Int(i) => visitor.visit_i64(i),
            Head::F32(f) => visitor.visit_f32(f),
            Head::F64(f) => visitor.visit_f64(f),
            Head::Str(s) => match utf8(s) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(s),
            },
            Head::Bin(b) => visitor.visit_borrowed_bytes(b),
            Head::Ext(_, data) => visitor.visit_borrowed_bytes(data),
            Head::Array(n) => self.seq_body(n, visitor),
            Head::Map(n) => self.map_body(n, visitor),
            Head::Reserved => Err(invalid_code(0xc1, "value")),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Bool(b) => visitor.visit_bool(b),
            Head::Nil if self.mode == Mode::Map => visitor.visit_bool(false),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), "bool")),
        }
    }

    de_int! {
        deserialize_i8 visit_i8 i8, "int64";
        deserialize_i16 visit_i16 i16, "int64";
        deserialize_i32 visit_i32 i32, "int64";
        deserialize_i64 visit_i64 i64, "int64";
        deserialize_u8 visit_u8 u8, "uint64";
        deserialize_u16 visit_u16 u16, "uint64";
        deserialize_u32 visit_u32 u32, "uint64";
        deserialize_u64 visit_u64 u64, "uint64";
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Uint(u) => visitor.visit_i128(i128::from(u)),
            Head::Int(i) => visitor.visit_i128(i128::from(i)),
            Head::Nil if self.mode == Mode::Map => visitor.visit_i128(0),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), "int64")),
        }
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Uint(u) => visitor.visit_u128(u128::from(u)),
            Head::Int(i) => visitor.visit_u128(u128::from(i as u64)),
            Head::Nil if self.mode == Mode::Map => visitor.visit_u128(0),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), "uint64")),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::F32(f) => visitor.visit_f32(f),
            // Go: the integer as int64, then converted.
            Head::Uint(u) => visitor.visit_f32(u as i64 as f32),
            Head::Int(i) => visitor.visit_f32(i as f32),
            Head::Nil if self.mode == Mode::Map => visitor.visit_f32(0.0),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), "float32")),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::F64(f) => visitor.visit_f64(f),
            Head::F32(f) => visitor.visit_f64(f64::from(f)),
            Head::Uint(u) => visitor.visit_f64(u as i64 as f64),
            Head::Int(i) => visitor.visit_f64(i as f64),
            Head::Nil if self.mode == Mode::Map => visitor.visit_f64(0.0),
            Head::Nil => Err(self.nil_err()),
            _ => Err(invalid_code(self.rd.last_marker(), "float64")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.take_nil(false)? {
            return visitor.visit_char('\0');
        }
        let s = self.str_bytes()?.unwrap_or_default();
        let s = utf8(s).map_err(|_| DecodeError::Codec("msgpack: invalid UTF-8 string".into()))?;
        let mut it = s.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(DecodeError::Codec("msgpack: expected a single character".into())),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        // nil → "" in both codecs (compact: Go sends nothing else, but accept).
        match self.str_bytes()? {
            Some(s) => match utf8(s) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => Err(DecodeError::Codec("msgpack: invalid UTF-8 string".into())),
            },
            None => visitor.visit_borrowed_str(""),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.str_bytes()? {
            Some(b) => visitor.visit_borrowed_bytes(b),
            None => visitor.visit_borrowed_bytes(&[]),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.take_nil(true)? {
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Nil | Head::Array(0) | Head::Map(0) => visitor.visit_unit(),
            _ => Err(invalid_code(self.rd.last_marker(), "nil")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == TIMESTAMP {
            if self.take_nil(false)? {
                return visitor.visit_newtype_struct(TimestampDe::go_zero());
            }
            return match self.rd.read_head()? {
                Head::Ext(-1, data) => visitor.visit_newtype_struct(TimestampDe::parse(data)?),
                _ => Err(invalid_code(self.rd.last_marker(), "time")),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Array(n) => self.seq_body(n, visitor),
            // `Vec<u8>` / `[u8; N]` from bin or str (the map codec sends `[N]byte` as bin).
            Head::Bin(b) | Head::Str(b) => visitor.visit_seq(BytesSeq { bytes: b, idx: 0 }),
            Head::Nil => visitor.visit_seq(BytesSeq { bytes: &[], idx: 0 }),
            _ => Err(invalid_code(self.rd.last_marker(), "array length")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(mut self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        if self.take_nil(false)? {
            return self.zero().deserialize_tuple(len, visitor);
        }
        match self.rd.read_head()? {
            Head::Array(n) if n as usize == len => self.seq_body(n, visitor),
            Head::Array(n) => Err(DecodeError::Codec(format!(
                "msgpack: array length mismatch: expected {len}, got {n}"
            ))),
            Head::Bin(b) | Head::Str(b) if b.len() == len => visitor.visit_seq(BytesSeq { bytes: b, idx: 0 }),
            _ => Err(invalid_code(self.rd.last_marker(), "array length")),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Map(n) => self.map_body(n, visitor),
            Head::Nil => self.map_body(0, visitor),
            _ => Err(invalid_code(self.rd.last_marker(), "map length")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if self.take_nil(false)? {
            return self.zero().deserialize_struct(_name, fields, visitor);
        }
        let start = self.rd.pos();
        match self.rd.read_head()? {
            Head::Array(n) => {
                if n as usize != fields.len() {
                    return Err(match self.mode {
                        Mode::Compact => DecodeError::CompactFieldCount {
                            expected: fields.len(),
                            got: n as usize,
                        },
                        Mode::Map => {
                            DecodeError::Codec("msgpack: number of fields in array-encoded struct has changed".into())
                        }
                    });
                }
                self.seq_body(n, visitor)
            }
            Head::Map(n) if self.mode == Mode::Map => {
                let depth = self.enter()?;
                let parent_map = self.rd.rest_from(start);
                let mut acc = StructMap::new(self.rd, depth, n, fields, parent_map)?;
                let v = visitor.visit_map(&mut acc)?;
                acc.finish()?;
                Ok(v)
            }
            _ => Err(invalid_code(self.rd.last_marker(), "array length")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Str(s) | Head::Bin(s) => {
                let s = utf8(s).map_err(|_| DecodeError::Codec("msgpack: invalid UTF-8 string".into()))?;
                visitor.visit_enum(BorrowedStrDeserializer::<DecodeError>::new(s))
            }
            Head::Map(1) => {
                let depth = self.enter()?;
                visitor.visit_enum(Enum {
                    rd: self.rd,
                    mode: self.mode,
                    depth,
                })
            }
            _ => Err(invalid_code(self.rd.last_marker(), "enum")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.rd.read_head()? {
            Head::Str(s) | Head::Bin(s) => match utf8(s) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(s),
            },
            Head::Uint(u) => visitor.visit_u64(u),
            _ => Err(invalid_code(self.rd.last_marker(), "string/bytes length")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.rd.skip(1)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
