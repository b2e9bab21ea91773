//! The API-level error: the reference's error kinds (spec §8.1) with the same
//! Display texts, plus amring's limits and I/O.

use crate::codec::{DecodeError, EncodeError};

/// Everything the public server/client API can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A payload failed to decode (`ErrCodec` / `ErrCompactFieldCount`; text from the codec).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message failed to encode (`ErrCodec`).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A payload exceeded the negotiated max_frame (`ErrFrameTooLarge`).
    #[error("frame too large: {0}")]
    FrameTooLarge(u32),
    /// Hello/reply/frame version unsupported or mismatched (`ErrUnsupportedFrameVersion`).
    #[error("unsupported frame version: {0}")]
    UnsupportedFrameVersion(u8),
    /// A codec id not registered locally (`ErrUnsupportedCodec`).
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(u8),
    /// The reply named a codec that was not offered (`ErrNoCommonCodec`).
    #[error("no common codec")]
    NoCommonCodec,
    /// More than 16 codecs (`ErrTooManyCodecs`).
    #[error("too many codecs: {0}")]
    TooManyCodecs(usize),
    /// The handshake reply's magic was not `AM` (`ErrBadHandshakeMagic`).
    #[error("invalid handshake magic")]
    BadHandshakeMagic,
    /// The server answered accept = 0 (`ErrHandshakeRejected`).
    #[error("handshake rejected")]
    HandshakeRejected,
    /// Dynamic receive of an unregistered wire name (`ErrUnknownMessage`).
    #[error("unknown message type: {0}")]
    UnknownMessage(String),
    /// A typed receive got another wire name (`ErrTypeMismatch`).
    #[error("message type mismatch: expected {expected}, got {got}")]
    TypeMismatch {
        /// The wire name that was expected.
        expected: String,
        /// The wire name received.
        got: String,
    },
    /// `send_recv` received an `ErrorReply` (`ErrRemote`).
    #[error("remote error: {code}: {message}")]
    Remote {
        /// `handler_error`, `codec_error`, `protocol_error`, ...
        code: String,
        /// The peer's detail text.
        message: String,
    },
    /// Dial or handshake deadline expired (`ErrConnectTimeout`).
    #[error("connect timeout")]
    ConnectTimeout,
    /// amring: `try_send` found no room: the connection holds `held` bytes
    /// to write, at its limit `limit` (`Limits::max_outbound_bytes`), or the
    /// v3 replay ring is full. Nothing was queued.
    #[error("send queue full: {held} bytes held, limit {limit}")]
    Full {
        /// Bytes held.
        held: usize,
        /// The limit.
        limit: usize,
    },
    /// amring: `send_timeout` found no room within its timeout. Nothing was queued.
    #[error("send timeout")]
    SendTimeout,
    /// A stream receive timed out (`ErrRecvTimeout`); the stream stays usable.
    #[error("recv timeout")]
    RecvTimeout,
    /// The connection or stream is closed (`ErrClosed`).
    #[error("connection closed")]
    Closed,
    /// A second concurrent receive on one stream (`ErrConcurrentRecv`).
    #[error("concurrent recv on stream")]
    ConcurrentRecv,
    /// `new_task` while the stream's task runs (`ErrHandlerTaskBusy`).
    #[error("only one handler task allowed per stream")]
    HandlerTaskBusy,
    /// v3 replay limit exceeded (`ErrReplayBufferFull`).
    #[error("replay buffer full: size={size} limit={limit}")]
    ReplayBufferFull {
        /// Accounted bytes the ring would hold.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// v3: the server refused the attach (`ErrResumeRejected`); the full
    /// text, e.g. `resume rejected: initial attach rejected`.
    #[error("{0}")]
    ResumeRejected(String),
    /// Local misuse (`ErrInvalidMessage`): the reason text.
    #[error("{0}")]
    InvalidMessage(String),
    /// Transport not available here (`ErrUnsupportedTransport`).
    #[error("{0}")]
    UnsupportedTransport(String),
    /// An address string that cannot be used.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// amring: the connection's stream limit is reached.
    #[error("too many streams: limit {0}")]
    TooManyStreams(usize),
    /// amring: `StreamContext::remote` outside a server shard (a client's
    /// handler context has no shard to post to).
    #[error("not on a server shard")]
    NotOnShard,
    /// An I/O error from the socket layer.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for errors after which the connection is unusable.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed | Error::Io(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_mirror_reference() {
        let cases: Vec<(Error, &str)> = vec![
            (Error::FrameTooLarge(7), "frame too large: 7"),
            (Error::UnsupportedFrameVersion(2), "unsupported frame version: 2"),
            (Error::UnsupportedCodec(9), "unsupported codec: 9"),
            (Error::NoCommonCodec, "no common codec"),
            (Error::TooManyCodecs(17), "too many codecs: 17"),
            (Error::BadHandshakeMagic, "invalid handshake magic"),
            (Error::HandshakeRejected, "handshake rejected"),
            (Error::UnknownMessage("am.x.Y".into()), "unknown message type: am.x.Y"),
            (
                Error::TypeMismatch {
                    expected: "a".into(),
                    got: "b".into(),
                },
                "message type mismatch: expected a, got b",
            ),
            (
                Error::Remote {
                    code: "handler_error".into(),
                    message: "boom".into(),
                },
                "remote error: handler_error: boom",
            ),
            (Error::ConnectTimeout, "connect timeout"),
            (Error::RecvTimeout, "recv timeout"),
            (Error::Closed, "connection closed"),
            (Error::ConcurrentRecv, "concurrent recv on stream"),
            (Error::HandlerTaskBusy, "only one handler task allowed per stream"),
            (
                Error::ReplayBufferFull { size: 344, limit: 200 },
                "replay buffer full: size=344 limit=200",
            ),
            (
                Error::Decode(DecodeError::CompactFieldCount { expected: 2, got: 3 }),
                "compact field count mismatch: expected 2, got 3",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
