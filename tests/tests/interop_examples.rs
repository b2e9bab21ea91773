//! The Go reference's own example programs (`examples/echo`, `examples/hello` of
//! `github.com/adaptivemsg/adaptivemsg-go`) against amring's ports of them
//! (`engine/examples/`), in both directions, all with v3 recovery as the
//! originals have it:
//!
//! * the Go example clients (built unchanged from the module: `echo-client`,
//!   `hello-client`; the shortened echo demos run by `go-peer echo-demo`, which
//!   imports the example's message package) against the amring ports of the
//!   example servers;
//! * the amring ports of the example clients against the Go example servers
//!   (built unchanged, with the `server` build tag that registers their
//!   handlers);
//! * the amring ports against each other.
//!
//! Shortened timings (the originals sleep 10 s per `MessageTimeout`, query
//! `WhoElse` 100 times every 2 s and subscribe forever): `MessageTimeout{secs:
//! 1}` with receive timeouts of 3 s and 300 ms; a few `WhoElse` rounds; a
//! bounded number of `WhoElseEvent`s. The echo handler's 500 ms sleep is kept.
//!
//! Without Go these tests print `SKIPPED: live Go interop: <reason>` and pass,
//! unless `AMRING_REQUIRE_GO=1` (CI), which turns a missing toolchain into a failure.

// The example ports are compiled here from their files; each includes the
// shared message module of its example (`echo_msgs`, `hello_msgs`), so the
// server and the client port each get their own copy of it.
#![allow(clippy::duplicate_mod)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amring::{Error, ServerHandle, Shards};
use amring_tests::gopeer::{self, GoServer, RunOutput};

#[allow(dead_code)]
#[path = "../../engine/examples/echo_server.rs"]
mod echo_server;

#[allow(dead_code)]
#[path = "../../engine/examples/echo_client.rs"]
mod echo_client;

#[allow(dead_code)]
#[path = "../../engine/examples/hello_server.rs"]
mod hello_server;

#[allow(dead_code)]
#[path = "../../engine/examples/hello_client.rs"]
mod hello_client;

use echo_client::TimeoutStep;

/// Upper bound for one Go client run.
const GO_CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

// ---- harness ----

/// Runs `f` to completion on a fresh glommio executor on its own thread.
fn on_glommio<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    amring_tests::on_glommio("example-client", f)
}

/// Stops an amring server (1 s grace).
fn stop(h: ServerHandle) {
    h.shutdown(Duration::from_secs(1));
    h.join().unwrap();
}

/// The amring echo server port on a loopback port (two shards: streams and
/// subscriptions cross shards through the shared state).
fn amring_echo_server() -> (ServerHandle, Arc<echo_server::StatMgr>) {
    echo_server::serve("tcp://127.0.0.1:0", Shards::Unpinned(2)).expect("amring echo server")
}

fn tcp_addr(h: &ServerHandle) -> String {
    format!("tcp://{}", h.local_addr().tcp().expect("tcp listener"))
}

/// Runs a Go example binary with `args` and returns its output.
fn run_go(bin: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    gopeer::run_with_timeout(cmd, GO_CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A Go example program, built from the reference module (skips without Go).
fn go_example(name: &str) -> Option<PathBuf> {
    gopeer::go_example(name)
}

/// Starts a Go example server (`echo-server` / `hello-server`).
fn go_example_server(name: &str) -> Option<GoServer> {
    let bin = go_example(name)?;
    Some(GoServer::start_example(&bin, &[]).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// Runs `go-peer echo-demo --cmd <cmd>` against `addr` and checks it passed.
fn go_echo_demo(addr: &str, cmd: &str, extra: &[&str]) -> Option<RunOutput> {
    let peer = gopeer::go_peer()?;
    let mut args = vec!["echo-demo", "--addr", addr, "--cmd", cmd];
    args.extend_from_slice(extra);
    let out = run_go(&peer, &args);
    assert!(out.success(), "go-peer echo-demo --cmd {cmd}: {out}");
    assert!(!out.stdout.contains("FAIL") && !out.stderr.contains("FAIL"), "{out}");
    Some(out)
}

/// The five `echoDemo` lines the reference client logs for a correct server.
fn expected_echo_lines() -> Vec<String> {
    (1..=5)
        .map(|i| format!("ni hao:{} ==> ni hao!:{}, yours echo.v1.0", i * 100, i * 100 + 1))
        .collect()
}

/// Checks the replies of `echo_client::echo_demo`.
fn check_echo_replies(replies: &[echo_client::echo_msgs::MessageReply]) {
    assert_eq!(replies.len(), 5);
    for (i, r) in replies.iter().enumerate() {
        let num = (i as i32 + 1) * 100;
        assert_eq!(r.msg, "ni hao!");
        assert_eq!(r.num, num + 1);
        assert_eq!(r.signature, "yours echo.v1.0");
    }
}

/// Checks the three outcomes of `hello_client::hello_demo`.
fn check_hello(out: &hello_client::HelloOutcomes) {
    match &out[0] {
        Ok(r) => {
            assert_eq!(r.answer, "I am hello server, John");
            assert_eq!(r.internal.trace_id, "trace-John");
        }
        Err(e) => panic!("default stream: {e}"),
    }
    match &out[1] {
        Ok(r) => {
            assert_eq!(r.answer, "I am good, Alice");
            assert_eq!(r.internal.trace_id, "trace-Alice");
        }
        Err(e) => panic!("stream A: {e}"),
    }
    match &out[2] {
        Err(Error::Remote { code, message }) => {
            assert_eq!(code, "handler_error");
            assert_eq!(message, "bad request: error please");
        }
        other => panic!("stream B: expected ErrorReply, got {other:?}"),
    }
}

/// Opens `n` amring connections to `addr` one after another; each stays
/// `hold` and is then closed ("other clients come and go").
async fn come_and_go(addr: &str, n: usize, hold: Duration) {
    for _ in 0..n {
        let c = echo_client::connect(addr).await.expect("extra client connects");
        glommio::timer::sleep(hold).await;
        c.close();
    }
}

/// `whoelse_subscribe_demo` on `conn` for `n` events while, once the
/// subscription is confirmed, `n` other clients come and go; returns the
/// announced addresses.
async fn subscribe_while_others_come_and_go(conn: &amring::Connection, addr: &str, n: usize) -> Vec<String> {
    let (tx, rx) = flume::bounded::<()>(1);
    let others_addr = addr.to_owned();
    let others = glommio::spawn_local(async move {
        if rx.recv_async().await.is_ok() {
            come_and_go(&others_addr, n, Duration::from_millis(50)).await;
        }
    });
    let addrs = echo_client::whoelse_subscribe_demo(conn, Some(n), Some(Duration::from_secs(5)), move || {
        let _ = tx.try_send(());
    })
    .await
    .unwrap();
    others.await;
    addrs
}

/// Number of addresses in a `WhoElseReply`.
fn client_count(clients: &str) -> usize {
    clients.split_whitespace().count()
}

// ---- Go example clients → amring example servers ----

/// The reference echo client, unchanged (`-cmd echo`): five requests, each
/// answered after 500 ms. Every request needs the stream context value that
/// the server's `on_new_stream` sets (the first one on the stream included).
#[test]
fn go_echo_client_against_amring_echo_server() {
    let Some(bin) = go_example("echo-client") else { return };
    let (h, mgr) = amring_echo_server();
    let out = run_go(&bin, &["-addr", &tcp_addr(&h), "-cmd", "echo"]);
    assert!(out.success(), "{out}");
    for line in expected_echo_lines() {
        assert!(out.stderr.contains(&line), "missing {line:?}: {out}");
    }
    assert_eq!(mgr.counter(), 5);
    stop(h);
}

/// `timeoutDemo` (shortened): no timeout, 3 s, 300 ms (times out), none.
#[test]
fn go_echo_timeout_demo_against_amring_echo_server() {
    let (h, _mgr) = amring_echo_server();
    if let Some(out) = go_echo_demo(&tcp_addr(&h), "timeout", &[]) {
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains("Recv timeout"),
            "{out}"
        );
    }
    stop(h);
}

/// `whoelseQueryDemo` (shortened): the client list grows as others connect.
#[test]
fn go_echo_whoelse_demo_against_amring_echo_server() {
    let (h, _mgr) = amring_echo_server();
    go_echo_demo(&tcp_addr(&h), "whoelse", &["--others", "2"]);
    stop(h);
}

/// `whoelseSubscribeDemo` (bounded): the subscription task pushes one
/// `WhoElseEvent` per client that comes (and goes) later.
#[test]
fn go_echo_whoelse_sub_demo_against_amring_echo_server() {
    let (h, _mgr) = amring_echo_server();
    if let Some(out) = go_echo_demo(&tcp_addr(&h), "whoelse_sub", &["--others", "3"]) {
        let log = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(log.matches("event: new client ").count(), 3, "{out}");
    }
    stop(h);
}

/// The reference hello client, unchanged: three concurrent streams, one ErrorReply.
#[test]
fn go_hello_client_against_amring_hello_server() {
    let Some(bin) = go_example("hello-client") else { return };
    let h = hello_server::serve("tcp://127.0.0.1:0", Shards::Unpinned(2)).unwrap();
    gopeer::check_go_hello_log(&run_go(&bin, &["-addr", &tcp_addr(&h)]));
    stop(h);
}

/// The same over a Unix socket (path), which the example programs support.
#[test]
fn go_hello_client_against_amring_hello_server_over_uds() {
    let Some(bin) = go_example("hello-client") else { return };
    let path = std::env::temp_dir().join(format!("amring-hello-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let addr = format!("uds://{}", path.display());
    let h = hello_server::serve(&addr, Shards::Unpinned(2)).unwrap();
    gopeer::check_go_hello_log(&run_go(&bin, &["-addr", &addr]));
    stop(h);
    assert!(!path.exists(), "the socket file is removed when the server stops");
}

// ---- amring example clients → Go example servers ----

#[test]
fn amring_echo_client_against_go_echo_server() {
    let Some(mut srv) = go_example_server("echo-server") else {
        return;
    };
    let addr = srv.dial_addr();
    let replies = on_glommio(move || async move {
        let conn = echo_client::connect(&addr).await.unwrap();
        let r = echo_client::echo_demo(&conn).await.unwrap();
        glommio::timer::sleep(gopeer::SETTLE).await;
        conn.close();
        r
    });
    check_echo_replies(&replies);
    srv.check_alive().unwrap();
}

#[test]
fn amring_echo_timeout_demo_against_go_echo_server() {
    let Some(mut srv) = go_example_server("echo-server") else {
        return;
    };
    let addr = srv.dial_addr();
    let steps = on_glommio(move || async move {
        let conn = echo_client::connect(&addr).await.unwrap();
        let s = echo_client::timeout_demo(&conn, 1, Duration::from_secs(3), Duration::from_millis(300))
            .await
            .unwrap();
        glommio::timer::sleep(gopeer::SETTLE).await;
        conn.close();
        s
    });
    assert_eq!(
        steps,
        [TimeoutStep::Ok, TimeoutStep::Ok, TimeoutStep::TimedOut, TimeoutStep::Ok]
    );
    srv.check_alive().unwrap();
}

#[test]
fn amring_echo_whoelse_demo_against_go_echo_server() {
    let Some(mut srv) = go_example_server("echo-server") else {
        return;
    };
    let addr = srv.dial_addr();
    on_glommio(move || async move {
        let conn = echo_client::connect(&addr).await.unwrap();
        let first = echo_client::whoelse_query_demo(&conn, 1, Duration::ZERO).await.unwrap();
        assert_eq!(client_count(&first[0]), 1, "{first:?}");
        let mut others = Vec::new();
        for _ in 0..2 {
            others.push(echo_client::connect(&addr).await.unwrap());
        }
        // The Go server lists a client once its OnConnect ran: poll (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = echo_client::whoelse_query_demo(&conn, 1, Duration::ZERO).await.unwrap();
            if client_count(&seen[0]) >= 3 {
                break;
            }
            assert!(Instant::now() < deadline, "client list never grew: {seen:?}");
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        glommio::timer::sleep(gopeer::SETTLE).await;
        for c in others {
            c.close();
        }
        conn.close();
    });
    srv.check_alive().unwrap();
}

#[test]
fn amring_echo_whoelse_sub_demo_against_go_echo_server() {
    let Some(mut srv) = go_example_server("echo-server") else {
        return;
    };
    let addr = srv.dial_addr();
    let addrs = on_glommio(move || async move {
        let conn = echo_client::connect(&addr).await.unwrap();
        let addrs = subscribe_while_others_come_and_go(&conn, &addr, 3).await;
        glommio::timer::sleep(gopeer::SETTLE).await;
        conn.close();
        addrs
    });
    check_event_addrs(&addrs, 3);
    srv.check_alive().unwrap();
}

/// `n` announced addresses, each non-empty and distinct.
fn check_event_addrs(addrs: &[String], n: usize) {
    assert_eq!(addrs.len(), n, "{addrs:?}");
    let mut uniq = addrs.to_vec();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), n, "addresses repeat: {addrs:?}");
    assert!(addrs.iter().all(|a| a.starts_with("127.0.0.1:")), "{addrs:?}");
}

#[test]
fn amring_hello_client_against_go_hello_server() {
    let Some(mut srv) = go_example_server("hello-server") else {
        return;
    };
    let addr = srv.dial_addr();
    let out = on_glommio(move || async move { hello_client::hello_demo(&addr).await.unwrap() });
    check_hello(&out);
    srv.check_alive().unwrap();
}

// ---- the amring ports against each other (no Go needed) ----

#[test]
fn amring_example_ports_against_each_other() {
    let (h, mgr) = amring_echo_server();
    let hello = hello_server::serve("tcp://127.0.0.1:0", Shards::Unpinned(2)).unwrap();
    let (echo_addr, hello_addr) = (tcp_addr(&h), tcp_addr(&hello));
    let (replies, steps, addrs, hello_out) = on_glommio(move || async move {
        let conn = echo_client::connect(&echo_addr).await.unwrap();
        let replies = echo_client::echo_demo(&conn).await.unwrap();
        let steps = echo_client::timeout_demo(&conn, 1, Duration::from_secs(3), Duration::from_millis(300))
            .await
            .unwrap();
        let addrs = subscribe_while_others_come_and_go(&conn, &echo_addr, 3).await;
        conn.close();
        (
            replies,
            steps,
            addrs,
            hello_client::hello_demo(&hello_addr).await.unwrap(),
        )
    });
    check_echo_replies(&replies);
    assert_eq!(
        steps,
        [TimeoutStep::Ok, TimeoutStep::Ok, TimeoutStep::TimedOut, TimeoutStep::Ok]
    );
    check_event_addrs(&addrs, 3);
    check_hello(&hello_out);
    assert_eq!(mgr.counter(), 5);
    stop(h);
    stop(hello);
}
