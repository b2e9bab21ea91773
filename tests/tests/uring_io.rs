//! The io_uring-native socket path (`ServerBuilder::uring_io`, amring's own
//! ring per shard) next to glommio's sockets: which one a server uses is
//! visible in `ShardStats::uring_connections`, and both carry the same
//! traffic. The rest of the suite runs on the default path; these tests pin
//! both paths explicitly, whatever the default and `AMRING_IO` say.

mod runtime_common;

use std::time::Duration;

use amring::codec::OkReply;
use amring::{Client, Limits, StreamContext};
use amring_tests::bpmsg::{answer, with_feed, Answer, Ask, Feed};
use runtime_common::*;

fn uring_connections(h: &amring::ServerHandle) -> u64 {
    h.stats().iter().map(|s| s.uring_connections).sum()
}

/// Connections the ring can drive: one when the shard parks in one ring
/// built with `COOP_TASKRUN`, none when its wake path fell back
/// (`AMRING_GLOMMIO_SINGLE_RING=0`, or a failed start-up probe) or its ring
/// is plain (`AMRING_URING_COOP=0`): then glommio's sockets carry everything,
/// and the same traffic must still flow. Judged from the environment and the
/// wake path, not from `ShardStats::wake_path.ring_io`, so that a ring that
/// failed to come up is still caught.
fn ring_if_proven(h: &amring::ServerHandle, n: u64) -> u64 {
    let plain = std::env::var_os("AMRING_URING_COOP").is_some_and(|v| v == "0");
    if plain || h.stats().iter().any(|s| s.wake_path.fallback) {
        0
    } else {
        n
    }
}

fn accepted(h: &amring::ServerHandle) -> u64 {
    h.stats().iter().map(|s| s.accepted).sum()
}

/// Echo rounds, big replies, a server push to a late reader and a pipelined
/// burst of big requests against a slow handler, on one server.
fn traffic(builder: amring::ServerBuilder) -> (u64, u64, u64) {
    traffic_at(builder, "127.0.0.1:0")
}

/// [`traffic`] on a server listening at `at` (TCP or a Unix socket).
fn traffic_at(builder: amring::ServerBuilder, at: &str) -> (u64, u64, u64) {
    let h = with_feed(builder.handler(|_ctx: StreamContext, a: Ask| answer(a)))
        .serve(at)
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        echo_rounds(&conn, "ring-é").await;
        // Replies far bigger than a provided buffer (4 KiB) and a send (256 KiB).
        for size in [1u32, 4095, 4096, 4097, 65_536, 1 << 20] {
            let a: Answer = conn
                .send_recv(&Ask {
                    seq: size,
                    size,
                    delay_us: 0,
                })
                .await
                .unwrap();
            assert_eq!((a.seq, a.data.len()), (size, size as usize));
        }
        // 300 pushes of 8 KiB to a reader that starts 50 ms late: in order, all.
        let s = conn.new_stream().unwrap();
        let _: OkReply = s.send_recv(&Feed { n: 300, size: 8192 }).await.unwrap();
        glommio::timer::sleep(Duration::from_millis(50)).await;
        for seq in 0..300 {
            let a: Answer = s.recv().await.unwrap();
            assert_eq!(a.seq, seq);
        }
        // 200 pipelined requests of 2 KiB replies on 4 streams, slow handler.
        let streams: Vec<_> = (0..4).map(|_| conn.new_stream().unwrap()).collect();
        for (i, s) in streams.iter().enumerate() {
            for seq in 0..50u32 {
                s.send(&Ask {
                    seq: seq + 1000 * i as u32,
                    size: 2048,
                    delay_us: 50,
                })
                .await
                .unwrap();
            }
        }
        for (i, s) in streams.iter().enumerate() {
            for seq in 0..50u32 {
                let a: Answer = s.recv().await.unwrap();
                assert_eq!(a.seq, seq + 1000 * i as u32);
            }
        }
        conn.close();
    });
    // What the ring drove, next to what it would drive on this shard's wake
    // path (none after a fallback).
    let counts = (uring_connections(&h), accepted(&h), ring_if_proven(&h, 1));
    stop(h);
    counts
}

#[test]
fn the_ring_carries_every_kind_of_traffic() {
    let (ring, accepted, proven) = traffic(server().uring_io(true));
    assert_eq!(accepted, 1);
    assert_eq!(
        ring, proven,
        "the connection was driven by the shard's own ring (when its wake path is proven)"
    );
}

#[test]
fn glommio_sockets_carry_the_same_traffic() {
    let (ring, accepted, _) = traffic(server().uring_io(false));
    assert_eq!(accepted, 1);
    assert_eq!(ring, 0, "uring_io(false) keeps glommio's sockets");
}

/// Unix-socket connections ride the ring too (and glommio's sockets when
/// it is off), with the same traffic.
#[test]
fn unix_sockets_carry_the_same_traffic_on_both_paths() {
    for on in [true, false] {
        let at = format!("unix://@amring-uring-io-{}-{on}", std::process::id());
        let (ring, accepted, proven) = traffic_at(server().uring_io(on), &at);
        assert_eq!(accepted, 1);
        assert_eq!(ring, u64::from(on) * proven, "uring_io({on}) over a Unix socket");
    }
}

/// The default follows `AMRING_IO` (`uring` / `glommio`), else the built-in
/// default (glommio's sockets, on the same one ring).
#[test]
fn the_default_path_is_glommio_sockets_unless_the_environment_says_otherwise() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        echo_rounds(&conn, "default").await;
        conn.close();
    });
    let want = match std::env::var("AMRING_IO").as_deref() {
        Ok("uring") => ring_if_proven(&h, 1),
        _ => 0,
    };
    assert_eq!(uring_connections(&h), want);
    stop(h);
}

/// A client that sends much more than the server takes in (12 MiB of 4 KiB
/// requests to a handler that sleeps 50 µs each): the server's intake
/// pauses at its inbound limit, the ring stops receiving at its inbox mark,
/// and TCP pushes back on the client. The server never holds more than its
/// inbound limit plus one message, and every request is answered, in order.
#[test]
fn a_flooding_client_is_pushed_back_through_the_ring() {
    const N: i64 = 3000;
    let limits = Limits {
        max_inbound_bytes: 64 * 1024,
        ..Limits::default()
    };
    let h = server()
        .uring_io(true)
        .limits(limits)
        .handler(|ctx: StreamContext, req: MessageRequest| async move {
            glommio::timer::sleep(Duration::from_micros(50)).await;
            let held = ctx.conn_debug_state().held_inbound;
            if held > 64 * 1024 + 8 * 1024 {
                return Err(format!("server holds {held} bytes"));
            }
            Ok(Num { n: i64::from(req.num) })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let s = std::rc::Rc::new(conn.new_stream().unwrap());
        let sender = {
            let s = s.clone();
            glommio::spawn_local(async move {
                let body = "x".repeat(4096);
                for num in 0..N as i32 {
                    s.send(&MessageRequest { msg: body.clone(), num }).await.unwrap();
                }
            })
        };
        for num in 0..N {
            let r: Num = s.recv().await.unwrap();
            assert_eq!(r.n, num, "in order, exactly once");
        }
        sender.await;
        conn.close();
    });
    assert_eq!(uring_connections(&h), ring_if_proven(&h, 1));
    stop(h);
}

/// Shutting a server down with connections still open (a send in flight to
/// a client that does not read, receives armed) ends promptly.
#[test]
fn shutdown_with_open_connections_and_a_blocked_send_ends() {
    let h = with_feed(server().uring_io(true)).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        client(move || async move {
            let conn = Client::builder().connect(&addr).await.unwrap();
            let idle = Client::builder().connect(&addr).await.unwrap();
            let s = conn.new_stream().unwrap();
            // 64 MiB of pushes that nobody reads: the server's sends block.
            let _: OkReply = s.send_recv(&Feed { n: 1024, size: 65_536 }).await.unwrap();
            tx.send(()).unwrap();
            glommio::timer::sleep(Duration::from_secs(3)).await;
            drop((conn, idle));
        })
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    h.shutdown(Duration::from_millis(200));
    h.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    t.join().unwrap();
}
