//! The connection driver: one local task per connection that moves bytes
//! between the [`Transport`] and the sans-IO [`proto::Connection`] held in the
//! logical [`ConnState`], and the per-stream handler workers.
//!
//! Per wake: read everything available → `handle_input` → route each frame;
//! run due timers; then drain `poll_transmit` into one buffer and write it
//! with as few writes as the socket allows (all streams coalesced). The
//! transport is a separate value from the logical state so that a v3 resume
//! can swap it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{future, FutureExt};
use glommio::timer::Timer;

use super::io::Transport;
use crate::codec::ErrorReply;
use crate::debug::FailureCode;
use crate::dispatch::{ConnRef, Routed};
use crate::server::{HandlerOutcome, HandlerTable, Hooks};
use crate::stream::{ConnInfo, StreamContext};

/// Lifecycle callbacks of a server connection.
#[derive(Clone)]
pub(crate) struct ConnHooks {
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) info: Rc<ConnInfo>,
}

impl ConnHooks {
    fn fire(&self, conn: &ConnRef) {
        let events = std::mem::take(&mut conn.borrow_mut().events);
        for (open, id) in events {
            let ctx = StreamContext {
                conn: conn.clone(),
                id,
                info: self.info.clone(),
            };
            let f = if open {
                &self.hooks.on_new_stream
            } else {
                &self.hooks.on_close_stream
            };
            if let Some(f) = f {
                f(&ctx);
            }
        }
    }
}

/// How one transport's run ended.
#[derive(Debug)]
pub(crate) enum TransportEnd {
    /// The logical connection is over (v2 always; v3 permanent close or local close).
    Closed(DriverEnd),
    /// v3: the transport was lost; the logical connection survives (already detached).
    Detached,
    /// v3: a resume attached a newer transport; this one just goes away.
    Replaced,
}

/// Why the driver stopped.
#[derive(Debug)]
pub(crate) enum DriverEnd {
    /// Local close (graceful or forced).
    Local,
    /// The peer closed the connection.
    Eof,
    /// A protocol or I/O failure.
    Failed,
}

struct Driver<'a> {
    conn: &'a ConnRef,
    io: &'a mut Transport,
    rbuf: BytesMut,
    wbuf: BytesMut,
    wpos: usize,
    timer: Option<(Instant, Timer)>,
    sweep: Option<Timer>,
    hooks: Option<&'a ConnHooks>,
    /// v3 transport epoch: `(current, mine)`; a mismatch means a resume replaced us.
    epoch: Option<(&'a std::cell::Cell<u64>, u64)>,
}

impl Driver<'_> {
    /// Feeds buffered bytes to the protocol and routes every delivered frame.
    fn process_input(&mut self) -> Result<(), crate::proto::ConnError> {
        let now = Instant::now();
        loop {
            let r = self.conn.borrow_mut().proto.handle_input(now, &mut self.rbuf);
            let d = match r {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            };
            let (routed, _) = self.conn.borrow_mut().route(d.stream_id, d.payload, now);
            if let Routed::Handler { spawn: true } = routed {
                self.spawn_worker(d.stream_id);
            }
            if let Some(h) = self.hooks {
                h.fire(self.conn);
            }
        }
    }

    fn spawn_worker(&self, id: u32) {
        let Some(h) = self.hooks else { return };
        let gen = match self.conn.borrow().streams.get(&id) {
            Some(s) => s.gen,
            None => return,
        };
        super::spawn(stream_worker(self.conn.clone(), id, gen, h.clone()));
    }

    fn is_v3(&self) -> bool {
        self.epoch.is_some()
    }

    /// The transport failed (read/write error, EOF, bad frame, heartbeat):
    /// v3 detaches (the logical connection survives), v2 closes.
    fn lost(&mut self, v2_code: FailureCode, v3_code: FailureCode, text: String, end: DriverEnd) -> TransportEnd {
        let mut st = self.conn.borrow_mut();
        if self.is_v3() && !st.proto.is_closed() {
            st.proto.detach(Instant::now());
            st.transport_stats = *st.proto.stats();
            st.fail(None, v3_code, text);
            return TransportEnd::Detached;
        }
        st.fail(None, v2_code, text);
        TransportEnd::Closed(end)
    }

    /// An error from `handle_input`/`handle_timeout`.
    fn proto_error(&mut self, e: crate::proto::ConnError) -> TransportEnd {
        use crate::proto::ConnError;
        if !self.is_v3() {
            let text = format!("reader loop failed: {e}");
            self.conn.borrow_mut().fail(None, FailureCode::ConnectionReader, text);
            return TransportEnd::Closed(DriverEnd::Failed);
        }
        if !e.is_permanent() {
            return self.lost(
                FailureCode::ConnectionReader,
                FailureCode::RecoveryRead,
                format!("recovery read failed: {e}"),
                DriverEnd::Failed,
            );
        }
        let mut st = self.conn.borrow_mut();
        st.proto.close();
        let (code, end) = match e {
            ConnError::Control(_) => (FailureCode::RecoveryControl, DriverEnd::Failed),
            ConnError::PeerClosed => (FailureCode::RecoveryRead, DriverEnd::Eof),
            ConnError::ResumeBehind { .. } => (FailureCode::RecoveryResume, DriverEnd::Failed),
            _ => (FailureCode::RecoveryData, DriverEnd::Failed),
        };
        st.fail(None, code, e.to_string());
        TransportEnd::Closed(end)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<TransportEnd> {
        loop {
            let mut progress = false;
            if let Some((cur, mine)) = self.epoch {
                if cur.get() != mine {
                    return Poll::Ready(TransportEnd::Replaced);
                }
            }
            let (closed, closing, paused) = {
                let mut st = self.conn.borrow_mut();
                st.driver_waker = Some(cx.waker().clone());
                let paused = st.pending_requests >= st.limits.max_pending_requests;
                (st.closed || (st.proto.is_closed() && !st.closing), st.closing, paused)
            };
            if closed {
                return Poll::Ready(TransportEnd::Closed(DriverEnd::Local));
            }
            // Read.
            if !closing && !paused {
                match self.io.poll_read_buf(cx, &mut self.rbuf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionReader,
                            FailureCode::RecoveryRead,
                            "reader loop failed: EOF".into(),
                            DriverEnd::Eof,
                        ));
                    }
                    Poll::Ready(Ok(_)) => {
                        if let Err(e) = self.process_input() {
                            return Poll::Ready(self.proto_error(e));
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionReader,
                            FailureCode::RecoveryRead,
                            format!("reader loop failed: {e}"),
                            DriverEnd::Failed,
                        ));
                    }
                    Poll::Pending => {}
                }
            }
            // Protocol timer (v3 ACK / PING / heartbeat).
            let deadline = self.conn.borrow().proto.poll_timeout();
            if let Some(at) = deadline {
                let now = Instant::now();
                if at <= now {
                    let r = self.conn.borrow_mut().proto.handle_timeout(now);
                    if let Err(e) = r {
                        return Poll::Ready(self.proto_error(e));
                    }
                    progress = true;
                } else {
                    match &mut self.timer {
                        Some((when, t)) if *when == at => {
                            if Pin::new(t).poll(cx).is_ready() {
                                progress = true;
                            }
                        }
                        _ => {
                            let mut t = Timer::new(at - now);
                            let _ = Pin::new(&mut t).poll(cx);
                            self.timer = Some((at, t));
                        }
                    }
                }
            }
            // Replay room freed: wake senders waiting for it.
            {
                let mut st = self.conn.borrow_mut();
                let mut room = false;
                while let Some(crate::proto::Event::ReplayRoom) = st.proto.poll_event() {
                    room = true;
                }
                if room {
                    for w in st.room_wakers.drain(..) {
                        w.wake();
                    }
                }
            }
            // Idle stream eviction sweep.
            if let Some(t) = &mut self.sweep {
                if Pin::new(&mut *t).poll(cx).is_ready() {
                    let ids = self.conn.borrow().idle_streams(Instant::now());
                    for id in ids {
                        self.conn.borrow_mut().evict(id);
                    }
                    if let Some(h) = self.hooks {
                        h.fire(self.conn);
                    }
                    let every = self
                        .conn
                        .borrow()
                        .limits
                        .idle_stream_timeout
                        .unwrap_or(Duration::from_secs(1));
                    t.reset(every / 2);
                    let _ = Pin::new(&mut *t).poll(cx);
                }
            }
            // Write: everything of every stream, coalesced.
            loop {
                if self.wpos == self.wbuf.len() {
                    self.wbuf.clear();
                    self.wpos = 0;
                    let mut st = self.conn.borrow_mut();
                    st.proto.poll_transmit(Instant::now(), &mut self.wbuf);
                    st.transport_stats = *st.proto.stats();
                    if self.wbuf.is_empty() {
                        break;
                    }
                }
                match self.io.poll_write(cx, &self.wbuf[self.wpos..]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.wpos += n;
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => {
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionWriter,
                            FailureCode::RecoveryLiveWrite,
                            "writer loop failed: write zero".into(),
                            DriverEnd::Failed,
                        ));
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionWriter,
                            FailureCode::RecoveryLiveWrite,
                            format!("writer loop failed: {e}"),
                            DriverEnd::Failed,
                        ));
                    }
                    Poll::Pending => break,
                }
            }
            // Graceful close: once handlers are idle and everything is written.
            if closing {
                let st = self.conn.borrow();
                if st.handlers_idle() && self.wpos == self.wbuf.len() && !st.proto.has_transmit() {
                    return Poll::Ready(TransportEnd::Closed(DriverEnd::Local));
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// Runs one transport of a connection until it ends (see [`TransportEnd`]).
/// `epoch` is set for v3: the connection's transport epoch and this
/// transport's value of it. Does not close the socket.
pub(crate) async fn run_transport(
    conn: &ConnRef,
    io: &mut Transport,
    rbuf: BytesMut,
    hooks: Option<&ConnHooks>,
    epoch: Option<(&std::cell::Cell<u64>, u64)>,
) -> TransportEnd {
    let sweep = conn
        .borrow()
        .limits
        .idle_stream_timeout
        .map(|t| Timer::new((t / 2).max(Duration::from_millis(1))));
    let mut d = Driver {
        conn,
        io,
        rbuf,
        wbuf: BytesMut::with_capacity(64 * 1024),
        wpos: 0,
        timer: None,
        sweep,
        hooks,
        epoch,
    };
    // Frames pipelined behind the handshake.
    let early = if d.rbuf.is_empty() { Ok(()) } else { d.process_input() };
    match early {
        Ok(()) => future::poll_fn(|cx| d.poll(cx)).await,
        Err(e) => d.proto_error(e),
    }
}

/// The logical connection is over: marks the state closed and fires close
/// hooks for every remaining stream (waiters see `Closed`).
pub(crate) fn finish(conn: &ConnRef, hooks: Option<&ConnHooks>) {
    {
        let mut st = conn.borrow_mut();
        st.proto.close();
        st.transport_stats = *st.proto.stats();
        let ids: Vec<u32> = st.streams.keys().copied().collect();
        st.mark_closed();
        for id in ids {
            st.discard(id);
        }
        for w in st.room_wakers.drain(..) {
            w.wake();
        }
    }
    if let Some(h) = hooks {
        h.fire(conn);
    }
}

/// Drives a v2 connection until it ends; then finishes the logical state
/// and closes the socket.
pub(crate) async fn drive(conn: ConnRef, mut io: Transport, rbuf: BytesMut, hooks: Option<ConnHooks>) -> DriverEnd {
    let end = run_transport(&conn, &mut io, rbuf, hooks.as_ref(), None).await;
    finish(&conn, hooks.as_ref());
    io.close().await;
    match end {
        TransportEnd::Closed(e) => e,
        TransportEnd::Detached | TransportEnd::Replaced => DriverEnd::Failed,
    }
}

/// One stream's handler worker: runs queued requests sequentially in arrival
/// order (§5.4 step 2) and exits when the stream state goes away.
async fn stream_worker(conn: ConnRef, id: u32, gen: u64, hooks: ConnHooks) {
    let Some(table): Option<Arc<HandlerTable>> = conn.borrow().handlers.clone() else {
        return;
    };
    let ctx = StreamContext {
        conn: conn.clone(),
        id,
        info: hooks.info.clone(),
    };
    loop {
        let next = future::poll_fn(|cx| {
            let mut st = conn.borrow_mut();
            let st = &mut *st;
            let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) else {
                return Poll::Ready(None);
            };
            match s.handler_q.pop_front() {
                Some(p) => {
                    s.handler_busy = true;
                    s.counters.handler_calls += 1;
                    st.pending_requests -= 1;
                    st.counters.handler_calls += 1;
                    Poll::Ready(Some(p))
                }
                None if st.closed => Poll::Ready(None),
                None => {
                    s.worker_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(p) = next else { break };
        let fut = table.call(p.handler, ctx.clone(), p.payload);
        let outcome = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(o) => o,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "handler panicked".to_owned());
                HandlerOutcome::Failed(format!("handler panicked: {text}"))
            }
        };
        let mut st = conn.borrow_mut();
        match outcome {
            HandlerOutcome::Replied | HandlerOutcome::SendFailed => {}
            HandlerOutcome::Failed(text) => {
                st.counters.handler_errors += 1;
                if let Some(s) = st.streams.get_mut(&id) {
                    s.counters.handler_errors += 1;
                }
                st.fail(Some(id), FailureCode::HandlerError, format!("handler error: {text}"));
                let reply = ErrorReply {
                    code: ErrorReply::HANDLER_ERROR.to_owned(),
                    message: text,
                };
                let _ = st.send_msg(id, &reply);
            }
            HandlerOutcome::Decode(e) => {
                // §5.4 step 2: codec_error reply, then a fresh stream state;
                // requests queued behind it run on the fresh state.
                st.count_decode_error(id, e.to_string());
                st.protocol_reply(id, ErrorReply::CODEC_ERROR, e.to_string());
                let rest = st
                    .streams
                    .get_mut(&id)
                    .map(|s| std::mem::take(&mut s.handler_q))
                    .unwrap_or_default();
                st.pending_requests -= rest.len();
                st.discard(id);
                if !rest.is_empty() {
                    let n = rest.len();
                    if let Some((s, _)) = st.slot_or_create(id, Instant::now()) {
                        s.handler_q = rest;
                        s.worker_alive = true;
                        let g = s.gen;
                        st.pending_requests += n;
                        drop(st);
                        hooks.fire(&conn);
                        super::spawn(stream_worker(conn.clone(), id, g, hooks.clone()));
                        return;
                    }
                }
                drop(st);
                hooks.fire(&conn);
                return;
            }
        }
        if let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) {
            s.handler_busy = false;
            if let Some(w) = s.task_gate.take() {
                w.wake();
            }
        }
        st.wake_driver();
    }
    if let Some(s) = conn.borrow_mut().streams.get_mut(&id).filter(|s| s.gen == gen) {
        s.worker_alive = false;
        s.handler_busy = false;
    }
}
