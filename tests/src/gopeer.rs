//! Running the Go reference peer (`tests/go-peer/`) from Rust tests.
//!
//! * [`go_peer`] locates the binary: `AMRING_GO_PEER` (a built binary), else
//!   `go build` of `tests/go-peer` into `<target>/go-peer/` once per process.
//!   When neither works: with `AMRING_REQUIRE_GO=1` it panics with the reason,
//!   otherwise it prints `SKIPPED: live Go interop: <reason>` to stderr and
//!   returns `None`.
//! * [`GoServer`] runs `go-peer server` on a free loopback port and kills it
//!   (by pid) when dropped.
//! * [`run_client`] runs `go-peer client` with a timeout and returns its output.
//!
//! Spec §9 note 24: the Go side can crash when a connection closes while a frame
//! is still queued; callers closing a connection to a Go server should
//! [`settle`] first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long `go-peer server` may take to print its `listening` line and accept.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for `go build`.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
/// How long in-flight traffic is given before a Go-side connection is closed (§9 note 24).
pub const SETTLE: Duration = Duration::from_millis(50);

/// Sleeps [`SETTLE`]: let queued frames drain before closing a connection to Go.
pub fn settle() {
    thread::sleep(SETTLE);
}

/// Whether `AMRING_REQUIRE_GO=1` is set (missing Go must fail the test, not skip it).
pub fn go_required() -> bool {
    std::env::var("AMRING_REQUIRE_GO").is_ok_and(|v| v == "1")
}

/// Path of the Go peer binary, or `None` (after a loud `SKIPPED` line) when it is
/// unavailable and `AMRING_REQUIRE_GO` is not `1`.
///
/// # Panics
/// When the peer is unavailable and `AMRING_REQUIRE_GO=1`, with the exact reason.
pub fn go_peer() -> Option<PathBuf> {
    match peer_status() {
        Ok(p) => Some(p.clone()),
        Err(reason) => {
            if go_required() {
                panic!("live Go interop required (AMRING_REQUIRE_GO=1) but unavailable: {reason}");
            }
            // Straight to the process's stderr: libtest does not capture this, so the skip is
            // visible even in a passing run.
            let _ = writeln!(std::io::stderr(), "SKIPPED: live Go interop: {reason}");
            None
        }
    }
}

/// Path of the Go peer binary, or why it is unavailable (located once per
/// process, like [`go_peer`]); prints nothing and never panics.
pub fn go_peer_status() -> Result<PathBuf, String> {
    peer_status().clone()
}

fn peer_status() -> &'static Result<PathBuf, String> {
    static PEER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PEER.get_or_init(locate)
}

fn locate() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("AMRING_GO_PEER") {
        let path = PathBuf::from(&p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("AMRING_GO_PEER={p} is not a file"))
        };
    }
    build()
}

/// The Go module's directory (`tests/go-peer`).
pub fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go-peer")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"),
    }
}

/// `go build` into `<target>/go-peer/go-peer` (through a per-process temporary
/// name and a rename, so concurrent test binaries never see a half-written file).
fn build() -> Result<PathBuf, String> {
    let out_dir = target_dir().join("go-peer");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join("go-peer");
    let tmp = out_dir.join(format!("go-peer.{}.tmp", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.arg("build").arg("-o").arg(&tmp).arg(".").current_dir(module_dir());
    let run =
        run_with_timeout(cmd, BUILD_TIMEOUT).map_err(|e| format!("cannot run `go build` (is Go installed?): {e}"))?;
    if run.timed_out {
        return Err(format!(
            "`go build` in {} timed out after {BUILD_TIMEOUT:?}",
            module_dir().display()
        ));
    }
    if !run.success() {
        let _ = std::fs::remove_file(&tmp);
        let tail: Vec<&str> = run
            .stderr
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!(
            "`go build` in {} failed ({}): {}",
            module_dir().display(),
            run.status_text(),
            tail.join(" | ")
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move the built peer to {}: {e}", out.display()))?;
    Ok(out)
}

/// Output of a finished (or killed) child process.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit status; `None` when the process was killed after the timeout.
    pub status: Option<ExitStatus>,
    /// Whether the timeout expired (the process was then killed).
    pub timed_out: bool,
    /// Everything the process wrote to stdout.
    pub stdout: String,
    /// Everything the process wrote to stderr.
    pub stderr: String,
}

impl RunOutput {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// A short text for the exit status.
    pub fn status_text(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "timed out, killed".into(),
            (false, Some(s)) => s.to_string(),
            (false, None) => "unknown".into(),
        }
    }

    /// The scenario lines `go-peer client` printed that start with `FAIL`.
    pub fn failures(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| l.starts_with("FAIL")).collect()
    }
}

impl std::fmt::Display for RunOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}]\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status_text(),
            self.stdout,
            self.stderr
        )
    }
}

fn collect<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// Runs `cmd` (stdout/stderr captured, stdin closed) and kills it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> std::io::Result<RunOutput> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait()? {
            break (Some(s), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        thread::sleep(Duration::from_millis(10));
    };
    Ok(RunOutput {
        status,
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs `go-peer client --addr <addr> --scenario <scenario> --codecs <codecs> [--recovery]`
/// (`codecs` like `"2,1"`), killed after `timeout`.
///
/// # Panics
/// If the binary cannot be started at all.
pub fn run_client(
    peer: &Path,
    addr: &str,
    scenario: &str,
    codecs: &str,
    recovery: bool,
    timeout: Duration,
) -> RunOutput {
    let mut cmd = Command::new(peer);
    cmd.args(["client", "--addr", addr, "--scenario", scenario, "--codecs", codecs]);
    if recovery {
        cmd.arg("--recovery");
    }
    run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("cannot start {}: {e}", peer.display()))
}

/// A running `go-peer server`, killed by pid when dropped.
pub struct GoServer {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl GoServer {
    /// Starts `go-peer server --addr tcp://127.0.0.1:0 [--recovery]`, waits (bounded)
    /// for its `listening` line and until the port accepts connections.
    ///
    /// # Errors
    /// A text saying why the server did not come up (its stderr included).
    pub fn start(peer: &Path, recovery: bool) -> Result<GoServer, String> {
        GoServer::start_pinned(peer, recovery, None, None)
    }

    /// Like [`GoServer::start`], optionally pinned with `taskset -c <cpus>` and
    /// run with `GOMAXPROCS=<procs>` (benches: the Go server on the same single
    /// core as the amring server).
    ///
    /// # Errors
    /// A text saying why the server did not come up (its stderr included).
    pub fn start_pinned(
        peer: &Path,
        recovery: bool,
        cpus: Option<&str>,
        gomaxprocs: Option<u32>,
    ) -> Result<GoServer, String> {
        // taskset execs the peer, so the child's pid stays the peer's pid.
        let mut cmd = match cpus {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c]).arg(peer);
                t
            }
            None => Command::new(peer),
        };
        cmd.args(["server", "--addr", "tcp://127.0.0.1:0"]);
        if recovery {
            cmd.arg("--recovery");
        }
        if let Some(n) = gomaxprocs {
            cmd.env("GOMAXPROCS", n.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", peer.display()))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || {
                // Forward only the first line; keep draining so the server never blocks on stdout.
                let mut first = true;
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if first {
                        let _ = tx.send(line);
                        first = false;
                    }
                }
            });
        }
        let mut server = GoServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                return Err(format!(
                    "go-peer server printed no `listening` line within {START_TIMEOUT:?}; stderr: {}",
                    server.stderr_text()
                ))
            }
        };
        let addr = line
            .strip_prefix("listening tcp://")
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            .ok_or_else(|| format!("unexpected first line from go-peer server: {line:?}"))?;
        server.addr = addr;
        // The peer prints its address before Serve binds it: wait until the port accepts.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().ok().flatten() {
                return Err(format!(
                    "go-peer server exited early ({status}); stderr: {}",
                    server.stderr_text()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "go-peer server never accepted on {addr}; stderr: {}",
                    server.stderr_text()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's TCP address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's address in adaptivemsg syntax (`tcp://127.0.0.1:PORT`).
    pub fn dial_addr(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The process id (what [`Drop`] kills).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Ok` while the server runs; otherwise its exit status and stderr (a crash,
    /// e.g. the §9 note 24 races or a handler panic).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                // Give the stderr reader a moment to collect the panic text.
                thread::sleep(Duration::from_millis(50));
                Err(format!(
                    "go-peer server exited ({status}); stderr:\n{}",
                    self.stderr_text()
                ))
            }
            Err(e) => Err(format!("cannot query go-peer server: {e}")),
        }
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
