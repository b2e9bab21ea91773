//! Out of file descriptors, a shard's accept loop backs off instead of
//! spinning, keeps serving its connections, and recovers once descriptors
//! free up.
//!
//! The server runs in a child process (this test binary re-executed with
//! [`CHILD_ENV`] set, running the ignored test [`emfile_server_child`]) whose
//! `RLIMIT_NOFILE` is lowered to [`CHILD_NOFILE`], with `max_connections` set
//! far above it so that accepting fails with `EMFILE`. The parent holds more
//! raw TCP connections than the child has descriptors, checks that the child
//! does not burn its core meanwhile, drops them, and then needs a full echo
//! round trip from a fresh client.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amring::codec::Message;
use amring::{Client, Server, Shards, StreamContext};
use serde::{Deserialize, Serialize};

/// Set in the child's environment.
const CHILD_ENV: &str = "AMRING_EMFILE_CHILD";
/// The child's descriptor limit.
const CHILD_NOFILE: u64 = 200;
/// Connections the parent holds (more than the child can accept).
const HELD: usize = 300;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ping {
    n: u32,
}
impl Message for Ping {
    const WIRE_NAME: &'static str = "am.emfile.Ping";
}

/// The child: a one-shard server with a low descriptor limit. Prints
/// `listening <addr>`, answers `stats` lines on stdin, exits at EOF.
#[test]
#[ignore = "child process of accept_backs_off_out_of_descriptors_and_recovers"]
fn emfile_server_child() {
    assert_eq!(
        std::env::var(CHILD_ENV).as_deref(),
        Ok("1"),
        "run by the parent test only"
    );
    let lim = libc::rlimit {
        rlim_cur: CHILD_NOFILE,
        rlim_max: CHILD_NOFILE,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let h = Server::builder()
        .shards(Shards::Unpinned(1))
        .io_memory(256 * 1024)
        .max_connections(100_000)
        .handler(|_ctx: StreamContext, p: Ping| async move { Ok::<_, String>(Ping { n: p.n + 1 }) })
        .serve("127.0.0.1:0")
        .unwrap();
    println!("listening {}", h.local_addr().tcp().unwrap());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line == "stats" {
            let errors: u64 = h.stats().iter().map(|s| s.accept_errors).sum();
            println!("accept_errors {errors}");
        }
    }
    h.shutdown(Duration::from_millis(200));
    h.join().unwrap();
}

/// The child process, killed when dropped.
struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl ChildServer {
    fn start() -> (ChildServer, SocketAddr) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "emfile_server_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut c = ChildServer {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        let addr = c.expect_line("listening ").parse().unwrap();
        (c, addr)
    }

    /// What follows `prefix` on the next line containing it (bounded wait).
    fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                // libtest prints `test emfile_server_child ... ` without a
                // newline before the test's own first line.
                Ok(l) => {
                    if let Some(at) = l.find(prefix) {
                        return l[at + prefix.len()..].trim().to_owned();
                    }
                }
                Err(_) => break,
            }
        }
        panic!("child printed no line starting with {prefix:?}");
    }

    /// User + system CPU time of the child so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest.split(' ').skip(11).take(2).map(|x| x.parse().unwrap()).collect();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis((f[0] + f[1]) * 1000 / hz)
    }

    fn accept_errors(&mut self) -> u64 {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "stats").unwrap();
        stdin.flush().unwrap();
        self.expect_line("accept_errors ").parse().unwrap()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn accept_backs_off_out_of_descriptors_and_recovers() {
    let (mut child, addr) = ChildServer::start();
    let held: Vec<TcpStream> = (0..HELD)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {i}: {e}"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Out of descriptors now: the shard must not spin on the failing accept.
    let (c0, t0) = (child.cpu(), Instant::now());
    std::thread::sleep(Duration::from_millis(600));
    let (busy, window) = (child.cpu() - c0, t0.elapsed());
    assert!(
        busy < window / 2,
        "server used {busy:?} of CPU in {window:?} while out of descriptors (spinning accept loop)"
    );
    let errors = child.accept_errors();
    assert!(
        errors > 0,
        "no accept error counted with {HELD} connections and {CHILD_NOFILE} descriptors"
    );
    // Every held connection goes away: the server reaps them and serves again.
    drop(held);
    let dial = format!("tcp://{addr}");
    let reply = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(move || async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let attempt = async {
                    let conn = Client::builder()
                        .timeout(Some(Duration::from_secs(2)))
                        .connect(&dial)
                        .await?;
                    conn.set_recv_timeout(Some(Duration::from_secs(2)));
                    let r: Ping = conn.send_recv(&Ping { n: 41 }).await?;
                    conn.close();
                    Ok::<_, amring::Error>(r)
                };
                match attempt.await {
                    Ok(r) => return Ok(r),
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => glommio::timer::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        reply.expect("the server recovers once descriptors are free"),
        Ping { n: 42 }
    );
}
