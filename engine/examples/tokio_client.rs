//! An amring client called from a tokio program: tokio tasks share one
//! `SharedConnection` (Send + Sync) whose connection lives on an amring
//! client thread; no glommio code in the tokio program.
//!
//! Run: `cargo run -p amring --example tokio_client` (starts its own amring
//! echo server on 127.0.0.1 and 8 tokio tasks of 100 requests each).

use amring::codec::Message;
use serde::{Deserialize, Serialize};

/// The request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Echo {
    /// Who sent it.
    pub task: u32,
    /// The request's number within its task.
    pub n: u32,
}
impl Message for Echo {
    const WIRE_NAME: &'static str = "am.example.Echo";
}

/// Runs `tasks` tokio tasks of `per_task` request/replies each against an
/// embedded amring server; returns the number of correct replies.
pub fn run(tasks: u32, per_task: u32) -> Result<u32, Box<dyn std::error::Error>> {
    let server = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(|_ctx: amring::StreamContext, e: Echo| async move { Ok::<_, String>(e) })
        .serve("127.0.0.1:0")?;
    let addr = server.dial_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ok = rt.block_on(async move {
        let client = amring::ClientThread::start()?;
        let conn = client.connect(amring::Client::builder(), &addr).await?;
        let mut handles = Vec::new();
        for task in 0..tasks {
            let conn = conn.clone();
            handles.push(tokio::spawn(async move {
                let mut ok = 0;
                for n in 0..per_task {
                    let r: Echo = conn.send_recv(Echo { task, n }).await?;
                    if (r.task, r.n) == (task, n) {
                        ok += 1;
                    }
                }
                Ok::<u32, amring::Error>(ok)
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h
                .await
                .map_err(|e| amring::Error::Io(std::io::Error::other(e.to_string())))??;
        }
        Ok::<u32, amring::Error>(total)
    })?;
    server.shutdown(std::time::Duration::from_millis(200));
    server.join()?;
    Ok(ok)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ok = run(8, 100)?;
    println!("{ok} of 800 replies correct");
    Ok(())
}
