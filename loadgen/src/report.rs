//! The final report: a serde struct (JSON, schema in
//! `loadgen/schema/report.schema.json`) and its text rendering.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::ErrorCounts;

/// Version tag of the JSON layout; bump on any incompatible change.
pub const SCHEMA_ID: &str = "loadgen-report/1";

/// The whole report of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_ID`].
    pub schema: &'static str,
    /// The address driven (`tcp://…`, `uds://…`).
    pub target: String,
    /// What the generator was configured to do.
    pub config: ConfigEcho,
    /// Connection set-up.
    pub connect: ConnectInfo,
    /// Correct replies received in the measured phase.
    pub requests: u64,
    /// Correct replies received during warm-up (not in the latency figures).
    pub warmup_requests: u64,
    /// Correct replies received after the measured phase, to requests sent
    /// in it: the connections drain before they close (not timed).
    pub drained_requests: u64,
    /// Length of the measured phase (s).
    pub elapsed_s: f64,
    /// `requests / elapsed_s`.
    pub throughput_rps: f64,
    /// Latency of the measured phase (µs); from the intended send time when `config.rate` is set.
    pub latency_us: Latency,
    /// Errors by kind (all phases).
    pub errors: ErrorCounts,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// Replies by request kind of the workload (all phases); connection-level
    /// errors (timeouts, closes, I/O) are counted in `errors` only.
    pub kinds: Vec<KindReport>,
    /// Generator resource use.
    pub generator: GeneratorInfo,
    /// The server, when embedded (`kind = "external"` otherwise).
    pub server: ServerInfo,
    /// Whether the generator, not the server, may have limited the run.
    pub selfcheck: SelfCheck,
    /// `--ramp-to` runs: every second of the measured phase (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<SecondReport>,
    /// The merged measured histogram (ns); not serialized.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// Echo of the options that shape the workload.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigEcho {
    /// Connections.
    pub conns: usize,
    /// Streams per connection.
    pub streams: usize,
    /// Requests in flight per stream.
    pub pipeline: usize,
    /// Open-loop total rate (req/s); `null` = closed loop.
    pub rate: Option<u64>,
    /// Measured phase (s).
    pub duration_s: f64,
    /// Warm-up (s).
    pub warmup_s: f64,
    /// Bytes of text per request.
    pub payload: usize,
    /// `compact` or `map`.
    pub codec: &'static str,
    /// The workload (`builtin:echo` or the file's path).
    pub workload: String,
    /// Protocol v3 requested.
    pub recovery: bool,
    /// Generator cores.
    pub cores: usize,
    /// Embedded server cores (0 with an external target).
    pub server_cores: usize,
    /// Busy-poll time of the embedded server cores before they park (µs; 0
    /// = park at once, and always 0 with an external target).
    pub server_spin_us: f64,
    /// Connect ramp (connects/s).
    pub connect_rate: u64,
}

/// Replies of one request kind of the workload.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// The kind's name in the workload file.
    pub name: String,
    /// Its request's wire name.
    pub wire: String,
    /// Correct replies.
    pub ok: u64,
    /// `ErrorReply`s where none was expected.
    pub remote: u64,
    /// Other wrong replies.
    pub mismatch: u64,
    /// Requests without a reply within `--timeout`.
    pub timeout: u64,
}

/// One second of a ramp run's measured phase (`--ramp-to`).
#[derive(Clone, Debug, Serialize)]
pub struct SecondReport {
    /// Start of the second, from the start of the measured phase (s).
    pub t_s: f64,
    /// Requests scheduled in it (the offered rate, req/s).
    pub offered: u64,
    /// Correct replies received in it (req/s).
    pub replies: u64,
    /// Latency percentiles of those replies (µs, from the intended send time).
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
    /// See `p50_us`.
    pub p999_us: f64,
    /// Errors counted in it.
    pub errors: u64,
    /// p99 of how late its sends were noticed (µs).
    pub slip_p99_us: f64,
    /// Share of the generator cores its workers used, idle polling left out.
    pub generator_cpu_share: f64,
    /// Neither share ≥ `--max-generator-cpu` nor slip > `--max-slip`.
    pub selfcheck_ok: bool,
}

impl SecondReport {
    /// Second `i` from its latency histogram (ns) and its other records.
    pub fn new(i: usize, h: &Histogram<u64>, x: &crate::stats::SecondExtra, opts: &crate::Options) -> SecondReport {
        let us = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1e3
            }
        };
        let slip_p99_us = if x.slip.is_empty() {
            0.0
        } else {
            x.slip.value_at_quantile(0.99) as f64 / 1e3
        };
        let share = (x.cpu_s - x.idle_spin_s).max(0.0) / opts.cores.max(1) as f64;
        SecondReport {
            t_s: i as f64,
            offered: x.offered,
            replies: h.len(),
            p50_us: us(0.50),
            p99_us: us(0.99),
            p999_us: us(0.999),
            errors: x.errors,
            slip_p99_us,
            generator_cpu_share: share,
            selfcheck_ok: share < opts.max_generator_cpu && slip_p99_us <= opts.max_slip.as_secs_f64() * 1e6,
        }
    }
}

/// Connection set-up figures.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectInfo {
    /// Connections attempted.
    pub attempted: usize,
    /// Connections that completed the handshake.
    pub connected: u64,
    /// From the first connect until every worker finished connecting (s).
    pub time_s: f64,
}

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Summary of a nanosecond histogram.
    pub fn from_ns(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |v: u64| v as f64 / 1000.0;
        Latency {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// Generator resource use.
#[derive(Clone, Debug, Serialize)]
pub struct GeneratorInfo {
    /// Generator cores.
    pub cores: usize,
    /// CPU time of the worker threads (getrusage RUSAGE_THREAD, s).
    pub cpu_s: f64,
    /// Part of `cpu_s` spent busy-polling with nothing to do (`--gen-spin`:
    /// open loop before a send, closed loop while waiting for replies);
    /// left out of the self-check's CPU share.
    pub idle_spin_s: f64,
}

/// The generator's check of itself: a run it flags was limited (or may have
/// been) by the generator and is never a server figure.
#[derive(Clone, Debug, Serialize)]
pub struct SelfCheck {
    /// Share of the generator cores' time its worker threads used (0..1),
    /// over connect, warm-up and the measured phase, idle busy-polling
    /// (`generator.idle_spin_s`) left out.
    pub generator_cpu_share: f64,
    /// Open loop: p99 / max of how late the generator noticed intended send
    /// times (µs); `null` in closed loop.
    pub slip_p99_us: Option<f64>,
    /// See `slip_p99_us`.
    pub slip_max_us: Option<f64>,
    /// `generator_cpu_share` ≥ `--max-generator-cpu`.
    pub saturated: bool,
    /// `slip_p99_us` > `--max-slip`.
    pub slipped: bool,
    /// Neither: the figures are the server's.
    pub ok: bool,
}

impl SelfCheck {
    /// The check of a run: `cpu_share` of the generator cores used, the slip
    /// histogram (ns; empty in closed loop), and the two bounds.
    pub fn new(cpu_share: f64, slip: &Histogram<u64>, max_slip_us: f64, max_cpu: f64) -> SelfCheck {
        let (p99, max) = if slip.is_empty() {
            (None, None)
        } else {
            (
                Some(slip.value_at_quantile(0.99) as f64 / 1e3),
                Some(slip.max() as f64 / 1e3),
            )
        };
        let saturated = cpu_share >= max_cpu;
        let slipped = p99.is_some_and(|p| p > max_slip_us);
        SelfCheck {
            generator_cpu_share: cpu_share,
            slip_p99_us: p99,
            slip_max_us: max,
            saturated,
            slipped,
            ok: !saturated && !slipped,
        }
    }

    /// One line for the text report.
    pub fn line(&self) -> String {
        let slip = match (self.slip_p99_us, self.slip_max_us) {
            (Some(p), Some(m)) => format!(", send slip p99 {p:.1} µs max {m:.1} µs"),
            _ => String::new(),
        };
        let what = if self.ok {
            "ok".to_string()
        } else {
            let mut why = Vec::new();
            if self.saturated {
                why.push("generator CPU saturated");
            }
            if self.slipped {
                why.push("sends left late");
            }
            format!("GENERATOR-LIMITED ({}): not a server figure", why.join(", "))
        };
        format!(
            "self-check: {what} (generator cpu {:.0}%{slip})",
            self.generator_cpu_share * 100.0
        )
    }
}

/// The embedded server's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ServerInfo {
    /// `external`, `embedded-null` or `embedded-amring`.
    pub kind: &'static str,
    /// `in-process`, `child-process` or `external`.
    pub process: &'static str,
    /// Server cores (0 when external).
    pub cores: usize,
    /// Server CPU time during the measured phase (s): read when the warm-up
    /// ends and when the measured phase ends, so `cpu_s / requests` is the
    /// server's CPU per request (before, it also held the warm-up and the
    /// drain).
    pub cpu_s: Option<f64>,
    /// Length of the window `cpu_s` was measured over (s): the measured
    /// phase, or less when the run ended early. Absent in reports written
    /// before `cpu_s` left out the warm-up.
    pub cpu_window_s: Option<f64>,
    /// Server process RSS before the first connect (bytes).
    pub rss_before_bytes: Option<u64>,
    /// Server process RSS once every connection is up, before any load (bytes).
    pub rss_connected_bytes: Option<u64>,
    /// `(rss_connected - rss_before) / connected` (bytes). In-process this
    /// includes the generator's own per-connection memory.
    pub rss_per_conn_bytes: Option<f64>,
    /// Per-connection memory from the server's own accounting, when it has one.
    pub accounted_per_conn_bytes: Option<f64>,
    /// Live connections by the server's own counters once every connection
    /// is up (amring: `ServerHandle::stats()`; includes the RSS probe's
    /// connection only if it has not been reaped yet).
    pub active_conns: Option<u64>,
}

impl ServerInfo {
    /// Figures for an external target.
    pub fn external() -> ServerInfo {
        ServerInfo {
            kind: "external",
            process: "external",
            cores: 0,
            cpu_s: None,
            cpu_window_s: None,
            rss_before_bytes: None,
            rss_connected_bytes: None,
            rss_per_conn_bytes: None,
            accounted_per_conn_bytes: None,
            active_conns: None,
        }
    }
}

impl Report {
    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The figures in Bencher's metric format (BMF): one benchmark named
    /// after the workload shape, with throughput (req/s), latency (p50 with
    /// p99 as its upper value, ns), errors and generator CPU. A self-check
    /// failure is recorded too (`selfcheck_ok`: 1 or 0), so a dashboard can
    /// drop flagged runs.
    pub fn to_bmf(&self) -> String {
        let c = &self.config;
        let name = format!(
            "loadgen/{}x{}x{}/{}/{}{}",
            c.conns,
            c.streams,
            c.pipeline,
            if c.recovery { "v3" } else { "v2" },
            c.codec,
            c.rate.map(|r| format!("/rate{r}")).unwrap_or_default()
        );
        let l = &self.latency_us;
        let doc = serde_json::json!({
            name: {
                "throughput": { "value": self.throughput_rps },
                "latency": { "value": l.p50 * 1e3, "lower_value": l.min * 1e3, "upper_value": l.p99 * 1e3 },
                "errors": { "value": self.errors_total },
                "generator_cpu_share": { "value": self.selfcheck.generator_cpu_share },
                "selfcheck_ok": { "value": u8::from(self.selfcheck.ok) },
            }
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let mode = match c.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            s,
            "loadgen: {} conns × {} streams × pipeline {}, {mode}, {:.2} s (+{:.2} s warm-up), payload {} B, {}, {}",
            c.conns,
            c.streams,
            c.pipeline,
            c.duration_s,
            c.warmup_s,
            c.payload,
            c.codec,
            if c.recovery { "v3" } else { "v2" }
        );
        let _ = writeln!(
            s,
            "target:     {} ({}, {})",
            self.target, self.server.kind, self.server.process
        );
        let _ = writeln!(
            s,
            "connect:    {}/{} up in {:.3} s",
            self.connect.connected, self.connect.attempted, self.connect.time_s
        );
        let _ = writeln!(
            s,
            "throughput: {:.0} req/s ({} replies in {:.2} s)",
            self.throughput_rps, self.requests, self.elapsed_s
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if !(self.kinds.len() == 1 && self.kinds[0].remote + self.kinds[0].mismatch + self.kinds[0].timeout == 0) {
            let _ = writeln!(s, "workload:   {}", c.workload);
            for k in &self.kinds {
                let _ = writeln!(
                    s,
                    "  {:<20} {:>10} ok  {:>8} error-replies  {:>8} mismatches  {:>6} timeouts  ({})",
                    k.name, k.ok, k.remote, k.mismatch, k.timeout, k.wire
                );
            }
        }
        let errs = self.errors.nonzero();
        if errs.is_empty() {
            let _ = writeln!(s, "errors:     none");
        } else {
            let list: Vec<String> = errs.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(s, "errors:     {} ({})", self.errors_total, list.join(" "));
        }
        let _ = write!(
            s,
            "cpu:        generator {:.2} s on {} core(s)",
            self.generator.cpu_s, self.generator.cores
        );
        if let Some(cpu) = self.server.cpu_s {
            if self.server.cores > 0 {
                let _ = write!(s, ", server {cpu:.2} s on {} core(s)", self.server.cores);
            } else {
                // An external server (`--server-pid`): its core count is unknown.
                let _ = write!(s, ", server {cpu:.2} s");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", self.selfcheck.line());
        if let Some(n) = self.server.active_conns {
            let _ = writeln!(s, "server:     {n} live connections by its own count once all were up");
        }
        if let (Some(b), Some(a), Some(per)) = (
            self.server.rss_before_bytes,
            self.server.rss_connected_bytes,
            self.server.rss_per_conn_bytes,
        ) {
            let _ = writeln!(
                s,
                "memory:     server RSS {:.1} MiB → {:.1} MiB with {} idle conns = {:.0} B/conn",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0,
                self.connect.connected,
                per
            );
        }
        s
    }
}
