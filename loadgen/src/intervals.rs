//! Per-interval output: one NDJSON line per second of the measured phase,
//! each carrying its counts, its percentiles and its lossless HdrHistogram in
//! the standard V2 deflate encoding (base64), the same bytes a `.hlog`
//! interval log holds. `loadgen merge` adds such logs up into one histogram
//! (any number of files, e.g. one per generator machine); `loadgen report`
//! prints a log's intervals and its whole-run percentiles.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::new_histogram;

/// Layout tag of an interval line.
pub const INTERVAL_SCHEMA: &str = "loadgen-interval/1";

/// One line of an intervals file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Interval {
    /// Always [`INTERVAL_SCHEMA`].
    pub schema: String,
    /// Start of the interval, seconds after the start of the measured phase.
    pub t_s: f64,
    /// Length of the interval (s).
    pub dur_s: f64,
    /// Correct replies in the interval.
    pub requests: u64,
    /// Median latency (µs).
    pub p50_us: f64,
    /// 99th percentile (µs).
    pub p99_us: f64,
    /// 99.9th percentile (µs).
    pub p999_us: f64,
    /// Largest latency (µs).
    pub max_us: f64,
    /// The interval's latencies (ns): HdrHistogram V2 deflate encoding, base64.
    pub hist: String,
}

impl Interval {
    /// The line for `h` (ns) covering `[t_s, t_s + dur_s)`.
    pub fn new(t_s: f64, dur_s: f64, h: &Histogram<u64>) -> std::io::Result<Interval> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let us = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1e3
            }
        };
        Ok(Interval {
            schema: INTERVAL_SCHEMA.to_string(),
            t_s,
            dur_s,
            requests: h.len(),
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: if h.is_empty() { 0.0 } else { h.max() as f64 / 1e3 },
            hist: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    /// The interval's histogram (ns), decoded.
    pub fn histogram(&self) -> std::io::Result<Histogram<u64>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hist)
            .map_err(std::io::Error::other)?;
        Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| std::io::Error::other(format!("{e:?}")))
    }
}

/// Writes one line per interval histogram (second `i` covers `[i, i + 1)` s).
pub fn write(path: &Path, per_second: &[Histogram<u64>]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (i, h) in per_second.iter().enumerate() {
        let line = serde_json::to_string(&Interval::new(i as f64, 1.0, h)?).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// Reads every interval line of `path` (blank lines are skipped).
pub fn read(path: &Path) -> std::io::Result<Vec<Interval>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut out = Vec::new();
    for (n, line) in f.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let iv: Interval = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::other(format!("{}:{}: {e}", path.display(), n + 1)))?;
        out.push(iv);
    }
    Ok(out)
}

/// The sum of every interval of every file: one histogram (ns).
pub fn merge(paths: &[&Path]) -> std::io::Result<Histogram<u64>> {
    let mut total = new_histogram();
    for p in paths {
        for iv in read(p)? {
            total
                .add(iv.histogram()?)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
    }
    Ok(total)
}

/// Percentile summary of a histogram (ns) as text.
pub fn summary(h: &Histogram<u64>) -> String {
    let us = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e3
        }
    };
    format!(
        "{} replies; latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        h.len(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        if h.is_empty() { 0.0 } else { h.max() as f64 / 1e3 }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_round_trips_losslessly_and_merges() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in [1_000u64, 2_000, 50_000, 7_000_000] {
            a.record(v).unwrap();
        }
        b.record(3_000).unwrap();
        let ia = Interval::new(0.0, 1.0, &a).unwrap();
        assert_eq!(ia.requests, 4);
        let back = ia.histogram().unwrap();
        assert_eq!(back, a, "lossless");
        let dir = std::env::temp_dir().join(format!("loadgen-iv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (p1, p2) = (dir.join("a.ndjson"), dir.join("b.ndjson"));
        write(&p1, &[a.clone()]).unwrap();
        write(&p2, &[b.clone(), a.clone()]).unwrap();
        assert_eq!(read(&p2).unwrap().len(), 2);
        let m = merge(&[&p1, &p2]).unwrap();
        assert_eq!(m.len(), 9);
        assert_eq!(m.max(), a.max());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
