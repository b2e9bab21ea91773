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
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::future;
use glommio::timer::Timer;

use super::io::{ReadRoom, Transport, RELEASE_ABOVE, ROOM_MAX};
use crate::codec::ErrorReply;
use crate::conn::context::StreamContext;
use crate::conn::handler::{BoxedRunner, HandlerOutcome, HandlerTable, Hooks};
use crate::conn::info::ConnInfo;
use crate::conn::state::{ConnRef, ConnState, Routed};
use crate::debug::FailureCode;

/// Lifecycle callbacks of a server connection.
#[derive(Clone)]
pub(crate) struct ConnHooks {
    pub(crate) hooks: Arc<Hooks>,
    /// The handlers the stream workers run.
    pub(crate) table: Arc<HandlerTable>,
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
            let (name, f) = if open {
                ("on_new_stream", &self.hooks.on_new_stream)
            } else {
                ("on_close_stream", &self.hooks.on_close_stream)
            };
            if let Some(f) = f {
                if let Err(text) = crate::panic::contain(|| f(&ctx)) {
                    let text = format!("{name} panicked: {text}");
                    conn.borrow_mut().record_panic(Some(id), FailureCode::HookPanic, text);
                }
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

/// State of the lone-ACK hold-back (see the write step of `Driver::poll`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckHold {
    /// Nothing held.
    No,
    /// Held during the current wake; the task re-woke itself.
    Held,
    /// The next wake: the ACK goes out, alone or not.
    Released,
}

/// Rounds of `Driver::poll`'s loop before it yields (see there).
const LOOP_BUDGET: u32 = 64;

struct Driver<'a> {
    conn: &'a ConnRef,
    io: &'a mut Transport,
    rbuf: BytesMut,
    wbuf: BytesMut,
    wpos: usize,
    timer: Option<Timer>,
    /// Instant the timer is armed for (it may fire before the current deadline).
    armed: Option<Instant>,
    /// What the bytes in `wbuf` carry (names the stage of a failed write).
    wkinds: crate::proto::TransmitKinds,
    /// A lone due ACK held back for one scheduling round.
    ack_hold: AckHold,
    sweep: Option<Timer>,
    hooks: Option<&'a ConnHooks>,
    /// v3 transport epoch: `(current, mine)`; a mismatch means a resume replaced us.
    epoch: Option<(&'a std::cell::Cell<u64>, u64)>,
    /// The last read left the socket empty (see `Transport::poll_read_hinted`).
    read_room: ReadRoom,
    /// Whole frames wait in `rbuf`, left there at the inbound limit.
    input_held: bool,
    /// Call slots of the handlers the driver runs inline, by handler index
    /// (allocated on first use; one moves to a worker when its call waits).
    inline: Vec<Option<BoxedRunner>>,
}

impl Driver<'_> {
    /// Feeds buffered bytes to the protocol and routes every delivered frame.
    ///
    /// Stops early, leaving whole frames in the read buffer, once the inbound
    /// holdings reach `in_limit` (`input_held` is set): what the connection
    /// holds never passes its limit by more than one message.
    fn process_input(&mut self, in_limit: usize, cx: &mut Context<'_>) -> Result<(), crate::proto::ConnError> {
        let now = Instant::now();
        self.input_held = false;
        loop {
            if self.conn.borrow().inbound_held() >= in_limit {
                self.input_held = !self.rbuf.is_empty();
                return Ok(());
            }
            let r = self.conn.borrow_mut().proto.handle_input(now, &mut self.rbuf);
            let d = match r {
                Ok(Some(d)) => d,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            };
            let (routed, _) = self.conn.borrow_mut().route(d.stream_id, d.payload, now);
            // Hooks first: `on_new_stream` runs before the stream's first
            // handler starts (glommio may poll a freshly spawned task at
            // once), so a value it sets is visible to that handler, as in the
            // reference, and is never overwritten behind the handler's back.
            if let Some(h) = self.hooks {
                h.fire(self.conn);
            }
            if let Routed::Handler { spawn: true } = routed {
                self.run_inline(d.stream_id, cx);
            }
        }
    }

    /// Runs the request just queued on stream `id`, whose handlers were idle,
    /// right here in the driver instead of waking a worker task for it: a
    /// handler whose future completes at once (an echo) costs no task, no
    /// wake and no second pass over the connection state, and its reply
    /// leaves in this wake's write. A call that has to wait moves, in
    /// progress, to a new stream worker, which also serves what arrives
    /// behind it; so requests of one stream still run one at a time, in
    /// order (§5.4).
    fn run_inline(&mut self, id: u32, cx: &mut Context<'_>) {
        let Some(hooks) = self.hooks else { return };
        let (p, gen) = {
            let mut st = self.conn.borrow_mut();
            let Some(gen) = st.streams.get(&id).map(|s| s.gen) else {
                return;
            };
            match take_request(&mut st, id, gen) {
                Ok(Some(p)) => (p, gen),
                _ => return,
            }
        };
        if self.inline.len() < hooks.table.len() {
            self.inline.resize_with(hooks.table.len(), || None);
        }
        let Some(slot) = self.inline.get_mut(p.handler) else {
            return;
        };
        let runner = slot.get_or_insert_with(|| hooks.table.runner(p.handler));
        let ctx = StreamContext {
            conn: self.conn.clone(),
            id,
            info: hooks.info.clone(),
        };
        // The driver writes after this anyway: a reply queued inline must not
        // wake it for another pass.
        let waker = self.conn.borrow_mut().driver_waker.take();
        let polled = match start_call(runner, &ctx, p.payload, self.conn, id) {
            Some(o) => Poll::Ready(o),
            None => poll_call(runner, cx, &ctx, self.conn, id),
        };
        {
            let mut st = self.conn.borrow_mut();
            if st.driver_waker.is_none() {
                st.driver_waker = waker;
            }
        }
        match polled {
            Poll::Ready(outcome) => {
                if settle(self.conn, id, gen, outcome, hooks) == Next::Continue {
                    // Nothing can have queued behind it meanwhile (only this
                    // driver routes), but stay correct if something did.
                    let mut st = self.conn.borrow_mut();
                    if let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) {
                        if s.handler_q.is_empty() {
                            s.worker_alive = false;
                        } else {
                            drop(st);
                            crate::exec::spawn(stream_worker(self.conn.clone(), id, gen, hooks.clone(), None));
                        }
                    }
                }
            }
            Poll::Pending => {
                let Some(runner) = slot.take() else { return };
                let first = Started {
                    handler: p.handler,
                    runner,
                };
                crate::exec::spawn(stream_worker(self.conn.clone(), id, gen, hooks.clone(), Some(first)));
            }
        }
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

    /// The §8.3 code of a failed v3 write: the most significant content of
    /// the write buffer (replayed frames, then new data, then ACK, then PING).
    fn write_code(&self) -> FailureCode {
        let k = self.wkinds;
        if k.replay {
            FailureCode::RecoveryResumeWrite
        } else if k.data {
            FailureCode::RecoveryLiveWrite
        } else if k.ack {
            FailureCode::RecoveryAckWrite
        } else if k.ping {
            FailureCode::RecoveryPingWrite
        } else {
            FailureCode::RecoveryLiveWrite
        }
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
        let mut read_any = false;
        if self.ack_hold == AckHold::Held {
            self.ack_hold = AckHold::Released;
        }
        // Rounds of this loop per wake. A connection whose peer keeps the
        // socket full would otherwise keep the core to itself: after the
        // budget it yields (and re-wakes itself) so that glommio reaps I/O and
        // the other connections of the shard run.
        let mut budget = LOOP_BUDGET;
        loop {
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            budget -= 1;
            let mut progress = false;
            if let Some((cur, mine)) = self.epoch {
                if cur.get() != mine {
                    return Poll::Ready(TransportEnd::Replaced);
                }
            }
            let (closed, closing, paused, in_limit) = {
                let mut st = self.conn.borrow_mut();
                st.driver_waker = Some(cx.waker().clone());
                st.report_held();
                let mut paused = st.intake_full();
                let mut in_limit = st.route_limit();
                // v3: ACKs keep flowing. A sender waiting for replay-ring room
                // needs the peer's ACKs, which may sit behind requests: read
                // on (the frames read are held and accounted) up to twice the
                // inbound limit, unless the output side is what is full.
                if self.is_v3() && !st.room_wakers.is_empty() && !st.outbound_full() {
                    in_limit = in_limit.max(2 * st.limits.max_inbound_bytes);
                    if st.inbound_held() < in_limit {
                        paused = false;
                    }
                }
                if paused && st.budget_spent() {
                    st.wait_budget(cx.waker());
                }
                if paused && !st.intake_waiting {
                    st.intake_waiting = true;
                    st.counters.intake_pauses += 1;
                } else if !paused {
                    st.intake_waiting = false;
                }
                (
                    st.closed || (st.proto.is_closed() && !st.closing),
                    st.closing,
                    paused,
                    in_limit,
                )
            };
            if closed {
                return Poll::Ready(TransportEnd::Closed(DriverEnd::Local));
            }
            // Frames read earlier and left at the inbound limit go first.
            if !closing && self.input_held && self.conn.borrow().inbound_held() < in_limit {
                if let Err(e) = self.process_input(in_limit, cx) {
                    return Poll::Ready(self.proto_error(e));
                }
                progress = true;
            }
            // Read.
            if !closing && !paused && !self.input_held {
                // A frame whose header is in: size the buffer once for all of
                // it (plus one read), instead of growing it read by read.
                let remaining = self.conn.borrow().proto.pending_frame_remaining(self.rbuf.len());
                if let Some(rem) = remaining {
                    if self.rbuf.capacity() - self.rbuf.len() < rem {
                        self.rbuf.reserve(rem + ROOM_MAX);
                    }
                }
                match self.io.poll_read_sized(cx, &mut self.rbuf, &mut self.read_room) {
                    Poll::Ready(Ok(0)) if read_any => {
                        // EOF right behind data of this wake: let the tasks
                        // woken by that data take it before the streams go
                        // away (EOF is sticky; the next wake sees it again).
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionReader,
                            FailureCode::RecoveryRead,
                            "reader loop failed: EOF".into(),
                            DriverEnd::Eof,
                        ));
                    }
                    Poll::Ready(Ok(_)) => {
                        read_any = true;
                        {
                            let mut st = self.conn.borrow_mut();
                            st.read_buffer = self.rbuf.capacity();
                            st.counters.socket_reads += 1;
                        }
                        if let Err(e) = self.process_input(in_limit, cx) {
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
            // Protocol timer (v3 ACK / PING / heartbeat): one timer, re-armed
            // only when the deadline moves earlier than the armed instant (or
            // the armed instant passed). A deadline that moved later just lets
            // the timer fire early once; the check below then re-arms it.
            let deadline = self.conn.borrow().proto.poll_timeout();
            if let Some(at) = deadline {
                let now = Instant::now();
                if at <= now {
                    // Not progress by itself: what a due deadline asks for (an
                    // ACK, a PING) goes out in the write step just below. A
                    // deadline that stays due (a lone ACK held back for one
                    // round) must not keep this loop spinning.
                    let r = self.conn.borrow_mut().proto.handle_timeout(now);
                    if let Err(e) = r {
                        return Poll::Ready(self.proto_error(e));
                    }
                } else if self.armed.map_or(true, |a| at < a || a <= now) {
                    let t = self.timer.get_or_insert_with(|| Timer::new(at - now));
                    t.reset(at - now);
                    if Pin::new(t).poll(cx).is_ready() {
                        progress = true;
                    }
                    self.armed = Some(at);
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
                    st.wake_room();
                }
            }
            // Idle stream eviction sweep.
            if let Some(t) = &mut self.sweep {
                if Pin::new(&mut *t).poll(cx).is_ready() {
                    let ids = self.conn.borrow().idle_streams(Instant::now());
                    for id in ids {
                        self.conn.borrow_mut().evict(id, "idle timeout");
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
                    if self.is_v3() && self.ack_hold != AckHold::Released && !closing && !st.proto.has_data_transmit() {
                        // A lone ACK waits one scheduling round: the handlers
                        // (or the application) woken by the frames it acknowledges
                        // run first, and their frames share its write.
                        if st.proto.has_transmit() {
                            if self.ack_hold == AckHold::No {
                                self.ack_hold = AckHold::Held;
                                cx.waker().wake_by_ref();
                            }
                            break;
                        }
                    }
                    self.ack_hold = AckHold::No;
                    // The write buffer is empty here: what the connection
                    // holds unwritten is its queued frames. A v3 replay
                    // backlog (counted nowhere else) comes over in pieces
                    // that keep the holdings within `max_outbound_bytes`.
                    let budget = st.limits.max_outbound_bytes.saturating_sub(st.proto.queued_bytes());
                    st.proto.poll_transmit_within(Instant::now(), &mut self.wbuf, budget);
                    self.wkinds = st.proto.last_transmit();
                    st.transport_stats = *st.proto.stats();
                    if self.wbuf.is_empty() {
                        // Everything is written: an idle connection keeps no
                        // buffer that a burst grew.
                        if self.wbuf.capacity() > RELEASE_ABOVE {
                            self.wbuf = BytesMut::new();
                        }
                        st.proto.shrink_buffers(RELEASE_ABOVE);
                        break;
                    }
                }
                match self.io.poll_write(cx, &self.wbuf[self.wpos..]) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        self.wpos += n;
                        progress = true;
                        self.conn.borrow_mut().counters.socket_writes += 1;
                    }
                    Poll::Ready(Ok(_)) => {
                        let code = self.write_code();
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionWriter,
                            code,
                            "writer loop failed: write zero".into(),
                            DriverEnd::Failed,
                        ));
                    }
                    Poll::Ready(Err(e)) => {
                        let code = self.write_code();
                        return Poll::Ready(self.lost(
                            FailureCode::ConnectionWriter,
                            code,
                            format!("writer loop failed: {e}"),
                            DriverEnd::Failed,
                        ));
                    }
                    Poll::Pending => break,
                }
            }
            // Output drained below its limit: senders waiting for room go on.
            {
                let mut st = self.conn.borrow_mut();
                st.unwritten = self.wbuf.len() - self.wpos;
                if !st.out_wakers.is_empty() && !st.outbound_full() {
                    st.wake_out();
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
        wbuf: BytesMut::new(),
        wpos: 0,
        timer: None,
        armed: None,
        ack_hold: AckHold::No,
        wkinds: crate::proto::TransmitKinds::default(),
        sweep,
        hooks,
        epoch,
        read_room: ReadRoom::default(),
        input_held: false,
        inline: Vec::new(),
    };
    // Frames pipelined behind the handshake go first.
    let mut early = !d.rbuf.is_empty();
    future::poll_fn(|cx| {
        if std::mem::take(&mut early) {
            let in_limit = d.conn.borrow().route_limit();
            if let Err(e) = d.process_input(in_limit, cx) {
                return Poll::Ready(d.proto_error(e));
            }
        }
        d.poll(cx)
    })
    .await
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
        st.leave_budget();
        st.wake_senders();
    }
    if let Some(h) = hooks {
        h.fire(conn);
        crate::conn::post::unregister(h.info.id);
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

/// The outcome of a handler that panicked (contained: counted, one line logged).
fn panic_outcome(conn: &ConnRef, id: u32, text: String) -> HandlerOutcome {
    let text = format!("handler panicked: {text}");
    tracing::warn!(target: "amring", stream = id, "{text}");
    conn.borrow_mut().counters.panics += 1;
    HandlerOutcome::Failed(text)
}

/// Takes the next queued request of stream `id` (generation `gen`) for the
/// one running its handlers: `Ok(None)` when the queue is empty, `Err(())`
/// when the stream state is gone (or the connection closed with nothing
/// queued).
#[allow(clippy::result_unit_err)]
fn take_request(st: &mut ConnState, id: u32, gen: u64) -> Result<Option<crate::conn::state::Pending>, ()> {
    let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) else {
        return Err(());
    };
    match s.handler_q.pop_front() {
        Some(p) => {
            s.handler_busy = true;
            s.counters.handler_calls += 1;
            st.counters.handler_calls += 1;
            st.took_request(id, crate::conn::limits::held_cost(&p.payload));
            Ok(Some(p))
        }
        None if st.closed => Err(()),
        None => Ok(None),
    }
}

/// Decodes the request into `runner` and starts its call; a decode failure
/// or a panic is the outcome at once.
fn start_call(
    runner: &mut BoxedRunner,
    ctx: &StreamContext,
    payload: bytes::Bytes,
    conn: &ConnRef,
    id: u32,
) -> Option<HandlerOutcome> {
    match crate::panic::contain(|| runner.as_mut().start(ctx, payload)) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(HandlerOutcome::Decode(e)),
        Err(text) => {
            runner.as_mut().reset();
            Some(panic_outcome(conn, id, text))
        }
    }
}

/// Polls a started call once (a panic is its outcome).
fn poll_call(
    runner: &mut BoxedRunner,
    cx: &mut Context<'_>,
    ctx: &StreamContext,
    conn: &ConnRef,
    id: u32,
) -> Poll<HandlerOutcome> {
    match crate::panic::contain(|| runner.as_mut().poll_run(cx, ctx)) {
        Ok(p) => p,
        Err(text) => {
            runner.as_mut().reset();
            Poll::Ready(panic_outcome(conn, id, text))
        }
    }
}

/// After one handler call: what its runner does next.
#[derive(PartialEq, Eq)]
enum Next {
    /// Take the stream's next request.
    Continue,
    /// Stop: the stream state was replaced (a decode failure resets it and
    /// a new worker, if any, serves what was queued behind).
    Exit,
}

/// Finishes one handler call of stream `id`: the error reply of a failed
/// call, the §5.4 stream reset of a decode failure, the stream's
/// `handler_busy` flag and `new_task` gate.
fn settle(conn: &ConnRef, id: u32, gen: u64, outcome: HandlerOutcome, hooks: &ConnHooks) -> Next {
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
            let rest_bytes: usize = rest.iter().map(|p| crate::conn::limits::held_cost(&p.payload)).sum();
            st.pending_requests -= rest.len();
            st.pending_bytes -= rest_bytes;
            st.discard(id);
            if !rest.is_empty() {
                let n = rest.len();
                if let Some((s, _)) = st.slot_or_create(id, Instant::now()) {
                    s.handler_q = rest;
                    s.worker_alive = true;
                    let g = s.gen;
                    st.pending_requests += n;
                    st.pending_bytes += rest_bytes;
                    drop(st);
                    hooks.fire(conn);
                    crate::exec::spawn(stream_worker(conn.clone(), id, g, hooks.clone(), None));
                    return Next::Exit;
                }
            }
            drop(st);
            hooks.fire(conn);
            return Next::Exit;
        }
    }
    if let Some(s) = st.streams.get_mut(&id).filter(|s| s.gen == gen) {
        s.handler_busy = false;
        if let Some(w) = s.task_gate.take() {
            w.wake();
        }
    }
    st.wake_driver();
    Next::Continue
}

/// A handler call the connection driver started inline and that did not
/// finish at once: the worker continues it first.
struct Started {
    handler: usize,
    runner: BoxedRunner,
}

/// One stream's handler worker: runs queued requests sequentially in arrival
/// order (§5.4 step 2) and exits when the stream state goes away. `first` is
/// a call the driver started inline (see `Driver::run_inline`).
async fn stream_worker(conn: ConnRef, id: u32, gen: u64, hooks: ConnHooks, first: Option<Started>) {
    let table = hooks.table.clone();
    let ctx = StreamContext {
        conn: conn.clone(),
        id,
        info: hooks.info.clone(),
    };
    let mut runners: Vec<Option<BoxedRunner>> = (0..table.len()).map(|_| None).collect();
    if let Some(Started { handler, runner }) = first {
        let Some(slot) = runners.get_mut(handler) else { return };
        let runner = slot.insert(runner);
        let outcome = future::poll_fn(|cx| poll_call(runner, cx, &ctx, &conn, id)).await;
        if settle(&conn, id, gen, outcome, &hooks) == Next::Exit {
            return;
        }
    }
    loop {
        let next = future::poll_fn(|cx| {
            let mut st = conn.borrow_mut();
            match take_request(&mut st, id, gen) {
                Ok(Some(p)) => Poll::Ready(Some(p)),
                Err(()) => Poll::Ready(None),
                Ok(None) => {
                    if let Some(s) = st.streams.get_mut(&id) {
                        s.worker_waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(p) = next else { break };
        // The handler's call slot: allocated on first use per worker, then
        // reused, so a request allocates nothing here.
        let Some(runner) = runners.get_mut(p.handler) else {
            break;
        };
        let runner = runner.get_or_insert_with(|| table.runner(p.handler));
        let outcome = match start_call(runner, &ctx, p.payload, &conn, id) {
            Some(o) => o,
            None => future::poll_fn(|cx| poll_call(runner, cx, &ctx, &conn, id)).await,
        };
        if settle(&conn, id, gen, outcome, &hooks) == Next::Exit {
            return;
        }
    }
    if let Some(s) = conn.borrow_mut().streams.get_mut(&id).filter(|s| s.gen == gen) {
        s.worker_alive = false;
        s.handler_busy = false;
    }
}
