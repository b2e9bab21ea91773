//! adaptivemsg-rust's postcard codec (id 64, name `postcard`; feature
//! `postcard`), so amring can talk to adaptivemsg-rust services that use it.
//! The Go reference has no postcard codec.
//!
//! Envelope: the postcard encoding of the struct `{ type: str, data: bytes }`
//! (fields in that order), where `data` is the postcard encoding of the
//! message. `data` is a varint length and the raw bytes, which is what
//! postcard writes both for a byte string and for adaptivemsg-rust's `&[u8]`
//! (a sequence of `u8`, each one byte). As in adaptivemsg-rust, an empty
//! `type` is refused and bytes after the envelope are ignored.
//!
//! ```
//! use amring_proto::codec::{postcard::POSTCARD, CodecRegistry};
//! let reg = CodecRegistry::default().with(POSTCARD);
//! assert_eq!(reg.select(&[64, 1]).map(|k| k.name()), Some("postcard"));
//! ```

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::{BodyKind, BodySink, CodecId, CodecImpl, CodecKind, DecodeError, EncodeError, Envelope, Profile};

/// The postcard codec's handshake id (adaptivemsg-rust's `CODEC_POSTCARD`).
pub const POSTCARD_ID: CodecId = 64;

/// The postcard codec, ready for [`CodecRegistry::register`](super::CodecRegistry::register),
/// `ClientBuilder::codecs` or `ServerBuilder::codec` (adaptivemsg-rust's `CodecPostcard`).
pub const POSTCARD: CodecKind = CodecKind::Custom(&Postcard);

/// The postcard codec as a [`CodecImpl`] (see the module docs for the layout).
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

/// The envelope, as adaptivemsg-rust lays it out.
#[derive(Serialize, Deserialize)]
struct Env<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
}

/// Lets postcard append to a `BytesMut` it does not own.
struct Append<'a>(&'a mut BytesMut);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

fn decode_error(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Codec(e.to_string())
}

impl CodecImpl for Postcard {
    fn id(&self) -> CodecId {
        POSTCARD_ID
    }

    fn name(&self) -> &'static str {
        "postcard"
    }

    fn encode(
        &self,
        wire: &str,
        msg: &dyn erased_serde::Serialize,
        _profile: Profile,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if wire.is_empty() {
            return Err(EncodeError::EmptyWireName);
        }
        let data = ::postcard::to_allocvec(msg).map_err(|e| EncodeError::Custom(e.to_string()))?;
        ::postcard::to_extend(&Env { ty: wire, data: &data }, Append(out))
            .map(drop)
            .map_err(|e| EncodeError::Custom(e.to_string()))
    }

    fn decode_envelope<'a>(&self, payload: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let (env, _rest) = ::postcard::take_from_bytes::<Env<'a>>(payload).map_err(decode_error)?;
        if env.ty.is_empty() {
            return Err(DecodeError::Codec("postcard payload missing type".into()));
        }
        Ok(Envelope {
            wire: env.ty,
            body: env.data,
            kind: BodyKind::Custom,
        })
    }

    fn decode_body<'de>(&self, env: &Envelope<'de>, sink: &mut BodySink<'_, 'de>) -> Result<(), DecodeError> {
        let mut de = ::postcard::Deserializer::from_bytes(env.body);
        sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(decode_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{ErrorReply, Message, OkReply};

    /// adaptivemsg-rust's own envelope structs (`data` a plain `&[u8]` /
    /// `Vec<u8>`: a sequence of bytes, not a byte string).
    #[derive(Serialize)]
    struct RustEnv<'a> {
        #[serde(rename = "type")]
        r#type: &'a str,
        data: &'a [u8],
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct RustEnvOwned {
        #[serde(rename = "type")]
        r#type: String,
        data: Vec<u8>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Ping {
        value: u32,
        name: String,
        tags: Vec<String>,
        blob: Vec<u8>,
        opt: Option<i64>,
    }
    impl Message for Ping {
        const WIRE_NAME: &'static str = "am.pc.Ping";
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Borrowing<'a> {
        text: &'a str,
        n: i8,
    }
    impl Message for Borrowing<'_> {
        const WIRE_NAME: &'static str = "am.pc.Borrowing";
    }

    fn ping() -> Ping {
        Ping {
            value: 300,
            name: "hé".into(),
            tags: vec!["a".into(), "bc".into()],
            blob: vec![0, 255, 7],
            opt: Some(-2),
        }
    }

    fn enc<M: Message>(m: &M) -> BytesMut {
        let mut out = BytesMut::new();
        POSTCARD.encode(m, Profile::Interop, &mut out).unwrap();
        out
    }

    #[test]
    fn envelope_bytes_are_postcards_own() {
        let m = ping();
        let out = enc(&m);
        let data = ::postcard::to_allocvec(&m).unwrap();
        let env = Env {
            ty: Ping::WIRE_NAME,
            data: &data,
        };
        assert_eq!(&out[..], &::postcard::to_allocvec(&env).unwrap()[..]);
        // ... which is adaptivemsg-rust's layout, `data` as a byte sequence.
        let theirs = RustEnv {
            r#type: Ping::WIRE_NAME,
            data: &data,
        };
        assert_eq!(&out[..], &::postcard::to_allocvec(&theirs).unwrap()[..]);
        // Spelled out: varint len + name, varint len + postcard(message).
        let mut want = vec![10u8];
        want.extend_from_slice(b"am.pc.Ping");
        // value 300 = varint ac 02; "hé" = 3 bytes; 2 tags; 3-byte blob; Some(-2) = 01 + zigzag 03.
        let body = [
            0xac, 0x02, 3, b'h', 0xc3, 0xa9, 2, 1, b'a', 2, b'b', b'c', 3, 0, 255, 7, 1, 3,
        ];
        assert_eq!(data, body);
        want.push(body.len() as u8);
        want.extend_from_slice(&body);
        assert_eq!(&out[..], &want[..]);
        // OkReply: empty struct, empty data.
        assert_eq!(&enc(&OkReply {})[..], b"\x12am.message.OkReply\x00");
        // A body of 128+ bytes takes a two-byte length varint.
        let long = Ping {
            name: "x".repeat(200),
            ..ping()
        };
        let out = enc(&long);
        let data = ::postcard::to_allocvec(&long).unwrap();
        let env = Env {
            ty: Ping::WIRE_NAME,
            data: &data,
        };
        assert_eq!(&out[..], &::postcard::to_allocvec(&env).unwrap()[..]);
        assert_eq!(out[11..13], [(data.len() as u8) | 0x80, (data.len() >> 7) as u8]);
    }

    #[test]
    fn round_trips() {
        let m = ping();
        let out = enc(&m);
        let env = POSTCARD.decode_envelope(&out).unwrap();
        assert_eq!(env.wire, Ping::WIRE_NAME);
        assert_eq!(env.kind, BodyKind::Custom);
        assert_eq!(env.body, &::postcard::to_allocvec(&m).unwrap()[..]);
        assert_eq!(POSTCARD.decode_body::<Ping>(&env).unwrap(), m);

        let e = ErrorReply::new("handler_error", "boom");
        let out = enc(&e);
        let env = POSTCARD.decode_envelope(&out).unwrap();
        assert_eq!(env.wire, ErrorReply::WIRE_NAME);
        assert_eq!(POSTCARD.decode_body::<ErrorReply>(&env).unwrap(), e);

        let out = enc(&OkReply {});
        let env = POSTCARD.decode_envelope(&out).unwrap();
        assert_eq!(POSTCARD.decode_body::<OkReply>(&env).unwrap(), OkReply {});

        // Borrowing from the payload through the erased deserializer.
        let b = Borrowing {
            text: "zero-copy",
            n: -5,
        };
        let out = enc(&b);
        let env = POSTCARD.decode_envelope(&out).unwrap();
        let back: Borrowing<'_> = POSTCARD.decode_body(&env).unwrap();
        assert_eq!(back, b);
        assert!(out.as_ptr_range().contains(&back.text.as_ptr()));

        // What adaptivemsg-rust decodes, from what it encodes.
        let theirs: RustEnvOwned = ::postcard::from_bytes(&enc(&m)).unwrap();
        assert_eq!(theirs.r#type, Ping::WIRE_NAME);
        assert_eq!(::postcard::from_bytes::<Ping>(&theirs.data).unwrap(), m);
        let data = ::postcard::to_allocvec(&m).unwrap();
        let from_them = ::postcard::to_allocvec(&RustEnv {
            r#type: "am.pc.Ping",
            data: &data,
        })
        .unwrap();
        let env = POSTCARD.decode_envelope(&from_them).unwrap();
        assert_eq!(POSTCARD.decode_body::<Ping>(&env).unwrap(), m);
    }

    #[test]
    fn errors() {
        // Empty type.
        let raw = ::postcard::to_allocvec(&Env { ty: "", data: &[] }).unwrap();
        assert_eq!(
            POSTCARD.decode_envelope(&raw).unwrap_err().to_string(),
            "codec error: postcard payload missing type"
        );
        // Truncated envelope.
        let out = enc(&ping());
        for end in 0..out.len() {
            assert!(POSTCARD.decode_envelope(&out[..end]).is_err(), "cut at {end}");
        }
        // Trailing bytes are ignored (::postcard::from_bytes in adaptivemsg-rust).
        let mut long = out.to_vec();
        long.push(0xff);
        assert_eq!(POSTCARD.decode_envelope(&long).unwrap().wire, Ping::WIRE_NAME);
        // A body of the wrong type.
        let ok = enc(&OkReply {});
        let env = POSTCARD.decode_envelope(&ok).unwrap();
        assert!(matches!(POSTCARD.decode_body::<Ping>(&env), Err(DecodeError::Codec(_))));
        // Msgpack codecs refuse a custom body.
        assert!(CodecKind::Compact.decode_body::<OkReply>(&env).is_err());
        // An empty wire name is refused.
        struct NoName;
        impl Serialize for NoName {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_unit()
            }
        }
        impl Message for NoName {
            const WIRE_NAME: &'static str = "";
        }
        let mut out = BytesMut::new();
        assert_eq!(
            POSTCARD.encode(&NoName, Profile::Interop, &mut out),
            Err(EncodeError::EmptyWireName)
        );
    }

    #[test]
    fn kind_identity_and_registry() {
        assert_eq!(POSTCARD.id(), 64);
        assert_eq!(POSTCARD.name(), "postcard");
        assert_eq!(POSTCARD, CodecKind::Custom(&Postcard));
        assert_ne!(POSTCARD, CodecKind::Compact);
        assert_eq!(format!("{POSTCARD:?}"), "Custom(postcard, id 64)");
        let mut reg = CodecRegistry::default();
        assert!(!reg.supports(64));
        assert_eq!(reg.select(&[64]), None);
        reg.register(POSTCARD).unwrap();
        assert_eq!(reg.register(POSTCARD), Err(crate::codec::RegisterError::Duplicate(64)));
        assert_eq!(reg.select(&[64, 1]), Some(POSTCARD));
        assert_eq!(reg.select(&[2, 64]), Some(CodecKind::Map));
        assert_eq!(reg.get(64), Some(POSTCARD));
        assert_eq!(reg.kinds(), &[CodecKind::Compact, CodecKind::Map, POSTCARD]);
    }

    use crate::codec::CodecRegistry;
}
