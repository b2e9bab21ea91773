//! User codecs (the reference's `CodecImpl` / `RegisterCodec`): a payload
//! codec behind a trait object, negotiated in the handshake by its id like the
//! built-ins. Only [`CodecKind::Custom`](super::CodecKind::Custom) goes through
//! it; compact and map keep their static dispatch.
//!
//! Arbitrary serde types cross the object-safe boundary with
//! [`erased_serde`]: the message arrives as a `&dyn erased_serde::Serialize`,
//! and a body is decoded by handing the codec's own deserializer, erased, to a
//! [`BodySink`] that deserializes the caller's type from it.

use bytes::BytesMut;

use super::{CodecId, DecodeError, EncodeError, Envelope, Profile};

/// Receives a custom codec's body deserializer (see [`CodecImpl::decode_body`]):
/// deserializes the caller's type from it and keeps the value.
pub type BodySink<'s, 'de> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error> + 's;

/// A payload codec of the user's (the reference's `CodecImpl`), registered by
/// id in a [`CodecRegistry`](super::CodecRegistry) and selected in the
/// handshake like the built-ins (spec §2.5). Object safe: the runtime holds it
/// as `&'static dyn CodecImpl` inside [`CodecKind::Custom`](super::CodecKind::Custom).
///
/// ```
/// use amring_proto::codec::{
///     BodyKind, BodySink, CodecImpl, CodecKind, CodecRegistry, DecodeError, EncodeError, Envelope, Profile,
/// };
/// use bytes::BytesMut;
///
/// /// Toy codec 99: `<name>\n<JSON body>` (JSON standing in for any serde format).
/// struct Lines;
/// impl CodecImpl for Lines {
///     fn id(&self) -> u8 { 99 }
///     fn name(&self) -> &'static str { "lines" }
///     fn encode(&self, wire: &str, msg: &dyn erased_serde::Serialize, _: Profile, out: &mut BytesMut)
///         -> Result<(), EncodeError> {
///         let body = serde_json::to_vec(msg).map_err(|e| EncodeError::Custom(e.to_string()))?;
///         out.extend_from_slice(wire.as_bytes());
///         out.extend_from_slice(b"\n");
///         out.extend_from_slice(&body);
///         Ok(())
///     }
///     fn decode_envelope<'a>(&self, p: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
///         let at = p.iter().position(|&b| b == b'\n').ok_or(DecodeError::Codec("no name".into()))?;
///         let wire = std::str::from_utf8(&p[..at]).map_err(|e| DecodeError::Codec(e.to_string()))?;
///         Ok(Envelope { wire, body: &p[at + 1..], kind: BodyKind::Custom })
///     }
///     fn decode_body<'de>(&self, env: &Envelope<'de>, sink: &mut BodySink<'_, 'de>) -> Result<(), DecodeError> {
///         let mut de = serde_json::Deserializer::from_slice(env.body);
///         sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(|e| DecodeError::Codec(e.to_string()))
///     }
/// }
///
/// let lines = CodecKind::leak(Lines);
/// let mut reg = CodecRegistry::default();
/// reg.register(lines).unwrap();
/// assert_eq!(reg.select(&[99, 1]), Some(lines));
///
/// let mut out = BytesMut::new();
/// lines.encode(&amring_proto::codec::ErrorReply::new("c", "m"), Profile::Interop, &mut out).unwrap();
/// assert_eq!(&out[..], &b"am.message.ErrorReply\n{\"code\":\"c\",\"message\":\"m\"}"[..]);
/// let env = lines.decode_envelope(&out).unwrap();
/// let back: amring_proto::codec::ErrorReply = lines.decode_body(&env).unwrap();
/// assert_eq!(back.code, "c");
/// ```
pub trait CodecImpl: Send + Sync + 'static {
    /// The handshake id (non-zero; 1 and 2 are the built-ins').
    fn id(&self) -> CodecId;

    /// The debug-state name.
    fn name(&self) -> &'static str;

    /// Appends the whole envelope of the message named `wire` (body `msg`) to
    /// `out`. On error `out` may hold a partial envelope: callers truncate.
    fn encode(
        &self,
        wire: &str,
        msg: &dyn erased_serde::Serialize,
        profile: Profile,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError>;

    /// Reads only the envelope: the wire name and the undecoded body, both
    /// borrowed from `payload` (use [`BodyKind::Custom`](super::BodyKind::Custom)).
    fn decode_envelope<'a>(&self, payload: &'a [u8]) -> Result<Envelope<'a>, DecodeError>;

    /// Decodes the body of an envelope this codec produced: builds its
    /// deserializer over `env.body`, erases it
    /// (`<dyn erased_serde::Deserializer>::erase(&mut de)`) and passes it to
    /// `sink`, mapping the error `sink` returns into a [`DecodeError`].
    fn decode_body<'de>(&self, env: &Envelope<'de>, sink: &mut BodySink<'_, 'de>) -> Result<(), DecodeError>;
}

/// Lets a `M: Message + ?Sized` be seen as a sized `serde::Serialize`, hence
/// as a `&dyn erased_serde::Serialize`.
pub(crate) struct AsSized<'a, M: ?Sized>(pub(crate) &'a M);

impl<M: serde::Serialize + ?Sized> serde::Serialize for AsSized<'_, M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
