//! Live interop with the Go reference through `tests/go-peer` (see `amring_tests::gopeer`).
//!
//! * Go client → amring server: `go-peer client --scenario all` for every codec order.
//! * amring client → Go server: echo (stream 0 and extra streams, both codecs),
//!   OkReply / ErrorReply, unknown names, type mismatch, payload sizes, many
//!   concurrent streams, push events, scalars and `once`.
//! * v3-requesting Go clients against amring (fallback to v2, spec §2.6), and a
//!   recovery-enabled Go server against the v2 amring client.
//!
//! Without the Go peer every test prints `SKIPPED: live Go interop: <reason>`
//! and passes, unless `AMRING_REQUIRE_GO=1` (then it fails).
//! (The amring-side scenarios land with the server/client API.)
//! Run: `AMRING_GO_PEER=/path/go-peer AMRING_REQUIRE_GO=1 cargo test -p amring-tests --test interop_go`.

use std::path::PathBuf;
use std::time::Duration;

use amring_tests::faultproxy::{Direction, FaultProxy};
use amring_tests::gopeer::{self, GoServer};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

// ---- helpers ----

fn peer() -> Option<PathBuf> {
    gopeer::go_peer()
}

fn start_go_server(peer: &std::path::Path, recovery: bool) -> GoServer {
    GoServer::start(peer, recovery).unwrap_or_else(|e| panic!("go-peer server: {e}"))
}

// ---- harness self-check: Go client against Go server ----

#[test]
fn harness_go_client_against_go_server() {
    let Some(peer) = peer() else { return };
    let mut srv = start_go_server(&peer, false);
    let out = gopeer::run_client(&peer, &srv.dial_addr(), "all", "1,2", false, CLIENT_TIMEOUT);
    assert!(out.success(), "Go↔Go baseline failed: {out}");
    for sc in [
        "echo",
        "streams",
        "handler_error",
        "ok_reply",
        "scalars",
        "payload_sizes",
        "subscribe",
        "once",
    ] {
        assert!(
            out.stdout.contains(&format!("ok   {sc}")),
            "scenario {sc} did not run: {out}"
        );
    }
    srv.check_alive().unwrap();
}

/// Fault-proxy self-check with the reference on both ends: a v3 Go client resumes across
/// a transport cut at a fixed byte offset (mid echo loop) and every echo still succeeds.
#[test]
fn harness_go_v3_resumes_across_proxy_cut() {
    let Some(peer) = peer() else { return };
    let mut srv = start_go_server(&peer, true);
    let proxy = FaultProxy::start(srv.socket_addr()).unwrap();
    // Handshake reply (12) + attach response (60) + roughly a third of the 100 echo replies.
    proxy.cut_after_bytes(Direction::ServerToClient, 12 + 60 + 1200);
    let out = gopeer::run_client(&peer, &proxy.dial_addr(), "echo", "1,2", true, CLIENT_TIMEOUT);
    assert!(out.success(), "v3 Go client across a cut: {out}");
    assert_eq!(proxy.cuts(), 1, "the cut must have happened mid-scenario");
    assert!(proxy.connections_accepted() >= 2, "the client must have reconnected");
    srv.check_alive().unwrap();
}

/// Negative control for the test above: the same cut breaks a v2 Go client.
#[test]
fn harness_go_v2_fails_across_proxy_cut() {
    let Some(peer) = peer() else { return };
    let mut srv = start_go_server(&peer, false);
    let proxy = FaultProxy::start(srv.socket_addr()).unwrap();
    proxy.cut_after_bytes(Direction::ServerToClient, 12 + 1200);
    let out = gopeer::run_client(&peer, &proxy.dial_addr(), "echo", "1,2", false, CLIENT_TIMEOUT);
    assert!(
        !out.success() && out.failures().len() == 1,
        "a v2 client must fail across a cut: {out}"
    );
    assert_eq!(proxy.cuts(), 1);
    srv.check_alive().unwrap();
}
