//! Property test of backpressure: slow consumers and fast producers in both
//! directions (client requests to slow handlers; a server task pushing to a
//! slow client reader), over v2 and v3, with a transport cut at a random byte
//! offset in v3. Every message is delivered exactly once and in order, and
//! what either side holds never passes its byte limits by more than one
//! message (v3: twice the inbound limit while a sender waits for ACKs).

mod runtime_common;

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::{Client, ClientRecoveryOptions, Limits, StreamContext, MESSAGE_OVERHEAD};
use amring_proto::attach::RecoveryOptions;
use amring_tests::bpmsg::{answer, with_feed, Answer, Ask, Feed};
use amring_tests::faultproxy::{Direction, FaultProxy};
use proptest::prelude::*;
use runtime_common::*;

/// The largest holdings the server's handlers and tasks saw.
#[derive(Default)]
struct Peak {
    inbound: AtomicUsize,
    outbound: AtomicUsize,
}

impl Peak {
    fn note(&self, ctx: &StreamContext) {
        let d = ctx.conn_debug_state();
        self.inbound.fetch_max(d.held_inbound, Ordering::Relaxed);
        self.outbound.fetch_max(d.held_outbound, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug)]
struct Case {
    v3: bool,
    streams: u32,
    per_stream: u32,
    size: u32,
    delay_us: u32,
    server_in: usize,
    server_out: usize,
    client_in: usize,
    read_delay_ms: u64,
    pushes: u32,
    /// v3: cut the transport after this many bytes in this direction.
    cut: Option<(bool, u64)>,
    /// amring↔amring per-stream credit.
    credit: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        1u32..4,
        20u32..200,
        8u32..2048,
        0u32..200,
        (8usize..64, 8usize..64, 4usize..32),
        0u64..30,
        0u32..300,
        (any::<bool>(), 2_000u64..60_000),
        any::<bool>(),
    )
        .prop_map(
            |(v3, streams, per_stream, size, delay_us, (si, so, ci), read_delay_ms, pushes, cut, credit)| Case {
                v3,
                streams,
                per_stream,
                size,
                delay_us,
                server_in: si << 10,
                server_out: so << 10,
                client_in: ci << 10,
                read_delay_ms,
                pushes,
                cut: v3.then_some(cut),
                credit,
            },
        )
}

/// Accounted bytes of the largest message of a case (one message may pass a limit).
fn one_message(c: &Case) -> usize {
    c.size as usize + 64 + MESSAGE_OVERHEAD
}

fn run(c: Case) {
    let peak = Arc::new(Peak::default());
    let p1 = peak.clone();
    let h = with_feed(server())
        .limits(Limits {
            max_inbound_bytes: c.server_in,
            max_outbound_bytes: c.server_out,
            ..Limits::default()
        })
        .recovery(c.v3.then(RecoveryOptions::default))
        .handler(move |ctx: StreamContext, a: Ask| {
            p1.note(&ctx);
            answer(a)
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let proxy = c.v3.then(|| FaultProxy::start(h.local_addr().tcp().unwrap()).unwrap());
    let addr = proxy.as_ref().map_or_else(|| h.dial_addr(), |p| p.dial_addr());
    if let (Some(p), Some((up, n))) = (&proxy, c.cut) {
        let dir = if up {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        p.cut_after_bytes(dir, n);
    }
    let c2 = c.clone();
    let client_peak = client(move || async move {
        let c = c2;
        let mut b = Client::builder().stream_credit(c.credit).limits(Limits {
            max_inbound_bytes: c.client_in,
            ..Limits::default()
        });
        if c.v3 {
            b = b.recovery(ClientRecoveryOptions {
                min_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(50),
                ..ClientRecoveryOptions::default()
            });
        }
        let conn = Rc::new(b.connect(&addr).await.unwrap());
        let peak = Rc::new(std::cell::Cell::new(0usize));
        let mut tasks = Vec::new();
        for _ in 0..c.streams {
            let s = Rc::new(conn.new_stream().unwrap());
            let (conn, peak, c) = (conn.clone(), peak.clone(), c.clone());
            tasks.push(glommio::spawn_local(async move {
                let sender = glommio::spawn_local({
                    let s = s.clone();
                    let c = c.clone();
                    async move {
                        for seq in 0..c.per_stream {
                            let ask = Ask {
                                seq,
                                size: c.size,
                                delay_us: c.delay_us,
                            };
                            s.send(&ask).await.unwrap();
                        }
                    }
                });
                glommio::timer::sleep(Duration::from_millis(c.read_delay_ms)).await;
                for seq in 0..c.per_stream {
                    peak.set(peak.get().max(conn.debug_state().held_inbound));
                    let a: Answer = s.recv().await.unwrap();
                    assert_eq!(a.seq, seq, "request replies in order, exactly once");
                    assert_eq!(a.data.len(), c.size as usize);
                }
                sender.await;
            }));
        }
        // Server → client: a task pushes to a reader that starts late.
        if c.pushes > 0 {
            let s = conn.new_stream().unwrap();
            let _: amring::codec::OkReply = s
                .send_recv(&Feed {
                    n: c.pushes,
                    size: c.size,
                })
                .await
                .unwrap();
            glommio::timer::sleep(Duration::from_millis(c.read_delay_ms)).await;
            for seq in 0..c.pushes {
                peak.set(peak.get().max(conn.debug_state().held_inbound));
                let a: Answer = s.recv().await.unwrap();
                assert_eq!(a.seq, seq, "pushes in order, exactly once");
            }
        }
        for t in tasks {
            t.await;
        }
        conn.close();
        peak.get()
    });
    stop(h);
    let one = one_message(&c);
    let in_bound = if c.v3 { 2 * c.server_in } else { c.server_in };
    let (pin, pout) = (
        peak.inbound.load(Ordering::Relaxed),
        peak.outbound.load(Ordering::Relaxed),
    );
    let cuts = proxy.as_ref().map_or(0, |p| p.cuts());
    eprintln!("case {c:?}: server in {pin} out {pout}, client in {client_peak}, cuts {cuts}");
    if c.credit {
        // With credit the windows bound the intake, not the byte limits
        // (accounted bytes include 64 per message: a sanity bound here).
        let windows = 5 * amring::CONN_WINDOW;
        assert!(pin <= windows && client_peak <= windows, "{pin} / {client_peak}: {c:?}");
        assert!(pout <= c.server_out + one, "server outbound {pout}: {c:?}");
        return;
    }
    assert!(
        pin <= in_bound + one,
        "server inbound {pin} > {in_bound} + {one}: {c:?}"
    );
    assert!(
        pout <= c.server_out + one,
        "server outbound {pout} > {} + {one}: {c:?}",
        c.server_out
    );
    assert!(
        client_peak <= c.client_in + one,
        "client inbound {client_peak} > {} + {one}: {c:?}",
        c.client_in
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn slow_consumers_fast_producers_lose_nothing_and_stay_bounded(c in cases()) {
        run(c);
    }
}
