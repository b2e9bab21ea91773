//! The glommio shell: executors (shards), listeners, the connection driver,
//! handshakes on sockets, v3 resume across cores, dialing. It drives the
//! connection layer (`crate::conn`) and never imports the public API
//! (`server`, `client`); the executor primitives the layers below it need
//! (`spawn`, `sleep`) are in `crate::exec`.

pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod handshake;
pub(crate) mod io;
pub(crate) mod recovery;
pub(crate) mod shard;
pub(crate) mod shared;
pub(crate) mod socket;
pub(crate) mod uring;
