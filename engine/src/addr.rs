//! Transport addresses as the reference parses them (spec §1.1).
//!
//! | Form | Transport |
//! |---|---|
//! | `tcp://HOST:PORT` | TCP to `HOST:PORT` |
//! | `uds://PATH`, `unix://PATH` | Unix stream socket at `PATH` |
//! | `uds://@NAME`, `unix://@NAME` | Linux abstract Unix socket `\0NAME` |
//! | anything else | TCP, the whole string verbatim |
//!
//! Prefix matching is literal and case-sensitive. An unknown scheme is not
//! rejected here: like the reference, `http://127.0.0.1:1` goes to the TCP
//! resolver and fails there.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::Error;

/// A parsed transport address (dial or listen).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// TCP: `host:port` (host name, IPv4 or `[IPv6]`), resolved when used.
    Tcp(String),
    /// Unix stream socket on a filesystem path.
    Unix(PathBuf),
    /// Linux abstract Unix socket; the name without the leading NUL.
    Abstract(String),
}

impl Addr {
    /// Parses an address string with the reference's rules (never fails for
    /// TCP forms; resolution errors surface when the address is used).
    pub fn parse(s: &str) -> Result<Addr, Error> {
        let rest = s.strip_prefix("uds://").or_else(|| s.strip_prefix("unix://"));
        if let Some(rest) = rest {
            if let Some(name) = rest.strip_prefix('@') {
                return Ok(Addr::Abstract(name.to_owned()));
            }
            if rest.is_empty() {
                return Err(Error::InvalidAddress(s.to_owned()));
            }
            return Ok(Addr::Unix(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            return Ok(Addr::Tcp(rest.to_owned()));
        }
        Ok(Addr::Tcp(s.to_owned()))
    }

    /// Resolves a TCP address to its first socket address.
    pub(crate) fn resolve_tcp(host_port: &str) -> Result<SocketAddr, Error> {
        host_port
            .to_socket_addrs()
            .map_err(Error::Io)?
            .next()
            .ok_or_else(|| Error::InvalidAddress(host_port.to_owned()))
    }

    /// The `socket2` address of a Unix form (`None` for TCP).
    pub(crate) fn unix_sockaddr(&self) -> Option<std::io::Result<socket2::SockAddr>> {
        match self {
            Addr::Tcp(_) => None,
            Addr::Unix(p) => Some(socket2::SockAddr::unix(p)),
            Addr::Abstract(name) => {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0u8);
                bytes.extend_from_slice(name.as_bytes());
                use std::os::unix::ffi::OsStringExt;
                let p = PathBuf::from(std::ffi::OsString::from_vec(bytes));
                Some(socket2::SockAddr::unix(p))
            }
        }
    }
}

impl std::str::FromStr for Addr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Addr, Error> {
        Addr::parse(s)
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(hp) => write!(f, "tcp://{hp}"),
            Addr::Unix(p) => write!(f, "uds://{}", p.display()),
            Addr::Abstract(n) => write!(f, "uds://@{n}"),
        }
    }
}

/// An address a server actually listens on (port 0 resolved).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BoundAddr {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An abstract Unix socket name (without the NUL).
    Abstract(String),
}

impl BoundAddr {
    /// The TCP socket address, if this is TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            BoundAddr::Tcp(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for BoundAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundAddr::Tcp(a) => write!(f, "tcp://{a}"),
            BoundAddr::Unix(p) => write!(f, "uds://{}", p.display()),
            BoundAddr::Abstract(n) => write!(f, "uds://@{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_forms() {
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:80").unwrap(),
            Addr::Tcp("127.0.0.1:80".into())
        );
        assert_eq!(Addr::parse("127.0.0.1:80").unwrap(), Addr::Tcp("127.0.0.1:80".into()));
        assert_eq!(Addr::parse("[::1]:9").unwrap(), Addr::Tcp("[::1]:9".into()));
        assert_eq!(
            Addr::parse("uds:///tmp/x.sock").unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Addr::parse("unix:///tmp/x.sock").unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(Addr::parse("uds://@name").unwrap(), Addr::Abstract("name".into()));
        assert_eq!(Addr::parse("unix://@n2").unwrap(), Addr::Abstract("n2".into()));
        // Case-sensitive, literal prefixes: anything else is TCP verbatim.
        assert_eq!(Addr::parse("UDS:///x").unwrap(), Addr::Tcp("UDS:///x".into()));
        assert_eq!(
            Addr::parse("http://127.0.0.1:1").unwrap(),
            Addr::Tcp("http://127.0.0.1:1".into())
        );
        assert!(matches!(Addr::parse("uds://"), Err(Error::InvalidAddress(_))));
    }

    #[test]
    fn unknown_scheme_fails_at_resolution() {
        assert!(Addr::resolve_tcp("http://127.0.0.1:1").is_err());
        assert_eq!(
            Addr::resolve_tcp("127.0.0.1:7").unwrap(),
            "127.0.0.1:7".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn abstract_sockaddr_has_leading_nul() {
        let a = Addr::Abstract("amring-test".into()).unix_sockaddr().unwrap().unwrap();
        let sun = a.as_pathname();
        // Abstract names have no pathname.
        assert!(sun.is_none());
        assert!(Addr::Tcp("x:1".into()).unix_sockaddr().is_none());
        let p = Addr::Unix("/tmp/a.sock".into()).unix_sockaddr().unwrap().unwrap();
        assert_eq!(p.as_pathname().unwrap(), std::path::Path::new("/tmp/a.sock"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["tcp://1.2.3.4:5", "uds:///tmp/s", "uds://@abc"] {
            assert_eq!(Addr::parse(s).unwrap().to_string(), s);
        }
    }
}
