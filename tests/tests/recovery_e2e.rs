//! v3 recovery end to end over loopback (spec §7): a real server with two
//! shards, the amring client with recovery, and the shared
//! [`FaultProxy`] in between that cuts, truncates or stalls transports. Every loop is bounded
//! in count and time; nothing asserts on timing.

mod runtime_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amring::{Client, ClientRecoveryOptions, Error, Server, Shards};
use amring_proto::attach::{AttachRequest, AttachResponse, AttachStatus, RecoveryOptions};
use amring_tests::faultproxy::{Direction, FaultProxy};
use bytes::BytesMut;
use futures_lite::future;
use runtime_common::*;

// ---- the shared loopback fault proxy ----

/// A [`FaultProxy`] in front of `h`.
fn proxy_for(h: &amring::ServerHandle) -> Arc<FaultProxy> {
    Arc::new(FaultProxy::start(h.dial_addr().parse().unwrap()).unwrap())
}

// ---- helpers ----

fn opts(ttl: Duration) -> RecoveryOptions {
    RecoveryOptions {
        ack_every: 4,
        ack_delay: Duration::from_millis(5),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(400),
        detached_ttl: ttl,
        ..RecoveryOptions::default()
    }
}

fn counting_server(calls: Arc<AtomicUsize>, ttl: Duration) -> amring::ServerHandle {
    counting_server_at(calls, ttl, "127.0.0.1:0")
}

/// [`counting_server`] listening at `at` (TCP or a Unix socket).
fn counting_server_at(calls: Arc<AtomicUsize>, ttl: Duration, at: &str) -> amring::ServerHandle {
    Server::builder()
        .shards(Shards::Unpinned(2))
        .io_memory(256 * 1024)
        .recovery(Some(opts(ttl)))
        .handler(move |_ctx, n: Num| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(Num { n: n.n }) }
        })
        .serve(at)
        .unwrap()
}

fn rec_client() -> amring::ClientBuilder {
    Client::builder().recovery(ClientRecoveryOptions {
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_replay_bytes: 0,
    })
}

fn stop(h: amring::ServerHandle) {
    h.shutdown(Duration::from_millis(200));
    h.join().unwrap();
}

fn sessions(h: &amring::ServerHandle) -> u64 {
    h.stats().iter().map(|s| s.sessions).sum()
}

/// Runs `streams` streams of `per` sequential requests each; every reply
/// must echo its request (stream and sequence number in the payload).
/// `fault(i)` runs between rounds. Returns the number of requests.
async fn traffic(conn: &amring::Connection, streams: i64, per: i64, fault: impl Fn(i64)) -> usize {
    let ss: Vec<_> = (0..streams).map(|_| conn.new_stream().unwrap()).collect();
    for s in &ss {
        s.set_recv_timeout(Some(Duration::from_secs(10)));
    }
    for i in 0..per {
        let rounds = ss.iter().enumerate().map(|(k, s)| async move {
            let n = (k as i64) * 1_000_000 + i;
            let r: Num = s.send_recv(&Num { n }).await.expect("request across a fault");
            assert_eq!(r.n, n, "reply out of order or wrong on stream {k}");
        });
        for f in rounds.collect::<Vec<_>>() {
            f.await;
        }
        fault(i);
    }
    (streams * per) as usize
}

// ---- tests ----

#[test]
fn v3_echo_on_several_streams() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let addr = h.dial_addr();
    let n = client(move || async move {
        let conn = rec_client().connect(&addr).await.unwrap();
        let n = traffic(&conn, 4, 25, |_| {}).await;
        let d = conn.debug_state();
        assert_eq!(d.protocol, 3);
        let r = d.recovery.expect("v3 recovery debug");
        assert!(r.attached);
        assert_eq!(r.last_sent_seq, n as u64);
        assert_eq!(d.counters.transport_attaches, 1);
        n
    });
    assert_eq!(calls.load(Ordering::SeqCst), n);
    stop(h);
}

/// The §8.2 recovery fields the reference has and amring lacked:
/// `ConnectionID` (the same hex id on both ends) and `ReconnectActive`
/// (true exactly while a resume loop runs), and per stream `Closed` and
/// `IncomingDepth`.
#[test]
fn debug_state_shows_connection_id_and_reconnect_activity() {
    let server_id = Arc::new(std::sync::Mutex::new(None::<String>));
    let sid = server_id.clone();
    let h = Server::builder()
        .shards(Shards::Unpinned(1))
        .io_memory(256 * 1024)
        .recovery(Some(opts(Duration::from_secs(30))))
        .handler(move |ctx: amring::StreamContext, n: Num| {
            *sid.lock().unwrap() = ctx.conn_debug_state().connection_id;
            async move { Ok::<_, String>(Num { n: n.n }) }
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    let client_id = client(move || async move {
        let conn = rec_client().connect(&p2.dial_addr()).await.unwrap();
        let _: Num = conn.send_recv(&Num { n: 1 }).await.unwrap();
        let d = conn.debug_state();
        assert!(!d.reconnect_active);
        let s0 = d.streams.iter().find(|s| s.id == 0).expect("stream 0");
        assert!(!s0.closed);
        assert_eq!(s0.incoming_depth, 0);
        // Refuse reconnects and cut: the client keeps resuming.
        p2.reject_new(true);
        p2.cut_all();
        assert!(
            eventually(|| conn.debug_state().reconnect_active).await,
            "resume loop not reported"
        );
        p2.reject_new(false);
        assert!(
            eventually(|| !conn.debug_state().reconnect_active).await,
            "resume never ended"
        );
        let _: Num = conn.send_recv(&Num { n: 2 }).await.unwrap();
        conn.debug_state().connection_id.expect("v3 connection id")
    });
    assert_eq!(client_id.len(), 32, "16 bytes in hex: {client_id}");
    assert_eq!(server_id.lock().unwrap().as_deref(), Some(client_id.as_str()));
    stop(h);
}

#[test]
fn cut_all_mid_traffic_loses_and_duplicates_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.dial_addr()).await.unwrap();
        let n = traffic(&conn, 4, 40, |i| {
            if i % 10 == 5 {
                p2.cut_all();
            }
        })
        .await;
        let d = conn.debug_state();
        assert!(d.counters.reconnect_successes >= 1, "{:?}", d.counters);
        assert!(d.counters.transport_detaches >= 1);
        n
    });
    assert_eq!(calls.load(Ordering::SeqCst), n, "each request handled exactly once");
    assert!(proxy.connections_accepted() >= 2);
    stop(h);
}

#[test]
fn cut_after_bytes_at_several_offsets() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.dial_addr()).await.unwrap();
        let offsets = [1u64, 7, 19, 40, 333];
        let n = traffic(&conn, 3, 30, |i| {
            if i % 6 == 2 {
                p2.cut_after_bytes(Direction::ClientToServer, offsets[(i / 6) as usize % offsets.len()]);
            }
        })
        .await;
        assert!(conn.debug_state().counters.reconnect_successes >= 1);
        n
    });
    assert_eq!(calls.load(Ordering::SeqCst), n);
    stop(h);
}

#[test]
fn stall_beyond_heartbeat_timeout_detaches_and_resumes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.dial_addr()).await.unwrap();
        let n = traffic(&conn, 2, 10, |i| {
            if i == 4 {
                // Both directions stop forwarding (the transport stays open)
                // until the client gave up on it and dialed again; the stall
                // then ends so that the resume can get through.
                let before = p2.connections_accepted();
                p2.stall(Direction::ClientToServer, true);
                p2.stall(Direction::ServerToClient, true);
                let p3 = p2.clone();
                std::thread::spawn(move || {
                    p3.wait_until(Duration::from_secs(10), |p| p.connections_accepted() > before);
                    p3.stall(Direction::ClientToServer, false);
                    p3.stall(Direction::ServerToClient, false);
                });
            }
        })
        .await;
        let d = conn.debug_state();
        assert!(d.counters.transport_detaches >= 1);
        assert!(d.last_failure.is_some());
        n
    });
    assert_eq!(calls.load(Ordering::SeqCst), n);
    stop(h);
}

#[test]
fn graceful_close_frees_the_server_session_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    // A TTL far beyond the test: only a graceful CLOSE can free the session.
    let h = counting_server(calls, Duration::from_secs(600));
    let addr = h.dial_addr();
    let stats = Arc::new(Mutex::new(h));
    let s2 = stats.clone();
    client(move || async move {
        let conn = rec_client().connect(&addr).await.unwrap();
        let _: Num = conn.send_recv(&Num { n: 1 }).await.unwrap();
        assert!(eventually(|| sessions(&s2.lock().unwrap()) == 1).await);
        conn.close();
        conn.wait_closed().await;
        assert!(
            eventually(|| sessions(&s2.lock().unwrap()) == 0).await,
            "session still held after CLOSE"
        );
    });
    let h = Arc::try_unwrap(stats).ok().unwrap().into_inner().unwrap();
    stop(h);
}

#[test]
fn v3_falls_back_to_v2_against_a_plain_server() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = rec_client().connect(&addr).await.unwrap();
        assert_eq!(conn.debug_state().protocol, 2);
        assert!(conn.debug_state().recovery.is_none());
        let r: MessageReply = conn
            .send_recv(&MessageRequest {
                msg: "x".into(),
                num: 1,
            })
            .await
            .unwrap();
        assert_eq!(r.num, 2);
    });
    stop(h);
}

#[test]
fn send_during_detach_then_close_fails_with_closed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls, Duration::from_secs(30));
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    client(move || async move {
        let conn = Rc::new(rec_client().connect(&p2.dial_addr()).await.unwrap());
        let _: Num = conn.send_recv(&Num { n: 1 }).await.unwrap();
        p2.reject_new(true);
        p2.cut_all();
        assert!(eventually(|| conn.debug_state().recovery.is_some_and(|r| !r.attached)).await);
        let c2 = conn.clone();
        let pending = glommio::spawn_local(async move { c2.send_recv::<_, Num>(&Num { n: 2 }).await });
        glommio::timer::sleep(Duration::from_millis(30)).await;
        conn.close();
        let bounded = future::or(async { Some(pending.await) }, async {
            glommio::timer::sleep(Duration::from_secs(10)).await;
            None
        })
        .await;
        match bounded {
            Some(Err(Error::Closed)) => {}
            other => panic!("expected Err(Closed) promptly, got {other:?}"),
        }
        assert!(matches!(conn.send(&Num { n: 3 }).await, Err(Error::Closed)));
    });
    stop(h);
}

use std::rc::Rc;

// ---- raw attach exchanges (std sockets, bounded by read timeouts) ----

fn raw_hello_v3(addr: &str) -> TcpStream {
    hello_v3(TcpStream::connect(addr).unwrap())
}

/// The v3 hello (compact codec) on a connected socket, with a 5 s read timeout.
fn hello_v3(mut s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    hello_v3_on(&mut s);
    s
}

/// The v3 hello exchange on any byte stream (its reads must be bounded).
fn hello_v3_on(s: &mut (impl Read + Write)) {
    s.write_all(&[0x41, 0x4d, 3, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
        .unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..5], &[0x41, 0x4d, 1, 3, 1], "v3 accepted with compact");
}

fn raw_attach(s: &mut (impl Read + Write), req: AttachRequest) -> AttachResponse {
    let mut out = BytesMut::new();
    req.write(&mut out);
    s.write_all(&out).unwrap();
    let mut b = [0u8; 60];
    s.read_exact(&mut b).unwrap();
    AttachResponse::decode(&mut BytesMut::from(&b[..])).unwrap()
}

#[test]
fn wrong_secret_is_rejected_with_valid_values_and_a_later_resume_succeeds() {
    let h = counting_server(Arc::default(), Duration::from_secs(30));
    let addr = h.dial_addr();
    let mut a = raw_hello_v3(&addr);
    let ok = raw_attach(&mut a, AttachRequest::new_session());
    assert_eq!(ok.status, AttachStatus::Ok);
    assert_eq!(ok.ack_every, 4);
    let mut bad_secret = ok.resume_secret;
    bad_secret[3] ^= 0x55;
    let mut b = raw_hello_v3(&addr);
    let rej = raw_attach(&mut b, AttachRequest::resume(ok.connection_id, bad_secret, 0));
    assert_eq!(rej.status, AttachStatus::Rejected);
    assert_eq!(rej.connection_id, [0; 16]);
    assert!(rej.ack_every > 0 && rej.heartbeat_timeout_ms >= 2 * rej.heartbeat_interval_ms);
    let mut c = raw_hello_v3(&addr);
    let again = raw_attach(&mut c, AttachRequest::resume(ok.connection_id, ok.resume_secret, 0));
    assert_eq!(again.status, AttachStatus::Ok);
    assert_eq!(again.connection_id, ok.connection_id);
    assert!(h.stats().iter().map(|s| s.resume_rejects).sum::<u64>() >= 1);
    drop((a, b, c));
    stop(h);
}

#[test]
fn ttl_expiry_rejects_a_late_resume() {
    let h = counting_server(Arc::default(), Duration::from_millis(50));
    let addr = h.dial_addr();
    let mut a = raw_hello_v3(&addr);
    let ok = raw_attach(&mut a, AttachRequest::new_session());
    assert_eq!(ok.status, AttachStatus::Ok);
    drop(a);
    // Bounded wait until the server dropped the detached session.
    let mut gone = false;
    for _ in 0..500 {
        if sessions(&h) == 0 {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "session not expired");
    let mut b = raw_hello_v3(&addr);
    let late = raw_attach(&mut b, AttachRequest::resume(ok.connection_id, ok.resume_secret, 0));
    assert_eq!(late.status, AttachStatus::Rejected);
    stop(h);
}

#[test]
fn resumes_landing_on_the_non_owner_shard_succeed() {
    let h = counting_server(Arc::default(), Duration::from_secs(30));
    let addr = h.dial_addr();
    let mut a = raw_hello_v3(&addr);
    let ok = raw_attach(&mut a, AttachRequest::new_session());
    assert_eq!(ok.status, AttachStatus::Ok);
    // SO_REUSEPORT spreads by 4-tuple: 24 resumes miss the owner with
    // probability 1 - 2^-24.
    let mut socks = vec![a];
    for _ in 0..24 {
        let mut s = raw_hello_v3(&addr);
        let r = raw_attach(&mut s, AttachRequest::resume(ok.connection_id, ok.resume_secret, 0));
        assert_eq!(r.status, AttachStatus::Ok);
        assert_eq!(r.connection_id, ok.connection_id);
        socks.push(s);
    }
    let st = h.stats();
    let owner = usize::from(ok.connection_id[0]);
    let handed: u64 = st.iter().map(|s| s.handoffs_in).sum();
    assert!(handed >= 1, "no resume landed on the other shard: {st:?}");
    assert_eq!(st[owner].handoffs_in, handed, "hand-offs go to the owner");
    assert_eq!(st[owner].resumes, 24);
    drop(socks);
    stop(h);
}

/// The same over a Unix socket: every shard accepts on the one listener, so
/// a resume may land on a shard that does not own the session; it is handed
/// to the owner like a TCP one (not refused).
#[test]
fn unix_resumes_landing_on_the_non_owner_shard_succeed() {
    use std::os::unix::net::UnixStream;
    let path = std::env::temp_dir().join(format!("amring-resume-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let h = counting_server_at(
        Arc::default(),
        Duration::from_secs(30),
        &format!("unix://{}", path.display()),
    );
    let hello = |s: &mut UnixStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        hello_v3_on(s);
    };
    let attach = raw_attach;
    let mut a = UnixStream::connect(&path).unwrap();
    hello(&mut a);
    let ok = attach(&mut a, AttachRequest::new_session());
    assert_eq!(ok.status, AttachStatus::Ok);
    let owner = usize::from(ok.connection_id[0]);
    // Which shard accepts a Unix connection is up to the kernel; resume
    // until one landed elsewhere (bounded), and every one must succeed.
    let mut socks = vec![a];
    let mut resumes = 0u64;
    for _ in 0..200 {
        let mut s = UnixStream::connect(&path).unwrap();
        hello(&mut s);
        let r = attach(&mut s, AttachRequest::resume(ok.connection_id, ok.resume_secret, 0));
        assert_eq!(r.status, AttachStatus::Ok, "resume {resumes} refused: {:?}", h.stats());
        assert_eq!(r.connection_id, ok.connection_id);
        resumes += 1;
        socks.push(s);
        if socks.len() > 4 {
            socks.remove(1);
        }
        if h.stats().iter().map(|s| s.handoffs_in).sum::<u64>() >= 3 {
            break;
        }
    }
    let st = h.stats();
    let handed: u64 = st.iter().map(|s| s.handoffs_in).sum();
    assert!(
        handed >= 1,
        "no Unix resume landed on the other shard in {resumes}: {st:?}"
    );
    assert_eq!(st[owner].handoffs_in, handed, "hand-offs go to the owner");
    assert_eq!(st[owner].resumes, resumes);
    // The session answers on the last transport: a v3 data frame (stream 1,
    // seq 1, compact `["am.rt.Num", 7]`) gets its echo back.
    let mut last = socks.pop().unwrap();
    let payload = [&[0x92u8, 0xa9][..], b"am.rt.Num", &[7]].concat();
    let mut frame = vec![3u8, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&1u64.to_be_bytes());
    frame.extend_from_slice(&payload);
    last.write_all(&frame).unwrap();
    let mut echoed = None;
    for _ in 0..8 {
        let mut hdr = [0u8; 18];
        last.read_exact(&mut hdr).unwrap();
        let len = u32::from_be_bytes(hdr[6..10].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len];
        last.read_exact(&mut body).unwrap();
        if u32::from_be_bytes(hdr[2..6].try_into().unwrap()) == 1 {
            echoed = Some(body);
            break;
        }
    }
    // The reply's i64 goes out as the reference's encoder writes it (`d3`, 8 bytes).
    let want = [&[0x92u8, 0xa9][..], b"am.rt.Num", &[0xd3], &7i64.to_be_bytes()].concat();
    assert_eq!(echoed, Some(want), "no echo on the resumed Unix transport");
    drop((socks, last));
    stop(h);
    let _ = std::fs::remove_file(&path);
}

// ---- stage-specific failure codes (spec §8.3) ----

fn last_code(conn: &amring::Connection) -> Option<amring::debug::FailureCode> {
    conn.debug_state().last_failure.map(|f| f.code)
}

#[test]
fn failure_codes_resume_then_reconnect_terminal() {
    use amring::debug::FailureCode;
    // Short TTL: once the proxy refuses resumes long enough, the session expires.
    let h = counting_server(Arc::default(), Duration::from_millis(100));
    let proxy = proxy_for(&h);
    let p2 = proxy.clone();
    let stats = Arc::new(Mutex::new(h));
    let s2 = stats.clone();
    client(move || async move {
        let conn = rec_client().connect(&p2.dial_addr()).await.unwrap();
        let _: Num = conn.send_recv(&Num { n: 1 }).await.unwrap();
        p2.reject_new(true);
        p2.cut_all();
        // Attempts die at the proxy: each one is a `recovery.resume` failure.
        assert!(eventually(|| last_code(&conn) == Some(FailureCode::RecoveryResume)).await);
        let f = conn.debug_state().last_failure.unwrap();
        assert!(f.text.starts_with("resume failed:"), "{}", f.text);
        assert!(eventually(|| sessions(&s2.lock().unwrap()) == 0).await, "TTL expiry");
        p2.reject_new(false);
        // The next attempt reaches the server, which no longer knows the session.
        assert!(eventually(|| last_code(&conn) == Some(FailureCode::RecoveryReconnectTerminal)).await);
        assert!(matches!(conn.send(&Num { n: 2 }).await, Err(Error::Closed)));
        assert!(conn.debug_state().counters.reconnect_failures >= 2);
    });
    let h = Arc::try_unwrap(stats).ok().unwrap().into_inner().unwrap();
    stop(h);
}

/// A fake v3 server (std sockets, bounded by timeouts): completes the hello
/// and a new-session attach, then writes `evil` and waits for the client to
/// hang up.
fn fake_v3_server(evil: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    use amring_proto::handshake::{ServerHandshake, ServerHandshakeConfig, ServerStep};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hs = ServerHandshake::new(ServerHandshakeConfig {
            recovery: true,
            ..ServerHandshakeConfig::default()
        });
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 256];
        let reply = loop {
            match hs.handle(&mut buf) {
                ServerStep::NeedMore => {
                    let n = s.read(&mut chunk).unwrap();
                    assert!(n > 0, "client hung up during the hello");
                    buf.extend_from_slice(&chunk[..n]);
                }
                ServerStep::Accept { reply, .. } => break reply,
                ServerStep::Reject { error, .. } => panic!("hello rejected: {error}"),
            }
        };
        s.write_all(&reply).unwrap();
        let req = loop {
            if let Some(r) = AttachRequest::decode(&mut buf) {
                break r;
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "client hung up during the attach");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert_eq!(req.mode, amring_proto::attach::AttachMode::New);
        let params = amring_proto::RecoveryParams::default();
        let mut out = BytesMut::new();
        AttachResponse::accepted([7; 16], [9; 16], 0, &params).write(&mut out);
        out.extend_from_slice(&evil);
        s.write_all(&out).unwrap();
        // Bounded: the client closes (permanent failure) or the read times out.
        let _ = s.read(&mut chunk);
    });
    (addr, t)
}

fn v3_frame(stream: u32, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    amring_proto::FrameEncoder::new(amring_proto::Version::V3, u32::MAX)
        .encode(&mut out, stream, seq, payload)
        .unwrap();
    out.to_vec()
}

#[test]
fn failure_codes_data_and_control_close_permanently() {
    use amring::debug::FailureCode;
    let cases = [
        // A data frame with seq 0.
        (v3_frame(1, 0, b"x"), FailureCode::RecoveryData),
        // A data frame skipping seq 1.
        (v3_frame(1, 2, b"x"), FailureCode::RecoveryData),
        // A control frame of an unknown type.
        (v3_frame(u32::MAX, 0, &[0x7f]), FailureCode::RecoveryControl),
    ];
    for (evil, want) in cases {
        let (addr, t) = fake_v3_server(evil);
        client(move || async move {
            let conn = rec_client().connect(&addr).await.unwrap();
            assert_eq!(conn.debug_state().protocol, 3);
            assert!(eventually(|| conn.debug_state().recovery.is_some_and(|r| r.closed)).await);
            assert_eq!(last_code(&conn), Some(want), "{:?}", conn.debug_state().last_failure);
            assert!(matches!(conn.send(&Num { n: 1 }).await, Err(Error::Closed)));
            assert_eq!(
                conn.debug_state().counters.reconnect_attempts,
                0,
                "permanent: no resume"
            );
        });
        t.join().unwrap();
    }
}

/// A request whose reply is as big as its text.
#[derive(serde::Serialize, serde::Deserialize)]
struct Blob {
    text: String,
}
impl amring::codec::Message for Blob {
    const WIRE_NAME: &'static str = "am.rt.Blob";
}

/// A raw v3 session (compact codec) over a socket with a small receive buffer.
fn raw_v3_session(addr: std::net::SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s = hello_v3(sock.into());
    let ok = raw_attach(&mut s, AttachRequest::new_session());
    assert_eq!(ok.status, AttachStatus::Ok);
    s
}

/// Frame `seq` of stream 1 carrying `Blob { text }`.
fn blob_frame(seq: u64, text: String) -> Vec<u8> {
    use amring::codec::{CodecKind, Profile};
    let mut payload = BytesMut::new();
    CodecKind::Compact
        .encode(&Blob { text }, Profile::Interop, &mut payload)
        .unwrap();
    v3_frame(1, seq, &payload)
}

/// Reads `n` replies of stream 1 (ACK/PING frames skipped); returns their texts.
fn read_blobs(s: &mut TcpStream, n: u64) -> Vec<String> {
    use amring::codec::CodecKind;
    use amring_proto::{FrameDecoder, Version};
    let mut dec = FrameDecoder::new(Version::V3, u32::MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while (out.len() as u64) < n {
        let got = s.read(&mut chunk).expect("a reply within the read timeout (5 s)");
        assert!(got > 0, "server closed after {} replies", out.len());
        buf.extend_from_slice(&chunk[..got]);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            if f.header.stream_id == 1 {
                let env = CodecKind::Compact.decode_envelope(&f.payload).unwrap();
                let b: Blob = CodecKind::Compact.decode_body(&env).unwrap();
                out.push(b.text);
            }
        }
    }
    out
}

#[test]
fn overdue_ack_behind_a_full_socket_does_not_starve_the_shard() {
    // Connection Y owes an ACK whose deadline has passed while its socket is
    // full (its peer does not read), so the ACK cannot go out. Y's driver once
    // counted the due deadline as progress and looped without yielding for as
    // long as the socket stayed full: the shard served nothing else. Here Y's
    // raw peer sends 63 requests of 128 KiB (8 MiB of replies), one more once
    // the server's socket is full, and stops reading; meanwhile connection X
    // on the same (single) shard must be answered. Then Y reads everything.
    const N: u64 = 64;
    const TEXT: usize = 128 * 1024;
    let rec = RecoveryOptions {
        ack_every: 10_000,
        ack_delay: Duration::from_millis(1),
        max_replay_bytes: 64 << 20,
        // The raw peers never PING: keep their transports alive meanwhile.
        heartbeat_interval: Duration::from_secs(5),
        heartbeat_timeout: Duration::from_secs(20),
        ..opts(Duration::from_secs(30))
    };
    let h = Server::builder()
        .shards(Shards::Unpinned(1))
        .io_memory(256 * 1024)
        .recovery(Some(rec))
        .handler(|_ctx, b: Blob| async move { Ok::<_, String>(Blob { text: b.text }) })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr: std::net::SocketAddr = h.dial_addr().parse().unwrap();
    let mut y = raw_v3_session(addr);
    let mut w = y.try_clone().unwrap();
    for seq in 1..=N {
        if seq == N {
            std::thread::sleep(Duration::from_millis(100));
        }
        w.write_all(&blob_frame(seq, format!("{seq:08}").repeat(TEXT / 8)))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut x = raw_v3_session(addr);
    x.write_all(&blob_frame(1, "x".into())).unwrap();
    assert_eq!(read_blobs(&mut x, 1), ["x"], "the shard serves X while Y is stuck");
    let texts = read_blobs(&mut y, N);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            (t.len(), &t[..8]),
            (TEXT, format!("{:08}", i + 1).as_str()),
            "reply {i}"
        );
    }
    stop(h);
}
