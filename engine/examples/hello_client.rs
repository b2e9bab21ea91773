//! Port of the Go reference's hello example client (`examples/hello/cmd/client`), with v3
//! recovery enabled like the original: three concurrent requests on one connection, on
//! stream 0 and on two new streams; the third asks a question containing "error" and gets an
//! `ErrorReply`.
//!
//! ```sh
//! cargo run -p amring --example hello_client -- --addr tcp://127.0.0.1:5555
//! ```

use std::time::Duration;

use amring::{Client, ClientRecoveryOptions, Error};
use clap::Parser;
use futures_lite::future;
use glommio::{LocalExecutorBuilder, Placement};

pub(crate) mod hello_msgs;

use hello_msgs::{HelloReply, HelloRequest};

/// The three outcomes: stream 0 (John), stream A (Alice), stream B (Bob, an error).
pub(crate) type HelloOutcomes = [Result<HelloReply, Error>; 3];

/// Connects to `addr` and runs the three requests concurrently.
pub(crate) async fn hello_demo(addr: &str) -> Result<HelloOutcomes, Error> {
    let conn = Client::builder()
        .recovery(ClientRecoveryOptions::default())
        .timeout(Some(Duration::from_secs(5)))
        .connect(addr)
        .await?;
    let stream_a = conn.new_stream()?;
    let stream_b = conn.new_stream()?;
    let ask = |who: &str, question: &str| HelloRequest {
        who: who.into(),
        question: question.into(),
    };
    let (john, alice, bob) = (
        ask("John", "who are you"),
        ask("Alice", "how are you"),
        ask("Bob", "error please"),
    );
    let ((d, a), b) = future::zip(
        future::zip(
            conn.send_recv::<_, HelloReply>(&john),
            stream_a.send_recv::<_, HelloReply>(&alice),
        ),
        stream_b.send_recv::<_, HelloReply>(&bob),
    )
    .await;
    match &d {
        Ok(r) => eprintln!("default stream: {} (trace {})", r.answer, r.internal.trace_id),
        Err(e) => eprintln!("default stream error: {e}"),
    }
    match &a {
        Ok(r) => eprintln!("stream A: {} (trace {})", r.answer, r.internal.trace_id),
        Err(e) => eprintln!("stream A error: {e}"),
    }
    match &b {
        Err(Error::Remote { code, message }) => eprintln!("stream B expected error: {code}: {message}"),
        Err(e) => eprintln!("stream B error: {e}"),
        Ok(_) => eprintln!("stream B: unexpected success"),
    }
    // Let the last frames (and v3 ACKs) settle before closing (spec §9 note 24).
    glommio::timer::sleep(Duration::from_millis(50)).await;
    conn.close();
    Ok([d, a, b])
}

/// Command line (the reference's flag, spelled `--addr`).
#[derive(Parser)]
struct Args {
    /// Server address (tcp://127.0.0.1:5555, uds://@adaptivemsg-hello, uds:///tmp/adaptivemsg-hello.sock).
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    addr: String,
}

fn main() {
    let args = Args::parse();
    let r = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .spawn(move || async move { hello_demo(&args.addr).await })
        .expect("start a glommio executor")
        .join()
        .expect("executor thread");
    match r {
        Ok([Ok(_), Ok(_), Err(Error::Remote { .. })]) => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("hello client: {e}");
            std::process::exit(1);
        }
    }
}
