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

use amring::codec::{CodecKind, Message};

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

/// Appends a MessagePack str header for `len` bytes (smallest form).
fn str_header(out: &mut Vec<u8>, len: usize) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str_len(out, len as u32);
}

fn str_(out: &mut Vec<u8>, s: &str) {
    str_header(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes `{text}` under `wire` with `codec`, returning the payload and the
/// offset of the text bytes in it.
pub fn encode_text_message(codec: CodecKind, wire: &str, text: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(text.len() + 48);
    match codec {
        CodecKind::Compact => {
            let _ = rmp::encode::write_array_len(&mut out, 2);
            str_(&mut out, wire);
        }
        CodecKind::Map => {
            let _ = rmp::encode::write_map_len(&mut out, 2);
            str_(&mut out, "type");
            str_(&mut out, wire);
            str_(&mut out, "data");
            let _ = rmp::encode::write_map_len(&mut out, 1);
            str_(&mut out, "text");
        }
    }
    str_header(&mut out, text.len());
    let off = out.len();
    out.extend_from_slice(text);
    (out, off)
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
}

impl Templates {
    /// Templates for `payload` bytes of text with `codec`.
    pub fn new(codec: CodecKind, payload: usize) -> Templates {
        let text = vec![b'x'; payload];
        let (request, req_off) = encode_text_message(codec, EchoRequest::WIRE_NAME, &text);
        let (reply, rep_off) = encode_text_message(codec, EchoReply::WIRE_NAME, &text);
        Templates {
            request,
            req_off,
            reply,
            rep_off,
            id_len: payload.min(ID_LEN),
        }
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
        let (p, off) = encode_text_message(CodecKind::Compact, EchoRequest::WIRE_NAME, b"hello");
        let want = hex_decode("92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6f");
        assert_eq!(p, want);
        assert_eq!(&p[off..], b"hello");
    }

    #[test]
    fn map_layout() {
        let (p, off) = encode_text_message(CodecKind::Map, EchoReply::WIRE_NAME, b"hi");
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
            let (reply, _) = encode_text_message(codec, EchoReply::WIRE_NAME, &req[text_at..]);
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
        let (p, _) = encode_text_message(CodecKind::Compact, EchoReply::WIRE_NAME, b"x");
        assert!(!is_error_reply(CodecKind::Compact, &p));
        assert!(!is_error_reply(CodecKind::Compact, &[]));
        assert!(!is_error_reply(CodecKind::Map, &[0xc1]));
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
