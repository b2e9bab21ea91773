//! The [`Message`] trait, wire names (spec §5.1) and the built-in replies (§5.2).

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::{CodecKind, EncodeError, Profile};

/// A message type that can travel in an envelope.
///
/// The wire name is the contract between peers; it follows the reference's
/// rule `am.<package leaf>.<TypeName>` unless overridden (see [`wire_name_for`]
/// and the `message!` macro).
pub trait Message: Serialize {
    /// The wire name, compared byte for byte by the peer.
    const WIRE_NAME: &'static str;
}

/// Derives a wire name with the reference's rule (spec §5.1): `am.` + the last
/// `/`-separated element of `package_path` with one trailing `-go` removed +
/// `.` + `type_name`. An empty package path gives leaf `unknown`.
pub fn wire_name_for(package_path: &str, type_name: &str) -> String {
    let leaf = package_path.rsplit('/').next().unwrap_or("");
    let leaf = leaf.strip_suffix("-go").unwrap_or(leaf);
    let leaf = if leaf.is_empty() { "unknown" } else { leaf };
    let ty = if type_name.is_empty() { "unknown" } else { type_name };
    format!("am.{leaf}.{ty}")
}

/// `am.message.OkReply`: what a handler that returns no reply sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkReply {}

impl Message for OkReply {
    const WIRE_NAME: &'static str = "am.message.OkReply";
}

/// `am.message.ErrorReply {code, message}` (spec §5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorReply {
    /// `handler_error`, `codec_error` or `protocol_error` from the reference.
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

impl Message for ErrorReply {
    const WIRE_NAME: &'static str = "am.message.ErrorReply";
}

impl ErrorReply {
    /// Code sent when a handler returned an error.
    pub const HANDLER_ERROR: &'static str = "handler_error";
    /// Code sent when an envelope or body failed to decode.
    pub const CODEC_ERROR: &'static str = "codec_error";
    /// Code sent when a typed receive got another wire name.
    pub const PROTOCOL_ERROR: &'static str = "protocol_error";

    /// An error reply with `code` and `message` (the reference's
    /// `NewErrorReply`). A handler may return it as its `Ok` value to answer
    /// with an application error code of its own.
    ///
    /// ```
    /// use amring_proto::codec::ErrorReply;
    /// let e = ErrorReply::new("not_found", "no such user");
    /// assert_eq!((e.code.as_str(), e.message.as_str()), ("not_found", "no such user"));
    /// ```
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorReply {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A message whose type is chosen at run time: the object-safe side of
/// [`Message`] (every `Message` is one). Send a `&dyn AnyMessage`, or return a
/// `Box<dyn AnyMessage>` from a handler, to reply with whichever registered
/// type fits (the reference's handlers return any `Message`).
///
/// ```
/// use amring_proto::codec::{AnyMessage, ErrorReply, OkReply};
/// let pick = |ok: bool| -> Box<dyn AnyMessage> {
///     if ok { Box::new(OkReply {}) } else { Box::new(ErrorReply::new("denied", "no")) }
/// };
/// assert_eq!(pick(true).wire_name(), "am.message.OkReply");
/// assert_eq!(pick(false).wire_name(), "am.message.ErrorReply");
/// ```
pub trait AnyMessage {
    /// The wire name ([`Message::WIRE_NAME`]).
    fn wire_name(&self) -> &'static str;
    /// Appends the envelope (wire name and body) in `codec` to `out`.
    fn encode_with(&self, codec: CodecKind, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError>;
}

impl<M: Message + ?Sized> AnyMessage for M {
    fn wire_name(&self) -> &'static str {
        M::WIRE_NAME
    }
    fn encode_with(&self, codec: CodecKind, profile: Profile, out: &mut BytesMut) -> Result<(), EncodeError> {
        codec.encode(self, profile, out)
    }
}

/// What a handler's `Ok` value sends back (spec §5.4): a message, `()` for
/// [`OkReply`] (no reply of its own: a notification's answer), an `Option`
/// of a message (`None` sends `OkReply`), or a `Box<dyn AnyMessage>` to pick
/// the reply type at run time.
///
/// ```
/// use amring_proto::codec::{AnyMessage, Message, OkReply, Reply};
/// assert_eq!(<<() as Reply>::Msg as Message>::WIRE_NAME, OkReply::WIRE_NAME);
/// assert_eq!(None::<OkReply>.message().wire_name(), OkReply::WIRE_NAME);
/// ```
pub trait Reply {
    /// The message type sent.
    type Msg: AnyMessage + ?Sized;
    /// The message to send.
    fn message(&self) -> &Self::Msg;
}

impl Reply for () {
    type Msg = OkReply;
    fn message(&self) -> &OkReply {
        &OkReply {}
    }
}

impl<M: Message> Reply for M {
    type Msg = M;
    fn message(&self) -> &M {
        self
    }
}

impl<M: Message + 'static> Reply for Option<M> {
    type Msg = dyn AnyMessage;
    fn message(&self) -> &(dyn AnyMessage + 'static) {
        match self {
            Some(m) => m,
            None => &OkReply {},
        }
    }
}

impl Reply for Box<dyn AnyMessage> {
    type Msg = dyn AnyMessage;
    fn message(&self) -> &(dyn AnyMessage + 'static) {
        &**self
    }
}

/// adaptivemsg-rust's handler result (`Option<Box<dyn Message>>`): `None`
/// sends `OkReply`.
impl Reply for Option<Box<dyn AnyMessage>> {
    type Msg = dyn AnyMessage;
    fn message(&self) -> &(dyn AnyMessage + 'static) {
        match self {
            Some(m) => &**m,
            None => &OkReply {},
        }
    }
}

impl Reply for Box<dyn AnyMessage + Send> {
    type Msg = dyn AnyMessage;
    fn message(&self) -> &(dyn AnyMessage + 'static) {
        &**self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_rule() {
        assert_eq!(
            wire_name_for("example.com/x/hello", "HelloRequest"),
            "am.hello.HelloRequest"
        );
        assert_eq!(wire_name_for("example.com/suffix-go", "Thing"), "am.suffix.Thing");
        assert_eq!(wire_name_for("main", "Local"), "am.main.Local");
        assert_eq!(
            wire_name_for("github.com/adaptivemsg/adaptivemsg-go", "X"),
            "am.adaptivemsg.X"
        );
        assert_eq!(wire_name_for("example.com/foo/v2", "T"), "am.v2.T");
        assert_eq!(wire_name_for("", "T"), "am.unknown.T");
    }
}
