//! Per-worker measurements: one latency histogram per core (nanoseconds),
//! error counters by kind, merged once at the end of a run.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histograms track (ns): one hour.
pub const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// A new latency histogram (1 ns .. 1 h, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3).expect("static histogram bounds are valid")
}

/// Kinds of failure the generator counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP/UDS connect failed or timed out.
    Connect,
    /// The handshake failed (rejected, bad reply, EOF during handshake).
    Handshake,
    /// A request had no reply within `--timeout`.
    Timeout,
    /// A reply failed its request kind's check (echo: wrong text or wire name).
    Mismatch,
    /// The server answered with `am.message.ErrorReply`.
    Remote,
    /// The server closed a connection while it was in use.
    Closed,
    /// A read or write failed.
    Io,
    /// The server broke the framing rules (bad version byte, oversized frame).
    Protocol,
}

/// Error counters by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// See [`ErrorKind::Connect`].
    pub connect: u64,
    /// See [`ErrorKind::Handshake`].
    pub handshake: u64,
    /// See [`ErrorKind::Timeout`].
    pub timeout: u64,
    /// See [`ErrorKind::Mismatch`].
    pub mismatch: u64,
    /// See [`ErrorKind::Remote`].
    pub remote: u64,
    /// See [`ErrorKind::Closed`].
    pub closed: u64,
    /// See [`ErrorKind::Io`].
    pub io: u64,
    /// See [`ErrorKind::Protocol`].
    pub protocol: u64,
}

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        *self.slot(kind) += 1;
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Handshake => &mut self.handshake,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Mismatch => &mut self.mismatch,
            ErrorKind::Remote => &mut self.remote,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Protocol => &mut self.protocol,
        }
    }

    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.timeout
            + self.mismatch
            + self.remote
            + self.closed
            + self.io
            + self.protocol
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.handshake += other.handshake;
        self.timeout += other.timeout;
        self.mismatch += other.mismatch;
        self.remote += other.remote;
        self.closed += other.closed;
        self.io += other.io;
        self.protocol += other.protocol;
    }

    /// `(name, count)` pairs of the non-zero kinds.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        [
            ("connect", self.connect),
            ("handshake", self.handshake),
            ("timeout", self.timeout),
            ("mismatch", self.mismatch),
            ("remote", self.remote),
            ("closed", self.closed),
            ("io", self.io),
            ("protocol", self.protocol),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// Replies of one request kind of the workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Correct replies (all phases).
    pub ok: u64,
    /// `ErrorReply`s where none was expected.
    pub remote: u64,
    /// Other wrong replies (wrong type, wrong field, undecodable).
    pub mismatch: u64,
    /// Requests without a reply within `--timeout` (their connection dropped).
    pub timeout: u64,
}

/// A ramp run (`--ramp-to`): what one second of the measured phase saw
/// besides its latencies (those are in [`WorkerStats::intervals`]).
#[derive(Clone, Debug)]
pub struct SecondExtra {
    /// Requests scheduled in this second (their intended send times).
    pub offered: u64,
    /// How late they were noticed (ns).
    pub slip: Histogram<u64>,
    /// Errors counted in this second.
    pub errors: u64,
    /// Worker CPU time in this second (s), idle polling included.
    pub cpu_s: f64,
    /// Idle polling in this second (s).
    pub idle_spin_s: f64,
}

impl Default for SecondExtra {
    fn default() -> Self {
        SecondExtra {
            offered: 0,
            slip: new_histogram(),
            errors: 0,
            cpu_s: 0.0,
            idle_spin_s: 0.0,
        }
    }
}

/// Everything one worker measured.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Latencies of replies received in the measured phase (ns).
    pub hist: Histogram<u64>,
    /// Latencies of replies received during warm-up (ns; not reported).
    pub warmup_hist: Histogram<u64>,
    /// Correct replies in the measured phase.
    pub ok: u64,
    /// Errors by kind (all phases).
    pub errors: ErrorCounts,
    /// Connections that completed the handshake.
    pub connected: u64,
    /// Generator CPU time of this worker thread (s).
    pub cpu_s: f64,
    /// Open loop: how late the generator noticed each intended send time
    /// (ns): its own lag, not the server's (a full pipeline's backlog is
    /// not counted here).
    pub slip: Histogram<u64>,
    /// With `--intervals`: the measured latencies per second of the
    /// measured phase (`None`: not collected).
    pub intervals: Option<Vec<Histogram<u64>>>,
    /// Replies by request kind (index = the workload's kind).
    pub kinds: Vec<KindCounts>,
    /// Time the worker busy-polled with nothing to do (`--gen-spin`, s):
    /// CPU time that was idle, left out of the self-check's CPU share.
    pub idle_spin_s: f64,
    /// Correct replies that arrived after the measured phase, while the
    /// connections drained (not timed).
    pub drained: u64,
    /// Ramp runs: per second of the measured phase (`None`: not collected).
    pub seconds: Option<Vec<SecondExtra>>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            hist: new_histogram(),
            warmup_hist: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            connected: 0,
            cpu_s: 0.0,
            slip: new_histogram(),
            intervals: None,
            kinds: Vec::new(),
            idle_spin_s: 0.0,
            drained: 0,
            seconds: None,
        }
    }
}

impl WorkerStats {
    /// Records one latency (ns) in the measured histogram (values beyond the
    /// tracked range saturate).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
        self.ok += 1;
    }

    /// Records one warm-up latency (ns).
    #[inline]
    pub fn record_warmup(&mut self, ns: u64) {
        self.warmup_hist.saturating_record(ns.max(1));
    }

    /// Ramp runs: the record of second `idx` of the measured phase (`None`
    /// when not collected). Bounded by the caller (`idx` ≤ the run's seconds).
    #[inline]
    pub fn second(&mut self, idx: usize) -> Option<&mut SecondExtra> {
        let s = self.seconds.as_mut()?;
        if s.len() <= idx {
            s.resize_with(idx + 1, SecondExtra::default);
        }
        s.get_mut(idx)
    }

    /// The counters of request kind `k`.
    #[inline]
    pub fn kind(&mut self, k: usize) -> &mut KindCounts {
        if self.kinds.len() <= k {
            self.kinds.resize(k + 1, KindCounts::default());
        }
        &mut self.kinds[k]
    }

    /// Merges another worker's measurements into `self`.
    pub fn merge(&mut self, other: &WorkerStats) {
        // Both histograms share bounds, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
        let _ = self.warmup_hist.add(&other.warmup_hist);
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        self.connected += other.connected;
        self.cpu_s += other.cpu_s;
        self.idle_spin_s += other.idle_spin_s;
        self.drained += other.drained;
        if let Some(theirs) = &other.seconds {
            for (i, t) in theirs.iter().enumerate() {
                if let Some(m) = self.second(i) {
                    m.offered += t.offered;
                    let _ = m.slip.add(&t.slip);
                    m.errors += t.errors;
                    m.cpu_s += t.cpu_s;
                    m.idle_spin_s += t.idle_spin_s;
                } else {
                    self.seconds.get_or_insert_with(Vec::new).push(t.clone());
                }
            }
        }
        let _ = self.slip.add(&other.slip);
        for (k, c) in other.kinds.iter().enumerate() {
            let mine = self.kind(k);
            mine.ok += c.ok;
            mine.remote += c.remote;
            mine.mismatch += c.mismatch;
            mine.timeout += c.timeout;
        }
        if let Some(theirs) = &other.intervals {
            let mine = self.intervals.get_or_insert_with(Vec::new);
            while mine.len() < theirs.len() {
                mine.push(new_histogram());
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                let _ = m.add(t);
            }
        }
    }

    /// With intervals on, also records `ns` in the histogram of second `idx`
    /// of the measured phase (bounded by `max` seconds: a reply that comes
    /// later joins the last interval).
    #[inline]
    pub fn record_interval(&mut self, ns: u64, idx: usize, max: usize) {
        if let Some(iv) = &mut self.intervals {
            let idx = idx.min(max.saturating_sub(1));
            while iv.len() <= idx {
                iv.push(new_histogram());
            }
            iv[idx].saturating_record(ns.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_combines_histograms_and_counts() {
        let mut a = WorkerStats::default();
        let mut b = WorkerStats::default();
        for v in 1..=1000u64 {
            a.record(v * 1000); // 1..1000 µs
        }
        for _ in 0..1000 {
            b.record(5_000_000); // 5 ms
        }
        b.record_warmup(42);
        a.errors.add(ErrorKind::Timeout);
        b.errors.add(ErrorKind::Timeout);
        b.errors.add(ErrorKind::Mismatch);
        a.connected = 3;
        b.connected = 4;
        a.merge(&b);
        assert_eq!(a.ok, 2001 - 1);
        assert_eq!(a.hist.len(), 2000);
        assert_eq!(a.warmup_hist.len(), 1);
        assert_eq!(a.connected, 7);
        assert_eq!(a.errors.timeout, 2);
        assert_eq!(a.errors.mismatch, 1);
        assert_eq!(a.errors.total(), 3);
        // Half the samples are ≤ 1 ms, the other half are 5 ms.
        let p25 = a.hist.value_at_quantile(0.25);
        assert!((490_000..=510_000).contains(&p25), "p25 {p25}");
        let p75 = a.hist.value_at_quantile(0.75);
        assert!(a.hist.equivalent(p75, 5_000_000), "p75 {p75}");
        assert!(a.hist.equivalent(a.hist.max(), 5_000_000));
        assert_eq!(a.errors.nonzero(), vec![("timeout", 2), ("mismatch", 1)]);
    }

    #[test]
    fn saturates_beyond_range() {
        let mut s = WorkerStats::default();
        s.record(u64::MAX);
        s.record(0);
        assert_eq!(s.hist.len(), 2);
        assert_eq!(s.hist.min(), 1);
    }
}
