//! # amring
//!
//! A thread-per-core, shared-nothing message engine on glommio (io_uring)
//! speaking the adaptivemsg wire protocol, byte-for-byte compatible with the
//! Go reference (`github.com/adaptivemsg/adaptivemsg-go`).
//!
//! ```text
//!  socket ──► runtime shell (glommio, one per core) ──► amring-proto (sans-IO) ──► conn (dispatch) ──► handler / stream inbox
//!    ▲                                                                                                    │
//!    └──────── one batched write per wake ◄── proto transmit ◄── codec encode ◄───────────────────────────┘
//! ```
//!
//! The layers, bottom to top; each imports only from the layers below it
//! (`engine/tests/layers.rs` checks this on every test run):
//!
//! 1. [`amring_proto`]: the sans-IO core (handshake, frames, recovery, codecs),
//!    its own crate with no runtime dependency;
//! 2. base: `error`, `addr`, [`debug`], `panic`, `exec` (the executor
//!    primitives: spawn, sleep);
//! 3. `conn`: connection state and dispatch, stream handles, the handler table;
//! 4. `runtime`: the glommio shell (shards, listeners, the driver, resume, dialing);
//! 5. the public API: `server`, `client`, `remote` (the any-thread client).
//!
//! Everything a user names is re-exported here at the root; [`codec`] and
//! [`debug`] are the only public modules.
//!
//! ```no_run
//! use amring::{codec::Message, Client, Server, StreamContext};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Ping { n: u32 }
//! # impl Message for Ping { const WIRE_NAME: &'static str = "am.x.Ping"; }
//! let server = Server::builder()
//!     .handler(|_ctx: StreamContext, p: Ping| async move { Ok::<_, String>(Ping { n: p.n + 1 }) })
//!     .serve("127.0.0.1:7000")?;
//! // On any glommio executor:
//! # async fn call() -> Result<(), amring::Error> {
//! let conn = Client::builder().connect("127.0.0.1:7000").await?;
//! let reply: Ping = conn.send_recv(&Ping { n: 1 }).await?;
//! # Ok(()) }
//! # server.shutdown(std::time::Duration::ZERO);
//! # Ok::<(), amring::Error>(())
//! ```

mod addr;
mod client;
mod conn;
pub mod debug;
mod error;
mod exec;
mod panic;
mod remote;
mod runtime;
mod server;

/// The `#[amring::message]` attribute: derives, Go-exact field encodings and
/// the wire name for a struct, e.g. the code the reference's `amgen-go` emits
/// (see [`amring_macros`]).
///
/// # Examples
///
/// ```
/// use amring::codec::{CodecKind, Message, Profile};
///
/// #[amring::message(package = "hello")]
/// pub struct HelloRequest {
///     pub who: String,
///     pub avatar: Vec<u8>, // Go []byte: bin
/// }
///
/// assert_eq!(HelloRequest::WIRE_NAME, "am.hello.HelloRequest");
/// let req = HelloRequest { who: "go".into(), avatar: vec![1, 2] };
/// let mut buf = bytes::BytesMut::new();
/// CodecKind::Map.encode(&req, Profile::Interop, &mut buf).unwrap();
/// let env = CodecKind::Map.decode_envelope(&buf).unwrap();
/// assert_eq!(CodecKind::Map.decode_body::<HelloRequest>(&env).unwrap(), req);
/// ```
pub use amring_macros::message;
/// The `#[amring::message_handler]` attribute: adaptivemsg-rust's spelling
/// of a handler, `impl MessageHandler for Request { async fn handle(..) }`,
/// registered at link time for every builder (see [`MessageHandler`]).
///
/// Writes `Box<dyn Message>` in the impl as `Box<dyn
/// amring::codec::AnyMessage>`; `crate = "path"` names amring when
/// `Cargo.toml` cannot tell.
pub use amring_macros::message_handler;
/// The sans-IO core, under its path inside the engine.
pub(crate) use amring_proto as proto;
/// The codecs and the [`codec::Message`] trait (from [`amring_proto`]).
pub use amring_proto::codec;
/// `impl Message` with a wire name for a type that derives serde itself:
/// `amring::impl_message!(EchoRequest, package = "capmsg")` (amring-proto's
/// `message!`, re-exported under this name because `amring::message` is the
/// attribute).
pub use amring_proto::message as impl_message;
pub use codec::{Message, Reply};
pub use conn::registered::{MessageHandler, Result};

pub use addr::{Addr, BoundAddr};
pub use client::{once, once_with_timeout, Client, ClientBuilder, ClientRecoveryOptions, Connection};
pub use conn::context::StreamContext;
pub use conn::info::{ConnDebugState, ConnInfo, StreamDebugState};
pub use conn::limits::{Limits, CONN_WINDOW, MESSAGE_OVERHEAD, STREAM_WINDOW};
pub use conn::post::RemoteStream;
pub use conn::stream::{MessageTypes, RawMessage, Received, Stream};
pub use error::Error;
pub use exec::{IO_MEMORY, RING_DEPTH};
pub use proto::attach::RecoveryOptions;
pub use remote::{ClientThread, SharedConnection};
pub use runtime::config::{Shards, DEFAULT_MAX_DETACHED_SESSIONS, DEFAULT_MAX_HELD_BYTES, DEFAULT_SERVER_MAX_FRAME};
pub use runtime::shared::{ShardStats, WakePathInfo, Wakeups};
pub use server::{Server, ServerBuilder, ServerHandle};

/// What the `#[amring::message]` expansion names: not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::conn::registered::HandlerRegistration;
    pub use inventory;
    pub use serde;
    pub use serde_bytes;
}

/// Internals for the criterion benches (`bench/`), behind the
/// `bench-internals` feature: not part of the API, no stability promise.
#[cfg(feature = "bench-internals")]
pub mod bench_internals {
    pub use crate::conn::bench::bench_router;
}

/// The code blocks of the repository's README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The code blocks of `docs/porting.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/porting.md")]
pub struct PortingDoctests;
