//! The sans-IO core of the adaptivemsg protocol, as amring speaks it: the
//! handshake, attach, frames, control frames, the v3 recovery state (sequence
//! numbers, cumulative ACKs, heartbeats, the bounded replay ring, sessions)
//! and the MessagePack codecs (compact, id 1; map, id 2), byte for byte
//! compatible with the Go reference.
//!
//! No sockets, clocks or tasks: bytes and `now` go in; bytes, events and
//! deadlines come out. This crate has no runtime dependency (see its
//! `Cargo.toml`), so any executor can drive it; `amring` drives it from
//! glommio. The shape is the one of `quinn-proto` under `quinn`.
//!
//! ```
//! use amring_proto::{ClientHandshake, ClientHandshakeConfig, ServerHandshake, ServerHandshakeConfig, ServerStep};
//! use amring_proto::codec::CodecRegistry;
//! use bytes::BytesMut;
//!
//! // A client hello, as bytes, answered by a server: no socket involved.
//! let reg = CodecRegistry::default();
//! let mut client = ClientHandshake::new(ClientHandshakeConfig::default(), &reg).unwrap();
//! let mut wire = BytesMut::new();
//! client.write_hello(&mut wire);
//! let mut server = ServerHandshake::new(ServerHandshakeConfig::default());
//! let ServerStep::Accept { reply, codec, .. } = server.handle(&mut wire) else { panic!() };
//! let done = client.handle_reply(&mut BytesMut::from(&reply[..])).unwrap().unwrap();
//! assert_eq!(done.codec, codec);
//! ```

pub mod attach;
pub mod codec;
pub mod conn;
pub mod control;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod recovery;
pub mod replay;
pub mod session;

pub use attach::{
    normalize_server_options, AttachError, AttachMode, AttachRequest, AttachResponse, AttachStatus, RecoveryOptions,
    ATTACH_REQUEST_LEN, ATTACH_RESPONSE_LEN,
};
pub use conn::{ConnConfig, Connection, Delivered, Event, SendError, TransmitKinds, TransportStats};
pub use control::Control;
pub use error::{ConnError, ControlError, FrameError};
pub use frame::{Frame, FrameDecoder, FrameEncoder, FrameHeader, Version, CONTROL_STREAM_ID};
pub use handshake::{
    ClientDone, ClientHandshake, ClientHandshakeConfig, HandshakeError, ServerHandshake, ServerHandshakeConfig,
    ServerStep,
};
pub use recovery::{LinkState, RecoveryDebug, RecoveryParams, Role};
pub use session::{ConnectionId, ResumeReject, ResumeSecret, SessionTable};

/// The code blocks of this crate's README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
