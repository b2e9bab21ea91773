//! v3 recovery state of one logical connection (spec §7.7–§7.11): sequence
//! numbers, cumulative ACK policy, heartbeat deadlines, the replay ring and
//! the detach/attach life cycle. Pure state: no framing, no I/O, `now` is a
//! parameter. [`super::conn::Connection`] drives it.
//!
//! # Graceful close (amring extension, not in the reference)
//!
//! The reference has no goodbye (§9 note 18): a closed client looks like a lost
//! transport and the server keeps its session for DetachedTTL. Between two
//! amring peers the attach exchange negotiates [`CAP_GRACEFUL_CLOSE`] in
//! **reserved byte 1** of the attach request (client) and echoes it in reserved
//! byte 1 of the attach response (server). Go peers write and ignore zeros
//! there, so nothing changes on the wire towards them. Only when both sides set
//! the bit, [`super::conn::Connection::close_gracefully`] sends a control frame
//! of type [`CONTROL_CLOSE`] (`03`, 1 byte payload, seq 0, stream
//! `0xFFFFFFFF`) after all queued data; the receiver closes the logical
//! connection at once instead of keeping it for the TTL. Without negotiation an
//! inbound type `03` stays what it is in Go: an unknown control type, i.e. a
//! permanent-close protocol error.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::error::ConnError;
use super::frame::{FrameHeader, Version, CONTROL_STREAM_ID, V3_HEADER_LEN};
use super::replay::ReplayRing;

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Dialed the connection; owns reconnects in v3.
    Client,
    /// Accepted the connection; authoritative for v3 timing options.
    Server,
}

/// v3 parameters in effect for a logical connection (after normalisation, §7.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryParams {
    /// ACK after this many unacknowledged data frames (≤ 1: immediately).
    pub ack_every: u32,
    /// ACK at the latest this long after the first unacknowledged frame.
    pub ack_delay: Duration,
    /// Send a PING after this long without writing anything.
    pub heartbeat_interval: Duration,
    /// Consider the transport dead after this long without a complete inbound frame.
    pub heartbeat_timeout: Duration,
    /// Bound of the replay ring in accounted bytes (`18 + payload_len` per frame).
    pub max_replay_bytes: usize,
}

impl Default for RecoveryParams {
    fn default() -> Self {
        RecoveryParams {
            ack_every: 64,
            ack_delay: Duration::from_millis(20),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            max_replay_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Control type byte of the amring CLOSE frame (only sent when negotiated).
pub const CONTROL_CLOSE: u8 = 0x03;
/// Encoded length of a full CLOSE frame (header + 1).
pub const CLOSE_FRAME_LEN: usize = V3_HEADER_LEN + 1;
/// Bit in reserved byte 1 of the attach request/response: "I understand CLOSE".
pub const CAP_GRACEFUL_CLOSE: u8 = 0x01;

/// Appends a full CLOSE control frame (seq 0) to `dst`.
pub fn write_close_frame(dst: &mut BytesMut) {
    FrameHeader {
        version: Version::V3,
        flags: 0,
        stream_id: CONTROL_STREAM_ID,
        payload_len: 1,
        seq: 0,
    }
    .write(dst);
    dst.extend_from_slice(&[CONTROL_CLOSE]);
}

/// Transport state of a v3 logical connection.
///
/// ```text
///     new(v3) ──► Attached ──── detach(now) / transport error ────► Detached
///                   ▲  │                                              │  │
///                   │  └──── attach(now, peer_seq) (re-attach) ◄──┐   │  │
///                   └─────── attach(now, peer_seq) ───────────────┴───┘  │
///                      │                                                 │
///                      │ close() / close_gracefully() / protocol error   │ close()
///                      ▼                                                 ▼
///                    Closed ◄─────────────────────────────────────────────
/// ```
/// `Closed` is terminal. Sends are accepted in `Attached` and `Detached`
/// (into the ring, bounded) and refused in `Closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// A transport carries frames.
    Attached,
    /// No transport; the ring keeps sent frames until a resume.
    Detached,
    /// Permanently closed.
    Closed,
}

/// §8.2 "Recovery" debug fields (a snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryDebug {
    /// Client or server.
    pub role: Role,
    /// A transport is attached.
    pub attached: bool,
    /// Permanently closed.
    pub closed: bool,
    /// Incremented on every attach, detach and close.
    pub transport_gen: u64,
    /// Highest data seq received from the peer.
    pub last_recv_seq: u64,
    /// Highest ACK received from the peer.
    pub last_acked_seq: u64,
    /// Last seq assigned to a data frame (the reference's `NextSendSeq`).
    pub last_sent_seq: u64,
    /// Data frames received and not yet acknowledged.
    pub ack_pending: u64,
    /// An ACK is owed and due immediately (count reached, or a duplicate arrived).
    pub ack_due: bool,
    /// When the owed ACK is due at the latest (ack_delay after the first unacked frame).
    pub ack_deadline: Option<Instant>,
    /// Negotiated ack_every.
    pub ack_every: u32,
    /// Negotiated ack_delay.
    pub ack_delay: Duration,
    /// Negotiated heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Negotiated heartbeat timeout.
    pub heartbeat_timeout: Duration,
    /// Frames retained in the replay ring.
    pub replay_queued: usize,
    /// Accounted bytes retained in the replay ring.
    pub replay_bytes: usize,
    /// Always 0: amring has no separate live queue (kept for parity with §8.2).
    pub live_queue_depth: usize,
    /// Frames waiting to be replayed on the current transport.
    pub resume_queue_depth: u64,
    /// Transports attached (initial + resumes).
    pub transport_attaches: u64,
    /// Transports detached.
    pub transport_detaches: u64,
}

/// Recovery state of a v3 logical connection.
#[derive(Debug)]
pub struct Recovery {
    params: RecoveryParams,
    state: LinkState,
    transport_gen: u64,
    /// Last seq assigned; invariant: `ring.last_seq()` is `None` or `Some(last_sent_seq)`.
    last_sent_seq: u64,
    /// Highest in-order data seq received.
    last_recv_seq: u64,
    /// Invariant: `last_ack_sent <= last_recv_seq`.
    last_ack_sent: u64,
    /// Highest ACK received (may exceed `last_sent_seq`: accepted, §7.8).
    last_acked_seq: u64,
    /// Data frames accepted since the last ACK sent.
    unacked: u64,
    /// ACK owed: immediately (`ack_now`) or at `ack_deadline`.
    ack_now: bool,
    ack_deadline: Option<Instant>,
    last_write: Instant,
    last_read: Instant,
    ring: ReplayRing,
    /// Pending replay: ring frames `resume_next..=resume_end` still to go out.
    resume_next: u64,
    resume_end: u64,
    attaches: u64,
    detaches: u64,
    /// A send hit `ReplayFull`; the next trim raises `room_freed`.
    room_wanted: bool,
    room_freed: bool,
    close_negotiated: bool,
}

impl Recovery {
    /// State of a logical connection whose first transport just attached.
    pub fn new(params: RecoveryParams, now: Instant) -> Recovery {
        Recovery {
            params,
            state: LinkState::Attached,
            transport_gen: 1,
            last_sent_seq: 0,
            last_recv_seq: 0,
            last_ack_sent: 0,
            last_acked_seq: 0,
            unacked: 0,
            ack_now: false,
            ack_deadline: None,
            last_write: now,
            last_read: now,
            ring: ReplayRing::new(params.max_replay_bytes),
            resume_next: 1,
            resume_end: 0,
            attaches: 1,
            detaches: 0,
            room_wanted: false,
            room_freed: false,
            close_negotiated: false,
        }
    }

    // ---- getters ----

    /// Current transport state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Negotiated parameters.
    pub fn params(&self) -> &RecoveryParams {
        &self.params
    }

    /// Highest data seq received from the peer (for the attach exchange).
    pub fn last_recv_seq(&self) -> u64 {
        self.last_recv_seq
    }

    /// Last seq assigned to an outbound data frame.
    pub fn last_sent_seq(&self) -> u64 {
        self.last_sent_seq
    }

    /// The replay ring.
    pub fn ring(&self) -> &ReplayRing {
        &self.ring
    }

    /// Frames still to be replayed on the current transport.
    pub fn resume_queue_depth(&self) -> u64 {
        (self.resume_end + 1).saturating_sub(self.resume_next)
    }

    /// True when both sides advertised [`CAP_GRACEFUL_CLOSE`].
    pub fn close_negotiated(&self) -> bool {
        self.close_negotiated
    }

    /// True when an ACK is owed and due at `now`.
    pub fn ack_due(&self, now: Instant) -> bool {
        self.last_recv_seq > self.last_ack_sent && (self.ack_now || self.ack_deadline.is_some_and(|d| d <= now))
    }

    /// True when an ACK is owed and due without waiting for a deadline.
    pub fn ack_due_now(&self) -> bool {
        self.ack_now && self.last_recv_seq > self.last_ack_sent
    }

    /// True when the writer has been idle for the heartbeat interval.
    pub fn ping_due(&self, now: Instant) -> bool {
        self.state == LinkState::Attached && now >= self.last_write + self.params.heartbeat_interval
    }

    /// Earliest deadline: ACK delay, next PING, heartbeat expiry (attached only).
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.state != LinkState::Attached {
            return None;
        }
        let ping = self.last_write + self.params.heartbeat_interval;
        let dead = self.last_read + self.params.heartbeat_timeout;
        let mut t = ping.min(dead);
        if self.last_recv_seq > self.last_ack_sent {
            if let Some(d) = self.ack_deadline {
                t = t.min(d);
            }
        }
        Some(t)
    }

    /// §8.2 snapshot.
    pub fn debug(&self, role: Role) -> RecoveryDebug {
        let owed = self.last_recv_seq > self.last_ack_sent;
        RecoveryDebug {
            role,
            attached: self.state == LinkState::Attached,
            closed: self.state == LinkState::Closed,
            transport_gen: self.transport_gen,
            last_recv_seq: self.last_recv_seq,
            last_acked_seq: self.last_acked_seq,
            last_sent_seq: self.last_sent_seq,
            ack_pending: self.unacked,
            ack_due: owed && self.ack_now,
            ack_deadline: if owed { self.ack_deadline } else { None },
            ack_every: self.params.ack_every,
            ack_delay: self.params.ack_delay,
            heartbeat_interval: self.params.heartbeat_interval,
            heartbeat_timeout: self.params.heartbeat_timeout,
            replay_queued: self.ring.len(),
            replay_bytes: self.ring.bytes(),
            live_queue_depth: 0,
            resume_queue_depth: self.resume_queue_depth(),
            transport_attaches: self.attaches,
            transport_detaches: self.detaches,
        }
    }

    // ---- inbound ----

    /// Any complete inbound frame refreshes liveness.
    pub fn on_frame_read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// Applies §7.7 to an inbound data frame: `Ok(true)` deliver, `Ok(false)`
    /// duplicate (dropped), `Err` permanent close.
    pub fn on_data(&mut self, seq: u64, now: Instant) -> Result<bool, ConnError> {
        // MUST: a data frame with seq 0 closes the logical connection (§7.7).
        if seq == 0 {
            return Err(ConnError::SeqZero);
        }
        if seq <= self.last_recv_seq {
            // Duplicate: never delivered; makes an ACK due if one is owed.
            if self.last_ack_sent < self.last_recv_seq {
                self.ack_now = true;
            }
            return Ok(false);
        }
        // MUST: a gap closes the logical connection (§7.7).
        if seq != self.last_recv_seq + 1 {
            return Err(ConnError::SeqGap {
                expected: self.last_recv_seq + 1,
                got: seq,
            });
        }
        self.last_recv_seq = seq;
        self.unacked += 1;
        if self.params.ack_every <= 1 || self.unacked >= u64::from(self.params.ack_every) {
            self.ack_now = true;
        } else if self.ack_deadline.is_none() {
            // The deadline runs from the *first* unacknowledged frame (§7.9).
            self.ack_deadline = Some(now + self.params.ack_delay);
        }
        Ok(true)
    }

    /// Applies an inbound cumulative ACK; returns the frames trimmed.
    pub fn on_ack(&mut self, value: u64) -> usize {
        // An ACK not above the previous one is ignored (§7.8).
        if value <= self.last_acked_seq {
            return 0;
        }
        self.last_acked_seq = value;
        self.trim(value)
    }

    fn trim(&mut self, upto: u64) -> usize {
        let n = self.ring.ack(upto);
        if n > 0 && self.room_wanted {
            self.room_wanted = false;
            self.room_freed = true;
        }
        n
    }

    // ---- outbound ----

    /// The seq the next data frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.last_sent_seq + 1
    }

    /// Mutable access to the ring for encoding the next frame.
    pub fn ring_mut(&mut self) -> &mut ReplayRing {
        &mut self.ring
    }

    /// Records that a frame did not fit; room will be signalled on the next trim.
    pub fn note_full(&mut self) {
        self.room_wanted = true;
    }

    /// Takes the "room was freed" signal.
    pub fn take_room_freed(&mut self) -> bool {
        std::mem::take(&mut self.room_freed)
    }

    /// Commits the frame encoded in the ring arena with the next seq.
    pub fn commit(&mut self) -> &Bytes {
        self.last_sent_seq += 1;
        self.ring.commit(self.last_sent_seq)
    }

    /// If an ACK is due, marks it sent and returns the value to send.
    pub fn take_ack(&mut self, now: Instant) -> Option<u64> {
        if self.state != LinkState::Attached || !self.ack_due(now) {
            return None;
        }
        Some(self.mark_ack_sent())
    }

    /// Records the owed ACK as sent; returns its value.
    fn mark_ack_sent(&mut self) -> u64 {
        self.last_ack_sent = self.last_recv_seq;
        self.unacked = 0;
        self.ack_now = false;
        self.ack_deadline = None;
        self.last_recv_seq
    }

    /// If any ACK is owed (due or not yet), marks it sent and returns the
    /// value: an ACK that rides in the same write as outgoing data costs no
    /// packet of its own, while one sent at its deadline does.
    pub fn take_ack_piggyback(&mut self) -> Option<u64> {
        if self.state != LinkState::Attached || self.last_recv_seq <= self.last_ack_sent {
            return None;
        }
        Some(self.mark_ack_sent())
    }

    /// The next frame to replay, advancing the resume cursor.
    pub fn next_replay(&mut self) -> Option<Bytes> {
        while self.resume_next <= self.resume_end {
            let seq = self.resume_next;
            self.resume_next += 1;
            // Frames ACKed meanwhile are gone and need no replay.
            if let Some(f) = self.ring.get(seq) {
                return Some(f.clone());
            }
        }
        None
    }

    /// The next frame to replay, without advancing the resume cursor past
    /// it (frames ACKed meanwhile are skipped): lets a caller check its size
    /// against a byte budget before taking it with [`Recovery::next_replay`].
    pub fn peek_replay(&mut self) -> Option<&Bytes> {
        while self.resume_next <= self.resume_end {
            if self.ring.get(self.resume_next).is_some() {
                return self.ring.get(self.resume_next);
            }
            self.resume_next += 1;
        }
        None
    }

    /// Something was written to the transport at `now`.
    pub fn on_written(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// Heartbeat check: `Err(HeartbeatTimeout)` (and detach) when no frame
    /// arrived within the heartbeat timeout.
    pub fn check_heartbeat(&mut self, now: Instant) -> Result<(), ConnError> {
        if self.state == LinkState::Attached && now >= self.last_read + self.params.heartbeat_timeout {
            self.detach();
            return Err(ConnError::HeartbeatTimeout);
        }
        Ok(())
    }

    // ---- life cycle ----

    /// Records the graceful-close negotiation of the attach exchange.
    pub fn set_close_negotiated(&mut self, yes: bool) {
        self.close_negotiated = yes;
    }

    /// Releases idle buffers (see [`ReplayRing::release_idle`]).
    pub fn release_idle(&mut self, keep: usize) {
        self.ring.release_idle(keep);
    }

    /// Transport lost. Idempotent; no-op once closed.
    pub fn detach(&mut self) {
        if self.state != LinkState::Attached {
            return;
        }
        self.state = LinkState::Detached;
        self.transport_gen += 1;
        self.detaches += 1;
        // A detached session may wait long: keep only the retained frames.
        self.ring.compact();
        self.resume_next = 1;
        self.resume_end = 0;
        self.unacked = 0;
        self.ack_now = false;
        self.ack_deadline = None;
    }

    /// A new transport attached; `peer_last_recv_seq` comes from the attach
    /// exchange. Frames ≤ it are dropped as if ACKed; the rest is queued for
    /// replay in seq order.
    pub fn attach(&mut self, now: Instant, peer_last_recv_seq: u64) -> Result<(), ConnError> {
        match self.state {
            LinkState::Closed => return Err(ConnError::Closed),
            // A resume may arrive before the old transport was noticed dead (§7.4).
            LinkState::Attached => self.detach(),
            LinkState::Detached => {}
        }
        if peer_last_recv_seq > self.last_acked_seq {
            self.last_acked_seq = peer_last_recv_seq;
        }
        self.trim(peer_last_recv_seq);
        if let Some(first) = self.ring.first_seq() {
            // The peer lost frames we no longer hold: replay cannot close the gap.
            if peer_last_recv_seq + 1 < first {
                self.close();
                return Err(ConnError::ResumeBehind {
                    peer: peer_last_recv_seq,
                    oldest: first,
                });
            }
        }
        self.resume_next = peer_last_recv_seq.saturating_add(1);
        self.resume_end = self.last_sent_seq;
        // The attach exchange told the peer our last_recv_seq: nothing owed.
        self.last_ack_sent = self.last_recv_seq;
        self.unacked = 0;
        self.ack_now = false;
        self.ack_deadline = None;
        self.last_read = now;
        self.last_write = now;
        self.state = LinkState::Attached;
        self.transport_gen += 1;
        self.attaches += 1;
        debug_assert!(self.last_ack_sent <= self.last_recv_seq);
        Ok(())
    }

    /// Permanent close: drops the ring. Idempotent.
    pub fn close(&mut self) {
        if self.state == LinkState::Closed {
            return;
        }
        self.state = LinkState::Closed;
        self.transport_gen += 1;
        self.ring.clear();
        self.resume_next = 1;
        self.resume_end = 0;
    }
}
