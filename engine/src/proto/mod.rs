//! The sans-IO protocol core: handshake, attach, frames, control frames and
//! the v3 recovery state. No sockets, clocks or tasks: bytes and `now` go in,
//! bytes, events and deadlines come out.

pub mod attach;
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
pub use conn::{
    ConnConfig, ConnError, Connection, Delivered, Event, RecoveryParams, Role, SendError, TransmitKinds, TransportStats,
};
pub use control::Control;
pub use error::{ControlError, FrameError};
pub use frame::{Frame, FrameDecoder, FrameEncoder, FrameHeader, Version, CONTROL_STREAM_ID};
pub use handshake::{
    ClientDone, ClientHandshake, ClientHandshakeConfig, HandshakeError, ServerHandshake, ServerHandshakeConfig,
    ServerStep,
};
pub use recovery::{LinkState, RecoveryDebug};
pub use session::{ConnectionId, ResumeReject, ResumeSecret, SessionTable};
