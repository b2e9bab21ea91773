//! Several streams on one connection.
//!
//! A connection is itself stream 0; `conn.new_stream()` opens streams 1, 2, 3, … (nothing is
//! sent until a stream's first message). Each stream is an independent, ordered conversation:
//! the server runs one stream's requests one at a time, in the order they were sent, while
//! different streams run concurrently. This example opens a few streams, and on each of them,
//! concurrently, first does one `send_recv` (the one-at-a-time form) and then pipelines a
//! burst of requests (`send` them all, then `recv` the replies) and checks that the replies
//! come back in order and on the stream that asked.
//!
//! ```sh
//! cargo run -p amring --example streams
//! ```

use std::time::Duration;

use amring::codec::Message;
use amring::{Client, Error, Server, Shards, Stream, StreamContext};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// A request carrying its position in its stream's sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Req {
    /// 0, 1, 2, … per stream.
    pub(crate) seq: u32,
}
impl Message for Req {
    const WIRE_NAME: &'static str = "am.example.StreamReq";
}

/// The reply: the request's `seq` and the stream id the server saw it on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Rep {
    /// The stream id as the server's handler saw it (`StreamContext::stream_id`).
    pub(crate) stream: u32,
    /// The request's `seq`.
    pub(crate) seq: u32,
}
impl Message for Rep {
    const WIRE_NAME: &'static str = "am.example.StreamRep";
}

/// What one stream saw.
#[derive(Debug, Clone)]
pub(crate) struct StreamReport {
    /// The client-side stream id (`Stream::id`).
    pub(crate) id: u32,
    /// The stream id each reply says the server saw, in arrival order.
    pub(crate) server_ids: Vec<u32>,
    /// The replies' `seq`s in arrival order (the `send_recv` one first, then the burst).
    pub(crate) seqs: Vec<u32>,
}

/// Starts a one-shard server on a loopback port, runs `streams` streams of `per_stream`
/// requests each (`per_stream` ≥ 1) concurrently over one connection, and returns what each
/// stream received.
pub(crate) fn run(streams: usize, per_stream: u32) -> Result<Vec<StreamReport>, Error> {
    // The handler answers with the stream id it was called on; it yields once so that the
    // streams' handlers really interleave on the server.
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        .handler(|ctx: StreamContext, req: Req| async move {
            futures_lite::future::yield_now().await;
            Ok::<_, String>(Rep {
                stream: ctx.stream_id(),
                seq: req.seq,
            })
        })
        .serve("tcp://127.0.0.1:0")?;
    let addr = server.dial_addr();

    // Client code runs inside a glommio executor (its own thread here).
    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("streams-client")
        .spawn(move || async move {
            let conn = Client::builder()
                .timeout(Some(Duration::from_secs(5)))
                .connect(&addr)
                .await?;
            // One task per stream, all on this executor; each owns its `Stream`.
            let mut tasks = Vec::new();
            for _ in 0..streams {
                let stream = conn.new_stream()?;
                stream.set_recv_timeout(Some(Duration::from_secs(5)));
                tasks.push(glommio::spawn_local(converse(stream, per_stream)));
            }
            let mut reports = Vec::new();
            for t in tasks {
                reports.push(t.await?);
            }
            conn.close();
            Ok::<_, Error>(reports)
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    server.shutdown(Duration::from_secs(1));
    server.join()?;
    result
}

/// One stream's conversation: a `send_recv`, then a pipelined burst.
async fn converse(stream: Stream, per_stream: u32) -> Result<StreamReport, Error> {
    let mut report = StreamReport {
        id: stream.id(),
        server_ids: Vec::new(),
        seqs: Vec::new(),
    };
    // Request/reply, one at a time.
    let first: Rep = stream.send_recv(&Req { seq: 0 }).await?;
    report.server_ids.push(first.stream);
    report.seqs.push(first.seq);
    // Pipelined: queue the rest, then read the replies; they come back in send order.
    for seq in 1..per_stream {
        stream.send(&Req { seq }).await?;
    }
    for _ in 1..per_stream {
        let rep: Rep = stream.recv().await?;
        report.server_ids.push(rep.stream);
        report.seqs.push(rep.seq);
    }
    Ok(report)
}

fn main() -> Result<(), Error> {
    for s in run(4, 10)? {
        let in_order = s.seqs.iter().copied().eq(0..s.seqs.len() as u32);
        let own = s.server_ids.iter().all(|&id| id == s.id);
        println!(
            "stream {}: {} replies, in order: {in_order}, all answered on this stream: {own}",
            s.id,
            s.seqs.len()
        );
    }
    Ok(())
}
