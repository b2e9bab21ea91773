//! The connection task of v3 (`--recovery`): one glommio task per
//! connection, going through amring's sans-IO `proto::Connection` (sequence
//! numbers, replay ring, ACKs, heartbeats), closed or open loop.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future;
use glommio::timer::sleep;

use amring_proto::{ConnError, Connection};

use crate::conn_state::{
    any_in_flight, count_error, drain_limit, ConnCtx, InFlight, Phase, ReplyOutcome, Schedule, StreamState,
};
use crate::connect::Ready;
use crate::stats::ErrorKind;

/// Largest single read of a connection (smaller with small pipelines).
const READ_CHUNK: usize = 32 << 10;

/// Maps a connection error to the kind reported.
fn conn_error_kind(e: &ConnError) -> ErrorKind {
    match e {
        ConnError::HeartbeatTimeout => ErrorKind::Timeout,
        ConnError::PeerClosed => ErrorKind::Closed,
        _ => ErrorKind::Protocol,
    }
}

/// The task of one connection that is not v2: requests and replies go
/// through its sans-IO [`Connection`], which also owes the v3 ACKs and PINGs.
pub(crate) async fn drive(ctx: Rc<ConnCtx>, ready: Ready, t0: Instant, warm_end: Instant, end: Instant) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let Ready {
        gidx,
        transport: mut t,
        mut conn,
        codec,
        rest,
        ..
    } = ready;
    let nstreams = opts.streams;
    let mut streams: Vec<StreamState> = (0..nstreams).map(|_| StreamState::default()).collect();
    let mut next_id: u64 = (gidx as u64) << 32;
    let req_len = ctx.workload.request_len() + 18;
    let mut wbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).min(1 << 20));
    let mut rbuf = BytesMut::with_capacity((req_len * nstreams * opts.pipeline).clamp(4096, 256 << 10));
    rbuf.extend_from_slice(&rest);
    // Each read offers (and zero-fills) room for about two full pipelines of
    // replies, not a fixed 32 KiB: the memset is paid on every read.
    let read_chunk = (2 * req_len * nstreams * opts.pipeline).clamp(2048, READ_CHUNK);
    let mut sched = opts.rate.map(|rate| Schedule::for_conn(rate, opts.conns, gidx, t0));

    // Queues one request through the sans-IO connection (v3: seq + replay ring).
    let send = |conn: &mut Connection, now: Instant, s: usize, id: u64| -> Result<(), ErrorKind> {
        conn.send(now, s as u32, |b| {
            ctx.workload.write_request(id, b);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|_| ErrorKind::Protocol)
    };

    // After `end`: no new requests; the replies in flight are awaited until `drain_end`.
    let drain_end = end + drain_limit(opts);
    let outcome: Result<(), ErrorKind> = 'conn: {
        // Closed loop: fill every stream's pipeline at once.
        if sched.is_none() {
            let now = Instant::now();
            for (s, st) in streams.iter_mut().enumerate() {
                for _ in 0..opts.pipeline {
                    if let Err(k) = send(&mut conn, now, s, next_id) {
                        break 'conn Err(k);
                    }
                    st.inflight.push_back(InFlight { id: next_id, t: now });
                    next_id += 1;
                }
            }
        }
        loop {
            let now = Instant::now();
            if now >= end && (now >= drain_end || !any_in_flight(&streams)) {
                break Ok(());
            }
            if let Some(sc) = sched.as_mut().filter(|_| now < end) {
                // Due requests join their stream's backlog, then go out as the pipeline allows.
                sc.pump(now, warm_end, &mut streams, &ctx);
                for (s, st) in streams.iter_mut().enumerate() {
                    while st.inflight.len() < opts.pipeline {
                        let Some(intended) = st.backlog.pop_front() else { break };
                        if let Err(k) = send(&mut conn, now, s, next_id) {
                            break 'conn Err(k);
                        }
                        st.inflight.push_back(InFlight {
                            id: next_id,
                            t: intended,
                        });
                        next_id += 1;
                    }
                }
            }
            // Requests, and in v3 due ACKs/PINGs.
            conn.poll_transmit(now, &mut wbuf);
            if !wbuf.is_empty() {
                if t.write_all(&wbuf).await.is_err() {
                    break Err(ErrorKind::Io);
                }
                wbuf.clear();
            }

            // Wait for bytes, the next intended send, the oldest timeout, a
            // protocol timer (v3 ACK delay, heartbeat) or the end.
            let mut deadline = if now < end { end } else { drain_end };
            if let Some(sc) = sched.as_ref().filter(|_| now < end) {
                deadline = deadline.min(sc.next);
            }
            if let Some(pt) = conn.poll_timeout() {
                deadline = deadline.min(pt);
            }
            for st in &streams {
                if let Some(f) = st.inflight.front() {
                    deadline = deadline.min(f.t.max(now) + opts.timeout);
                }
            }
            if rbuf.capacity() - rbuf.len() < 1024 {
                rbuf.reserve(rbuf.capacity().max(4096));
            }
            let start = rbuf.len();
            // Zero-fill at most one read chunk of the spare capacity.
            rbuf.resize(rbuf.capacity().min(start + read_chunk), 0);
            let wait = deadline.saturating_duration_since(Instant::now());
            let got = future::or(async { Some(t.read(&mut rbuf[start..]).await) }, async {
                sleep(wait).await;
                None
            })
            .await;
            match got {
                None => {
                    rbuf.truncate(start);
                    let now = Instant::now();
                    if let Err(e) = conn.handle_timeout(now) {
                        break Err(conn_error_kind(&e));
                    }
                    if ctx.expired(&streams, now) {
                        break Err(ErrorKind::Timeout);
                    }
                }
                Some(Err(_)) => break Err(ErrorKind::Io),
                Some(Ok(0)) => break Err(ErrorKind::Closed),
                Some(Ok(n)) => {
                    rbuf.truncate(start + n);
                    let now = Instant::now();
                    let phase = Phase::at(now, warm_end, end);
                    let mut done = 0u64;
                    let mut stats = ctx.stats.borrow_mut();
                    loop {
                        let frame = match conn.handle_input(now, &mut rbuf) {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) => {
                                drop(stats);
                                break 'conn Err(conn_error_kind(&e));
                            }
                        };
                        let s = frame.stream_id as usize;
                        let outcome = ctx.complete_reply(
                            &mut streams,
                            frame.stream_id,
                            &frame.payload,
                            codec,
                            now,
                            phase,
                            &mut stats,
                        );
                        match outcome {
                            ReplyOutcome::Unmatched => continue,
                            ReplyOutcome::Good => done += 1,
                            ReplyOutcome::Bad => {}
                        }
                        if sched.is_none() && phase != Phase::Drain {
                            if let Err(k) = send(&mut conn, now, s, next_id) {
                                drop(stats);
                                break 'conn Err(k);
                            }
                            streams[s].inflight.push_back(InFlight { id: next_id, t: now });
                            next_id += 1;
                        }
                    }
                    drop(stats);
                    if done > 0 {
                        live.done.fetch_add(done, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    live.conns_up.fetch_sub(1, Ordering::Relaxed);
    if let Err(kind) = outcome {
        count_error(&ctx, kind);
    }
}
