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

use serde::de::value::{BorrowedStrDeserializer, U8Deserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::de_read::{eof, invalid_code, utf8, Head, Reader};
use super::envelope::{BodyKind, Envelope};
use super::error::DecodeError;

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

// ---------------------------------------------------------------------------
// One value.

struct De<'r, 'de> {
    rd: &'r mut Reader<'de>,
    mode: Mode,
    depth: u16,
    /// This value is a map value in a compact body (Go's nil error text differs there).
    map_value: bool,
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

// ---------------------------------------------------------------------------
// Sequences and maps.

struct Seq<'r, 'de> {
    rd: &'r mut Reader<'de>,
    mode: Mode,
    depth: u16,
    left: u32,
}

impl<'r, 'de> Seq<'r, 'de> {
    /// Skips elements the visitor did not consume.
    fn finish(&mut self) -> Result<(), DecodeError> {
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

struct BytesSeq<'de> {
    bytes: &'de [u8],
    idx: usize,
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

struct GenMap<'r, 'de> {
    rd: &'r mut Reader<'de>,
    mode: Mode,
    depth: u16,
    left: u32,
    value_pending: bool,
}

impl<'r, 'de> GenMap<'r, 'de> {
    fn finish(&mut self) -> Result<(), DecodeError> {
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
struct StructMap<'r, 'de> {
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
    fn new(
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

    fn finish(&mut self) -> Result<(), DecodeError> {
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

struct Enum<'r, 'de> {
    rd: &'r mut Reader<'de>,
    mode: Mode,
    depth: u16,
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

// ---------------------------------------------------------------------------
// Timestamps.

/// A decoded ext −1, presented as the tuple `(secs: i64, nanos: u32)`.
struct TimestampDe {
    secs: i64,
    nanos: u32,
}

impl TimestampDe {
    fn go_zero() -> TimestampDe {
        TimestampDe {
            secs: GO_ZERO_TIME_SECS,
            nanos: 0,
        }
    }

    fn parse(data: &[u8]) -> Result<TimestampDe, DecodeError> {
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
struct Zero<'de> {
    parent_map: Option<&'de [u8]>,
    depth: u16,
    mode: Mode,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn map_env(body: &[u8]) -> Envelope<'_> {
        Envelope {
            wire: "x",
            body,
            kind: BodyKind::MapData,
        }
    }

    fn compact_env(body: &[u8], fields: u32) -> Envelope<'_> {
        Envelope {
            wire: "x",
            body,
            kind: BodyKind::CompactFields { fields },
        }
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Base {
        base_id: i64,
        kind: String,
    }

    #[derive(Debug, PartialEq)]
    struct Emb(Base);

    impl<'de> Deserialize<'de> for Emb {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Emb, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Emb;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("embedded")
                }
                fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Emb, D::Error> {
                    Base::deserialize(d).map(Emb)
                }
            }
            d.deserialize_newtype_struct(EMBEDDED, V)
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Embedded {
        base: Emb,
        extra: String,
    }

    #[test]
    fn embedded_compact_and_map() {
        // Reference bytes (codec.json `embedded`): compact `[.., [7, "k"], "e"]`.
        let c = h("92d30000000000000007a16ba165");
        let v: Embedded = decode_body(&compact_env(&c, 2)).unwrap();
        assert_eq!(
            v.base,
            Emb(Base {
                base_id: 7,
                kind: "k".into()
            })
        );
        assert_eq!(v.extra, "e");
        // Map: fields inlined in the parent map.
        let m = h("83a7626173655f6964d30000000000000007a46b696e64a16ba56578747261a165");
        let v: Embedded = decode_body(&map_env(&m)).unwrap();
        assert_eq!(
            v.base,
            Emb(Base {
                base_id: 7,
                kind: "k".into()
            })
        );
        assert_eq!(v.extra, "e");
    }

    #[derive(Debug, PartialEq)]
    struct Ts(i64, u32);

    impl<'de> Deserialize<'de> for Ts {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ts;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("timestamp")
                }
                fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Ts, D::Error> {
                    let (s, n) = <(i64, u32)>::deserialize(d)?;
                    Ok(Ts(s, n))
                }
            }
            d.deserialize_newtype_struct(TIMESTAMP, V)
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct TimeMsg {
        v: Ts,
    }

    #[test]
    fn timestamps_three_forms_and_nil() {
        let t: TimeMsg = decode_body(&compact_env(&h("d6ff6553f100"), 1)).unwrap();
        assert_eq!(t.v, Ts(1_700_000_000, 0));
        // d7: nanos << 34 | secs.
        let v: u64 = (5u64 << 34) | 1_700_000_000;
        let mut b = h("d7ff");
        b.extend_from_slice(&v.to_be_bytes());
        let t: TimeMsg = decode_body(&compact_env(&b, 1)).unwrap();
        assert_eq!(t.v, Ts(1_700_000_000, 5));
        let mut b = h("c70cff");
        b.extend_from_slice(&7u32.to_be_bytes());
        b.extend_from_slice(&(-5i64).to_be_bytes());
        let t: TimeMsg = decode_body(&compact_env(&b, 1)).unwrap();
        assert_eq!(t.v, Ts(-5, 7));
        // nil: compact refuses like Go; map gives Go's zero time.
        assert_eq!(decode_body::<TimeMsg>(&compact_env(&[0xc0], 1)).unwrap_err(), eof());
        let t: TimeMsg = decode_body(&map_env(&h("81a176c0"))).unwrap();
        assert_eq!(t.v, Ts(GO_ZERO_TIME_SECS, 0));
        let t: TimeMsg = decode_body(&map_env(&h("80"))).unwrap();
        assert_eq!(t.v, Ts(GO_ZERO_TIME_SECS, 0));
        assert!(decode_body::<TimeMsg>(&compact_env(&h("d5ff0000"), 1)).is_err());
        assert!(decode_body::<TimeMsg>(&compact_env(&h("d6010000000a"), 1)).is_err());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Borrowed<'a> {
        s: &'a str,
        #[serde(borrow, with = "serde_bytes")]
        b: &'a [u8],
        n: u8,
        i: i32,
        f: f64,
    }

    #[test]
    fn borrowing_wrapping_and_zero_fill() {
        let body = h("a26869c4020102cd012cd3000000010000002a03");
        let env = compact_env(&body, 5);
        let v: Borrowed<'_> = decode_body(&env).unwrap();
        assert_eq!(
            v,
            Borrowed {
                s: "hi",
                b: &[1, 2],
                n: 44,
                i: 42,
                f: 3.0
            }
        );
        assert!(
            std::ptr::eq(v.s.as_ptr(), body[1..].as_ptr()),
            "str borrows from the payload"
        );
        // Map: duplicate key last wins, missing keys are zero, unknown keys skipped.
        let m = h("84a173a161a17a01a173a162a16ecc05");
        let v: Borrowed<'_> = decode_body(&map_env(&m)).unwrap();
        assert_eq!(
            v,
            Borrowed {
                s: "b",
                b: &[],
                n: 5,
                i: 0,
                f: 0.0
            }
        );
        // Compact count mismatch.
        assert_eq!(
            decode_body::<Borrowed<'_>>(&compact_env(&body[..body.len() - 1], 4)).unwrap_err(),
            DecodeError::CompactFieldCount { expected: 5, got: 4 }
        );
        // Float → int and f64 → f32 refused; int → bool refused.
        #[derive(Debug, Deserialize)]
        struct F32 {
            _v: f32,
        }
        #[derive(Debug, Deserialize)]
        struct B {
            _v: bool,
        }
        assert!(decode_body::<F32>(&compact_env(&h("cb3ff8000000000000"), 1)).is_err());
        assert!(decode_body::<B>(&compact_env(&h("01"), 1)).is_err());
        assert!(decode_body::<Borrowed<'_>>(&compact_env(&h("a0c400cb3ff000000000000000cb00"), 5)).is_err());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Pair {
        a: u8,
        b: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        list: Vec<Pair>,
        tail: u8,
    }

    #[test]
    fn duplicates_last_wins_single_and_two_pass() {
        // No duplicate: out-of-order keys, unknown key skipped, missing key zeroed.
        let v: Pair = decode_body(&map_env(&h("83a162a178a17ac0a161cc07"))).unwrap();
        assert_eq!(v, Pair { a: 7, b: "x".into() });
        let v: Pair = decode_body(&map_env(&h("81a162a178"))).unwrap();
        assert_eq!(v, Pair { a: 0, b: "x".into() });
        // Duplicate deep inside a list element: the retry keeps the last value
        // and the outer fields are still decoded.
        // {"list": [{"a":1,"b":"p","a":2}], "tail": 9}
        let m = h("82a46c6973749183a16101a162a170a16102a47461696c09");
        let v: Outer = decode_body(&map_env(&m)).unwrap();
        assert_eq!(
            v,
            Outer {
                list: vec![Pair { a: 2, b: "p".into() }],
                tail: 9
            }
        );
        // Three occurrences, last one differs in type family (int widths).
        let v: Pair = decode_body(&map_env(&h("83a16101a161cd0101a161d00c"))).unwrap();
        assert_eq!(v.a, 12);
        // A first value of the wrong type fails before the duplicate is seen,
        // like Go's sequential decoder.
        assert!(decode_body::<Pair>(&map_env(&h("82a161a178a16103"))).is_err());
        // A bad value that is not overwritten still fails.
        assert!(decode_body::<Pair>(&map_env(&h("81a161a178"))).is_err());
    }

    /// A struct with more fields than the single-pass bitset holds, read into a Vec.
    struct Many<const N: usize>(Vec<(String, u8)>);

    impl<'de, const N: usize> Deserialize<'de> for Many<N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Many<N>, D::Error> {
            struct V<const N: usize>;
            impl<'de, const N: usize> Visitor<'de> for V<N> {
                type Value = Many<N>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("many")
                }
                fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Many<N>, A::Error> {
                    let mut out = Vec::new();
                    while let Some(k) = m.next_key::<String>()? {
                        if out.iter().any(|(x, _)| *x == k) {
                            return Err(de::Error::custom("duplicate"));
                        }
                        let v: u8 = m.next_value()?;
                        out.push((k, v));
                    }
                    Ok(Many(out))
                }
            }
            let names: Vec<&'static str> = (0..N).map(|i| &*Box::leak(format!("f{i}").into_boxed_str())).collect();
            d.deserialize_struct("Many", Box::leak(names.into_boxed_slice()), V::<N>)
        }
    }

    fn wide<const N: usize>() {
        let get = |m: &Many<N>, k: &str| m.0.iter().find(|(x, _)| x == k).map(|(_, v)| *v);
        // {"f69": 1, "f3": 2, "f69": 5}
        let m = h("83a366363901a2663302a366363905");
        let v: Many<N> = decode_body(&map_env(&m)).unwrap();
        assert_eq!(v.0.len(), N);
        // Two-pass retry: only the last `f69` is delivered (after `f3`).
        assert_eq!(v.0[0], ("f3".to_string(), 2));
        assert_eq!(get(&v, "f69"), Some(5));
        assert_eq!(v.0.iter().filter(|(_, x)| *x != 0).count(), 2);
        let m = h("82a366363901a2663302");
        let v: Many<N> = decode_body(&map_env(&m)).unwrap();
        assert_eq!(v.0[0], ("f69".to_string(), 1));
        assert_eq!(v.0[1], ("f3".to_string(), 2));
        assert_eq!(v.0.len(), N);
        assert_eq!(get(&v, "f0"), Some(0));
    }

    #[test]
    fn wide_structs_and_duplicates() {
        wide::<70>(); // two-word bitset
        wide::<300>(); // heap flags
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Deep {
        v: Vec<Deep>,
    }

    #[test]
    fn depth_is_bounded() {
        // 100k nested single-field positional structs: error, not a stack overflow.
        let mut b = vec![0x91u8; 100_000];
        b.push(0x90);
        let err = decode_body::<Deep>(&compact_env(&b, 1)).unwrap_err();
        assert_eq!(err, depth_exceeded());
        let err = decode_body::<Deep>(&map_env(&b)).unwrap_err();
        assert_eq!(err, depth_exceeded());
        // Within the bound it decodes.
        let mut b = vec![0x91u8; 50];
        b.push(0x90);
        assert!(decode_body::<Deep>(&map_env(&b[1..])).is_ok());
        // Skipping (IgnoredAny) is iterative: any nesting is fine.
        let mut b = vec![0x91u8; 100_000];
        b.push(0xc0);
        assert!(decode_body::<serde::de::IgnoredAny>(&map_env(&b)).is_ok());
        assert!(decode_body::<serde::de::IgnoredAny>(&map_env(&b[..b.len() - 1])).is_err());
    }
}
