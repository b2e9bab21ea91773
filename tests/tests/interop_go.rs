//! Live interop with the Go reference through `tests/go-peer` (see `amring_tests::gopeer`).
//!
//! * Go client → amring server: `go-peer client --scenario all` for every codec order.
//! * amring client → Go server: echo (stream 0 and extra streams, both codecs),
//!   OkReply / ErrorReply, unknown names, type mismatch, payload sizes, many
//!   concurrent streams, push events, scalars and `once`.
//! * v3-requesting Go clients against amring without recovery (fallback to v2,
//!   spec §2.6), and a recovery-enabled Go server against the v2 amring client.
//! * Live v3: the Go recovery client against the amring recovery server (all
//!   scenarios; and across fault-proxy cuts, resuming), and the amring v3
//!   client against `go-peer server --recovery` (echo on several streams,
//!   across cuts: every reply exactly once, in order).
//!
//! Without the Go peer every test prints `SKIPPED: live Go interop: <reason>`
//! and passes, unless `AMRING_REQUIRE_GO=1` (then it fails).
//! Run: `AMRING_GO_PEER=/path/go-peer AMRING_REQUIRE_GO=1 cargo test -p amring-tests --test interop_go`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use amring::codec::{CodecKind, Message, OkReply};
use amring::{Client, ClientRecoveryOptions, Connection, Error, Server, ServerHandle, Shards, StreamContext};
use amring_proto::attach::RecoveryOptions;
use amring_tests::faultproxy::{Direction, FaultProxy};
use amring_tests::gopeer::{self, GoServer};
use amring_tests::peermsg::{Scalars, ScalarsReply};
use serde::{Deserialize, Serialize};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

// ---- the capmsg types of tests/go-peer/capmsg (wire names am.capmsg.*) ----

macro_rules! capmsg {
    ($($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
        #[serde(default)]
        struct $name { $($(#[$fattr])* $field: $ty),* }
        impl Message for $name {
            const WIRE_NAME: &'static str = concat!("am.capmsg.", stringify!($name));
        }
    )*};
}

capmsg! {
    /// `EchoRequest{Text}` → `EchoReply{Text}`.
    EchoRequest { text: String }
    /// Reply to `EchoRequest`.
    EchoReply { text: String }
    /// `FailRequest{Why}` → `ErrorReply{handler_error, "failed: " + why}`.
    FailRequest { why: String }
    /// `NilRequest{}` → `OkReply`.
    NilRequest {}
    /// `Subscribe{Count}` → `OkReply`, then `Event{1..count}` pushed on the stream.
    Subscribe { count: i32 }
    /// A pushed event.
    Event { seq: i32 }
    /// `BigRequest{N}` → `BigReply{Data: N zero bytes}`.
    BigRequest { n: i32 }
    /// Reply to `BigRequest`.
    BigReply { data: serde_bytes::ByteBuf }
    /// A type no Go peer registers (spec §9 note 5: no reply).
    Unregistered { text: String }
}

/// The values `go-peer`'s `scalars` scenario sends (extremes of every kind).
fn scalars_sample() -> Scalars {
    Scalars {
        s: "s\u{0}é".into(),
        b: true,
        i: -1 << 40,
        i8: i8::MIN,
        i16: i16::MAX,
        i32: i32::MIN,
        i64: i64::MAX,
        u: u64::MAX,
        u8: u8::MAX,
        u16: u16::MAX,
        u32: u32::MAX,
        u64: u64::MAX,
        f32: 1.5,
        f64: -0.1,
        raw: serde_bytes::ByteBuf::from(vec![0xde, 0xad, 0xbe, 0xef]),
    }
}

// ---- helpers ----

fn peer() -> Option<PathBuf> {
    gopeer::go_peer()
}

/// Runs `f` to completion on a fresh glommio executor on its own thread.
fn on_glommio<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    amring_tests::on_glommio("interop-client", f)
}

/// An amring server with the capmsg handlers (the same behaviour as `go-peer server`).
struct AmringServer {
    handle: Option<ServerHandle>,
}

impl AmringServer {
    fn start() -> AmringServer {
        AmringServer::start_with(None)
    }

    /// With `Some`, v3 recovery is enabled (two shards, so resumes may need a hand-off).
    fn start_with(recovery: Option<RecoveryOptions>) -> AmringServer {
        let shards = if recovery.is_some() { 2 } else { 1 };
        let handle = Server::builder()
            .shards(Shards::Unpinned(shards))
            .recovery(recovery)
            .io_memory(512 * 1024)
            .handler(|_ctx: StreamContext, m: EchoRequest| async move { Ok::<_, String>(EchoReply { text: m.text }) })
            .handler(|_ctx: StreamContext, m: FailRequest| async move { Err::<(), _>(format!("failed: {}", m.why)) })
            .handler(|_ctx: StreamContext, _m: NilRequest| async move { Ok::<_, String>(()) })
            .handler(|_ctx: StreamContext, m: BigRequest| async move {
                let n = usize::try_from(m.n).map_err(|_| format!("negative size {}", m.n))?;
                Ok::<_, String>(BigReply {
                    data: serde_bytes::ByteBuf::from(vec![0u8; n]),
                })
            })
            .handler(|_ctx: StreamContext, m: Scalars| async move { Ok::<_, String>(ScalarsReply(m)) })
            .handler(|ctx: StreamContext, m: Subscribe| async move {
                let count = m.count;
                ctx.new_task(move |s| async move {
                    // Like the Go handler: the OkReply goes first, events follow.
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    for seq in 1..=count {
                        if s.send(&Event { seq }).await.is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
            .serve("tcp://127.0.0.1:0")
            .expect("amring server starts");
        AmringServer { handle: Some(handle) }
    }

    fn dial_addr(&self) -> String {
        let tcp = self
            .handle
            .as_ref()
            .and_then(|h| h.local_addr().tcp())
            .expect("tcp listener");
        format!("tcp://{tcp}")
    }
}

impl Drop for AmringServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

fn start_go_server(peer: &std::path::Path, recovery: bool) -> GoServer {
    GoServer::start(peer, recovery).unwrap_or_else(|e| panic!("go-peer server: {e}"))
}

/// Connects the amring client to `addr` offering `codecs`.
async fn connect(addr: &str, codecs: &[CodecKind]) -> Connection {
    Client::builder()
        .codecs(codecs.iter().copied())
        .timeout(Some(Duration::from_secs(5)))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr} with {codecs:?}: {e}"))
}

/// Closes a connection to a Go server after letting traffic settle (spec §9 note 24).
async fn close_settled(conn: Connection) {
    glommio::timer::sleep(gopeer::SETTLE).await;
    conn.close();
}

const BOTH: [&[CodecKind]; 2] = [&[CodecKind::Compact], &[CodecKind::Map]];

/// Starts `go-peer server` (with `--recovery` when asked), runs `f(dial address)`
/// on a glommio executor, then checks the Go server survived. Skips without the peer.
fn with_go_server<F, Fut>(recovery: bool, f: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let Some(peer) = peer() else { return };
    let mut srv = start_go_server(&peer, recovery);
    let addr = srv.dial_addr();
    on_glommio(move || f(addr));
    srv.check_alive().unwrap();
}

/// For each codec offer in `offers`: connects to `addr`, runs `body` (which
/// hands the connection back), then closes it once traffic settled.
async fn for_each_codec<F, Fut>(addr: &str, offers: &[&'static [CodecKind]], mut body: F)
where
    F: FnMut(Connection, &'static [CodecKind]) -> Fut,
    Fut: Future<Output = Connection>,
{
    for &codecs in offers {
        let conn = connect(addr, codecs).await;
        let conn = body(conn, codecs).await;
        close_settled(conn).await;
    }
}

/// The checks on a `go-peer client --scenario all` run: it succeeded, no
/// scenario failed, and all 8 scenarios reported ok.
fn assert_all_scenarios_ok(out: &gopeer::RunOutput, what: &str) {
    assert!(out.success(), "{what}: {out}");
    assert_eq!(out.failures(), Vec::<&str>::new());
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok   ")).count(),
        8,
        "{out}"
    );
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

// ---- Go client → amring server ----

fn go_client_all(codecs: &str, recovery: bool) {
    let Some(peer) = peer() else { return };
    let srv = AmringServer::start();
    let out = gopeer::run_client(&peer, &srv.dial_addr(), "all", codecs, recovery, CLIENT_TIMEOUT);
    assert_all_scenarios_ok(
        &out,
        &format!("go-peer client --codecs {codecs} (recovery={recovery}) against amring"),
    );
}

#[test]
fn go_client_to_amring_codecs_1_2() {
    go_client_all("1,2", false);
}

#[test]
fn go_client_to_amring_codecs_2_1() {
    go_client_all("2,1", false);
}

#[test]
fn go_client_to_amring_compact_only() {
    go_client_all("1", false);
}

#[test]
fn go_client_to_amring_map_only() {
    go_client_all("2", false);
}

/// A recovery-enabled Go client asks for v3; an amring server without recovery options must answer with
/// the exact fallback reply (accept=0, version=2, spec §2.6 / §9 note 14) so the Go
/// client continues on v2.
#[test]
fn go_recovery_client_falls_back_to_v2_on_amring() {
    go_client_all("1,2", true);
}

// ---- amring client → Go server ----

#[test]
fn amring_client_echo_on_stream0_and_extra_streams_both_codecs() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            assert_eq!(conn.codec(), codecs[0]);
            for i in 0..50 {
                let text = format!("s0-{i}");
                let r: EchoReply = conn.send_recv(&EchoRequest { text: text.clone() }).await.unwrap();
                assert_eq!(r.text, text);
            }
            for s in 0..4 {
                let st = conn.new_stream().unwrap();
                assert_ne!(st.id(), 0);
                for i in 0..20 {
                    let text = format!("s{}-{i}-{}", st.id(), "x".repeat(s * 100));
                    let r: EchoReply = st.send_recv(&EchoRequest { text: text.clone() }).await.unwrap();
                    assert_eq!(r.text, text);
                }
            }
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_codec_preference_order() {
    with_go_server(false, |addr| async move {
        const OFFERS: [&[CodecKind]; 2] = [
            &[CodecKind::Map, CodecKind::Compact],
            &[CodecKind::Compact, CodecKind::Map],
        ];
        for_each_codec(&addr, &OFFERS, |conn, codecs| async move {
            // The Go server picks the first offered codec it supports (spec §2.5).
            assert_eq!(conn.codec(), codecs[0]);
            let r: EchoReply = conn.send_recv(&EchoRequest { text: "pref".into() }).await.unwrap();
            assert_eq!(r.text, "pref");
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_ok_reply_and_error_reply() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            let st = conn.new_stream().unwrap();
            let _ok: OkReply = st.send_recv(&NilRequest {}).await.unwrap();
            match st.send_recv::<_, EchoReply>(&FailRequest { why: "boom".into() }).await {
                Err(Error::Remote { code, message }) => {
                    assert_eq!(code, "handler_error");
                    assert_eq!(message, "failed: boom");
                }
                other => panic!("{codecs:?}: want Remote error, got {other:?}"),
            }
            // The stream stays usable after a remote error.
            let r: EchoReply = st.send_recv(&EchoRequest { text: "after".into() }).await.unwrap();
            assert_eq!(r.text, "after");
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_unknown_message_gets_no_reply_and_stream_stays_usable() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            let st = conn.new_stream().unwrap();
            st.set_recv_timeout(Some(Duration::from_millis(300)));
            match st.send_recv::<_, EchoReply>(&Unregistered { text: "?".into() }).await {
                Err(Error::RecvTimeout) => {}
                other => panic!("{codecs:?}: unknown name must get no reply (§9 note 5), got {other:?}"),
            }
            st.set_recv_timeout(Some(Duration::from_secs(5)));
            let r: EchoReply = st.send_recv(&EchoRequest { text: "still".into() }).await.unwrap();
            assert_eq!(r.text, "still");
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_type_mismatch() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            let st = conn.new_stream().unwrap();
            match st.send_recv::<_, BigReply>(&EchoRequest { text: "x".into() }).await {
                Err(Error::TypeMismatch { expected, got }) => {
                    assert_eq!(expected, "am.capmsg.BigReply");
                    assert_eq!(got, "am.capmsg.EchoReply");
                }
                other => panic!("{codecs:?}: want TypeMismatch, got {other:?}"),
            }
            // Other streams (and stream 0) are unaffected.
            let r: EchoReply = conn.send_recv(&EchoRequest { text: "ok".into() }).await.unwrap();
            assert_eq!(r.text, "ok");
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_payload_sizes() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            for n in [0i32, 1, 255, 256, 65_535, 65_536, 1 << 20] {
                let r: BigReply = conn
                    .send_recv(&BigRequest { n })
                    .await
                    .unwrap_or_else(|e| panic!("{codecs:?} n={n}: {e}"));
                assert_eq!(r.data.len(), n as usize, "{codecs:?}");
                assert!(r.data.iter().all(|&b| b == 0));
            }
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_many_concurrent_streams() {
    with_go_server(false, |addr| async move {
        let conn = std::rc::Rc::new(connect(&addr, &[CodecKind::Compact, CodecKind::Map]).await);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let st = conn.new_stream().unwrap();
            tasks.push(glommio::spawn_local(async move {
                for i in 0..20 {
                    let text = format!("{}-{i}", st.id());
                    let r: EchoReply = st.send_recv(&EchoRequest { text: text.clone() }).await.unwrap();
                    assert_eq!(r.text, text);
                }
                st.id()
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await);
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 64, "stream ids must be distinct");
        match std::rc::Rc::try_unwrap(conn) {
            Ok(conn) => close_settled(conn).await,
            Err(_) => panic!("the stream tasks still hold the connection"),
        }
    });
}

#[test]
fn amring_client_subscribe_receives_pushed_events() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, _codecs| async move {
            let st = conn.new_stream().unwrap();
            let _: OkReply = st.send_recv(&Subscribe { count: 5 }).await.unwrap();
            for seq in 1..=5 {
                let e: Event = st.recv().await.unwrap();
                assert_eq!(e.seq, seq);
            }
            conn
        })
        .await;
    });
}

#[test]
fn amring_client_scalars_round_trip() {
    with_go_server(false, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, codecs| async move {
            let want = scalars_sample();
            let got: ScalarsReply = conn.send_recv(&want).await.unwrap();
            assert_eq!(got.0, want, "{codecs:?}");
            let zero: ScalarsReply = conn.send_recv(&Scalars::default()).await.unwrap();
            assert_eq!(zero.0, Scalars::default(), "{codecs:?}");
            conn
        })
        .await;
    });
}

#[test]
fn amring_once_against_go_server() {
    with_go_server(false, |addr| async move {
        for i in 0..3 {
            let text = format!("once-{i}");
            let r: EchoReply = amring::once(&addr, &EchoRequest { text: text.clone() }).await.unwrap();
            assert_eq!(r.text, text);
        }
        // `once` closes right after the reply; the Go server must survive it
        // (§9 note 24): let it settle before `with_go_server` checks it.
        glommio::timer::sleep(gopeer::SETTLE).await;
    });
}

/// A recovery-enabled Go server still serves v2 clients.
#[test]
fn amring_v2_client_against_recovery_go_server() {
    with_go_server(true, |addr| async move {
        for_each_codec(&addr, &BOTH, |conn, _codecs| async move {
            let st = conn.new_stream().unwrap();
            for i in 0..10 {
                let text = format!("v2-{i}");
                let r: EchoReply = st.send_recv(&EchoRequest { text: text.clone() }).await.unwrap();
                assert_eq!(r.text, text);
            }
            conn
        })
        .await;
    });
}

// ---- live v3 (recovery) interop ----

fn amring_recovery_opts() -> RecoveryOptions {
    RecoveryOptions {
        detached_ttl: Duration::from_secs(30),
        ..RecoveryOptions::default()
    }
}

/// Go recovery client → amring recovery server, every scenario, no faults:
/// the session is v3 end to end (the amring server counts it).
#[test]
fn go_recovery_client_all_scenarios_on_amring_v3() {
    let Some(peer) = peer() else { return };
    for codecs in ["1,2", "2,1"] {
        let srv = AmringServer::start_with(Some(amring_recovery_opts()));
        let out = gopeer::run_client(&peer, &srv.dial_addr(), "all", codecs, true, CLIENT_TIMEOUT);
        assert_all_scenarios_ok(
            &out,
            &format!("go-peer client --recovery --codecs {codecs} against amring v3"),
        );
        let st = srv.handle.as_ref().unwrap().stats();
        assert!(
            st.iter().map(|s| s.served).sum::<u64>() >= 1 && st.iter().map(|s| s.sessions).sum::<u64>() >= 1,
            "the Go client must have attached v3 sessions: {st:?}"
        );
    }
}

/// Go recovery client → amring recovery server through the fault proxy, with
/// one cut mid-traffic at several byte offsets in each direction: the Go
/// client resumes (a second transport reaches the server as a resume) and
/// every echo succeeds.
#[test]
fn go_recovery_client_resumes_on_amring_across_proxy_cuts() {
    let Some(peer) = peer() else { return };
    // Handshake reply (12) + attach response (60) + part of the echo replies;
    // client → server: hello (14) + attach request (44) + part of the requests.
    let cuts = [
        (Direction::ServerToClient, 12 + 60 + 300),
        (Direction::ServerToClient, 12 + 60 + 1201),
        (Direction::ClientToServer, 14 + 44 + 77),
        (Direction::ClientToServer, 14 + 44 + 903),
    ];
    for (dir, at) in cuts {
        let srv = AmringServer::start_with(Some(amring_recovery_opts()));
        let target = srv.handle.as_ref().unwrap().local_addr().tcp().unwrap();
        let proxy = FaultProxy::start(target).unwrap();
        proxy.cut_after_bytes(dir, at);
        let out = gopeer::run_client(&peer, &proxy.dial_addr(), "echo", "1,2", true, CLIENT_TIMEOUT);
        assert!(
            out.success(),
            "Go v3 client across a cut ({dir:?} after {at} B) on amring: {out}"
        );
        assert_eq!(
            proxy.cuts(),
            1,
            "the cut must have happened mid-scenario ({dir:?} {at})"
        );
        assert!(proxy.connections_accepted() >= 2, "the Go client must have reconnected");
        let st = srv.handle.as_ref().unwrap().stats();
        assert!(
            st.iter().map(|s| s.resumes).sum::<u64>() >= 1,
            "amring must have accepted a resume: {st:?}"
        );
    }
}

/// Echo on several streams through `conn`, `rounds` rounds; every reply must
/// match its request (so none is lost, duplicated or reordered). Runs
/// `fault(round)` after each round.
async fn v3_echo_rounds(conn: &Connection, streams: usize, rounds: usize, fault: impl Fn(usize)) {
    let ss: Vec<_> = (0..streams).map(|_| conn.new_stream().unwrap()).collect();
    for s in &ss {
        s.set_recv_timeout(Some(Duration::from_secs(20)));
    }
    for i in 0..rounds {
        let futs: Vec<_> = ss
            .iter()
            .enumerate()
            .map(|(k, s)| async move {
                let text = format!("s{k}-r{i}-{}", "x".repeat(i % 7 * 10));
                let r: EchoReply = s
                    .send_recv(&EchoRequest { text: text.clone() })
                    .await
                    .unwrap_or_else(|e| panic!("stream {k} round {i}: {e}"));
                assert_eq!(r.text, text, "reply lost, duplicated or reordered on stream {k}");
            })
            .collect();
        for f in futs {
            f.await;
        }
        fault(i);
    }
}

/// amring v3 client → `go-peer server --recovery`, echo on several streams,
/// with one proxy cut mid-traffic at several offsets: every reply arrives
/// exactly once and in order, after a resume.
#[test]
fn amring_v3_client_resumes_on_go_server_across_proxy_cuts() {
    let Some(peer) = peer() else { return };
    let cuts = [
        (Direction::ClientToServer, 500u64),
        (Direction::ClientToServer, 2_001),
        (Direction::ServerToClient, 12 + 60 + 333),
        (Direction::ServerToClient, 12 + 60 + 2_500),
    ];
    for (dir, at) in cuts {
        let mut srv = start_go_server(&peer, true);
        let proxy = std::sync::Arc::new(FaultProxy::start(srv.socket_addr()).unwrap());
        let p2 = proxy.clone();
        on_glommio(move || async move {
            let conn = Client::builder()
                .timeout(Some(Duration::from_secs(5)))
                .recovery(ClientRecoveryOptions {
                    min_backoff: Duration::from_millis(5),
                    max_backoff: Duration::from_millis(100),
                    max_replay_bytes: 0,
                })
                .connect(&p2.dial_addr())
                .await
                .unwrap();
            assert_eq!(conn.debug_state().protocol, 3, "v3 with the recovery Go server");
            p2.cut_after_bytes(dir, at);
            v3_echo_rounds(&conn, 4, 30, |_| {}).await;
            let d = conn.debug_state();
            assert_eq!(p2.cuts(), 1, "the cut must have happened mid-traffic ({dir:?} {at})");
            assert!(d.counters.reconnect_successes >= 1, "{:?}", d.counters);
            // Let the last ACKs reach the Go server before closing (§9 note 24).
            close_settled(conn).await;
        });
        assert!(proxy.connections_accepted() >= 2);
        srv.check_alive().unwrap();
    }
}

/// amring v3 client → `go-peer server --recovery` without faults: v3 is
/// negotiated and echo works on several streams.
#[test]
fn amring_v3_client_echo_on_go_recovery_server() {
    with_go_server(true, |addr| async move {
        for codecs in BOTH {
            let conn = Client::builder()
                .codecs(codecs.iter().copied())
                .timeout(Some(Duration::from_secs(5)))
                .recovery(ClientRecoveryOptions::default())
                .connect(&addr)
                .await
                .unwrap();
            assert_eq!(conn.debug_state().protocol, 3);
            v3_echo_rounds(&conn, 8, 20, |_| {}).await;
            let r = conn.debug_state().recovery.unwrap();
            assert_eq!(r.last_sent_seq, 8 * 20, "one seq per request");
            assert_eq!(r.last_recv_seq, 8 * 20, "one seq per reply, none duplicated");
            close_settled(conn).await;
        }
    });
}
