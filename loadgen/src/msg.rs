//! The workload messages and their pre-encoded templates.
//!
//! `am.capmsg.EchoRequest{text}` → `am.capmsg.EchoReply{text}` (the capture
//! names of the vectors). The generator never runs a serializer per request:
//! it encodes one request and one expected reply per connection, then patches
//! the 16-byte request id at the front of `text` in place. Every reply is
//! checked by comparing it with the expected reply bytes (the Go encoder and
//! amring both emit the minimal MessagePack forms, spec §4.2).

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use amring::codec::{CodecKind, Message, Profile};
use amring_proto::frame::V2_HEADER_LEN;
use amring_proto::Version;

/// Request of the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoRequest {
    /// Text to echo; starts with the request id.
    pub text: String,
}

impl Message for EchoRequest {
    const WIRE_NAME: &'static str = "am.capmsg.EchoRequest";
}

/// Reply of the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The request's text, unchanged.
    pub text: String,
}

impl Message for EchoReply {
    const WIRE_NAME: &'static str = "am.capmsg.EchoReply";
}

/// Length of the unique request id written at the start of every text.
pub const ID_LEN: usize = 16;

/// Encodes `msg` (whose last encoded field is `text`) with `codec` through
/// the engine's encoder (`CodecKind::encode`, interop profile), returning the
/// payload and the offset of the text bytes in it: in both codecs the
/// message's only field is the payload's last item.
fn encode_with_text<M: Message>(codec: CodecKind, msg: &M, text_len: usize) -> (Vec<u8>, usize) {
    let mut out = BytesMut::with_capacity(text_len + 64);
    // Two strings cannot fail to encode; an empty payload would fail every check loudly.
    let _ = codec.encode(msg, Profile::Interop, &mut out);
    let off = out.len().saturating_sub(text_len);
    (out.to_vec(), off)
}

/// `am.capmsg.EchoRequest{text}` encoded with `codec`, and the offset of the text bytes.
pub fn encode_request(codec: CodecKind, text: &str) -> (Vec<u8>, usize) {
    encode_with_text(codec, &EchoRequest { text: text.into() }, text.len())
}

/// `am.capmsg.EchoReply{text}` encoded with `codec`, and the offset of the text bytes.
pub fn encode_reply(codec: CodecKind, text: &str) -> (Vec<u8>, usize) {
    encode_with_text(codec, &EchoReply { text: text.into() }, text.len())
}

/// Writes `id` as 16 lowercase hex digits into `dst[..16]` (fewer if `dst` is shorter).
#[inline]
pub fn write_id(dst: &mut [u8], id: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = dst.len().min(ID_LEN);
    for (i, b) in dst[..n].iter_mut().enumerate() {
        *b = HEX[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Pre-encoded request and expected reply of one connection.
#[derive(Clone, Debug)]
pub struct Templates {
    request: Vec<u8>,
    req_off: usize,
    reply: Vec<u8>,
    rep_off: usize,
    id_len: usize,
    /// The whole v2 request frame (10-byte header for stream 0, then the request payload).
    frame_v2: Vec<u8>,
}

impl Templates {
    /// Templates for `payload` bytes of text with `codec`.
    pub fn new(codec: CodecKind, payload: usize) -> Templates {
        let text = "x".repeat(payload);
        let (request, req_off) = encode_request(codec, &text);
        let (reply, rep_off) = encode_reply(codec, &text);
        let mut frame_v2 = Vec::with_capacity(V2_HEADER_LEN + request.len());
        frame_v2.push(Version::V2.as_u8());
        frame_v2.push(0);
        frame_v2.extend_from_slice(&0u32.to_be_bytes());
        frame_v2.extend_from_slice(&(request.len() as u32).to_be_bytes());
        frame_v2.extend_from_slice(&request);
        Templates {
            request,
            req_off,
            reply,
            rep_off,
            id_len: payload.min(ID_LEN),
            frame_v2,
        }
    }

    /// Length of a whole v2 request frame (header included).
    pub fn frame_v2_len(&self) -> usize {
        self.frame_v2.len()
    }

    /// Length of a whole v2 reply frame (header included).
    pub fn reply_frame_v2_len(&self) -> usize {
        V2_HEADER_LEN + self.reply.len()
    }

    /// Appends a whole v2 request frame for `stream` with id `id` to `out`:
    /// one copy of the pre-encoded frame, then the stream id and the id
    /// digits patched in place (spec §3.2 header, flags 0).
    #[inline]
    pub fn write_request_frame_v2(&self, stream: u32, id: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.frame_v2);
        let f = &mut out[start..];
        f[2..6].copy_from_slice(&stream.to_be_bytes());
        let o = V2_HEADER_LEN + self.req_off;
        write_id(&mut f[o..o + self.id_len], id);
    }

    /// Length of an encoded request payload.
    pub fn request_len(&self) -> usize {
        self.request.len()
    }

    /// Appends the request payload with id `id` to `out`.
    #[inline]
    pub fn write_request(&self, id: u64, out: &mut BytesMut) {
        let start = out.len();
        out.extend_from_slice(&self.request);
        let o = start + self.req_off;
        write_id(&mut out[o..o + self.id_len], id);
    }

    /// True when `payload` is exactly the echo reply for request `id`.
    #[inline]
    pub fn check_reply(&self, id: u64, payload: &[u8]) -> bool {
        if payload.len() != self.reply.len() {
            return false;
        }
        let o = self.rep_off;
        let mut idb = [0u8; ID_LEN];
        write_id(&mut idb[..self.id_len], id);
        payload[..o] == self.reply[..o]
            && payload[o..o + self.id_len] == idb[..self.id_len]
            && payload[o + self.id_len..] == self.reply[o + self.id_len..]
    }
}

/// True when `payload` is an `am.message.ErrorReply` envelope of `codec`
/// (envelope-only decode: the body is not decoded, nothing is allocated).
pub fn is_error_reply(codec: CodecKind, payload: &[u8]) -> bool {
    codec
        .decode_envelope(payload)
        .is_ok_and(|env| env.wire == amring::codec::ErrorReply::WIRE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_request_matches_spec_example() {
        // Spec §3.1: compact EchoRequest{text:"hello"}, 29-byte payload.
        let (p, off) = encode_request(CodecKind::Compact, "hello");
        let want = hex_decode("92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6f");
        assert_eq!(p, want);
        assert_eq!(&p[off..], b"hello");
    }

    #[test]
    fn map_layout() {
        let (p, off) = encode_reply(CodecKind::Map, "hi");
        assert_eq!(p[0], 0x82);
        assert_eq!(&p[1..6], b"\xa4type");
        assert_eq!(&p[off..], b"hi");
        assert_eq!(p[off - 1], 0xa2);
        assert_eq!(&p[off - 7..off - 1], b"\x81\xa4text");
    }

    #[test]
    fn long_texts_use_wider_headers() {
        let t = Templates::new(CodecKind::Compact, 300);
        let mut b = BytesMut::new();
        t.write_request(7, &mut b);
        // fixarray, fixstr name (21 bytes), str16 header for 300 bytes.
        assert_eq!(&b[23..26], &[0xda, 0x01, 0x2c]);
        assert_eq!(b.len(), 26 + 300);
    }

    #[test]
    fn ids_and_reply_check() {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            let t = Templates::new(codec, 64);
            let mut req = BytesMut::new();
            t.write_request(0x0123_4567_89ab_cdef, &mut req);
            assert!(req.windows(16).any(|w| w == b"0123456789abcdef"));
            // Build the true echo reply from the request's text.
            let text_at = req.len() - 64;
            let (reply, _) = encode_reply(codec, std::str::from_utf8(&req[text_at..]).unwrap());
            assert!(t.check_reply(0x0123_4567_89ab_cdef, &reply));
            assert!(!t.check_reply(0x0123_4567_89ab_cdee, &reply));
            let mut bad = reply.clone();
            *bad.last_mut().unwrap() = b'y';
            assert!(!t.check_reply(0x0123_4567_89ab_cdef, &bad));
            assert!(!t.check_reply(0x0123_4567_89ab_cdef, &reply[1..]));
        }
    }

    #[test]
    fn short_payload_keeps_prefix_of_id() {
        let t = Templates::new(CodecKind::Compact, 4);
        let mut req = BytesMut::new();
        t.write_request(u64::MAX, &mut req);
        assert_eq!(&req[req.len() - 4..], b"ffff");
    }

    #[test]
    fn error_reply_detection() {
        // Spec §4.1 ErrorReply{code:"handler_error", message:"boom"}, compact.
        let mut p = vec![0x93, 0xb5];
        p.extend_from_slice(b"am.message.ErrorReply");
        p.push(0xad);
        p.extend_from_slice(b"handler_error");
        p.push(0xa4);
        p.extend_from_slice(b"boom");
        assert!(is_error_reply(CodecKind::Compact, &p));
        let (p, _) = encode_reply(CodecKind::Compact, "x");
        assert!(!is_error_reply(CodecKind::Compact, &p));
        assert!(!is_error_reply(CodecKind::Compact, &[]));
        assert!(!is_error_reply(CodecKind::Map, &[0xc1]));
    }

    /// The patched templates are exactly what the engine's encoder emits
    /// for the same message, for both codecs and every str header width, and
    /// the engine decodes them back to the same text.
    #[test]
    fn templates_equal_engine_encoding() {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            for payload in [0, 4, 16, 31, 32, 255, 256, 65_535, 65_536] {
                let t = Templates::new(codec, payload);
                let id = 0xfeed_beef_0000_0042u64;
                let mut req = BytesMut::new();
                t.write_request(id, &mut req);
                let mut text = "x".repeat(payload).into_bytes();
                write_id(&mut text, id);
                let text = String::from_utf8(text).unwrap();
                let mut want = BytesMut::new();
                codec
                    .encode(&EchoRequest { text: text.clone() }, Profile::Exact, &mut want)
                    .unwrap();
                assert_eq!(&req[..], &want[..], "{codec:?} payload {payload}");
                let env = codec.decode_envelope(&req).unwrap();
                assert_eq!(env.wire, EchoRequest::WIRE_NAME);
                let back: EchoRequest = codec.decode_body(&env).unwrap();
                assert_eq!(back.text, text);
                let mut rep = BytesMut::new();
                codec.encode(&EchoReply { text }, Profile::Exact, &mut rep).unwrap();
                assert!(t.check_reply(id, &rep), "{codec:?} payload {payload}");
                // Another id differs in its first hex digit: only an empty text cannot tell.
                assert!(!t.check_reply(id ^ (1 << 62), &rep) || payload == 0);
            }
        }
    }

    /// The v2 frame template is exactly what the engine's frame encoder
    /// emits around the request payload, for several streams and ids.
    #[test]
    fn v2_frame_template_equals_frame_encoder() {
        use amring_proto::FrameEncoder;
        for codec in [CodecKind::Compact, CodecKind::Map] {
            for payload in [0, 5, 16, 64, 300] {
                let t = Templates::new(codec, payload);
                let enc = FrameEncoder::new(Version::V2, u32::MAX);
                let mut got = Vec::new();
                let mut want = BytesMut::new();
                for (stream, id) in [(0u32, 1u64), (7, 0xdead_beef_0000_0001), (0x0102_0304, u64::MAX)] {
                    t.write_request_frame_v2(stream, id, &mut got);
                    let mut p = BytesMut::new();
                    t.write_request(id, &mut p);
                    enc.encode(&mut want, stream, 0, &p).unwrap();
                }
                assert_eq!(got, &want[..], "{codec:?} payload {payload}");
                assert_eq!(got.len(), 3 * t.frame_v2_len());
                assert_eq!(
                    t.reply_frame_v2_len(),
                    V2_HEADER_LEN + encode_reply(codec, &"x".repeat(payload)).0.len()
                );
            }
        }
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
