//! The hello / reply handshake (spec §2), client and server, sans-IO.
//!
//! ```text
//!  hello (client → server, 12 + codec_count bytes)
//!   | 'A' 'M' | version | codec_count | flags | reserved x3 | max_frame (u32 BE) | codec ids ... |
//!  reply (server → client, exactly 12 bytes)
//!   | 'A' 'M' | accept  | version     | codec | reserved x3 | max_frame (u32 BE) |
//! ```
//!
//! Server state machine ([`ServerHandshake`]):
//!
//! ```text
//!            12 bytes                 codec_count bytes
//!  Header ──────────────► Codecs ────────────────────────► Accept / Reject(reply)
//!    │  bad magic            (codec_count 1..=16)
//!    ├────────────► Reject(no reply)
//!    │  codec_count == 0
//!    ├────────────► Reject(reply)
//!    │  bad version / too many codecs
//!    └────────────► Drain ── codec_count bytes discarded ──► Reject(reply)
//! ```
//!
//! The server never needs more than 12 + 16 bytes buffered: the header is
//! parsed as soon as it is complete, an oversized codec list is drained as it
//! arrives, and a valid list is at most 16 bytes. Incomplete input is not an
//! error ([`ServerStep::NeedMore`]); the reference server has no handshake
//! timeout, the runtime should add one (§9 note 11).
//!
//! The client side ([`ClientHandshake`]) validates its codec list before
//! anything is written (§2.8), writes the hello, then checks the 12-byte reply
//! in the reference's order.

use bytes::{Buf, BufMut, BytesMut};

use super::frame::{Version, DEFAULT_MAX_FRAME};
use crate::codec::{CodecId, CodecKind, CodecRegistry};

/// Handshake magic, ASCII `AM`.
pub const MAGIC: [u8; 2] = *b"AM";
/// Length of the fixed part of the client hello.
pub const HELLO_HEADER_LEN: usize = 12;
/// Length of the server reply.
pub const REPLY_LEN: usize = 12;
/// Largest codec list a hello may carry.
pub const MAX_CODECS: usize = 16;
/// Most bytes the server handshake ever needs buffered at once.
pub const MAX_HELLO_LEN: usize = HELLO_HEADER_LEN + MAX_CODECS;

/// Why a handshake failed. Texts mirror the reference's errors (spec §8.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Magic is not `AM` (`ErrBadHandshakeMagic`).
    #[error("invalid handshake magic")]
    BadMagic,
    /// Server: the hello's version is not 2/3, or 3 with recovery disabled
    /// (`ErrUnsupportedFrameVersion`).
    #[error("unsupported frame version: {0}")]
    UnsupportedVersion(u8),
    /// Client: the reply's version differs from the hello's
    /// (`ErrUnsupportedFrameVersion{reply version}`).
    #[error("unsupported frame version: {got}")]
    VersionMismatch {
        /// Version byte the client sent in its hello.
        sent: u8,
        /// Version byte of the reply.
        got: u8,
    },
    /// More than 16 codecs (`ErrTooManyCodecs`).
    #[error("too many codecs: {0}")]
    TooManyCodecs(usize),
    /// No usable codec in common (`ErrNoCommonCodec`). Server: no overlap (or
    /// an empty list); client: the reply names a codec it did not offer.
    #[error("no common codec")]
    NoCommonCodec,
    /// Client: the reply's accept byte is 0 (`ErrHandshakeRejected`).
    #[error("handshake rejected")]
    Rejected,
    /// A codec id that is not registered locally (`ErrUnsupportedCodec`).
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(u8),
    /// Client: the configured codec list is empty (`ErrInvalidMessage`).
    #[error("codec list must be non-empty")]
    EmptyCodecList,
    /// Client: the configured codec list contains id 0 (`ErrInvalidMessage`).
    #[error("codec ID must be non-zero")]
    ZeroCodecId,
    /// The transport ended before the peer's handshake bytes were complete;
    /// `received` bytes of it had arrived (the reference reports Go's `EOF`
    /// or `unexpected EOF`).
    #[error("{}", if *received == 0 { "EOF" } else { "unexpected EOF" })]
    Eof {
        /// Bytes of the incomplete message that had arrived.
        received: usize,
    },
    /// The state machine already finished; it must not be fed again.
    #[error("handshake already finished")]
    Finished,
}

impl HandshakeError {
    /// True exactly for a v3 hello answered with version 2 (§2.6): the only
    /// failure after which a recovery client retries with a v2 hello on a new
    /// transport.
    pub fn is_v3_fallback(&self) -> bool {
        matches!(self, HandshakeError::VersionMismatch { sent: 3, got: 2 })
    }
}

/// Encodes a 12-byte reply.
/// amring extension: per-stream credit (hello byte 4 from the client, reply
/// byte 5 from the server; the Go reference writes 0 there and ignores both,
/// spec §9 note 27). Both ends set it: the connection uses per-stream credit.
/// Bits 1..=5 of the same byte carry the sender's receive window (see
/// [`credit_flags`]).
pub const FLAG_STREAM_CREDIT: u8 = 0x01;

/// Smallest receive window a credit byte can advertise (1 KiB).
pub const MIN_CREDIT_WINDOW: usize = 1 << 10;
/// Largest receive window a credit byte can advertise (1 GiB).
pub const MAX_CREDIT_WINDOW: usize = 1 << 30;

/// The credit byte advertising a receive window of at most `window` bytes:
/// [`FLAG_STREAM_CREDIT`] plus `log2(w / 1 KiB)` in bits 1..=5, where `w` is
/// `window` rounded down to a power of two within
/// [`MIN_CREDIT_WINDOW`]..=[`MAX_CREDIT_WINDOW`].
///
/// ```
/// use amring_proto::handshake::{credit_flags, credit_window};
/// assert_eq!(credit_window(credit_flags(4 << 20)), Some(4 << 20));
/// assert_eq!(credit_window(credit_flags(5000)), Some(4096));
/// assert_eq!(credit_window(0), None); // the reference's byte: no credit
/// ```
pub fn credit_flags(window: usize) -> u8 {
    let w = window.clamp(MIN_CREDIT_WINDOW, MAX_CREDIT_WINDOW);
    let e = (usize::BITS - 1 - w.leading_zeros()) - MIN_CREDIT_WINDOW.trailing_zeros();
    FLAG_STREAM_CREDIT | (e as u8) << 1
}

/// The receive window a credit byte advertises, or `None` when it does not
/// ask for credit (the reference's 0).
pub fn credit_window(flags: u8) -> Option<usize> {
    let e = u32::from((flags >> 1) & 0x1F);
    (flags & FLAG_STREAM_CREDIT != 0).then(|| (MIN_CREDIT_WINDOW << e).min(MAX_CREDIT_WINDOW))
}

fn reply_bytes(accept: u8, version: u8, codec: CodecId, max_frame: u32) -> [u8; REPLY_LEN] {
    let mut r = [0u8; REPLY_LEN];
    r[0..2].copy_from_slice(&MAGIC);
    r[2] = accept;
    r[3] = version;
    r[4] = codec;
    // r[5..8]: flags / reserved, always written as 0.
    r[8..12].copy_from_slice(&max_frame.to_be_bytes());
    r
}

/// The parsed 12-byte hello header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloHeader {
    /// Magic bytes (`AM` when valid).
    pub magic: [u8; 2],
    /// Requested protocol version byte.
    pub version: u8,
    /// Number of codec ids that follow.
    pub codec_count: u8,
    /// Flags byte (ignored).
    pub flags: u8,
    /// Reserved bytes (ignored).
    pub reserved: [u8; 3],
    /// The client's max_frame.
    pub max_frame: u32,
}

impl HelloHeader {
    /// Parses the first 12 bytes of `src`; `None` when fewer are available.
    pub fn parse(src: &[u8]) -> Option<HelloHeader> {
        let mut b = src.get(..HELLO_HEADER_LEN)?;
        let magic = [b.get_u8(), b.get_u8()];
        let version = b.get_u8();
        let codec_count = b.get_u8();
        let flags = b.get_u8();
        let reserved = [b.get_u8(), b.get_u8(), b.get_u8()];
        let max_frame = b.get_u32();
        Some(HelloHeader {
            magic,
            version,
            codec_count,
            flags,
            reserved,
            max_frame,
        })
    }

    /// Appends the 12 header bytes to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(HELLO_HEADER_LEN);
        out.put_slice(&self.magic);
        out.put_u8(self.version);
        out.put_u8(self.codec_count);
        out.put_u8(self.flags);
        out.put_slice(&self.reserved);
        out.put_u32(self.max_frame);
    }
}

/// The parsed 12-byte server reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Magic bytes (`AM` when valid).
    pub magic: [u8; 2],
    /// Accept byte: 0 rejected, anything else accepted.
    pub accept: u8,
    /// Version byte.
    pub version: u8,
    /// Selected codec id.
    pub codec: CodecId,
    /// Flags / reserved bytes 5..8 (ignored by the client).
    pub reserved: [u8; 3],
    /// Negotiated max_frame.
    pub max_frame: u32,
}

impl Reply {
    /// Parses the first 12 bytes of `src`; `None` when fewer are available.
    pub fn parse(src: &[u8]) -> Option<Reply> {
        let mut b = src.get(..REPLY_LEN)?;
        let magic = [b.get_u8(), b.get_u8()];
        let accept = b.get_u8();
        let version = b.get_u8();
        let codec = b.get_u8();
        let reserved = [b.get_u8(), b.get_u8(), b.get_u8()];
        let max_frame = b.get_u32();
        Some(Reply {
            magic,
            accept,
            version,
            codec,
            reserved,
            max_frame,
        })
    }

    /// The 12 wire bytes.
    pub fn to_bytes(&self) -> [u8; REPLY_LEN] {
        let mut r = reply_bytes(self.accept, self.version, self.codec, self.max_frame);
        r[0..2].copy_from_slice(&self.magic);
        r[5..8].copy_from_slice(&self.reserved);
        r
    }
}

// ---------------------------------------------------------------- server ----

/// Configuration of the server side of the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHandshakeConfig {
    /// Codecs the server supports (its own order is irrelevant, §2.5).
    pub codecs: CodecRegistry,
    /// Whether v3 (recovery) hellos are accepted.
    pub recovery: bool,
    /// The server's own payload limit (the Go server's is always `u32::MAX`).
    pub max_frame: u32,
    /// The server's amring credit byte ([`credit_flags`], 0: none). When the
    /// client's hello asks for credit too, the reply carries it in byte 5;
    /// otherwise byte 5 is 0 (the reference's reply).
    pub flags: u8,
}

impl Default for ServerHandshakeConfig {
    /// Both codecs, no recovery, no frame limit: the reference `NewServer()`.
    fn default() -> Self {
        ServerHandshakeConfig {
            codecs: CodecRegistry::default(),
            recovery: false,
            max_frame: DEFAULT_MAX_FRAME,
            flags: 0,
        }
    }
}

/// Result of one [`ServerHandshake::handle`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// The hello is incomplete; call again when more bytes have arrived.
    NeedMore,
    /// Hello accepted: write `reply`; v2 is live, v3 continues with the attach exchange.
    Accept {
        /// The 12 reply bytes to write.
        reply: [u8; REPLY_LEN],
        /// Negotiated protocol version (the client's).
        version: Version,
        /// Selected codec.
        codec: CodecKind,
        /// Negotiated max_frame (§2.7).
        max_frame: u32,
        /// The client's credit byte when both ends asked for credit (0 with a
        /// reference client): it carries the client's receive window.
        flags: u8,
    },
    /// Hello rejected: write `reply` if any, then close.
    Reject {
        /// Reply to write before closing; `None` = close without writing (bad magic).
        reply: Option<[u8; REPLY_LEN]>,
        /// Why.
        error: HandshakeError,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    /// Waiting for the 12-byte header (nothing consumed yet).
    Header,
    /// Header consumed; waiting for `count` (1..=16) codec bytes.
    Codecs { header: HelloHeader },
    /// Header consumed; discarding `remaining` codec bytes, then rejecting.
    Drain {
        remaining: usize,
        reply_version: u8,
        error: RejectReason,
    },
    /// A terminal step was returned.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RejectReason {
    Version(u8),
    TooMany(usize),
}

impl RejectReason {
    fn into_error(self) -> HandshakeError {
        match self {
            RejectReason::Version(v) => HandshakeError::UnsupportedVersion(v),
            RejectReason::TooMany(n) => HandshakeError::TooManyCodecs(n),
        }
    }
}

/// Server side of the handshake. Feed it the connection's read buffer until
/// it returns something other than [`ServerStep::NeedMore`].
#[derive(Clone, Debug)]
pub struct ServerHandshake {
    cfg: ServerHandshakeConfig,
    state: ServerState,
}

impl ServerHandshake {
    /// A fresh server handshake.
    pub fn new(cfg: ServerHandshakeConfig) -> Self {
        ServerHandshake {
            cfg,
            state: ServerState::Header,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerHandshakeConfig {
        &self.cfg
    }

    /// Bytes that must be in the read buffer before the next call can make
    /// progress (never more than [`MAX_HELLO_LEN`]; 0 once finished).
    pub fn needed(&self, buf: &BytesMut) -> usize {
        match self.state {
            ServerState::Header => HELLO_HEADER_LEN.saturating_sub(buf.len()),
            ServerState::Codecs { header } => usize::from(header.codec_count).saturating_sub(buf.len()),
            ServerState::Drain { remaining, .. } => remaining.saturating_sub(buf.len()),
            ServerState::Done => 0,
        }
    }

    /// Advances the handshake with the bytes at the front of `buf`.
    ///
    /// Consumes exactly the hello's bytes (header, then the codec list as it
    /// is processed); bytes pipelined after the hello (e.g. the v3 attach
    /// request) stay in `buf`. On bad magic nothing is consumed. After a
    /// terminal step, further calls return `Reject { reply: None, error: Finished }`.
    pub fn handle(&mut self, buf: &mut BytesMut) -> ServerStep {
        loop {
            match self.state {
                ServerState::Header => {
                    // 1. Read exactly 12 bytes.
                    let Some(h) = HelloHeader::parse(buf) else {
                        return ServerStep::NeedMore;
                    };
                    // 2. Magic ≠ "AM" → write nothing, close.
                    if h.magic != MAGIC {
                        return self.finish_reject(None, HandshakeError::BadMagic);
                    }
                    buf.advance(HELLO_HEADER_LEN);
                    let count = usize::from(h.codec_count);
                    let own_version = if self.cfg.recovery { 3 } else { 2 };
                    // 3. Version ∉ {2,3}, or 3 with recovery disabled → drain the
                    //    codec bytes, reply accept=0 with the *server's* version.
                    let version_ok = match Version::from_u8(h.version) {
                        Some(Version::V2) => true,
                        Some(Version::V3) => self.cfg.recovery,
                        None => false,
                    };
                    if !version_ok {
                        self.state = ServerState::Drain {
                            remaining: count,
                            reply_version: own_version,
                            error: RejectReason::Version(h.version),
                        };
                        continue;
                    }
                    // 4. codec_count == 0 → reply accept=0 with the request version at once.
                    if count == 0 {
                        let reply = reply_bytes(0, h.version, 0, 0);
                        return self.finish_reject(Some(reply), HandshakeError::NoCommonCodec);
                    }
                    // 5. codec_count > 16 → drain the codec bytes, reply accept=0.
                    //    Exactly 16 is accepted.
                    if count > MAX_CODECS {
                        self.state = ServerState::Drain {
                            remaining: count,
                            reply_version: h.version,
                            error: RejectReason::TooMany(count),
                        };
                        continue;
                    }
                    self.state = ServerState::Codecs { header: h };
                }
                ServerState::Codecs { header } => {
                    // 6. Read the codec list and select (§2.5: first id of the
                    //    client's list that is supported here).
                    let count = usize::from(header.codec_count);
                    if buf.len() < count {
                        return ServerStep::NeedMore;
                    }
                    let list = buf.split_to(count);
                    let Some(codec) = self.cfg.codecs.select(&list) else {
                        let reply = reply_bytes(0, header.version, 0, 0);
                        return self.finish_reject(Some(reply), HandshakeError::NoCommonCodec);
                    };
                    // 7. Reply accept=1 with the request version, the codec and the
                    //    negotiated max_frame (§2.7: 0 if the client sent 0, else
                    //    the minimum). Flags and reserved bytes are ignored.
                    let max_frame = if header.max_frame == 0 {
                        0
                    } else {
                        header.max_frame.min(self.cfg.max_frame)
                    };
                    let Some(version) = Version::from_u8(header.version) else {
                        // Unreachable: step 3 admitted only 2 and 3.
                        return self.finish_reject(None, HandshakeError::UnsupportedVersion(header.version));
                    };
                    self.state = ServerState::Done;
                    // 8. v2: live; v3: the attach exchange follows (caller).
                    let mut reply = reply_bytes(1, header.version, codec.id(), max_frame);
                    let flags = if header.flags & self.cfg.flags & FLAG_STREAM_CREDIT != 0 {
                        reply[5] = self.cfg.flags;
                        header.flags
                    } else {
                        0
                    };
                    return ServerStep::Accept {
                        reply,
                        version,
                        codec,
                        max_frame,
                        flags,
                    };
                }
                ServerState::Drain {
                    remaining,
                    reply_version,
                    error,
                } => {
                    let n = remaining.min(buf.len());
                    buf.advance(n);
                    let remaining = remaining - n;
                    if remaining > 0 {
                        self.state = ServerState::Drain {
                            remaining,
                            reply_version,
                            error,
                        };
                        return ServerStep::NeedMore;
                    }
                    let reply = reply_bytes(0, reply_version, 0, 0);
                    return self.finish_reject(Some(reply), error.into_error());
                }
                ServerState::Done => {
                    return ServerStep::Reject {
                        reply: None,
                        error: HandshakeError::Finished,
                    }
                }
            }
        }
    }

    fn finish_reject(&mut self, reply: Option<[u8; REPLY_LEN]>, error: HandshakeError) -> ServerStep {
        self.state = ServerState::Done;
        ServerStep::Reject { reply, error }
    }
}

// ---------------------------------------------------------------- client ----

/// Configuration of the client side of the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHandshakeConfig {
    /// Version to request: V3 when recovery is enabled.
    pub version: Version,
    /// Codec ids in order of preference (1..=16 ids, all registered locally).
    pub codecs: Vec<CodecId>,
    /// Largest payload the client accepts (`u32::MAX` = no limit).
    pub max_frame: u32,
    /// The client's amring credit byte for hello byte 4 ([`credit_flags`];
    /// 0: the reference's hello).
    pub flags: u8,
}

impl Default for ClientHandshakeConfig {
    /// The reference `NewClient()`: v2, compact then map, no limit.
    fn default() -> Self {
        ClientHandshakeConfig {
            version: Version::V2,
            codecs: vec![crate::codec::COMPACT_ID, crate::codec::MAP_ID],
            max_frame: DEFAULT_MAX_FRAME,
            flags: 0,
        }
    }
}

impl ClientHandshakeConfig {
    /// The same configuration requesting v2: what a recovery client retries
    /// with, on a new transport, after [`HandshakeError::is_v3_fallback`].
    pub fn fallback_v2(&self) -> Self {
        ClientHandshakeConfig {
            version: Version::V2,
            ..self.clone()
        }
    }
}

/// Outcome of a successful client handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientDone {
    /// Negotiated version (equals the requested one).
    pub version: Version,
    /// Codec selected by the server.
    pub codec: CodecKind,
    /// max_frame carried by the reply, adopted as is (§2.7).
    pub max_frame: u32,
    /// The server's credit byte (reply byte 5) when both ends asked for
    /// credit, else 0 (a reference server replies 0).
    pub flags: u8,
}

/// Client side of the handshake.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    cfg: ClientHandshakeConfig,
    local: CodecRegistry,
    done: bool,
}

impl ClientHandshake {
    /// Validates the codec list (§2.8, in the reference's order): empty,
    /// more than 16, an id 0, an id not registered in `local`.
    pub fn new(cfg: ClientHandshakeConfig, local: &CodecRegistry) -> Result<Self, HandshakeError> {
        if cfg.codecs.is_empty() {
            return Err(HandshakeError::EmptyCodecList);
        }
        if cfg.codecs.len() > MAX_CODECS {
            return Err(HandshakeError::TooManyCodecs(cfg.codecs.len()));
        }
        for &id in &cfg.codecs {
            if id == 0 {
                return Err(HandshakeError::ZeroCodecId);
            }
            if !local.supports(id) {
                return Err(HandshakeError::UnsupportedCodec(id));
            }
        }
        Ok(ClientHandshake {
            cfg,
            local: local.clone(),
            done: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientHandshakeConfig {
        &self.cfg
    }

    /// Length of the hello [`ClientHandshake::write_hello`] writes.
    pub fn hello_len(&self) -> usize {
        HELLO_HEADER_LEN + self.cfg.codecs.len()
    }

    /// Appends the hello (12-byte header + codec list) to `out`.
    pub fn write_hello(&self, out: &mut BytesMut) {
        HelloHeader {
            magic: MAGIC,
            version: self.cfg.version.as_u8(),
            // The list length was checked to be ≤ 16 in `new`.
            codec_count: self.cfg.codecs.len() as u8,
            flags: self.cfg.flags,
            reserved: [0; 3],
            max_frame: self.cfg.max_frame,
        }
        .write(out);
        out.put_slice(&self.cfg.codecs);
    }

    /// Checks the server's reply (§2.8, in order). Consumes exactly 12 bytes
    /// when they are available; `Ok(None)` when fewer are buffered. Bytes after
    /// the reply stay in `buf`.
    pub fn handle_reply(&mut self, buf: &mut BytesMut) -> Result<Option<ClientDone>, HandshakeError> {
        if self.done {
            return Err(HandshakeError::Finished);
        }
        let Some(r) = Reply::parse(buf) else {
            return Ok(None);
        };
        buf.advance(REPLY_LEN);
        self.done = true;
        // magic ≠ "AM" → ErrBadHandshakeMagic
        if r.magic != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        // reply version ≠ hello version → ErrUnsupportedFrameVersion (before accept)
        let sent = self.cfg.version.as_u8();
        if r.version != sent {
            return Err(HandshakeError::VersionMismatch { sent, got: r.version });
        }
        // accept = 0 → ErrHandshakeRejected (any non-zero value is accept)
        if r.accept == 0 {
            return Err(HandshakeError::Rejected);
        }
        // selected codec not offered (incl. 0) → ErrNoCommonCodec
        if !self.cfg.codecs.contains(&r.codec) {
            return Err(HandshakeError::NoCommonCodec);
        }
        // selected codec not registered → ErrUnsupportedCodec
        let Some(codec) = self.local.get(r.codec) else {
            return Err(HandshakeError::UnsupportedCodec(r.codec));
        };
        // The client adopts the reply's max_frame without comparing it (§2.7).
        Ok(Some(ClientDone {
            version: self.cfg.version,
            codec,
            max_frame: r.max_frame,
            flags: if r.reserved[0] & self.cfg.flags & FLAG_STREAM_CREDIT != 0 {
                r.reserved[0]
            } else {
                0
            },
        }))
    }

    /// The error to report when the transport ends while waiting for the
    /// reply, with `buf` holding what had arrived.
    pub fn eof_error(&self, buf: &BytesMut) -> HandshakeError {
        HandshakeError::Eof {
            received: buf.len().min(REPLY_LEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(recovery: bool) -> ServerHandshake {
        ServerHandshake::new(ServerHandshakeConfig {
            recovery,
            ..Default::default()
        })
    }

    #[test]
    fn default_hello_accepted_and_pipelined_bytes_kept() {
        let mut buf = BytesMut::from(&b"AM\x02\x02\0\0\0\0\xff\xff\xff\xff\x01\x02xyz"[..]);
        let step = server(false).handle(&mut buf);
        assert_eq!(
            step,
            ServerStep::Accept {
                reply: *b"AM\x01\x02\x01\0\0\0\xff\xff\xff\xff",
                version: Version::V2,
                codec: CodecKind::Compact,
                max_frame: u32::MAX,
                flags: 0,
            }
        );
        assert_eq!(&buf[..], b"xyz");
    }

    #[test]
    fn stream_credit_needs_both_ends_and_each_learns_the_others_window() {
        let reg = CodecRegistry::default();
        let (c, s) = (credit_flags(8 << 10), credit_flags(4 << 20));
        // (client byte, server byte, server learns, reply byte 5 / client learns)
        for (client_flags, server_flags, server_sees, client_sees) in [(c, s, c, s), (c, 0, 0, 0), (0, s, 0, 0)] {
            let mut client = ClientHandshake::new(
                ClientHandshakeConfig {
                    flags: client_flags,
                    ..Default::default()
                },
                &reg,
            )
            .unwrap();
            let mut hello = BytesMut::new();
            client.write_hello(&mut hello);
            assert_eq!(hello[4], client_flags, "hello byte 4");
            let mut srv = ServerHandshake::new(ServerHandshakeConfig {
                flags: server_flags,
                ..Default::default()
            });
            let ServerStep::Accept { reply, flags, .. } = srv.handle(&mut hello) else {
                panic!("accepted")
            };
            assert_eq!(
                (flags, reply[5]),
                (server_sees, client_sees),
                "server side and reply byte 5"
            );
            let done = client.handle_reply(&mut BytesMut::from(&reply[..])).unwrap().unwrap();
            assert_eq!(done.flags, client_sees, "client side");
        }
        assert_eq!(credit_window(c), Some(8 << 10));
        assert_eq!(credit_window(s), Some(4 << 20));
    }

    #[test]
    fn credit_windows_round_down_and_clamp() {
        assert_eq!(credit_window(credit_flags(0)), Some(MIN_CREDIT_WINDOW));
        assert_eq!(credit_window(credit_flags(1023)), Some(1024));
        assert_eq!(credit_window(credit_flags(2047)), Some(1024));
        assert_eq!(credit_window(credit_flags(usize::MAX)), Some(MAX_CREDIT_WINDOW));
        assert_eq!(credit_window(0xFF), Some(MAX_CREDIT_WINDOW));
        assert_eq!(credit_window(0xFE), None);
    }

    #[test]
    fn oversized_list_drained_incrementally() {
        let mut s = server(false);
        let mut buf = BytesMut::from(&b"AM\x02\xff\0\0\0\0\0\0\0\x10"[..]);
        assert_eq!(s.handle(&mut buf), ServerStep::NeedMore);
        assert!(buf.is_empty());
        assert_eq!(s.needed(&buf), 255);
        for _ in 0..254 {
            buf.put_u8(1);
            assert_eq!(s.handle(&mut buf), ServerStep::NeedMore);
            assert!(buf.is_empty());
        }
        buf.put_slice(&[1, 9]);
        match s.handle(&mut buf) {
            ServerStep::Reject { reply, error } => {
                assert_eq!(reply, Some(*b"AM\x00\x02\x00\0\0\0\0\0\0\0"));
                assert_eq!(error, HandshakeError::TooManyCodecs(255));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[..], &[9]);
        assert!(matches!(
            s.handle(&mut buf),
            ServerStep::Reject {
                reply: None,
                error: HandshakeError::Finished
            }
        ));
    }

    #[test]
    fn client_fallback_is_only_v3_answered_v2() {
        let reg = CodecRegistry::default();
        let cfg = ClientHandshakeConfig {
            version: Version::V3,
            ..Default::default()
        };
        let mut c = ClientHandshake::new(cfg.clone(), &reg).unwrap();
        let mut buf = BytesMut::from(&b"AM\x00\x02\0\0\0\0\0\0\0\0"[..]);
        let e = c.handle_reply(&mut buf).unwrap_err();
        assert!(e.is_v3_fallback());
        assert_eq!(e.to_string(), "unsupported frame version: 2");
        let mut c = ClientHandshake::new(cfg, &reg).unwrap();
        let mut buf = BytesMut::from(&b"AM\x00\x03\0\0\0\0\0\0\0\0"[..]);
        let e = c.handle_reply(&mut buf).unwrap_err();
        assert_eq!(e, HandshakeError::Rejected);
        assert!(!e.is_v3_fallback());
        let v2 = HandshakeError::VersionMismatch { sent: 2, got: 3 };
        assert!(!v2.is_v3_fallback());
    }

    #[test]
    fn eof_texts() {
        assert_eq!(HandshakeError::Eof { received: 0 }.to_string(), "EOF");
        assert_eq!(HandshakeError::Eof { received: 6 }.to_string(), "unexpected EOF");
    }
}
