//! The closed-loop v2 data phase on plain non-blocking sockets and one epoll
//! instance per worker, instead of one glommio task and io_uring poll per
//! connection.
//!
//! Why: on this kind of host the dominant cost of a loopback request is not
//! user space but cross-CPU signalling. An io_uring poll armed on a socket
//! (glommio's read path, rings without `COOP_TASKRUN`) makes every peer
//! `send` queue task work on the reader and kick it with an IPI while it
//! runs; an epoll interest only wakes a thread that sleeps in `epoll_wait`.
//! A busy generator is rarely asleep, so it takes (and causes) far fewer
//! interrupts. Everything else is the direct v2 path of `v2_drive::drive_v2`:
//! pre-encoded frames patched in place, replies compared byte for byte, all
//! pending requests of a connection in one `send`, one clock read per wake.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use amring_proto::frame::V2_HEADER_LEN;
use amring_proto::{FrameHeader, Version};

use crate::conn_state::{ConnCtx, InFlight, ReplyOutcome, StreamState};
use crate::connect::Ready;
use crate::stats::ErrorKind;
use crate::transport::Transport;

/// One connection of the epoll loop.
struct Conn {
    /// Kept so the socket stays open (closed on drop).
    _transport: Transport,
    fd: RawFd,
    streams: Vec<StreamState>,
    next_id: u64,
    wbuf: Vec<u8>,
    /// Bytes of `wbuf` already sent.
    wpos: usize,
    rbuf: Vec<u8>,
    head: usize,
    tail: usize,
    codec: amring::codec::CodecKind,
    max_frame: u32,
    /// `EPOLLOUT` is registered (a send was short).
    want_out: bool,
    alive: bool,
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

impl Conn {
    /// Sends what is pending; `Err` on a broken connection.
    fn flush(&mut self, epfd: RawFd, idx: usize) -> Result<(), ErrorKind> {
        while self.wpos < self.wbuf.len() {
            let rest = &self.wbuf[self.wpos..];
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
        self.wbuf.clear();
        self.wpos = 0;
        if self.want_out {
            self.want_out = false;
            ctl(epfd, libc::EPOLL_CTL_MOD, self.fd, libc::EPOLLIN as u32, idx);
        }
        Ok(())
    }

    /// Reads once (level-triggered: more data wakes again), handles every
    /// complete frame and queues one new request per reply.
    fn on_readable(&mut self, ctx: &ConnCtx, now: Instant, in_warmup: bool) -> Result<(), ErrorKind> {
        if self.tail == self.rbuf.len() {
            if self.head > 0 {
                self.rbuf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            } else {
                let n = self.rbuf.len();
                self.rbuf.resize(n * 2, 0);
            }
        }
        let dst = &mut self.rbuf[self.tail..];
        // SAFETY: `dst` is a valid writable buffer of `dst.len()` bytes.
        let n = unsafe { libc::recv(self.fd, dst.as_mut_ptr().cast(), dst.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(()),
                _ => Err(ErrorKind::Io),
            };
        }
        if n == 0 {
            return Err(ErrorKind::Closed);
        }
        self.tail += n as usize;
        let tpl = &ctx.workload;
        let live = &ctx.shared.live[ctx.idx];
        let mut done = 0u64;
        let mut stats = ctx.stats.borrow_mut();
        loop {
            let avail = &self.rbuf[self.head..self.tail];
            let h = match FrameHeader::parse(avail, Version::V2, self.max_frame) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return Err(ErrorKind::Protocol),
            };
            let flen = h.frame_len();
            if avail.len() < flen {
                if flen > self.rbuf.len() {
                    self.rbuf.resize(flen.next_power_of_two(), 0);
                }
                break;
            }
            let payload = &avail[V2_HEADER_LEN..flen];
            self.head += flen;
            let s = h.stream_id as usize;
            match ctx.complete_reply(
                &mut self.streams,
                h.stream_id,
                payload,
                self.codec,
                now,
                in_warmup,
                &mut stats,
            ) {
                ReplyOutcome::Unmatched => continue,
                ReplyOutcome::Good => done += 1,
                ReplyOutcome::Bad => {}
            }
            tpl.write_request_frame_v2(s as u32, self.next_id, &mut self.wbuf);
            self.streams[s].inflight.push_back(InFlight {
                id: self.next_id,
                t: now,
            });
            self.next_id += 1;
        }
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        if done > 0 {
            live.done.fetch_add(done, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Runs the closed-loop data phase of `readies` (all v2) until `end`;
/// errors are counted per connection (a failed connection stops, the others go on).
pub(crate) fn run(ctx: &ConnCtx, readies: Vec<Ready>, warm_end: Instant, end: Instant) {
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
    let window = opts.streams * opts.pipeline;
    let tpl = &ctx.workload;
    let now = Instant::now();
    let mut conns: Vec<Conn> = Vec::with_capacity(readies.len());
    for r in readies {
        let Some(fd) = raw_fd(&r.transport) else {
            fail(ErrorKind::Io);
            continue;
        };
        let rcap = (2 * tpl.reply_frame_v2_len() * window).clamp(4096, 256 << 10);
        let mut rbuf = vec![0; rcap.max(r.rest.len() + 1024)];
        rbuf[..r.rest.len()].copy_from_slice(&r.rest);
        let mut c = Conn {
            fd,
            streams: (0..opts.streams).map(|_| StreamState::default()).collect(),
            next_id: (r.gidx as u64) << 32,
            wbuf: Vec::with_capacity((tpl.frame_v2_len() * window).min(1 << 20)),
            wpos: 0,
            tail: r.rest.len(),
            rbuf,
            head: 0,
            codec: r.codec,
            max_frame: r.max_frame,
            want_out: false,
            alive: true,
            _transport: r.transport,
        };
        for (s, st) in c.streams.iter_mut().enumerate() {
            for _ in 0..opts.pipeline {
                tpl.write_request_frame_v2(s as u32, c.next_id, &mut c.wbuf);
                st.inflight.push_back(InFlight { id: c.next_id, t: now });
                c.next_id += 1;
            }
        }
        conns.push(c);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        if !ctl(epfd, libc::EPOLL_CTL_ADD, c.fd, libc::EPOLLIN as u32, i) {
            c.alive = false;
            fail(ErrorKind::Io);
            continue;
        }
        if let Err(k) = c.flush(epfd, i) {
            c.alive = false;
            fail(k);
        }
    }
    let mut alive = conns.iter().filter(|c| c.alive).count();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len().clamp(1, 1024)];
    let tick = (opts.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut next_check = Instant::now() + tick;
    let mut next_p99 = Instant::now() + Duration::from_millis(500);
    let mut now = Instant::now();
    while alive > 0 && now < end && !ctx.shared.abort.load(Ordering::Relaxed) {
        let wait = end.min(next_check).saturating_duration_since(now);
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `events` has room for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, ms) };
        now = Instant::now();
        if now >= end {
            break;
        }
        let in_warmup = now < warm_end;
        for ev in &events[..n.max(0) as usize] {
            let i = ev.u64 as usize;
            let Some(c) = conns.get_mut(i) else { continue };
            if !c.alive {
                continue;
            }
            let bits = ev.events;
            let mut r = Ok(());
            if bits & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                r = c.on_readable(ctx, now, in_warmup);
            }
            if r.is_ok() {
                r = c.flush(epfd, i);
            }
            if let Err(k) = r {
                c.alive = false;
                alive -= 1;
                ctl(epfd, libc::EPOLL_CTL_DEL, c.fd, 0, i);
                fail(k);
            }
        }
        if now >= next_check {
            next_check = now + tick;
            for (i, c) in conns.iter_mut().enumerate() {
                let expired = c.alive
                    && c.streams.iter().any(|st| {
                        st.inflight
                            .front()
                            .is_some_and(|f| now.duration_since(f.t) >= opts.timeout)
                    });
                if expired {
                    c.alive = false;
                    alive -= 1;
                    ctl(epfd, libc::EPOLL_CTL_DEL, c.fd, 0, i);
                    fail(ErrorKind::Timeout);
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
    // SAFETY: `epfd` is ours and closed once.
    unsafe { libc::close(epfd) };
    drop(conns);
}
