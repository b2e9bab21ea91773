//! The v3 replay ring (spec §7.10, §7.11): every data frame sent is kept,
//! already encoded, until the peer ACKs it, so a resume can resend it
//! byte-for-byte without re-encoding.
//!
//! ```text
//!   arena (BytesMut) ──encode──► split().freeze() ──► ring: [(seq, Bytes)] in seq order
//!                                                        ▲            │
//!                                     ACK(v) / attach(v) ┘            └─► replay after resume
//! ```
//!
//! Frames are encoded into a shared arena `BytesMut` and split off as
//! refcounted [`Bytes`]: one allocation serves many frames, and a frame's
//! memory is released when the last frame sharing its arena chunk is trimmed.
//!
//! The bound is accounted as `18 + payload_len` per frame (the v3 frame
//! length), exactly as the reference does.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Minimum free capacity kept in the encode arena before a frame is encoded.
const ARENA_CHUNK: usize = 64 * 1024;

/// One retained frame.
#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    frame: Bytes,
}

/// Retained, already-encoded v3 data frames in seq order, bounded in bytes.
#[derive(Debug)]
pub struct ReplayRing {
    /// Invariant: seqs strictly increasing and contiguous (`entries[i+1].seq == entries[i].seq + 1`).
    entries: VecDeque<Entry>,
    /// Invariant: `bytes == Σ entries[i].frame.len()` and `bytes <= limit`.
    bytes: usize,
    limit: usize,
    arena: BytesMut,
}

impl ReplayRing {
    /// An empty ring holding at most `limit` accounted bytes.
    pub fn new(limit: usize) -> ReplayRing {
        ReplayRing {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
            arena: BytesMut::new(),
        }
    }

    // ---- getters ----

    /// The bound in accounted bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Accounted bytes retained (`Σ 18 + payload_len`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of retained frames.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no frame is retained.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Accounted bytes still free.
    pub fn room(&self) -> usize {
        self.limit - self.bytes
    }

    /// Seq of the oldest retained frame.
    pub fn first_seq(&self) -> Option<u64> {
        self.entries.front().map(|e| e.seq)
    }

    /// Seq of the newest retained frame.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// The retained frame with `seq`, if any.
    pub fn get(&self, seq: u64) -> Option<&Bytes> {
        let first = self.first_seq()?;
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get(idx).map(|e| &e.frame)
    }

    /// Retained frames with seq ≥ `from`, in seq order.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &Bytes)> {
        let skip = match self.first_seq() {
            Some(first) => usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX),
            None => 0,
        };
        self.entries.iter().skip(skip).map(|e| (e.seq, &e.frame))
    }

    // ---- mutators ----

    /// The arena to encode the next frame into, with at least a chunk of
    /// spare capacity. It must be empty when handed out (the previous frame
    /// was split off or rolled back).
    pub fn arena(&mut self) -> &mut BytesMut {
        debug_assert!(self.arena.is_empty());
        if self.arena.capacity() < ARENA_CHUNK / 4 {
            self.arena.reserve(ARENA_CHUNK);
        }
        &mut self.arena
    }

    /// True when a frame of `frame_len` bytes fits under the bound.
    pub fn fits(&self, frame_len: usize) -> bool {
        frame_len <= self.room()
    }

    /// Splits the frame just encoded in the arena off and retains it under `seq`.
    ///
    /// The caller checked [`ReplayRing::fits`] and that `seq` follows the newest entry.
    pub fn commit(&mut self, seq: u64) -> &Bytes {
        let frame = self.arena.split().freeze();
        debug_assert!(self.fits(frame.len()));
        debug_assert!(self.last_seq().is_none() || self.last_seq() == Some(seq - 1));
        self.bytes += frame.len();
        self.entries.push_back(Entry { seq, frame });
        &self.entries.back().expect("just pushed").frame
    }

    /// Releases memory while no frame is being encoded (e.g. on detach): the
    /// arena's spare capacity is dropped and the retained frames are copied
    /// into one allocation of exactly their size, so a few small retained
    /// frames no longer pin whole arena chunks. Frame bytes are unchanged.
    pub fn compact(&mut self) {
        debug_assert!(self.arena.is_empty());
        self.arena = BytesMut::new();
        let mut buf = BytesMut::with_capacity(self.bytes);
        for e in &self.entries {
            buf.extend_from_slice(&e.frame);
        }
        let mut all = buf.freeze();
        for e in &mut self.entries {
            e.frame = all.split_to(e.frame.len());
        }
        self.entries.shrink_to_fit();
    }

    /// Releases the encode arena when no frame is retained and its spare
    /// capacity exceeds `keep` bytes (an idle connection keeps no arena
    /// chunk; the next send reserves a fresh one).
    pub fn release_idle(&mut self, keep: usize) {
        if self.entries.is_empty() && self.arena.is_empty() && self.arena.capacity() > keep {
            self.arena = BytesMut::new();
        }
    }

    /// Drops the frame encoded in the arena without retaining it.
    pub fn rollback(&mut self) {
        self.arena.clear();
    }

    /// Drops every frame with seq ≤ `upto` (cumulative ACK); returns how many.
    pub fn ack(&mut self, upto: u64) -> usize {
        let mut n = 0;
        while let Some(e) = self.entries.front() {
            if e.seq > upto {
                break;
            }
            self.bytes -= e.frame.len();
            self.entries.pop_front();
            n += 1;
        }
        debug_assert!(self.entries.is_empty() == (self.bytes == 0));
        n
    }

    /// Drops everything (permanent close) and releases the arena.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.entries.shrink_to_fit();
        self.bytes = 0;
        self.arena = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &mut ReplayRing, seq: u64, len: usize) -> bool {
        r.arena().extend_from_slice(&vec![seq as u8; len]);
        if !r.fits(len) {
            r.rollback();
            return false;
        }
        r.commit(seq);
        true
    }

    #[test]
    fn bound_ack_and_iteration() {
        let mut r = ReplayRing::new(100);
        assert!(push(&mut r, 1, 40));
        assert!(push(&mut r, 2, 40));
        assert!(!push(&mut r, 3, 40));
        assert_eq!((r.len(), r.bytes(), r.room()), (2, 80, 20));
        assert!(push(&mut r, 3, 20));
        assert_eq!(r.get(2).unwrap()[0], 2);
        assert!(r.get(4).is_none());
        assert_eq!(r.iter_from(2).map(|(s, _)| s).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(r.ack(0), 0);
        assert_eq!(r.ack(2), 2);
        assert_eq!((r.first_seq(), r.bytes()), (Some(3), 20));
        assert_eq!(r.iter_from(1).count(), 1);
        assert_eq!(r.ack(100), 1);
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn committed_frames_are_independent_of_arena_reuse() {
        let mut r = ReplayRing::new(1 << 20);
        for seq in 1..=1000u64 {
            assert!(push(&mut r, seq, 100));
        }
        for (seq, f) in r.iter_from(0) {
            assert!(f.iter().all(|&b| b == seq as u8));
        }
        r.clear();
        assert!(r.is_empty());
    }

    #[test]
    fn compact_keeps_frames_and_accounting() {
        let mut r = ReplayRing::new(1 << 20);
        for seq in 1..=10u64 {
            assert!(push(&mut r, seq, 30 + seq as usize));
        }
        r.ack(3);
        let before: Vec<(u64, Bytes)> = r.iter_from(0).map(|(s, f)| (s, f.clone())).collect();
        let bytes = r.bytes();
        r.compact();
        let after: Vec<(u64, Bytes)> = r.iter_from(0).map(|(s, f)| (s, f.clone())).collect();
        assert_eq!(before, after);
        assert_eq!(r.bytes(), bytes);
        assert!(push(&mut r, 11, 5), "encoding continues after compact");
        assert_eq!(r.last_seq(), Some(11));
    }
}
