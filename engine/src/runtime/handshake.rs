//! Handshake I/O: runs the sans-IO state machines of `proto::handshake` over
//! a [`Transport`], with the amring server's handshake timeout.
//!
//! The server's handshake timeout is one deadline, set when the connection
//! is accepted, that bounds everything before the connection is live: the
//! hello here and, for v3, the attach or resume exchange (`recovery.rs`).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;

use super::io::Transport;
use super::shared::ShardCounters;
use crate::codec::{CodecKind, CodecRegistry};
use crate::debug::FailureCode;
use crate::error::Error;
use crate::proto::handshake::{
    ClientHandshake, ClientHandshakeConfig, HandshakeError, ServerHandshake, ServerHandshakeConfig, ServerStep,
};
use crate::proto::Version;

/// What a handshake settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) version: Version,
    pub(crate) codec: CodecKind,
    pub(crate) max_frame: u32,
    /// amring extensions in effect (`proto::handshake::FLAG_*`).
    pub(crate) flags: u8,
}

/// Why the server side of a handshake ended without a live connection.
#[derive(Debug)]
pub(crate) enum ServerHsFail {
    /// The client did not complete the hello before the handshake deadline.
    Timeout,
    /// Rejected (reply, if any, already written) or the peer went away.
    Rejected,
    /// Socket error.
    Io,
}

/// Maps a handshake error to the API error (same texts, §8.1).
impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Error {
        match e {
            HandshakeError::BadMagic => Error::BadHandshakeMagic,
            HandshakeError::UnsupportedVersion(v) => Error::UnsupportedFrameVersion(v),
            HandshakeError::VersionMismatch { got, .. } => Error::UnsupportedFrameVersion(got),
            HandshakeError::TooManyCodecs(n) => Error::TooManyCodecs(n),
            HandshakeError::NoCommonCodec => Error::NoCommonCodec,
            HandshakeError::Rejected => Error::HandshakeRejected,
            HandshakeError::UnsupportedCodec(c) => Error::UnsupportedCodec(c),
            HandshakeError::Eof { .. } => {
                Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e.to_string()))
            }
            other => Error::InvalidMessage(other.to_string()),
        }
    }
}

/// Runs `f` until `deadline`: `None` when the deadline passed first (then `f`
/// is dropped, so it must be safe to cancel at its await points).
pub(crate) async fn until<F: Future>(deadline: Instant, f: F) -> Option<F::Output> {
    let timer = async {
        crate::exec::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    future::or(async { Some(f.await) }, timer).await
}

/// Counts and records a connection that was not live by its handshake
/// deadline (`handshake_timeouts`, `handshake.timeout`), in whichever phase.
pub(crate) fn count_timeout(counters: &ShardCounters, peer: &str, timeout: Duration) {
    counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
    counters.record(
        FailureCode::HandshakeTimeout,
        format!("handshake timeout from {peer} after {timeout:?}"),
    );
}

/// Server side: reads the hello, writes the reply, both before `deadline`.
/// Bytes after the hello stay in `rbuf` (pipelined frames).
pub(crate) async fn server(
    io: &mut Transport,
    cfg: ServerHandshakeConfig,
    rbuf: &mut BytesMut,
    deadline: Instant,
) -> Result<Negotiated, ServerHsFail> {
    let run = async {
        let mut hs = ServerHandshake::new(cfg);
        loop {
            match hs.handle(rbuf) {
                ServerStep::NeedMore => {
                    let n = io.read_buf(rbuf).await.map_err(|_| ServerHsFail::Io)?;
                    if n == 0 {
                        return Err(ServerHsFail::Rejected);
                    }
                }
                ServerStep::Accept {
                    reply,
                    version,
                    codec,
                    max_frame,
                    flags,
                } => {
                    io.write_all(&reply).await.map_err(|_| ServerHsFail::Io)?;
                    return Ok(Negotiated {
                        version,
                        codec,
                        max_frame,
                        flags,
                    });
                }
                ServerStep::Reject { reply, error } => {
                    if let Some(r) = reply {
                        let _ = io.write_all(&r).await;
                    }
                    let _ = error;
                    return Err(ServerHsFail::Rejected);
                }
            }
        }
    };
    until(deadline, run).await.unwrap_or(Err(ServerHsFail::Timeout))
}

/// Why a client handshake failed: the protocol error is kept for
/// [`HandshakeError::is_v3_fallback`].
#[derive(Debug)]
pub(crate) enum ClientHsError {
    /// The handshake state machine refused (reply, config or EOF).
    Hs(HandshakeError),
    /// Socket error.
    Io(std::io::Error),
}

impl From<ClientHsError> for Error {
    fn from(e: ClientHsError) -> Error {
        match e {
            ClientHsError::Hs(h) => h.into(),
            ClientHsError::Io(e) => Error::Io(e),
        }
    }
}

/// Client side: writes the hello (header and codec list in one write), reads
/// the reply. Bytes after the reply stay in `rbuf`.
pub(crate) async fn client(
    io: &mut Transport,
    cfg: ClientHandshakeConfig,
    local: &CodecRegistry,
    rbuf: &mut BytesMut,
) -> Result<Negotiated, Error> {
    client_raw(io, cfg, local, rbuf).await.map_err(Error::from)
}

/// [`client`] keeping the handshake error.
pub(crate) async fn client_raw(
    io: &mut Transport,
    cfg: ClientHandshakeConfig,
    local: &CodecRegistry,
    rbuf: &mut BytesMut,
) -> Result<Negotiated, ClientHsError> {
    let mut hs = ClientHandshake::new(cfg, local).map_err(ClientHsError::Hs)?;
    let mut out = BytesMut::with_capacity(32);
    hs.write_hello(&mut out);
    io.write_all(&out).await.map_err(ClientHsError::Io)?;
    loop {
        if let Some(done) = hs.handle_reply(rbuf).map_err(ClientHsError::Hs)? {
            return Ok(Negotiated {
                version: done.version,
                codec: done.codec,
                max_frame: done.max_frame,
                flags: done.flags,
            });
        }
        let n = io.read_buf(rbuf).await.map_err(ClientHsError::Io)?;
        if n == 0 {
            return Err(ClientHsError::Hs(hs.eof_error(rbuf)));
        }
    }
}
