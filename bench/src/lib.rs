//! Shared fixtures for the criterion benches: the echo message of the
//! end-to-end benches, the Go peer's echo pair and the client executor
//! that runs timed batches.

use std::sync::mpsc;
use std::time::Duration;

use amring::codec::Message;
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// The end-to-end echo message: the server answers `n + 1`.
#[derive(Serialize, Deserialize)]
pub struct Echo {
    /// Request counter.
    pub n: u64,
}

impl Message for Echo {
    const WIRE_NAME: &'static str = "am.bench.Echo";
}

/// Busy-poll time of the bench servers' cores before they park:
/// `AMRING_BENCH_SPIN_US`, default 50 µs (the Go runtime also spins before it
/// parks; 0 = park at once, the library default, which costs a wake-up per
/// 1×1 round trip). Applied alike to amring and to the raw glommio floor.
pub fn server_spin() -> Duration {
    let us = std::env::var("AMRING_BENCH_SPIN_US").ok().and_then(|v| v.parse().ok());
    Duration::from_micros(us.unwrap_or(50))
}

/// The echo server of the end-to-end benches: one shard pinned on core 0,
/// busy-polling [`server_spin`] before it parks, answering [`Echo`] with
/// `n + 1`.
pub fn echo_server() -> amring::ServerHandle {
    amring::Server::builder()
        .shards(amring::Shards::Cores(vec![0]))
        .io_memory(512 * 1024)
        .spin_before_park(server_spin())
        .handler(|_ctx: amring::StreamContext, e: Echo| async move { Ok::<_, String>(Echo { n: e.n + 1 }) })
        .serve("127.0.0.1:0")
        .expect("bench echo server")
}

/// Core of the client executors (the server side runs on core 0).
pub const CLIENT_CORE: usize = 1;

/// Starts a client executor pinned to [`CLIENT_CORE`]. `setup` receives the
/// number of iterations to run per request and sends back the time they took
/// (criterion's `iter_custom`); the executor ends when the sender is dropped.
pub fn client_loop<S, Fut>(setup: S) -> (mpsc::Sender<u64>, mpsc::Receiver<Duration>)
where
    S: FnOnce(mpsc::Receiver<u64>, mpsc::Sender<Duration>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (itx, irx) = mpsc::channel::<u64>();
    let (dtx, drx) = mpsc::channel::<Duration>();
    LocalExecutorBuilder::new(Placement::Fixed(CLIENT_CORE))
        .io_memory(512 * 1024)
        .spawn(move || setup(irx, dtx))
        .expect("client executor");
    (itx, drx)
}

/// The Go peer's `am.capmsg.EchoRequest{Text}` → `am.capmsg.EchoReply{Text}`,
/// the loadgen workload (mux and vs_go benches).
pub use loadgen::msg::{EchoReply, EchoRequest};
