//! Frame layer (spec §3): the v2 (10-byte) and v3 (18-byte) headers, an
//! incremental zero-copy decoder and an encoder that appends many frames to
//! one buffer.
//!
//! ```text
//!  v2:  | ver | flags | stream_id (u32 BE) | payload_len (u32 BE) | payload ...
//!  v3:  | ver | flags | stream_id (u32 BE) | payload_len (u32 BE) | seq (u64 BE) | payload ...
//! ```
//!
//! The decoder follows the mini-redis discipline: *check* that a whole header
//! is buffered, *validate* it (version, `payload_len <= max_frame`) **before**
//! waiting for or buffering the payload, then *advance* by splitting the frame
//! off the read buffer as a refcounted [`Bytes`] (no copy). An incomplete
//! frame is not an error: the decoder returns `Ok(None)` and is called again
//! when more bytes have arrived; the input may be split at any byte.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::FrameError;

/// Stream id of the v3 control stream (ACK / PING). In v2 it is an ordinary id.
pub const CONTROL_STREAM_ID: u32 = 0xFFFF_FFFF;
/// Length of a v2 frame header.
pub const V2_HEADER_LEN: usize = 10;
/// Length of a v3 frame header.
pub const V3_HEADER_LEN: usize = 18;
/// The default (and the Go server's only) max_frame: no practical limit.
pub const DEFAULT_MAX_FRAME: u32 = u32::MAX;

/// Negotiated protocol version of a connection (spec §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// Plain framing, no recovery.
    V2,
    /// Recovery framing: every frame carries a 64-bit sequence number.
    V3,
}

impl Version {
    /// The version byte on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// Parses a wire version byte; `None` for anything but 2 and 3.
    pub const fn from_u8(v: u8) -> Option<Version> {
        match v {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// Header length of a frame of this version.
    pub const fn header_len(self) -> usize {
        match self {
            Version::V2 => V2_HEADER_LEN,
            Version::V3 => V3_HEADER_LEN,
        }
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Version byte (always the negotiated one once validated).
    pub version: Version,
    /// Flags byte: written as 0, ignored on receipt (spec §3.2, §9 note 27).
    pub flags: u8,
    /// Stream the frame belongs to.
    pub stream_id: u32,
    /// Payload length in bytes (header excluded).
    pub payload_len: u32,
    /// v3 sequence number (0 for control frames and for every v2 frame).
    pub seq: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `src` for the negotiated `version`.
    ///
    /// Returns `Ok(None)` when fewer than `version.header_len()` bytes are
    /// available. Checks the version byte and `payload_len <= max_frame`.
    pub fn parse(src: &[u8], version: Version, max_frame: u32) -> Result<Option<FrameHeader>, FrameError> {
        let hlen = version.header_len();
        if src.len() < hlen {
            return Ok(None);
        }
        // MUST: the version byte equals the negotiated version (§3.2).
        if src[0] != version.as_u8() {
            return Err(FrameError::BadVersion { got: src[0] });
        }
        let mut b = &src[1..hlen];
        let flags = b.get_u8();
        let stream_id = b.get_u32();
        let payload_len = b.get_u32();
        let seq = if version == Version::V3 { b.get_u64() } else { 0 };
        // MUST: payload_len <= negotiated max_frame, checked before buffering (§3.5).
        if payload_len > max_frame {
            return Err(FrameError::TooLarge {
                len: payload_len,
                max: max_frame,
            });
        }
        Ok(Some(FrameHeader {
            version,
            flags,
            stream_id,
            payload_len,
            seq,
        }))
    }

    /// Appends the encoded header to `dst` (flags are written as given).
    pub fn write(&self, dst: &mut BytesMut) {
        dst.reserve(self.version.header_len());
        dst.put_u8(self.version.as_u8());
        dst.put_u8(self.flags);
        dst.put_u32(self.stream_id);
        dst.put_u32(self.payload_len);
        if self.version == Version::V3 {
            dst.put_u64(self.seq);
        }
    }

    /// Total encoded frame length (header + payload).
    pub fn frame_len(&self) -> usize {
        self.version.header_len() + self.payload_len as usize
    }
}

/// One complete inbound frame; the payload is a zero-copy slice of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The parsed header.
    pub header: FrameHeader,
    /// Exactly `header.payload_len` bytes.
    pub payload: Bytes,
}

/// Incremental frame decoder for one transport.
///
/// Holds no buffer of its own: it works on the caller's read buffer, so a
/// connection has exactly one receive buffer and the decoder costs no
/// allocation per frame.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    version: Version,
    max_frame: u32,
    /// Header of a frame whose payload is not complete yet (validated already).
    pending: Option<FrameHeader>,
}

impl FrameDecoder {
    /// A decoder for the negotiated `version` and `max_frame`.
    pub fn new(version: Version, max_frame: u32) -> FrameDecoder {
        FrameDecoder {
            version,
            max_frame,
            pending: None,
        }
    }

    /// Negotiated version this decoder enforces.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Negotiated max_frame this decoder enforces.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Bytes still needed before the next frame can complete (a hint for
    /// sizing the next read; 0 when a frame is already complete in `buf`).
    pub fn needed(&self, buf: &BytesMut) -> usize {
        match self.pending {
            Some(h) => h.frame_len().saturating_sub(buf.len()),
            None => self.version.header_len().saturating_sub(buf.len()),
        }
    }

    /// Total length (header + payload) of the frame whose header was parsed
    /// but whose payload is not complete yet.
    pub fn pending_len(&self) -> Option<usize> {
        self.pending.map(|h| h.frame_len())
    }

    /// Takes the next complete frame off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed. An error is final for this
    /// transport (the caller closes or detaches); the offending payload is
    /// never buffered by the decoder.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let header = match self.pending {
            Some(h) => h,
            None => match FrameHeader::parse(buf, self.version, self.max_frame)? {
                Some(h) => {
                    self.pending = Some(h);
                    h
                }
                None => return Ok(None),
            },
        };
        let total = header.frame_len();
        if buf.len() < total {
            return Ok(None);
        }
        self.pending = None;
        let mut frame = buf.split_to(total).freeze();
        frame.advance(self.version.header_len());
        Ok(Some(Frame { header, payload: frame }))
    }
}

/// Appends frames to an outbound buffer: reserve the header, let the caller
/// serialize the payload in place, then patch the length.
#[derive(Clone, Copy, Debug)]
pub struct FrameEncoder {
    version: Version,
    max_frame: u32,
}

impl FrameEncoder {
    /// An encoder for the negotiated `version` and `max_frame`.
    pub fn new(version: Version, max_frame: u32) -> FrameEncoder {
        FrameEncoder { version, max_frame }
    }

    /// Negotiated version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Negotiated max_frame.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Appends one frame whose payload is produced by `body` writing into `dst`.
    ///
    /// On any error (from `body`, or a payload larger than max_frame) `dst` is
    /// truncated back to its previous length: nothing of the frame remains.
    /// Returns the total frame length.
    pub fn encode_with<E>(
        &self,
        dst: &mut BytesMut,
        stream_id: u32,
        seq: u64,
        body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<usize, EncodeFrameError<E>> {
        let start = dst.len();
        let hlen = self.version.header_len();
        let header = FrameHeader {
            version: self.version,
            flags: 0,
            stream_id,
            payload_len: 0,
            seq,
        };
        header.write(dst);
        if let Err(e) = body(dst) {
            dst.truncate(start);
            return Err(EncodeFrameError::Body(e));
        }
        let len = dst.len() - start - hlen;
        if len > self.max_frame as usize {
            dst.truncate(start);
            return Err(EncodeFrameError::Frame(FrameError::TooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                max: self.max_frame,
            }));
        }
        dst[start + 6..start + 10].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(hlen + len)
    }

    /// Appends one frame with an already-encoded payload.
    pub fn encode(&self, dst: &mut BytesMut, stream_id: u32, seq: u64, payload: &[u8]) -> Result<usize, FrameError> {
        if payload.len() > self.max_frame as usize {
            return Err(FrameError::TooLarge {
                len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
                max: self.max_frame,
            });
        }
        let header = FrameHeader {
            version: self.version,
            flags: 0,
            stream_id,
            payload_len: payload.len() as u32,
            seq,
        };
        header.write(dst);
        dst.extend_from_slice(payload);
        Ok(header.frame_len())
    }
}

/// Error of [`FrameEncoder::encode_with`]: either the payload writer failed or
/// the frame broke a frame rule.
#[derive(Debug, thiserror::Error)]
pub enum EncodeFrameError<E> {
    /// The payload writer (usually a codec) failed.
    #[error(transparent)]
    Body(E),
    /// The frame itself is invalid (too large).
    #[error(transparent)]
    Frame(FrameError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_example_from_spec() {
        // §3.1 example: stream 0, compact EchoRequest{text:"hello"}.
        let payload = hex_decode("92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6f");
        let enc = FrameEncoder::new(Version::V2, DEFAULT_MAX_FRAME);
        let mut out = BytesMut::new();
        enc.encode(&mut out, 0, 0, &payload).unwrap();
        assert_eq!(&out[..10], &hex_decode("0200000000000000001d")[..]);
        let mut dec = FrameDecoder::new(Version::V2, DEFAULT_MAX_FRAME);
        let f = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(f.header.stream_id, 0);
        assert_eq!(&f.payload[..], &payload[..]);
        assert!(out.is_empty());
    }

    #[test]
    fn one_byte_at_a_time() {
        let enc = FrameEncoder::new(Version::V3, 64);
        let mut wire = BytesMut::new();
        for i in 0..5u32 {
            enc.encode(&mut wire, i, u64::from(i) + 1, &vec![i as u8; i as usize * 3])
                .unwrap();
        }
        let mut dec = FrameDecoder::new(Version::V3, 64);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 5);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.header.stream_id, i as u32);
            assert_eq!(f.header.seq, i as u64 + 1);
            assert_eq!(f.payload.len(), i * 3);
        }
    }

    #[test]
    fn oversized_rejected_before_payload() {
        let mut buf = BytesMut::from(&hex_decode("02000000000700000401")[..]);
        let mut dec = FrameDecoder::new(Version::V2, 1024);
        assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLarge { len: 1025, max: 1024 }));
    }

    #[test]
    fn zero_length_frame_legal_with_max_zero() {
        let mut buf = BytesMut::from(&hex_decode("02000000000100000000")[..]);
        let mut dec = FrameDecoder::new(Version::V2, 0);
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert!(f.payload.is_empty());
    }

    #[test]
    fn bad_version_byte() {
        let mut buf = BytesMut::from(&hex_decode("03000000000100000000")[..]);
        let mut dec = FrameDecoder::new(Version::V2, 0);
        assert_eq!(dec.decode(&mut buf), Err(FrameError::BadVersion { got: 3 }));
    }

    #[test]
    fn encode_with_rolls_back() {
        let enc = FrameEncoder::new(Version::V2, 4);
        let mut out = BytesMut::from(&b"xy"[..]);
        let r = enc.encode_with::<()>(&mut out, 1, 0, |b| {
            b.extend_from_slice(b"12345");
            Ok(())
        });
        assert!(matches!(
            r,
            Err(EncodeFrameError::Frame(FrameError::TooLarge { len: 5, max: 4 }))
        ));
        assert_eq!(&out[..], b"xy");
        let n = enc.encode_with::<()>(&mut out, 1, 0, |b| {
            b.extend_from_slice(b"1234");
            Ok(())
        });
        assert_eq!(n.unwrap(), 14);
        assert_eq!(&out[2..12], &hex_decode("02000000000100000004")[..]);
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
