//! The connection layer: per-connection state and dispatch, the stream
//! handles, the handler table. Below the runtime shell (which drives it) and
//! the public API (which wraps it); above `amring-proto` and the base
//! modules. No socket here, and no import from `runtime`, `server` or
//! `client`.
//!
//! Files, bottom to top (each imports only from files above it in this list
//! or from lower layers): `limits`, `state`, `credit` / `holdings` / `send`,
//! `info`, `stream`, `context`, `handler`, `bench`.

#[cfg(feature = "bench-internals")]
pub(crate) mod bench;
pub(crate) mod context;
mod credit;
pub(crate) mod handler;
mod holdings;
pub(crate) mod info;
pub(crate) mod limits;
pub(crate) mod post;
pub(crate) mod registered;
pub(crate) mod send;
pub(crate) mod state;
pub(crate) mod stream;

#[cfg(test)]
mod tests;
