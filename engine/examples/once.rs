//! One request, one reply, no connection to manage: `amring::once` and
//! `amring::once_with_timeout`.
//!
//! Each call dials the address, does the handshake (v2, default codecs), sends the request,
//! waits for the reply and closes the connection. `once` bounds the connect and the receive
//! with 5 s each; `once_with_timeout` takes the bound. A handler error comes back as
//! `Error::Remote`, a reply slower than the bound as `Error::RecvTimeout`, and nothing
//! listening as an I/O error. Like all client code, the calls run inside a glommio executor.
//!
//! ```sh
//! cargo run -p amring --example once
//! ```

use std::time::Duration;

use amring::codec::Message;
use amring::{Error, Server, Shards, StreamContext};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// A question; the server sleeps `delay_ms` before it answers, and fails on "error".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Question {
    /// The question.
    pub(crate) text: String,
    /// How long the handler takes.
    pub(crate) delay_ms: u64,
}
impl Message for Question {
    const WIRE_NAME: &'static str = "am.example.Question";
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// The question upper-cased.
    pub(crate) text: String,
}
impl Message for Answer {
    const WIRE_NAME: &'static str = "am.example.Answer";
}

/// The outcome of each call.
#[derive(Debug)]
pub(crate) struct Report {
    /// `once` with a plain question.
    pub(crate) answer: Result<Answer, Error>,
    /// `once_with_timeout` (with `timeout`) with a question answered in time.
    pub(crate) in_time: Result<Answer, Error>,
    /// `once` with a question the handler rejects.
    pub(crate) rejected: Result<Answer, Error>,
    /// `once_with_timeout` with a handler slower than `timeout`.
    pub(crate) too_slow: Result<Answer, Error>,
    /// `once_with_timeout` to an address nobody listens on.
    pub(crate) nobody: Result<Answer, Error>,
}

/// Starts a one-shard server on a loopback port and makes the five calls; `timeout` is the
/// bound given to `once_with_timeout` (the slow handler takes `3 × timeout`).
pub(crate) fn run(timeout: Duration) -> Result<Report, Error> {
    let server = Server::builder()
        .shards(Shards::Unpinned(1))
        .handler(|_ctx: StreamContext, q: Question| async move {
            glommio::timer::sleep(Duration::from_millis(q.delay_ms)).await;
            if q.text.contains("error") {
                return Err(format!("cannot answer {:?}", q.text)); // → ErrorReply{handler_error}
            }
            Ok(Answer {
                text: q.text.to_uppercase(),
            })
        })
        .serve("tcp://127.0.0.1:0")?;
    let addr = server.dial_addr();
    // An address with nothing behind it: a port we bind and release again.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();

    let report = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("once-client")
        .spawn(move || async move {
            let ask = |text: &str, delay: Duration| Question {
                text: text.into(),
                delay_ms: delay.as_millis() as u64,
            };
            // The reply type is named on the call (or by the binding it is assigned to).
            let answer = amring::once::<_, Answer>(&addr, &ask("how are you", Duration::ZERO)).await;
            let in_time = amring::once_with_timeout::<_, Answer>(&addr, &ask("in time?", timeout / 4), timeout).await;
            let rejected = amring::once::<_, Answer>(&addr, &ask("error please", Duration::ZERO)).await;
            let too_slow = amring::once_with_timeout::<_, Answer>(&addr, &ask("slow", timeout * 3), timeout).await;
            let nobody = amring::once_with_timeout::<_, Answer>(&dead, &ask("anyone?", Duration::ZERO), timeout).await;
            Report {
                answer,
                in_time,
                rejected,
                too_slow,
                nobody,
            }
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    // The slow handler may still be running: the grace period lets it finish.
    server.shutdown(timeout * 4);
    server.join()?;
    Ok(report)
}

fn main() -> Result<(), Error> {
    let r = run(Duration::from_millis(300))?;
    let show = |r: &Result<Answer, Error>| match r {
        Ok(a) => format!("Ok({:?})", a.text),
        Err(e) => format!("Err({e})"),
    };
    println!("once:                        {}", show(&r.answer));
    println!("once_with_timeout, in time:  {}", show(&r.in_time));
    println!("once, handler error:         {}", show(&r.rejected));
    println!("once_with_timeout, too slow: {}", show(&r.too_slow));
    println!("once_with_timeout, nobody:   {}", show(&r.nobody));
    Ok(())
}
