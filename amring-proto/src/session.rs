//! Server-side table of v3 logical connections (spec §7.4, §7.10), sans-IO:
//! `now` is passed in, nothing is spawned.
//!
//! One table per shard. Every logical connection is registered under a
//! 16-byte connection id with a 16-byte resume secret, both from the OS
//! CSPRNG (`getrandom`). **The first byte of the id names the owning shard**
//! (`id[0] = shard_index`), so a resume that the kernel's SO_REUSEPORT
//! balancing lands on another shard can be handed to the owner by looking at
//! `id[0]` ([`SessionTable::owner_shard`]) without any shared lookup. The other
//! 15 bytes stay random (120 bits), the secret is 128 random bits.
//!
//! Life cycle of an entry:
//! ```text
//!   insert/create ──► attached ── detach(id, now) ──► detached (TTL armed)
//!                        ▲                                │      │
//!                        └── lookup_resume(..) Ok ────────┘      │ expire(now) past TTL
//!   mark_closed / remove ──► gone (a later resume: NotFound)     ▼
//!                                                   returned to the runtime (on_disconnect)
//! ```
//!
//! # Memory bound
//!
//! A detached session holds at most its replay ring: `max_replay_bytes`
//! accounted bytes (`18 + payload_len` per frame), plus 40 bytes per retained
//! frame (seq + `Bytes` handle), plus up to one 64 KiB arena chunk kept alive
//! by frames that share it, plus a fixed part: the `Connection` (about 500
//! bytes, see the `session_sizes` test), this table's entry and timer (about
//! 100 bytes) and the runtime's own `T`. With the default 8 MiB bound that is
//! ≈ 8.1 MiB per session worst case, i.e. **≈ 81 GiB for 10k detached
//! sessions** whose rings are full — servers expecting that many should lower
//! `max_replay_bytes` (256 KiB → ≈ 3.2 GiB worst case for 10k). Idle sessions
//! with acknowledged traffic cost only the fixed part (≈ 10k × 0.6 KiB ≈ 6 MiB,
//! plus the runtime's `T`).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// A 16-byte connection id; `id[0]` is the owning shard's index.
pub type ConnectionId = [u8; 16];
/// A 16-byte resume secret.
pub type ResumeSecret = [u8; 16];

/// Why a resume was refused (server-internal; the wire only says "rejected").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeReject {
    /// No session under this id (never existed, expired and dropped, or removed).
    #[error("connection not found")]
    NotFound,
    /// The secret differs (compared in constant time).
    #[error("resume secret mismatch")]
    SecretMismatch,
    /// The session is permanently closed.
    #[error("connection closed")]
    Closed,
    /// The session outlived its DetachedTTL (not yet collected by `expire`).
    #[error("connection not found: detached ttl expired")]
    Expired,
    /// The codec negotiated on the new transport differs from the session's.
    #[error("codec mismatch")]
    CodecMismatch,
}

/// One registered logical connection.
#[derive(Debug)]
pub struct SessionEntry<T> {
    secret: ResumeSecret,
    codec: u8,
    closed: bool,
    /// `Some` while detached (DetachedTTL) or after `mark_closed`; mirrored in the timer set.
    deadline: Option<Instant>,
    /// The runtime's per-connection state (its `Connection`, streams, …).
    pub value: T,
}

impl<T> SessionEntry<T> {
    /// Codec id negotiated for this logical connection.
    pub fn codec(&self) -> u8 {
        self.codec
    }

    /// The resume secret (to echo in the attach response).
    pub fn secret(&self) -> &ResumeSecret {
        &self.secret
    }

    /// True while no transport is attached (TTL armed).
    pub fn is_detached(&self) -> bool {
        self.deadline.is_some() && !self.closed
    }

    /// True after [`SessionTable::mark_closed`].
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// When the entry expires (`None` while attached).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Detached-session table of one shard.
#[derive(Debug)]
pub struct SessionTable<T> {
    shard: u8,
    ttl: Duration,
    entries: HashMap<ConnectionId, SessionEntry<T>>,
    /// Invariant: `(d, id)` is here iff `entries[id].deadline == Some(d)`.
    timers: BTreeSet<(Instant, ConnectionId)>,
    /// Invariant: number of entries with `is_detached()`.
    detached: usize,
}

impl<T> SessionTable<T> {
    /// An empty table for shard `shard_index` with the server's DetachedTTL.
    pub fn new(shard_index: u8, detached_ttl: Duration) -> SessionTable<T> {
        SessionTable {
            shard: shard_index,
            ttl: detached_ttl,
            entries: HashMap::new(),
            timers: BTreeSet::new(),
            detached: 0,
        }
    }

    /// The shard that owns `id` (its first byte).
    pub fn owner_shard(id: &ConnectionId) -> u8 {
        id[0]
    }

    /// This table's shard index.
    pub fn shard(&self) -> u8 {
        self.shard
    }

    /// The DetachedTTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Number of registered sessions (attached, detached and closed-not-collected).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no session is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fresh random id (with `id[0] = shard`) and secret; the id is unused here.
    pub fn generate(&self) -> Result<(ConnectionId, ResumeSecret), getrandom::Error> {
        let mut secret = [0u8; 16];
        getrandom::getrandom(&mut secret)?;
        loop {
            let mut id = [0u8; 16];
            getrandom::getrandom(&mut id)?;
            id[0] = self.shard;
            if !self.entries.contains_key(&id) {
                return Ok((id, secret));
            }
        }
    }

    /// Registers a new attached session under a fresh id and secret (attach mode 1).
    pub fn create(&mut self, codec: u8, value: T) -> Result<(ConnectionId, ResumeSecret), getrandom::Error> {
        let (id, secret) = self.generate()?;
        self.insert(id, secret, codec, value);
        Ok((id, secret))
    }

    /// Registers `value` under `id`/`secret` (attached), returning a replaced value.
    pub fn insert(&mut self, id: ConnectionId, secret: ResumeSecret, codec: u8, value: T) -> Option<T> {
        debug_assert_eq!(Self::owner_shard(&id), self.shard, "id of another shard");
        let old = self.remove(&id);
        self.entries.insert(
            id,
            SessionEntry {
                secret,
                codec,
                closed: false,
                deadline: None,
                value,
            },
        );
        old
    }

    /// The entry under `id`.
    pub fn get(&self, id: &ConnectionId) -> Option<&SessionEntry<T>> {
        self.entries.get(id)
    }

    /// The entry under `id`, mutably.
    pub fn get_mut(&mut self, id: &ConnectionId) -> Option<&mut SessionEntry<T>> {
        self.entries.get_mut(id)
    }

    /// Validates a resume (attach mode 2) and, on success, marks the session
    /// attached again (TTL disarmed). The secret is compared in constant time
    /// and checked before anything else about the session is revealed.
    pub fn lookup_resume(
        &mut self,
        id: &ConnectionId,
        secret: &ResumeSecret,
        codec: u8,
        now: Instant,
    ) -> Result<&mut SessionEntry<T>, ResumeReject> {
        let e = self.entries.get_mut(id).ok_or(ResumeReject::NotFound)?;
        if !bool::from(e.secret[..].ct_eq(&secret[..])) {
            return Err(ResumeReject::SecretMismatch);
        }
        if e.closed {
            return Err(ResumeReject::Closed);
        }
        if e.deadline.is_some_and(|d| now >= d) {
            return Err(ResumeReject::Expired);
        }
        if e.codec != codec {
            return Err(ResumeReject::CodecMismatch);
        }
        if let Some(d) = e.deadline.take() {
            self.timers.remove(&(d, *id));
            self.detached -= 1;
        }
        Ok(e)
    }

    /// The session's transport was lost: arms DetachedTTL from `now`.
    /// Returns false for an unknown or closed id.
    pub fn detach(&mut self, id: &ConnectionId, now: Instant) -> bool {
        let ttl = self.ttl;
        self.arm(id, now + ttl, false)
    }

    /// Marks the session permanently closed: resumes are refused and the next
    /// [`SessionTable::expire`] at or after `now` returns it.
    pub fn mark_closed(&mut self, id: &ConnectionId, now: Instant) -> bool {
        self.arm(id, now, true)
    }

    fn arm(&mut self, id: &ConnectionId, at: Instant, close: bool) -> bool {
        let Some(e) = self.entries.get_mut(id) else {
            return false;
        };
        if e.closed {
            return false;
        }
        if let Some(d) = e.deadline.replace(at) {
            self.timers.remove(&(d, *id));
            self.detached -= 1;
        }
        e.closed = close;
        if !close {
            self.detached += 1;
        }
        self.timers.insert((at, *id));
        true
    }

    /// Removes a session at once (e.g. graceful CLOSE), returning its value.
    pub fn remove(&mut self, id: &ConnectionId) -> Option<T> {
        let e = self.entries.remove(id)?;
        if let Some(d) = e.deadline {
            self.timers.remove(&(d, *id));
        }
        if e.is_detached() {
            self.detached -= 1;
        }
        Some(e.value)
    }

    /// Sessions without a transport now (DetachedTTL armed, not closed).
    pub fn detached_len(&self) -> usize {
        self.detached
    }

    /// Removes the session detached longest ago (earliest TTL deadline) and
    /// returns it; `None` when no session is detached. Used to enforce a cap
    /// on detached sessions.
    pub fn evict_oldest_detached(&mut self) -> Option<(ConnectionId, T)> {
        let id = self
            .timers
            .iter()
            .map(|&(_, id)| id)
            .find(|id| self.entries.get(id).is_some_and(SessionEntry::is_detached))?;
        self.remove(&id).map(|v| (id, v))
    }

    /// Drops every session whose deadline passed and returns them, so the
    /// runtime can run `on_disconnect` for each.
    pub fn expire(&mut self, now: Instant) -> Vec<(ConnectionId, T)> {
        let mut out = Vec::new();
        while let Some(&(d, id)) = self.timers.first() {
            if d > now {
                break;
            }
            self.timers.pop_first();
            if let Some(e) = self.entries.remove(&id) {
                if e.is_detached() {
                    self.detached -= 1;
                }
                out.push((id, e.value));
            }
        }
        out
    }

    /// The earliest deadline at which [`SessionTable::expire`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(d, _)| d)
    }
}
