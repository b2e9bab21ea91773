//! io_uring-native socket I/O for server connections (TCP and Unix
//! sockets): one ring per shard that amring drives itself, next to
//! glommio's rings.
//!
//! * **Receive:** one multishot `RECV` per connection, into a provided-buffer
//!   ring shared by the shard's connections. A completion's bytes are copied
//!   once into the connection's inbox (grown by what arrives) and the buffer
//!   goes straight back to the ring; the driver takes an inbox above
//!   [`SWAP_ABOVE`] whole when its read buffer is empty (no second copy) and
//!   copies a smaller one (the inbox keeps its allocation, so a small request
//!   allocates nothing). A connection that does not read (intake paused) stops
//!   its receive at [`INBOX_STOP`] bytes, so TCP pushes back on the peer.
//! * **Send:** a write copies the bytes into the connection's send buffer
//!   and queues one `SEND` SQE; the write counts as done and the next one
//!   waits for its completion (one send in flight per connection, partial
//!   sends resubmitted). All connections' SQEs go to the kernel in one
//!   `io_uring_enter` per reactor pass.
//! * **Ring:** `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG`: completion work
//!   runs only when the reactor enters the kernel, and the reactor enters it
//!   only when it has SQEs to submit or the kernel flags pending work. When
//!   idle the reactor task waits on the ring's eventfd through glommio
//!   (`glommio::io::wait_readable`, a patch of the fork), so the executor
//!   sleeps as before.
//!
//! glommio stays the executor (tasks, timers, accept, the handshake's
//! timeout); sockets adopted here are driven by this ring only. If the ring
//! cannot be set up (old kernel, seccomp), [`Reactor::get`] says so and the
//! caller keeps glommio's socket I/O.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// A drained, empty read or write buffer larger than this is released instead
/// of kept while the connection waits (a burst does not pin its buffers on an
/// idle connection).
pub(crate) const RELEASE_ABOVE: usize = 16 * 1024;

/// Submission queue entries (the completion queue has four times as many).
const SQ_ENTRIES: u32 = 4096;
/// Provided receive buffers per shard, and their size (4 MiB in all).
const BUFS: u16 = 1024;
const BUF_SIZE: usize = 4096;
/// Buffer group id of the provided-buffer ring.
const BGID: u16 = 0;
/// A connection's inbox at which its receive is stopped until the driver
/// reads (the inbox may pass it by what was already in flight).
pub(crate) const INBOX_STOP: usize = 256 * 1024;
/// An inbox bigger than this moves into an empty read buffer whole; a
/// smaller one is copied (the inbox keeps its allocation for the next
/// arrival, so a small request costs no allocation).
const SWAP_ABOVE: usize = 8 * 1024;
/// Largest single send (a bigger write is split).
const SEND_MAX: usize = 256 * 1024;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;
/// How long `close` waits for a send still in flight before it shuts the
/// socket down.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Operation kinds in the low byte of `user_data`.
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;

fn user_data(idx: u32, gen: u32, op: u64) -> u64 {
    (u64::from(idx) << 32) | (u64::from(gen & 0x00ff_ffff) << 8) | op
}

fn split_user_data(ud: u64) -> (u32, u32, u64) {
    ((ud >> 32) as u32, ((ud >> 8) & 0x00ff_ffff) as u32, ud & 0xff)
}

/// The provided-buffer ring: page-aligned entry ring plus the buffers.
struct BufRing {
    entries: *mut types::BufRingEntry,
    map_len: usize,
    slab: Box<[u8]>,
    /// Local producer tail (published by [`BufRing::publish`]).
    tail: u16,
    dirty: bool,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<BufRing> {
        let map_len = usize::from(BUFS) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: anonymous private mapping; checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            entries: p.cast(),
            map_len,
            slab: vec![0u8; usize::from(BUFS) * BUF_SIZE].into_boxed_slice(),
            tail: 0,
            dirty: false,
        };
        // SAFETY: the mapping is page aligned, BUFS entries long, and lives
        // until `Drop` (after the ring unregisters it).
        unsafe { ring.submitter().register_buf_ring_with_flags(p as u64, BUFS, BGID, 0)? };
        for bid in 0..BUFS {
            br.give(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Returns buffer `bid` to the kernel (published by `publish`).
    fn give(&mut self, bid: u16) {
        let mask = BUFS - 1;
        // SAFETY: the index is masked into the mapping; the slab outlives the ring's use.
        unsafe {
            let e = &mut *self.entries.add(usize::from(self.tail & mask));
            e.set_addr(self.slab.as_ptr().add(usize::from(bid) * BUF_SIZE) as u64);
            e.set_len(BUF_SIZE as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.dirty = true;
    }

    fn publish(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // SAFETY: `tail` points into the first entry's reserved field, which
        // the kernel reads as the ring's tail.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn data(&self, bid: u16, len: usize) -> &[u8] {
        let at = usize::from(bid) * BUF_SIZE;
        &self.slab[at..at + len.min(BUF_SIZE)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.entries.is_null() {
            return;
        }
        // SAFETY: our own mapping; the ring (and with it every receive) is gone.
        unsafe { libc::munmap(self.entries.cast(), self.map_len) };
    }
}

/// One adopted socket.
#[derive(Default)]
struct Slot {
    fd: Option<OwnedFd>,
    gen: u32,
    /// Operations the kernel still holds (receive, send, cancel).
    ops: u32,
    inbox: BytesMut,
    recv_armed: bool,
    /// Receive stopped on purpose (inbox full, closing): not re-armed.
    recv_stopped: bool,
    eof: bool,
    err: Option<io::ErrorKind>,
    read_waker: Option<Waker>,
    send_buf: Vec<u8>,
    send_pos: usize,
    send_inflight: bool,
    write_waker: Option<Waker>,
    /// The stream handle is gone: the slot goes once `ops` is 0.
    orphan: bool,
}

impl Slot {
    fn wake_all(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

/// The shard's ring and the sockets it drives.
pub(crate) struct Reactor {
    ring: RefCell<IoUring>,
    bufs: RefCell<BufRing>,
    efd: OwnedFd,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    /// SQEs that did not fit the submission queue.
    overflow: RefCell<VecDeque<squeue::Entry>>,
    /// Connections whose multishot receive must be armed again (ENOBUFS, or
    /// the inbox drained below the stop mark).
    rearm: RefCell<Vec<(u32, u32)>>,
    waker: RefCell<Option<Waker>>,
    /// The shard is stopping: the reactor task ends.
    stopped: Cell<bool>,
    /// Scratch for one pass's completions.
    cqes: RefCell<Vec<(u64, i32, u32)>>,
    stats: Cell<ReactorStats>,
}

/// Counters of one shard's reactor.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReactorStats {
    /// `io_uring_enter` calls.
    pub(crate) enters: u64,
    /// Completions handled.
    pub(crate) completions: u64,
    /// Multishot receives re-armed after running out of buffers.
    pub(crate) nobufs: u64,
}

thread_local! {
    static REACTOR: RefCell<Option<Result<Rc<Reactor>, String>>> = const { RefCell::new(None) };
}

impl Reactor {
    /// This shard's reactor, set up (and its task spawned) on first use;
    /// `Err` says why the ring is unavailable (the caller keeps glommio's
    /// socket I/O).
    pub(crate) fn get() -> Result<Rc<Reactor>, String> {
        REACTOR.with(|r| {
            let mut r = r.borrow_mut();
            if let Some(x) = &*r {
                return x.clone();
            }
            let made = Reactor::new()
                .map(Rc::new)
                .map_err(|e| format!("io_uring setup failed: {e}"));
            if let Ok(re) = &made {
                crate::exec::spawn(run(re.clone()));
            } else if let Err(e) = &made {
                tracing::warn!(target: "amring", "{e}; using glommio's socket I/O");
            }
            *r = Some(made.clone());
            made
        })
    }

    /// The shard is done: its reactor task ends and the shard lets go of
    /// the ring, which is torn down (see `Drop`) once the last stream
    /// handle is gone too.
    pub(crate) fn shutdown_shard() {
        let r = REACTOR.with(|r| r.borrow_mut().take());
        if let Some(Ok(r)) = r {
            r.stopped.set(true);
            r.kick();
        }
    }

    fn new() -> io::Result<Reactor> {
        let ring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(SQ_ENTRIES * 4)
            .build(SQ_ENTRIES)?;
        // SAFETY: plain eventfd creation; checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned here.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter().register_eventfd(efd.as_raw_fd())?;
        let bufs = BufRing::new(&ring)?;
        Ok(Reactor {
            ring: RefCell::new(ring),
            bufs: RefCell::new(bufs),
            efd,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            overflow: RefCell::new(VecDeque::new()),
            rearm: RefCell::new(Vec::new()),
            waker: RefCell::new(None),
            stopped: Cell::new(false),
            cqes: RefCell::new(Vec::new()),
            stats: Cell::new(ReactorStats::default()),
        })
    }

    /// Takes over a connected socket (its receive starts at once).
    pub(crate) fn adopt(self: &Rc<Self>, fd: OwnedFd) -> UringStream {
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Slot::default());
                (slots.len() - 1) as u32
            }
        };
        let gen = {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[idx as usize];
            let gen = s.gen.wrapping_add(1) & 0x00ff_ffff;
            *s = Slot {
                fd: Some(fd),
                gen,
                ..Slot::default()
            };
            gen
        };
        self.arm_recv(idx, gen);
        UringStream {
            r: self.clone(),
            idx,
            gen,
        }
    }

    /// Empties slot `idx` (closing its socket) for reuse; its generation
    /// stays, so a stale completion cannot match the next socket.
    fn release(&self, idx: u32) {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[idx as usize];
        *s = Slot {
            gen: s.gen,
            ..Slot::default()
        };
        drop(slots);
        self.free.borrow_mut().push(idx);
    }

    fn push(&self, e: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        let mut overflow = self.overflow.borrow_mut();
        if overflow.is_empty() {
            // SAFETY: every buffer an SQE points to lives in a slot or the
            // buffer ring until its completion arrives.
            if unsafe { ring.submission().push(&e) }.is_ok() {
                drop(ring);
                drop(overflow);
                self.kick();
                return;
            }
        }
        overflow.push_back(e);
        drop(ring);
        drop(overflow);
        self.kick();
    }

    /// Wakes the reactor task (new SQEs to submit).
    fn kick(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn arm_recv(&self, idx: u32, gen: u32) {
        let fd = {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[idx as usize];
            if s.gen != gen || s.recv_armed || s.recv_stopped || s.eof || s.err.is_some() {
                return;
            }
            let Some(fd) = s.fd.as_ref().map(AsRawFd::as_raw_fd) else {
                return;
            };
            s.recv_armed = true;
            s.ops += 1;
            fd
        };
        let e = opcode::RecvMulti::new(types::Fd(fd), BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(user_data(idx, gen, OP_RECV));
        self.push(e);
    }

    fn cancel_recv(&self, idx: u32, gen: u32) {
        {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[idx as usize];
            if s.gen != gen || !s.recv_armed {
                return;
            }
            s.ops += 1;
        }
        let e = opcode::AsyncCancel::new(user_data(idx, gen, OP_RECV))
            .build()
            .user_data(user_data(idx, gen, OP_CANCEL));
        self.push(e);
    }

    fn push_send(&self, idx: u32, gen: u32) {
        let e = {
            let slots = self.slots.borrow();
            let s = &slots[idx as usize];
            let Some(fd) = s.fd.as_ref().map(AsRawFd::as_raw_fd) else {
                return;
            };
            let rest = &s.send_buf[s.send_pos..];
            opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(user_data(idx, gen, OP_SEND))
        };
        self.push(e);
    }

    /// One pass: submit what is queued and, when the kernel has completion
    /// work or completions pending, collect and dispatch them. Returns the
    /// number of SQEs submitted plus completions handled.
    fn pass(&self) -> usize {
        let mut done = 0;
        // Several rounds while the SQ overflowed or the CQ ran over.
        for _ in 0..8 {
            let mut ring = self.ring.borrow_mut();
            {
                let mut overflow = self.overflow.borrow_mut();
                let mut sq = ring.submission();
                while let Some(e) = overflow.front() {
                    // SAFETY: see `push`.
                    if unsafe { sq.push(e) }.is_err() {
                        break;
                    }
                    overflow.pop_front();
                }
            }
            let (to_submit, work) = {
                let sq = ring.submission();
                (sq.len(), sq.taskrun() || sq.cq_overflow())
            };
            if to_submit > 0 || work {
                // SAFETY: no argument struct is passed.
                let r = unsafe {
                    ring.submitter()
                        .enter::<libc::sigset_t>(to_submit as u32, 0, ENTER_GETEVENTS, None)
                };
                let mut st = self.stats.get();
                st.enters += 1;
                self.stats.set(st);
                match r {
                    Ok(_) => done += to_submit,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)) => {}
                    Err(e) => tracing::warn!(target: "amring", "io_uring_enter failed: {e}"),
                }
            }
            let mut cqes = self.cqes.borrow_mut();
            cqes.clear();
            cqes.extend(ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            drop(ring);
            if cqes.is_empty() && self.overflow.borrow().is_empty() {
                break;
            }
            done += cqes.len();
            let mut st = self.stats.get();
            st.completions += cqes.len() as u64;
            self.stats.set(st);
            for &(ud, res, flags) in cqes.iter() {
                self.complete(ud, res, flags);
            }
            drop(cqes);
            self.bufs.borrow_mut().publish();
            let rearm = std::mem::take(&mut *self.rearm.borrow_mut());
            for (idx, gen) in rearm {
                self.arm_recv(idx, gen);
            }
        }
        done
    }

    fn complete(&self, ud: u64, res: i32, flags: u32) {
        let (idx, gen, op) = split_user_data(ud);
        let mut slots = self.slots.borrow_mut();
        let Some(s) = slots.get_mut(idx as usize).filter(|s| s.gen == gen) else {
            return;
        };
        match op {
            OP_RECV => {
                let more = cqueue::more(flags);
                if res > 0 {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        let bufs = &mut *self.bufs.borrow_mut();
                        let data = bufs.data(bid, res as usize);
                        // Grown by what arrives, no more: an idle connection
                        // keeps an inbox the size of its last arrival (its
                        // hello, a request), not a fixed block.
                        s.inbox.extend_from_slice(data);
                        bufs.give(bid);
                    }
                    if let Some(w) = s.read_waker.take() {
                        w.wake();
                    }
                } else if res == 0 {
                    s.eof = true;
                    s.wake_all();
                } else if res == -libc::ENOBUFS {
                    let mut st = self.stats.get();
                    st.nobufs += 1;
                    self.stats.set(st);
                } else if res != -libc::ECANCELED {
                    s.err = Some(io::Error::from_raw_os_error(-res).kind());
                    s.wake_all();
                }
                if !more {
                    s.recv_armed = false;
                    s.ops -= 1;
                    // `into_fd` waits for the receive to end.
                    if let Some(w) = s.read_waker.take() {
                        w.wake();
                    }
                    if !s.orphan && !s.recv_stopped && !s.eof && s.err.is_none() {
                        if s.inbox.len() < INBOX_STOP {
                            self.rearm.borrow_mut().push((idx, gen));
                        } else {
                            s.recv_stopped = true;
                        }
                    }
                } else if s.inbox.len() >= INBOX_STOP && !s.recv_stopped {
                    // The driver is not reading: stop receiving (TCP pushes back).
                    s.recv_stopped = true;
                    drop(slots);
                    self.cancel_recv(idx, gen);
                    return;
                }
            }
            OP_SEND => {
                if res < 0 {
                    s.err = Some(io::Error::from_raw_os_error(-res).kind());
                    s.send_inflight = false;
                    s.ops -= 1;
                    s.wake_all();
                } else if res == 0 && s.send_pos < s.send_buf.len() {
                    s.err = Some(io::ErrorKind::WriteZero);
                    s.send_inflight = false;
                    s.ops -= 1;
                    s.wake_all();
                } else {
                    s.send_pos += res as usize;
                    if s.send_pos < s.send_buf.len() {
                        drop(slots);
                        self.push_send(idx, gen);
                        return;
                    }
                    s.send_inflight = false;
                    s.ops -= 1;
                    s.send_buf.clear();
                    s.send_pos = 0;
                    if s.send_buf.capacity() > RELEASE_ABOVE {
                        s.send_buf = Vec::new();
                    }
                    if let Some(w) = s.write_waker.take() {
                        w.wake();
                    }
                }
            }
            _ => s.ops -= 1, // OP_CANCEL
        }
        if s.orphan && s.ops == 0 {
            drop(slots);
            self.release(idx);
        }
    }
}

impl Drop for Reactor {
    /// The shard is gone. Every socket is shut down and every receive
    /// cancelled, and the ring is driven until the kernel returned all
    /// operations, since they point into the buffer ring and the slots'
    /// send buffers; if some never come back (bounded wait), that memory is
    /// leaked rather than freed under the kernel.
    fn drop(&mut self) {
        let live: Vec<(u32, u32, bool)> = self
            .slots
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.ops > 0)
            .map(|(i, s)| (i as u32, s.gen, s.recv_armed))
            .collect();
        for &(idx, gen, armed) in &live {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[idx as usize];
            s.orphan = true;
            if let Some(fd) = &s.fd {
                // SAFETY: shutdown of our own socket.
                unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
            drop(slots);
            if armed {
                self.cancel_recv(idx, gen);
            }
        }
        let busy = |r: &Reactor| r.slots.borrow().iter().any(|s| s.ops > 0);
        for _ in 0..200 {
            if !busy(self) {
                return;
            }
            self.waker.borrow_mut().take();
            if self.pass() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if busy(self) {
            tracing::warn!(target: "amring", "io_uring operations still in flight at shard exit: their buffers are leaked");
            let bufs = std::mem::replace(
                &mut *self.bufs.borrow_mut(),
                BufRing {
                    entries: std::ptr::null_mut(),
                    map_len: 0,
                    slab: Box::new([]),
                    tail: 0,
                    dirty: false,
                },
            );
            std::mem::forget(bufs);
            std::mem::forget(std::mem::take(&mut *self.slots.borrow_mut()));
        }
    }
}

/// The reactor task: passes while there is work, sleeps on the eventfd
/// (through glommio's ring) or until a connection queues an SQE when there
/// is none. The futures live in the task itself (no allocation per sleep).
async fn run(r: Rc<Reactor>) {
    let efd = r.efd.as_raw_fd();
    while !r.stopped.get() {
        r.waker.borrow_mut().take();
        if r.pass() > 0 {
            // More may follow at once: let the woken drivers run first.
            futures_lite::future::yield_now().await;
            continue;
        }
        // Clear the eventfd, then look once more: work flagged between the
        // last pass and the clear is seen here, work after it signals the
        // eventfd again.
        let mut v = 0u64;
        // SAFETY: 8-byte read into a u64 from our nonblocking eventfd.
        let _ = unsafe { libc::read(efd, (&mut v as *mut u64).cast(), 8) };
        if r.pass() > 0 {
            futures_lite::future::yield_now().await;
            continue;
        }
        let kicked = futures_lite::future::poll_fn(|cx| {
            let mut w = r.waker.borrow_mut();
            if w.is_none() && (r.stopped.get() || kicked_since(&r)) {
                return Poll::Ready(());
            }
            *w = Some(cx.waker().clone());
            Poll::Pending
        });
        let readable = async {
            // An error (the ring closed at exit) ends in another pass.
            let _ = glommio::io::wait_readable(efd).await;
        };
        futures_lite::future::or(readable, kicked).await;
    }
}

/// Whether SQEs wait for submission (a kick whose waker was not yet set).
fn kicked_since(r: &Reactor) -> bool {
    !r.overflow.borrow().is_empty() || !r.ring.borrow_mut().submission().is_empty()
}

/// A socket driven by the shard's [`Reactor`].
pub(crate) struct UringStream {
    r: Rc<Reactor>,
    idx: u32,
    gen: u32,
}

impl UringStream {
    fn with<T>(&self, f: impl FnOnce(&mut Slot) -> T) -> T {
        let mut slots = self.r.slots.borrow_mut();
        f(&mut slots[self.idx as usize])
    }

    /// The socket's descriptor.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.with(|s| s.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd))
    }

    /// Moves what arrived into `buf` (taking an inbox above [`SWAP_ABOVE`]
    /// whole when `buf` is empty, copying otherwise); `Ok(0)` is EOF.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let (r, rearm) = self.with(|s| {
            if !s.inbox.is_empty() {
                let n = s.inbox.len();
                if buf.is_empty() && n > SWAP_ABOVE {
                    // A big arrival changes hands instead of being copied.
                    std::mem::swap(buf, &mut s.inbox);
                } else {
                    buf.extend_from_slice(&s.inbox);
                    s.inbox.clear();
                    if s.inbox.capacity() > RELEASE_ABOVE {
                        s.inbox = BytesMut::new();
                    }
                }
                let rearm = std::mem::take(&mut s.recv_stopped) && !s.recv_armed;
                return (Poll::Ready(Ok(n)), rearm);
            }
            if let Some(k) = s.err {
                return (Poll::Ready(Err(k.into())), false);
            }
            if s.eof {
                return (Poll::Ready(Ok(0)), false);
            }
            s.read_waker = Some(cx.waker().clone());
            (Poll::Pending, false)
        });
        if rearm {
            self.r.arm_recv(self.idx, self.gen);
        }
        r
    }

    /// Queues a send of (up to 256 KiB of) `data`; waits while the previous
    /// one is in flight.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = self.with(|s| {
            if let Some(k) = s.err {
                return Poll::Ready(Err(k.into()));
            }
            if s.send_inflight {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = data.len().min(SEND_MAX);
            s.send_buf.clear();
            s.send_buf.extend_from_slice(&data[..n]);
            s.send_pos = 0;
            s.send_inflight = true;
            s.ops += 1;
            Poll::Ready(Ok(n))
        });
        if matches!(r, Poll::Ready(Ok(_))) {
            self.r.push_send(self.idx, self.gen);
        }
        r
    }

    /// Waits (bounded) for a send in flight, then shuts the socket down.
    pub(crate) async fn close(self) {
        let flush = async {
            futures_lite::future::poll_fn(|cx| {
                self.with(|s| {
                    if s.send_inflight && s.err.is_none() {
                        s.write_waker = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
            })
            .await
        };
        let deadline = crate::exec::sleep(CLOSE_FLUSH);
        futures_lite::future::or(flush, deadline).await;
        let fd = self.raw_fd();
        if fd >= 0 {
            // SAFETY: shutdown of our own socket.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// Stops the receive and hands out the socket with the bytes that
    /// arrived but were not read (a v3 resume moving to another shard).
    pub(crate) async fn into_fd(self) -> io::Result<(OwnedFd, BytesMut)> {
        self.with(|s| s.recv_stopped = true);
        self.r.cancel_recv(self.idx, self.gen);
        futures_lite::future::poll_fn(|cx| {
            self.with(|s| {
                if s.recv_armed || s.send_inflight {
                    s.read_waker = Some(cx.waker().clone());
                    s.write_waker = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await;
        let (fd, rest) = self.with(|s| (s.fd.take(), std::mem::take(&mut s.inbox)));
        let fd = fd.ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        // Duplicate so the slot's cleanup cannot close the socket handed out.
        let dup = fd.try_clone()?;
        drop(fd);
        Ok((dup, rest))
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let (idx, gen) = (self.idx, self.gen);
        let (free, cancel) = self.with(|s| {
            s.orphan = true;
            s.read_waker = None;
            s.write_waker = None;
            if s.send_inflight {
                if let Some(fd) = &s.fd {
                    // Abandoned with a send in flight: end it.
                    // SAFETY: shutdown of our own socket.
                    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
                }
            }
            (s.ops == 0, s.recv_armed)
        });
        if free {
            self.r.release(idx);
        } else if cancel {
            self.r.cancel_recv(idx, gen);
        }
    }
}

/// Turns a glommio TCP or Unix stream into one driven by `r` (a duplicate
/// of its descriptor; glommio's copy is dropped). On failure the stream
/// comes back.
pub(crate) fn adopt_socket<S: AsRawFd>(r: &Rc<Reactor>, s: S) -> Result<UringStream, Box<(io::Error, S)>> {
    match dup_socket(&s) {
        Ok(fd) => {
            drop(s);
            Ok(r.adopt(fd))
        }
        Err(e) => Err(Box::new((e, s))),
    }
}

/// A duplicate of `s`'s descriptor, owned by the caller (the socket stays
/// open while either copy does).
pub(crate) fn dup_socket(s: &impl AsRawFd) -> io::Result<OwnedFd> {
    // SAFETY: dup of an open socket we hold.
    let fd = unsafe { libc::dup(s.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor from dup, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
