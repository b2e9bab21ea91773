//! # loadgen
//!
//! A thread-per-core load generator for adaptivemsg servers (amring or the Go
//! reference). Every generator core runs a pinned glommio executor with its
//! own connections and its own HdrHistogram; the histograms are merged at the
//! end. The default workload is `am.capmsg.EchoRequest{text}` →
//! `am.capmsg.EchoReply{text}`, every reply checked against its request; a
//! workload file ([`workload`]) drives a service's own message types.
//!
//! * closed loop (default): a new request as soon as a reply arrives, up to
//!   `--pipeline` in flight per stream;
//! * open loop (`--rate`): every request has an intended send time on a fixed
//!   schedule and its latency is measured from it (no coordinated omission).
//!
//! The echo workload uses pre-encoded templates (no per-request
//! serialization): v2 frames are patched in place and replies compared byte
//! for byte; v3 goes through amring's sans-IO `proto::Connection`. TCP
//! connections run their data phase on one epoll loop per worker (`--io
//! auto`, `epoll_drive`), Unix sockets on glommio; see the README's
//! "Generator cost" and "Open loop" for the measurements behind that choice.
//!
//! `loadgen sweep` ([`sweep`]) steps an open-loop rate and finds the knee
//! ([`plot`]); `loadgen merge` / `loadgen report` read `--intervals` logs
//! ([`intervals`]).

mod conn_state;
mod connect;
pub mod embedded;
mod epoll_drive;
pub mod intervals;
pub mod msg;
pub mod null_server;
pub mod opts;
pub mod plot;
pub mod report;
pub mod stats;
pub mod sweep;
pub mod sys;
pub mod transport;
mod v2_drive;
mod v3_drive;
pub mod worker;
pub mod workload;

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use embedded::Launch;
pub use opts::Options;
pub use report::Report;

use report::{ConfigEcho, ConnectInfo, GeneratorInfo, Latency, SelfCheck, ServerInfo};
use stats::WorkerStats;
use worker::Shared;

/// Why a run could not be carried out (per-request failures are counted in
/// the report instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Options(String),
    /// The embedded server did not start.
    #[error("embedded server: {0}")]
    Server(std::io::Error),
    /// A generator executor did not start.
    #[error("generator executor: {0}")]
    Executor(std::io::Error),
    /// A generator thread panicked.
    #[error("generator worker {0} failed")]
    Worker(usize),
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Cores of the generator workers: the highest allowed cores first (of the
/// process's affinity mask, so `taskset -c 1 loadgen` keeps its workers on
/// CPU 1).
pub fn generator_cores(n: usize) -> Vec<usize> {
    let cpus = sys::allowed_cpus();
    (0..n).map(|i| cpus[cpus.len() - 1 - (i % cpus.len())]).collect()
}

/// Runs one load test as configured; the embedded server (if any) is launched as `launch` says.
pub fn run(opts: &Options, launch: &Launch) -> Result<Report, RunError> {
    prepare(opts)?;
    let mut server = match &opts.target {
        Some(_) => None,
        None => Some(start_embedded(opts, launch)?),
    };
    let report = run_with(opts, server.as_mut());
    if let Some(s) = server {
        s.shutdown();
    }
    report
}

/// Starts the embedded server `opts` describes (`--server`, `--server-cores`,
/// `--recovery`, `--server-spin`), for [`run_with`] (e.g. once for all steps of a sweep).
pub fn start_embedded(opts: &Options, launch: &Launch) -> Result<embedded::EmbeddedServer, RunError> {
    sys::raise_nofile_limit();
    embedded::start(
        embedded::ServerSpec {
            kind: opts.server,
            cores: opts.server_cores,
            recovery: opts.recovery,
            spin: opts.server_spin,
        },
        launch,
    )
    .map_err(RunError::Server)
}

/// Checks the options and loads the workload (the file as parsed, and compiled for the codec).
fn prepare(opts: &Options) -> Result<(workload::WorkloadFile, workload::Workload), RunError> {
    opts.validate().map_err(RunError::Options)?;
    let file = workload::WorkloadFile::load(&opts.workload).map_err(|e| RunError::Options(e.to_string()))?;
    if opts.target.is_none() && !file.is_builtin_echo() {
        return Err(RunError::Options(format!(
            "--workload {}: the embedded server answers the echo workload only; give --target",
            opts.workload
        )));
    }
    let workload = file
        .compile(opts.codec.kind(), opts.payload)
        .map_err(|e| RunError::Options(e.to_string()))?;
    Ok((file, workload))
}

/// Runs one load test against `opts.target`, or (without one) against
/// `server`, an embedded server started by [`start_embedded`] and left running.
pub fn run_with(opts: &Options, mut server: Option<&mut embedded::EmbeddedServer>) -> Result<Report, RunError> {
    let (file, workload) = prepare(opts)?;
    sys::raise_nofile_limit();
    let target = match (&opts.target, &server) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => opts::Target::Tcp(s.addr()),
        (None, None) => return Err(RunError::Options("no --target and no embedded server".into())),
    };
    // An external server can still be measured when its pid is given.
    let ext_pid = opts.target.as_ref().and(opts.server_pid);
    let rss_of = |server: Option<&embedded::EmbeddedServer>| match server {
        Some(s) => Some(s.rss()),
        None => ext_pid.map(sys::rss_bytes),
    };
    let cpu_of = |server: Option<&embedded::EmbeddedServer>| match server {
        Some(s) => Some(s.cpu_time()),
        None => ext_pid.map(sys::process_cpu_time),
    };
    let rss_before = rss_of(server.as_deref());

    let shared = Arc::new(Shared::new(opts.clone(), target.clone(), workload, opts.cores));
    let connect_start = Instant::now();
    let mut handles = Vec::new();
    for (i, core) in generator_cores(opts.cores).into_iter().enumerate() {
        match worker::spawn(i, core, shared.clone()) {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.abort.store(true, Ordering::SeqCst);
                for h in handles {
                    let _ = h.join();
                }
                return Err(RunError::Executor(e));
            }
        }
    }

    let progress = !opts.no_progress && sys::stdout_is_tty();
    // Connect phase: wait until every worker is done connecting (bounded).
    let connect_deadline = connect_start + Duration::from_secs(600);
    let mut last_tick = Instant::now();
    while shared.connected_workers.load(Ordering::Acquire) < opts.cores {
        if Instant::now() > connect_deadline || shared.finished_workers.load(Ordering::Acquire) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        if progress && last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            print_progress(&shared, connect_start, "connecting");
        }
    }
    let connect_time = connect_start.elapsed();
    let rss_connected = rss_of(server.as_deref());
    let server_conns = server.as_deref_mut().and_then(|s| s.conn_stats());
    let t0 = Instant::now();
    let _ = shared.t0.set(t0);

    // Load phase: progress once a second until the workers return. The
    // server's CPU time is read when the measured phase begins and when it
    // ends, so that `server.cpu_s / requests` is the CPU per request.
    let (warm_end, end) = shared.phases(t0);
    // (when, the server's CPU then) at the start and at the end of the measured phase.
    let mut mark_start: Option<(Instant, Option<Duration>)> = None;
    let mut mark_end: Option<(Instant, Option<Duration>)> = None;
    while shared.finished_workers.load(Ordering::Acquire) < handles.len() {
        let next_mark = match (mark_start, mark_end) {
            (None, _) => Some(warm_end),
            (Some(_), None) => Some(end),
            _ => None,
        };
        let tick = Duration::from_millis(20);
        std::thread::sleep(next_mark.map_or(tick, |m| m.saturating_duration_since(Instant::now()).min(tick)));
        let now = Instant::now();
        if mark_start.is_none() && now >= warm_end {
            mark_start = Some((now, cpu_of(server.as_deref())));
        }
        if mark_start.is_some() && mark_end.is_none() && now >= end {
            mark_end = Some((now, cpu_of(server.as_deref())));
        }
        if progress && last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let phase = if Instant::now() < warm_end {
                "warm-up"
            } else {
                "measuring"
            };
            print_progress(&shared, t0, phase);
        }
        if Instant::now() > end + opts.timeout + Duration::from_secs(30) {
            break; // hard deadline: report what we have; stuck threads are abandoned
        }
    }
    if progress {
        eprint!("\r\x1b[2K");
    }
    // A run that ended early (errors, the hard deadline) counts up to now.
    let (end_at, cpu_end) = mark_end.unwrap_or_else(|| (Instant::now(), cpu_of(server.as_deref())));
    let (server_cpu, cpu_window_s) = match (mark_start, cpu_end) {
        (Some((start_at, Some(b))), Some(a)) => (
            Some(a.saturating_sub(b).as_secs_f64()),
            Some(end_at.saturating_duration_since(start_at).as_secs_f64()),
        ),
        _ => (None, None),
    };

    let mut total = WorkerStats::default();
    let all_finished = shared.finished_workers.load(Ordering::Acquire) == handles.len();
    for (i, h) in handles.into_iter().enumerate() {
        if !all_finished {
            shared.abort.store(true, Ordering::SeqCst);
            return Err(RunError::Worker(i));
        }
        let st = h.join().map_err(|_| RunError::Worker(i))?;
        total.merge(&st);
    }

    let elapsed = opts.duration.as_secs_f64();
    let per_conn = match (rss_before, rss_connected) {
        (Some(b), Some(a)) if total.connected > 0 => Some((a as f64 - b as f64) / total.connected as f64),
        _ => None,
    };
    let server_info = ServerInfo {
        kind: server.as_ref().map_or("external", |s| s.kind()),
        process: server.as_ref().map_or("external", |s| s.process()),
        cores: if server.is_some() { opts.server_cores } else { 0 },
        cpu_window_s,
        cpu_s: server_cpu,
        rss_before_bytes: rss_before,
        rss_connected_bytes: rss_connected,
        rss_per_conn_bytes: per_conn,
        accounted_per_conn_bytes: None,
        active_conns: server_conns.map(|(active, _)| active),
    };
    let seconds = match &total.seconds {
        None => Vec::new(),
        Some(extra) => {
            let secs = opts.measured_seconds();
            let none = stats::new_histogram();
            let iv = total.intervals.as_deref().unwrap_or_default();
            (0..secs)
                .map(|i| {
                    let h = iv.get(i).unwrap_or(&none);
                    let x = extra.get(i).cloned().unwrap_or_default();
                    report::SecondReport::new(i, h, &x, opts)
                })
                .collect()
        }
    };
    let report = Report {
        schema: report::SCHEMA_ID,
        seconds,
        target: target.to_string(),
        config: ConfigEcho {
            conns: opts.conns,
            streams: opts.streams,
            pipeline: opts.pipeline,
            rate: opts.rate,
            duration_s: opts.duration.as_secs_f64(),
            warmup_s: opts.warmup.as_secs_f64(),
            payload: opts.payload,
            codec: opts.codec.kind().name(),
            workload: file.source.clone(),
            recovery: opts.recovery,
            cores: opts.cores,
            server_cores: if opts.target.is_some() { 0 } else { opts.server_cores },
            server_spin_us: if opts.target.is_some() {
                0.0
            } else {
                opts.server_spin.as_secs_f64() * 1e6
            },
            connect_rate: opts.connect_rate,
        },
        connect: ConnectInfo {
            attempted: opts.conns,
            connected: total.connected,
            time_s: connect_time.as_secs_f64(),
        },
        requests: total.ok,
        warmup_requests: total.warmup_hist.len(),
        drained_requests: total.drained,
        elapsed_s: elapsed,
        throughput_rps: total.ok as f64 / elapsed,
        latency_us: Latency::from_ns(&total.hist),
        errors: total.errors,
        errors_total: total.errors.total(),
        kinds: file
            .kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let c = total.kinds.get(i).copied().unwrap_or_default();
                report::KindReport {
                    name: k.name.clone(),
                    wire: k.wire.clone(),
                    ok: c.ok,
                    remote: c.remote,
                    mismatch: c.mismatch,
                    timeout: c.timeout,
                }
            })
            .collect(),
        generator: GeneratorInfo {
            cores: opts.cores,
            cpu_s: total.cpu_s,
            idle_spin_s: total.idle_spin_s,
        },
        server: server_info,
        selfcheck: SelfCheck::new(
            // The workers ran for the connect phase, warm-up and the measured phase.
            (total.cpu_s - total.idle_spin_s).max(0.0)
                / (opts.cores.max(1) as f64 * (connect_time + opts.warmup + opts.duration).as_secs_f64().max(1e-9)),
            &total.slip,
            opts.max_slip.as_secs_f64() * 1e6,
            opts.max_generator_cpu,
        ),
        histogram: total.hist,
    };
    if let Some(path) = &opts.intervals {
        let secs = opts.measured_seconds();
        let mut per_second = total.intervals.take().unwrap_or_default();
        per_second.resize_with(secs, stats::new_histogram);
        intervals::write(path, &per_second).map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    if let Some(path) = &opts.bmf {
        std::fs::write(path, report.to_bmf()).map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    if let Some(path) = &opts.hdr_log {
        write_hdr_log(&report.histogram, opts.duration, path).map_err(|source| RunError::Output {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(report)
}

fn print_progress(shared: &Shared, since: Instant, phase: &str) {
    let done: u64 = shared.live.iter().map(|l| l.done.load(Ordering::Relaxed)).sum();
    let errors: u64 = shared.live.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum();
    let up: u64 = shared.live.iter().map(|l| l.conns_up.load(Ordering::Relaxed)).sum();
    let p99 = shared
        .live
        .iter()
        .map(|l| l.p99_ns.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let secs = since.elapsed().as_secs_f64().max(1e-9);
    eprint!(
        "\r\x1b[2K[{phase} {secs:5.1}s] {:>10.0} req/s  errors {errors}  p99 {:.1} µs  conns {up}",
        done as f64 / secs,
        p99 as f64 / 1000.0
    );
    let _ = std::io::stderr().flush();
}

fn write_hdr_log(h: &hdrhistogram::Histogram<u64>, dur: Duration, path: &std::path::Path) -> std::io::Result<()> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2Serializer;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ser = V2Serializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("loadgen latency (ns) of the measured phase")
        .with_max_value_divisor(1e3)
        .begin_log_with(&mut file, &mut ser)
        .map_err(std::io::Error::other)?;
    w.write_histogram(h, Duration::ZERO, dur, None)
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    drop(w);
    file.flush()
}

#[cfg(test)]
mod core_pick_tests {
    use super::*;

    /// Under an affinity mask of one high CPU (as `taskset -c 1` leaves it),
    /// workers and an embedded server go on that CPU, not on CPU 0.
    #[test]
    fn cores_come_from_the_affinity_mask() {
        let last = *sys::allowed_cpus().last().unwrap();
        std::thread::spawn(move || {
            // SAFETY: a set holding one CPU, applied to this thread only.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            unsafe { libc::CPU_SET(last, &mut set) };
            let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
            assert_eq!(rc, 0, "sched_setaffinity");
            assert_eq!(sys::allowed_cpus(), vec![last]);
            assert_eq!(generator_cores(2), vec![last, last]);
            assert_eq!(embedded::server_cores(1), vec![last]);
        })
        .join()
        .unwrap();
        // The whole mask again on this thread: highest first for workers, lowest for servers.
        let all = sys::allowed_cpus();
        assert_eq!(generator_cores(1), vec![*all.last().unwrap()]);
        assert_eq!(embedded::server_cores(1), vec![all[0]]);
    }
}
