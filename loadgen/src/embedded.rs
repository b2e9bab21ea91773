//! The embedded server started when `--target` is omitted.
//!
//! TEMPORARY: the amring server API (`amring::server::Server`) is being
//! written in parallel; until it is merged the embedded server is the
//! [`NullServer`](crate::null_server::NullServer) and the report says so
//! (`server.kind = "embedded-null"`). All of it sits behind [`start`].
//!
//! The server runs either in this process (threads) or, from the CLI, in a
//! child process (the same binary with a hidden `--internal-serve` flag): a
//! child keeps the generator's memory out of the per-connection RSS figure and
//! gives each side its own RLIMIT_NOFILE (10k connections need 20k sockets).

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use amring::codec::CodecKind;

use crate::null_server::{NullServer, NullServerConfig};
use crate::sys;

/// Where the embedded server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Threads of this process.
    InProcess,
    /// A child process running this executable with `--internal-serve`.
    ChildProcess(PathBuf),
}

#[derive(Debug)]
enum Inner {
    InProcess(NullServer),
    Child(Child),
}

/// A running embedded server.
#[derive(Debug)]
pub struct EmbeddedServer {
    addr: SocketAddr,
    inner: Option<Inner>,
}

/// The cores of an embedded server with `n` cores: the lowest ones.
pub fn server_cores(n: usize) -> Vec<usize> {
    let cpus = sys::cpu_count();
    (0..n).map(|i| i % cpus).collect()
}

/// Starts the embedded echo server on `cores` cores.
pub fn start(cores: usize, codec: CodecKind, recovery: bool, launch: &Launch) -> io::Result<EmbeddedServer> {
    // Both codecs are always served; the argument documents the contract.
    let _ = codec;
    if recovery {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the embedded server does not speak v3 yet (amring server not merged); use --target",
        ));
    }
    let server = launch_server(cores, launch)?;
    probe(server.addr);
    Ok(server)
}

/// One throw-away connection and handshake, so that one-time costs (first
/// accept, allocator arenas) are in the "before" RSS, not in the per-connection figure.
fn probe(addr: SocketAddr) {
    use std::io::{Read, Write};
    if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(&[0x41, 0x4d, 2, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1]);
        let mut r = [0u8; 12];
        let _ = s.read_exact(&mut r);
    }
    std::thread::sleep(Duration::from_millis(50));
}

fn launch_server(cores: usize, launch: &Launch) -> io::Result<EmbeddedServer> {
    match launch {
        Launch::InProcess => {
            let s = NullServer::start(NullServerConfig {
                cores: server_cores(cores),
                ..NullServerConfig::default()
            })?;
            Ok(EmbeddedServer {
                addr: s.addr(),
                inner: Some(Inner::InProcess(s)),
            })
        }
        Launch::ChildProcess(exe) => {
            let mut child = Command::new(exe)
                .args(["--internal-serve", "--server-cores", &cores.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let mut line = String::new();
            let out = child.stdout.take().ok_or_else(|| io::Error::other("no child stdout"))?;
            BufReader::new(out).read_line(&mut line)?;
            let addr = line
                .trim()
                .strip_prefix("listening ")
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    let _ = child.kill();
                    io::Error::other(format!("embedded server did not start: {line:?}"))
                })?;
            Ok(EmbeddedServer {
                addr,
                inner: Some(Inner::Child(child)),
            })
        }
    }
}

impl EmbeddedServer {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `embedded-null` until the amring server is merged.
    pub fn kind(&self) -> &'static str {
        "embedded-null"
    }

    /// `in-process` or `child-process`.
    pub fn process(&self) -> &'static str {
        match self.inner {
            Some(Inner::Child(_)) => "child-process",
            _ => "in-process",
        }
    }

    fn pid(&self) -> u32 {
        match &self.inner {
            Some(Inner::Child(c)) => c.id(),
            _ => std::process::id(),
        }
    }

    /// CPU time of the server so far (its threads in-process, the whole child otherwise).
    pub fn cpu_time(&self) -> Duration {
        match &self.inner {
            Some(Inner::InProcess(s)) => s.cpu_time(),
            Some(Inner::Child(c)) => sys::process_cpu_time(c.id()),
            None => Duration::ZERO,
        }
    }

    /// Resident set size of the server's process (bytes).
    pub fn rss(&self) -> u64 {
        sys::rss_bytes(self.pid())
    }

    /// Stops the server.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        match self.inner.take() {
            Some(Inner::InProcess(s)) => s.shutdown(),
            Some(Inner::Child(mut c)) => {
                drop(c.stdin.take()); // EOF on stdin: the child exits.
                for _ in 0..200 {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            None => {}
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Body of the hidden `--internal-serve` mode: serve until stdin closes.
pub fn serve_until_stdin_closes(cores: usize) -> io::Result<()> {
    use std::io::{Read, Write};
    sys::raise_nofile_limit();
    let s = NullServer::start(NullServerConfig {
        cores: server_cores(cores),
        ..NullServerConfig::default()
    })?;
    let mut out = io::stdout();
    writeln!(out, "listening {}", s.addr())?;
    out.flush()?;
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    s.shutdown();
    Ok(())
}
