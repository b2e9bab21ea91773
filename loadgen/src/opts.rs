//! Command-line options (clap derive) and the small value parsers they use:
//! counts such as `10k` / `1m`, durations such as `30s` / `500ms`, and target
//! addresses (`tcp://`, `uds://`, bare `host:port`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Payload codec used by the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodecOpt {
    /// MessagePack compact (id 1): `[wire_name, text]`.
    Compact,
    /// MessagePack map (id 2): `{"type": wire_name, "data": {"text": text}}`.
    Map,
}

impl CodecOpt {
    /// The engine's codec kind.
    pub fn kind(self) -> amring::codec::CodecKind {
        match self {
            CodecOpt::Compact => amring::codec::CodecKind::Compact,
            CodecOpt::Map => amring::codec::CodecKind::Map,
        }
    }
}

/// Format of the final report on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable summary.
    Text,
    /// One JSON document following `loadgen/schema/report.schema.json`.
    Json,
}

/// How the generator waits for its sockets in the data phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IoMode {
    /// Closed-loop v2 over TCP: non-blocking sockets and one epoll instance
    /// per worker (cheapest: no io_uring task work or IPI per peer send);
    /// everything else (open loop, v3, Unix sockets) uses glommio.
    Auto,
    /// Always one glommio task per connection (io_uring readiness).
    Glommio,
}

/// Which server answers when `--target` is omitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmbeddedKind {
    /// The amring echo server (the normal case).
    Amring,
    /// The null server: answers every request with a pre-encoded reply
    /// prefix without decoding (measures the generator's own ceiling).
    Null,
}

/// Where the generator sends its traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix stream socket path (`@name` = Linux abstract socket).
    Uds(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "tcp://{a}"),
            Target::Uds(p) => write!(f, "uds://{}", p.display()),
        }
    }
}

/// Parses a target address (spec §1.1): `tcp://HOST:PORT`, `uds://PATH`,
/// `unix://PATH`, or a bare `HOST:PORT`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    if let Some(p) = s.strip_prefix("uds://").or_else(|| s.strip_prefix("unix://")) {
        if p.is_empty() {
            return Err("empty unix socket path".into());
        }
        return Ok(Target::Uds(PathBuf::from(p)));
    }
    let hp = s.strip_prefix("tcp://").unwrap_or(s);
    use std::net::ToSocketAddrs;
    let mut addrs = hp.to_socket_addrs().map_err(|e| format!("bad address {hp:?}: {e}"))?;
    addrs
        .next()
        .map(Target::Tcp)
        .ok_or_else(|| format!("address {hp:?} resolved to nothing"))
}

/// Parses a count with an optional `k` (10³), `m` (10⁶) or `g` (10⁹) suffix,
/// e.g. `10k`, `1.5m`, `250`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a number: {s:?}"))?;
    let v = v * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 || v.fract() != 0.0 {
        return Err(format!("not a whole non-negative count: {s:?}"));
    }
    Ok(v as u64)
}

fn parse_count_usize(s: &str) -> Result<usize, String> {
    let v = parse_count(s)?;
    usize::try_from(v).map_err(|_| format!("too large: {s:?}"))
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match parse_count_usize(s)? {
        0 => Err("must be at least 1".into()),
        v => Ok(v),
    }
}

/// Parses a duration: a number followed by `ns`, `us`, `ms`, `s`, `m` or `h`
/// (a bare number means seconds), e.g. `30s`, `500ms`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "ns" => v / 1e9,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown duration unit {unit:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// `loadgen`: drives an adaptivemsg server (amring, the Go reference, or your
/// own service) with the echo workload or a workload file (`--workload`) and
/// reports throughput, latency percentiles and errors (by kind and per
/// request kind). Also: `loadgen sweep` (a rate sweep and its knee),
/// `loadgen plot`, `loadgen merge`, `loadgen report`.
#[derive(Clone, Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Options {
    /// Server to drive: tcp://HOST:PORT, uds://PATH or HOST:PORT. Omitted: an
    /// embedded amring echo server is started on its own core(s).
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,

    /// Number of connections (e.g. 100, 10k).
    #[arg(long, default_value = "16", value_parser = parse_positive)]
    pub conns: usize,

    /// Streams per connection (stream ids 0..N-1).
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub streams: usize,

    /// Requests in flight per stream (replies come back in order per stream).
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub pipeline: usize,

    /// Total request rate in req/s (open loop, latency from the intended send
    /// time). Omitted: closed loop (a new request as soon as a reply arrives).
    #[arg(long, value_parser = parse_count)]
    pub rate: Option<u64>,

    /// Open loop: ramp the rate linearly from --rate at the start of the
    /// measured phase to this at its end (warm-up runs at --rate), and report
    /// every second of it (`seconds` in the report; `loadgen sweep --ramp`).
    /// TCP targets with `--io auto` only.
    #[arg(long, value_parser = parse_count)]
    pub ramp_to: Option<u64>,

    /// Length of the measured phase (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Warm-up before the measured phase; recorded separately, not reported.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// What to send and how to check the replies: `echo` (the built-in
    /// default, `loadgen/workloads/echo.toml`) or the path of a workload file
    /// (TOML: request kinds with weights, bodies as JSON with placeholders,
    /// reply checks; see `loadgen/README.md`).
    #[arg(long, default_value = "echo")]
    pub workload: String,

    /// Bytes of text per request (the first 16 are a unique request id).
    #[arg(long, default_value = "64", value_parser = parse_count_usize)]
    pub payload: usize,

    /// Payload codec offered in the handshake.
    #[arg(long, value_enum, default_value_t = CodecOpt::Compact)]
    pub codec: CodecOpt,

    /// Use protocol v3 (recovery) instead of v2.
    #[arg(long)]
    pub recovery: bool,

    /// Data-phase I/O: `auto` (epoll for closed-loop v2 over TCP) or `glommio`.
    #[arg(long, value_enum, default_value_t = IoMode::Auto)]
    pub io: IoMode,

    /// Generator cores (one pinned executor each; highest cores first).
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub cores: usize,

    /// Cores of the embedded server (lowest cores first); ignored with --target.
    #[arg(long, default_value = "1", value_parser = parse_positive)]
    pub server_cores: usize,

    /// Busy-poll time of each embedded server core before it parks (e.g.
    /// 100us; 0 = park at once, the library default). Applies to both
    /// embedded servers (amring: `ServerBuilder::spin_before_park`; null
    /// server: the same glommio setting), so latency floors stay comparable.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub server_spin: Duration,

    /// Which embedded server to start when --target is omitted.
    #[arg(long, value_enum, default_value_t = EmbeddedKind::Amring)]
    pub server: EmbeddedKind,

    /// Connection ramp in connects/s over all cores (e.g. 20k).
    #[arg(long, default_value = "20k", value_parser = parse_count)]
    pub connect_rate: u64,

    /// Connects (and handshakes) in flight at once per generator core.
    #[arg(long, default_value = "256", value_parser = parse_positive)]
    pub connect_concurrency: usize,

    /// A request without its reply after this long counts as a timeout and
    /// its connection is dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Also write the report (in --output format) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Busy-poll instead of sleeping (0 = always sleep): in open loop when
    /// the next send is due within this, in closed loop for up to this long
    /// after the last reply (TCP targets). A sleeping thread can wake late
    /// (on a VM, often by 0.1–2 ms), which delays sends against their
    /// schedule, or in closed loop adds the generator's own wake-up to every
    /// round trip; idle polling is reported (`generator.idle_spin_s`) and
    /// left out of the self-check's CPU share.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub gen_spin: Duration,

    /// Self-check: flag the run when the generator's p99 send slip (how late
    /// it noticed intended send times, open loop) exceeds this.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub max_slip: Duration,

    /// Self-check: flag the run when the generator's worker threads used more
    /// than this share of their cores' time (0..1).
    #[arg(long, default_value_t = 0.9)]
    pub max_generator_cpu: f64,

    /// Write one NDJSON line per second of the measured phase to this file:
    /// the second's replies and percentiles, plus its lossless HdrHistogram
    /// (V2 deflate encoding, base64), so runs can be merged and
    /// re-percentiled later (`loadgen merge`, `loadgen report`).
    #[arg(long)]
    pub intervals: Option<PathBuf>,

    /// Also write the figures in Bencher's metric format (BMF JSON) to this file.
    #[arg(long)]
    pub bmf: Option<PathBuf>,

    /// Write the measured latency histogram (ns) as an HdrHistogram interval log.
    #[arg(long)]
    pub hdr_log: Option<PathBuf>,

    /// Do not print the live progress line (it is printed only on a TTY anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Run the embedded server as threads of this process instead of a child
    /// process (the RSS per connection then includes the generator's side).
    #[arg(long)]
    pub server_in_process: bool,

    /// With --target: pid of the server process, to report its CPU time and
    /// RSS per connection like an embedded server's (e.g. the Go peer).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Internal: serve as the embedded server until stdin closes.
    #[arg(long, hide = true)]
    pub internal_serve: bool,
}

impl Options {
    /// Whole seconds of the measured phase (at least 1): the per-second
    /// records of `--intervals` and `--ramp-to`.
    pub fn measured_seconds(&self) -> usize {
        self.duration.as_secs_f64().ceil().max(1.0) as usize
    }

    /// Checks cross-field constraints clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate == Some(0) {
            return Err("--rate must be positive".into());
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        if self.connect_rate == 0 {
            return Err("--connect-rate must be positive".into());
        }
        if self.ramp_to.is_some() {
            if self.rate.is_none() {
                return Err("--ramp-to needs --rate (the rate the ramp starts from)".into());
            }
            if self.ramp_to == Some(0) {
                return Err("--ramp-to must be positive".into());
            }
            if self.io != IoMode::Auto || matches!(self.target, Some(Target::Uds(_))) {
                return Err("--ramp-to runs on the batched TCP path only (--io auto, a TCP target)".into());
            }
        }
        if self.conns.checked_mul(self.streams).is_none() {
            return Err("--conns × --streams overflows".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1m"), Ok(1_000_000));
        assert_eq!(parse_count("1.5K"), Ok(1_500));
        assert_eq!(parse_count("250"), Ok(250));
        assert_eq!(parse_count("20_000"), Ok(20_000));
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("x").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("tcp://127.0.0.1:9000"),
            Ok(Target::Tcp("127.0.0.1:9000".parse().unwrap()))
        );
        assert_eq!(
            parse_target("127.0.0.1:9000"),
            Ok(Target::Tcp("127.0.0.1:9000".parse().unwrap()))
        );
        assert_eq!(parse_target("uds:///tmp/x.sock"), Ok(Target::Uds("/tmp/x.sock".into())));
        assert_eq!(parse_target("unix://@abs"), Ok(Target::Uds("@abs".into())));
        assert!(parse_target("uds://").is_err());
        assert!(parse_target("nohost").is_err());
    }

    #[test]
    fn cli_parses_suffixes() {
        let o = Options::try_parse_from([
            "loadgen",
            "--conns",
            "10k",
            "--rate",
            "50k",
            "--duration",
            "500ms",
            "--codec",
            "map",
        ])
        .unwrap();
        assert_eq!(o.conns, 10_000);
        assert_eq!(o.rate, Some(50_000));
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(o.codec, CodecOpt::Map);
        assert!(o.validate().is_ok());
        assert!(Options::try_parse_from(["loadgen", "--conns", "0"]).is_err());
        let v3 = Options::try_parse_from(["loadgen", "--recovery"]).unwrap();
        assert!(v3.recovery && v3.validate().is_ok());
    }
}
