//! The embedded server started when `--target` is omitted: the real amring
//! echo server (`--server amring`, the default) or the null server
//! (`--server null`, measures the generator's own ceiling).
//!
//! The amring server is `amring::Server` with one handler,
//! `am.capmsg.EchoRequest{text}` → `am.capmsg.EchoReply{text}`, listen
//! backlog 16384, one shard pinned per server core (the lowest cores; the
//! generator takes the highest), and recovery (v3) enabled when `--recovery`
//! is asked for.
//!
//! The server runs either in this process (threads) or, from the CLI, in a
//! child process (the same binary with a hidden `--internal-serve` flag): a
//! child keeps the generator's memory out of the per-connection RSS figure and
//! gives each side its own RLIMIT_NOFILE (10k connections need 20k sockets).
//! The child prints `listening ADDR`, answers a `stats` line on stdin with
//! `stats ACTIVE SERVED` (the server's own connection accounting) and exits
//! when stdin closes.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use amring::StreamContext;
use amring::{Server, ServerHandle, Shards};
use amring_proto::attach::RecoveryOptions;

use crate::msg::{EchoReply, EchoRequest};
use crate::null_server::{NullServer, NullServerConfig, DEFAULT_BACKLOG};
use crate::opts::EmbeddedKind;
use crate::sys;

/// Where the embedded server runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Threads of this process.
    InProcess,
    /// A child process running this executable with `--internal-serve`.
    ChildProcess(PathBuf),
}

/// What an embedded server is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// amring or null.
    pub kind: EmbeddedKind,
    /// Server cores (the lowest ones).
    pub cores: usize,
    /// Enable v3 recovery on the server.
    pub recovery: bool,
    /// Busy-poll time before a server core parks (zero: park at once).
    pub spin: Duration,
}

/// A server of this process (either kind).
enum Local {
    Amring(ServerHandle),
    Null(NullServer),
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Local::Amring(h) => f.debug_tuple("Amring").field(h).finish(),
            Local::Null(s) => f.debug_tuple("Null").field(s).finish(),
        }
    }
}

impl Local {
    fn start(spec: ServerSpec) -> io::Result<Local> {
        match spec.kind {
            EmbeddedKind::Null => {
                if spec.recovery {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the null server speaks v2 only; --recovery needs --server amring",
                    ));
                }
                NullServer::start(NullServerConfig {
                    cores: server_cores(spec.cores),
                    spin_before_park: spec.spin,
                    ..NullServerConfig::default()
                })
                .map(Local::Null)
            }
            EmbeddedKind::Amring => start_amring(spec.cores, spec.recovery, spec.spin).map(Local::Amring),
        }
    }

    fn addr(&self) -> io::Result<SocketAddr> {
        match self {
            Local::Null(s) => Ok(s.addr()),
            Local::Amring(h) => h
                .dial_addr()
                .parse()
                .map_err(|e| io::Error::other(format!("amring server address {}: {e}", h.dial_addr()))),
        }
    }

    /// `(active, served)` connections from the server's own counters.
    fn conn_stats(&self) -> Option<(u64, u64)> {
        match self {
            Local::Amring(h) => {
                let st = h.stats();
                Some((st.iter().map(|s| s.active).sum(), st.iter().map(|s| s.served).sum()))
            }
            Local::Null(_) => None,
        }
    }

    fn cpu_time(&self) -> Duration {
        match self {
            Local::Null(s) => s.cpu_time(),
            Local::Amring(_) => sys::named_threads_cpu_time(std::process::id(), "amring-shard-"),
        }
    }

    fn stop(self) {
        match self {
            Local::Null(s) => s.shutdown(),
            Local::Amring(h) => {
                h.shutdown(Duration::from_millis(200));
                let _ = h.join();
            }
        }
    }
}

/// Starts the real amring echo server on the lowest `cores` cores; each core
/// busy-polls for `spin` before it parks (zero: parks at once).
pub fn start_amring(cores: usize, recovery: bool, spin: Duration) -> io::Result<ServerHandle> {
    Server::builder()
        .shards(Shards::Cores(server_cores(cores)))
        .backlog(DEFAULT_BACKLOG)
        .spin_before_park(spin)
        .recovery(recovery.then(RecoveryOptions::default))
        .handler(|_ctx: StreamContext, req: EchoRequest| async move {
            Ok::<_, std::convert::Infallible>(EchoReply { text: req.text })
        })
        .serve("127.0.0.1:0")
        .map_err(|e| io::Error::other(e.to_string()))
}

#[derive(Debug)]
struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

#[derive(Debug)]
enum Inner {
    InProcess(Local),
    Child(ChildServer),
}

/// A running embedded server.
#[derive(Debug)]
pub struct EmbeddedServer {
    addr: SocketAddr,
    kind: EmbeddedKind,
    inner: Option<Inner>,
}

/// The cores of an embedded server with `n` cores: the lowest allowed ones
/// (of the process's affinity mask).
pub fn server_cores(n: usize) -> Vec<usize> {
    let cpus = sys::allowed_cpus();
    (0..n).map(|i| cpus[i % cpus.len()]).collect()
}

/// Starts the embedded echo server described by `spec`.
pub fn start(spec: ServerSpec, launch: &Launch) -> io::Result<EmbeddedServer> {
    let server = match launch {
        Launch::InProcess => {
            let local = Local::start(spec)?;
            EmbeddedServer {
                addr: local.addr()?,
                kind: spec.kind,
                inner: Some(Inner::InProcess(local)),
            }
        }
        Launch::ChildProcess(exe) => start_child(exe, spec)?,
    };
    probe(server.addr);
    Ok(server)
}

/// One throw-away connection and handshake, so that one-time costs (first
/// accept, allocator arenas) are in the "before" RSS, not in the per-connection figure.
fn probe(addr: SocketAddr) {
    use std::io::Read;
    if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(&[0x41, 0x4d, 2, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1]);
        let mut r = [0u8; 12];
        let _ = s.read_exact(&mut r);
    }
    std::thread::sleep(Duration::from_millis(50));
}

fn start_child(exe: &PathBuf, spec: ServerSpec) -> io::Result<EmbeddedServer> {
    let kind = match spec.kind {
        EmbeddedKind::Amring => "amring",
        EmbeddedKind::Null => "null",
    };
    let mut cmd = Command::new(exe);
    cmd.args([
        "--internal-serve",
        "--server",
        kind,
        "--server-cores",
        &spec.cores.to_string(),
    ]);
    if spec.recovery {
        cmd.arg("--recovery");
    }
    if !spec.spin.is_zero() {
        cmd.args(["--server-spin", &format!("{}ns", spec.spin.as_nanos())]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (Some(stdin), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("no child stdio"));
    };
    let mut stdout = BufReader::new(out);
    let mut line = String::new();
    let addr = stdout
        .read_line(&mut line)
        .ok()
        .and_then(|_| line.trim().strip_prefix("listening ")?.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!("embedded server did not start: {line:?}")));
    };
    Ok(EmbeddedServer {
        addr,
        kind: spec.kind,
        inner: Some(Inner::Child(ChildServer {
            child,
            stdin: Some(stdin),
            stdout,
        })),
    })
}

impl EmbeddedServer {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `embedded-amring` or `embedded-null`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            EmbeddedKind::Amring => "embedded-amring",
            EmbeddedKind::Null => "embedded-null",
        }
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
            Some(Inner::Child(c)) => c.child.id(),
            _ => std::process::id(),
        }
    }

    /// CPU time of the server so far (its threads in-process, the whole child otherwise).
    pub fn cpu_time(&self) -> Duration {
        match &self.inner {
            Some(Inner::InProcess(s)) => s.cpu_time(),
            Some(Inner::Child(c)) => sys::process_cpu_time(c.child.id()),
            None => Duration::ZERO,
        }
    }

    /// Resident set size of the server's process (bytes).
    pub fn rss(&self) -> u64 {
        sys::rss_bytes(self.pid())
    }

    /// `(active, served)` connections by the server's own accounting (amring
    /// only: `ServerHandle::stats()`, summed over shards).
    pub fn conn_stats(&mut self) -> Option<(u64, u64)> {
        match self.inner.as_mut()? {
            Inner::InProcess(l) => l.conn_stats(),
            Inner::Child(c) => {
                let stdin = c.stdin.as_mut()?;
                stdin.write_all(b"stats\n").ok()?;
                stdin.flush().ok()?;
                let mut line = String::new();
                c.stdout.read_line(&mut line).ok()?;
                let mut it = line.trim().strip_prefix("stats ")?.split(' ');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            }
        }
    }

    /// Stops the server.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        match self.inner.take() {
            Some(Inner::InProcess(s)) => s.stop(),
            Some(Inner::Child(mut c)) => {
                drop(c.stdin.take()); // EOF on stdin: the child exits.
                for _ in 0..300 {
                    if let Ok(Some(_)) = c.child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.child.kill();
                let _ = c.child.wait();
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

/// Body of the hidden `--internal-serve` mode: serve until stdin closes,
/// answering `stats` lines.
pub fn serve_until_stdin_closes(spec: ServerSpec) -> io::Result<()> {
    sys::raise_nofile_limit();
    let local = Local::start(spec)?;
    let mut out = io::stdout();
    writeln!(out, "listening {}", local.addr()?)?;
    out.flush()?;
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stats" {
            match local.conn_stats() {
                Some((active, served)) => writeln!(out, "stats {active} {served}")?,
                None => writeln!(out, "stats -")?,
            }
            out.flush()?;
        }
    }
    local.stop();
    Ok(())
}
