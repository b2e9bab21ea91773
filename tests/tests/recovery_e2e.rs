//! v3 recovery end to end over loopback (spec §7): a real server with two
//! shards, the amring client with recovery, and a small fault proxy in
//! between that cuts, truncates or stalls transports. Every loop is bounded
//! in count and time; nothing asserts on timing.

mod runtime_common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amring::proto::attach::{AttachRequest, AttachResponse, AttachStatus, RecoveryOptions};
use amring::{Client, ClientRecoveryOptions, Error, Server, Shards};
use bytes::BytesMut;
use futures_lite::future;
use runtime_common::*;

// ---- a loopback fault proxy ----

struct Pair {
    a: TcpStream,
    b: TcpStream,
    stalled: Arc<AtomicBool>,
}

/// Forwards 127.0.0.1:port → upstream; can cut every live transport, cut the
/// live client→server direction after N more bytes, stall (half-open), or
/// refuse new connections.
struct Proxy {
    port: u16,
    pairs: Arc<Mutex<Vec<Pair>>>,
    cut_after: Arc<AtomicU64>,
    refuse: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Proxy {
            port,
            pairs: Arc::default(),
            cut_after: Arc::new(AtomicU64::new(u64::MAX)),
            refuse: Arc::default(),
            stop: Arc::default(),
            conns: Arc::default(),
        };
        let (pairs, cut, refuse, stop, conns) = (
            p.pairs.clone(),
            p.cut_after.clone(),
            p.refuse.clone(),
            p.stop.clone(),
            p.conns.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((a, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                if refuse.load(Ordering::Relaxed) {
                    drop(a);
                    continue;
                }
                a.set_nonblocking(false).unwrap();
                let Ok(b) = TcpStream::connect(&upstream) else { continue };
                conns.fetch_add(1, Ordering::Relaxed);
                let _ = a.set_nodelay(true);
                let _ = b.set_nodelay(true);
                let stalled = Arc::new(AtomicBool::new(false));
                pump(
                    a.try_clone().unwrap(),
                    b.try_clone().unwrap(),
                    Some(cut.clone()),
                    stalled.clone(),
                );
                pump(b.try_clone().unwrap(), a.try_clone().unwrap(), None, stalled.clone());
                pairs.lock().unwrap().push(Pair { a, b, stalled });
            }
        });
        p
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every live transport (both sides see EOF / reset).
    fn cut_all(&self) {
        for p in self.pairs.lock().unwrap().drain(..) {
            let _ = p.a.shutdown(Shutdown::Both);
            let _ = p.b.shutdown(Shutdown::Both);
        }
    }

    /// The live client→server direction forwards `n` more bytes, then the
    /// transport is cut (a frame may be truncated in the middle).
    fn cut_after_bytes(&self, n: u64) {
        self.cut_after.store(n, Ordering::SeqCst);
    }

    /// Live transports stop forwarding but stay open (half-open).
    fn stall(&self) {
        for p in self.pairs.lock().unwrap().iter() {
            p.stalled.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: Option<Arc<AtomicU64>>, stalled: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if stalled.load(Ordering::SeqCst) {
                // Half-open: swallow everything until the transport is dropped.
                continue;
            }
            let mut fwd = n;
            let mut cut_now = false;
            if let Some(c) = &cut {
                let left = c.load(Ordering::SeqCst);
                if left != u64::MAX {
                    if (n as u64) >= left {
                        fwd = left as usize;
                        cut_now = true;
                        c.store(u64::MAX, Ordering::SeqCst);
                    } else {
                        c.store(left - n as u64, Ordering::SeqCst);
                    }
                }
            }
            if to.write_all(&buf[..fwd]).is_err() {
                break;
            }
            if cut_now {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
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
    Server::builder()
        .shards(Shards::Unpinned(2))
        .io_memory(256 * 1024)
        .recovery(Some(opts(ttl)))
        .handler(move |_ctx, n: Num| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, String>(Num { n: n.n }) }
        })
        .serve("127.0.0.1:0")
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

#[test]
fn cut_all_mid_traffic_loses_and_duplicates_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let proxy = Arc::new(Proxy::start(h.dial_addr()));
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.addr()).await.unwrap();
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
    assert!(proxy.conns.load(Ordering::Relaxed) >= 2);
    stop(h);
}

#[test]
fn cut_after_bytes_at_several_offsets() {
    let calls = Arc::new(AtomicUsize::new(0));
    let h = counting_server(calls.clone(), Duration::from_secs(30));
    let proxy = Arc::new(Proxy::start(h.dial_addr()));
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.addr()).await.unwrap();
        let offsets = [1u64, 7, 19, 40, 333];
        let n = traffic(&conn, 3, 30, |i| {
            if i % 6 == 2 {
                p2.cut_after_bytes(offsets[(i / 6) as usize % offsets.len()]);
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
    let proxy = Arc::new(Proxy::start(h.dial_addr()));
    let p2 = proxy.clone();
    let n = client(move || async move {
        let conn = rec_client().connect(&p2.addr()).await.unwrap();
        let n = traffic(&conn, 2, 10, |i| {
            if i == 4 {
                p2.stall();
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
    let proxy = Arc::new(Proxy::start(h.dial_addr()));
    let p2 = proxy.clone();
    client(move || async move {
        let conn = Rc::new(rec_client().connect(&p2.addr()).await.unwrap());
        let _: Num = conn.send_recv(&Num { n: 1 }).await.unwrap();
        p2.refuse.store(true, Ordering::SeqCst);
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
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x41, 0x4d, 3, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
        .unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..5], &[0x41, 0x4d, 1, 3, 1], "v3 accepted with compact");
    s
}

fn raw_attach(s: &mut TcpStream, req: AttachRequest) -> AttachResponse {
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
