//! v3 recovery on the simulated pair: cut/resume at every byte offset,
//! exactly-once in-order delivery, ACK policy, heartbeats, replay bound,
//! protocol violations, graceful close. No sockets, no sleeps.
#![allow(missing_docs)]

#[path = "../../tests/src/pair.rs"]
#[allow(unreachable_pub, dead_code)]
mod pair;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use amring_proto::recovery::{write_close_frame, CONTROL_CLOSE};
use amring_proto::{
    ConnConfig, ConnError, Connection, Control, ControlError, Event, FrameDecoder, FrameEncoder, FrameError,
    RecoveryParams, Role, SendError, Version, CONTROL_STREAM_ID,
};
use bytes::{BufMut, BytesMut};
use pair::{frame_boundaries, v3_config, Pair};

const STREAMS: u32 = 3;
const PER_STREAM: u32 = 50;

fn params() -> RecoveryParams {
    RecoveryParams {
        ack_every: 8,
        ack_delay: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(300),
        max_replay_bytes: 1 << 20,
    }
}

fn send(conn: &mut Connection, now: std::time::Instant, stream: u32, idx: u32) -> Result<(), SendError<Infallible>> {
    conn.send(now, stream, |b| {
        b.put_u32(stream);
        b.put_u32(idx);
        b.extend_from_slice(&vec![0xab; (idx % 5) as usize]);
        Ok(())
    })
}

/// Per stream: the message indices delivered, in order.
fn by_stream(delivered: &[amring_proto::Delivered]) -> BTreeMap<u32, Vec<u32>> {
    let mut m: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for d in delivered {
        let s = u32::from_be_bytes(d.payload[0..4].try_into().unwrap());
        assert_eq!(s, d.stream_id, "payload names its stream");
        let i = u32::from_be_bytes(d.payload[4..8].try_into().unwrap());
        m.entry(d.stream_id).or_default().push(i);
    }
    m
}

fn assert_exactly_once(delivered: &[amring_proto::Delivered], ctx: &str) {
    let m = by_stream(delivered);
    assert_eq!(m.len(), STREAMS as usize, "{ctx}: streams");
    for (s, v) in m {
        assert_eq!(v, (0..PER_STREAM).collect::<Vec<_>>(), "{ctx}: stream {s}");
    }
}

/// The scripted exchange: 3 streams × 50 messages each way, driven in chunks,
/// resuming whenever the transport broke. `on_resume` may arm the next cut.
fn run_script(p: &mut Pair, on_resume: impl FnMut(&mut Pair, usize)) {
    run_script_chunked(p, 7, on_resume)
}

fn run_script_chunked(p: &mut Pair, chunk: usize, mut on_resume: impl FnMut(&mut Pair, usize)) {
    let mut n = 0;
    for i in 0..PER_STREAM {
        for s in 1..=STREAMS {
            send(&mut p.client.conn, p.now, s, i).unwrap();
            send(&mut p.server.conn, p.now, s, i).unwrap();
            n += 1;
            if n % chunk == 0 {
                p.drive();
                // Resume (and replay at once) until a transport survives.
                while p.broken {
                    p.resume();
                    on_resume(p, p.resumes);
                    p.drive();
                }
                p.advance(Duration::from_millis(3));
            }
        }
    }
    for _ in 0..1000 {
        p.drive();
        if p.broken {
            p.resume();
            on_resume(p, p.resumes);
            continue;
        }
        p.advance(Duration::from_millis(25));
        p.drive();
        if !p.broken {
            break;
        }
    }
    assert!(!p.broken);
}

fn check_done(p: &Pair, ctx: &str) {
    assert!(
        p.client.errors.iter().all(|e| !e.is_permanent()),
        "{ctx}: {:?}",
        p.client.errors
    );
    assert!(
        p.server.errors.iter().all(|e| !e.is_permanent()),
        "{ctx}: {:?}",
        p.server.errors
    );
    assert_exactly_once(&p.server.delivered, &format!("{ctx} c→s"));
    assert_exactly_once(&p.client.delivered, &format!("{ctx} s→c"));
    // After the final ACKs nothing is retained.
    for side in [&p.client, &p.server] {
        let dbg = side.conn.recovery_debug().unwrap();
        assert_eq!((dbg.replay_queued, dbg.replay_bytes), (0, 0), "{ctx}: ring drained");
        assert_eq!(dbg.last_sent_seq, u64::from(STREAMS * PER_STREAM));
    }
}

#[test]
fn clean_run_delivers_everything() {
    let mut p = Pair::v3(params());
    run_script(&mut p, |_, _| {});
    check_done(&p, "clean");
    assert_eq!(p.resumes, 0);
}

#[test]
fn cut_at_every_client_byte_offset() {
    let mut base = Pair::v3(params());
    base.c2s.capture = Some(Vec::new());
    run_script(&mut base, |_, _| {});
    let total = base.c2s.total;
    assert!(total > 4000, "script produced {total} bytes");
    let mut cuts = 0;
    for off in 0..=total {
        let mut p = Pair::v3(params());
        p.c2s.cut_after = Some(off);
        run_script(&mut p, |_, _| {});
        check_done(&p, &format!("c2s cut at {off}"));
        cuts += p.resumes;
    }
    assert!(cuts >= total, "every offset below the total cut the transport ({cuts})");
}

#[test]
fn cut_at_server_frame_boundaries_and_sampled_offsets() {
    let mut base = Pair::v3(params());
    base.s2c.capture = Some(Vec::new());
    run_script(&mut base, |_, _| {});
    let wire = base.s2c.capture.take().unwrap();
    let mut offs = frame_boundaries(Version::V3, &wire);
    assert!(offs.len() > 150, "boundaries {}", offs.len());
    offs.extend((0..wire.len()).step_by(11));
    offs.sort_unstable();
    offs.dedup();
    for off in offs {
        let mut p = Pair::v3(params());
        p.s2c.cut_after = Some(off);
        run_script(&mut p, |_, _| {});
        check_done(&p, &format!("s2c cut at {off}"));
        // A cut exactly at the end still kills the transport after the last byte.
        assert_eq!(p.resumes, 1, "s2c cut at {off}");
    }
}

#[test]
fn resume_storm_with_cuts_during_replay() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let mut p = Pair::v3(params());
    p.c2s.cut_after = Some(37);
    run_script_chunked(&mut p, 1, |p, n| {
        if n < 300 {
            // Small offsets land inside the replay that starts right after attach.
            let off = next(48);
            if n % 2 == 0 {
                p.c2s.cut_after = Some(off);
            } else {
                p.s2c.cut_after = Some(off);
            }
        }
    });
    check_done(&p, "storm");
    assert!(p.resumes >= 150, "resumes {}", p.resumes);
    let dbg = p.client.conn.recovery_debug().unwrap();
    assert_eq!(dbg.transport_attaches, 1 + p.resumes as u64);
    assert_eq!(dbg.transport_detaches, p.resumes as u64);
    assert_eq!(dbg.transport_gen, 1 + 2 * p.resumes as u64);
}

#[test]
fn resume_storm_with_a_transmit_budget_replays_everything_in_order() {
    // A budget below one frame (one replayed frame per transmit) and one of a
    // few frames: every replay drains in pieces across many transmits, and
    // cuts land inside those pieces.
    for budget in [0, 100] {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        let mut p = Pair::v3(params());
        p.tx_budget = budget;
        p.s2c.cut_after = Some(53);
        run_script_chunked(&mut p, 5, |p, n| {
            if n < 100 {
                let off = 1 + next(120);
                if n % 2 == 0 {
                    p.c2s.cut_after = Some(off);
                } else {
                    p.s2c.cut_after = Some(off);
                }
            }
        });
        check_done(&p, &format!("budget {budget}"));
        assert!(p.resumes >= 50, "budget {budget}: resumes {}", p.resumes);
        // Replays went out in pieces: more replaying transmits than resumes.
        assert!(
            p.replay_transmits > 2 * p.resumes,
            "budget {budget}: {}",
            p.replay_transmits
        );
    }
}

#[test]
fn sends_while_detached_go_out_after_resume_and_close_refuses() {
    let mut p = Pair::v3(params());
    send(&mut p.client.conn, p.now, 1, 0).unwrap();
    p.drive();
    p.client.conn.detach(p.now);
    p.server.conn.detach(p.now);
    assert!(!p.client.conn.is_attached());
    for i in 1..10 {
        send(&mut p.client.conn, p.now, 1, i).unwrap();
    }
    assert!(!p.client.conn.has_transmit(), "nothing to write while detached");
    assert_eq!(p.client.conn.poll_timeout(), None);
    let s = p.server.conn.last_recv_seq();
    assert_eq!(s, 1);
    p.server.conn.attach(p.now, p.client.conn.last_recv_seq()).unwrap();
    p.client.conn.attach(p.now, s).unwrap();
    assert_eq!(p.client.conn.recovery_debug().unwrap().resume_queue_depth, 9);
    p.drive();
    let got = by_stream(&p.server.delivered);
    assert_eq!(got[&1], (0..10).collect::<Vec<_>>());
    p.client.conn.close();
    assert!(matches!(send(&mut p.client.conn, p.now, 1, 11), Err(SendError::Closed)));
    assert_eq!(p.client.conn.attach(p.now, 0), Err(ConnError::Closed));
}

#[test]
fn replay_goes_before_new_data_and_after_a_due_ack() {
    // §9 note 30: ACK due + new data queued right after a resume.
    let mut p = Pair::v3(RecoveryParams {
        ack_every: 1,
        ..params()
    });
    p.s2c.stalled = true; // the server's ACKs never reach the client
    for i in 0..3 {
        send(&mut p.client.conn, p.now, 1, i).unwrap();
    }
    p.drive();
    assert_eq!(p.server.delivered.len(), 3);
    send(&mut p.server.conn, p.now, 2, 0).unwrap();
    p.drive();
    p.s2c.stalled = false;
    // Lose everything from the server; pretend the client had seen nothing.
    p.client.conn.detach(p.now);
    p.server.conn.detach(p.now);
    p.s2c.held.clear();
    p.server.conn.attach(p.now, p.client.conn.last_recv_seq()).unwrap();
    p.client.conn.attach(p.now, 0).unwrap();
    send(&mut p.server.conn, p.now, 2, 1).unwrap();
    let mut out = BytesMut::new();
    p.server.conn.poll_transmit(p.now, &mut out);
    let mut dec = FrameDecoder::new(Version::V3, u32::MAX);
    let seqs: Vec<_> = std::iter::from_fn(|| dec.decode(&mut out).unwrap())
        .map(|f| (f.header.stream_id, f.header.seq))
        .collect();
    assert_eq!(seqs, vec![(2, 1), (2, 2)], "replayed seq 1 first, then new seq 2");
}

#[test]
fn ack_coalescing_every_64_and_delay_deadline() {
    let prm = RecoveryParams {
        ack_every: 64,
        ..params()
    };
    let mut p = Pair::v3(prm);
    for round in 1..=10u64 {
        for i in 0..63 {
            send(&mut p.client.conn, p.now, 1, i).unwrap();
        }
        p.drive();
        assert_eq!(
            p.server.conn.stats().control_frames_written,
            round - 1,
            "63 frames: no ACK yet"
        );
        send(&mut p.client.conn, p.now, 1, 63).unwrap();
        p.drive();
        assert_eq!(
            p.server.conn.stats().control_frames_written,
            round,
            "one ACK per 64 frames"
        );
        assert_eq!(p.client.conn.recovery_debug().unwrap().last_acked_seq, 64 * round);
    }
    assert_eq!(p.server.delivered.len(), 640);
    assert_eq!(p.client.conn.recovery_debug().unwrap().replay_queued, 0);
    // Below the count: due ack_delay after the *first* unacked frame, not extended.
    let t0 = p.now;
    send(&mut p.client.conn, p.now, 1, 0).unwrap();
    p.drive();
    assert_eq!(p.server.conn.poll_timeout(), Some(t0 + prm.ack_delay));
    p.advance(Duration::from_millis(10));
    send(&mut p.client.conn, p.now, 1, 1).unwrap();
    p.drive();
    let dbg = p.server.conn.recovery_debug().unwrap();
    assert_eq!(
        (dbg.ack_pending, dbg.ack_due, dbg.ack_deadline),
        (2, false, Some(t0 + prm.ack_delay))
    );
    p.advance(Duration::from_millis(9));
    p.drive();
    assert_eq!(p.server.conn.stats().control_frames_written, 10);
    p.advance(Duration::from_millis(1));
    p.drive();
    assert_eq!(p.server.conn.stats().control_frames_written, 11);
    let dbg = p.client.conn.recovery_debug().unwrap();
    assert_eq!((dbg.last_acked_seq, dbg.replay_queued), (642, 0));
}

#[test]
fn owed_ack_rides_with_outgoing_data() {
    // A request below ack_every: the ACK is owed, due ack_delay later...
    let prm = params();
    let mut p = Pair::v3(prm);
    let t0 = p.now;
    send(&mut p.client.conn, p.now, 1, 0).unwrap();
    p.drive();
    assert_eq!(p.server.conn.poll_timeout(), Some(t0 + prm.ack_delay));
    assert_eq!(p.server.conn.stats().control_frames_written, 0);
    // ...but the reply goes out now, and the ACK rides in the same write:
    // one more control frame, no ACK owed, the client's ring already empty.
    p.advance(Duration::from_millis(1));
    send(&mut p.server.conn, p.now, 1, 0).unwrap();
    let mut out = BytesMut::new();
    let n = p.server.conn.poll_transmit(p.now, &mut out);
    assert!(n > 0);
    assert_eq!(p.server.conn.stats().control_frames_written, 1);
    let dbg = p.server.conn.recovery_debug().unwrap();
    assert_eq!((dbg.ack_pending, dbg.ack_deadline), (0, None));
    assert_eq!(p.server.conn.poll_timeout(), Some(p.now + prm.heartbeat_interval));
    let mut delivered = 0;
    while p.client.conn.handle_input(p.now, &mut out).unwrap().is_some() {
        delivered += 1;
    }
    assert!(out.is_empty());
    let dbg = p.client.conn.recovery_debug().unwrap();
    assert_eq!((dbg.last_acked_seq, dbg.replay_queued), (1, 0));
    assert_eq!(delivered, 1, "the reply itself");
    // Nothing owed, nothing sent: a transmit without data carries no ACK.
    let mut more = BytesMut::new();
    assert_eq!(p.server.conn.poll_transmit(p.now, &mut more), 0);
}

#[test]
fn ack_every_one_acks_before_the_reply() {
    let prm = RecoveryParams {
        ack_every: 1,
        ..params()
    };
    let now = std::time::Instant::now();
    let mut client = Connection::new(v3_config(Role::Client, prm), now);
    let mut server = Connection::new(v3_config(Role::Server, prm), now);
    send(&mut client, now, 0, 7).unwrap();
    let mut wire = BytesMut::new();
    client.poll_transmit(now, &mut wire);
    assert!(server.handle_input(now, &mut wire).unwrap().is_some());
    assert!(server.has_transmit(), "ack_every=1: ACK due at once");
    send(&mut server, now, 0, 8).unwrap();
    let mut out = BytesMut::new();
    server.poll_transmit(now, &mut out);
    let mut dec = FrameDecoder::new(Version::V3, u32::MAX);
    let first = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(first.header.stream_id, CONTROL_STREAM_ID);
    assert_eq!(Control::parse(&first.payload), Ok(Control::Ack(1)));
    assert_eq!(dec.decode(&mut out).unwrap().unwrap().header.seq, 1);
    assert!(out.is_empty());
}

/// Raw v3 frames for a single server connection.
fn raw(stream: u32, seq: u64, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    FrameEncoder::new(Version::V3, u32::MAX)
        .encode(&mut b, stream, seq, payload)
        .unwrap();
    b
}

fn server(prm: RecoveryParams) -> (Connection, std::time::Instant) {
    let now = std::time::Instant::now();
    (Connection::new(v3_config(Role::Server, prm), now), now)
}

#[test]
fn duplicates_dropped_and_ack_owed_once() {
    let (mut c, now) = server(RecoveryParams {
        ack_every: 64,
        ..params()
    });
    let mut buf = raw(1, 1, b"a");
    assert_eq!(c.handle_input(now, &mut buf).unwrap().unwrap().payload, &b"a"[..]);
    assert!(!c.has_transmit(), "ACK waits for the delay");
    buf = raw(1, 1, b"a");
    assert_eq!(c.handle_input(now, &mut buf).unwrap(), None);
    assert!(c.has_transmit(), "a duplicate makes the owed ACK due now");
    let mut out = BytesMut::new();
    c.poll_transmit(now, &mut out);
    let mut ack = BytesMut::new();
    Control::Ack(1).write_frame(&mut ack);
    assert_eq!(out, ack);
    buf = raw(1, 1, b"a");
    assert_eq!(c.handle_input(now, &mut buf).unwrap(), None);
    assert!(!c.has_transmit(), "nothing owed: no ACK");
    assert_eq!(c.stats().frames_read, 3);
}

#[test]
fn whole_stream_fed_twice_runs_each_handler_once() {
    let mut p = Pair::v3(params());
    p.c2s.capture = Some(Vec::new());
    for i in 0..PER_STREAM {
        for s in 1..=STREAMS {
            send(&mut p.client.conn, p.now, s, i).unwrap();
        }
    }
    p.drive();
    let wire = p.c2s.capture.take().unwrap();
    let mut handler_calls = 0;
    let mut again = BytesMut::from(&wire[..]);
    while let Some(d) = p.server.conn.handle_input(p.now, &mut again).unwrap() {
        p.server.delivered.push(d);
        handler_calls += 1;
    }
    assert_eq!(handler_calls, 0, "every replayed frame is a duplicate");
    assert!(again.is_empty());
    assert_exactly_once(&p.server.delivered, "dup feed");
}

#[test]
fn seq_zero_and_gap_close_permanently() {
    let (mut c, now) = server(params());
    let mut buf = raw(1, 0, b"x");
    assert_eq!(c.handle_input(now, &mut buf), Err(ConnError::SeqZero));
    assert!(c.is_closed() && ConnError::SeqZero.is_permanent());
    assert!(matches!(
        c.send(now, 1, |_| Ok::<_, Infallible>(())),
        Err(SendError::Closed)
    ));
    let (mut c, now) = server(params());
    let mut buf = raw(1, 1, b"x");
    buf.extend_from_slice(&raw(1, 3, b"y"));
    assert!(c.handle_input(now, &mut buf).unwrap().is_some());
    let e = c.handle_input(now, &mut buf).unwrap_err();
    assert_eq!(e, ConnError::SeqGap { expected: 2, got: 3 });
    assert_eq!(e.to_string(), "recovery frame sequence gap: expected 2, got 3");
    assert!(c.is_closed() && e.is_permanent());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn malformed_control_closes_permanently() {
    let cases: [(&[u8], ControlError); 4] = [
        (&[], ControlError::Empty),
        (&[1, 0, 0, 0, 0, 0, 0, 0], ControlError::AckLength(8)),
        (&[9], ControlError::UnknownType(9)),
        (&[CONTROL_CLOSE], ControlError::UnknownType(CONTROL_CLOSE)),
    ];
    for (payload, want) in cases {
        let (mut c, now) = server(params());
        let mut buf = raw(CONTROL_STREAM_ID, 0, payload);
        let e = c.handle_input(now, &mut buf).unwrap_err();
        assert_eq!(e, ConnError::Control(want));
        assert!(e.is_permanent() && c.is_closed());
    }
}

#[test]
fn transport_errors_detach_not_close() {
    let (mut c, now) = server(params());
    let mut buf = BytesMut::from(&[2u8; 18][..]);
    assert_eq!(
        c.handle_input(now, &mut buf),
        Err(ConnError::Frame(FrameError::BadVersion { got: 2 }))
    );
    assert!(!c.is_closed() && !c.is_attached());
    c.attach(now, 0).unwrap();
    let mut buf = raw(1, 1, b"ok");
    assert!(c.handle_input(now, &mut buf).unwrap().is_some());
}

#[test]
fn replay_full_does_not_burn_a_seq() {
    // 82-byte payloads: 100 accounted bytes each; the bound holds two.
    let prm = RecoveryParams {
        ack_every: 64,
        max_replay_bytes: 200,
        ..params()
    };
    let mut p = Pair::v3(prm);
    let body = |b: &mut BytesMut| {
        b.extend_from_slice(&[1u8; 82]);
        Ok::<_, Infallible>(())
    };
    p.client.conn.send(p.now, 1, body).unwrap();
    p.client.conn.send(p.now, 1, body).unwrap();
    assert!(!p.client.conn.can_send(82));
    let e = p.client.conn.send(p.now, 1, body).unwrap_err();
    assert!(matches!(e, SendError::ReplayFull { size: 300, limit: 200 }));
    assert_eq!(e.to_string(), "replay buffer full: size=300 limit=200");
    assert_eq!(p.client.conn.last_sent_seq(), 2, "no seq consumed");
    assert_eq!(p.client.conn.poll_event(), None);
    p.drive();
    assert_eq!(p.client.conn.poll_event(), None, "no ACK yet");
    p.advance(prm.ack_delay);
    p.drive();
    assert_eq!(p.client.conn.poll_event(), Some(Event::ReplayRoom));
    assert_eq!(p.client.conn.poll_event(), None);
    assert_eq!(p.client.conn.replay_room(), 200);
    p.client.conn.send(p.now, 1, body).unwrap();
    assert_eq!(p.client.conn.last_sent_seq(), 3);
    p.drive();
    assert_eq!(p.server.delivered.len(), 3);
    assert!(p.server.errors.is_empty(), "{:?}", p.server.errors);
}

#[test]
fn heartbeat_ping_cadence_and_timeout() {
    let prm = params();
    let mut p = Pair::v3(prm);
    let t0 = p.now;
    assert_eq!(p.client.conn.poll_timeout(), Some(t0 + prm.heartbeat_interval));
    for _ in 0..10 {
        p.advance(Duration::from_millis(50));
        p.drive();
    }
    // 500 ms idle with a 100 ms interval: one PING per 100 ms from each side.
    assert_eq!(p.client.conn.stats().control_frames_written, 5);
    assert_eq!(p.server.conn.stats().control_frames_read, 5);
    assert!(p.client.errors.is_empty() && p.server.errors.is_empty());
    // The server's PINGs stop reaching the client: it detaches 300 ms after the last frame read.
    p.s2c.stalled = true;
    let last_read = p.now;
    for _ in 0..5 {
        p.advance(Duration::from_millis(50));
        p.drive();
    }
    assert!(p.client.errors.is_empty());
    assert_eq!(p.client.conn.poll_timeout(), Some(last_read + prm.heartbeat_timeout));
    p.advance(Duration::from_millis(50));
    assert_eq!(p.client.errors, vec![ConnError::HeartbeatTimeout]);
    assert!(!p.client.conn.is_attached() && !p.client.conn.is_closed());
    assert!(p.server.errors.is_empty(), "the server still hears the client's PINGs");
}

fn negotiated_pair(client: bool, server: bool) -> Pair {
    let mut p = Pair::v3(params());
    // Both bits set in the attach exchange ⇒ negotiated on both sides.
    p.client.conn.set_graceful_close(client && server);
    p.server.conn.set_graceful_close(client && server);
    p
}

#[test]
fn graceful_close_negotiated_drops_the_session_after_the_data() {
    let mut p = negotiated_pair(true, true);
    for i in 0..5 {
        send(&mut p.client.conn, p.now, 1, i).unwrap();
    }
    assert!(p.client.conn.close_gracefully(p.now));
    assert!(p.client.conn.is_closed());
    p.drive();
    assert_eq!(p.server.delivered.len(), 5, "data before CLOSE is delivered");
    assert_eq!(p.server.errors, vec![ConnError::PeerClosed]);
    assert!(p.server.conn.is_closed());
}

#[test]
fn graceful_close_not_negotiated_sends_nothing_and_close_is_a_violation() {
    let mut p = negotiated_pair(true, false);
    assert!(!p.client.conn.close_gracefully(p.now));
    let mut out = BytesMut::new();
    assert_eq!(p.client.conn.poll_transmit(p.now, &mut out), 0);
    let (mut c, now) = server(params());
    let mut buf = BytesMut::new();
    write_close_frame(&mut buf);
    assert_eq!(
        c.handle_input(now, &mut buf),
        Err(ConnError::Control(ControlError::UnknownType(CONTROL_CLOSE)))
    );
}

fn v2(max_frame: u32) -> (Connection, std::time::Instant) {
    let now = std::time::Instant::now();
    let cfg = ConnConfig {
        role: Role::Client,
        version: Version::V2,
        max_frame,
        recovery: None,
    };
    (Connection::new(cfg, now), now)
}

#[test]
fn v2_send_transmit_and_control_id_is_ordinary() {
    let (mut a, now) = v2(16);
    let (mut b, _) = v2(16);
    a.send(now, CONTROL_STREAM_ID, |buf| {
        buf.extend_from_slice(b"ping");
        Ok::<_, Infallible>(())
    })
    .unwrap();
    let e = a.send(now, 1, |buf| {
        buf.extend_from_slice(&[0; 17]);
        Ok::<_, Infallible>(())
    });
    assert!(matches!(
        e,
        Err(SendError::Frame(FrameError::TooLarge { len: 17, max: 16 }))
    ));
    let mut out = BytesMut::new();
    assert_eq!(a.poll_transmit(now, &mut out), 14, "only the valid frame was queued");
    assert_eq!(&out[..], &raw_v2(CONTROL_STREAM_ID, b"ping")[..]);
    let d = b.handle_input(now, &mut out).unwrap().unwrap();
    assert_eq!((d.stream_id, &d.payload[..]), (CONTROL_STREAM_ID, &b"ping"[..]));
    assert_eq!(b.stats().control_frames_read, 1);
    assert_eq!(a.stats().control_frames_written, 1);
    assert_eq!((a.poll_timeout(), a.recovery_debug()), (None, None));
    let mut bad = BytesMut::from(&[3u8; 10][..]);
    assert!(b.handle_input(now, &mut bad).is_err());
    assert!(b.is_closed());
}

fn raw_v2(stream: u32, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    FrameEncoder::new(Version::V2, u32::MAX)
        .encode(&mut b, stream, 0, payload)
        .unwrap();
    b
}

mod sessions {
    use std::time::{Duration, Instant};

    use amring_proto::{ResumeReject, SessionTable};

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn resume_rejections_and_ttl() {
        let t0 = Instant::now();
        let mut t: SessionTable<&str> = SessionTable::new(3, TTL);
        let (id, secret) = t.create(1, "conn-a").unwrap();
        assert_eq!(SessionTable::<&str>::owner_shard(&id), 3, "id[0] names the shard");
        assert_ne!(secret, [0; 16]);
        let mut bad = secret;
        bad[15] ^= 1;
        assert_eq!(
            t.lookup_resume(&id, &bad, 1, t0).unwrap_err(),
            ResumeReject::SecretMismatch
        );
        assert_eq!(
            t.lookup_resume(&id, &secret, 2, t0).unwrap_err(),
            ResumeReject::CodecMismatch
        );
        assert_eq!(
            t.lookup_resume(&[3; 16], &secret, 1, t0).unwrap_err(),
            ResumeReject::NotFound
        );
        assert_eq!(ResumeReject::NotFound.to_string(), "connection not found");
        // A rejected resume does not affect the session.
        assert_eq!(t.lookup_resume(&id, &secret, 1, t0).unwrap().value, "conn-a");
        assert!(t.detach(&id, t0));
        assert!(t.get(&id).unwrap().is_detached());
        assert_eq!(t.poll_timeout(), Some(t0 + TTL));
        // Resume within the TTL disarms it.
        assert!(t.lookup_resume(&id, &secret, 1, t0 + TTL / 2).is_ok());
        assert_eq!(t.poll_timeout(), None);
        assert!(t.detach(&id, t0 + TTL));
        assert!(t.expire(t0 + TTL * 2 - Duration::from_millis(1)).is_empty());
        assert_eq!(
            t.lookup_resume(&id, &secret, 1, t0 + TTL * 2).unwrap_err(),
            ResumeReject::Expired
        );
        let gone = t.expire(t0 + TTL * 2);
        assert_eq!(gone, vec![(id, "conn-a")]);
        assert_eq!(
            t.lookup_resume(&id, &secret, 1, t0 + TTL * 2).unwrap_err(),
            ResumeReject::NotFound
        );
        assert!(t.is_empty());
    }

    #[test]
    fn closed_sessions_are_refused_then_collected() {
        let t0 = Instant::now();
        let mut t = SessionTable::new(0, TTL);
        let (id, secret) = t.create(1, 7u32).unwrap();
        assert!(t.mark_closed(&id, t0));
        assert_eq!(t.lookup_resume(&id, &secret, 1, t0).unwrap_err(), ResumeReject::Closed);
        assert!(!t.detach(&id, t0), "a closed session is not detached again");
        assert_eq!(t.expire(t0), vec![(id, 7)]);
        let (id2, _) = t.create(1, 8).unwrap();
        assert!(t.detach(&id2, t0));
        assert_eq!(t.remove(&id2), Some(8), "graceful CLOSE removes at once");
        assert_eq!(t.poll_timeout(), None);
    }

    /// Backs the fixed-overhead figure in the `session` module docs.
    #[test]
    fn session_sizes() {
        let n = std::mem::size_of::<amring_proto::Connection>();
        println!("size_of::<Connection>() = {n}");
        assert!(n <= 512, "Connection is {n} bytes; update the session memory docs");
    }

    #[test]
    fn many_sessions() {
        let t0 = Instant::now();
        let mut t = SessionTable::new(9, TTL);
        let ids: Vec<_> = (0..10_000u32).map(|i| t.create(1, i).unwrap()).collect();
        assert_eq!(t.len(), 10_000);
        for (k, (id, _)) in ids.iter().enumerate() {
            assert_eq!(id[0], 9);
            if k % 2 == 0 {
                assert!(t.detach(id, t0 + Duration::from_millis(k as u64)));
            }
        }
        assert_eq!(t.poll_timeout(), Some(t0 + TTL));
        let gone = t.expire(t0 + TTL + Duration::from_millis(4_999));
        assert_eq!(gone.len(), 2_500);
        assert!(gone.iter().all(|(_, v)| v % 2 == 0 && *v < 5_000));
        assert_eq!(t.len(), 7_500);
        for (k, (id, secret)) in ids.iter().enumerate().skip(5_000) {
            let r = t.lookup_resume(id, secret, 1, t0 + TTL * 3);
            if k % 2 == 0 {
                assert_eq!(r.unwrap_err(), ResumeReject::Expired);
            } else {
                assert_eq!(r.unwrap().value, k as u32);
            }
        }
    }
}
