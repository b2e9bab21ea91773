//! Client side of the v2 handshake (spec §2.1, §2.2, §2.8), sans-IO.
//!
//! Temporary: `amring::proto::handshake::ClientHandshake` is being written in
//! parallel; once merged, [`ClientHello`] is replaced by it. The bytes are the
//! reference's: `41 4d <ver> <count> 00 000000 <max_frame> <codecs…>`.

use amring::codec::CodecKind;
use amring::proto::Version;

/// Length of the server's handshake reply.
pub const REPLY_LEN: usize = 12;

/// Why the handshake failed (texts mirror the reference's errors, spec §8.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The reply did not start with `AM`.
    #[error("bad handshake magic")]
    BadMagic,
    /// The reply carried another version than the hello.
    #[error("unsupported frame version: {0}")]
    UnsupportedVersion(u8),
    /// The server refused (also what "no common codec" looks like).
    #[error("handshake rejected")]
    Rejected,
    /// The server selected a codec that was not offered.
    #[error("no common codec")]
    NoCommonCodec,
    /// The connection ended before the 12-byte reply.
    #[error("unexpected EOF")]
    Eof,
}

/// Result of a successful handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Protocol version of the connection.
    pub version: Version,
    /// Selected codec.
    pub codec: CodecKind,
    /// Negotiated payload limit, enforced both ways.
    pub max_frame: u32,
}

/// The hello a client sends, and the check of the reply.
#[derive(Clone, Copy, Debug)]
pub struct ClientHello {
    version: Version,
    codec: CodecKind,
    max_frame: u32,
}

impl ClientHello {
    /// A hello offering exactly `codec`.
    pub fn new(version: Version, codec: CodecKind, max_frame: u32) -> ClientHello {
        ClientHello {
            version,
            codec,
            max_frame,
        }
    }

    /// Appends the hello bytes (header and codec list) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x41, 0x4d, self.version.as_u8(), 1, 0, 0, 0, 0]);
        out.extend_from_slice(&self.max_frame.to_be_bytes());
        out.push(self.codec.id());
    }

    /// Checks the 12-byte reply in the reference's order (§2.8).
    pub fn check_reply(&self, r: &[u8; REPLY_LEN]) -> Result<Negotiated, HandshakeError> {
        if r[0..2] != [0x41, 0x4d] {
            return Err(HandshakeError::BadMagic);
        }
        if r[3] != self.version.as_u8() {
            return Err(HandshakeError::UnsupportedVersion(r[3]));
        }
        if r[2] == 0 {
            return Err(HandshakeError::Rejected);
        }
        if r[4] != self.codec.id() {
            return Err(HandshakeError::NoCommonCodec);
        }
        Ok(Negotiated {
            version: self.version,
            codec: self.codec,
            max_frame: u32::from_be_bytes([r[8], r[9], r[10], r[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_bytes() {
        let mut v = Vec::new();
        ClientHello::new(Version::V2, CodecKind::Compact, u32::MAX).write(&mut v);
        assert_eq!(v, [0x41, 0x4d, 2, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1]);
    }

    #[test]
    fn reply_checks_in_reference_order() {
        let h = ClientHello::new(Version::V2, CodecKind::Map, u32::MAX);
        let ok = [0x41, 0x4d, 1, 2, 2, 0, 0, 0, 0, 0, 0x10, 0];
        assert_eq!(
            h.check_reply(&ok),
            Ok(Negotiated {
                version: Version::V2,
                codec: CodecKind::Map,
                max_frame: 4096
            })
        );
        let mut bad = ok;
        bad[0] = b'X';
        assert_eq!(h.check_reply(&bad), Err(HandshakeError::BadMagic));
        // Version is checked before accept.
        let rej3 = [0x41, 0x4d, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(h.check_reply(&rej3), Err(HandshakeError::UnsupportedVersion(3)));
        let rej = [0x41, 0x4d, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(h.check_reply(&rej), Err(HandshakeError::Rejected));
        let other = [0x41, 0x4d, 1, 2, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(h.check_reply(&other), Err(HandshakeError::NoCommonCodec));
    }
}
