//! io_uring-native socket I/O for server connections (TCP and Unix
//! sockets), on the ring the shard's executor parks in.
//!
//! * **One place to park.** glommio (patch 12 of the fork, `raw_ring`) lends
//!   this module its main ring: the executor sleeps in one
//!   `io_uring_enter(GETEVENTS, min_complete = 1)` on that ring, and every
//!   operation here completes into it, so a completion wakes the parked
//!   shard as `io_uring_enter(2)` promises ("wait for `min_complete` event
//!   completions"). Completions reach [`Reactor`] through a callback while
//!   the executor reaps the ring: no reactor task, no eventfd, no second
//!   ring. If the executor does not park in one ring (its start-up probe
//!   failed, see `glommio::raw_ring::wake_path`), [`Reactor::get`] says so
//!   and the caller keeps glommio's socket I/O.
//! * **Receive:** one multishot `RECV` per connection (`IORING_RECV_MULTISHOT`,
//!   `io_uring_prep_recv_multishot(3)`), into a provided-buffer ring shared
//!   by the shard's connections (`IORING_REGISTER_PBUF_RING`,
//!   `io_uring_register(2)`). A completion's bytes are copied once into the
//!   connection's inbox (grown by what arrives) and the buffer goes straight
//!   back to the ring; the driver takes an inbox above [`SWAP_ABOVE`] whole
//!   when its read buffer is empty (no second copy) and copies a smaller one
//!   (the inbox keeps its allocation, so a small request allocates nothing).
//!   A connection that does not read (intake paused) stops its receive at
//!   [`INBOX_STOP`] bytes, so TCP pushes back on the peer.
//! * **Send:** a write copies the bytes into the connection's send buffer
//!   and queues one `SEND` SQE; the write counts as done and the next one
//!   waits for its completion (one send in flight per connection, partial
//!   sends resubmitted). The executor hands all queued SQEs to the kernel in
//!   one `io_uring_enter` per reactor pass.
//!
//! glommio stays the executor (tasks, timers, accept, the handshake's
//! timeout); sockets adopted here are driven by these operations only.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use io_uring::{cqueue, opcode, squeue, types};

/// A drained, empty read or write buffer larger than this is released instead
/// of kept while the connection waits (a burst does not pin its buffers on an
/// idle connection).
pub(crate) const RELEASE_ABOVE: usize = 16 * 1024;

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
/// How long a stopping shard waits for the kernel to return its operations.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(1);
/// `IORING_REGISTER_PBUF_RING` / `IORING_UNREGISTER_PBUF_RING`
/// (`io_uring_register(2)`, Linux 5.19).
const REGISTER_PBUF_RING: libc::c_uint = 22;
const UNREGISTER_PBUF_RING: libc::c_uint = 23;
/// How long `close` waits for a send still in flight before it shuts the
/// socket down.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Operation kinds in the low byte of `user_data`.
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;

/// `user_data` of an operation: glommio's raw bit, the slot (31 bits), its
/// generation (24 bits) and the operation kind.
fn user_data(idx: u32, gen: u32, op: u64) -> u64 {
    glommio::raw_ring::RAW_USER_DATA_BIT
        | (u64::from(idx & 0x7fff_ffff) << 32)
        | (u64::from(gen & 0x00ff_ffff) << 8)
        | op
}

fn split_user_data(ud: u64) -> (u32, u32, u64) {
    (
        ((ud >> 32) & 0x7fff_ffff) as u32,
        ((ud >> 8) & 0x00ff_ffff) as u32,
        ud & 0xff,
    )
}

/// `struct io_uring_buf_reg` (`io_uring_register(2)`, `IORING_REGISTER_PBUF_RING`).
#[repr(C)]
struct BufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}

/// `io_uring_register(fd, opcode, arg, 1)`.
fn uring_register(fd: RawFd, opcode: libc::c_uint, arg: &BufReg) -> io::Result<()> {
    // SAFETY: `arg` is a valid `io_uring_buf_reg` for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            opcode,
            arg as *const BufReg,
            1 as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The provided-buffer ring: page-aligned entry ring plus the buffers.
struct BufRing {
    entries: *mut types::BufRingEntry,
    map_len: usize,
    slab: Box<[u8]>,
    /// Local producer tail (published by [`BufRing::publish`]).
    tail: u16,
    dirty: bool,
    /// The ring it is registered with (`-1`: none).
    fd: RawFd,
}

impl BufRing {
    fn new(ring_fd: RawFd) -> io::Result<BufRing> {
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
            fd: -1,
        };
        // The mapping is page aligned, BUFS entries long, and lives until
        // `Drop`, which unregisters it first.
        uring_register(
            ring_fd,
            REGISTER_PBUF_RING,
            &BufReg {
                ring_addr: p as u64,
                ring_entries: u32::from(BUFS),
                bgid: BGID,
                flags: 0,
                resv: [0; 3],
            },
        )?;
        br.fd = ring_fd;
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
        if self.fd >= 0 {
            // No receive uses the group any more (see `Reactor`'s `Drop`).
            let reg = BufReg {
                ring_addr: 0,
                ring_entries: 0,
                bgid: BGID,
                flags: 0,
                resv: [0; 3],
            };
            if let Err(e) = uring_register(self.fd, UNREGISTER_PBUF_RING, &reg) {
                tracing::debug!(target: "amring", "unregistering the buffer ring: {e}");
            }
        }
        // SAFETY: our own mapping; no receive can write to it any more.
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

/// The shard's sockets, driven on the executor's own ring.
pub(crate) struct Reactor {
    /// glommio's main ring, lent for raw operations (`glommio::raw_ring`).
    ring: glommio::raw_ring::RawRing,
    bufs: RefCell<BufRing>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    /// Connections whose multishot receive must be armed again (ENOBUFS, or
    /// the inbox drained below the stop mark), after the batch's returned
    /// buffers are published.
    rearm: RefCell<Vec<(u32, u32)>>,
    stats: Cell<ReactorStats>,
}

/// Counters of one shard's reactor.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReactorStats {
    /// SQEs queued on the executor's ring.
    pub(crate) submitted: u64,
    /// Completions handled.
    pub(crate) completions: u64,
    /// Multishot receives re-armed after running out of buffers.
    pub(crate) nobufs: u64,
}

thread_local! {
    static REACTOR: RefCell<Option<Result<Rc<Reactor>, String>>> = const { RefCell::new(None) };
}

/// Receives the ring's completions for [`Reactor`] (a weak link: the
/// executor's ring must not keep the shard's sockets alive).
struct Completions(RefCell<std::rc::Weak<Reactor>>);

impl glommio::raw_ring::RawCompletions for Completions {
    fn complete(&self, user_data: u64, res: i32, flags: u32) {
        if let Some(r) = self.0.borrow().upgrade() {
            r.complete(user_data, res, flags);
        }
    }

    fn batch_end(&self) {
        if let Some(r) = self.0.borrow().upgrade() {
            r.batch_end();
        }
    }
}

impl Reactor {
    /// This shard's reactor, set up on first use; `Err` says why it is
    /// unavailable (the executor does not park in one ring, see
    /// `glommio::raw_ring::wake_path`), and the caller keeps glommio's socket
    /// I/O. The first failure on a thread is logged once.
    pub(crate) fn get() -> Result<Rc<Reactor>, String> {
        REACTOR.with(|r| {
            let mut r = r.borrow_mut();
            if let Some(x) = &*r {
                return x.clone();
            }
            let made = Reactor::new().map_err(|e| format!("amring's ring I/O is off: {e}"));
            if let Err(e) = &made {
                tracing::warn!(target: "amring", "{e}; using glommio's socket I/O");
            }
            *r = Some(made.clone());
            made
        })
    }

    /// The shard is done: every socket still adopted is shut down and its
    /// receive cancelled, and the shard waits (bounded) until the kernel
    /// returned all operations, since they point into the buffer ring and
    /// the slots' send buffers. The ring is let go of afterwards; what a
    /// stream handle still holds goes with the handle (see `Drop`).
    pub(crate) async fn shutdown_shard() {
        let Some(Ok(r)) = REACTOR.with(|r| r.borrow_mut().take()) else {
            return;
        };
        r.abort_all();
        let end = std::time::Instant::now() + SHUTDOWN_DRAIN;
        while r.busy() && std::time::Instant::now() < end {
            crate::exec::sleep(Duration::from_millis(1)).await;
        }
    }

    fn new() -> io::Result<Rc<Reactor>> {
        let completions = Rc::new(Completions(RefCell::new(std::rc::Weak::new())));
        let ring = glommio::raw_ring::register(completions.clone())?;
        let bufs = BufRing::new(ring.ring_fd())?;
        let r = Rc::new(Reactor {
            ring,
            bufs: RefCell::new(bufs),
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            rearm: RefCell::new(Vec::new()),
            stats: Cell::new(ReactorStats::default()),
        });
        *completions.0.borrow_mut() = Rc::downgrade(&r);
        Ok(r)
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

    /// Queues one SQE on the executor's ring (it reaches the kernel at the
    /// executor's next reactor pass, before it parks at the latest).
    fn push(&self, e: squeue::Entry) {
        // SAFETY: `squeue::Entry` is `repr(C)` around the kernel's 64-byte
        // `io_uring_sqe`; every buffer it points to lives in a slot or the
        // buffer ring until its last completion arrives.
        unsafe {
            let raw = std::mem::transmute::<squeue::Entry, [u8; 64]>(e);
            self.ring.push(raw);
        }
        let mut st = self.stats.get();
        st.submitted += 1;
        self.stats.set(st);
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

    /// The end of a batch of completions: returned buffers go back to the
    /// kernel, then receives that ran out of buffers are armed again.
    fn batch_end(&self) {
        self.bufs.borrow_mut().publish();
        let rearm = std::mem::take(&mut *self.rearm.borrow_mut());
        for (idx, gen) in rearm {
            self.arm_recv(idx, gen);
        }
    }

    fn complete(&self, ud: u64, res: i32, flags: u32) {
        let mut st = self.stats.get();
        st.completions += 1;
        self.stats.set(st);
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

    /// Shuts every adopted socket down and cancels its receive (shard exit).
    fn abort_all(&self) {
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
            s.recv_stopped = true;
            if let Some(fd) = &s.fd {
                // SAFETY: shutdown of our own socket.
                unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
            drop(slots);
            if armed {
                self.cancel_recv(idx, gen);
            }
        }
    }

    /// Whether the kernel still holds operations of this reactor.
    fn busy(&self) -> bool {
        self.slots.borrow().iter().any(|s| s.ops > 0)
    }
}

impl Drop for Reactor {
    /// The last handle is gone. Operations the kernel still holds point into
    /// the buffer ring and the slots' send buffers; that memory is leaked
    /// rather than freed under the kernel (the shard's exit drains them
    /// first, see `shutdown_shard`, so this is the rare case of a stream
    /// that outlived it).
    fn drop(&mut self) {
        if self.busy() {
            tracing::warn!(target: "amring", "io_uring operations still in flight at shard exit: their buffers are leaked");
            let bufs = std::mem::replace(
                &mut *self.bufs.borrow_mut(),
                BufRing {
                    entries: std::ptr::null_mut(),
                    map_len: 0,
                    slab: Box::new([]),
                    tail: 0,
                    dirty: false,
                    fd: -1,
                },
            );
            std::mem::forget(bufs);
            std::mem::forget(std::mem::take(&mut *self.slots.borrow_mut()));
        }
    }
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
