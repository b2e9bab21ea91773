//! v3 control frames on stream `0xFFFFFFFF` (spec §7.8): ACK and PING.
//!
//! ```text
//!  ACK : 01 | last_recv_seq (u64 BE)      exactly 9 bytes
//!  PING: 02                                exactly 1 byte (never answered)
//! ```
//! Anything else (empty payload, unknown type, wrong length) is a protocol
//! violation that closes the logical connection permanently.

use bytes::BytesMut;

use super::error::ControlError;
use super::frame::{FrameHeader, Version, CONTROL_STREAM_ID, V3_HEADER_LEN};

/// Control type byte of an ACK.
pub const CONTROL_ACK: u8 = 0x01;
/// Control type byte of a PING.
pub const CONTROL_PING: u8 = 0x02;
/// Encoded length of a full ACK frame (header + 9).
pub const ACK_FRAME_LEN: usize = V3_HEADER_LEN + 9;
/// Encoded length of a full PING frame (header + 1).
pub const PING_FRAME_LEN: usize = V3_HEADER_LEN + 1;

/// A decoded control frame payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Cumulative acknowledgement: every data frame with seq ≤ the value was received.
    Ack(u64),
    /// Liveness probe; no reply.
    Ping,
}

impl Control {
    /// Parses a control payload (the receiver ignores the frame's seq field).
    pub fn parse(payload: &[u8]) -> Result<Control, ControlError> {
        match payload.first() {
            None => Err(ControlError::Empty),
            Some(&CONTROL_ACK) => {
                if payload.len() != 9 {
                    return Err(ControlError::AckLength(payload.len()));
                }
                let mut v = [0u8; 8];
                v.copy_from_slice(&payload[1..9]);
                Ok(Control::Ack(u64::from_be_bytes(v)))
            }
            Some(&CONTROL_PING) => {
                if payload.len() != 1 {
                    return Err(ControlError::PingLength(payload.len()));
                }
                Ok(Control::Ping)
            }
            Some(&t) => Err(ControlError::UnknownType(t)),
        }
    }

    /// Appends the full v3 control frame (header with seq 0 + payload) to `dst`.
    pub fn write_frame(&self, dst: &mut BytesMut) {
        let payload_len = match self {
            Control::Ack(_) => 9,
            Control::Ping => 1,
        };
        FrameHeader {
            version: Version::V3,
            flags: 0,
            stream_id: CONTROL_STREAM_ID,
            payload_len,
            seq: 0,
        }
        .write(dst);
        match *self {
            Control::Ack(v) => {
                dst.extend_from_slice(&[CONTROL_ACK]);
                dst.extend_from_slice(&v.to_be_bytes());
            }
            Control::Ping => dst.extend_from_slice(&[CONTROL_PING]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_bytes() {
        let mut b = BytesMut::new();
        Control::Ack(1).write_frame(&mut b);
        assert_eq!(
            b.as_ref(),
            [3, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(b.len(), ACK_FRAME_LEN);
        let mut p = BytesMut::new();
        Control::Ping.write_frame(&mut p);
        assert_eq!(
            p.as_ref(),
            [3, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        assert_eq!(p.len(), PING_FRAME_LEN);
    }

    #[test]
    fn malformed() {
        assert_eq!(Control::parse(&[]), Err(ControlError::Empty));
        assert_eq!(
            Control::parse(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(ControlError::AckLength(8))
        );
        assert_eq!(Control::parse(&[2, 0]), Err(ControlError::PingLength(2)));
        assert_eq!(Control::parse(&[9]), Err(ControlError::UnknownType(9)));
        assert_eq!(Control::parse(&[1, 0, 0, 0, 0, 0, 0, 1, 0]), Ok(Control::Ack(256)));
    }
}
