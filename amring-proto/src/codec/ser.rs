//! The serde Serializer writing MessagePack straight into the frame buffer,
//! with per-field integer widths and the Go layout rules (spec §4.2-4.5, §4.8).
//!
//! One [`Enc`] serializes a whole envelope into the caller's `BytesMut`; no
//! intermediate buffer, no allocation of its own. Headers whose count is only
//! known at the end (skipped/inlined map entries, sequences of unknown length)
//! are reserved in the smallest form for the expected count and patched at the
//! end, shifting the body in the rare case the header size changes.
//!
//! Go encoder choices reproduced here:
//! * integers at the fixed width of the Rust type (`d0..d3`, `cc..cf`), or in the
//!   smallest form inside an [`attrs::smallest`](super::attrs::smallest) marker;
//! * `f32` → `ca`, `f64` → `cb`, bits preserved;
//! * str / bin / array / map headers in the smallest form;
//! * compact structs are positional arrays, map structs are maps keyed by the
//!   serde field names.

use bytes::BytesMut;
use serde::ser::{
    self, Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeTuple, SerializeTupleStruct,
    Serializer,
};

use super::attrs;
use super::error::EncodeError;
use super::Profile;

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(msg.to_string())
    }
}

/// Compact envelope `[wire, fields...]`.
pub(crate) fn encode_compact<T: Serialize + ?Sized>(
    wire: &str,
    msg: &T,
    profile: Profile,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if wire.is_empty() {
        return Err(EncodeError::EmptyWireName);
    }
    let start = out.len();
    let mut enc = Enc::new(out, Mode::Compact, profile);
    enc.top = Some(wire);
    enc.top_start = start;
    msg.serialize(&mut enc)?;
    if enc.top.is_some() {
        return Err(EncodeError::NotAStruct);
    }
    Ok(())
}

/// Map envelope `{"type": wire, "data": {...}}`.
pub(crate) fn encode_map<T: Serialize + ?Sized>(
    wire: &str,
    msg: &T,
    profile: Profile,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if wire.is_empty() {
        return Err(EncodeError::EmptyWireName);
    }
    let mut enc = Enc::new(out, Mode::Map, profile);
    enc.out.extend_from_slice(b"\x82\xa4type");
    enc.put_str(wire)?;
    enc.out.extend_from_slice(b"\xa4data");
    let body = enc.out.len();
    msg.serialize(&mut enc)?;
    // The reference body is always a map (a struct, `80` for field-less ones).
    match enc.out.get(body) {
        Some(0x80..=0x8f | 0xde | 0xdf) => Ok(()),
        _ => Err(EncodeError::NotAStruct),
    }
}

/// Which codec's struct layout applies at the current position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Structs are positional arrays; tags are ignored.
    Compact,
    /// Structs are maps; `compact_only` / `omitempty` / `embedded` apply.
    Map,
}

/// Container kind, for header writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Array,
    Map,
}

/// The map entry being written by a map-mode struct field: lets a marker
/// newtype that is the field's *direct* value drop or inline the entry.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// True until a marker claims the slot (or no field is open).
    armed: bool,
    /// Where the entry's key starts (truncate here to drop the entry).
    key_start: usize,
    /// Where the value starts; a marker is "direct" iff nothing was written since.
    value_start: usize,
    /// Entries this field contributes to the parent map (1; 0 skipped; n inlined).
    count: usize,
    /// `omitempty`: drop the entry if the written value is Go's zero value.
    omit: bool,
}

const NO_SLOT: Slot = Slot {
    armed: false,
    key_start: 0,
    value_start: 0,
    count: 1,
    omit: false,
};

/// The encoder state (one per envelope).
pub(crate) struct Enc<'b> {
    out: &'b mut BytesMut,
    mode: Mode,
    /// `Profile::Interop`: refuse `c0` at compact field / list-element positions.
    interop: bool,
    /// Inside a `smallest` marker.
    smallest: bool,
    /// A `None` here is acceptable to Go's compact decoder (map values).
    nil_ok: bool,
    /// Inside a compact `byte_array` marker: the next bytes become `[cc xx, ...]`.
    bytes_as_array: bool,
    /// Compact top level: the wire name, written by the message's struct header.
    top: Option<&'b str>,
    /// Where the compact envelope must start.
    top_start: usize,
    /// The open map-mode struct field, see [`Slot`].
    slot: Slot,
}

impl<'b> Enc<'b> {
    fn new(out: &'b mut BytesMut, mode: Mode, profile: Profile) -> Enc<'b> {
        Enc {
            out,
            mode,
            interop: profile == Profile::Interop,
            smallest: false,
            nil_ok: false,
            bytes_as_array: false,
            top: None,
            top_start: 0,
            slot: NO_SLOT,
        }
    }

    #[inline(always)]
    fn str_header(&mut self, n: usize) -> Result<(), EncodeError> {
        if n < 32 {
            self.out.extend_from_slice(&[0xa0 | n as u8]);
        } else if n < 256 {
            self.out.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.out.extend_from_slice(&[0xda]);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u32::MAX as usize {
            self.out.extend_from_slice(&[0xdb]);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            return Err(EncodeError::TooLong(n));
        }
        Ok(())
    }

    #[inline]
    fn put_str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.str_header(s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    #[inline]
    fn bin_header(&mut self, n: usize) -> Result<(), EncodeError> {
        if n < 256 {
            self.out.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.out.extend_from_slice(&[0xc5]);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u32::MAX as usize {
            self.out.extend_from_slice(&[0xc6]);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            return Err(EncodeError::TooLong(n));
        }
        Ok(())
    }

    /// Writes an array/map header for `n` in the smallest form; returns its size.
    #[inline(always)]
    fn container_header(&mut self, kind: Kind, n: usize) -> Result<usize, EncodeError> {
        let (fix, b16, b32) = match kind {
            Kind::Array => (0x90, 0xdc, 0xdd),
            Kind::Map => (0x80, 0xde, 0xdf),
        };
        if n < 16 {
            self.out.extend_from_slice(&[fix | n as u8]);
            Ok(1)
        } else if n <= 0xffff {
            self.out.extend_from_slice(&[b16]);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
            Ok(3)
        } else if n <= u32::MAX as usize {
            self.out.extend_from_slice(&[b32]);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
            Ok(5)
        } else {
            Err(EncodeError::TooLong(n))
        }
    }

    /// Rewrites the header reserved at `pos` (`size` bytes) for the real count
    /// `n`, moving the body when the header size changes.
    fn fix_header(&mut self, kind: Kind, pos: usize, size: usize, n: usize) -> Result<(), EncodeError> {
        let need = header_size(n)?;
        if need != size {
            let len = self.out.len();
            if need > size {
                self.out.resize(len + need - size, 0);
                self.out.copy_within(pos + size..len, pos + need);
            } else {
                self.out.copy_within(pos + size..len, pos + need);
                self.out.truncate(len - (size - need));
            }
        }
        write_header(&mut self.out[pos..], kind, n);
        Ok(())
    }

    #[inline]
    fn uint_smallest(&mut self, v: u64) {
        if v <= 0x7f {
            self.out.extend_from_slice(&[v as u8]);
        } else if v <= 0xff {
            self.out.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= 0xffff {
            self.out.extend_from_slice(&[0xcd]);
            self.out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            self.out.extend_from_slice(&[0xce]);
            self.out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.out.extend_from_slice(&[0xcf]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
    }

    #[inline]
    fn sint_smallest(&mut self, v: i64) {
        if v >= 0 {
            self.uint_smallest(v as u64);
        } else if v >= -32 {
            self.out.extend_from_slice(&[v as i8 as u8]);
        } else if v >= i64::from(i8::MIN) {
            self.out.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            self.out.extend_from_slice(&[0xd1]);
            self.out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            self.out.extend_from_slice(&[0xd2]);
            self.out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.out.extend_from_slice(&[0xd3]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
    }

    /// Claims the open map-mode field slot if `marker` is its direct value.
    #[inline]
    fn claim_slot(&mut self) -> bool {
        if self.mode == Mode::Map && self.slot.armed && self.slot.value_start == self.out.len() {
            self.slot.armed = false;
            true
        } else {
            false
        }
    }

    #[inline]
    fn put_timestamp(&mut self, secs: i64, nanos: u32) -> Result<(), EncodeError> {
        if nanos >= 1_000_000_000 {
            return Err(EncodeError::InvalidTimestamp(nanos));
        }
        if secs >> 34 == 0 {
            let data = (u64::from(nanos) << 34) | secs as u64;
            if data >> 32 == 0 {
                self.out.extend_from_slice(&[0xd6, 0xff]);
                self.out.extend_from_slice(&(data as u32).to_be_bytes());
            } else {
                self.out.extend_from_slice(&[0xd7, 0xff]);
                self.out.extend_from_slice(&(data).to_be_bytes());
            }
        } else {
            self.out.extend_from_slice(&[0xc7, 0x0c, 0xff]);
            self.out.extend_from_slice(&(nanos).to_be_bytes());
            self.out.extend_from_slice(&(secs).to_be_bytes());
        }
        Ok(())
    }

    /// Applies an `attrs` marker (`tag` is the name after `$amring::`).
    fn marker<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), EncodeError> {
        match name {
            attrs::SMALLEST => {
                let prev = std::mem::replace(&mut self.smallest, true);
                let r = value.serialize(&mut *self);
                self.smallest = prev;
                r
            }
            attrs::TIMESTAMP => {
                // The marker wraps `(i64, u32)`: serialize it here at fixed widths
                // (`92 d3 <8> ce <4>`), read it back and replace it by the ext.
                let at = self.out.len();
                let prev = std::mem::replace(&mut self.smallest, false);
                let r = value.serialize(&mut *self);
                self.smallest = prev;
                r?;
                let b = &self.out[at..];
                if b.len() != 15 || b[0] != 0x92 || b[1] != 0xd3 || b[10] != 0xce {
                    return Err(EncodeError::BadMarker("timestamp (expects (i64, u32))"));
                }
                let secs = i64::from_be_bytes(b[2..10].try_into().unwrap_or_default());
                let nanos = u32::from_be_bytes(b[11..15].try_into().unwrap_or_default());
                self.out.truncate(at);
                self.put_timestamp(secs, nanos)
            }
            attrs::EMBEDDED if self.claim_slot() => {
                // Map codec: drop the key, write the struct, then remove its map
                // header so the entries land in the parent map.
                self.out.truncate(self.slot.key_start);
                let at = self.out.len();
                value.serialize(&mut *self)?;
                let (n, size) = match self.out.get(at) {
                    Some(&b @ 0x80..=0x8f) => (usize::from(b & 0x0f), 1),
                    Some(0xde) => (usize::from(u16::from_be_bytes([self.out[at + 1], self.out[at + 2]])), 3),
                    Some(0xdf) => (
                        u32::from_be_bytes([self.out[at + 1], self.out[at + 2], self.out[at + 3], self.out[at + 4]])
                            as usize,
                        5,
                    ),
                    _ => return Err(EncodeError::BadMarker("embedded (expects a struct)")),
                };
                let len = self.out.len();
                self.out.copy_within(at + size..len, at);
                self.out.truncate(len - size);
                self.slot.count = n;
                Ok(())
            }
            attrs::COMPACT_ONLY if self.claim_slot() => {
                self.out.truncate(self.slot.key_start);
                self.slot.count = 0;
                Ok(())
            }
            attrs::UNEXPORTED if self.mode == Mode::Compact => Err(EncodeError::UnexportedField),
            attrs::UNEXPORTED => {
                if !self.claim_slot() {
                    return Err(EncodeError::BadMarker("unexported (only on struct fields)"));
                }
                self.out.truncate(self.slot.key_start);
                self.slot.count = 0;
                Ok(())
            }
            attrs::OMITEMPTY if self.claim_slot() => {
                self.slot.omit = true;
                value.serialize(&mut *self)
            }
            attrs::BYTE_ARRAY if self.mode == Mode::Compact => {
                let prev = std::mem::replace(&mut self.bytes_as_array, true);
                let r = value.serialize(&mut *self);
                self.bytes_as_array = prev;
                r
            }
            attrs::AS_MAP if self.mode == Mode::Compact => {
                self.mode = Mode::Map;
                let prev = std::mem::replace(&mut self.slot, NO_SLOT);
                let r = value.serialize(&mut *self);
                self.slot = prev;
                self.mode = Mode::Compact;
                r
            }
            attrs::NIL_AS_ZERO_NONE if self.mode == Mode::Map => {
                self.out.extend_from_slice(&[0xc0]);
                Ok(())
            }
            // Transparent: the marker does not apply in this mode / position.
            _ => value.serialize(&mut *self),
        }
    }
}

/// Size of the smallest array/map header for `n` entries.
#[inline]
fn header_size(n: usize) -> Result<usize, EncodeError> {
    if n < 16 {
        Ok(1)
    } else if n <= 0xffff {
        Ok(3)
    } else if n <= u32::MAX as usize {
        Ok(5)
    } else {
        Err(EncodeError::TooLong(n))
    }
}

/// Writes the smallest header for `n` at the start of `buf` (checked by [`header_size`]).
#[inline]
fn write_header(buf: &mut [u8], kind: Kind, n: usize) {
    let (fix, b16, b32) = match kind {
        Kind::Array => (0x90, 0xdc, 0xdd),
        Kind::Map => (0x80, 0xde, 0xdf),
    };
    if n < 16 {
        buf[0] = fix | n as u8;
    } else if n <= 0xffff {
        buf[0] = b16;
        buf[1..3].copy_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf[0] = b32;
        buf[1..5].copy_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Go's `isEmptyValue` judged on the encoded bytes of a value (`omitempty`).
fn is_go_zero(b: &[u8]) -> bool {
    match b {
        [0xc0 | 0xc2 | 0xa0 | 0x90 | 0x80 | 0x00] | [0xc4, 0x00] => true,
        [0xcc..=0xd3, rest @ ..] => rest.iter().all(|&x| x == 0),
        [0xca, rest @ ..] | [0xcb, rest @ ..] => {
            rest.first().is_some_and(|&x| x & 0x7f == 0) && rest[1..].iter().all(|&x| x == 0)
        }
        // Go's zero time.Time (IsZero).
        [0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf1, 0x88, 0x6e, 0x09, 0x00] => true,
        _ => false,
    }
}

/// An array or map whose header is reserved up front and patched if the
/// count differs.
pub(crate) struct Container<'a, 'b> {
    enc: &'a mut Enc<'b>,
    kind: Kind,
    pos: usize,
    size: usize,
    expected: usize,
    count: usize,
    saved_nil_ok: bool,
}

impl<'a, 'b> Container<'a, 'b> {
    #[inline(always)]
    fn open(enc: &'a mut Enc<'b>, kind: Kind, n: usize) -> Result<Self, EncodeError> {
        let pos = enc.out.len();
        let size = enc.container_header(kind, n)?;
        let saved_nil_ok = std::mem::replace(&mut enc.nil_ok, false);
        Ok(Container {
            enc,
            kind,
            pos,
            size,
            expected: n,
            count: 0,
            saved_nil_ok,
        })
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.count += 1;
        v.serialize(&mut *self.enc)
    }

    #[inline]
    fn close(self) -> Result<(), EncodeError> {
        self.enc.nil_ok = self.saved_nil_ok;
        if self.count != self.expected {
            self.enc.fix_header(self.kind, self.pos, self.size, self.count)?;
        }
        Ok(())
    }
}

impl SerializeSeq for Container<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.close()
    }
}

impl SerializeTuple for Container<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.close()
    }
}

impl SerializeTupleStruct for Container<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.close()
    }
}

impl SerializeMap for Container<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), EncodeError> {
        self.count += 1;
        k.serialize(&mut *self.enc)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        // Go's compact decoder accepts nil as a map value (pointer/slice/map types).
        self.enc.nil_ok = true;
        let r = v.serialize(&mut *self.enc);
        self.enc.nil_ok = false;
        r
    }
    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.close()
    }
}

/// A struct: positional array (compact) or map keyed by field names (map).
pub(crate) struct Struct<'a, 'b> {
    c: Container<'a, 'b>,
}

impl SerializeStruct for Struct<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), EncodeError> {
        if self.c.kind == Kind::Array {
            return self.c.element(v);
        }
        let enc = &mut *self.c.enc;
        let key_start = enc.out.len();
        enc.put_str(key)?;
        let slot = Slot {
            armed: true,
            key_start,
            value_start: enc.out.len(),
            count: 1,
            omit: false,
        };
        let saved = std::mem::replace(&mut enc.slot, slot);
        let r = v.serialize(&mut *enc);
        let mine = std::mem::replace(&mut enc.slot, saved);
        r?;
        if mine.omit && is_go_zero(&enc.out[mine.value_start..]) {
            enc.out.truncate(key_start);
        } else {
            self.c.count += mine.count;
        }
        Ok(())
    }

    #[inline]
    fn end(self) -> Result<(), EncodeError> {
        self.c.close()
    }
}

impl<'a, 'b> Serializer for &'a mut Enc<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Container<'a, 'b>;
    type SerializeTuple = Container<'a, 'b>;
    type SerializeTupleStruct = Container<'a, 'b>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Container<'a, 'b>;
    type SerializeStruct = Struct<'a, 'b>;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&[if v { 0xc3 } else { 0xc2 }]);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        if self.smallest {
            self.sint_smallest(i64::from(v));
        } else {
            self.out.extend_from_slice(&[0xd0, v as u8]);
        }
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        if self.smallest {
            self.sint_smallest(i64::from(v));
        } else {
            self.out.extend_from_slice(&[0xd1]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        if self.smallest {
            self.sint_smallest(i64::from(v));
        } else {
            self.out.extend_from_slice(&[0xd2]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        if self.smallest {
            self.sint_smallest(v);
        } else {
            self.out.extend_from_slice(&[0xd3]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        if self.smallest {
            self.uint_smallest(u64::from(v));
        } else {
            self.out.extend_from_slice(&[0xcc, v]);
        }
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        if self.smallest {
            self.uint_smallest(u64::from(v));
        } else {
            self.out.extend_from_slice(&[0xcd]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        if self.smallest {
            self.uint_smallest(u64::from(v));
        } else {
            self.out.extend_from_slice(&[0xce]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        if self.smallest {
            self.uint_smallest(v);
        } else {
            self.out.extend_from_slice(&[0xcf]);
            self.out.extend_from_slice(&(v).to_be_bytes());
        }
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, _v: i128) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("i128"))
    }

    #[inline]
    fn serialize_u128(self, _v: u128) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("u128"))
    }

    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&[0xca]);
        self.out.extend_from_slice(&(v.to_bits()).to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&[0xcb]);
        self.out.extend_from_slice(&(v.to_bits()).to_be_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.put_str(v.encode_utf8(&mut buf))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.put_str(v)
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        if std::mem::replace(&mut self.bytes_as_array, false) {
            // Go `[N]byte` in compact: an array of `cc xx`.
            self.container_header(Kind::Array, v.len())?;
            self.out.reserve(v.len() * 2);
            for &b in v {
                self.out.extend_from_slice(&[0xcc, b]);
            }
            return Ok(());
        }
        self.bin_header(v.len())?;
        self.out.extend_from_slice(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), EncodeError> {
        if self.mode == Mode::Compact && self.interop && !self.nil_ok {
            return Err(EncodeError::NilInCompact);
        }
        self.out.extend_from_slice(&[0xc0]);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), EncodeError> {
        if self.slot.omit && self.slot.value_start == self.out.len() {
            // A non-nil Go pointer is never "empty", whatever it points to.
            self.slot.omit = false;
        }
        v.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        if let Some(wire) = self.top.take() {
            if self.out.len() != self.top_start {
                return Err(EncodeError::NotAStruct);
            }
            self.out.extend_from_slice(&[0x91]);
            return self.put_str(wire);
        }
        self.out.extend_from_slice(&[match self.mode {
            Mode::Compact => 0x90,
            Mode::Map => 0x80,
        }]);
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.put_str(variant)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> Result<(), EncodeError> {
        if name.starts_with(attrs::PREFIX) {
            self.marker(name, v)
        } else {
            v.serialize(self)
        }
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _v: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported("enum variant with data"))
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Container<'a, 'b>, EncodeError> {
        Container::open(self, Kind::Array, len.unwrap_or(0))
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Container<'a, 'b>, EncodeError> {
        Container::open(self, Kind::Array, len)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Container<'a, 'b>, EncodeError> {
        Container::open(self, Kind::Array, len)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError::Unsupported("enum variant with data"))
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Container<'a, 'b>, EncodeError> {
        Container::open(self, Kind::Map, len.unwrap_or(0))
    }

    #[inline(always)]
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Struct<'a, 'b>, EncodeError> {
        match self.mode {
            Mode::Compact => {
                if let Some(wire) = self.top.take() {
                    if self.out.len() != self.top_start {
                        return Err(EncodeError::NotAStruct);
                    }
                    let mut c = Container::open(self, Kind::Array, len + 1)?;
                    c.enc.put_str(wire)?;
                    c.count = 1;
                    Ok(Struct { c })
                } else {
                    Ok(Struct {
                        c: Container::open(self, Kind::Array, len)?,
                    })
                }
            }
            Mode::Map => Ok(Struct {
                c: Container::open(self, Kind::Map, len)?,
            }),
        }
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError::Unsupported("enum variant with data"))
    }
}

#[cfg(test)]
mod tests;
