//! Per-stream credit between amring peers (negotiated in the handshake):
//! the sending side's windows, the receiving side's grants.

use bytes::Bytes;

use crate::conn::limits::windows;
use crate::conn::limits::CREDIT_STREAM;
use crate::conn::state::ConnState;
use crate::proto;

impl ConnState {
    /// Per-stream credit: the receiver consumed `len` accounted bytes of
    /// stream `id`; grants them back once a quarter window accumulated.
    pub(crate) fn consumed(&mut self, id: u32, len: usize) {
        if !self.credit {
            return;
        }
        let Some(s) = self.streams.get_mut(&id) else {
            self.grant(id, len as u64);
            return;
        };
        s.credit_consumed += len as u64;
        if s.credit_consumed >= self.own_windows.1 / 4 {
            let n = std::mem::take(&mut s.credit_consumed);
            self.grant(id, n);
        }
    }

    /// Queues a grant of `bytes` on stream `id` to the peer (credit frames
    /// bypass the output limit: they are what lets the peer go on).
    pub(super) fn grant(&mut self, id: u32, bytes: u64) {
        if !self.credit || bytes == 0 || self.closed {
            return;
        }
        let r = self.proto.send(self.clock, CREDIT_STREAM, |buf| {
            bytes::BufMut::put_u32(buf, id);
            bytes::BufMut::put_u64(buf, bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        match r {
            Ok(()) => self.wake_driver(),
            // v3 ring full: keep it for the next grant of the stream.
            Err(_) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.credit_consumed += bytes;
                }
            }
        }
    }

    /// Applies the peer's grants (12-byte records) and wakes waiting senders.
    pub(super) fn apply_grants(&mut self, payload: &Bytes) {
        for rec in payload.chunks_exact(12) {
            let id = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let mut n = [0u8; 8];
            n.copy_from_slice(&rec[4..]);
            let n = u64::from_be_bytes(n);
            self.credit_conn_granted = (self.credit_conn_granted + n).min(self.credit_conn_sent);
            if let Some(s) = self.streams.get_mut(&id) {
                s.credit_granted = (s.credit_granted + n).min(s.credit_sent);
            }
        }
        self.wake_credit();
    }

    /// Wakes senders waiting for per-stream credit (grants arrived, closed).
    pub(super) fn wake_credit(&mut self) {
        for w in self.credit_wakers.drain(..) {
            w.wake();
        }
    }

    /// Per-stream credit: stream `id` has a window's worth of bytes in flight.
    pub(crate) fn credit_blocked(&self, id: u32) -> bool {
        self.credit
            && (self.credit_conn_sent - self.credit_conn_granted >= self.peer_windows.0
                || self
                    .streams
                    .get(&id)
                    .is_some_and(|s| s.credit_sent - s.credit_granted >= self.peer_windows.1))
    }

    /// Applies the handshake's outcome: `peer_flags` is the peer's credit
    /// byte when both ends asked for per-stream credit (0: no credit), and
    /// `own_flags` the byte this end advertised.
    pub(crate) fn set_credit(&mut self, peer_flags: u8, own_flags: u8) {
        self.credit = proto::handshake::credit_window(peer_flags).is_some();
        self.peer_windows = windows(peer_flags);
        self.own_windows = windows(own_flags);
    }
}
