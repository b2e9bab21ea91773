//! The transport: a glommio TCP or Unix stream behind poll-style read/write,
//! so one driver task can wait for readable bytes and writable space at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::{TcpStream, UnixStream};

use super::uring::{adopt_socket, Reactor, UringStream};

/// Free space offered to one read of an idle or lightly loaded connection.
/// Small, so that 10k idle connections cost little memory (the read buffer
/// of a connection is its biggest per-connection allocation).
const ROOM_MIN: usize = 1024;

/// Largest free space offered to one read. The room doubles each time a read
/// fills it completely and halves when reads use less than a quarter of it,
/// so a busy connection reads in big chunks: delivered payloads are zero-copy
/// slices of the read buffer, and a large room makes the allocation of a
/// fresh buffer (needed while such slices are alive) rare.
pub(crate) const ROOM_MAX: usize = 64 * 1024;

pub(crate) use super::uring::RELEASE_ABOVE;

/// Per-connection read sizing (see [`ROOM_MIN`], [`ROOM_MAX`]).
#[derive(Debug)]
pub(crate) struct ReadRoom {
    /// Bytes the next read is offered.
    room: usize,
}

impl Default for ReadRoom {
    fn default() -> Self {
        ReadRoom { room: ROOM_MIN }
    }
}

impl ReadRoom {
    /// Adapts the room to a read of `n` bytes that was offered `offered` bytes.
    fn observe(&mut self, n: usize, offered: usize) {
        if n == offered {
            self.room = (self.room * 2).min(ROOM_MAX);
        } else if n < self.room / 4 {
            self.room = (self.room / 2).max(ROOM_MIN);
        }
    }
}

/// Size of the scratch buffer glommio reads into (see [`PROBE_BUF`]): the
/// largest room.
const PROBE: usize = ROOM_MAX;

thread_local! {
    /// One read buffer per shard thread, zeroed once and shared by all its
    /// connections (a read copies out of it at once), so reads neither
    /// zero-fill nor allocate per call.
    static PROBE_BUF: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; PROBE].into_boxed_slice());
}

/// Reads through glommio into `room` zeroed bytes of spare room (Unix
/// streams when the shard's ring is off).
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

/// A connected byte stream on this core.
pub(crate) enum Transport {
    /// TCP (options of §1.2 already set).
    Tcp(TcpStream),
    /// Unix stream socket (path or abstract).
    Unix(UnixStream),
    /// TCP driven by the shard's own ring (`super::uring`).
    Uring(UringStream),
}

impl Transport {
    /// With `on`, a TCP or Unix stream moved onto the shard's own ring
    /// (io_uring-native I/O), counted in `adopted`; anything else, or when
    /// the ring is unavailable, unchanged.
    pub(crate) fn native(self, on: bool, adopted: &std::sync::atomic::AtomicU64) -> Transport {
        if !on {
            return self;
        }
        let r = match Reactor::get() {
            Ok(r) => r,
            Err(_) => return self,
        };
        let done = match self {
            Transport::Tcp(s) => adopt_socket(&r, s).map_err(|b| {
                let (e, s) = *b;
                (e, Transport::Tcp(s))
            }),
            Transport::Unix(s) => adopt_socket(&r, s).map_err(|b| {
                let (e, s) = *b;
                (e, Transport::Unix(s))
            }),
            // Already on the ring.
            Transport::Uring(u) => return Transport::Uring(u),
        };
        match done {
            Ok(u) => {
                adopted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Transport::Uring(u)
            }
            Err((e, t)) => {
                tracing::debug!(target: "amring", "io_uring adoption failed ({e}); glommio socket I/O for this connection");
                t
            }
        }
    }

    /// A connected socket handed over from another shard (its previous owner
    /// no longer uses it), as the transport of its kind: Unix when the
    /// socket's domain says so, TCP otherwise.
    pub(crate) fn from_owned_fd(fd: std::os::fd::OwnedFd) -> Transport {
        use std::os::fd::IntoRawFd;
        let unix = socket2::SockRef::from(&fd)
            .domain()
            .is_ok_and(|d| d == socket2::Domain::UNIX);
        let raw = fd.into_raw_fd();
        if unix {
            // SAFETY: an open, connected Unix stream socket, now owned here.
            Transport::Unix(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
        } else {
            // SAFETY: an open, connected TCP socket, now owned here.
            Transport::Tcp(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
        }
    }

    /// Reads once, appending to `buf`; `Ok(0)` is EOF.
    pub(crate) fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        self.poll_read_sized(cx, buf, &mut ReadRoom::default())
    }

    /// [`Transport::poll_read_buf`] for a connection's read loop: `rr` keeps
    /// the adaptive read size between calls. While the socket has nothing to
    /// read, an empty buffer that a burst grew beyond [`RELEASE_ABOVE`] is
    /// released.
    ///
    /// Every read goes through glommio, which keeps the syscalls to the
    /// minimum: with no readiness wait pending it tries one `recv(2)`; a read
    /// that did not fill the room leaves the socket empty, so glommio arms an
    /// io_uring readiness wait right away (submitted with the next batch, no
    /// syscall of its own), and until that wait completes every further call
    /// answers `Pending` without a syscall (a wake by a handler's reply costs
    /// no `recv(2)`). A read that filled the room reads again on the next
    /// call. So a busy connection costs one successful `recv(2)` per burst
    /// and no `EAGAIN` ones. glommio reads into a per-shard scratch buffer
    /// and the bytes are copied once into `buf` (cheaper than zero-filling
    /// `buf`'s spare room for every read).
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
            Transport::Uring(u) => {
                let r = u.poll_read(cx, buf);
                if r.is_pending() && buf.is_empty() && buf.capacity() > RELEASE_ABOVE {
                    *buf = BytesMut::new();
                }
                return r;
            }
        };
        let room = rr.room;
        let r = PROBE_BUF.with(|p| {
            let Ok(mut probe) = p.try_borrow_mut() else {
                // Not reentrant in practice; a fresh buffer keeps it safe.
                let mut probe = vec![0u8; room];
                return read_probe(Pin::new(s), cx, &mut probe, buf);
            };
            read_probe(Pin::new(s), cx, &mut probe[..room], buf)
        });
        match &r {
            Poll::Ready(Ok(n)) => rr.observe(*n, room),
            Poll::Pending => {
                // Nothing readable: an idle connection keeps no grown buffer.
                if buf.is_empty() && buf.capacity() > RELEASE_ABOVE {
                    *buf = BytesMut::new();
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        r
    }

    /// Writes some of `data`.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, data),
            Transport::Uring(u) => u.poll_write(cx, data),
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
            Transport::Uring(u) => u.close().await,
        }
    }
}
