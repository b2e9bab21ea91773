//! A borrowing MessagePack reader over `&[u8]`: one value header at a time,
//! every length checked against the remaining bytes before use, and an
//! iterative (stack-free) skipper used to find value extents.

use super::error::DecodeError;

/// One decoded MessagePack header. Strings, binaries and extension data are
/// already sliced out of the input (borrowed); arrays and maps only carry
/// their element count, already checked to be plausible (each element needs
/// at least one byte).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Head<'de> {
    /// `c0`.
    Nil,
    /// `c2` / `c3`.
    Bool(bool),
    /// Positive fixint, `cc`..`cf`.
    Uint(u64),
    /// Negative fixint, `d0`..`d3` (the value may be positive).
    Int(i64),
    /// `ca`.
    F32(f32),
    /// `cb`.
    F64(f64),
    /// fixstr, `d9`..`db` (bytes, not yet checked for UTF-8).
    Str(&'de [u8]),
    /// `c4`..`c6`.
    Bin(&'de [u8]),
    /// fixarray, `dc`, `dd`: element count.
    Array(u32),
    /// fixmap, `de`, `df`: entry count.
    Map(u32),
    /// fixext / ext: type and data.
    Ext(i8, &'de [u8]),
    /// `c1` (never used).
    Reserved,
}

/// `codec error: EOF`: nothing at all where a value should start.
#[cold]
#[inline(never)]
pub(crate) fn eof() -> DecodeError {
    DecodeError::Codec("EOF".into())
}

/// `codec error: unexpected EOF`: a value is cut short.
#[cold]
#[inline(never)]
pub(crate) fn unexpected_eof() -> DecodeError {
    DecodeError::Codec("unexpected EOF".into())
}

/// The msgpack library's wording for a wrong marker (`%x` of the code byte).
#[cold]
#[inline(never)]
pub(crate) fn invalid_code(code: u8, what: &str) -> DecodeError {
    DecodeError::Codec(format!("msgpack: invalid code={code:x} decoding {what}"))
}

/// `std::str::from_utf8` with a fast path for ASCII (wire names, field names
/// and most strings are ASCII; the std validator is slow on short inputs).
#[inline]
pub(crate) fn utf8(b: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b)
    }
}

/// Cursor over a MessagePack byte slice.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'de> {
    buf: &'de [u8],
    pos: usize,
    /// Marker byte of the last header read (for error texts).
    last: u8,
    /// Struct maps resolve duplicate keys with a key pre-scan (slow path).
    pub(crate) two_pass: bool,
    /// A single-pass struct map met a known key twice: the body must be
    /// decoded again with `two_pass` (last occurrence wins).
    pub(crate) dup_seen: bool,
}

impl<'de> Reader<'de> {
    /// A reader at the start of `buf`.
    #[inline]
    pub(crate) fn new(buf: &'de [u8]) -> Reader<'de> {
        Reader {
            buf,
            pos: 0,
            last: 0,
            two_pass: false,
            dup_seen: false,
        }
    }

    /// Current offset.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The input from offset `from` to the current position.
    #[inline]
    pub(crate) fn slice_from(&self, from: usize) -> &'de [u8] {
        &self.buf[from..self.pos]
    }

    /// The input from offset `from` to the end.
    #[inline]
    pub(crate) fn rest_from(&self, from: usize) -> &'de [u8] {
        &self.buf[from..]
    }

    /// Moves back (or forward) to an offset previously returned by [`Reader::pos`].
    #[inline]
    pub(crate) fn seek(&mut self, pos: usize) {
        debug_assert!(pos <= self.buf.len());
        self.pos = pos.min(self.buf.len());
    }

    /// Bytes left.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next marker byte, if any.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Marker byte of the last header read.
    #[inline]
    pub(crate) fn last_marker(&self) -> u8 {
        self.last
    }

    /// Takes `n` bytes, failing (without allocating) if fewer remain.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], DecodeError> {
        if n > self.remaining() {
            return Err(unexpected_eof());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    #[inline]
    fn array_head(&self, n: u32) -> Result<Head<'de>, DecodeError> {
        if n as usize > self.remaining() {
            return Err(unexpected_eof());
        }
        Ok(Head::Array(n))
    }

    #[inline]
    fn map_head(&self, n: u32) -> Result<Head<'de>, DecodeError> {
        if (n as u64) * 2 > self.remaining() as u64 {
            return Err(unexpected_eof());
        }
        Ok(Head::Map(n))
    }

    #[inline]
    fn ext(&mut self, len: usize) -> Result<Head<'de>, DecodeError> {
        let ty = self.u8()? as i8;
        Ok(Head::Ext(ty, self.take(len)?))
    }

    /// Reads one header. An empty input gives `EOF`; a cut-short header or
    /// payload gives `unexpected EOF`.
    #[inline(always)]
    pub(crate) fn read_head(&mut self) -> Result<Head<'de>, DecodeError> {
        let c = match self.buf.get(self.pos) {
            Some(&c) => c,
            None => return Err(eof()),
        };
        // Fast path, inlined: fixint, fixstr, fixarray, fixmap (the most common headers).
        match c {
            0x00..=0x7f => {
                self.pos += 1;
                self.last = c;
                Ok(Head::Uint(u64::from(c)))
            }
            0xa0..=0xbf => {
                let n = usize::from(c & 0x1f);
                let start = self.pos + 1;
                match self.buf.get(start..start + n) {
                    Some(s) => {
                        self.pos = start + n;
                        self.last = c;
                        Ok(Head::Str(s))
                    }
                    None => self.read_head_slow(c),
                }
            }
            0x90..=0x9f => {
                let n = u32::from(c & 0x0f);
                if n as usize > self.buf.len() - self.pos - 1 {
                    return self.read_head_slow(c);
                }
                self.pos += 1;
                self.last = c;
                Ok(Head::Array(n))
            }
            0x80..=0x8f => {
                let n = u32::from(c & 0x0f);
                if 2 * n as usize > self.buf.len() - self.pos - 1 {
                    return self.read_head_slow(c);
                }
                self.pos += 1;
                self.last = c;
                Ok(Head::Map(n))
            }
            _ => self.read_head_slow(c),
        }
    }

    /// Every header (the marker `c` is at `pos`, not consumed yet).
    #[inline(never)]
    fn read_head_slow(&mut self, c: u8) -> Result<Head<'de>, DecodeError> {
        self.pos += 1;
        self.last = c;
        Ok(match c {
            0x00..=0x7f => Head::Uint(u64::from(c)),
            0x80..=0x8f => self.map_head(u32::from(c & 0x0f))?,
            0x90..=0x9f => self.array_head(u32::from(c & 0x0f))?,
            0xa0..=0xbf => Head::Str(self.take(usize::from(c & 0x1f))?),
            0xc0 => Head::Nil,
            0xc1 => Head::Reserved,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => {
                let n = self.u8()?;
                Head::Bin(self.take(usize::from(n))?)
            }
            0xc5 => {
                let n = self.u16()?;
                Head::Bin(self.take(usize::from(n))?)
            }
            0xc6 => {
                let n = self.u32()?;
                Head::Bin(self.take(n as usize)?)
            }
            0xc7 => {
                let n = self.u8()?;
                self.ext(usize::from(n))?
            }
            0xc8 => {
                let n = self.u16()?;
                self.ext(usize::from(n))?
            }
            0xc9 => {
                let n = self.u32()?;
                self.ext(n as usize)?
            }
            0xca => Head::F32(f32::from_bits(self.u32()?)),
            0xcb => Head::F64(f64::from_bits(self.u64()?)),
            0xcc => Head::Uint(u64::from(self.u8()?)),
            0xcd => Head::Uint(u64::from(self.u16()?)),
            0xce => Head::Uint(u64::from(self.u32()?)),
            0xcf => Head::Uint(self.u64()?),
            0xd0 => Head::Int(i64::from(self.u8()? as i8)),
            0xd1 => Head::Int(i64::from(self.u16()? as i16)),
            0xd2 => Head::Int(i64::from(self.u32()? as i32)),
            0xd3 => Head::Int(self.u64()? as i64),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.u8()?;
                Head::Str(self.take(usize::from(n))?)
            }
            0xda => {
                let n = self.u16()?;
                Head::Str(self.take(usize::from(n))?)
            }
            0xdb => {
                let n = self.u32()?;
                Head::Str(self.take(n as usize)?)
            }
            0xdc => {
                let n = self.u16()?;
                self.array_head(u32::from(n))?
            }
            0xdd => {
                let n = self.u32()?;
                self.array_head(n)?
            }
            0xde => {
                let n = self.u16()?;
                self.map_head(u32::from(n))?
            }
            0xdf => {
                let n = self.u32()?;
                self.map_head(n)?
            }
            0xe0..=0xff => Head::Int(i64::from(c as i8)),
        })
    }

    /// Skips `count` complete values without recursion (nesting depth costs
    /// nothing). `c1` is rejected. Same checks and errors as reading every
    /// header with [`Reader::read_head`], without building the headers.
    pub(crate) fn skip(&mut self, count: u64) -> Result<(), DecodeError> {
        let buf = self.buf;
        let mut pos = self.pos;
        let mut left = count;
        let r = loop {
            if left == 0 {
                break Ok(());
            }
            left -= 1;
            let Some(&c) = buf.get(pos) else {
                break Err(eof());
            };
            pos += 1;
            let rest = buf.len() - pos;
            // (bytes of the length field, fixed payload bytes)
            let (len_bytes, fixed): (usize, usize) = match c {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => continue,
                0xa0..=0xbf => (0, usize::from(c & 0x1f)),
                0x80..=0x8f => {
                    let n = usize::from(c & 0x0f);
                    if 2 * n > rest {
                        break Err(unexpected_eof());
                    }
                    left += 2 * n as u64;
                    continue;
                }
                0x90..=0x9f => {
                    let n = usize::from(c & 0x0f);
                    if n > rest {
                        break Err(unexpected_eof());
                    }
                    left += n as u64;
                    continue;
                }
                0xc1 => break Err(invalid_code(0xc1, "value")),
                0xc4 | 0xd9 => (1, 0),
                0xc5 | 0xda => (2, 0),
                0xc6 | 0xdb => (4, 0),
                // ext: length field, then type byte + data.
                0xc7 => (1, 1),
                0xc8 => (2, 1),
                0xc9 => (4, 1),
                0xca => (0, 4),
                0xcb => (0, 8),
                0xcc | 0xd0 => (0, 1),
                0xcd | 0xd1 => (0, 2),
                0xce | 0xd2 => (0, 4),
                0xcf | 0xd3 => (0, 8),
                0xd4 => (0, 2),
                0xd5 => (0, 3),
                0xd6 => (0, 5),
                0xd7 => (0, 9),
                0xd8 => (0, 17),
                0xdc..=0xdf => {
                    let w = if c & 1 == 0 { 2 } else { 4 };
                    if w > rest {
                        break Err(unexpected_eof());
                    }
                    let n = be_len(&buf[pos..pos + w]);
                    pos += w;
                    let per = if c >= 0xde { 2 } else { 1 };
                    if (n as u64) * per > (rest - w) as u64 {
                        break Err(unexpected_eof());
                    }
                    left += n as u64 * per;
                    continue;
                }
            };
            if len_bytes > rest {
                break Err(unexpected_eof());
            }
            let var = if len_bytes == 0 {
                0
            } else {
                be_len(&buf[pos..pos + len_bytes])
            };
            pos += len_bytes;
            // For ext the type byte comes first, then `var` data bytes.
            let total = fixed + var;
            if total > rest - len_bytes {
                break Err(unexpected_eof());
            }
            pos += total;
        };
        self.pos = pos;
        r
    }
}

/// A big-endian length of 1, 2 or 4 bytes.
#[inline(always)]
fn be_len(b: &[u8]) -> usize {
    b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_lengths() {
        let mut r = Reader::new(&[0xdc, 0x00, 0x02, 0xa1, b'a', 0xc4, 0x01, 7]);
        assert_eq!(r.read_head().unwrap(), Head::Array(2));
        assert_eq!(r.read_head().unwrap(), Head::Str(b"a"));
        assert_eq!(r.read_head().unwrap(), Head::Bin(&[7]));
        assert_eq!(r.read_head().unwrap_err(), eof());
        // 4 GiB bin announced, 0 bytes present: fails fast.
        let mut r = Reader::new(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_head().unwrap_err(), unexpected_eof());
        // 4G-element array announced.
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.read_head().unwrap_err(), unexpected_eof());
        let mut r = Reader::new(&[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(r.read_head().unwrap(), Head::Int(-2));
        let mut r = Reader::new(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_head().unwrap(), Head::Uint(u64::MAX));
    }

    #[test]
    fn skip_is_iterative() {
        // 100k nested single-element arrays then a nil: no stack growth.
        let mut v = vec![0x91u8; 100_000];
        v.push(0xc0);
        v.push(0x05);
        let mut r = Reader::new(&v);
        r.skip(1).unwrap();
        assert_eq!(r.pos(), 100_001);
        assert_eq!(r.read_head().unwrap(), Head::Uint(5));
        // Truncated nesting fails.
        let mut r = Reader::new(&[0x92, 0x91]);
        assert!(r.skip(1).is_err());
        let mut r = Reader::new(&[0xc1]);
        assert_eq!(r.skip(1).unwrap_err(), invalid_code(0xc1, "value"));
    }

    /// The straightforward skipper (header by header) the fast one must match.
    fn skip_by_heads(r: &mut Reader<'_>, count: u64) -> Result<(), DecodeError> {
        let mut left = count;
        while left > 0 {
            left -= 1;
            match r.read_head()? {
                Head::Array(n) => left += u64::from(n),
                Head::Map(n) => left += 2 * u64::from(n),
                Head::Reserved => return Err(invalid_code(0xc1, "value")),
                _ => {}
            }
        }
        Ok(())
    }

    #[test]
    fn fast_skip_matches_header_skip_on_every_prefix() {
        // One of every format, nested, then every truncation and every
        // single-byte corruption of it.
        let v = hex::decode(concat!(
            "9f",
            "05",
            "e0",
            "c0",
            "c2",
            "c3",
            "a3616263",
            "d903616263",
            "da0001ff",
            "db00000001ee",
            "c40101",
            "c5000102",
            "c600000000",
            "c70201aabb",
            "c8000105ff",
            "c900000000ff",
            "ca3f800000",
            "cb3ff0000000000000",
            "cc01",
            "cd0102",
            "ce01020304",
            "cf0102030405060708",
            "d0ff",
            "d1ffff",
            "d2ffffffff",
            "d3ffffffffffffffff",
            "d401aa",
            "d501aabb",
            "d6ffaabbccdd",
            "d7ff0102030405060708",
            "d8010102030405060708090a0b0c0d0e0f10",
        ))
        .unwrap();
        let mut tail = hex::decode("dc0002de0001a16b91df0000000180dd0000000190").unwrap();
        let mut all = v.clone();
        all.append(&mut tail);
        let check = |b: &[u8], count: u64| {
            let mut fast = Reader::new(b);
            let mut slow = Reader::new(b);
            let rf = fast.skip(count);
            let rs = skip_by_heads(&mut slow, count);
            assert_eq!(rf, rs, "input {}", hex::encode(b));
            if rf.is_ok() {
                assert_eq!(fast.pos(), slow.pos(), "input {}", hex::encode(b));
            }
        };
        for count in [1, 2, 3] {
            for end in 0..=all.len() {
                check(&all[..end], count);
            }
        }
        for i in 0..all.len() {
            for x in [
                0x00u8, 0x7f, 0x8f, 0x9f, 0xbf, 0xc1, 0xc6, 0xc9, 0xd8, 0xdb, 0xdd, 0xdf, 0xff,
            ] {
                let mut b = all.clone();
                b[i] = x;
                check(&b, 2);
            }
        }
    }
}
