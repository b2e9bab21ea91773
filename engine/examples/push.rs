//! Server push: a request starts a background task on its stream that sends messages the
//! client never asked for one by one.
//!
//! The `Subscribe` handler replies `OkReply` (a handler returning `Ok(())`) and starts the
//! stream's task with `ctx.new_task(|stream| ...)`. The task runs after the reply has gone out
//! and `send`s `count` `Event`s on the same stream; the client reads them with `recv`. Two
//! subscriptions run at once on two streams of one connection, and once a task has sent its
//! events a short receive times out: nothing more comes.
//!
//! ```sh
//! cargo run -p amring --example push
//! ```

use std::time::Duration;

use amring::codec::{Message, OkReply};
use amring::{Client, Error, Server, Shards, Stream, StreamContext};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// Asks the server to push `count` events on this stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Subscribe {
    /// A label echoed in every event.
    pub(crate) topic: String,
    /// How many events to push.
    pub(crate) count: u32,
}
impl Message for Subscribe {
    const WIRE_NAME: &'static str = "am.example.Subscribe";
}

/// One pushed event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    /// The subscription's topic.
    pub(crate) topic: String,
    /// 0, 1, 2, … within the subscription.
    pub(crate) seq: u32,
}
impl Message for Event {
    const WIRE_NAME: &'static str = "am.example.Event";
}

/// What one subscription received.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// The stream it ran on.
    pub(crate) stream: u32,
    /// Its topic.
    pub(crate) topic: String,
    /// The events received, in order.
    pub(crate) events: Vec<Event>,
    /// Whether a receive after the last event timed out (nothing more was pushed).
    pub(crate) quiet_after: bool,
}

/// Starts a one-shard server on a loopback port, subscribes to topic "a" (`count` events)
/// and topic "b" (`count / 2` events) on two streams at once, and returns what each got.
pub(crate) fn run(count: u32) -> Result<Vec<Subscription>, Error> {
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        .handler(|ctx: StreamContext, sub: Subscribe| async move {
            // The task gets this request's stream; it starts once the OkReply below is sent.
            ctx.new_task(move |stream| async move {
                for seq in 0..sub.count {
                    let event = Event {
                        topic: sub.topic.clone(),
                        seq,
                    };
                    // `send` waits when the client reads slower than we push (backpressure);
                    // it fails only when the connection is gone.
                    if stream.send(&event).await.is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| e.to_string())?; // e.g. HandlerTaskBusy: one task per stream
            Ok::<_, String>(()) // `()` is answered with `OkReply`
        })
        .serve("tcp://127.0.0.1:0")?;
    let addr = server.dial_addr();

    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("push-client")
        .spawn(move || async move {
            let conn = Client::builder()
                .timeout(Some(Duration::from_secs(5)))
                .connect(&addr)
                .await?;
            let a = glommio::spawn_local(subscribe(conn.new_stream()?, "a", count));
            let b = glommio::spawn_local(subscribe(conn.new_stream()?, "b", count / 2));
            let subs = vec![a.await?, b.await?];
            conn.close();
            Ok::<_, Error>(subs)
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    server.shutdown(Duration::from_secs(1));
    server.join()?;
    result
}

/// Subscribes on `stream` and receives `count` events, then checks that nothing follows.
async fn subscribe(stream: Stream, topic: &str, count: u32) -> Result<Subscription, Error> {
    let _: OkReply = stream
        .send_recv(&Subscribe {
            topic: topic.into(),
            count,
        })
        .await?;
    // Bound every wait: a missing event is an error, not a hang.
    stream.set_recv_timeout(Some(Duration::from_secs(5)));
    let mut events = Vec::new();
    for _ in 0..count {
        events.push(stream.recv::<Event>().await?);
    }
    stream.set_recv_timeout(Some(Duration::from_millis(100)));
    let quiet_after = matches!(stream.recv::<Event>().await, Err(Error::RecvTimeout));
    Ok(Subscription {
        stream: stream.id(),
        topic: topic.into(),
        events,
        quiet_after,
    })
}

fn main() -> Result<(), Error> {
    for s in run(20)? {
        let seqs: Vec<u32> = s.events.iter().map(|e| e.seq).collect();
        println!(
            "stream {} topic {:?}: {} events {:?}, nothing after: {}",
            s.stream,
            s.topic,
            s.events.len(),
            seqs,
            s.quiet_after
        );
    }
    Ok(())
}
