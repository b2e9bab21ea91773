//! The data phase of TCP connections (`--io auto`) on plain non-blocking
//! sockets and one epoll instance per worker, instead of one glommio task
//! (and, in open loop, one timer) per connection: the batched scheme.
//!
//! Why: on this kind of host the dominant cost of a loopback request is not
//! user space but cross-CPU signalling. An io_uring poll armed on a socket
//! (glommio's read path, rings without `COOP_TASKRUN`) makes every peer
//! `send` queue task work on the reader and kick it with an IPI while it
//! runs; an epoll interest only wakes a thread that sleeps in `epoll_wait`.
//! A busy generator is rarely asleep, so it takes (and causes) far fewer
//! interrupts. And one loop per worker serves every connection: no task
//! wake, no timer per connection.
//!
//! * **Closed loop**: a new request as soon as a reply arrives.
//! * **Open loop**: one schedule per worker ([`WorkerSchedule`]): request `k`
//!   is due at `start + k / rate` and goes to connection `k mod n` (round
//!   robin, like the per-connection schedules it replaces, staggered), so
//!   one wake sends every request due by then, whatever their connections;
//!   the loop sleeps in `epoll_pwait2` until the next one (ns timeout).
//! * **v2**: pre-encoded frames patched in place, parsed directly.
//! * **v3**: through amring's sans-IO `proto::Connection` (seq, replay ring,
//!   ACKs, heartbeats). Short protocol timers (an owed ACK's delay) go into
//!   one min-heap per worker, at most one entry per connection; long ones
//!   (PING, heartbeat expiry: tens of seconds) are found by the sweep that
//!   checks request timeouts, so no wake scans every connection.
//!
//! All pending bytes of a connection go out in one `send` per wake.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use amring_proto::{ConnError, Connection, Version};

use crate::conn_state::{any_in_flight, drain_limit, ConnCtx, InFlight, Phase, ReplyOutcome, StreamState, V2Reader};
use crate::connect::Ready;
use crate::stats::ErrorKind;
use crate::transport::Transport;

/// v3 protocol timers due within this go into the heap; later ones (PING,
/// heartbeat) are left to the periodic sweep.
const SHORT_TIMER: Duration = Duration::from_secs(1);

/// The heap of short v3 timers: (deadline, connection index), earliest first.
type Timers = BinaryHeap<Reverse<(Instant, usize)>>;

/// The protocol state of one connection.
enum Proto {
    /// v2: frames built and parsed directly.
    V2 {
        /// Pending request frames.
        wbuf: Vec<u8>,
        /// Received bytes and the frame cutter.
        rd: V2Reader,
    },
    /// v3 (or v2 through the sans-IO connection): `proto::Connection`.
    Sans(Box<SansState>),
}

struct SansState {
    conn: Connection,
    rbuf: BytesMut,
    /// Bytes for the wire (`poll_transmit`), `out[wpos..]` not sent yet.
    out: BytesMut,
}

/// One connection of the loop.
struct Conn {
    /// Kept so the socket stays open (closed on drop).
    _transport: Transport,
    fd: RawFd,
    streams: Vec<StreamState>,
    /// Open loop: the next stream to give a request (round robin).
    next_stream: usize,
    next_id: u64,
    proto: Proto,
    /// Bytes of the pending buffer already sent.
    wpos: usize,
    codec: amring::codec::CodecKind,
    /// `EPOLLOUT` is registered (a send was short).
    want_out: bool,
    /// Something was queued since the last flush.
    dirty: bool,
    alive: bool,
    /// v3: the connection has an entry in the worker's timer heap.
    armed: bool,
}

/// The socket of a TCP transport (glommio's `UnixStream` does not expose
/// its descriptor: Unix targets stay on the glommio path).
pub(crate) fn raw_fd(t: &Transport) -> Option<RawFd> {
    match t {
        Transport::Tcp(s) => Some(s.as_raw_fd()),
        Transport::Unix(_) => None,
    }
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32, idx: usize) -> bool {
    let mut ev = libc::epoll_event {
        events,
        u64: idx as u64,
    };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) == 0 }
}

fn conn_error_kind(e: &ConnError) -> ErrorKind {
    match e {
        ConnError::HeartbeatTimeout => ErrorKind::Timeout,
        ConnError::PeerClosed => ErrorKind::Closed,
        _ => ErrorKind::Protocol,
    }
}

impl Conn {
    /// v3: puts the connection's next protocol timer into `timers` when it is
    /// short and the connection has no entry yet.
    fn arm(&mut self, timers: &mut Timers, i: usize, now: Instant) {
        if self.armed || !self.alive {
            return;
        }
        if let Proto::Sans(st) = &self.proto {
            if let Some(t) = st.conn.poll_timeout() {
                if t <= now + SHORT_TIMER {
                    timers.push(Reverse((t, i)));
                    self.armed = true;
                }
            }
        }
    }

    /// v3: runs the protocol timers if due (ACK, PING, heartbeat expiry) and
    /// sends what they produced.
    fn on_timer(&mut self, epfd: RawFd, i: usize, now: Instant) -> Result<(), ErrorKind> {
        let Proto::Sans(st) = &mut self.proto else {
            return Ok(());
        };
        if !st.conn.poll_timeout().is_some_and(|t| t <= now) {
            return Ok(());
        }
        st.conn.handle_timeout(now).map_err(|e| conn_error_kind(&e))?;
        self.flush(epfd, i, now)
    }

    /// Queues request `id` on stream `s`, its latency measured from `t`.
    fn queue(&mut self, ctx: &ConnCtx, now: Instant, s: usize, t: Instant) -> Result<(), ErrorKind> {
        let id = self.next_id;
        match &mut self.proto {
            Proto::V2 { wbuf, .. } => ctx.workload.write_request_frame_v2(s as u32, id, wbuf),
            Proto::Sans(st) => st
                .conn
                .send(now, s as u32, |b| {
                    ctx.workload.write_request(id, b);
                    Ok::<(), std::convert::Infallible>(())
                })
                .map_err(|_| ErrorKind::Protocol)?,
        }
        self.streams[s].inflight.push_back(InFlight { id, t });
        self.next_id += 1;
        self.dirty = true;
        Ok(())
    }

    /// Open loop: sends the stream's backlog while its pipeline has room.
    fn drain_backlog(&mut self, ctx: &ConnCtx, now: Instant, s: usize, pipeline: usize) -> Result<(), ErrorKind> {
        while self.streams[s].inflight.len() < pipeline {
            let Some(intended) = self.streams[s].backlog.pop_front() else {
                break;
            };
            self.queue(ctx, now, s, intended)?;
        }
        Ok(())
    }

    /// Sends what is pending (v3: after `poll_transmit`); `Err` on a broken connection.
    fn flush(&mut self, epfd: RawFd, idx: usize, now: Instant) -> Result<(), ErrorKind> {
        self.dirty = false;
        let buf: &[u8] = match &mut self.proto {
            Proto::V2 { wbuf, .. } => wbuf,
            Proto::Sans(st) => {
                if st.out.len() == self.wpos {
                    st.out.clear();
                    self.wpos = 0;
                }
                st.conn.poll_transmit(now, &mut st.out);
                &st.out
            }
        };
        while self.wpos < buf.len() {
            let rest = &buf[self.wpos..];
            // SAFETY: `rest` is a valid initialized buffer of `rest.len()` bytes.
            let n = unsafe {
                libc::send(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock => {
                        if !self.want_out {
                            self.want_out = true;
                            ctl(
                                epfd,
                                libc::EPOLL_CTL_MOD,
                                self.fd,
                                (libc::EPOLLIN | libc::EPOLLOUT) as u32,
                                idx,
                            );
                        }
                        return Ok(());
                    }
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return Err(ErrorKind::Io),
                }
            }
            self.wpos += n as usize;
        }
        match &mut self.proto {
            Proto::V2 { wbuf, .. } => wbuf.clear(),
            Proto::Sans(st) => st.out.clear(),
        }
        self.wpos = 0;
        if self.want_out {
            self.want_out = false;
            ctl(epfd, libc::EPOLL_CTL_MOD, self.fd, libc::EPOLLIN as u32, idx);
        }
        Ok(())
    }

    /// Reads once (level-triggered: more data wakes again) and handles every
    /// complete frame: its reply is matched, and in closed loop a new request
    /// is queued on its stream (open loop: the stream's backlog moves up).
    fn on_readable(&mut self, ctx: &ConnCtx, now: Instant, phase: Phase, closed: bool) -> Result<(), ErrorKind> {
        let opts = &ctx.shared.opts;
        let n = match &mut self.proto {
            Proto::V2 { rd, .. } => recv(self.fd, rd.room())?,
            Proto::Sans(st) => {
                if st.rbuf.capacity() - st.rbuf.len() < 1024 {
                    st.rbuf.reserve(st.rbuf.capacity().max(4096));
                }
                let spare = st.rbuf.spare_capacity_mut();
                // SAFETY: `recv` writes at most `spare.len()` bytes into the
                // spare capacity; only the bytes it reports are exposed below.
                let dst = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), spare.len()) };
                recv(self.fd, dst)?
            }
        };
        let Some(n) = n else { return Ok(()) };
        let live = &ctx.shared.live[ctx.idx];
        let mut done = 0u64;
        let mut stats = ctx.stats.borrow_mut();
        let mut replied: Vec<u32> = Vec::new();
        // Matches one reply frame to its request; the streams that got one move on below.
        let (streams, codec) = (&mut self.streams, self.codec);
        let mut on_reply = |stream_id: u32, payload: &[u8]| {
            match ctx.complete_reply(streams, stream_id, payload, codec, now, phase, &mut stats) {
                ReplyOutcome::Unmatched => return,
                ReplyOutcome::Good => done += 1,
                ReplyOutcome::Bad => {}
            }
            replied.push(stream_id);
        };
        match &mut self.proto {
            Proto::V2 { rd, .. } => {
                rd.filled(n);
                while let Some((stream_id, payload)) = rd.next_frame()? {
                    on_reply(stream_id, payload);
                }
            }
            Proto::Sans(st) => {
                // SAFETY: `recv` initialized these `n` bytes of the spare capacity.
                unsafe { st.rbuf.set_len(st.rbuf.len() + n) };
                loop {
                    let frame = match st.conn.handle_input(now, &mut st.rbuf) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => return Err(conn_error_kind(&e)),
                    };
                    on_reply(frame.stream_id, &frame.payload);
                }
                // ACKs owed for what was read go out with the next flush.
                self.dirty = true;
            }
        }
        drop(stats);
        for s in replied {
            let s = s as usize;
            if phase == Phase::Drain {
                continue; // nothing new after the measured phase
            }
            if closed {
                self.queue(ctx, now, s, now)?;
            } else {
                self.drain_backlog(ctx, now, s, opts.pipeline)?;
            }
        }
        if done > 0 {
            live.done.fetch_add(done, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// One non-blocking `recv`: `Ok(None)` when nothing is there.
fn recv(fd: RawFd, dst: &mut [u8]) -> Result<Option<usize>, ErrorKind> {
    // SAFETY: `dst` is a valid writable buffer of `dst.len()` bytes.
    let n = unsafe { libc::recv(fd, dst.as_mut_ptr().cast(), dst.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(ErrorKind::Io),
        };
    }
    if n == 0 {
        return Err(ErrorKind::Closed);
    }
    Ok(Some(n as usize))
}

/// The open-loop schedule of one worker: its share of `--rate`, request `k`
/// due at `start + k × interval` on connection `k mod n`.
pub(crate) struct WorkerSchedule {
    start: Instant,
    /// Seconds between requests (not a `Duration`: ns truncation would drift).
    interval_s: f64,
    k: u64,
    /// Intended time of request `k`.
    next: Instant,
    /// A linear ramp: (from, length, final / initial rate); `None`: constant.
    ramp: Option<(Instant, Duration, f64)>,
}

impl WorkerSchedule {
    /// Worker `idx` of `cores` with `mine` of the run's `conns` connections,
    /// sharing `rate` req/s from `t0`; the workers' schedules interleave.
    pub(crate) fn new(rate: u64, conns: usize, mine: usize, idx: usize, cores: usize, t0: Instant) -> WorkerSchedule {
        let share = rate as f64 * mine as f64 / conns.max(1) as f64;
        let interval_s = 1.0 / share.max(1e-9);
        let start = t0 + Duration::from_secs_f64(interval_s * idx as f64 / cores.max(1) as f64);
        WorkerSchedule {
            start,
            interval_s,
            k: 0,
            next: start,
            ramp: None,
        }
    }

    /// From `from` on, the rate rises linearly to `factor` times the initial
    /// rate over `len`, and stays there.
    pub(crate) fn with_ramp(mut self, from: Instant, len: Duration, factor: f64) -> WorkerSchedule {
        self.ramp = Some((from, len, factor));
        self
    }

    /// The next intended send time.
    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// Takes the next due request (by `now`): its index `k` and intended time.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<(u64, Instant)> {
        if self.next > now {
            return None;
        }
        let item = (self.k, self.next);
        self.k += 1;
        self.next = match self.ramp {
            // From the start, not by accumulation: no drift over millions of requests.
            None => self.start + Duration::from_secs_f64(self.interval_s * self.k as f64),
            Some((from, len, factor)) => {
                // The rate at the previous send time, linear in time over the ramp.
                let t = self.next.saturating_duration_since(from).as_secs_f64();
                let x = if self.next < from {
                    0.0
                } else {
                    (t / len.as_secs_f64().max(1e-9)).min(1.0)
                };
                let rate_factor = 1.0 + (factor - 1.0) * x;
                self.next + Duration::from_secs_f64(self.interval_s / rate_factor.max(1e-9))
            }
        };
        Some(item)
    }
}

/// `epoll_pwait2` (ns timeout) where the kernel has it (5.11+), else `epoll_wait` (ms).
fn wait(epfd: RawFd, events: &mut [libc::epoll_event], timeout: Duration, pwait2: &mut bool) -> i32 {
    if *pwait2 {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `events` has room for `events.len()` entries; `ts` outlives the call; no sigmask.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        } as i32;
        if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return n;
        }
        *pwait2 = false;
    }
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `events` has room for `events.len()` entries.
    unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, ms) }
}

/// Runs the data phase of `readies` (TCP, v2 or v3, closed or open loop)
/// until `end`; errors are counted per connection (a failed connection
/// stops, the others go on). `t0` is the start of warm-up (the open-loop
/// schedule's origin).
pub(crate) fn run(ctx: &ConnCtx, readies: Vec<Ready>, t0: Instant, warm_end: Instant, end: Instant) {
    let opts = &ctx.shared.opts;
    let live = &ctx.shared.live[ctx.idx];
    let fail = |kind: ErrorKind| {
        ctx.stats.borrow_mut().errors.add(kind);
        live.errors.fetch_add(1, Ordering::Relaxed);
        live.conns_up.fetch_sub(1, Ordering::Relaxed);
    };
    // SAFETY: plain syscall; the descriptor is closed below.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        for _ in &readies {
            fail(ErrorKind::Io);
        }
        return;
    }
    let closed = opts.rate.is_none();
    let window = opts.streams * opts.pipeline;
    let wl = &ctx.workload;
    let now = Instant::now();
    let mut conns: Vec<Conn> = Vec::with_capacity(readies.len());
    let mut any_v3 = false;
    for r in readies {
        let Some(fd) = raw_fd(&r.transport) else {
            fail(ErrorKind::Io);
            continue;
        };
        let proto = if r.version == Version::V2 {
            let rcap = (2 * wl.reply_frame_v2_len() * window).clamp(4096, 256 << 10);
            Proto::V2 {
                wbuf: Vec::with_capacity((wl.frame_v2_len() * window).min(1 << 20)),
                rd: V2Reader::new(rcap, &r.rest, r.max_frame),
            }
        } else {
            any_v3 = true;
            let cap = ((wl.request_len() + 18) * window).clamp(2048, 256 << 10);
            let mut rbuf = BytesMut::with_capacity(cap.max(r.rest.len() + 1024));
            rbuf.extend_from_slice(&r.rest);
            Proto::Sans(Box::new(SansState {
                conn: r.conn,
                rbuf,
                out: BytesMut::with_capacity(cap),
            }))
        };
        conns.push(Conn {
            fd,
            streams: (0..opts.streams).map(|_| StreamState::default()).collect(),
            next_stream: 0,
            next_id: (r.gidx as u64) << 32,
            proto,
            wpos: 0,
            codec: r.codec,
            want_out: false,
            dirty: false,
            alive: true,
            armed: false,
            _transport: r.transport,
        });
    }
    let mut alive = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        if !ctl(epfd, libc::EPOLL_CTL_ADD, c.fd, libc::EPOLLIN as u32, i) {
            c.alive = false;
            fail(ErrorKind::Io);
            continue;
        }
        let mut r = Ok(());
        if closed {
            for s in 0..opts.streams {
                for _ in 0..opts.pipeline {
                    if r.is_ok() {
                        r = c.queue(ctx, now, s, now);
                    }
                }
            }
        }
        if r.is_ok() {
            r = c.flush(epfd, i, now);
        }
        match r {
            Ok(()) => alive += 1,
            Err(k) => {
                c.alive = false;
                fail(k);
            }
        }
    }
    let mut sched = (!closed).then(|| {
        let rate = opts.rate.unwrap_or(1);
        let s = WorkerSchedule::new(rate, opts.conns, conns.len(), ctx.idx, opts.cores, t0);
        match opts.ramp_to {
            Some(to) => s.with_ramp(warm_end, opts.duration, to as f64 / rate as f64),
            None => s,
        }
    });
    // Ramp runs: the CPU and idle polling of each second of the measured phase.
    let mut sec_mark: Option<(usize, f64, Duration)> = None;
    let mut touched: Vec<usize> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len().clamp(1, 1024)];
    let tick = (opts.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut next_check = Instant::now() + tick;
    let mut timers = Timers::new();
    for (i, c) in conns.iter_mut().enumerate() {
        c.arm(&mut timers, i, now);
    }
    let mut next_p99 = Instant::now() + Duration::from_millis(500);
    let mut pwait2 = true;
    // After `end`, the connections drain: no new requests, replies in flight awaited.
    let drain_end = end + drain_limit(opts);
    let mut idle_spin = Duration::ZERO;
    let mut now = Instant::now();
    let mut last_event = now;
    let nconns = conns.len();
    while alive > 0 && now < drain_end && !ctx.shared.abort.load(Ordering::Relaxed) {
        let mut until = if now < end { end } else { drain_end }.min(next_check);
        if let Some(Reverse((t, _))) = timers.peek() {
            until = until.min(*t);
        }
        // Open loop: busy-poll instead of sleeping when the next send is
        // near (`--gen-spin`): a sleeping thread wakes late on many hosts.
        // Closed loop: busy-poll for up to `--gen-spin` after the last event
        // (replies are always in flight), so a reply is seen when it lands,
        // not when the generator's thread is rescheduled.
        let mut spinning = false;
        if let Some(s) = sched.as_ref().filter(|_| now < end) {
            if s.next() <= until {
                until = s.next();
                spinning = until.saturating_duration_since(now) <= opts.gen_spin;
            }
        } else if now < end && !opts.gen_spin.is_zero() {
            spinning = now.saturating_duration_since(last_event) <= opts.gen_spin;
        }
        let timeout = if spinning {
            Duration::ZERO
        } else {
            until.saturating_duration_since(now)
        };
        let n = wait(epfd, &mut events, timeout, &mut pwait2);
        let before = now;
        now = Instant::now();
        if spinning && n <= 0 {
            idle_spin += now - before;
        }
        if n > 0 {
            last_event = now;
        }
        let phase = Phase::at(now, warm_end, end);
        if opts.ramp_to.is_some() && phase != Phase::Warmup {
            // Close the books of the second that ended (CPU, idle polling).
            let cur = if now >= end {
                usize::MAX
            } else {
                ctx.second_of(now).unwrap_or(0)
            };
            match sec_mark {
                None => sec_mark = Some((cur, crate::sys::thread_cpu_time().as_secs_f64(), idle_spin)),
                Some((i, cpu0, spin0)) if cur != i => {
                    let cpu = crate::sys::thread_cpu_time().as_secs_f64();
                    if let Some(s) = ctx.stats.borrow_mut().second(i) {
                        s.cpu_s += cpu - cpu0;
                        s.idle_spin_s += (idle_spin - spin0).as_secs_f64();
                    }
                    sec_mark = (cur != usize::MAX).then_some((cur, cpu, idle_spin));
                }
                Some(_) => {}
            }
        }
        let kill = |c: &mut Conn, i: usize, k: ErrorKind, alive: &mut usize| {
            c.alive = false;
            *alive -= 1;
            ctl(epfd, libc::EPOLL_CTL_DEL, c.fd, 0, i);
            fail(k);
        };
        for ev in &events[..n.max(0) as usize] {
            let i = ev.u64 as usize;
            let Some(c) = conns.get_mut(i) else { continue };
            if !c.alive {
                continue;
            }
            let bits = ev.events;
            let mut r = Ok(());
            if bits & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                r = c.on_readable(ctx, now, phase, closed);
            }
            if r.is_ok() && (c.dirty || bits & libc::EPOLLOUT as u32 != 0) {
                r = c.flush(epfd, i, now);
            }
            match r {
                Ok(()) => c.arm(&mut timers, i, now),
                Err(k) => kill(c, i, k, &mut alive),
            }
        }
        if phase == Phase::Drain {
            // Done once no connection waits for a reply.
            if conns.iter().all(|c| !c.alive || !any_in_flight(&c.streams)) {
                break;
            }
        }
        // Open loop: every request due by now, to its connection's stream backlog.
        if let Some(s) = sched.as_mut().filter(|_| phase != Phase::Drain) {
            let mut st = ctx.stats.borrow_mut();
            while let Some((k, intended)) = s.take_due(now) {
                // The measured phase's sends, like the latencies (warm-up absorbs the start).
                if intended >= warm_end {
                    let slip = now.saturating_duration_since(intended).as_nanos() as u64;
                    st.slip.saturating_record(slip);
                    if let Some(sec) = ctx.second_of(intended).and_then(|i| st.second(i)) {
                        sec.offered += 1;
                        sec.slip.saturating_record(slip);
                    }
                }
                let i = (k % nconns.max(1) as u64) as usize;
                let c = &mut conns[i];
                if !c.alive {
                    continue; // its requests are not sent: the rate falls short, visibly
                }
                let stream = c.next_stream;
                c.next_stream = (stream + 1) % opts.streams;
                c.streams[stream].backlog.push_back(intended);
                if c.streams[stream].inflight.len() < opts.pipeline {
                    touched.push(i);
                }
            }
            drop(st);
            for i in touched.drain(..) {
                let c = &mut conns[i];
                if !c.alive {
                    continue;
                }
                let mut r = Ok(());
                for s in 0..opts.streams {
                    if r.is_ok() {
                        r = c.drain_backlog(ctx, now, s, opts.pipeline);
                    }
                }
                if r.is_ok() && c.dirty {
                    r = c.flush(epfd, i, now);
                }
                match r {
                    Ok(()) => c.arm(&mut timers, i, now),
                    Err(k) => kill(c, i, k, &mut alive),
                }
            }
        }
        // v3 short protocol timers (an owed ACK's delay).
        while let Some(&Reverse((t, i))) = timers.peek() {
            if t > now {
                break;
            }
            timers.pop();
            let c = &mut conns[i];
            c.armed = false;
            if !c.alive {
                continue;
            }
            match c.on_timer(epfd, i, now) {
                Ok(()) => c.arm(&mut timers, i, now),
                Err(k) => kill(c, i, k, &mut alive),
            }
        }
        if now >= next_check {
            next_check = now + tick;
            for (i, c) in conns.iter_mut().enumerate() {
                if c.alive && ctx.expired(&c.streams, now) {
                    kill(c, i, ErrorKind::Timeout, &mut alive);
                    continue;
                }
                // v3 long timers (PING, heartbeat expiry) come due here.
                if any_v3 && c.alive && !c.armed {
                    match c.on_timer(epfd, i, now) {
                        Ok(()) => c.arm(&mut timers, i, now),
                        Err(k) => kill(c, i, k, &mut alive),
                    }
                }
            }
            if now >= next_p99 {
                next_p99 = now + Duration::from_millis(500);
                let p = ctx.stats.borrow().hist.value_at_quantile(0.99);
                live.p99_ns.store(p, Ordering::Relaxed);
            }
        }
    }
    for c in &conns {
        if c.alive {
            live.conns_up.fetch_sub(1, Ordering::Relaxed);
        }
    }
    ctx.stats.borrow_mut().idle_spin_s += idle_spin.as_secs_f64();
    // SAFETY: `epfd` is ours and closed once.
    unsafe { libc::close(epfd) };
    drop(conns);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_rises_linearly_then_holds() {
        // 1000 req/s for 1 s of warm-up, then up to 3000 req/s over 2 s, then 3000.
        let t0 = Instant::now();
        let warm_end = t0 + Duration::from_secs(1);
        let mut s = WorkerSchedule::new(1000, 1, 1, 0, 1, t0).with_ramp(warm_end, Duration::from_secs(2), 3.0);
        let mut per_second = [0u32; 4];
        while let Some((_, t)) = s.take_due(t0 + Duration::from_secs(4)) {
            per_second[t.duration_since(t0).as_secs() as usize] += 1;
        }
        // Warm-up at 1000; the ramp's seconds average 1500 and 2500; then 3000.
        let want = [1000, 1500, 2500, 3000];
        for (got, want) in per_second.iter().zip(want) {
            assert!(got.abs_diff(want) <= want / 100, "{per_second:?}");
        }
    }

    #[test]
    fn worker_schedule_is_exact_and_interleaved() {
        let t0 = Instant::now();
        // 1000 req/s over 4 conns, worker 1 of 2 holding 2 of them: 500/s, offset 1 ms.
        let mut s = WorkerSchedule::new(1000, 4, 2, 1, 2, t0);
        assert_eq!(s.next(), t0 + Duration::from_millis(1));
        assert!(s.take_due(t0).is_none());
        let due: Vec<_> = std::iter::from_fn(|| s.take_due(t0 + Duration::from_millis(10))).collect();
        // Due at 1, 3, 5, 7, 9 ms.
        assert_eq!(due.len(), 5);
        for (i, (k, t)) in due.iter().enumerate() {
            assert_eq!(*k, i as u64);
            assert_eq!(*t, t0 + Duration::from_millis(1 + 2 * i as u64));
        }
        // No drift after a million requests.
        let mut s = WorkerSchedule::new(3, 1, 1, 0, 1, t0);
        for _ in 0..1_000_000 {
            s.take_due(t0 + Duration::from_secs(1 << 20));
        }
        let want = t0 + Duration::from_secs_f64(1e6 / 3.0);
        let got = s.next();
        let diff = if got > want { got - want } else { want - got };
        assert!(diff < Duration::from_micros(1), "{diff:?}");
    }
}
