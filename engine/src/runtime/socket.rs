//! Socket setup with socket2 (spec §1.2): listeners with SO_REUSEADDR +
//! SO_REUSEPORT and a configurable backlog, and the reference's per-connection
//! options (TCP_NODELAY, keep-alive 15 s idle / 15 s interval).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, TcpKeepalive, Type};

use std::os::fd::AsRawFd;

use crate::addr::Addr;
use crate::error::Error;
use crate::runtime::io::Transport;

/// Keep-alive idle time and interval, as the Go runtime sets them.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// A bound, listening, nonblocking TCP socket with SO_REUSEPORT so that every
/// shard can own one on the same address (the kernel spreads connections).
pub(crate) fn tcp_listener(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(backlog)?;
    Ok(sock)
}

/// A bound, listening Unix socket (path or abstract name) with the given
/// backlog (the kernel clamps it to `net.core.somaxconn`).
///
/// Unix sockets have no SO_REUSEPORT: the server binds one socket and hands a
/// duplicate of its fd to every shard, which all accept on it. The socket
/// stays blocking: glommio accepts Unix sockets through io_uring, which waits
/// for a connection itself.
pub(crate) fn unix_listener(addr: &Addr, backlog: i32) -> io::Result<Socket> {
    let sa = match addr.unix_sockaddr() {
        Some(sa) => sa?,
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a unix address")),
    };
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.bind(&sa)?;
    sock.listen(backlog)?;
    Ok(sock)
}

/// Options of an accepted or dialed TCP socket (spec §1.2).
pub(crate) fn tune_tcp(sock: &Socket) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let ka = TcpKeepalive::new().with_time(KEEPALIVE).with_interval(KEEPALIVE);
    sock.set_tcp_keepalive(&ka)?;
    Ok(())
}

/// Takes ownership of a raw fd as a socket2 socket (for option setting).
pub(crate) fn borrow_tune_tcp(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller; the temporary
    // `Socket` is turned back into a raw fd without closing it.
    let sock = unsafe { Socket::from_raw_fd(fd) };
    let r = tune_tcp(&sock);
    let _ = sock.into_raw_fd();
    r
}

/// Dials a Unix socket (path or abstract) synchronously; local connects
/// complete immediately or fail. Returns a nonblocking socket.
pub(crate) fn unix_connect(addr: &Addr) -> io::Result<Socket> {
    let sa = match addr.unix_sockaddr() {
        Some(sa) => sa?,
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a unix address")),
    };
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.connect(&sa)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Connects to `addr` (TCP with the reference's socket options, or a Unix
/// socket): the transport a client handshake runs on.
pub(crate) async fn dial(addr: &Addr) -> Result<Transport, Error> {
    match addr {
        Addr::Tcp(hp) => {
            let sa = Addr::resolve_tcp(hp)?;
            let s = glommio::net::TcpStream::connect(sa)
                .await
                .map_err(std::io::Error::from)?;
            borrow_tune_tcp(s.as_raw_fd())?;
            Ok(Transport::Tcp(s))
        }
        Addr::Unix(_) | Addr::Abstract(_) => {
            let s = unix_connect(addr)?;
            // SAFETY: `s` is a connected Unix stream socket we own.
            Ok(Transport::Unix(unsafe {
                glommio::net::UnixStream::from_raw_fd(s.into_raw_fd())
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_lets_two_listeners_share_a_port() {
        let a = tcp_listener("127.0.0.1:0".parse().unwrap(), 128).unwrap();
        let port = a.local_addr().unwrap().as_socket().unwrap().port();
        let b = tcp_listener(SocketAddr::from(([127, 0, 0, 1], port)), 128).unwrap();
        assert!(a.reuse_port().unwrap() && b.reuse_port().unwrap());
        assert!(a.reuse_address().unwrap());
        assert_eq!(b.local_addr().unwrap().as_socket().unwrap().port(), port);
    }

    #[test]
    fn dialed_socket_gets_reference_options() {
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = l.local_addr().unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.connect(&addr).unwrap();
        tune_tcp(&c).unwrap();
        assert!(c.nodelay().unwrap());
        assert!(c.keepalive().unwrap());
        assert_eq!(c.keepalive_time().unwrap(), KEEPALIVE);
        assert_eq!(c.keepalive_interval().unwrap(), KEEPALIVE);
    }

    #[test]
    fn abstract_unix_listen_and_connect() {
        let name = format!("amring-sock-test-{}", std::process::id());
        let addr = Addr::Abstract(name);
        let _l = unix_listener(&addr, 16).unwrap();
        let c = unix_connect(&addr).unwrap();
        assert!(c.peer_addr().is_ok());
        // A second listener on the same abstract name fails (no REUSEPORT for UDS).
        assert!(unix_listener(&addr, 16).is_err());
    }
}
