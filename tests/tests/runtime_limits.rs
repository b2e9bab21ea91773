//! Every limit hit once: typed error or counted drop, never a hang or a stall.

mod runtime_common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::codec::{ErrorReply, Message};
use amring::debug::FailureCode;
use amring::{Client, Error, Limits, StreamContext};
use runtime_common::*;
use serde::{Deserialize, Serialize};

/// Asks the server for some of its connection counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stats {}
impl Message for Stats {
    const WIRE_NAME: &'static str = "am.rt.Stats";
}

/// Counters and holdings of the server connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StatsReply {
    unknown_messages: u64,
    streams_evicted: u64,
    held_inbound: u64,
    parked: u64,
}
impl Message for StatsReply {
    const WIRE_NAME: &'static str = "am.rt.StatsReply";
}

/// A message with bytes and no handler anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Blob {
    data: serde_bytes::ByteBuf,
}
impl Message for Blob {
    const WIRE_NAME: &'static str = "am.rt.Blob";
}

fn limited(limits: Limits) -> amring::ServerBuilder {
    server()
        .limits(limits)
        .handler(|ctx: StreamContext, _s: Stats| async move {
            let d = ctx.conn_debug_state();
            Ok::<_, String>(StatsReply {
                unknown_messages: d.counters.unknown_messages,
                streams_evicted: d.counters.streams_evicted,
                held_inbound: d.held_inbound as u64,
                parked: d.streams.iter().map(|s| s.inbox_depth as u64).sum(),
            })
        })
        .handler(|ctx: StreamContext, n: Num| async move {
            if n.n == 100 {
                ctx.new_task(|s| async move {
                    for i in 0..50 {
                        let _ = s.send(&Num { n: i }).await;
                    }
                })
                .map_err(|e| e.to_string())?;
            }
            let total = ctx.value::<i64>().unwrap_or(0) + n.n;
            ctx.set_value(total);
            Ok::<_, String>(Num { n: total })
        })
}

#[test]
fn handshake_timeout_closes_silent_client() {
    let h = server()
        .handshake_timeout(Duration::from_millis(100))
        .serve("127.0.0.1:0")
        .unwrap();
    let mut s = std::net::TcpStream::connect(h.local_addr().tcp().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    assert_eq!(s.read(&mut b).unwrap(), 0, "server closed without a reply");
    let st = h.stats();
    assert_eq!(st.iter().map(|s| s.handshake_timeouts).sum::<u64>(), 1);
    assert_eq!(shard_failure(&h), Some(FailureCode::HandshakeTimeout));
    // A hello with the wrong magic: `handshake.rejected`.
    let mut s = std::net::TcpStream::connect(h.local_addr().tcp().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"XX\x02\x02\0\0\0\0\xff\xff\xff\xff\x01\x02").unwrap();
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed without a reply");
    assert!(eventually_sync(|| shard_failure(&h) == Some(FailureCode::Handshake)));
    assert_eq!(FailureCode::Handshake.as_str(), "handshake.rejected");
    stop(h);
}

/// The handshake timeout bounds every phase before a connection is live, as
/// one deadline from accept. With recovery on, a v3 client that completes
/// its hello (and gets the reply) but never sends the attach request is
/// closed within the handshake timeout of its accept, counted in
/// `handshake_timeouts` and typed `handshake.timeout`; so is a v2 client that
/// sends only part of its hello (the header, never the codec byte it
/// announces). Loopback, every read bounded (5 s).
#[test]
fn handshake_timeout_bounds_hello_and_attach_together() {
    use std::net::TcpStream;
    use std::time::Instant;
    const TIMEOUT: Duration = Duration::from_millis(1000);
    // The v3 hello is sent this late: a fresh timer for the attach phase
    // would close its socket only at HELLO_AT + TIMEOUT (1.7 s).
    const HELLO_AT: Duration = Duration::from_millis(700);
    let h = server()
        .recovery(Some(amring::RecoveryOptions::default()))
        .handshake_timeout(TIMEOUT)
        .serve("127.0.0.1:0")
        .unwrap();
    let sa = h.local_addr().tcp().unwrap();
    let connect = || {
        let s = TcpStream::connect(sa).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    // EOF (or a reset), never a byte; returns when it came, from `start`.
    let closed_at = |s: &mut TcpStream, start: Instant, what: &str| {
        let mut b = [0u8; 64];
        let r = s.read(&mut b);
        let at = start.elapsed();
        assert!(
            matches!(r, Ok(0)) || r.is_err(),
            "{what}: want EOF or reset, got {r:?} after {at:?}"
        );
        eprintln!("{what}: closed after {at:?}");
        at
    };

    let start = Instant::now();
    let mut v2 = connect();
    v2.write_all(&[0x41, 0x4d, 2, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let mut v3 = connect();
    std::thread::sleep(HELLO_AT);
    v3.write_all(&[0x41, 0x4d, 3, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1])
        .unwrap();
    let mut reply = [0u8; 12];
    v3.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..5], &[0x41, 0x4d, 1, 3, 1], "v3 accepted with compact");

    let at = closed_at(&mut v3, start, "v3 hello, no attach");
    assert!(
        at >= TIMEOUT - Duration::from_millis(20) && at < TIMEOUT + Duration::from_millis(500),
        "v3 without attach closed after {at:?}: want the handshake timeout ({TIMEOUT:?}) from accept"
    );
    let at = closed_at(&mut v2, start, "v2 header only");
    assert!(
        at >= TIMEOUT - Duration::from_millis(20) && at < Duration::from_secs(5),
        "v2 partial hello closed after {at:?}"
    );
    let timeouts = || h.stats().iter().map(|s| s.handshake_timeouts).sum::<u64>();
    assert!(eventually_sync(|| timeouts() == 2), "{:?}", h.stats());
    assert_eq!(shard_failure(&h), Some(FailureCode::HandshakeTimeout));
    assert_eq!(h.stats().iter().map(|s| s.served).sum::<u64>(), 0);
    assert_eq!(h.stats().iter().map(|s| s.sessions).sum::<u64>(), 0);
    stop(h);
}

/// The most recent failure any shard recorded outside a connection.
fn shard_failure(h: &amring::ServerHandle) -> Option<FailureCode> {
    h.stats()
        .into_iter()
        .filter_map(|s| s.last_failure)
        .max_by_key(|f| f.at)
        .map(|f| f.code)
}

/// Polls `cond` for up to 5 s from a plain thread.
fn eventually_sync(mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn max_connections_closes_extra_sockets() {
    let h = server().max_connections(1).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    let sa = h.local_addr().tcp().unwrap();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let mut extra = std::net::TcpStream::connect(sa).unwrap();
        extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(extra.read(&mut b).unwrap_or(0), 0);
        // The admitted connection still works.
        let r: MessageReply = conn.send_recv(&MessageRequest::default()).await.unwrap();
        assert_eq!(r.num, 1);
    });
    assert_eq!(h.stats().iter().map(|s| s.rejected_limit).sum::<u64>(), 1);
    assert_eq!(shard_failure(&h), Some(FailureCode::LimitConnections));
    stop(h);
}

/// At the stream cap with no idle stream (each one runs a handler), a new
/// stream is refused with `ErrorReply{protocol_error}`; the client's own cap
/// is a typed error when its only stream holds unread messages.
#[test]
fn stream_limit_answers_protocol_error_when_no_stream_is_idle() {
    let h = limited(Limits {
        max_streams: 2,
        ..Limits::default()
    })
    .serve("127.0.0.1:0")
    .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let s1 = conn.new_stream().unwrap();
        let s2 = conn.new_stream().unwrap();
        // Streams 0 and 1 are busy in slow handlers while stream 2 arrives.
        conn.send(&Slow { ms: 300, n: 0 }).await.unwrap();
        s1.send(&Slow { ms: 300, n: 1 }).await.unwrap();
        match s2.send_recv::<_, MessageReply>(&MessageRequest::default()).await {
            Err(Error::Remote { code, message }) => {
                assert_eq!(code, ErrorReply::PROTOCOL_ERROR);
                assert_eq!(message, "too many streams: limit 2");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Existing streams are unaffected.
        assert_eq!(conn.recv::<Num>().await.unwrap().n, 0);
        assert_eq!(s1.recv::<Num>().await.unwrap().n, 1);
        let _: MessageReply = s1.send_recv(&MessageRequest::default()).await.unwrap();
        // The client's own stream limit: stream 0 holds pushed, unread messages.
        let small = Client::builder().limits(Limits {
            max_streams: 1,
            ..Limits::default()
        });
        let c2 = small.connect(&addr).await.unwrap();
        let _: Num = c2.send_recv(&Num { n: 100 }).await.unwrap();
        assert!(eventually(|| c2.debug_state().streams.first().is_some_and(|s| s.inbox_depth > 0)).await);
        assert!(matches!(c2.new_stream(), Err(Error::TooManyStreams(1))));
    });
    stop(h);
}

/// Defect 3: the wire has no stream close, so a client that opens a new
/// stream per request (the Go `NewStream` pattern) used to get `too many
/// streams` from request 4,097 on. Idle streams are evicted at the cap.
#[test]
fn a_new_stream_per_request_never_runs_out_of_streams() {
    let h = limited(Limits::default()).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        for i in 0..5000 {
            let s = conn.new_stream().unwrap();
            let r: MessageReply = s
                .send_recv(&MessageRequest {
                    msg: String::new(),
                    num: i,
                })
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.num, i + 1);
        }
        let st: StatsReply = conn.send_recv(&Stats {}).await.unwrap();
        assert!(st.streams_evicted >= 5000 - 4096, "{st:?}");
        assert!(conn.debug_state().counters.streams_evicted >= 5000 - 4096);
    });
    stop(h);
}

/// A stream nobody reads keeps everything pushed to it (nothing is
/// dropped) and, within the connection's inbound limit, does not stall the
/// other streams.
#[test]
fn slow_consumer_stream_keeps_everything_and_never_blocks_other_streams() {
    let h = limited(Limits::default()).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let slow = conn.new_stream().unwrap();
        let fast = conn.new_stream().unwrap();
        // 1 reply + 50 pushes on a stream nobody reads.
        slow.send(&Num { n: 100 }).await.unwrap();
        for i in 0..20 {
            let r: MessageReply = fast
                .send_recv(&MessageRequest {
                    msg: String::new(),
                    num: i,
                })
                .await
                .unwrap();
            assert_eq!(r.num, i + 1);
        }
        assert!(eventually(|| slow.debug_state().is_some_and(|d| d.inbox_depth == 51)).await);
        assert!(conn.debug_state().held_inbound > 0);
        assert_eq!(slow.recv::<Num>().await.unwrap().n, 100);
        for i in 0..50 {
            assert_eq!(slow.recv::<Num>().await.unwrap().n, i);
        }
        assert_eq!(conn.debug_state().held_inbound, 0);
    });
    stop(h);
}

/// Defect 1: a client that pipelines 2,000 requests on one stream and only
/// then reads its replies lost replies when the inbox was full (after the
/// frames were ACKed, in v3). Now the client stops reading at its inbound
/// limit (tiny here, so it pauses many times) and every reply arrives, in
/// order, over v2 and v3. With per-stream credit the client advertises that
/// limit as its window, so the server's replies wait instead and the client
/// holds no more than without credit.
#[test]
fn pipelining_past_the_inbound_limit_loses_no_reply_v2_and_v3() {
    use amring::ClientRecoveryOptions;
    use amring_proto::attach::RecoveryOptions;
    for (v3, credit) in [(false, false), (true, false), (false, true), (true, true)] {
        let h = limited(Limits::default())
            .recovery(v3.then(RecoveryOptions::default))
            .serve("127.0.0.1:0")
            .unwrap();
        let addr = h.dial_addr();
        client(move || async move {
            let mut b = Client::builder().stream_credit(credit).limits(Limits {
                max_inbound_bytes: 8 << 10,
                ..Limits::default()
            });
            if v3 {
                b = b.recovery(ClientRecoveryOptions::default());
            }
            let conn = b.connect(&addr).await.unwrap();
            let s = conn.new_stream().unwrap();
            for i in 0..2000 {
                s.send(&MessageRequest {
                    msg: "x".repeat(32),
                    num: i,
                })
                .await
                .unwrap();
            }
            // Let the replies pile up against the client's limit.
            glommio::timer::sleep(Duration::from_millis(200)).await;
            let d = conn.debug_state();
            assert!(
                d.held_inbound <= (8 << 10) + 4096,
                "credit={credit}: held {} bytes",
                d.held_inbound
            );
            if !credit {
                assert!(d.counters.intake_pauses > 0, "v3={v3}: never paused");
            }
            for i in 0..2000 {
                let r: MessageReply = s.recv().await.unwrap();
                assert_eq!(r.num, i + 1, "v3={v3} credit={credit}");
            }
        });
        stop(h);
    }
}

/// Defect 7 / spec §9 note 5: messages no one can ever ask for (no handler,
/// no reader on the stream) are parked up to `max_unread_bytes`, counted by
/// bytes, then dropped and counted as unknown; the stream stays usable.
#[test]
fn server_parks_unknown_messages_bounded_by_bytes() {
    with_conn(
        limited(Limits {
            max_unread_bytes: 64 << 10,
            ..Limits::default()
        }),
        |conn| async move {
            let s = conn.new_stream().unwrap();
            for n in 0..10 {
                s.send(&Unknown { n }).await.unwrap();
            }
            // 200 messages of 16 KiB: 3.2 MB sent, at most 64 KiB parked.
            let blob = Blob {
                data: serde_bytes::ByteBuf::from(vec![7u8; 16 << 10]),
            };
            for _ in 0..200 {
                s.send(&blob).await.unwrap();
            }
            // No reply to unknown messages; the stream stays usable.
            let st: StatsReply = s.send_recv(&Stats {}).await.unwrap();
            assert!(st.held_inbound <= 64 << 10, "{st:?}");
            assert_eq!(st.parked + st.unknown_messages, 210, "{st:?}");
            assert!(st.unknown_messages >= 200 - 4, "{st:?}");
            let other = conn.new_stream().unwrap();
            let _: MessageReply = other.send_recv(&MessageRequest::default()).await.unwrap();
        },
    );
}

#[test]
fn idle_streams_are_evicted() {
    let closed = Arc::new(AtomicUsize::new(0));
    let c = closed.clone();
    let limits = Limits {
        idle_stream_timeout: Some(Duration::from_millis(100)),
        ..Limits::default()
    };
    let h = limited(limits)
        .on_close_stream(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    let closed2 = closed.clone();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let s = conn.new_stream().unwrap();
        assert_eq!(s.send_recv::<_, Num>(&Num { n: 5 }).await.unwrap().n, 5);
        assert_eq!(s.send_recv::<_, Num>(&Num { n: 5 }).await.unwrap().n, 10);
        assert!(eventually(|| closed2.load(Ordering::SeqCst) >= 1).await);
        // The stream's value is gone (fresh state), nothing was sent on the wire.
        assert_eq!(s.send_recv::<_, Num>(&Num { n: 5 }).await.unwrap().n, 5);
        let st: StatsReply = s.send_recv(&Stats {}).await.unwrap();
        assert!(st.streams_evicted >= 1);
    });
    stop(h);
}

#[test]
fn oversized_frames_close_the_connection() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        // The reply does not fit the client's max_frame: the server closes (§3.5).
        let conn = Client::builder().max_frame(64).connect(&addr).await.unwrap();
        assert_eq!(conn.max_frame(), 64);
        let big = MessageRequest {
            msg: "x".repeat(30),
            num: 1,
        };
        let r = conn.send_recv::<_, MessageReply>(&big).await;
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
        // A request that does not fit fails synchronously and closes the connection.
        let conn = Client::builder().max_frame(64).connect(&addr).await.unwrap();
        let huge = MessageRequest {
            msg: "x".repeat(100),
            num: 1,
        };
        assert!(matches!(conn.send(&huge).await, Err(Error::FrameTooLarge(_))));
        assert!(conn.is_closed());
    });
    stop(h);
}

/// Blocks the shard's thread for `ms` (a handler that never yields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BlockShard {
    ms: u64,
}
impl Message for BlockShard {
    const WIRE_NAME: &'static str = "am.rt.BlockShard";
}

/// Unix-socket listeners take `ServerBuilder::backlog` (default: the system
/// maximum), not glommio's fixed 128: 200 clients connecting at once while
/// the only shard is busy for 400 ms are all queued by the kernel, none is
/// refused with `EAGAIN` (which the Go client reports as a connect timeout).
#[test]
fn uds_connect_burst_while_the_shard_is_busy_is_not_refused() {
    use socket2::{Domain, SockAddr, Socket, Type};

    let path = std::env::temp_dir().join(format!("amring-backlog-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let h = server()
        .shards(amring::Shards::Unpinned(1))
        .handler(|_ctx: StreamContext, b: BlockShard| async move {
            std::thread::sleep(Duration::from_millis(b.ms));
            Ok::<_, String>(())
        })
        .serve(&format!("uds://{}", path.display()))
        .unwrap();
    let addr = h.dial_addr();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let busy = std::thread::spawn(move || {
        client(move || async move {
            let conn = Client::builder().connect(&addr).await.unwrap();
            started_tx.send(()).unwrap();
            let _: amring::codec::OkReply = conn.send_recv(&BlockShard { ms: 400 }).await.unwrap();
        })
    });
    started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // Give the request time to reach the handler, which then blocks the shard.
    std::thread::sleep(Duration::from_millis(100));
    let sa = SockAddr::unix(&path).unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        match s.connect(&sa) {
            Ok(()) => held.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => refused += 1,
            Err(e) => panic!("connect: {e}"),
        }
    }
    assert_eq!(
        refused, 0,
        "{refused} of 200 Unix-socket connects refused while the shard was busy"
    );
    busy.join().unwrap();
    drop(held);
    stop(h);
}
