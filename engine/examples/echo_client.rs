//! Port of the Go reference's echo example client (`examples/echo/cmd/client`), with v3
//! recovery enabled like the original. `--cmd` picks the demo:
//!
//! * `echo` (default): five `MessageRequest`s on stream 0 (`num` 100, 200, …);
//! * `timeout`: `MessageTimeout` on a new stream with no receive timeout, a long one, a short
//!   one (which must time out) and none again;
//! * `whoelse`: `WhoElse` every `--interval`, `--rounds` times;
//! * `whoelse_sub`: `SubWhoElseEvent` on a new stream, then prints every `WhoElseEvent` pushed
//!   (at most `--events`).
//!
//! The reference's timings are the defaults (`--secs 10`, timeouts 15 s and 3 s, 100 rounds
//! every 2 s); the interop tests shorten them with the flags.
//!
//! ```sh
//! cargo run -p amring --example echo_client -- --addr tcp://127.0.0.1:5560 --cmd echo
//! ```

use std::time::Duration;

use amring::codec::OkReply;
use amring::{Client, ClientRecoveryOptions, Connection, Error};
use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};

pub(crate) mod echo_msgs;

use echo_msgs::{MessageReply, MessageRequest, MessageTimeout, SubWhoElseEvent, WhoElse, WhoElseEvent, WhoElseReply};

/// Dials `addr` like the reference client: v3 recovery on, 5 s connect timeout.
pub(crate) async fn connect(addr: &str) -> Result<Connection, Error> {
    Client::builder()
        .recovery(ClientRecoveryOptions::default())
        .timeout(Some(Duration::from_secs(5)))
        .connect(addr)
        .await
}

/// The reference's `echoDemo`: five requests on stream 0; returns the replies.
pub(crate) async fn echo_demo(conn: &Connection) -> Result<Vec<MessageReply>, Error> {
    let msg = "ni hao";
    let mut num = 0i32;
    let mut replies = Vec::new();
    for _ in 0..5 {
        num += 100;
        let rep: MessageReply = conn.send_recv(&MessageRequest { msg: msg.into(), num }).await?;
        eprintln!("{msg}:{num} ==> {}:{}, {}", rep.msg, rep.num, rep.signature);
        replies.push(rep);
    }
    Ok(replies)
}

/// What each of the four `timeoutDemo` requests gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutStep {
    /// `OkReply` received.
    Ok,
    /// The receive timed out (`ErrRecvTimeout`).
    TimedOut,
}

/// The reference's `timeoutDemo` on a new stream: `MessageTimeout{secs}` with no receive
/// timeout, with `long`, with `short` (expected to time out) and with none again.
pub(crate) async fn timeout_demo(
    conn: &Connection,
    secs: u64,
    long: Duration,
    short: Duration,
) -> Result<Vec<TimeoutStep>, Error> {
    let stream = conn.new_stream()?;
    let mut steps = Vec::new();
    for (label, timeout) in [
        ("No timeout by default", None),
        ("Set timeout to long", Some(long)),
        ("Set timeout to short", Some(short)),
        ("Set back to no timeout", None),
    ] {
        eprintln!("{label} ({timeout:?})");
        stream.set_recv_timeout(timeout);
        match stream.send_recv::<_, OkReply>(&MessageTimeout { secs }).await {
            Ok(_) => {
                eprintln!("Recv OK");
                steps.push(TimeoutStep::Ok);
            }
            Err(Error::RecvTimeout) => {
                eprintln!("Recv timeout: {}", Error::RecvTimeout);
                steps.push(TimeoutStep::TimedOut);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(steps)
}

/// The reference's `whoelseQueryDemo`: `rounds` queries, `interval` apart; returns the
/// `clients` texts.
pub(crate) async fn whoelse_query_demo(
    conn: &Connection,
    rounds: usize,
    interval: Duration,
) -> Result<Vec<String>, Error> {
    let mut seen = Vec::new();
    for i in 0..rounds {
        if i > 0 {
            glommio::timer::sleep(interval).await;
        }
        let rep: WhoElseReply = conn.send_recv(&WhoElse {}).await?;
        eprintln!("clients: {}", rep.clients);
        seen.push(rep.clients);
    }
    Ok(seen)
}

/// The reference's `whoelseSubscribeDemo`: subscribes on a new stream (`OkReply`), then
/// receives `WhoElseEvent`s, at most `events` of them (forever with `None`), each within
/// `wait` when given; returns the announced addresses.
pub(crate) async fn whoelse_subscribe_demo(
    conn: &Connection,
    events: Option<usize>,
    wait: Option<Duration>,
    subscribed: impl FnOnce(),
) -> Result<Vec<String>, Error> {
    let stream = conn.new_stream()?;
    let _: OkReply = stream.send_recv(&SubWhoElseEvent {}).await?;
    subscribed();
    stream.set_recv_timeout(wait);
    let mut addrs = Vec::new();
    while events.map_or(true, |n| addrs.len() < n) {
        let evt: WhoElseEvent = stream.recv().await?;
        eprintln!("event: new client {}", evt.addr);
        addrs.push(evt.addr);
    }
    Ok(addrs)
}

/// Command line (the reference's flags, spelled `--addr` / `--cmd`, plus the timings).
#[derive(Parser)]
struct Args {
    /// Server address (tcp://127.0.0.1:5560, uds://@adaptivemsg-echo, uds:///tmp/adaptivemsg-echo.sock).
    #[arg(long, default_value = "tcp://127.0.0.1:5560")]
    addr: String,
    /// echo (default), timeout, whoelse, or whoelse_sub.
    #[arg(long, default_value = "echo")]
    cmd: String,
    /// `timeout`: seconds the server sleeps per request.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// `timeout`: the long receive timeout, in ms.
    #[arg(long, default_value_t = 15_000)]
    long_ms: u64,
    /// `timeout`: the short receive timeout, in ms.
    #[arg(long, default_value_t = 3_000)]
    short_ms: u64,
    /// `whoelse`: number of queries.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// `whoelse`: pause between queries, in ms.
    #[arg(long, default_value_t = 2_000)]
    interval_ms: u64,
    /// `whoelse_sub`: stop after this many events (default: never).
    #[arg(long)]
    events: Option<usize>,
}

async fn run(args: Args) -> Result<(), Error> {
    let conn = connect(&args.addr).await?;
    match args.cmd.as_str() {
        "timeout" => {
            let ms = Duration::from_millis;
            timeout_demo(&conn, args.secs, ms(args.long_ms), ms(args.short_ms)).await?;
        }
        "whoelse" => {
            whoelse_query_demo(&conn, args.rounds, Duration::from_millis(args.interval_ms)).await?;
        }
        "whoelse_sub" => {
            whoelse_subscribe_demo(&conn, args.events, None, || {}).await?;
        }
        _ => {
            echo_demo(&conn).await?;
        }
    }
    conn.close();
    Ok(())
}

fn main() {
    let args = Args::parse();
    let r = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .spawn(move || run(args))
        .expect("start a glommio executor")
        .join()
        .expect("executor thread");
    if let Err(e) = r {
        eprintln!("echo client: {e}");
        std::process::exit(1);
    }
}
