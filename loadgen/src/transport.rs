//! Dialing: TCP (optionally from one of several 127.0.0.x source addresses)
//! or Unix sockets, wrapped in one enum so a connection task is not generic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpStream, UnixStream};

use crate::opts::Target;

/// Connections per 127.0.0.x source address when the target is on loopback
/// and the run needs more than one port range (the ephemeral range here is
/// 32768–60999, ~28k ports).
pub const CONNS_PER_SOURCE: usize = 25_000;

/// A dialed connection.
#[derive(Debug)]
pub enum Transport {
    /// TCP (TCP_NODELAY set).
    Tcp(TcpStream),
    /// Unix stream socket.
    Unix(UnixStream),
}

impl Transport {
    /// Reads some bytes; `Ok(0)` is EOF.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf).await,
            Transport::Unix(s) => s.read(buf).await,
        }
    }

    /// Reads exactly `buf.len()` bytes.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.read_exact(buf).await,
            Transport::Unix(s) => s.read_exact(buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            Transport::Unix(s) => s.write_all(buf).await,
        }
    }
}

/// Source address for connection `index` of `total` to `dst`: `None` (let
/// the kernel choose) unless the target is IPv4 loopback and `total` exceeds
/// one source address's share.
pub fn source_addr(dst: &SocketAddr, index: usize, total: usize) -> Option<IpAddr> {
    match dst.ip() {
        IpAddr::V4(ip) if ip.is_loopback() && total > CONNS_PER_SOURCE => {
            let n = (index / CONNS_PER_SOURCE) as u32 + 1;
            let n = n.min(254) as u8;
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        }
        _ => None,
    }
}

/// Dials connection `index` of `total` to `target`.
pub async fn dial(target: &Target, index: usize, total: usize) -> io::Result<Transport> {
    match target {
        Target::Tcp(addr) => {
            let s = match source_addr(addr, index, total) {
                None => TcpStream::connect(*addr).await.map_err(io::Error::from)?,
                Some(src) => connect_from(*addr, src)?,
            };
            s.set_nodelay(true).map_err(io::Error::from)?;
            Ok(Transport::Tcp(s))
        }
        Target::Uds(path) => {
            if path.to_str().is_some_and(|p| p.starts_with('@')) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "abstract unix sockets are not supported by loadgen",
                ));
            }
            let s = UnixStream::connect(Path::new(path)).await.map_err(io::Error::from)?;
            Ok(Transport::Unix(s))
        }
    }
}

/// Non-blocking connect from `src`; the connection completes in the
/// background and the first write waits for it (Linux `tcp_sendmsg` waits
/// for the handshake, io_uring retries on readiness).
fn connect_from(dst: SocketAddr, src: IpAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is a connected (or connecting) TCP socket whose
    // ownership moves into the glommio stream.
    Ok(unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_only_beyond_one_range() {
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(source_addr(&lo, 5, 10_000), None);
        assert_eq!(
            source_addr(&lo, 0, 60_000),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)))
        );
        assert_eq!(
            source_addr(&lo, 30_000, 60_000),
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        );
        let remote: SocketAddr = "10.0.0.1:9".parse().unwrap();
        assert_eq!(source_addr(&remote, 30_000, 60_000), None);
    }
}
