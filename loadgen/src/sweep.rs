//! `loadgen sweep`: steps an open-loop rate and finds the knee, the highest
//! offered rate whose p99 meets `--slo-p99` (see [`crate::plot::knee`]).
//!
//! Every step is one ordinary run (connect, warm-up, measured phase) at its
//! rate against the same server: an embedded server is started once for the
//! whole sweep. Steps are linear from `--from` to `--to` in `--steps` steps,
//! or the list `--rates`. With `--ramp`, one run ramps the rate linearly
//! from `--from` to `--to` instead (`--ramp-to`), and each of its seconds is
//! a step. A step the generator's self-check flags is kept in
//! the table and the plot (hollow), but is never the knee. After the knee, the
//! sweep stops once `--stop-after` steps in a row have failed the objective.
//!
//! ```text
//! loadgen sweep --conns 16 --streams 16 --from 50k --to 800k --steps 8 \
//!     --duration 2s --slo-p99 1ms --svg sweep.svg --sweep-json sweep.json
//! loadgen plot amring.json go.json --svg both.svg --title "echo 16×16"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::opts::{parse_count, parse_duration, Options};
use crate::plot::{self, Step, Sweep};
use crate::{Launch, Report, RunError};

/// Options of `loadgen sweep`: every option of a run (`--rate` excepted),
/// plus the steps and the objective.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "loadgen sweep",
    version,
    about = "Steps an open-loop rate and finds the knee"
)]
pub struct SweepOptions {
    /// The run options of every step (`--duration` is each step's measured phase).
    #[command(flatten)]
    pub run: Options,

    /// The offered rates, comma separated (e.g. 10k,20k,40k); instead of --from/--to.
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub rates: Vec<u64>,

    /// First rate of a linear sweep (req/s).
    #[arg(long, value_parser = parse_count)]
    pub from: Option<u64>,

    /// Last rate of a linear sweep (req/s).
    #[arg(long, value_parser = parse_count)]
    pub to: Option<u64>,

    /// Steps of a linear sweep, --from and --to included.
    #[arg(long, default_value = "8")]
    pub steps: usize,

    /// Ramp instead of stepping: one run whose rate rises linearly from
    /// --from to --to over --duration; every second of it is a step (its
    /// scheduled sends, replies, percentiles, errors and self-check).
    #[arg(long)]
    pub ramp: bool,

    /// The p99 objective the knee must meet (e.g. 1ms, 250us).
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub slo_p99: Duration,

    /// Stop once this many steps in a row after the knee failed the objective (0 = run every step).
    #[arg(long, default_value = "2")]
    pub stop_after: usize,

    /// Name of the server in the table, JSON and plot (default: the target).
    #[arg(long)]
    pub label: Option<String>,

    /// Write the sweep (steps and knee) as JSON here, for `loadgen plot`.
    #[arg(long)]
    pub sweep_json: Option<PathBuf>,

    /// Write an SVG plot of p50/p99/p99.9 against the offered rate here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

impl SweepOptions {
    /// The offered rate of every step, ascending.
    pub fn rates(&self) -> Result<Vec<u64>, String> {
        if self.run.rate.is_some() {
            return Err("a sweep sets the rate itself: use --rates or --from/--to, not --rate".into());
        }
        if self.ramp && (self.from.is_none() || self.to.is_none() || !self.rates.is_empty()) {
            return Err("--ramp needs --from and --to (and no --rates)".into());
        }
        let mut rates = match (&self.rates[..], self.from, self.to) {
            (r, None, None) if !r.is_empty() => r.to_vec(),
            ([], Some(a), Some(b)) => {
                if a == 0 || b < a {
                    return Err("--from must be positive and at most --to".into());
                }
                let n = self.steps.max(1);
                if n == 1 {
                    vec![a]
                } else {
                    (0..n)
                        .map(|i| a + ((b - a) as f64 * i as f64 / (n - 1) as f64).round() as u64)
                        .collect()
                }
            }
            _ => return Err("give either --rates or both --from and --to".into()),
        };
        if rates.contains(&0) {
            return Err("rates must be positive".into());
        }
        rates.sort_unstable();
        rates.dedup();
        Ok(rates)
    }
}

/// One step's figures from its run's report.
pub fn step_of(rate: u64, r: &Report) -> Step {
    Step {
        offered_rps: rate as f64,
        achieved_rps: r.throughput_rps,
        p50_us: r.latency_us.p50,
        p99_us: r.latency_us.p99,
        p999_us: r.latency_us.p999,
        errors: r.errors_total,
        selfcheck_ok: r.selfcheck.ok,
    }
}

/// Runs the sweep, printing one line per step to stderr; returns the sweep
/// with its knee, having written `--sweep-json` and `--svg` when given.
pub fn run(o: &SweepOptions, launch: &Launch) -> Result<Sweep, RunError> {
    let rates = o.rates().map_err(RunError::Options)?;
    let slo_us = o.slo_p99.as_secs_f64() * 1e6;
    let mut server = match &o.run.target {
        Some(_) => None,
        None => Some(crate::start_embedded(&o.run, launch)?),
    };
    let label = o.label.clone().unwrap_or_else(|| match (&o.run.target, &server) {
        (Some(t), _) => t.to_string(),
        (None, Some(s)) => s.kind().to_string(),
        (None, None) => "server".into(),
    });
    if o.ramp {
        let sweep = ramp(o, &mut server, label, slo_us);
        if let Some(s) = server {
            s.shutdown();
        }
        return finish(o, sweep?);
    }
    let mut steps = Vec::new();
    let mut result = Ok(());
    let mut failed_in_a_row = 0;
    for (i, &rate) in rates.iter().enumerate() {
        let mut opts = o.run.clone();
        opts.rate = Some(rate);
        opts.intervals = None;
        opts.bmf = None;
        opts.hdr_log = None;
        let report = match crate::run_with(&opts, server.as_mut()) {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let step = step_of(rate, &report);
        let met = plot::meets(&step, slo_us);
        eprintln!(
            "sweep {label} step {}/{}: offered {rate} req/s, achieved {:.0}, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, errors {}{}",
            i + 1,
            rates.len(),
            step.achieved_rps,
            step.p50_us,
            step.p99_us,
            step.p999_us,
            step.errors,
            if !step.selfcheck_ok {
                " (generator-limited: not a server figure)"
            } else if met {
                " (meets the objective)"
            } else {
                " (misses the objective)"
            }
        );
        let had_knee = plot::knee(&steps, slo_us).is_some();
        steps.push(step.clone());
        // Past the knee, a step that misses counts towards stopping; so does a
        // flagged one whose server fell behind (it cannot be the knee either).
        let fell_behind = step.achieved_rps < 0.95 * step.offered_rps;
        if had_knee && !met && (step.selfcheck_ok || fell_behind) {
            failed_in_a_row += 1;
        } else if met {
            failed_in_a_row = 0;
        }
        if o.stop_after > 0 && failed_in_a_row >= o.stop_after && i + 1 < rates.len() {
            eprintln!(
                "sweep {label}: {failed_in_a_row} steps in a row past the knee miss the objective; skipping the last {} step(s)",
                rates.len() - i - 1
            );
            break;
        }
    }
    if let Some(s) = server {
        s.shutdown();
    }
    result?;
    let sweep = Sweep {
        label,
        slo_p99_us: Some(slo_us),
        knee: plot::knee(&steps, slo_us),
        steps,
    };
    finish(o, sweep)
}

/// The ramp: one run from --from to --to; each second of it is a step.
fn ramp(
    o: &SweepOptions,
    server: &mut Option<crate::embedded::EmbeddedServer>,
    label: String,
    slo_us: f64,
) -> Result<Sweep, RunError> {
    let (Some(from), Some(to)) = (o.from, o.to) else {
        return Err(RunError::Options("--ramp needs --from and --to".into()));
    };
    let mut opts = o.run.clone();
    opts.rate = Some(from);
    opts.ramp_to = Some(to);
    let report = crate::run_with(&opts, server.as_mut())?;
    let steps: Vec<Step> = report
        .seconds
        .iter()
        .map(|s| Step {
            offered_rps: s.offered as f64,
            achieved_rps: s.replies as f64,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            errors: s.errors,
            selfcheck_ok: s.selfcheck_ok,
        })
        .collect();
    for (i, s) in steps.iter().enumerate() {
        eprintln!(
            "ramp {label} second {}: offered {:.0} req/s, achieved {:.0}, p50 {:.1} µs, p99 {:.1} µs, errors {}{}",
            i + 1,
            s.offered_rps,
            s.achieved_rps,
            s.p50_us,
            s.p99_us,
            s.errors,
            if s.selfcheck_ok { "" } else { " (generator-limited)" }
        );
    }
    Ok(Sweep {
        label,
        slo_p99_us: Some(slo_us),
        knee: plot::knee(&steps, slo_us),
        steps,
    })
}

/// Writes `--sweep-json` and `--svg`.
fn finish(o: &SweepOptions, sweep: Sweep) -> Result<Sweep, RunError> {
    if let Some(path) = &o.sweep_json {
        let text = serde_json::to_string_pretty(&sweep).unwrap_or_default() + "\n";
        write(path, &text)?;
    }
    if let Some(path) = &o.svg {
        let title = format!("rate sweep: {}", describe(&o.run));
        let svg = plot::svg(&title, std::slice::from_ref(&sweep)).map_err(|e| RunError::Output {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        write(path, &svg)?;
    }
    Ok(sweep)
}

/// The workload shape, for plot titles.
fn describe(o: &Options) -> String {
    format!(
        "{}×{} conns×streams, pipeline {}, {} B, {}, {}",
        o.conns,
        o.streams,
        o.pipeline,
        o.payload,
        o.codec.kind().name(),
        if o.recovery { "v3" } else { "v2" }
    )
}

fn write(path: &std::path::Path, text: &str) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|source| RunError::Output {
        path: path.display().to_string(),
        source,
    })
}

/// Options of `loadgen plot`: sweeps written by `loadgen sweep --sweep-json`, on one plot.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "loadgen plot",
    version,
    about = "Plots sweeps (from loadgen sweep --sweep-json) together"
)]
pub struct PlotOptions {
    /// The sweep JSON files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The SVG to write.
    #[arg(long)]
    pub svg: PathBuf,

    /// The plot's title.
    #[arg(long, default_value = "rate sweep")]
    pub title: String,
}

/// Reads the sweeps, prints their tables and writes the plot.
pub fn plot_files(o: &PlotOptions) -> Result<Vec<Sweep>, String> {
    let sweeps = o
        .files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str::<Sweep>(&text).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let svg = plot::svg(&o.title, &sweeps)?;
    std::fs::write(&o.svg, svg).map_err(|e| format!("{}: {e}", o.svg.display()))?;
    Ok(sweeps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SweepOptions {
        let mut v = vec!["loadgen sweep"];
        v.extend_from_slice(args);
        SweepOptions::try_parse_from(v).unwrap()
    }

    #[test]
    fn rates_linear_and_listed() {
        assert_eq!(
            parse(&["--from", "10k", "--to", "50k", "--steps", "5"]).rates(),
            Ok(vec![10_000, 20_000, 30_000, 40_000, 50_000])
        );
        assert_eq!(
            parse(&["--rates", "30k,10k,20k,10k"]).rates(),
            Ok(vec![10_000, 20_000, 30_000])
        );
        assert_eq!(
            parse(&["--from", "7", "--to", "7", "--steps", "1"]).rates(),
            Ok(vec![7])
        );
        assert!(parse(&[]).rates().is_err());
        assert!(parse(&["--from", "10k"]).rates().is_err());
        assert!(parse(&["--from", "20k", "--to", "10k"]).rates().is_err());
        assert!(parse(&["--rates", "10k", "--from", "1", "--to", "2"]).rates().is_err());
        assert!(parse(&["--rates", "10k", "--rate", "5k"]).rates().is_err());
        assert!(parse(&["--rates", "0,5"]).rates().is_err());
        // The run options are all there.
        let o = parse(&["--rates", "1k", "--conns", "10k", "--recovery", "--slo-p99", "250us"]);
        assert_eq!(o.run.conns, 10_000);
        assert!(o.run.recovery);
        assert_eq!(o.slo_p99, Duration::from_micros(250));
    }
}
