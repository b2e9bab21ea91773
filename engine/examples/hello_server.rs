//! Port of the Go reference's hello example server (`examples/hello/cmd/server`,
//! `handler.go`), with v3 recovery enabled like the original:
//! `am.hello.HelloRequest{who, question}` → `HelloReply{answer, internal{trace_id}}`, or
//! `ErrorReply{handler_error, "bad request: <question>"}` when the question contains "error".
//!
//! ```sh
//! cargo run -p amring --example hello_server -- --addr tcp://127.0.0.1:5555
//! # then: cargo run -p amring --example hello_client -- --addr tcp://127.0.0.1:5555
//! ```

use amring::{Error, RecoveryOptions, Server, ServerHandle, Shards, StreamContext};
use clap::Parser;

pub(crate) mod hello_msgs;

use hello_msgs::{HelloInternal, HelloReply, HelloRequest};

/// The reference's `HelloRequest.Handle`.
pub(crate) fn answer(req: &HelloRequest) -> Result<HelloReply, String> {
    let question = req.question.to_lowercase();
    if question.contains("error") {
        return Err(format!("bad request: {question}"));
    }
    let answer = if question.contains("who are you") {
        "I am hello server"
    } else if question.contains("how are you") {
        "I am good"
    } else {
        "I don't know"
    };
    Ok(HelloReply {
        answer: format!("{answer}, {}", req.who),
        internal: HelloInternal {
            trace_id: format!("trace-{}", req.who),
        },
    })
}

/// Starts the hello server on `addr` with v3 recovery enabled.
pub(crate) fn serve(addr: &str, shards: Shards) -> Result<ServerHandle, Error> {
    Server::builder()
        .shards(shards)
        .recovery(Some(RecoveryOptions::default()))
        .handler(|_ctx: StreamContext, req: HelloRequest| async move { answer(&req) })
        .serve(addr)
}

/// Command line (the reference's flag, spelled `--addr`).
#[derive(Parser)]
struct Args {
    /// Listen address (tcp://127.0.0.1:5555, uds://@adaptivemsg-hello, uds:///tmp/adaptivemsg-hello.sock).
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    addr: String,
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let handle = serve(&args.addr, Shards::PerCore)?;
    eprintln!("hello server listening on {} (recovery/v3 enabled)", handle.dial_addr());
    handle.join()
}
