//! Every limit hit once: typed error or counted drop, never a hang or a stall.

mod runtime_common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::codec::{ErrorReply, Message};
use amring::{Client, Error, Limits, StreamContext};
use runtime_common::*;
use serde::{Deserialize, Serialize};

/// Asks the server for some of its connection counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stats {}
impl Message for Stats {
    const WIRE_NAME: &'static str = "am.rt.Stats";
}

/// `[inbox_overflows, streams_evicted, stream_limit_hits]` of the server connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StatsReply {
    inbox_overflows: u64,
    streams_evicted: u64,
}
impl Message for StatsReply {
    const WIRE_NAME: &'static str = "am.rt.StatsReply";
}

fn limited(limits: Limits) -> amring::ServerBuilder {
    server()
        .limits(limits)
        .handler(|ctx: StreamContext, _s: Stats| async move {
            let c = ctx.conn_debug_state().counters;
            Ok::<_, String>(StatsReply {
                inbox_overflows: c.inbox_overflows,
                streams_evicted: c.streams_evicted,
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
    stop(h);
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
    stop(h);
}

#[test]
fn stream_limit_answers_protocol_error() {
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
        let _: MessageReply = conn.send_recv(&MessageRequest::default()).await.unwrap();
        let _: MessageReply = s1.send_recv(&MessageRequest::default()).await.unwrap();
        match s2.send_recv::<_, MessageReply>(&MessageRequest::default()).await {
            Err(Error::Remote { code, message }) => {
                assert_eq!(code, ErrorReply::PROTOCOL_ERROR);
                assert_eq!(message, "too many streams: limit 2");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Existing streams are unaffected.
        let _: MessageReply = s1.send_recv(&MessageRequest::default()).await.unwrap();
        // The client's own stream limit is a typed error.
        let small = Client::builder().limits(Limits {
            max_streams: 1,
            ..Limits::default()
        });
        let c2 = small.connect(&addr).await.unwrap();
        let _: MessageReply = c2.send_recv(&MessageRequest::default()).await.unwrap();
        assert!(matches!(c2.new_stream(), Err(Error::TooManyStreams(1))));
    });
    stop(h);
}

#[test]
fn slow_consumer_stream_never_blocks_other_streams() {
    let h = limited(Limits::default()).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let limits = Limits {
            inbox_per_stream: 10,
            ..Limits::default()
        };
        let conn = Client::builder().limits(limits).connect(&addr).await.unwrap();
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
        assert!(eventually(|| conn.debug_state().counters.inbox_overflows == 41).await);
        let d = slow.debug_state().unwrap();
        assert_eq!(d.inbox_depth, 10);
        assert_eq!(d.counters.inbox_overflows, 41);
        assert_eq!(
            conn.debug_state().last_failure.unwrap().code,
            amring::debug::FailureCode::LimitInbox
        );
        // The first 10 messages are intact and in order.
        assert_eq!(slow.recv::<Num>().await.unwrap().n, 100);
        for i in 0..9 {
            assert_eq!(slow.recv::<Num>().await.unwrap().n, i);
        }
    });
    stop(h);
}

#[test]
fn server_parks_unknown_messages_bounded() {
    with_conn(
        limited(Limits {
            inbox_per_stream: 10,
            ..Limits::default()
        }),
        |conn| async move {
            let s = conn.new_stream().unwrap();
            for i in 0..30 {
                s.send(&Unknown { n: i }).await.unwrap();
            }
            // No reply to unknown messages; the stream stays usable.
            let st: StatsReply = s.send_recv(&Stats {}).await.unwrap();
            assert_eq!(st.inbox_overflows, 20);
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
