//! # amring
//!
//! A thread-per-core, shared-nothing message engine on glommio (io_uring)
//! speaking the adaptivemsg wire protocol, byte-for-byte compatible with the
//! Go reference (`github.com/adaptivemsg/adaptivemsg-go`).
//!
//! ```text
//!  socket ──► runtime shell (glommio, one per core) ──► proto (sans-IO) ──► dispatch ──► handler / stream inbox
//!    ▲                                                                                        │
//!    └──────── one batched write per wake ◄── proto transmit ◄── codec encode ◄───────────────┘
//! ```
//!
//! * [`proto`]: sans-IO core (handshake, frames, control frames, recovery).
//! * [`codec`]: the MessagePack compact and map codecs and the [`codec::Message`] trait.
//! * [`debug`]: counters and failure codes.
//! * [`server`] / [`client`] / [`stream`]: the public API; [`runtime`]: the glommio shell.

pub mod addr;
pub mod client;
pub mod debug;
pub mod dispatch;
pub mod error;
mod panic;
pub mod runtime;
pub mod server;
pub mod stream;

/// The sans-IO core, under its old path inside the engine.
pub(crate) use amring_proto as proto;
/// The codecs and the [`codec::Message`] trait (from [`amring_proto`]).
pub use amring_proto::codec;
pub use amring_proto::message;
pub use codec::Reply;

pub use addr::{Addr, BoundAddr};
pub use client::{once, once_with_timeout, Client, ClientBuilder, ClientRecoveryOptions, Connection};
pub use dispatch::{Limits, CONN_WINDOW, MESSAGE_OVERHEAD, STREAM_WINDOW};
pub use error::Error;
pub use proto::attach::RecoveryOptions;
pub use runtime::shard::ShardStats;
pub use server::{
    Server, ServerBuilder, ServerHandle, Shards, DEFAULT_MAX_DETACHED_SESSIONS, DEFAULT_MAX_HELD_BYTES,
    DEFAULT_SERVER_MAX_FRAME,
};
pub use stream::{ConnDebugState, ConnInfo, RawMessage, Stream, StreamContext, StreamDebugState};

/// The code blocks of the repository's README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
