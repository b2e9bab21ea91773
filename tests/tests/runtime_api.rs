//! End-to-end tests of the server/client API over loopback (spec §5, §6).

mod runtime_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amring::codec::{CodecKind, ErrorReply, OkReply};
use amring::{Client, Error, StreamContext};
use runtime_common::*;

#[test]
fn echo_round_trip_both_codecs() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        for kind in [CodecKind::Compact, CodecKind::Map] {
            let conn = Client::builder().codecs([kind]).connect(&addr).await.unwrap();
            assert_eq!(conn.codec(), kind);
            echo_rounds(&conn, "hi").await;
            let d = conn.debug_state();
            assert_eq!(d.codec_name, kind.name());
            assert_eq!(d.counters.data_messages_sent, 20);
            assert_eq!(d.counters.data_messages_received, 20);
            assert!(d.counters.frames_written >= 20 && d.counters.frames_read >= 20);
        }
    });
    stop(h);
}

#[test]
fn ok_reply_handler_error_and_panic_are_contained() {
    with_conn(
        server().handler(|_ctx, n: Num| async move {
            match n.n {
                0 => Ok(()),
                1 => Err(format!("bad number {}", n.n)),
                _ => panic!("handler panic"),
            }
        }),
        |conn| async move {
            let ok: OkReply = conn.send_recv(&Num { n: 0 }).await.unwrap();
            assert_eq!(ok, OkReply {});
            match conn.send_recv::<_, OkReply>(&Num { n: 1 }).await {
                Err(Error::Remote { code, message }) => {
                    assert_eq!(code, ErrorReply::HANDLER_ERROR);
                    assert_eq!(message, "bad number 1");
                }
                other => panic!("unexpected {other:?}"),
            }
            match conn.send_recv::<_, OkReply>(&Num { n: 2 }).await {
                Err(Error::Remote { code, message }) => {
                    assert_eq!(code, ErrorReply::HANDLER_ERROR);
                    assert!(message.contains("handler panic"), "{message}");
                }
                other => panic!("unexpected {other:?}"),
            }
            // The connection and the server survive the panic.
            let rep: MessageReply = conn
                .send_recv(&MessageRequest {
                    msg: "x".into(),
                    num: 1,
                })
                .await
                .unwrap();
            assert_eq!(rep.num, 2);
            assert_eq!(conn.debug_state().counters.remote_errors, 2);
        },
    );
}

#[test]
fn streams_are_numbered_and_run_concurrently() {
    with_conn(server(), |conn| async move {
        let s1 = conn.new_stream().unwrap();
        let s2 = conn.new_stream().unwrap();
        let s3 = conn.new_stream().unwrap();
        assert_eq!((s1.id(), s2.id(), s3.id()), (1, 2, 3));
        // A slow request on stream 1 does not hold back stream 2.
        s1.send(&Slow { ms: 300, n: 1 }).await.unwrap();
        let fast: Num = s2.send_recv(&Slow { ms: 0, n: 2 }).await.unwrap();
        assert_eq!(fast.n, 2);
        assert!(
            s1.debug_state().unwrap().inbox_depth == 0,
            "slow reply must not be there yet"
        );
        let slow: Num = s1.recv().await.unwrap();
        assert_eq!(slow.n, 1);
        // Requests on one stream are answered in order.
        for i in 0..10 {
            s3.send(&Slow {
                ms: (10 - i) as u64,
                n: i,
            })
            .await
            .unwrap();
        }
        for i in 0..10 {
            let r: Num = s3.recv().await.unwrap();
            assert_eq!(r.n, i);
        }
    });
}

#[test]
fn type_mismatch_sends_protocol_error_and_discards_stream() {
    with_conn(server(), |conn| async move {
        let s = conn.new_stream().unwrap();
        match s
            .send_recv::<_, Num>(&MessageRequest {
                msg: "a".into(),
                num: 0,
            })
            .await
        {
            Err(Error::TypeMismatch { expected, got }) => {
                assert_eq!(expected, "am.rt.Num");
                assert_eq!(got, "am.echo.MessageReply");
            }
            other => panic!("unexpected {other:?}"),
        }
        let d = conn.debug_state();
        assert_eq!(d.counters.protocol_errors, 1);
        assert_eq!(d.counters.decode_errors, 1);
        assert_eq!(d.counters.streams_closed, 1);
        assert_eq!(d.last_failure.unwrap().code, amring::debug::FailureCode::StreamProtocol);
        // The id is usable again (fresh state).
        let r: MessageReply = s
            .send_recv(&MessageRequest {
                msg: "b".into(),
                num: 0,
            })
            .await
            .unwrap();
        assert_eq!(r.msg, "b!");
    });
}

#[test]
fn recv_timeout_keeps_late_reply_and_concurrent_recv_fails() {
    with_conn(server(), |conn| async move {
        conn.set_recv_timeout(Some(Duration::from_millis(50)));
        let r = conn.send_recv::<_, Num>(&Slow { ms: 300, n: 7 }).await;
        assert!(matches!(r, Err(Error::RecvTimeout)), "{r:?}");
        assert_eq!(
            conn.debug_state().last_failure.unwrap().code,
            amring::debug::FailureCode::StreamRecvTimeout
        );
        conn.set_recv_timeout(None);
        // The late reply stays queued for the next receive.
        assert_eq!(conn.peek_wire().await.unwrap(), "am.rt.Num");
        let late: Num = conn.recv().await.unwrap();
        assert_eq!(late.n, 7);
        // Two receivers on one stream.
        let s = conn.new_stream().unwrap();
        s.send(&Slow { ms: 100, n: 1 }).await.unwrap();
        let first = s.recv::<Num>();
        let second = async {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            s.recv::<Num>().await
        };
        let (a, b) = futures_lite::future::zip(first, second).await;
        assert_eq!(a.unwrap().n, 1);
        assert!(matches!(b, Err(Error::ConcurrentRecv)), "{b:?}");
    });
}

#[test]
fn push_task_value_and_unknown_messages() {
    with_conn(
        server().handler(|ctx: StreamContext, n: Num| async move {
            // Stream value: a running total per stream.
            let total = ctx.value::<i64>().unwrap_or(0) + n.n;
            ctx.set_value(total);
            if n.n == 100 {
                // Push task: echoes unknown messages back as Num, after the OkReply.
                ctx.new_task(|stream| async move {
                    for i in 0..3 {
                        stream.send(&Num { n: 1000 + i }).await.unwrap();
                    }
                    let u: Unknown = stream.recv().await.unwrap();
                    stream.send(&Num { n: u.n }).await.unwrap();
                })
                .map_err(|e| e.to_string())?;
                // A second task on the same stream is refused.
                return match ctx.new_task(|_s| async {}) {
                    Err(Error::HandlerTaskBusy) => Ok(Num { n: -1 }),
                    other => Err(format!("expected busy, got {other:?}")),
                };
            }
            Ok(Num { n: total })
        }),
        |conn| async move {
            let s = conn.new_stream().unwrap();
            assert_eq!(s.send_recv::<_, Num>(&Num { n: 5 }).await.unwrap().n, 5);
            assert_eq!(s.send_recv::<_, Num>(&Num { n: 6 }).await.unwrap().n, 11);
            // Another stream has its own value.
            let s2 = conn.new_stream().unwrap();
            assert_eq!(s2.send_recv::<_, Num>(&Num { n: 1 }).await.unwrap().n, 1);
            // Start the push task: reply first, then three pushes.
            assert_eq!(s2.send_recv::<_, Num>(&Num { n: 100 }).await.unwrap().n, -1);
            for i in 0..3 {
                assert_eq!(s2.recv::<Num>().await.unwrap().n, 1000 + i);
            }
            // An unknown message goes to the task's inbox; nothing else is sent.
            s2.send(&Unknown { n: 42 }).await.unwrap();
            let raw = s2.recv_any().await.unwrap();
            assert_eq!(raw.wire(), "am.rt.Num");
            assert_eq!(raw.decode::<Num>().unwrap().n, 42);
            assert!(matches!(raw.decode::<Unknown>(), Err(Error::TypeMismatch { .. })));
        },
    );
}

#[test]
fn hooks_and_on_connect_rejection() {
    let opened = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let disc = Arc::new(AtomicUsize::new(0));
    let (o, c, d) = (opened.clone(), closed.clone(), disc.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let h = server()
        .on_connect(move |_info| {
            // Reject every second connection.
            if calls.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                Err("go away".into())
            } else {
                Ok(())
            }
        })
        .on_disconnect(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .on_new_stream(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        })
        .on_close_stream(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    let (opened2, closed2, disc2) = (opened.clone(), closed.clone(), disc.clone());
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        for _ in 0..3 {
            let s = conn.new_stream().unwrap();
            let _: MessageReply = s.send_recv(&MessageRequest::default()).await.unwrap();
        }
        assert_eq!(opened2.load(Ordering::SeqCst), 3);
        drop(conn);
        assert!(eventually(|| closed2.load(Ordering::SeqCst) == 3 && disc2.load(Ordering::SeqCst) == 1).await);
        // Rejected by on_connect: the handshake succeeds, then EOF (§2.4).
        let conn = Client::builder().connect(&addr).await.unwrap();
        conn.wait_closed().await;
        let r = conn.send_recv::<_, MessageReply>(&MessageRequest::default()).await;
        assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    });
    stop(h);
    assert_eq!(
        disc.load(Ordering::SeqCst),
        1,
        "rejected connection never reached on_disconnect"
    );
}

#[test]
fn once_uds_and_abstract() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    let path = std::env::temp_dir().join(format!("amring-rt-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let uds = format!("uds://{}", path.display());
    let hu = server().serve(&uds).unwrap();
    let abs = format!("unix://@amring-rt-{}", std::process::id());
    let ha = server().serve(&abs).unwrap();
    let (uds2, abs2) = (uds.clone(), abs.clone());
    client(move || async move {
        let r: MessageReply = amring::once(
            &addr,
            &MessageRequest {
                msg: "o".into(),
                num: 1,
            },
        )
        .await
        .unwrap();
        assert_eq!(r.msg, "o!");
        for a in [uds2, abs2] {
            let conn = Client::builder().connect(&a).await.unwrap();
            let r: MessageReply = conn
                .send_recv(&MessageRequest {
                    msg: "u".into(),
                    num: 9,
                })
                .await
                .unwrap();
            assert_eq!((r.msg.as_str(), r.num), ("u!", 10));
        }
        // once() against nothing listening fails fast with an I/O error.
        let dead = "127.0.0.1:1";
        assert!(amring::once::<_, MessageReply>(dead, &MessageRequest::default())
            .await
            .is_err());
    });
    stop(h);
    stop(hu);
    stop(ha);
    assert!(!path.exists(), "UDS socket file removed on shutdown");
}

/// `ClientBuilder::once` uses the builder's settings (here: the map codec
/// only), like the reference's `Once` with options.
#[test]
fn once_from_a_builder_uses_its_codecs() {
    let h = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(|ctx: StreamContext, m: MessageRequest| async move {
            Ok::<_, String>(MessageReply {
                msg: ctx.conn_debug_state().codec_name.to_owned(),
                num: m.num,
                ..Default::default()
            })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        for (codec, name) in [(CodecKind::Map, "map"), (CodecKind::Compact, "compact")] {
            let r: MessageReply = Client::builder()
                .codecs([codec])
                .once(
                    &addr,
                    &MessageRequest {
                        msg: String::new(),
                        num: 3,
                    },
                )
                .await
                .unwrap();
            assert_eq!((r.msg.as_str(), r.num), (name, 3));
        }
    });
    stop(h);
}

#[test]
fn connections_spread_over_shards() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    assert_eq!(h.addrs().len(), 2);
    assert_eq!(h.addrs()[0], h.addrs()[1]);
    client(move || async move {
        let mut conns = Vec::new();
        for i in 0..24 {
            let c = Client::builder().connect(&addr).await.unwrap();
            let r: MessageReply = c
                .send_recv(&MessageRequest {
                    msg: String::new(),
                    num: i,
                })
                .await
                .unwrap();
            assert_eq!(r.num, i + 1);
            conns.push(c);
        }
    });
    let stats = h.stats();
    assert_eq!(stats.iter().map(|s| s.served).sum::<u64>(), 24);
    assert!(stats.iter().all(|s| s.served > 0), "both shards served: {stats:?}");
    stop(h);
}

#[test]
fn shutdown_completes_in_flight_requests() {
    let h = server().serve("127.0.0.1:0").unwrap();
    let addr = h.dial_addr();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        client(move || async move {
            let conn = Client::builder().connect(&addr).await.unwrap();
            conn.send(&Slow { ms: 300, n: 3 }).await.unwrap();
            glommio::timer::sleep(Duration::from_millis(50)).await;
            tx.send(()).unwrap();
            let r: Num = conn.recv().await.unwrap();
            assert_eq!(r.n, 3);
            conn.wait_closed().await;
        })
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    h.shutdown(Duration::from_secs(5));
    h.join().unwrap();
    t.join().unwrap();
}

#[test]
fn spinning_shard_serves_and_parks_again() {
    // A shard that busy-polls before parking answers like any other, both
    // back to back (it is still spinning) and after an idle gap longer than
    // the spin (it parked and must be woken by the next request).
    let h = server()
        .spin_before_park(Duration::from_micros(200))
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        for i in 0..6 {
            if i % 2 == 1 {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            let rep: MessageReply = conn
                .send_recv(&MessageRequest {
                    msg: format!("s{i}"),
                    num: i,
                })
                .await
                .unwrap();
            assert_eq!((rep.msg.as_str(), rep.num), (format!("s{i}!").as_str(), i + 1));
        }
    });
    stop(h);
}

/// `on_new_stream` runs before the stream's first handler starts, so a value
/// it stores is visible to that handler (the reference runs `OnNewStream`
/// before the frame is queued). The hook also counts how often it saw the
/// value already present: a late hook would overwrite what a handler set.
/// Both protocol versions, stream 0 and new streams, several rounds.
#[test]
fn on_new_stream_value_is_visible_to_the_first_handler_v2_and_v3() {
    use amring::ClientRecoveryOptions;
    use amring_proto::attach::RecoveryOptions;

    for v3 in [false, true] {
        let late = Arc::new(AtomicUsize::new(0));
        let l = late.clone();
        let h = server()
            .recovery(v3.then(RecoveryOptions::default))
            .on_new_stream(move |ctx| {
                if ctx.value::<u32>().is_some() {
                    l.fetch_add(1, Ordering::SeqCst);
                }
                ctx.set_value(ctx.stream_id() + 1000);
            })
            .handler(|ctx: StreamContext, n: Num| async move {
                match ctx.value::<u32>() {
                    Some(v) if v == ctx.stream_id() + 1000 => Ok(Num { n: n.n }),
                    other => Err(format!("stream {}: context value {other:?}", ctx.stream_id())),
                }
            })
            .serve("127.0.0.1:0")
            .unwrap();
        let addr = h.dial_addr();
        client(move || async move {
            for round in 0..5 {
                let mut b = Client::builder();
                if v3 {
                    b = b.recovery(ClientRecoveryOptions::default());
                }
                let conn = b.connect(&addr).await.unwrap();
                assert_eq!(conn.debug_state().protocol, if v3 { 3 } else { 2 });
                // The very first frame of the connection (stream 0), then new streams.
                let r: Num = conn
                    .send_recv(&Num { n: round })
                    .await
                    .unwrap_or_else(|e| panic!("v3={v3} round {round} stream 0: {e}"));
                assert_eq!(r.n, round);
                for i in 0..4 {
                    let s = conn.new_stream().unwrap();
                    let r: Num = s
                        .send_recv(&Num { n: i })
                        .await
                        .unwrap_or_else(|e| panic!("v3={v3} round {round} stream {}: {e}", s.id()));
                    assert_eq!(r.n, i);
                }
                conn.close();
            }
        });
        assert_eq!(
            late.load(Ordering::SeqCst),
            0,
            "v3={v3}: a hook ran after its stream's handler"
        );
        stop(h);
    }
}

/// Starts a `new_task` whose task panics; answers `OkReply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PanicTask {}
impl amring::codec::Message for PanicTask {
    const WIRE_NAME: &'static str = "am.rt.PanicTask";
}

/// Panics in user code other than handlers (a `new_task` task, `on_connect`,
/// `on_new_stream`, `on_close_stream`, `on_disconnect`) are contained on the
/// one shard: recorded with a failure code and counted, and the shard keeps
/// serving every connection.
#[test]
fn panics_in_tasks_and_hooks_are_contained() {
    let connects = Arc::new(AtomicUsize::new(0));
    let c = connects.clone();
    let h = server()
        .shards(amring::Shards::Unpinned(1))
        .on_connect(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("on_connect boom");
            }
            Ok(())
        })
        .on_new_stream(|ctx| {
            if ctx.stream_id() == 2 {
                panic!("on_new_stream boom");
            }
        })
        .on_close_stream(|_| panic!("on_close_stream boom"))
        .on_disconnect(|_| panic!("on_disconnect boom"))
        .handler(|ctx: StreamContext, _: PanicTask| async move {
            ctx.new_task(|_s| async move {
                glommio::timer::sleep(Duration::from_millis(1)).await;
                panic!("task boom");
            })
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })
        .handler(|ctx: StreamContext, _: Num| async move {
            let d = ctx.conn_debug_state();
            let codes: Vec<String> = d
                .streams
                .iter()
                .filter_map(|s| s.last_failure.as_ref().map(|f| f.code.to_string()))
                .collect();
            Ok::<_, String>(MessageReply {
                msg: codes.join(","),
                num: d.counters.panics as i32,
                signature: String::new(),
            })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        // The first connection's on_connect panics: rejected like an Err.
        let first = Client::builder().connect(&addr).await.unwrap();
        first.wait_closed().await;
        let conn = Client::builder().connect(&addr).await.unwrap();
        let _: OkReply = conn.send_recv(&PanicTask {}).await.unwrap();
        let s1 = conn.new_stream().unwrap();
        let s2 = conn.new_stream().unwrap();
        let _: MessageReply = s1.send_recv(&MessageRequest::default()).await.unwrap();
        // Stream 2's on_new_stream panics; its request is still served.
        let _: MessageReply = s2.send_recv(&MessageRequest::default()).await.unwrap();
        // The task panics 1 ms after its handler replied: poll (bounded).
        let mut report = MessageReply::default();
        for _ in 0..200 {
            report = conn.send_recv(&Num { n: 0 }).await.unwrap();
            if report.num >= 2 {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(report.num, 2, "task + on_new_stream panics counted: {report:?}");
        assert!(report.msg.contains("task.panic"), "{report:?}");
        assert!(report.msg.contains("hook.panic"), "{report:?}");
        conn.close();
        // The shard still serves new connections.
        let again = Client::builder().connect(&addr).await.unwrap();
        let _: MessageReply = again.send_recv(&MessageRequest::default()).await.unwrap();
        again.close();
    });
    let stats = h.stats();
    let hook_panics: u64 = stats.iter().map(|s| s.hook_panics).sum();
    stop(h);
    assert!(
        hook_panics >= 2,
        "on_connect + on_disconnect panics counted: {hook_panics}"
    );
}

/// Spec §5.3: a client dispatches inbound messages to its handlers like a
/// server. Server pushes of a type the client has a handler for run that
/// handler, in order per stream; the handler's reply goes back to the server.
#[test]
fn client_handlers_receive_server_pushes_in_order() {
    use amring_tests::bpmsg::{with_feed, Answer, Feed};
    const N: u32 = 200;
    let h = with_feed(amring::Server::builder().shards(amring::Shards::Unpinned(1)))
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    client(move || async move {
        let conn = Client::builder()
            .handler(move |ctx: StreamContext, a: Answer| {
                s2.lock().unwrap().push((ctx.stream_id(), a.seq));
                async move { Ok::<_, String>(()) }
            })
            .connect(&addr)
            .await
            .unwrap();
        let s = conn.new_stream().unwrap();
        let _: OkReply = s.send_recv(&Feed { n: N, size: 8 }).await.unwrap();
        assert!(eventually(|| conn.debug_state().counters.handler_calls == u64::from(N)).await);
        let d = conn.debug_state();
        assert_eq!(
            d.streams.iter().find(|x| x.id == s.id()).map(|x| x.inbox_depth),
            Some(0)
        );
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), N as usize);
    assert!(
        seen.iter().enumerate().all(|(i, &(_, seq))| seq == i as u32),
        "in order"
    );
    assert!(seen.iter().all(|&(id, _)| id == seen[0].0), "all on the feed's stream");
    stop(h);
}

/// Handlers reply with any message type chosen at run time
/// (`Box<dyn AnyMessage>`), or with none (`Option::None` sends OkReply), as
/// the reference's handlers do.
#[test]
fn handlers_reply_with_any_type_or_none() {
    use amring::codec::AnyMessage;
    let h = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(|_ctx: StreamContext, m: MessageRequest| async move {
            let r: Box<dyn AnyMessage> = if m.num % 2 == 0 {
                Box::new(MessageReply {
                    msg: m.msg,
                    num: m.num,
                    ..Default::default()
                })
            } else {
                Box::new(ErrorReply::new("odd", format!("{} is odd", m.num)))
            };
            Ok::<_, String>(r)
        })
        .handler(|_ctx: StreamContext, n: Num| async move { Ok::<_, String>((n.n > 0).then_some(Num { n: n.n * 2 })) })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let r: MessageReply = conn
            .send_recv(&MessageRequest {
                msg: "e".into(),
                num: 2,
            })
            .await
            .unwrap();
        assert_eq!(r.num, 2);
        let e = conn
            .send_recv::<_, MessageReply>(&MessageRequest {
                msg: "o".into(),
                num: 3,
            })
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::Remote { code, .. } if code == "odd"), "{e:?}");
        let r: Num = conn.send_recv(&Num { n: 4 }).await.unwrap();
        assert_eq!(r.n, 8);
        let _: OkReply = conn.send_recv(&Num { n: 0 }).await.unwrap();
        // A dynamically typed send from the client side too.
        let any: &dyn AnyMessage = &Num { n: 5 };
        let s = conn.new_stream().unwrap();
        s.send(any).await.unwrap();
        let r: Num = s.recv().await.unwrap();
        assert_eq!(r.n, 10);
    });
    stop(h);
}

/// Dynamic receive (§5.5): a message decodes into its registered type; an
/// unregistered wire name is `Error::UnknownMessage`, counted as a decode
/// error, nothing is sent and the stream stays usable. Dynamic `SendRecv`
/// maps `ErrorReply` to `Error::Remote`.
#[test]
fn dynamic_receive_decodes_registered_types_and_reports_unknown_ones() {
    use amring::MessageTypes;
    let h = amring::Server::builder()
        .shards(amring::Shards::Unpinned(1))
        .handler(|ctx: StreamContext, n: Num| async move {
            // Push three messages: two registered types, one not.
            ctx.send(&Num { n: n.n }).await.map_err(|e| e.to_string())?;
            ctx.send(&amring_tests::bpmsg::Feed { n: 1, size: 2 })
                .await
                .map_err(|e| e.to_string())?;
            ctx.send(&MessageReply {
                num: n.n as i32,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })
        .handler(|_ctx: StreamContext, _m: MessageRequest| async move { Err::<OkReply, _>("refused") })
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = h.dial_addr();
    client(move || async move {
        let conn = Client::builder().connect(&addr).await.unwrap();
        let types = MessageTypes::new()
            .with::<Num>()
            .with::<MessageReply>()
            .with::<OkReply>();
        let s = conn.new_stream().unwrap();
        s.send(&Num { n: 7 }).await.unwrap();
        let a = s.recv_dynamic(&types).await.unwrap();
        assert_eq!(a.wire(), "am.rt.Num");
        assert_eq!(a.downcast::<Num>().unwrap().n, 7);
        let e = s.recv_dynamic(&types).await.unwrap_err();
        assert!(matches!(&e, Error::UnknownMessage(w) if w == "am.bp.Feed"), "{e:?}");
        let b = s.recv_dynamic(&types).await.unwrap();
        assert!(b.is::<MessageReply>() && !b.is::<Num>());
        let b = b.downcast::<Num>().unwrap_err();
        assert_eq!(b.downcast::<MessageReply>().unwrap().num, 7);
        let ok = s.recv_dynamic(&types).await.unwrap();
        assert!(ok.is::<OkReply>());
        let d = conn.debug_state();
        let st = d.streams.iter().find(|x| x.id == s.id()).expect("stream kept");
        assert_eq!(st.counters.decode_errors, 1);
        assert_eq!(d.counters.protocol_errors, 0, "nothing sent for the unknown name");
        let e = conn
            .send_recv_dynamic(&MessageRequest::default(), &types)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Remote { code, .. } if code == "handler_error"),
            "{e:?}"
        );
    });
    stop(h);
}
