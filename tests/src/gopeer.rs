//! Running the Go reference peer (`tests/go-peer/`) and the reference's own
//! example programs from Rust tests.
//!
//! * Every `go` invocation goes through [`go_env`]: when the on-disk module proxy
//!   `<repo root>/../shared/goproxy` exists ([`goproxy_dir`]) it serves the
//!   reference module; elsewhere the ordinary registry does.
//! * [`go_peer`] locates the binary: `AMRING_GO_PEER` (a built binary) when set,
//!   else `go build` of `tests/go-peer` into `<target>/go-peer/` once per process.
//!   [`go_example`] builds the reference's `examples/{echo,hello}/cmd/{server,client}`
//!   the same way. When a build fails: with `AMRING_REQUIRE_GO=1` they panic with the
//!   reason, otherwise they print `SKIPPED: live Go interop: <reason>` to stderr and
//!   return `None`.
//! * [`GoServer`] runs `go-peer server` ([`GoServer::start`]) or an example server
//!   ([`GoServer::start_example`]) on a free loopback port and kills it (by pid)
//!   when dropped.
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
    available(peer_status())
}

/// `Some(path)`, or the `AMRING_REQUIRE_GO` panic / loud `SKIPPED` line for the reason.
fn available(status: &Result<PathBuf, String>) -> Option<PathBuf> {
    match status {
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
    go_build("go-peer", &[], ".")
}

/// The programs [`go_example`] builds: (name, `go build` flags, package). The
/// reference's own example programs, unchanged, from the module: servers need
/// `-tags server` (their handlers live in `//go:build server` files); clients are
/// built without it, so no handler is registered on the client side. Last, our
/// `cmd/amgen-echo` (the amgen-go fixture's types, echoed by the reference).
const EXAMPLES: [(&str, &[&str], &str); 5] = [
    (
        "echo-server",
        &["-tags", "server"],
        "github.com/adaptivemsg/adaptivemsg-go/examples/echo/cmd/server",
    ),
    (
        "echo-client",
        &[],
        "github.com/adaptivemsg/adaptivemsg-go/examples/echo/cmd/client",
    ),
    (
        "hello-server",
        &["-tags", "server"],
        "github.com/adaptivemsg/adaptivemsg-go/examples/hello/cmd/server",
    ),
    (
        "hello-client",
        &[],
        "github.com/adaptivemsg/adaptivemsg-go/examples/hello/cmd/client",
    ),
    ("amgen-echo", &[], "./cmd/amgen-echo"),
];

/// Path of one of the Go reference's example programs — `"echo-server"`,
/// `"echo-client"`, `"hello-server"` or `"hello-client"` — or of go-peer's
/// `"amgen-echo"` (a server of the amgen-go fixture's types, each echoed back as the
/// reference decoded it) built once per process
/// into `<target>/go-peer/<name>` from the module required by `tests/go-peer`.
/// They take `-addr tcp://127.0.0.1:PORT` and log to stderr; run the servers with
/// [`GoServer::start_example`].
///
/// `None` (after a loud `SKIPPED` line) when it cannot be built and
/// `AMRING_REQUIRE_GO` is not `1`.
///
/// # Panics
/// When the build fails and `AMRING_REQUIRE_GO=1`, with the exact reason; for an
/// unknown `name`.
pub fn go_example(name: &str) -> Option<PathBuf> {
    static BUILT: [OnceLock<Result<PathBuf, String>>; EXAMPLES.len()] = [const { OnceLock::new() }; EXAMPLES.len()];
    let i = EXAMPLES
        .iter()
        .position(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("unknown Go example {name:?}"));
    let (_, flags, package) = EXAMPLES[i];
    available(BUILT[i].get_or_init(|| go_build(name, flags, package)))
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

/// The on-disk module proxy serving the Go reference (`<repo root>/../shared/goproxy`,
/// absolute), when that folder exists; elsewhere the ordinary registry serves it.
pub fn goproxy_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/goproxy");
    dir.canonicalize().ok().filter(|d| d.is_dir())
}

/// Prepares `cmd` (a `go` invocation) to fetch the Go reference: when
/// [`goproxy_dir`] exists, `GOPROXY=file://<dir>,<upstream>` (upstream: `GOPROXY`
/// from the environment, else `go env GOPROXY`, else `direct`) and
/// `github.com/adaptivemsg/adaptivemsg-go` appended to `GONOSUMDB` (the checksum
/// database has no entry for it; `go.sum` pins it). Otherwise, and for every other
/// variable (`GOFLAGS`, ...), the environment is passed on unchanged.
pub fn go_env(cmd: &mut Command) {
    const MODULE: &str = "github.com/adaptivemsg/adaptivemsg-go";
    let Some(dir) = goproxy_dir() else { return };
    let local = format!("file://{}", dir.display());
    let upstream = upstream_goproxy();
    if upstream.split(',').any(|p| p == local) {
        cmd.env("GOPROXY", upstream);
    } else {
        cmd.env("GOPROXY", format!("{local},{upstream}"));
    }
    // Always set on the command (the inherited value plus the module, once),
    // so the command's own environment says what `go` gets.
    let nosumdb = std::env::var("GONOSUMDB").unwrap_or_default();
    let joined = if nosumdb.split(',').any(|p| p == MODULE) {
        nosumdb
    } else if nosumdb.is_empty() {
        MODULE.to_string()
    } else {
        format!("{nosumdb},{MODULE}")
    };
    cmd.env("GONOSUMDB", joined);
}

/// `GOPROXY` from the environment, else `go env GOPROXY` (asked once, the Go
/// installation's module proxy), else `direct` (no Go to ask: nothing builds anyway).
fn upstream_goproxy() -> String {
    if let Some(p) = std::env::var("GOPROXY").ok().filter(|p| !p.trim().is_empty()) {
        return p;
    }
    static GO_ENV: OnceLock<String> = OnceLock::new();
    GO_ENV
        .get_or_init(|| {
            let mut cmd = Command::new("go");
            cmd.args(["env", "GOPROXY"]);
            run_with_timeout(cmd, Duration::from_secs(30))
                .ok()
                .filter(RunOutput::success)
                .map(|r| r.stdout.trim().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "direct".to_string())
        })
        .clone()
}

/// `go build <flags> -o <target>/go-peer/<name> <package>` in [`module_dir`] (with
/// [`go_env`]), through a per-process temporary name and a rename, so concurrent
/// test binaries never see a half-written file.
fn go_build(name: &str, flags: &[&str], package: &str) -> Result<PathBuf, String> {
    let out_dir = target_dir().join("go-peer");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join(name);
    let tmp = out_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("go");
    // No VCS stamping: a checkout owned by another user would make `go build` fail.
    cmd.args(["build", "-buildvcs=false"])
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(package)
        .current_dir(module_dir());
    go_env(&mut cmd);
    let what = format!("`go build {package}` ({name}) in {}", module_dir().display());
    let run = run_with_timeout(cmd, BUILD_TIMEOUT).map_err(|e| format!("cannot run {what} (is Go installed?): {e}"))?;
    if run.timed_out {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{what} timed out after {BUILD_TIMEOUT:?}"));
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
        return Err(format!("{what} failed ({}): {}", run.status_text(), tail.join(" | ")));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move the built {name} to {}: {e}", out.display()))?;
    Ok(out)
}

/// Checks the log of the reference hello client (`go_example("hello-client")`,
/// which logs to stderr and exits 0 either way) against a server with the
/// reference hello handler: its three concurrent streams, one ErrorReply.
///
/// # Panics
/// When the client failed or a line is missing.
pub fn check_go_hello_log(out: &RunOutput) {
    assert!(out.success(), "{out}");
    for line in [
        "default stream: I am hello server, John (trace trace-John)",
        "stream A: I am good, Alice (trace trace-Alice)",
        "stream B expected error: handler_error: bad request: error please",
    ] {
        assert!(out.stderr.contains(line), "missing {line:?}: {out}");
    }
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

/// A running Go server (`go-peer server` or a reference example server), killed by
/// pid when dropped.
pub struct GoServer {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// What it is, for error texts (`go-peer server`, `echo-server`, ...).
    name: String,
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
        let (mut server, first_line) = GoServer::spawn(cmd, peer, "go-peer server")?;
        let line = match first_line.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                return Err(format!(
                    "go-peer server printed no `listening` line within {START_TIMEOUT:?}; stderr: {}",
                    server.stderr_text()
                ))
            }
        };
        server.addr = line
            .strip_prefix("listening tcp://")
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            .ok_or_else(|| format!("unexpected first line from go-peer server: {line:?}"))?;
        // The peer prints its address before Serve binds it: wait until the port accepts.
        server.wait_accepting()?;
        Ok(server)
    }

    /// Starts a reference example server (see [`go_example`]) as
    /// `<bin> -addr tcp://127.0.0.1:PORT <extra_args>` on a free loopback port and
    /// waits (bounded) until the port accepts connections.
    ///
    /// # Errors
    /// A text saying why the server did not come up (exited early, never accepted;
    /// its stderr included).
    pub fn start_example(bin: &Path, extra_args: &[&str]) -> Result<GoServer, String> {
        let name = bin
            .file_name()
            .map_or_else(|| bin.display().to_string(), |n| n.to_string_lossy().into_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot pick a free port for {name}: {e}"))?
            .port();
        let mut cmd = Command::new(bin);
        cmd.arg("-addr").arg(format!("tcp://127.0.0.1:{port}")).args(extra_args);
        let (mut server, _) = GoServer::spawn(cmd, bin, &name)?;
        server.addr = SocketAddr::from(([127, 0, 0, 1], port));
        server.wait_accepting()?;
        Ok(server)
    }

    /// Spawns `cmd` (stdin closed), collects its stderr, drains its stdout and
    /// forwards stdout's first line on the returned channel. The address is unset.
    fn spawn(mut cmd: Command, bin: &Path, name: &str) -> Result<(GoServer, mpsc::Receiver<String>), String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
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
        let server = GoServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            name: name.to_string(),
        };
        Ok((server, rx))
    }

    /// Waits (at most [`START_TIMEOUT`]) until `self.addr` accepts a TCP connection;
    /// fails if the process exits first.
    fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                // Give the stderr reader a moment to collect the error text.
                thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "{} exited early ({status}); stderr: {}",
                    self.name,
                    self.stderr_text()
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} never accepted on {} within {START_TIMEOUT:?}; stderr: {}",
                    self.name,
                    self.addr,
                    self.stderr_text()
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
                    "{} exited ({status}); stderr:\n{}",
                    self.name,
                    self.stderr_text()
                ))
            }
            Err(e) => Err(format!("cannot query {}: {e}", self.name)),
        }
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_env_adds_the_proxy_folder_when_present() {
        let mut cmd = Command::new("go");
        go_env(&mut cmd);
        let env: std::collections::HashMap<_, _> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        match goproxy_dir() {
            Some(dir) => {
                assert!(
                    dir.is_absolute() && dir.join("github.com/adaptivemsg").is_dir(),
                    "{}",
                    dir.display()
                );
                let proxy = env["GOPROXY"].clone().expect("GOPROXY set");
                let first = proxy.split(',').next().unwrap_or_default().to_string();
                assert_eq!(first, format!("file://{}", dir.display()));
                assert!(proxy.split(',').count() >= 2, "upstream kept: {proxy}");
                let nosumdb = env["GONOSUMDB"].clone().expect("GONOSUMDB set");
                assert!(
                    nosumdb.split(',').any(|p| p == "github.com/adaptivemsg/adaptivemsg-go"),
                    "{nosumdb}"
                );
            }
            None => assert!(env.is_empty(), "{env:?}"),
        }
    }

    /// Go↔Go: the reference echo server (built with `-tags server`) against
    /// `go-peer echo-demo`, and the reference hello client against its server.
    #[test]
    fn reference_examples_go_to_go() {
        let (Some(peer), Some(echo), Some(hello), Some(hello_client)) = (
            go_peer(),
            go_example("echo-server"),
            go_example("hello-server"),
            go_example("hello-client"),
        ) else {
            return;
        };
        let mut srv = GoServer::start_example(&echo, &[]).unwrap_or_else(|e| panic!("echo-server: {e}"));
        // One at a time: whoelse_sub wants no other client arriving meanwhile.
        for demo in ["timeout", "whoelse", "whoelse_sub"] {
            let mut cmd = Command::new(&peer);
            cmd.args(["echo-demo", "--addr", &srv.dial_addr(), "--cmd", demo]);
            let out = run_with_timeout(cmd, Duration::from_secs(30)).expect("run go-peer echo-demo");
            assert!(out.success() && out.failures().is_empty(), "echo-demo {demo}: {out}");
        }
        srv.check_alive().expect("echo-server alive");

        let mut srv = GoServer::start_example(&hello, &[]).unwrap_or_else(|e| panic!("hello-server: {e}"));
        let mut cmd = Command::new(&hello_client);
        cmd.args(["-addr", &srv.dial_addr()]);
        let out = run_with_timeout(cmd, Duration::from_secs(20)).expect("run hello-client");
        assert!(out.success(), "hello-client: {out}");
        // `log` lines: "2006/01/02 15:04:05 <text>"; the three streams finish in any order.
        let mut got: Vec<&str> = out.stderr.lines().filter_map(|l| l.splitn(3, ' ').nth(2)).collect();
        got.sort_unstable();
        let want = [
            "default stream: I am hello server, John (trace trace-John)",
            "stream A: I am good, Alice (trace trace-Alice)",
            "stream B expected error: handler_error: bad request: error please",
        ];
        assert_eq!(got, want, "hello-client: {out}");
        srv.check_alive().expect("hello-server alive");
    }
}
