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

pub mod codec;
pub mod debug;
pub mod proto;
