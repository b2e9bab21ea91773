//! Backpressure end to end: what a connection holds stays within its byte
//! limits, nothing accepted is dropped, and the peer is pushed back (through
//! TCP) instead. One test per defect of issue 12 that is not a plain limit
//! (those are in `runtime_limits.rs`).

mod runtime_common;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amring::{Client, ClientRecoveryOptions, Limits, StreamContext};
use amring_proto::attach::RecoveryOptions;
use amring_tests::bpmsg::{answer, with_feed, Answer, Ask, Feed};
use runtime_common::*;

/// The largest holdings a handler saw on its connection: `(inbound, outbound)`.
#[derive(Default)]
struct Peak {
    inbound: AtomicUsize,
    outbound: AtomicUsize,
}

/// A server answering [`Ask`] with `limits`, recording the peak holdings.
fn ask_server(limits: Limits, recovery: Option<RecoveryOptions>, peak: Arc<Peak>) -> amring::ServerBuilder {
    server()
        .limits(limits)
        .recovery(recovery)
        .handler(move |ctx: StreamContext, a: Ask| {
            let d = ctx.conn_debug_state();
            peak.inbound.fetch_max(d.held_inbound, Ordering::Relaxed);
            peak.outbound.fetch_max(d.held_outbound, Ordering::Relaxed);
            answer(a)
        })
}

/// A new stream of `conn` and a task that sends `n` [`Ask`]s for `size`-byte
/// replies on it (waiting for room as needed), so the caller can read meanwhile.
fn pipeline(conn: &amring::Connection, n: u32, size: u32) -> (Rc<amring::Stream>, glommio::Task<()>) {
    let s = Rc::new(conn.new_stream().unwrap());
    let sender = glommio::spawn_local({
        let s = s.clone();
        async move {
            for seq in 0..n {
                s.send(&Ask { seq, size, delay_us: 0 }).await.unwrap();
            }
        }
    });
    (s, sender)
}

/// Defect 2: a v2 client that sends requests and never reads its replies
/// made the server's write queue grow without bound (3.3 GB in 30 s). Now
/// the server's output stops at `max_outbound_bytes`: its handlers' replies
/// wait, it stops reading requests, and TCP pushes back on the client, whose
/// own sends then wait. Once the client reads, every reply arrives, in order.
#[test]
fn a_client_that_never_reads_is_pushed_back_and_loses_nothing() {
    const N: u32 = 20_000;
    const LIMIT: usize = 64 << 10;
    let peak = Arc::new(Peak::default());
    let limits = Limits {
        max_outbound_bytes: LIMIT,
        max_inbound_bytes: LIMIT,
        ..Limits::default()
    };
    let h = ask_server(limits.clone(), None, peak.clone())
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        // The client holds little too: it stops reading at 4 KiB of replies.
        let conn = Client::builder()
            .limits(Limits {
                max_inbound_bytes: 4 << 10,
                max_outbound_bytes: LIMIT,
                ..Limits::default()
            })
            .connect(&addr)
            .await
            .unwrap();
        let (s, sender) = pipeline(&conn, N, 100);
        // The sender is pushed back long before it is done.
        glommio::timer::sleep(Duration::from_millis(500)).await;
        let d = conn.debug_state();
        assert!(
            d.held_outbound <= LIMIT + 1024,
            "client holds {} bytes to write",
            d.held_outbound
        );
        assert!(d.counters.send_waits > 0, "the client's sends never waited");
        for seq in 0..N {
            let a: Answer = s.recv().await.unwrap();
            assert_eq!(a.seq, seq);
        }
        sender.await;
    });
    stop(h);
    let (pin, pout) = (
        peak.inbound.load(Ordering::Relaxed),
        peak.outbound.load(Ordering::Relaxed),
    );
    // At most one message past either limit.
    assert!(pin <= LIMIT + 1024, "server held {pin} bytes inbound");
    assert!(pout <= LIMIT + 1024, "server held {pout} bytes outbound");
}

/// Defect 4: a v3 client pipelines 8,000 requests for 4 KiB replies and
/// reads (and ACKs) only after 2 s. The server's handlers wait for
/// replay-ring room, which only the client's ACKs free; the server must keep
/// reading to see them. Replies used to stop after ~2,000 until the 90 s
/// heartbeat timeout; now all arrive (bounded wait: a guard, not a speed check).
#[test]
fn v3_acks_keep_flowing_while_handlers_wait_for_ring_room() {
    const N: u32 = 8000;
    let peak = Arc::new(Peak::default());
    let h = ask_server(Limits::default(), Some(RecoveryOptions::default()), peak)
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder()
            .recovery(ClientRecoveryOptions::default())
            .connect(&addr)
            .await
            .unwrap();
        let s = conn.new_stream().unwrap();
        for seq in 0..N {
            s.send(&Ask {
                seq,
                size: 4096,
                delay_us: 0,
            })
            .await
            .unwrap();
        }
        glommio::timer::sleep(Duration::from_secs(2)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        s.set_recv_timeout(Some(Duration::from_secs(30)));
        for seq in 0..N {
            let a: Answer = s.recv().await.unwrap_or_else(|e| panic!("reply {seq} of {N}: {e}"));
            assert_eq!(a.seq, seq);
            assert!(Instant::now() < deadline, "stalled at reply {seq}");
        }
    });
    stop(h);
}

/// Defect 6: the server's default max_frame is 16 MiB (negotiated as the
/// minimum, §2.7), and a large frame's read buffer is sized once from its
/// header instead of doubling (a 1 GiB frame cost 1.6–2× its size).
#[test]
fn large_frames_are_read_into_a_buffer_sized_from_the_header() {
    let read_buffer = Arc::new(AtomicUsize::new(0));
    let rb = read_buffer.clone();
    let h = server()
        .handler(move |ctx: StreamContext, b: Answer| {
            rb.store(ctx.conn_debug_state().read_buffer, Ordering::Relaxed);
            async move {
                Ok::<_, String>(Ask {
                    seq: b.seq,
                    size: b.data.len() as u32,
                    delay_us: 0,
                })
            }
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    const SIZE: usize = 12 << 20;
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        assert_eq!(conn.max_frame(), amring::DEFAULT_SERVER_MAX_FRAME);
        let r: Ask = conn.send_recv(&Answer::new(1, SIZE as u32, 1)).await.unwrap();
        assert_eq!(r.size as usize, SIZE);
        // Over the limit: refused locally, nothing sent.
        let too_big = Answer::new(2, 17 << 20, 1);
        assert!(matches!(
            conn.send(&too_big).await,
            Err(amring::Error::FrameTooLarge(_))
        ));
    });
    stop(h);
    let cap = read_buffer.load(Ordering::Relaxed);
    assert!(
        (SIZE..SIZE + (256 << 10)).contains(&cap),
        "read buffer {cap} bytes for a {SIZE}-byte frame"
    );
}

/// The server-wide budget (`ServerBuilder::max_held_bytes`, split between
/// shards): four clients that pipeline requests for 4 KiB replies and do not
/// read would each make the server hold up to its per-connection limits
/// (4 MiB each way); with a 256 KiB budget the shard's total stays within it
/// (plus one message per connection), and once the clients read, every reply
/// arrives in order.
#[test]
fn the_server_wide_budget_bounds_all_connections_together() {
    const BUDGET: usize = 256 << 10;
    const CONNS: usize = 4;
    const N: u32 = 300;
    let shard_peak = Arc::new(AtomicUsize::new(0));
    let sp = shard_peak.clone();
    let h = server()
        .shards(amring::Shards::Unpinned(1))
        .max_held_bytes(BUDGET)
        .handler(move |ctx: StreamContext, a: Ask| {
            let held = ctx
                .conn_debug_state()
                .shard_held
                .expect("server connections have a budget");
            sp.fetch_max(held, Ordering::Relaxed);
            answer(a)
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let mut conns = Vec::new();
        for _ in 0..CONNS {
            let conn = Client::builder()
                .limits(Limits {
                    max_inbound_bytes: 4 << 10,
                    ..Limits::default()
                })
                .connect(&addr)
                .await
                .unwrap();
            let (s, sender) = pipeline(&conn, N, 4096);
            conns.push((conn, s, sender));
        }
        glommio::timer::sleep(Duration::from_millis(300)).await;
        for (_, s, sender) in conns {
            for seq in 0..N {
                let a: Answer = s.recv().await.unwrap();
                assert_eq!(a.seq, seq);
            }
            sender.await;
        }
    });
    stop(h);
    let peak = shard_peak.load(Ordering::Relaxed);
    assert!(peak > 0);
    assert!(
        peak <= BUDGET + CONNS * (4096 + 1024),
        "the shard held {peak} bytes with a {BUDGET}-byte budget"
    );
}

/// Between two amring peers (per-stream credit, negotiated in the
/// handshake), a stream that never reads does not slow a busy stream on the
/// same connection: its receiver holds at most `STREAM_WINDOW` of it and the
/// sender's pushes on it wait. Control: without credit (as with a Go peer)
/// the unread stream fills the connection's inbound limit, the connection
/// stops reading and the busy stream stalls too. Nothing is lost either way.
#[test]
fn per_stream_credit_an_unread_stream_never_stalls_the_others() {
    const PUSHES: u32 = 2000;
    for credit in [true, false] {
        let h = with_feed(server().handler(|_ctx: StreamContext, a: Ask| answer(a)))
            .serve("127.0.0.1:0")
            .unwrap();
        let addr = h.dial_addr();
        client(move || async move {
            let conn = Client::builder().stream_credit(credit).connect(&addr).await.unwrap();
            let unread = conn.new_stream().unwrap();
            let _: amring::codec::OkReply = unread.send_recv(&Feed { n: PUSHES, size: 4096 }).await.unwrap();
            // Let the pushes pile up on the stream nobody reads.
            glommio::timer::sleep(Duration::from_millis(300)).await;
            let busy = conn.new_stream().unwrap();
            busy.set_recv_timeout(Some(Duration::from_secs(2)));
            let first = busy
                .send_recv::<_, Answer>(&Ask {
                    seq: 0,
                    size: 16,
                    delay_us: 0,
                })
                .await;
            if credit {
                assert_eq!(first.unwrap().seq, 0);
                for seq in 1..200 {
                    let a: Answer = busy
                        .send_recv(&Ask {
                            seq,
                            size: 16,
                            delay_us: 0,
                        })
                        .await
                        .unwrap();
                    assert_eq!(a.seq, seq);
                }
                let held = unread.debug_state().unwrap().inbox_depth * (4096 + 32);
                assert!(
                    held <= amring::STREAM_WINDOW + 8192,
                    "the unread stream holds {held} bytes"
                );
            } else {
                assert!(
                    matches!(first, Err(amring::Error::RecvTimeout)),
                    "without credit the busy stream stalls: {first:?}"
                );
            }
            // Nothing was lost: every push arrives, in order.
            for seq in 0..PUSHES {
                let a: Answer = unread.recv().await.unwrap();
                assert_eq!(a.seq, seq, "credit={credit}");
            }
            if !credit {
                // The stalled reply arrives once the connection reads again.
                let a: Answer = busy.recv().await.unwrap();
                assert_eq!(a.seq, 0);
            }
        });
        stop(h);
    }
}

/// Both ends' output full at once must not stall: a client with small limits
/// pipelines 40 MiB of 4 KiB echo requests on one stream while another task
/// reads the replies. The server's output fills (the client reads slowly),
/// then the client's (the server stops taking requests whose replies it
/// cannot write). A connection whose own output is full still reads, within
/// its inbound limit, so the replies drain and both sides go on. (Found under
/// abuse: the client used to stop reading while its requests waited, and the
/// two waited for each other forever.)
#[test]
fn both_outputs_full_at_once_do_not_stall() {
    const N: i32 = 10_000;
    let limits = Limits {
        max_inbound_bytes: 64 * 1024,
        max_outbound_bytes: 64 * 1024,
        ..Limits::default()
    };
    let h = server().limits(limits.clone()).serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().limits(limits).connect(&addr).await.unwrap();
        let s = Rc::new(conn.new_stream().unwrap());
        let sender = {
            let s = s.clone();
            glommio::spawn_local(async move {
                let body = "x".repeat(4096);
                for num in 0..N {
                    s.send(&MessageRequest { msg: body.clone(), num }).await.unwrap();
                }
            })
        };
        for num in 0..N {
            let r: MessageReply = s.recv().await.unwrap();
            assert_eq!(r.num, num + 1, "in order, exactly once");
            let held = conn.debug_state().held_inbound;
            assert!(held <= 64 * 1024 + 8 * 1024, "client holds {held} bytes");
        }
        sender.await;
        conn.close();
    });
    stop(h);
}
