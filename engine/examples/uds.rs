//! Unix domain sockets: a filesystem path and a Linux abstract name.
//!
//! Addresses use the reference's syntax (the same strings work for `serve` and `connect`):
//!
//! * `uds:///tmp/app.sock` (or `unix:///tmp/app.sock`): a socket file at `/tmp/app.sock`. The
//!   server creates it and removes it again when it stops.
//! * `uds://@app` (or `unix://@app`): the abstract socket `\0app`, which has no file and
//!   disappears with its last descriptor.
//!
//! The example serves on a unique temporary path and a unique abstract name, does a few
//! requests over each, and checks that the socket file is gone after shutdown.
//!
//! ```sh
//! cargo run -p amring --example uds
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amring::codec::Message;
use amring::{BoundAddr, Client, Error, Server, ServerHandle, Shards, StreamContext};
use glommio::{LocalExecutorBuilder, Placement};
use serde::{Deserialize, Serialize};

/// A greeting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// Who greets.
    pub(crate) name: String,
}
impl Message for Hello {
    const WIRE_NAME: &'static str = "am.example.Hello";
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Greeting {
    /// `"hello <name> over <transport>"`.
    pub(crate) text: String,
}
impl Message for Greeting {
    const WIRE_NAME: &'static str = "am.example.Greeting";
}

/// What happened on one address.
#[derive(Debug, Clone)]
pub(crate) struct UdsReport {
    /// The address served and dialed (`uds:///…` or `uds://@…`).
    pub(crate) addr: String,
    /// What the server reports it is bound to.
    pub(crate) bound: BoundAddr,
    /// The greetings received.
    pub(crate) greetings: Vec<String>,
}

/// What the run saw.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The filesystem socket.
    pub(crate) path: UdsReport,
    /// The abstract socket.
    pub(crate) abstract_name: UdsReport,
    /// The socket file existed while the server ran.
    pub(crate) file_existed: bool,
    /// The socket file was gone after `shutdown` + `join`.
    pub(crate) file_removed: bool,
}

/// A one-shard server on `addr` that greets and names the transport it was reached on.
fn serve(addr: &str, transport: &'static str) -> Result<ServerHandle, Error> {
    Server::builder()
        .shards(Shards::Unpinned(1))
        .handler(move |_ctx: StreamContext, h: Hello| async move {
            Ok::<_, String>(Greeting {
                text: format!("hello {} over {transport}", h.name),
            })
        })
        .serve(addr)
}

/// Serves on a unique socket file and a unique abstract name, sends `requests` greetings to
/// each, and stops both servers.
pub(crate) fn run(requests: usize) -> Result<Report, Error> {
    // Unique names, so that parallel runs (and the test suite) never collide.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let unique = format!("amring-example-{}-{nanos}", std::process::id());
    let path: PathBuf = std::env::temp_dir().join(format!("{unique}.sock"));
    let path_addr = format!("uds://{}", path.display()); // uds:///tmp/amring-example-….sock
    let abstract_addr = format!("uds://@{unique}"); // the abstract socket "\0amring-example-…"

    let on_path = serve(&path_addr, "a socket file")?;
    let on_name = match serve(&abstract_addr, "an abstract socket") {
        Ok(h) => h,
        Err(e) => {
            stop(on_path)?;
            return Err(e);
        }
    };
    let file_existed = path.exists();
    let bound = (on_path.local_addr().clone(), on_name.local_addr().clone());

    let addrs = [path_addr.clone(), abstract_addr.clone()];
    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(amring::IO_MEMORY)
        .name("uds-client")
        .spawn(move || async move {
            let mut all = Vec::new();
            for addr in addrs {
                // `connect` takes the same address string the server was given.
                let conn = Client::builder()
                    .timeout(Some(Duration::from_secs(5)))
                    .connect(&addr)
                    .await?;
                conn.set_recv_timeout(Some(Duration::from_secs(5)));
                let mut greetings = Vec::new();
                for i in 0..requests {
                    let g: Greeting = conn
                        .send_recv(&Hello {
                            name: format!("client-{i}"),
                        })
                        .await?;
                    greetings.push(g.text);
                }
                conn.close();
                all.push(greetings);
            }
            Ok::<_, Error>(all)
        })
        .expect("start a glommio executor")
        .join()
        .expect("client executor thread");

    stop(on_path)?;
    stop(on_name)?;
    // The server removed its socket file; clean up anyway if it is still there.
    let file_removed = !path.exists();
    let _ = std::fs::remove_file(&path);

    let mut all = result?.into_iter();
    let mut report = |addr: String, bound: BoundAddr| UdsReport {
        addr,
        bound,
        greetings: all.next().unwrap_or_default(),
    };
    Ok(Report {
        path: report(path_addr, bound.0),
        abstract_name: report(abstract_addr, bound.1),
        file_existed,
        file_removed,
    })
}

fn stop(h: ServerHandle) -> Result<(), Error> {
    h.shutdown(Duration::from_secs(1));
    h.join()
}

fn main() -> Result<(), Error> {
    let r = run(3)?;
    for u in [&r.path, &r.abstract_name] {
        println!("{} (bound to {}):", u.addr, u.bound);
        for g in &u.greetings {
            println!("  {g}");
        }
    }
    println!(
        "socket file existed while serving: {}, removed on shutdown: {}",
        r.file_existed, r.file_removed
    );
    Ok(())
}
