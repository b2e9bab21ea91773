//! The sans-IO connection: frames in, frames out, for v2 and v3.
//!
//! One [`Connection`] per *logical* connection. It owns the frame decoder and
//! encoder of the current transport, the outbound transmit buffer and, in v3,
//! the recovery state (sequence numbers, ACK policy, heartbeat deadlines and
//! the replay ring), which survives transports. It never touches a socket, a
//! clock or a task: the runtime passes `now`, feeds read bytes, drains
//! transmit bytes, and arms one timer at [`Connection::poll_timeout`].
//!
//! Driver loop of the runtime (per wake):
//! ```text
//!   read → handle_input(now, &mut rbuf) until Ok(None)  → route each Delivered
//!   timer → handle_timeout(now)
//!   app sends → send(stream, |buf| codec.encode(..))
//!   poll_transmit(now, &mut wbuf) → one write of wbuf
//!     (or poll_transmit_within(now, &mut wbuf, budget): a v3 replay backlog in bounded pieces)
//!   arm timer at poll_timeout(); drain poll_event()
//! ```
//!
//! v3 transport life cycle (the runtime owns sockets and the attach exchange):
//! ```text
//!   read/write error, EOF, Err(Frame), Err(HeartbeatTimeout) → detach(now), drop socket + read buffer
//!   resume exchange: put last_recv_seq() into the attach request/response,
//!                    then attach(now, peer's last_recv_seq) on the new transport
//!   any error with is_permanent() → the logical connection is closed (session dropped)
//! ```
//!
//! Method groups follow quinn-proto: getters, `handle_*`, mutators, `poll_*`.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::control::Control;
use super::error::ConnError;
use super::error::{ControlError, FrameError};
use super::frame::{EncodeFrameError, FrameDecoder, FrameEncoder, Version, CONTROL_STREAM_ID};
use super::recovery::{write_close_frame, LinkState, Recovery, RecoveryDebug, RecoveryParams, Role, CONTROL_CLOSE};

/// Configuration of a [`Connection`], fixed by the handshake (and attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Client or server.
    pub role: Role,
    /// Negotiated protocol version.
    pub version: Version,
    /// Negotiated max_frame, enforced both ways.
    pub max_frame: u32,
    /// v3 only: the negotiated recovery parameters.
    pub recovery: Option<RecoveryParams>,
}

/// A data frame delivered in order (v3: exactly once) to the layer above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Stream the payload belongs to.
    pub stream_id: u32,
    /// The payload: a zero-copy slice of the read buffer.
    pub payload: Bytes,
}

/// Byte and frame counters of the connection (feed §8.2 counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames handed to transmit (control and replayed frames included).
    pub frames_written: u64,
    /// Bytes handed to transmit.
    pub bytes_written: u64,
    /// Complete frames read (control frames and duplicates included).
    pub frames_read: u64,
    /// Bytes of complete frames read.
    pub bytes_read: u64,
    /// Control frames written (v3: ACK/PING).
    pub control_frames_written: u64,
    /// Frames read on stream `0xFFFFFFFF`.
    pub control_frames_read: u64,
}

/// Why a send was refused. Nothing of the frame was queued, and (v3) no
/// sequence number was consumed.
#[derive(Debug, thiserror::Error)]
pub enum SendError<E> {
    /// The payload writer (codec) failed.
    #[error("encode failed: {0}")]
    Encode(E),
    /// The payload exceeds the negotiated max_frame.
    #[error(transparent)]
    Frame(FrameError),
    /// v3: retaining the frame would exceed the replay bound.
    #[error("replay buffer full: size={size} limit={limit}")]
    ReplayFull {
        /// Accounted bytes the ring would hold with this frame.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// The logical connection is closed.
    #[error("connection closed")]
    Closed,
}

/// What the last [`Connection::poll_transmit`] wrote, so that a driver can
/// name the stage of a failed write (spec §8.3 `recovery.*_write` codes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransmitKinds {
    /// A v3 ACK control frame.
    pub ack: bool,
    /// Frames replayed after a resume.
    pub replay: bool,
    /// New data frames (and, in v3, a graceful CLOSE).
    pub data: bool,
    /// A v3 PING control frame.
    pub ping: bool,
}

/// Something the layer above should know about, from [`Connection::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ACK (or a resume) trimmed the replay ring after a send had failed
    /// with [`SendError::ReplayFull`]: senders waiting for room may retry.
    ReplayRoom,
}

/// The sans-IO connection. See the module docs for the driver contract.
#[derive(Debug)]
pub struct Connection {
    config: ConnConfig,
    encoder: FrameEncoder,
    /// Decoder of the current transport (reset on detach/attach).
    decoder: FrameDecoder,
    /// Encoded frames not yet handed to [`Connection::poll_transmit`].
    /// Invariant: holds exactly `tx_frames` whole frames.
    tx: BytesMut,
    tx_frames: u64,
    tx_control: u64,
    stats: TransportStats,
    /// v3 only.
    recovery: Option<Recovery>,
    /// What the last `poll_transmit` wrote.
    last_tx: TransmitKinds,
    /// v2: permanently closed (v3 keeps it in `recovery`).
    v2_closed: bool,
}

impl Connection {
    /// A connection whose transport has just completed the handshake (and attach).
    ///
    /// A v3 `config` without `recovery` parameters uses [`RecoveryParams::default`].
    pub fn new(config: ConnConfig, now: Instant) -> Connection {
        let recovery = match config.version {
            Version::V2 => None,
            Version::V3 => Some(Recovery::new(config.recovery.unwrap_or_default(), now)),
        };
        Connection {
            encoder: FrameEncoder::new(config.version, config.max_frame),
            decoder: FrameDecoder::new(config.version, config.max_frame),
            config,
            tx: BytesMut::new(),
            tx_frames: 0,
            tx_control: 0,
            stats: TransportStats::default(),
            recovery,
            last_tx: TransmitKinds::default(),
            v2_closed: false,
        }
    }

    // ---- getters ----

    /// The fixed configuration.
    pub fn config(&self) -> &ConnConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Releases buffers an idle connection does not need: the transmit buffer
    /// when it is empty and larger than `keep` bytes, and (v3) the replay
    /// ring's encode arena when nothing is retained. Called by the runtime
    /// after everything was written; the next send allocates again.
    pub fn shrink_buffers(&mut self, keep: usize) {
        if self.tx.is_empty() && self.tx.capacity() > keep {
            self.tx = BytesMut::new();
        }
        if let Some(r) = self.recovery.as_mut() {
            r.release_idle(keep);
        }
    }

    /// Bytes of frames queued and not yet handed to [`Connection::poll_transmit`].
    pub fn queued_bytes(&self) -> usize {
        self.tx.len()
    }

    /// Bytes still missing of the frame being read, when its header is in
    /// and its payload is not complete: lets a runtime size its read buffer
    /// once from the header instead of growing it read by read.
    pub fn pending_frame_remaining(&self, buffered: usize) -> Option<usize> {
        self.decoder.pending_len().map(|total| total.saturating_sub(buffered))
    }

    /// v3: true while frames of a resume's replay backlog wait for
    /// [`Connection::poll_transmit`] (always `false` in v2 and while
    /// detached). New frames cannot go out before them.
    pub fn replay_pending(&self) -> bool {
        self.recovery
            .as_ref()
            .is_some_and(|r| r.state() == LinkState::Attached && r.resume_queue_depth() > 0)
    }

    /// True when bytes are waiting for [`Connection::poll_transmit`] (queued
    /// frames, frames to replay, or an ACK due immediately).
    pub fn has_transmit(&self) -> bool {
        if !self.tx.is_empty() {
            return true;
        }
        match &self.recovery {
            Some(r) if r.state() == LinkState::Attached => r.resume_queue_depth() > 0 || r.ack_due_now(),
            _ => false,
        }
    }

    /// True when data frames (new or to replay) wait for
    /// [`Connection::poll_transmit`]; a due ACK or PING alone does not count.
    /// Lets a driver hold back a lone ACK for one scheduling round so that it
    /// rides along with the replies its frames trigger.
    pub fn has_data_transmit(&self) -> bool {
        if !self.tx.is_empty() {
            return true;
        }
        match &self.recovery {
            Some(r) if r.state() == LinkState::Attached => r.resume_queue_depth() > 0,
            _ => false,
        }
    }

    /// What the last [`Connection::poll_transmit`] appended (all `false` when nothing).
    pub fn last_transmit(&self) -> TransmitKinds {
        self.last_tx
    }

    /// True once the logical connection is permanently closed.
    pub fn is_closed(&self) -> bool {
        match &self.recovery {
            Some(r) => r.state() == LinkState::Closed,
            None => self.v2_closed,
        }
    }

    /// True when a transport is attached (always true for an open v2 connection).
    pub fn is_attached(&self) -> bool {
        match &self.recovery {
            Some(r) => r.state() == LinkState::Attached,
            None => !self.v2_closed,
        }
    }

    /// v3: highest data seq received from the peer — the value for the
    /// `last_recv_seq` field of the attach request (client) or response (server).
    /// 0 in v2.
    pub fn last_recv_seq(&self) -> u64 {
        self.recovery.as_ref().map_or(0, Recovery::last_recv_seq)
    }

    /// v3: last seq assigned to a data frame (the reference's `NextSendSeq`). 0 in v2.
    pub fn last_sent_seq(&self) -> u64 {
        self.recovery.as_ref().map_or(0, Recovery::last_sent_seq)
    }

    /// v3: accounted bytes (`18 + payload_len` per frame) the replay ring can
    /// still take; `usize::MAX` in v2. A payload of `n` bytes fits when
    /// `18 + n <= replay_room()`. If `18 + n` exceeds `max_replay_bytes`
    /// itself, it never fits: waiting does not help.
    pub fn replay_room(&self) -> usize {
        self.recovery.as_ref().map_or(usize::MAX, |r| r.ring().room())
    }

    /// True when a payload of `payload_len` bytes can be sent now without
    /// `ReplayFull` or `TooLarge` (and the connection is open).
    pub fn can_send(&self, payload_len: usize) -> bool {
        !self.is_closed()
            && payload_len <= self.config.max_frame as usize
            && payload_len.saturating_add(self.config.version.header_len()) <= self.replay_room()
    }

    /// v3: the §8.2 "Recovery" debug fields; `None` in v2.
    pub fn recovery_debug(&self) -> Option<RecoveryDebug> {
        self.recovery.as_ref().map(|r| r.debug(self.config.role))
    }

    // ---- handle_* ----

    /// Consumes complete frames from the front of `buf`; returns the next
    /// data frame to deliver, `Ok(None)` when `buf` holds no complete frame.
    /// Control frames and duplicates are consumed silently. Call until `Ok(None)`.
    ///
    /// Errors: in v2 every error closes the connection. In v3 a
    /// [`ConnError::Frame`] error detaches the transport (the connection did
    /// it already; the runtime drops the socket and its read buffer), and a
    /// permanent error ([`ConnError::is_permanent`]) closes the logical
    /// connection. Frames already delivered before the error stay delivered.
    /// Input is ignored (`Ok(None)`) while detached or closed.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) -> Result<Option<Delivered>, ConnError> {
        if !self.is_attached() {
            return Ok(None);
        }
        loop {
            let frame = match self.decoder.decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e) => {
                    match &mut self.recovery {
                        Some(r) => r.detach(),
                        None => self.v2_closed = true,
                    }
                    return Err(e.into());
                }
            };
            let h = frame.header;
            self.stats.frames_read += 1;
            self.stats.bytes_read += h.frame_len() as u64;
            if h.stream_id == CONTROL_STREAM_ID {
                self.stats.control_frames_read += 1;
            }
            let Some(r) = self.recovery.as_mut() else {
                // v2: every frame is data, 0xFFFFFFFF included (§9 note 9).
                return Ok(Some(Delivered {
                    stream_id: h.stream_id,
                    payload: frame.payload,
                }));
            };
            r.on_frame_read(now);
            if h.stream_id == CONTROL_STREAM_ID {
                // The receiver ignores the seq field of control frames (§7.8).
                match Control::parse(&frame.payload) {
                    Ok(Control::Ack(v)) => {
                        r.on_ack(v);
                    }
                    Ok(Control::Ping) => {}
                    Err(ControlError::UnknownType(CONTROL_CLOSE))
                        if r.close_negotiated() && frame.payload.len() == 1 =>
                    {
                        self.close();
                        return Err(ConnError::PeerClosed);
                    }
                    Err(e) => {
                        self.close();
                        return Err(e.into());
                    }
                }
                continue;
            }
            match r.on_data(h.seq, now) {
                Ok(true) => {
                    return Ok(Some(Delivered {
                        stream_id: h.stream_id,
                        payload: frame.payload,
                    }))
                }
                Ok(false) => continue,
                Err(e) => {
                    self.close();
                    return Err(e);
                }
            }
        }
    }

    /// Runs due timers. ACKs and PINGs that became due are written by the
    /// next [`Connection::poll_transmit`]; a heartbeat expiry detaches the
    /// transport and returns [`ConnError::HeartbeatTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnError> {
        if let Some(r) = self.recovery.as_mut() {
            if r.state() == LinkState::Attached {
                if let Err(e) = r.check_heartbeat(now) {
                    self.drop_transport();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    // ---- mutators ----

    /// Queues one data frame whose payload `body` writes in place.
    ///
    /// v3: the frame gets the next seq (wire order = send order) and is kept
    /// in the replay ring; while detached it is only kept there and goes out
    /// after the next [`Connection::attach`]. On any error nothing is queued
    /// and no seq is consumed (unlike the reference, §9 note 16).
    pub fn send<E>(
        &mut self,
        now: Instant,
        stream_id: u32,
        body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), SendError<E>> {
        let _ = now;
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let control = u64::from(stream_id == CONTROL_STREAM_ID);
        let Some(r) = self.recovery.as_mut() else {
            self.encoder
                .encode_with(&mut self.tx, stream_id, 0, body)
                .map_err(map_encode_err)?;
            self.tx_frames += 1;
            self.tx_control += control;
            return Ok(());
        };
        let seq = r.next_seq();
        let ring = r.ring_mut();
        let len = match self.encoder.encode_with(ring.arena(), stream_id, seq, body) {
            Ok(len) => len,
            Err(e) => {
                ring.rollback();
                return Err(map_encode_err(e));
            }
        };
        if !ring.fits(len) {
            let size = ring.bytes() + len;
            let limit = ring.limit();
            ring.rollback();
            r.note_full();
            return Err(SendError::ReplayFull { size, limit });
        }
        let attached = r.state() == LinkState::Attached;
        let frame = r.commit();
        if attached {
            self.tx.extend_from_slice(frame);
            self.tx_frames += 1;
            self.tx_control += control;
        }
        Ok(())
    }

    /// v3: the transport was lost (read/write error, EOF, heartbeat timeout).
    /// Drops the decoder state and every unsent transmit byte (the data
    /// frames are in the replay ring); the runtime drops its read buffer.
    /// Idempotent. In v2 there is no detach: this closes the connection.
    pub fn detach(&mut self, now: Instant) {
        let _ = now;
        match self.recovery.as_mut() {
            Some(r) => r.detach(),
            None => self.v2_closed = true,
        }
        self.drop_transport();
    }

    /// v3: a new transport is attached (after a successful resume exchange).
    /// `peer_last_recv_seq` is the peer's `last_recv_seq` from the attach
    /// request (server) or response (client). Ring frames ≤ it are dropped as
    /// if ACKed; every remaining one is sent again, in seq order and
    /// byte-identical, before any new data (§9 note 30). Attaching while
    /// attached replaces the transport (§7.4).
    pub fn attach(&mut self, now: Instant, peer_last_recv_seq: u64) -> Result<(), ConnError> {
        let Some(r) = self.recovery.as_mut() else {
            return Err(ConnError::Closed);
        };
        let res = r.attach(now, peer_last_recv_seq);
        self.drop_transport();
        res
    }

    /// v3: records whether both sides advertised [`CAP_GRACEFUL_CLOSE`](super::recovery::CAP_GRACEFUL_CLOSE) in the
    /// attach exchange (reserved byte 1). Off by default (Go peers).
    pub fn set_graceful_close(&mut self, negotiated: bool) {
        if let Some(r) = self.recovery.as_mut() {
            r.set_close_negotiated(negotiated);
        }
    }

    /// Permanent close: drops unsent bytes and the replay ring. Nothing goes
    /// on the wire (as in the reference); later sends fail with `Closed`.
    pub fn close(&mut self) {
        match self.recovery.as_mut() {
            Some(r) => r.close(),
            None => self.v2_closed = true,
        }
        self.tx.clear();
        self.tx_frames = 0;
        self.tx_control = 0;
    }

    /// Graceful permanent close: frames already queued stay queued for one
    /// last [`Connection::poll_transmit`]. In v3 with graceful close
    /// negotiated and a transport attached, a CLOSE control frame follows them
    /// (returns `true`), so the peer drops the session at once instead of
    /// keeping it for DetachedTTL. Frames waiting for replay are queued first.
    pub fn close_gracefully(&mut self, now: Instant) -> bool {
        let _ = now;
        let mut sent_close = false;
        match self.recovery.as_mut() {
            Some(r) => {
                if r.resume_queue_depth() > 0 {
                    // Replay frames go before anything in tx (§9 note 30).
                    let mut buf = BytesMut::with_capacity(self.tx.len());
                    while let Some(f) = r.next_replay() {
                        buf.extend_from_slice(&f);
                        self.tx_frames += 1;
                    }
                    buf.extend_from_slice(&self.tx);
                    self.tx = buf;
                }
                if r.state() == LinkState::Attached && r.close_negotiated() {
                    write_close_frame(&mut self.tx);
                    self.tx_frames += 1;
                    self.tx_control += 1;
                    sent_close = true;
                }
                if r.state() != LinkState::Attached {
                    self.tx.clear();
                    self.tx_frames = 0;
                    self.tx_control = 0;
                }
                r.close();
            }
            None => self.v2_closed = true,
        }
        sent_close
    }

    fn drop_transport(&mut self) {
        self.decoder = FrameDecoder::new(self.config.version, self.config.max_frame);
        // Release the buffer (it may be a driver's 64 KiB write buffer swapped in).
        self.tx = BytesMut::new();
        self.tx_frames = 0;
        self.tx_control = 0;
    }

    // ---- poll_* ----

    /// Moves everything due for the wire into `out` (appending): a due ACK
    /// first, then frames waiting for replay, then new frames, and a PING when
    /// the heartbeat interval passed idle. Returns the bytes appended.
    ///
    /// When `out` is empty and only new frames are waiting, the transmit
    /// buffer is swapped into `out` (no copy).
    ///
    /// The whole replay backlog of a resume goes out in this one call; a
    /// driver bounding what it holds unwritten uses
    /// [`Connection::poll_transmit_within`] instead.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        self.poll_transmit_within(now, out, usize::MAX)
    }

    /// [`Connection::poll_transmit`] with a byte budget for replayed frames:
    /// after a v3 resume the replay backlog (which no other count of the
    /// connection holds) drains in pieces of at most `budget` bytes, one
    /// piece per call, resuming on the next call where this one stopped.
    ///
    /// The first frame replayed by a call always goes, even when it alone is
    /// larger than `budget` (a budget of 0 replays one frame per call), so
    /// every call makes progress. New frames go out only once the backlog is
    /// drained (replayed frames come first, §9 note 30): until then
    /// [`Connection::queued_bytes`] keeps them. A due ACK and a PING are not
    /// held back by the budget, and new frames (already counted by
    /// [`Connection::queued_bytes`]) move whole. Frames, their order and
    /// their bytes are the same as with one unbounded call; only the split
    /// into writes differs.
    pub fn poll_transmit_within(&mut self, now: Instant, out: &mut BytesMut, budget: usize) -> usize {
        let start = out.len();
        let mut frames = 0u64;
        let mut control = 0u64;
        let mut kinds = TransmitKinds::default();
        let mut replay_left = false;
        if let Some(r) = self.recovery.as_mut() {
            if r.state() == LinkState::Attached {
                // A due ACK; or, when data goes out in this write anyway, any
                // owed ACK rides along (one packet instead of two).
                let ack = match r.take_ack(now) {
                    Some(v) => Some(v),
                    None if !self.tx.is_empty() => r.take_ack_piggyback(),
                    None => None,
                };
                if let Some(v) = ack {
                    Control::Ack(v).write_frame(out);
                    kinds.ack = true;
                    frames += 1;
                    control += 1;
                }
                let mut replayed = 0usize;
                while let Some(len) = r.peek_replay().map(Bytes::len) {
                    if kinds.replay && replayed.saturating_add(len) > budget {
                        replay_left = true;
                        break;
                    }
                    let Some(f) = r.next_replay() else { break };
                    out.extend_from_slice(&f);
                    replayed += len;
                    kinds.replay = true;
                    frames += 1;
                }
            }
        }
        if !self.tx.is_empty() && !replay_left {
            kinds.data = true;
            if out.is_empty() {
                std::mem::swap(out, &mut self.tx);
            } else {
                out.extend_from_slice(&self.tx);
                self.tx.clear();
            }
            frames += std::mem::take(&mut self.tx_frames);
            control += std::mem::take(&mut self.tx_control);
        }
        if let Some(r) = self.recovery.as_mut() {
            if out.len() == start && r.ping_due(now) {
                Control::Ping.write_frame(out);
                kinds.ping = true;
                frames += 1;
                control += 1;
            }
            if out.len() > start {
                r.on_written(now);
            }
        }
        self.last_tx = kinds;
        let n = out.len() - start;
        self.stats.frames_written += frames;
        self.stats.bytes_written += n as u64;
        self.stats.control_frames_written += control;
        debug_assert!(replay_left || (self.tx.is_empty() && self.tx_frames == 0));
        n
    }

    /// The earliest instant at which [`Connection::handle_timeout`] (and then
    /// [`Connection::poll_transmit`]) must run: min of the ACK deadline, the
    /// next PING and the heartbeat expiry. `None` in v2 and while detached or
    /// closed (the session table owns the DetachedTTL).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.recovery.as_ref().and_then(Recovery::next_timeout)
    }

    /// Takes the next pending [`Event`].
    pub fn poll_event(&mut self) -> Option<Event> {
        let r = self.recovery.as_mut()?;
        r.take_room_freed().then_some(Event::ReplayRoom)
    }
}

fn map_encode_err<E>(e: EncodeFrameError<E>) -> SendError<E> {
    match e {
        EncodeFrameError::Body(e) => SendError::Encode(e),
        EncodeFrameError::Frame(f) => SendError::Frame(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v3(role: Role, now: Instant) -> Connection {
        let params = RecoveryParams {
            ack_every: 1,
            ..RecoveryParams::default()
        };
        Connection::new(
            ConnConfig {
                role,
                version: Version::V3,
                max_frame: 1 << 20,
                recovery: Some(params),
            },
            now,
        )
    }

    #[test]
    fn last_transmit_names_what_was_written() {
        let now = Instant::now();
        let (mut a, mut b) = (v3(Role::Client, now), v3(Role::Server, now));
        let mut wire = BytesMut::new();
        a.send(now, 1, |buf| {
            buf.extend_from_slice(b"hi");
            Ok::<_, ()>(())
        })
        .unwrap();
        a.poll_transmit(now, &mut wire);
        assert_eq!(
            a.last_transmit(),
            TransmitKinds {
                data: true,
                ..TransmitKinds::default()
            }
        );
        assert!(b.handle_input(now, &mut wire).unwrap().is_some());
        let mut out = BytesMut::new();
        b.poll_transmit(now, &mut out);
        assert_eq!(
            b.last_transmit(),
            TransmitKinds {
                ack: true,
                ..TransmitKinds::default()
            }
        );
        // The ACK was lost with the transport: after a resume the frame is replayed.
        a.detach(now);
        a.attach(now, 0).unwrap();
        assert!(a.has_data_transmit());
        out.clear();
        a.poll_transmit(now, &mut out);
        assert!(a.last_transmit().replay && !a.last_transmit().data);
        out.clear();
        let later = now + Duration::from_secs(31);
        a.poll_transmit(later, &mut out);
        assert_eq!(
            a.last_transmit(),
            TransmitKinds {
                ping: true,
                ..TransmitKinds::default()
            }
        );
        out.clear();
        a.poll_transmit(later, &mut out);
        assert_eq!(a.last_transmit(), TransmitKinds::default());
        assert!(out.is_empty());
    }

    /// Sends `n` payloads of `len` bytes on stream 1, tagged with their index
    /// from `first` in the first four bytes.
    fn send_tagged(c: &mut Connection, now: Instant, first: u32, n: u32, len: usize) {
        for i in first..first + n {
            c.send(now, 1, |buf| {
                buf.extend_from_slice(&i.to_be_bytes());
                buf.resize(buf.len() + len - 4, 0xAB);
                Ok::<_, ()>(())
            })
            .unwrap();
        }
    }

    /// A client that sent `lost` frames whose transport died unread, resumed
    /// (peer saw nothing), then sent `fresh` frames behind the replay.
    fn resumed(now: Instant, lost: u32, fresh: u32, len: usize) -> Connection {
        let mut a = v3(Role::Client, now);
        send_tagged(&mut a, now, 0, lost, len);
        let mut gone = BytesMut::new();
        a.poll_transmit(now, &mut gone);
        a.detach(now);
        a.attach(now, 0).unwrap();
        send_tagged(&mut a, now, lost, fresh, len);
        a
    }

    /// Calls `poll_transmit_within(budget)` until nothing comes; returns the
    /// bytes of each call.
    fn drain_within(a: &mut Connection, now: Instant, budget: usize) -> Vec<BytesMut> {
        let mut writes = Vec::new();
        loop {
            let mut out = BytesMut::new();
            if a.poll_transmit_within(now, &mut out, budget) == 0 {
                return writes;
            }
            writes.push(out);
        }
    }

    /// The indices of the data frames in `wire`, decoded by a fresh server.
    fn delivered(now: Instant, mut wire: BytesMut) -> Vec<u32> {
        let mut b = v3(Role::Server, now);
        let mut seen = Vec::new();
        while let Some(d) = b.handle_input(now, &mut wire).unwrap() {
            seen.push(u32::from_be_bytes(d.payload[..4].try_into().unwrap()));
        }
        assert!(wire.is_empty());
        seen
    }

    #[test]
    fn replay_drains_within_the_budget_in_order() {
        let now = Instant::now();
        let (lost, fresh, len) = (90, 7, 1000);
        let frame = len + Version::V3.header_len();
        let budget = 4096;
        let mut a = resumed(now, lost, fresh, len);
        assert!(a.replay_pending());
        let queued = a.queued_bytes();
        assert_eq!(queued, fresh as usize * frame);
        let writes = drain_within(&mut a, now, budget);
        assert!(!a.replay_pending() && !a.has_transmit());
        // Every replay piece stays within the budget; new frames wait in the
        // transmit buffer (still counted) until the replay is through.
        let (last, pieces) = writes.split_last().unwrap();
        assert_eq!(
            pieces.len(),
            (lost as usize * frame).div_ceil(budget / frame * frame) - 1
        );
        for w in pieces {
            assert!(w.len() <= budget && w.len() % frame == 0, "piece of {} bytes", w.len());
        }
        assert!(last.len() <= budget + queued);
        // The same bytes as one unbounded call, so the same frames in the same order.
        let mut whole = BytesMut::new();
        resumed(now, lost, fresh, len).poll_transmit(now, &mut whole);
        let mut joined = BytesMut::new();
        for w in &writes {
            joined.extend_from_slice(w);
        }
        assert_eq!(joined, whole);
        assert_eq!(delivered(now, joined), (0..lost + fresh).collect::<Vec<_>>());
        assert_eq!(a.stats().bytes_written as usize, 2 * lost as usize * frame + queued);
    }

    #[test]
    fn replay_progresses_on_a_budget_smaller_than_a_frame() {
        let now = Instant::now();
        let (lost, len) = (5, 300);
        let frame = len + Version::V3.header_len();
        for budget in [0, 1, frame - 1, frame] {
            let mut a = resumed(now, lost, 1, len);
            let writes = drain_within(&mut a, now, budget);
            // One replayed frame per call; the new frame follows the last one.
            assert_eq!(writes.len(), lost as usize, "budget {budget}");
            assert!(writes[..writes.len() - 1].iter().all(|w| w.len() == frame));
            assert_eq!(writes[writes.len() - 1].len(), 2 * frame);
            let mut joined = BytesMut::new();
            writes.iter().for_each(|w| joined.extend_from_slice(w));
            assert_eq!(delivered(now, joined), (0..=lost).collect::<Vec<_>>());
        }
    }

    #[test]
    fn due_ack_and_new_sends_are_kept_while_replay_is_bounded() {
        let now = Instant::now();
        let (lost, len) = (20, 500);
        let frame = len + Version::V3.header_len();
        let mut a = resumed(now, lost, 0, len);
        // The peer sends a frame on the new transport: an ACK is due at once (ack_every 1).
        let mut b = v3(Role::Server, now);
        let mut wire = BytesMut::new();
        send_tagged(&mut b, now, 1000, 1, 8);
        b.poll_transmit(now, &mut wire);
        assert!(a.handle_input(now, &mut wire).unwrap().is_some());
        let mut ack = BytesMut::new();
        Control::Ack(1).write_frame(&mut ack);
        let mut out = BytesMut::new();
        a.poll_transmit_within(now, &mut out, 2 * frame);
        // The ACK first, outside the budget, then two replayed frames.
        assert_eq!(&out[..ack.len()], &ack[..]);
        assert_eq!(out.len(), ack.len() + 2 * frame);
        assert!(a.last_transmit().ack && a.last_transmit().replay && !a.last_transmit().data);
        // A send while the replay is pending queues behind it.
        send_tagged(&mut a, now, lost, 1, len);
        assert_eq!(a.queued_bytes(), frame);
        assert!(a.has_data_transmit());
        let rest = drain_within(&mut a, now, 2 * frame);
        let (last, pieces) = rest.split_last().unwrap();
        assert!(pieces.iter().all(|w| w.len() <= 2 * frame));
        // The last piece carries the queued frame along (it was counted already).
        assert!(last.len() <= 3 * frame);
        let mut joined = BytesMut::from(&out[ack.len()..]);
        rest.iter().for_each(|w| joined.extend_from_slice(w));
        assert_eq!(delivered(now, joined), (0..=lost).collect::<Vec<_>>());
        assert_eq!(a.queued_bytes(), 0);
    }

    #[test]
    fn frames_acked_during_a_bounded_replay_are_skipped() {
        let now = Instant::now();
        let (lost, len) = (10, 100);
        let frame = len + Version::V3.header_len();
        let mut a = resumed(now, lost, 0, len);
        let mut first = BytesMut::new();
        a.poll_transmit_within(now, &mut first, 3 * frame);
        assert_eq!(first.len(), 3 * frame);
        // The peer ACKs up to seq 6 (it may be ahead of what we replayed: §7.8).
        let mut ack = BytesMut::new();
        Control::Ack(6).write_frame(&mut ack);
        assert!(a.handle_input(now, &mut ack).unwrap().is_none());
        let rest = drain_within(&mut a, now, 3 * frame);
        let mut joined = BytesMut::new();
        rest.iter().for_each(|w| joined.extend_from_slice(w));
        // Seqs 4-6 were ACKed away: only 7-10 (indices 6-9) are replayed.
        let tags: Vec<u32> = joined
            .chunks(frame)
            .map(|f| u32::from_be_bytes(f[Version::V3.header_len()..][..4].try_into().unwrap()))
            .collect();
        assert_eq!(tags, [6, 7, 8, 9]);
        assert_eq!(delivered(now, first), [0, 1, 2]);
        assert_eq!(joined.len(), 4 * frame);
    }
}
