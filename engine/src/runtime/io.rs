//! The transport: a glommio TCP or Unix stream behind poll-style read/write,
//! so one driver task can wait for readable bytes and writable space at once.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::{TcpStream, UnixStream};

/// Free space offered to one read of an idle or lightly loaded connection.
/// Small, so that 10k idle connections cost little memory (the read buffer
/// of a connection is its biggest per-connection allocation).
const ROOM_MIN: usize = 1024;

/// Largest free space offered to one read. The room doubles each time a read
/// fills it completely and halves when reads use less than a quarter of it,
/// so a busy connection reads in big chunks: delivered payloads are zero-copy
/// slices of the read buffer, and a large room makes the allocation of a
/// fresh buffer (needed while such slices are alive) rare.
const ROOM_MAX: usize = 64 * 1024;

/// A drained, empty read or write buffer larger than this is released instead
/// of kept while the connection waits (a burst does not pin its buffers on an
/// idle connection).
pub(crate) const RELEASE_ABOVE: usize = 16 * 1024;

/// Per-connection read sizing (see [`ROOM_MIN`], [`ROOM_MAX`]).
#[derive(Debug)]
pub(crate) struct ReadRoom {
    /// Free space the next read is offered.
    room: usize,
    /// The last read did not fill the room offered (the socket is most likely
    /// empty), or glommio's readiness wait is armed: the next call goes
    /// straight to glommio, saving a `recv(2)` that would only say `EAGAIN`.
    /// Sticky while the wait is pending (glommio then answers without a
    /// syscall); cleared once a read through glommio fills its probe.
    drained: bool,
    /// The last read was a burst (at least [`EAGER_FROM`] bytes): the peer
    /// pipelines, so a wake while the readiness wait is armed tries one
    /// `recv(2)` anyway (bytes are likely there before glommio reports them).
    eager: bool,
}

/// Reads of at least this many bytes make the next wake read eagerly.
const EAGER_FROM: usize = 512;

impl Default for ReadRoom {
    fn default() -> Self {
        ReadRoom {
            room: ROOM_MIN,
            drained: false,
            eager: false,
        }
    }
}

impl ReadRoom {
    /// Adapts the room to a read of `n` bytes that was offered `offered` bytes.
    fn observe(&mut self, n: usize, offered: usize) {
        self.drained = n > 0 && n < offered;
        self.eager = n >= EAGER_FROM;
        if n == offered {
            self.room = (self.room * 2).min(ROOM_MAX);
        } else if n < self.room / 4 {
            self.room = (self.room / 2).max(ROOM_MIN);
        }
    }
}

/// Size of the scratch buffer handed to glommio when it has to wait for
/// readability (it reads into it itself once the wait completed). Big enough
/// that a pipelined burst arrives in one read.
const PROBE: usize = 16 * 1024;

thread_local! {
    /// One probe buffer per shard thread, zeroed once and shared by all its
    /// connections (a read copies out of it at once), so the readiness path
    /// neither zero-fills nor allocates per call.
    static PROBE_BUF: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; PROBE].into_boxed_slice());
}

/// Reads through glommio into `room` zeroed bytes of spare room (Unix
/// streams: glommio does not expose their descriptor).
fn poll_read_zeroed(
    s: Pin<&mut UnixStream>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    room: usize,
) -> Poll<io::Result<usize>> {
    let len = buf.len();
    buf.resize(len + room, 0);
    let r = s.poll_read(cx, &mut buf[len..]);
    let n = match &r {
        Poll::Ready(Ok(n)) => *n,
        _ => 0,
    };
    buf.truncate(len + n);
    r
}

/// Reads through glommio into `probe` and appends what it got to `buf`.
fn read_probe(
    s: Pin<&mut TcpStream>,
    cx: &mut Context<'_>,
    probe: &mut [u8],
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let r = s.poll_read(cx, probe);
    if let Poll::Ready(Ok(n)) = &r {
        buf.extend_from_slice(&probe[..*n]);
    }
    r
}

/// One non-blocking `recv(2)` into `buf`'s spare capacity; the bytes read
/// are appended to `buf`.
fn recv_spare(fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is valid for writes of `spare.len()` bytes (it is
    // `MaybeUninit<u8>`, so the kernel may write anything there) and lives
    // for the whole call.
    let r = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), libc::MSG_DONTWAIT) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = r as usize;
    debug_assert!(n <= spare.len());
    // SAFETY: the kernel initialised the first `n` bytes of the spare
    // capacity, and `n <= spare.len()`.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// A connected byte stream on this core.
pub(crate) enum Transport {
    /// TCP (options of §1.2 already set).
    Tcp(TcpStream),
    /// Unix stream socket (path or abstract).
    Unix(UnixStream),
}

impl Transport {
    /// Reads once into `buf`'s spare capacity (at least [`ROOM_MIN`] of it).
    /// `Ok(0)` is EOF.
    ///
    /// Hot path: one non-blocking `recv(2)` straight into the uninitialised
    /// spare capacity (no zero-fill, no allocation). Only when the socket has
    /// nothing does glommio get involved, to wait for readability.
    pub(crate) fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        self.poll_read_sized(cx, buf, &mut ReadRoom::default())
    }

    /// [`Transport::poll_read_buf`] for a connection's read loop: `rr` keeps
    /// the adaptive read size and the "socket drained" hint between calls.
    /// While the socket has nothing to read, an empty buffer that a burst
    /// grew beyond [`RELEASE_ABOVE`] is released.
    pub(crate) fn poll_read_sized(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        rr: &mut ReadRoom,
    ) -> Poll<io::Result<usize>> {
        // Reserve only when the free space is down to a quarter of the room:
        // while a delivered payload (a slice of this buffer) is still alive,
        // a reserve allocates a fresh buffer, so it must be rare, not per read.
        if buf.capacity() - buf.len() < rr.room / 4 {
            buf.reserve(rr.room);
        }
        let s = match self {
            Transport::Tcp(s) => s,
            Transport::Unix(s) => return poll_read_zeroed(Pin::new(s), cx, buf, rr.room),
        };
        if !rr.drained || rr.eager {
            loop {
                let offered = buf.capacity() - buf.len();
                match recv_spare(s.as_raw_fd(), buf) {
                    Ok(n) => {
                        rr.observe(n, offered);
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        // Nothing readable: an idle connection keeps no grown buffer.
        if buf.is_empty() && buf.capacity() > RELEASE_ABOVE {
            *buf = BytesMut::new();
        }
        // Let glommio arm a readiness poll. It tries one read itself first;
        // bytes that raced in land in `probe` and are appended.
        //
        // `drained` stays set: while the readiness wait is pending, glommio
        // answers `Pending` without a syscall (a wake by a handler's reply
        // costs no `recv(2)`), and once it completed glommio reads itself.
        // A read that did not fill the probe leaves the socket empty and
        // glommio already re-armed the wait; a full probe means more may be
        // queued, so the next call reads straight into `buf` again.
        rr.drained = true;
        let r = PROBE_BUF.with(|p| {
            let Ok(mut probe) = p.try_borrow_mut() else {
                // Not reentrant in practice; a fresh buffer keeps it safe.
                let mut probe = vec![0u8; PROBE];
                return read_probe(Pin::new(s), cx, &mut probe, buf);
            };
            read_probe(Pin::new(s), cx, &mut probe, buf)
        });
        match &r {
            Poll::Ready(Ok(n)) => {
                rr.drained = *n > 0 && *n < PROBE;
                rr.eager = *n >= EAGER_FROM;
            }
            Poll::Ready(Err(_)) => rr.drained = false,
            Poll::Pending => {}
        }
        r
    }

    /// Writes some of `data`.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    /// Writes all of `data`.
    pub(crate) async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = poll_fn(|cx| self.poll_write(cx, data)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Reads once, appending to `buf`; `Ok(0)` is EOF.
    pub(crate) async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_buf(cx, buf)).await
    }

    /// Closes the write side and drops the socket.
    pub(crate) async fn close(self) {
        match self {
            Transport::Tcp(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both).await;
            }
            Transport::Unix(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both).await;
            }
        }
    }
}
