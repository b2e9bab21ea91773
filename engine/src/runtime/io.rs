//! The transport: a glommio TCP or Unix stream behind poll-style read/write,
//! so one driver task can wait for readable bytes and writable space at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::{TcpStream, UnixStream};

/// Smallest free space offered to one read.
const READ_CHUNK: usize = 16 * 1024;

/// A connected byte stream on this core.
pub(crate) enum Transport {
    /// TCP (options of §1.2 already set).
    Tcp(TcpStream),
    /// Unix stream socket (path or abstract).
    Unix(UnixStream),
}

impl Transport {
    /// Reads once into `buf`'s spare capacity (grown to at least 16 KiB).
    /// `Ok(0)` is EOF.
    pub(crate) fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let len = buf.len();
        if buf.capacity() - len < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        // Zero-fill the spare room so it can be handed out as `&mut [u8]`.
        let cap = buf.capacity();
        buf.resize(cap, 0);
        let r = match self {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, &mut buf[len..]),
            Transport::Unix(s) => Pin::new(s).poll_read(cx, &mut buf[len..]),
        };
        let n = match &r {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(len + n);
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
