//! The v3 attach exchange (spec §7.2–7.6), sans-IO: request and response
//! layouts, the client's validation of the response, and the server's option
//! normalisation.
//!
//! ```text
//!  request  (44): | mode | reserved x3 | connection_id (16) | resume_secret (16) | last_recv_seq (u64) |
//!  response (60): | status | reserved x3 | connection_id (16) | resume_secret (16) | last_recv_seq (u64)
//!                 | ack_every (u32) | ack_delay_ms (u32) | heartbeat_interval_ms (u32) | heartbeat_timeout_ms (u32) |
//! ```
//!
//! ```text
//!  client                                   server
//!    hello v3 ───────────────────────────────►
//!    ◄─────────────────────────────── reply accept v3
//!    AttachRequest{New | Resume} ────────────►  New: fresh id + secret (CSPRNG)
//!                                               Resume: look up id, check secret + codec
//!    ◄──────────── AttachResponse{Ok | Rejected}  (rejections still carry valid
//!    validate negotiated values, then status        negotiated values, §7.4)
//! ```
//!
//! Server-side session lookup (id, secret, codec) belongs to the recovery
//! state; this module only encodes, decodes and validates.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};

use super::recovery::RecoveryParams;

/// Length of an attach request.
pub const ATTACH_REQUEST_LEN: usize = 44;
/// Length of an attach response.
pub const ATTACH_RESPONSE_LEN: usize = 60;
/// Length of a connection id and of a resume secret.
pub const TOKEN_LEN: usize = 16;

/// Wire value of [`AttachMode::New`].
pub const MODE_NEW: u8 = 1;
/// Wire value of [`AttachMode::Resume`].
pub const MODE_RESUME: u8 = 2;
/// Wire value of [`AttachStatus::Ok`].
pub const STATUS_OK: u8 = 1;
/// Wire value of [`AttachStatus::Rejected`].
pub const STATUS_REJECTED: u8 = 2;

/// Why an attach failed or a recovery option is unusable. Texts mirror the
/// reference (spec §7.5, §8.1: `ErrInvalidMessage` / `ErrResumeRejected`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// Response: `ack_every` is 0.
    #[error("negotiated ack_every must be positive")]
    AckEveryZero,
    /// Response: `ack_delay_ms` is 0.
    #[error("negotiated ack_delay must be positive")]
    AckDelayZero,
    /// Response: `heartbeat_interval_ms` is 0.
    #[error("negotiated heartbeat_interval must be positive")]
    HeartbeatIntervalZero,
    /// Response: `heartbeat_timeout_ms < 2 × heartbeat_interval_ms`.
    #[error("negotiated heartbeat_timeout too small")]
    HeartbeatTimeoutTooSmall,
    /// Response status ≠ 1 on the initial (mode new) attach.
    #[error("resume rejected: initial attach rejected")]
    InitialRejected {
        /// The status byte received.
        status: u8,
    },
    /// Response status ≠ 1 on a resume (terminal for the client).
    #[error("resume rejected")]
    ResumeRejected {
        /// The status byte received.
        status: u8,
    },
    /// Client: the resume handshake selected another codec than the logical connection's.
    #[error("resume rejected: codec changed on resume")]
    CodecChanged,
    /// Server (internal): resume of an unknown or permanently closed connection id.
    #[error("resume rejected: connection not found")]
    ConnectionNotFound,
    /// Server (internal): the resume secret differs.
    #[error("resume rejected: resume secret mismatch")]
    SecretMismatch,
    /// Server (internal): the codec negotiated on the new transport differs.
    #[error("resume rejected: codec mismatch")]
    CodecMismatch,
    /// Server (internal): a mode other than new (1) or resume (2).
    #[error("resume rejected: invalid attach mode")]
    InvalidMode(u8),
    /// A recovery duration exceeds `u32::MAX` milliseconds.
    #[error("recovery duration too large")]
    DurationTooLarge,
}

/// Attach request mode (byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// `01`: start a new logical connection.
    New,
    /// `02`: resume an existing one.
    Resume,
    /// Any other byte: the server rejects it.
    Other(u8),
}

impl AttachMode {
    /// Wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            AttachMode::New => MODE_NEW,
            AttachMode::Resume => MODE_RESUME,
            AttachMode::Other(b) => b,
        }
    }

    /// From the wire byte.
    pub const fn from_u8(b: u8) -> AttachMode {
        match b {
            MODE_NEW => AttachMode::New,
            MODE_RESUME => AttachMode::Resume,
            b => AttachMode::Other(b),
        }
    }
}

/// Attach response status (byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachStatus {
    /// `01`: attached.
    Ok,
    /// `02`: rejected; the server closes.
    Rejected,
    /// Any other byte (treated as a rejection by the client).
    Other(u8),
}

impl AttachStatus {
    /// Wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            AttachStatus::Ok => STATUS_OK,
            AttachStatus::Rejected => STATUS_REJECTED,
            AttachStatus::Other(b) => b,
        }
    }

    /// From the wire byte.
    pub const fn from_u8(b: u8) -> AttachStatus {
        match b {
            STATUS_OK => AttachStatus::Ok,
            STATUS_REJECTED => AttachStatus::Rejected,
            b => AttachStatus::Other(b),
        }
    }
}

/// The 44-byte attach request (client → server, §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    /// New or resume.
    pub mode: AttachMode,
    /// Reserved bytes (written as 0, ignored).
    pub reserved: [u8; 3],
    /// Logical connection id (zero for new).
    pub connection_id: [u8; TOKEN_LEN],
    /// Resume secret (zero for new).
    pub resume_secret: [u8; TOKEN_LEN],
    /// Highest data seq this side has received from the peer (0 for new).
    pub last_recv_seq: u64,
}

impl AttachRequest {
    /// The reference's new-session request: `01` and 43 zero bytes.
    pub fn new_session() -> Self {
        AttachRequest {
            mode: AttachMode::New,
            reserved: [0; 3],
            connection_id: [0; TOKEN_LEN],
            resume_secret: [0; TOKEN_LEN],
            last_recv_seq: 0,
        }
    }

    /// A resume request for the stored id and secret.
    pub fn resume(connection_id: [u8; TOKEN_LEN], resume_secret: [u8; TOKEN_LEN], last_recv_seq: u64) -> Self {
        AttachRequest {
            mode: AttachMode::Resume,
            reserved: [0; 3],
            connection_id,
            resume_secret,
            last_recv_seq,
        }
    }

    /// Appends the 44 bytes to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(ATTACH_REQUEST_LEN);
        put_head(
            out,
            self.mode.as_u8(),
            &self.reserved,
            &self.connection_id,
            &self.resume_secret,
            self.last_recv_seq,
        );
    }

    /// Takes one request off the front of `buf`: consumes exactly 44 bytes
    /// when they are available, nothing (and `None`) otherwise.
    pub fn decode(buf: &mut BytesMut) -> Option<Self> {
        if buf.len() < ATTACH_REQUEST_LEN {
            return None;
        }
        let mut b = buf.split_to(ATTACH_REQUEST_LEN);
        let h = Head::get(&mut b);
        Some(AttachRequest {
            mode: AttachMode::from_u8(h.kind),
            reserved: h.reserved,
            connection_id: h.connection_id,
            resume_secret: h.resume_secret,
            last_recv_seq: h.last_recv_seq,
        })
    }
}

/// Writes the 44-byte head that requests and responses share: mode/status,
/// reserved bytes, connection id, resume secret, last received seq.
fn put_head(
    out: &mut BytesMut,
    kind: u8,
    reserved: &[u8; 3],
    connection_id: &[u8; TOKEN_LEN],
    resume_secret: &[u8; TOKEN_LEN],
    last_recv_seq: u64,
) {
    out.put_u8(kind);
    out.put_slice(reserved);
    out.put_slice(connection_id);
    out.put_slice(resume_secret);
    out.put_u64(last_recv_seq);
}

/// The shared 44-byte head of a request or response, as read.
struct Head {
    kind: u8,
    reserved: [u8; 3],
    connection_id: [u8; TOKEN_LEN],
    resume_secret: [u8; TOKEN_LEN],
    last_recv_seq: u64,
}

impl Head {
    /// Reads the head off `b`, which holds at least 44 bytes.
    fn get(b: &mut BytesMut) -> Head {
        let kind = b.get_u8();
        let mut reserved = [0u8; 3];
        b.copy_to_slice(&mut reserved);
        let mut connection_id = [0u8; TOKEN_LEN];
        b.copy_to_slice(&mut connection_id);
        let mut resume_secret = [0u8; TOKEN_LEN];
        b.copy_to_slice(&mut resume_secret);
        Head {
            kind,
            reserved,
            connection_id,
            resume_secret,
            last_recv_seq: b.get_u64(),
        }
    }
}

/// The 60-byte attach response (server → client, §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachResponse {
    /// Ok or rejected.
    pub status: AttachStatus,
    /// Reserved bytes (written as 0, ignored).
    pub reserved: [u8; 3],
    /// Logical connection id (zero on rejection).
    pub connection_id: [u8; TOKEN_LEN],
    /// Resume secret (zero on rejection).
    pub resume_secret: [u8; TOKEN_LEN],
    /// Highest data seq the server has received from the client.
    pub last_recv_seq: u64,
    /// Negotiated ACK batch size.
    pub ack_every: u32,
    /// Negotiated ACK delay in ms.
    pub ack_delay_ms: u32,
    /// Negotiated PING interval in ms.
    pub heartbeat_interval_ms: u32,
    /// Negotiated liveness timeout in ms.
    pub heartbeat_timeout_ms: u32,
}

impl AttachResponse {
    /// Appends the 60 bytes to `out` (fields as they are: no normalisation).
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(ATTACH_RESPONSE_LEN);
        put_head(
            out,
            self.status.as_u8(),
            &self.reserved,
            &self.connection_id,
            &self.resume_secret,
            self.last_recv_seq,
        );
        out.put_u32(self.ack_every);
        out.put_u32(self.ack_delay_ms);
        out.put_u32(self.heartbeat_interval_ms);
        out.put_u32(self.heartbeat_timeout_ms);
    }

    /// Takes one response off the front of `buf`: consumes exactly 60 bytes
    /// when they are available, nothing (and `None`) otherwise. No
    /// validation: see [`AttachResponse::validate_client`].
    pub fn decode(buf: &mut BytesMut) -> Option<Self> {
        if buf.len() < ATTACH_RESPONSE_LEN {
            return None;
        }
        let mut b = buf.split_to(ATTACH_RESPONSE_LEN);
        let h = Head::get(&mut b);
        Some(AttachResponse {
            status: AttachStatus::from_u8(h.kind),
            reserved: h.reserved,
            connection_id: h.connection_id,
            resume_secret: h.resume_secret,
            last_recv_seq: h.last_recv_seq,
            ack_every: b.get_u32(),
            ack_delay_ms: b.get_u32(),
            heartbeat_interval_ms: b.get_u32(),
            heartbeat_timeout_ms: b.get_u32(),
        })
    }

    /// A rejection (§7.4): status 2, zero id, secret and seq, but valid
    /// negotiated values (the reference client validates them before the status).
    pub fn rejected(params: &RecoveryParams) -> Self {
        Self::with_params(AttachStatus::Rejected, [0; TOKEN_LEN], [0; TOKEN_LEN], 0, params)
    }

    /// An acceptance carrying the logical connection's id, secret, the
    /// server's `last_recv_seq` and the negotiated values.
    pub fn accepted(id: [u8; TOKEN_LEN], secret: [u8; TOKEN_LEN], last_recv_seq: u64, params: &RecoveryParams) -> Self {
        Self::with_params(AttachStatus::Ok, id, secret, last_recv_seq, params)
    }

    fn with_params(
        status: AttachStatus,
        connection_id: [u8; TOKEN_LEN],
        resume_secret: [u8; TOKEN_LEN],
        last_recv_seq: u64,
        params: &RecoveryParams,
    ) -> Self {
        let [ack_every, ack_delay_ms, heartbeat_interval_ms, heartbeat_timeout_ms] = wire_params(params);
        AttachResponse {
            status,
            reserved: [0; 3],
            connection_id,
            resume_secret,
            last_recv_seq,
            ack_every,
            ack_delay_ms,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
        }
    }

    /// The negotiated values as parameters, after the reference client's
    /// checks (§7.5, in order); `max_replay_bytes` is the client's own limit.
    /// Does not look at the status.
    pub fn negotiated(&self, max_replay_bytes: usize) -> Result<RecoveryParams, AttachError> {
        if self.ack_every == 0 {
            return Err(AttachError::AckEveryZero);
        }
        if self.ack_delay_ms == 0 {
            return Err(AttachError::AckDelayZero);
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(AttachError::HeartbeatIntervalZero);
        }
        if u64::from(self.heartbeat_timeout_ms) < 2 * u64::from(self.heartbeat_interval_ms) {
            return Err(AttachError::HeartbeatTimeoutTooSmall);
        }
        // The client's normalisation (zero → default, timeout ≥ 2×interval)
        // is a no-op after these checks.
        Ok(RecoveryParams {
            ack_every: self.ack_every,
            ack_delay: Duration::from_millis(self.ack_delay_ms.into()),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms.into()),
            heartbeat_timeout: Duration::from_millis(self.heartbeat_timeout_ms.into()),
            max_replay_bytes,
        })
    }

    /// Client processing of a response to a **resume** (§7.5): negotiated
    /// values first, then status ≠ 1 → [`AttachError::ResumeRejected`].
    pub fn validate_client(&self, max_replay_bytes: usize) -> Result<RecoveryParams, AttachError> {
        let params = self.negotiated(max_replay_bytes)?;
        match self.status {
            AttachStatus::Ok => Ok(params),
            s => Err(AttachError::ResumeRejected { status: s.as_u8() }),
        }
    }

    /// Client processing of a response to the **initial** attach (§7.5):
    /// like [`AttachResponse::validate_client`], but a rejection is
    /// [`AttachError::InitialRejected`] ("resume rejected: initial attach rejected").
    pub fn validate_initial(&self, max_replay_bytes: usize) -> Result<RecoveryParams, AttachError> {
        self.validate_client(max_replay_bytes).map_err(|e| match e {
            AttachError::ResumeRejected { status } => AttachError::InitialRejected { status },
            e => e,
        })
    }
}

/// Server recovery options (reference `ServerRecoveryOptions` plus the
/// client-side limits). `Default` = the spec §7.6 defaults; a zero value
/// means "use the default" like in the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// ACK after this many unacknowledged data frames (default 64).
    pub ack_every: u32,
    /// ACK delay (default 20 ms).
    pub ack_delay: Duration,
    /// PING after this long idle (default 30 s).
    pub heartbeat_interval: Duration,
    /// Transport considered dead after this long silent (default 90 s, ≥ 2 × interval).
    pub heartbeat_timeout: Duration,
    /// Server: how long a detached logical connection is kept (default 30 s).
    pub detached_ttl: Duration,
    /// Replay ring bound in accounted bytes (default 8 MiB).
    pub max_replay_bytes: usize,
    /// Client: first reconnect backoff (default 100 ms).
    pub reconnect_min_backoff: Duration,
    /// Client: backoff cap (default 2 s, raised to the minimum if smaller).
    pub reconnect_max_backoff: Duration,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            ack_every: 64,
            ack_delay: Duration::from_millis(20),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(90),
            detached_ttl: Duration::from_secs(30),
            max_replay_bytes: 8 * 1024 * 1024,
            reconnect_min_backoff: Duration::from_millis(100),
            reconnect_max_backoff: Duration::from_secs(2),
        }
    }
}

impl RecoveryOptions {
    /// The options with every zero replaced by its default and the client
    /// backoff cap raised to the minimum (durations are not yet truncated to ms).
    pub fn normalized(&self) -> RecoveryOptions {
        let d = RecoveryOptions::default();
        let pick = |v: Duration, def: Duration| if v.is_zero() { def } else { v };
        let heartbeat_interval = pick(self.heartbeat_interval, d.heartbeat_interval);
        let heartbeat_timeout =
            pick(self.heartbeat_timeout, d.heartbeat_timeout).max(heartbeat_interval.saturating_mul(2));
        let reconnect_min_backoff = pick(self.reconnect_min_backoff, d.reconnect_min_backoff);
        RecoveryOptions {
            ack_every: if self.ack_every == 0 {
                d.ack_every
            } else {
                self.ack_every
            },
            ack_delay: pick(self.ack_delay, d.ack_delay),
            heartbeat_interval,
            heartbeat_timeout,
            detached_ttl: pick(self.detached_ttl, d.detached_ttl),
            max_replay_bytes: if self.max_replay_bytes == 0 {
                d.max_replay_bytes
            } else {
                self.max_replay_bytes
            },
            reconnect_min_backoff,
            reconnect_max_backoff: pick(self.reconnect_max_backoff, d.reconnect_max_backoff).max(reconnect_min_backoff),
        }
    }
}

/// A duration as whole milliseconds on the wire (§7.6): truncated, anything
/// in (0, 1 ms) becomes 1, more than `u32::MAX` ms is an error. Zero maps to 0
/// (callers normalise zero to the default first).
pub fn duration_to_ms(d: Duration) -> Result<u32, AttachError> {
    if d.is_zero() {
        return Ok(0);
    }
    let ms = d.as_millis().max(1);
    u32::try_from(ms).map_err(|_| AttachError::DurationTooLarge)
}

/// Server options → the negotiated parameters (§7.6): zero → default,
/// `heartbeat_timeout ≥ 2 × heartbeat_interval`, durations converted to whole
/// milliseconds (what travels on the wire, so both ends use equal values).
pub fn normalize_server_options(o: &RecoveryOptions) -> Result<RecoveryParams, AttachError> {
    let n = o.normalized();
    let ms = |d: Duration| duration_to_ms(d).map(|v| Duration::from_millis(v.into()));
    let heartbeat_interval = ms(n.heartbeat_interval)?;
    // Truncation may break the 2× rule by rounding (e.g. 1.5 ms / 2.9 ms):
    // re-apply it on the millisecond values.
    let heartbeat_timeout = ms(n.heartbeat_timeout)?.max(heartbeat_interval * 2);
    duration_to_ms(heartbeat_timeout)?;
    Ok(RecoveryParams {
        ack_every: n.ack_every,
        ack_delay: ms(n.ack_delay)?,
        heartbeat_interval,
        heartbeat_timeout,
        max_replay_bytes: n.max_replay_bytes,
    })
}

/// The four negotiated u32 fields for `params`, normalised like the
/// reference encoder (zero → default, timeout ≥ 2 × interval) and saturated
/// at `u32::MAX` ms, so a response always carries values a client accepts.
fn wire_params(params: &RecoveryParams) -> [u32; 4] {
    let d = RecoveryParams::default();
    let ms = |v: Duration, def: Duration| {
        let v = if v.is_zero() { def } else { v };
        u32::try_from(v.as_millis().max(1)).unwrap_or(u32::MAX)
    };
    let ack_every = if params.ack_every == 0 {
        d.ack_every
    } else {
        params.ack_every
    };
    let interval = ms(params.heartbeat_interval, d.heartbeat_interval).min(u32::MAX / 2);
    let timeout = ms(params.heartbeat_timeout, d.heartbeat_timeout).max(interval * 2);
    [ack_every, ms(params.ack_delay, d.ack_delay), interval, timeout]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_on_the_wire() {
        let p = normalize_server_options(&RecoveryOptions::default()).unwrap();
        assert_eq!(p, RecoveryParams::default());
        let mut out = BytesMut::new();
        AttachResponse::rejected(&p).write(&mut out);
        assert_eq!(out.len(), ATTACH_RESPONSE_LEN);
        assert_eq!(out[0], 2);
        assert!(out[1..44].iter().all(|&b| b == 0));
        assert_eq!(
            &out[44..],
            &[0, 0, 0, 0x40, 0, 0, 0, 0x14, 0, 0, 0x75, 0x30, 0, 1, 0x5f, 0x90]
        );
    }

    #[test]
    fn normalisation_rules() {
        let o = RecoveryOptions {
            ack_every: 0,
            ack_delay: Duration::from_micros(300),
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_millis(150),
            ..Default::default()
        };
        let p = normalize_server_options(&o).unwrap();
        assert_eq!(p.ack_every, 64);
        assert_eq!(p.ack_delay, Duration::from_millis(1));
        assert_eq!(p.heartbeat_timeout, Duration::from_millis(200));
        let big = RecoveryOptions {
            heartbeat_interval: Duration::from_millis(u64::from(u32::MAX) + 1),
            ..Default::default()
        };
        assert_eq!(normalize_server_options(&big), Err(AttachError::DurationTooLarge));
        // Interval fits, but 2 × interval does not.
        let half = RecoveryOptions {
            heartbeat_interval: Duration::from_millis(u64::from(u32::MAX / 2) + 1),
            ..Default::default()
        };
        assert_eq!(normalize_server_options(&half), Err(AttachError::DurationTooLarge));
    }

    #[test]
    fn client_checks_in_order() {
        let p = RecoveryParams::default();
        let mut r = AttachResponse::rejected(&p);
        assert_eq!(r.validate_initial(1), Err(AttachError::InitialRejected { status: 2 }));
        assert_eq!(r.validate_client(1), Err(AttachError::ResumeRejected { status: 2 }));
        r.ack_every = 0;
        r.ack_delay_ms = 0;
        assert_eq!(r.validate_initial(1), Err(AttachError::AckEveryZero));
        r.ack_every = 1;
        assert_eq!(r.validate_initial(1), Err(AttachError::AckDelayZero));
        r.ack_delay_ms = 1;
        r.heartbeat_interval_ms = 0;
        assert_eq!(r.validate_initial(1), Err(AttachError::HeartbeatIntervalZero));
        r.heartbeat_interval_ms = u32::MAX;
        r.heartbeat_timeout_ms = u32::MAX;
        assert_eq!(r.validate_initial(1), Err(AttachError::HeartbeatTimeoutTooSmall));
        r.heartbeat_interval_ms = 10;
        r.heartbeat_timeout_ms = 20;
        r.status = AttachStatus::Ok;
        let got = r.validate_initial(7).unwrap();
        assert_eq!(got.heartbeat_timeout, Duration::from_millis(20));
        assert_eq!(got.max_replay_bytes, 7);
    }
}
