//! Limits, backpressure and graceful shutdown.
//!
//! 1. Byte limits (`Limits`). amring never drops a message it accepted: at a limit it pushes
//!    back. Here the server's handler is stuck (it waits on a gate) and its connection may hold
//!    only 64 KiB of requests, so it stops reading its socket; the kernel buffers fill, and
//!    then the client's own `max_outbound_bytes` (256 KiB) fills. From then on
//!    `try_send` fails at once with `Error::Full`, `send_timeout` with `Error::SendTimeout`
//!    (nothing queued in either case), and `send` waits until the server reads again. Once
//!    the gate opens every request accepted before gets its reply.
//! 2. `ServerBuilder::max_connections(1)`: a second connection is closed on accept (the
//!    client's `connect` fails) and counted in `ShardStats::rejected_limit`.
//! 3. Graceful shutdown: `handle.shutdown(deadline)` stops accepting and reading, lets an
//!    in-flight handler finish and its reply go out, then closes the connections;
//!    `handle.join()` returns when every shard is done, well before the deadline here.
//!
//! ```sh
//! cargo run -p amring --example limits_shutdown
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use amring::codec::{Message, OkReply};
use amring::{Client, Error, Limits, Server, Shards, StreamContext};
use futures_lite::future;
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// Bytes the handler will not look at until the gate opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Blob {
    /// The payload (`serde_bytes`: a MessagePack bin, not an array of numbers).
    #[serde(with = "serde_bytes")]
    pub(crate) data: Vec<u8>,
}
impl Message for Blob {
    const WIRE_NAME: &'static str = "am.example.Blob";
}

/// A request whose handler takes `ms` milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Work {
    /// Handler time.
    pub(crate) ms: u64,
    /// Echoed in the reply.
    pub(crate) n: u32,
}
impl Message for Work {
    const WIRE_NAME: &'static str = "am.example.Work";
}

/// The reply to [`Work`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Done {
    /// The request's `n`.
    pub(crate) n: u32,
}
impl Message for Done {
    const WIRE_NAME: &'static str = "am.example.Done";
}

/// The size of each [`Blob`].
const BLOB: usize = 64 << 10;

/// What the byte-limit part saw.
#[derive(Debug)]
pub(crate) struct BackpressureReport {
    /// `try_send`s that succeeded before the first `Error::Full`.
    pub(crate) accepted: usize,
    /// The first `try_send` error (expected `Error::Full`).
    pub(crate) try_send: Option<Error>,
    /// `send_timeout` while still full (expected `Err(Error::SendTimeout)`).
    pub(crate) send_timeout: Result<(), Error>,
    /// The waiting `send`, which completes once the gate opens.
    pub(crate) waiting_send: Result<(), Error>,
    /// The waiting `send` had not completed 20 ms after it started (before the gate opened).
    pub(crate) waited_for_room: bool,
    /// Replies received after the gate opened (expected: `accepted` + 1 for the waiting send).
    pub(crate) replies: usize,
    /// The client connection's `send_waits` counter.
    pub(crate) send_waits: u64,
}

/// What the connection-limit and shutdown part saw.
#[derive(Debug)]
pub(crate) struct ShutdownReport {
    /// The second connection's `connect` (expected: an error).
    pub(crate) second_connect: Result<(), Error>,
    /// Connections the server closed on accept.
    pub(crate) rejected_limit: u64,
    /// The reply to the request in flight at shutdown.
    pub(crate) in_flight_reply: Result<Done, Error>,
    /// The client saw its connection closed after that reply.
    pub(crate) closed_after: bool,
    /// From `shutdown` to the end of `join`.
    pub(crate) join_took: Duration,
    /// The deadline given to `shutdown`.
    pub(crate) deadline: Duration,
}

/// Runs both parts; the in-flight handler of the shutdown part takes `handler_ms`.
pub(crate) fn run(handler_ms: u64) -> Result<(BackpressureReport, ShutdownReport), Error> {
    Ok((backpressure()?, shutdown(handler_ms)?))
}

/// Part 1: `Limits`, `try_send` → `Full`, `send_timeout` → `SendTimeout`, `send` waits.
fn backpressure() -> Result<BackpressureReport, Error> {
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        // This server's connections hold at most 64 KiB of unhandled requests, then stop reading.
        .limits(Limits {
            max_inbound_bytes: 64 << 10,
            ..Limits::default()
        })
        .handler(move |_ctx: StreamContext, _b: Blob| {
            let gate = g.clone();
            async move {
                // Stuck until the client opens the gate (at most 10 s).
                let until = Instant::now() + Duration::from_secs(10);
                while !gate.load(Ordering::Acquire) && Instant::now() < until {
                    glommio::timer::sleep(Duration::from_millis(2)).await;
                }
                Ok::<_, String>(()) // OkReply
            }
        })
        .serve("tcp://127.0.0.1:0")?;
    let addr = server.dial_addr();

    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("limits-client")
        .spawn(move || async move {
            // The client may hold at most 256 KiB of frames it could not write yet.
            let conn = Client::builder()
                .limits(Limits {
                    max_outbound_bytes: 256 << 10,
                    ..Limits::default()
                })
                .timeout(Some(Duration::from_secs(5)))
                .connect(&addr)
                .await?;
            let stream = Rc::new(conn.new_stream()?);
            stream.set_recv_timeout(Some(Duration::from_secs(5)));
            let blob = Blob { data: vec![7; BLOB] };

            // `try_send` until the limit is reached: bounded in count (256 × 64 KiB = 16 MiB,
            // more than loopback buffers hold) and in time.
            let (mut accepted, mut try_send) = (0, None);
            let until = Instant::now() + Duration::from_secs(5);
            while accepted < 256 && Instant::now() < until {
                match stream.try_send(&blob) {
                    Ok(()) => accepted += 1,
                    Err(e) => {
                        try_send = Some(e);
                        break;
                    }
                }
                // Give the connection's driver a moment to write what is queued.
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            // Still full: `send_timeout` gives up after its timeout, having queued nothing.
            let send_timeout = stream.send_timeout(&blob, Duration::from_millis(100)).await;

            // `send` waits for room. Start one, open the gate, and it completes.
            let sent = Rc::new(Cell::new(false));
            let waiting = glommio::spawn_local({
                let (stream, blob, sent) = (stream.clone(), blob.clone(), sent.clone());
                async move {
                    let r = stream.send(&blob).await;
                    sent.set(true);
                    r
                }
            });
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let waited_for_room = !sent.get(); // still waiting while the server does not read
            gate.store(true, Ordering::Release);
            let waiting_send = waiting.await;

            // Every request that was accepted gets its reply: nothing was dropped.
            let expected = accepted + usize::from(waiting_send.is_ok());
            let mut replies = 0;
            while replies < expected {
                match stream.recv::<OkReply>().await {
                    Ok(_) => replies += 1,
                    Err(_) => break,
                }
            }
            let send_waits = conn.debug_state().counters.send_waits;
            conn.close();
            Ok::<_, Error>(BackpressureReport {
                accepted,
                try_send,
                send_timeout,
                waiting_send,
                waited_for_room,
                replies,
                send_waits,
            })
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    server.shutdown(Duration::from_secs(1));
    server.join()?;
    result
}

/// Parts 2 and 3: `max_connections`, then a graceful shutdown with a handler in flight.
fn shutdown(handler_ms: u64) -> Result<ShutdownReport, Error> {
    // The handler tells the main thread when it has started, so that the shutdown below
    // really happens while it runs.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        .max_connections(1)
        .handler(move |_ctx: StreamContext, w: Work| {
            let _ = started_tx.send(());
            async move {
                glommio::timer::sleep(Duration::from_millis(w.ms)).await;
                Ok::<_, String>(Done { n: w.n })
            }
        })
        .serve("tcp://127.0.0.1:0")?;
    let addr = server.dial_addr();

    let client = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("shutdown-client")
        .spawn(move || async move {
            let builder = Client::builder().timeout(Some(Duration::from_secs(2)));
            let conn = builder.connect(&addr).await?;
            conn.set_recv_timeout(Some(Duration::from_secs(5)));
            // The first connection is admitted and works.
            let _: Done = conn.send_recv(&Work { ms: 0, n: 0 }).await?;
            // A second one is over the limit: the server closes it on accept.
            let second_connect = builder.connect(&addr).await.map(drop);
            // A request that is still being handled when the server shuts down.
            let in_flight_reply = conn.send_recv(&Work { ms: handler_ms, n: 1 }).await;
            // After the reply the server closes the connection (bounded wait).
            let closed_after = future::or(
                async {
                    conn.wait_closed().await;
                    true
                },
                async {
                    glommio::timer::sleep(Duration::from_secs(5)).await;
                    false
                },
            )
            .await;
            Ok::<_, Error>((second_connect, in_flight_reply, closed_after))
        })
        .expect("start a glommio executor");

    // Wait for the in-flight handler (the first started at the admitted request), then shut down.
    let deadline = Duration::from_secs(5);
    let mut handlers = 0;
    while handlers < 2 && started_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
        handlers += 1;
    }
    let rejected_limit = server.stats().iter().map(|s| s.rejected_limit).sum();
    let t0 = Instant::now();
    server.shutdown(deadline); // stop accepting; handlers may finish until the deadline
    server.join()?; // every shard done
    let join_took = t0.elapsed();

    let (second_connect, in_flight_reply, closed_after) = client.join().expect("client executor thread")?;
    Ok(ShutdownReport {
        second_connect,
        rejected_limit,
        in_flight_reply,
        closed_after,
        join_took,
        deadline,
    })
}

fn main() -> Result<(), Error> {
    let (b, s) = run(300)?;
    println!(
        "limits: {} × 64 KiB accepted by try_send, then {:?}",
        b.accepted, b.try_send
    );
    println!("        send_timeout: {:?}", b.send_timeout);
    println!(
        "        waiting send: {:?} (waited for room: {}); {} replies after the gate opened; send_waits {}",
        b.waiting_send, b.waited_for_room, b.replies, b.send_waits
    );
    println!(
        "max_connections(1): second connect {:?}; rejected_limit {}",
        s.second_connect, s.rejected_limit
    );
    println!(
        "shutdown: in-flight reply {:?}, connection closed after it: {}, join took {:?} (deadline {:?})",
        s.in_flight_reply.map(|d| d.n),
        s.closed_after,
        s.join_took,
        s.deadline
    );
    Ok(())
}
