//! Rate sweeps: the data model of a sweep (a series of open-loop runs at
//! increasing offered rates, one [`Step`] each), the knee (the highest offered
//! rate that still meets a p99 objective), a text table and an SVG plot of
//! latency against offered rate.
//!
//! A step only counts against the server when the generator vouched for it
//! (`selfcheck_ok`); steps where the generator itself was saturated are
//! skipped by [`knee`], marked in [`table`] and drawn hollow and grey by
//! [`svg`].

use std::fmt::Write as _;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// One step of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The rate the generator was asked to send (requests per second).
    pub offered_rps: f64,
    /// Correct replies per second measured.
    pub achieved_rps: f64,
    /// Median latency (µs).
    pub p50_us: f64,
    /// 99th percentile latency (µs).
    pub p99_us: f64,
    /// 99.9th percentile latency (µs).
    pub p999_us: f64,
    /// Failed requests (errors of any kind).
    pub errors: u64,
    /// False when the generator itself was saturated or slipped: the step is
    /// not a server figure.
    pub selfcheck_ok: bool,
}

/// A labelled sweep (one server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The name of the server (or configuration) swept, e.g. `amring`.
    pub label: String,
    /// The p99 latency objective (µs), if any.
    pub slo_p99_us: Option<f64>,
    /// The steps, normally in ascending offered rate.
    pub steps: Vec<Step>,
    /// The knee, as found by [`knee`]. When `None` and an objective is given,
    /// [`svg`] and [`table`] compute it themselves.
    pub knee: Option<Knee>,
}

/// The knee: the highest offered rate that meets the p99 objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// Index of the step in [`Sweep::steps`] (the slice given to [`knee`]).
    pub step: usize,
    /// The offered rate of that step (requests per second).
    pub offered_rps: f64,
    /// The achieved rate of that step (requests per second).
    pub achieved_rps: f64,
    /// The p99 latency of that step (µs).
    pub p99_us: f64,
}

/// A server keeps up when it achieves at least this fraction of the offered rate.
const KEEP_UP: f64 = 0.95;

/// Latencies are clamped to at least this (µs) on the logarithmic axis.
const LATENCY_FLOOR_US: f64 = 0.01;

/// Why a step fails the objective for a server reason (empty: it does not).
/// Without an objective only errors and falling behind count.
fn server_failures(step: &Step, slo_p99_us: Option<f64>) -> Vec<&'static str> {
    let mut why = Vec::new();
    if let Some(slo) = slo_p99_us {
        let within = step.p99_us <= slo; // false for NaN
        if !within {
            why.push("p99 > SLO");
        }
    }
    if step.errors > 0 {
        why.push("errors");
    }
    let kept_up = step.achieved_rps >= KEEP_UP * step.offered_rps; // false for NaN
    if !kept_up {
        why.push("fell behind");
    }
    why
}

/// A step "meets" the objective when: `selfcheck_ok`, `errors == 0`,
/// `p99_us <= slo_p99_us`, and `achieved_rps >= 0.95 * offered_rps` (the
/// server kept up). NaN figures never meet.
pub fn meets(step: &Step, slo_p99_us: f64) -> bool {
    step.selfcheck_ok && server_failures(step, Some(slo_p99_us)).is_empty()
}

/// The knee: the highest-offered-rate step that meets the objective.
///
/// Steps are considered in ascending offered rate (ties in slice order), and
/// the search stops at the first step that fails for a server reason (p99
/// over the SLO, errors, or fell behind) after at least one met: the knee is
/// the last met step before the first server-side failure. Steps with
/// `selfcheck_ok == false` are skipped (neither met nor failure). `None` when
/// no step meets. [`Knee::step`] indexes `steps`.
pub fn knee(steps: &[Step], slo_p99_us: f64) -> Option<Knee> {
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|&a, &b| steps[a].offered_rps.total_cmp(&steps[b].offered_rps));
    let mut best = None;
    for i in order {
        let step = &steps[i];
        if !step.selfcheck_ok {
            continue;
        }
        if meets(step, slo_p99_us) {
            best = Some(i);
        } else if best.is_some() {
            break;
        }
    }
    best.map(|i| Knee {
        step: i,
        offered_rps: steps[i].offered_rps,
        achieved_rps: steps[i].achieved_rps,
        p99_us: steps[i].p99_us,
    })
}

/// The sweep's knee: the one it carries, else computed from its objective.
fn knee_of(sweep: &Sweep) -> Option<Knee> {
    sweep
        .knee
        .clone()
        .or_else(|| sweep.slo_p99_us.and_then(|slo| knee(&sweep.steps, slo)))
}

/// Human-readable table of one sweep: one line per step (offered, achieved,
/// p50, p99, p99.9, errors and a mark: met / FAIL with the reasons / flagged
/// when the generator's self-check failed), then a knee line such as
/// `knee: 812000 req/s offered (p99 640.0 µs <= SLO 1000.0 µs)` or
/// `knee: none (...)`.
pub fn table(sweep: &Sweep) -> String {
    let knee = knee_of(sweep);
    let mut out = String::new();
    let _ = match sweep.slo_p99_us {
        Some(slo) => writeln!(out, "sweep {} (SLO p99 {slo:.1} µs)", sweep.label),
        None => writeln!(out, "sweep {} (no SLO)", sweep.label),
    };
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>11} {:>11} {:>11} {:>8}  mark",
        "offered/s", "achieved/s", "p50 µs", "p99 µs", "p99.9 µs", "errors"
    );
    for (i, step) in sweep.steps.iter().enumerate() {
        let mut mark = if !step.selfcheck_ok {
            "flagged (generator self-check failed)".to_string()
        } else {
            let why = server_failures(step, sweep.slo_p99_us);
            match (why.is_empty(), sweep.slo_p99_us.is_some()) {
                (true, true) => "met".to_string(),
                (true, false) => "ok".to_string(),
                (false, _) => format!("FAIL ({})", why.join(", ")),
            }
        };
        if knee.as_ref().is_some_and(|k| k.step == i) {
            mark.push_str("  <- knee");
        }
        let _ = writeln!(
            out,
            "{:>12.0} {:>12.0} {:>11.1} {:>11.1} {:>11.1} {:>8}  {mark}",
            step.offered_rps, step.achieved_rps, step.p50_us, step.p99_us, step.p999_us, step.errors
        );
    }
    let _ = match (&knee, sweep.slo_p99_us) {
        (Some(k), Some(slo)) => writeln!(
            out,
            "knee: {:.0} req/s offered (p99 {:.1} µs <= SLO {slo:.1} µs)",
            k.offered_rps, k.p99_us
        ),
        (Some(k), None) => writeln!(out, "knee: {:.0} req/s offered (p99 {:.1} µs)", k.offered_rps, k.p99_us),
        (None, Some(slo)) => writeln!(
            out,
            "knee: none (no step meets p99 <= SLO {slo:.1} µs with no errors and >= {:.0}% of the offered rate)",
            KEEP_UP * 100.0
        ),
        (None, None) => writeln!(out, "knee: none (no SLO given)"),
    };
    out
}

// ---------------------------------------------------------------------------
// SVG plot

const WIDTH: u32 = 960;
const HEIGHT: u32 = 600;
const LEGEND_WIDTH: u32 = 230;
const FONT: &str = "sans-serif";

/// One colour per sweep (Tableau 10 without its grey and yellow), cycled.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x76, 0xb7, 0xb2),
];
/// Steps the generator did not vouch for.
const FLAGGED: RGBColor = RGBColor(0x9a, 0x9a, 0x9a);
/// The SLO line.
const SLO_COLOR: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Legend samples of the percentile styles.
const NEUTRAL: RGBColor = RGBColor(0x55, 0x55, 0x55);
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

/// The percentiles plotted, each with its own line style and marker.
#[derive(Clone, Copy)]
enum Pct {
    P50,
    P99,
    P999,
}

impl Pct {
    const ALL: [Pct; 3] = [Pct::P50, Pct::P99, Pct::P999];

    fn name(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P99 => "p99",
            Pct::P999 => "p99.9",
        }
    }

    fn of(self, step: &Step) -> f64 {
        match self {
            Pct::P50 => step.p50_us,
            Pct::P99 => step.p99_us,
            Pct::P999 => step.p999_us,
        }
    }

    fn stroke(self) -> u32 {
        match self {
            Pct::P99 => 2,
            Pct::P50 | Pct::P999 => 1,
        }
    }

    /// A marker at `at` (data or pixel coordinates).
    fn marker<'a, DB: DrawingBackend + 'a, C: Clone + 'static>(
        self,
        at: C,
        style: ShapeStyle,
    ) -> DynElement<'a, DB, C> {
        match self {
            Pct::P50 => Circle::new(at, 3, style).into_dyn(),
            Pct::P99 => TriangleMarker::new(at, 5, style).into_dyn(),
            Pct::P999 => (EmptyElement::at(at) + Rectangle::new([(-3, -3), (3, 3)], style)).into_dyn(),
        }
    }

    /// The line through `points`: p50 thin, p99 thick, p99.9 dashed.
    fn line<'a, DB: DrawingBackend + 'a, C: Clone + 'a>(
        self,
        points: Vec<C>,
        color: RGBColor,
    ) -> DynElement<'a, DB, C> {
        let style = color.stroke_width(self.stroke());
        match self {
            Pct::P50 | Pct::P99 => PathElement::new(points, style).into_dyn(),
            Pct::P999 => DashedPathElement::new(points, 5, 3, style).into_dyn(),
        }
    }
}

/// Clamps a latency for the logarithmic axis (NaN, infinities and values
/// below the floor become the floor).
fn clamp_us(v: f64) -> f64 {
    if v.is_finite() && v > LATENCY_FLOOR_US {
        v
    } else {
        LATENCY_FLOOR_US
    }
}

/// `v` with at most three significant digits, without trailing zeros.
/// (The unit thresholds below are where it would round up to 1000.)
fn fmt_num(v: f64) -> String {
    let s = match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// A rate with a k/M suffix: `812k`, `1.25M`.
fn fmt_rate(v: f64) -> String {
    match v.abs() {
        a if a >= 999_500.0 => format!("{}M", fmt_num(v / 1e6)),
        a if a >= 999.5 => format!("{}k", fmt_num(v / 1e3)),
        _ => fmt_num(v),
    }
}

/// A latency given in µs, in µs, ms or s.
fn fmt_us(v: f64) -> String {
    match v.abs() {
        a if a >= 999_500.0 => format!("{} s", fmt_num(v / 1e6)),
        a if a >= 999.5 => format!("{} ms", fmt_num(v / 1e3)),
        _ => format!("{} µs", fmt_num(v)),
    }
}

/// Shortens `s` to at most `max` characters.
fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The x range: offered rates, from 0 when the sweep starts near it.
fn x_range(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let Some((lo, hi)) = xs.fold(None, |acc: Option<(f64, f64)>, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    }) else {
        return (0.0, 1.0);
    };
    let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
    let pad = span * 0.05;
    let lo = if (0.0..=span).contains(&lo) { 0.0 } else { lo - pad };
    (lo, hi + pad)
}

/// The y range (µs, all values positive): from a power of ten (so the log
/// axis gets ticks), with `headroom` (a fraction of the span) above the data.
fn y_range(ys: impl Iterator<Item = f64>, headroom: f64) -> (f64, f64) {
    let Some((lo, hi)) = ys.fold(None, |acc: Option<(f64, f64)>, y| match acc {
        None => Some((y, y)),
        Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
    }) else {
        return (1.0, 1000.0);
    };
    let lo = 10f64.powf((lo / 1.2).log10().floor());
    let decades = (hi / lo).log10().max(1.0);
    (lo, hi * 10f64.powf(decades * headroom))
}

/// What the plot draws of one sweep.
struct Prepared<'s> {
    label: &'s str,
    color: RGBColor,
    /// The steps with a finite offered rate, in ascending offered rate.
    steps: Vec<&'s Step>,
    knee: Option<Knee>,
}

/// SVG document plotting p50, p99 and p99.9 latency (µs, logarithmic y axis)
/// against offered rate (req/s, linear x axis with k/M suffixes) for every
/// sweep: one colour per sweep, one line style and marker per percentile, a
/// dashed horizontal line at each SLO, each sweep's knee circled and labelled
/// (`amring knee 812k req/s`), steps whose generator self-check failed drawn
/// as hollow grey markers off the lines, and the legend beside the plot.
///
/// Degenerate input (no sweeps, no steps, one step, equal rates, zero,
/// negative or NaN latencies) gives a plot too: latencies are clamped to a
/// small positive floor and steps with a non-finite offered rate are left out.
pub fn svg(title: &str, sweeps: &[Sweep]) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, title, sweeps)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

fn plot_err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, title: &str, sweeps: &[Sweep]) -> Result<(), String> {
    root.fill(&WHITE).map_err(plot_err)?;
    let body = root
        .titled(title, (FONT, 22).into_font().color(&TEXT))
        .map_err(plot_err)?;
    let (plot_area, legend_area) = body.split_horizontally(WIDTH - LEGEND_WIDTH);

    let prepared: Vec<Prepared<'_>> = sweeps
        .iter()
        .enumerate()
        .map(|(i, sweep)| {
            let mut steps: Vec<&Step> = sweep.steps.iter().filter(|s| s.offered_rps.is_finite()).collect();
            steps.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
            Prepared {
                label: &sweep.label,
                color: PALETTE[i % PALETTE.len()],
                steps,
                knee: knee_of(sweep).filter(|k| k.offered_rps.is_finite()),
            }
        })
        .collect();
    let mut slos: Vec<f64> = sweeps
        .iter()
        .filter_map(|s| s.slo_p99_us)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    slos.sort_by(f64::total_cmp);
    slos.dedup();
    let knees = prepared.iter().filter(|p| p.knee.is_some()).count();

    let (x0, x1) = x_range(prepared.iter().flat_map(|p| {
        p.steps
            .iter()
            .map(|s| s.offered_rps)
            .chain(p.knee.iter().map(|k| k.offered_rps))
    }));
    let ys = prepared.iter().flat_map(|p| {
        p.steps
            .iter()
            .flat_map(|s| Pct::ALL.map(|pct| clamp_us(pct.of(s))))
            .chain(p.knee.iter().map(|k| clamp_us(k.p99_us)))
    });
    // Room at the top for the stacked knee labels.
    let (y0, y1) = y_range(ys.chain(slos.iter().copied()), 0.08 + 0.04 * knees as f64);

    let mut chart = ChartBuilder::on(&plot_area)
        .margin_top(10)
        .margin_left(10)
        .margin_right(20)
        .margin_bottom(10)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("offered rate (req/s)")
        .y_desc("latency (log scale)")
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| fmt_rate(*v))
        .y_label_formatter(&|v| fmt_us(*v))
        .label_style((FONT, 13).into_font().color(&TEXT))
        .axis_desc_style((FONT, 15).into_font().color(&TEXT))
        .bold_line_style(RGBColor(0xd8, 0xd8, 0xd8))
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .x_max_light_lines(1)
        .draw()
        .map_err(plot_err)?;

    if prepared.iter().all(|p| p.steps.is_empty()) {
        let style = (FONT, 18)
            .into_font()
            .color(&MUTED)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let mid = (x0 + (x1 - x0) / 2.0, (y0 * y1).sqrt());
        chart
            .draw_series(std::iter::once(Text::new("no data", mid, style)))
            .map_err(plot_err)?;
    }

    for (i, slo) in slos.iter().enumerate() {
        draw_slo(&mut chart, *slo, i, &slos, sweeps, (x0, x1))?;
    }
    for p in &prepared {
        draw_sweep(&mut chart, p)?;
    }
    for (row, p) in prepared.iter().filter(|p| p.knee.is_some()).enumerate() {
        draw_knee(&mut chart, p, row, (x0, x1), (y0, y1))?;
    }

    draw_legend(&legend_area, &prepared, !slos.is_empty())
}

/// The dashed horizontal line at one SLO, labelled at its right end.
fn draw_slo(
    chart: &mut Chart<'_, '_>,
    slo: f64,
    index: usize,
    slos: &[f64],
    sweeps: &[Sweep],
    (x0, x1): (f64, f64),
) -> Result<(), String> {
    chart
        .draw_series(std::iter::once(DashedPathElement::new(
            [(x0, slo), (x1, slo)],
            10,
            6,
            SLO_COLOR.stroke_width(2),
        )))
        .map_err(plot_err)?;
    let mut text = format!("SLO p99 {}", fmt_us(slo));
    if slos.len() > 1 {
        let whose: Vec<&str> = sweeps
            .iter()
            .filter(|s| s.slo_p99_us == Some(slo))
            .map(|s| s.label.as_str())
            .collect();
        let _ = write!(text, " ({})", whose.join(", "));
    }
    // Several SLOs close together: alternate the labels above and below.
    let (dy, vpos) = if index % 2 == 0 {
        (-4, VPos::Bottom)
    } else {
        (4, VPos::Top)
    };
    let style = (FONT, 13)
        .into_font()
        .color(&SLO_COLOR)
        .pos(Pos::new(HPos::Right, vpos));
    chart
        .draw_series(std::iter::once(
            EmptyElement::at((x1, slo)) + Text::new(text, (-6, dy), style),
        ))
        .map_err(plot_err)?;
    Ok(())
}

/// One sweep: a line per percentile through the vouched-for steps, a filled
/// marker on each of them, and hollow grey markers at the flagged ones.
fn draw_sweep(chart: &mut Chart<'_, '_>, p: &Prepared<'_>) -> Result<(), String> {
    for pct in Pct::ALL {
        let good: Vec<(f64, f64)> = p
            .steps
            .iter()
            .filter(|s| s.selfcheck_ok)
            .map(|s| (s.offered_rps, clamp_us(pct.of(s))))
            .collect();
        let flagged: Vec<(f64, f64)> = p
            .steps
            .iter()
            .filter(|s| !s.selfcheck_ok)
            .map(|s| (s.offered_rps, clamp_us(pct.of(s))))
            .collect();
        let area = chart.plotting_area();
        if good.len() > 1 {
            area.draw(&pct.line(good.clone(), p.color)).map_err(plot_err)?;
        }
        for c in good {
            area.draw(&pct.marker(c, p.color.filled())).map_err(plot_err)?;
        }
        for c in flagged {
            area.draw(&pct.marker(c, FLAGGED.stroke_width(1))).map_err(plot_err)?;
        }
    }
    Ok(())
}

/// A sweep's knee: a vertical guide, a ring around its p99 point and a label
/// at the top (stacked by `row`), on the side of the guide with more room.
fn draw_knee(
    chart: &mut Chart<'_, '_>,
    p: &Prepared<'_>,
    row: usize,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<(), String> {
    let Some(k) = &p.knee else { return Ok(()) };
    let x = k.offered_rps;
    chart
        .draw_series(std::iter::once(DashedPathElement::new(
            [(x, y0), (x, y1)],
            2,
            4,
            p.color.mix(0.7).stroke_width(1),
        )))
        .map_err(plot_err)?;
    chart
        .draw_series(std::iter::once(Circle::new(
            (x, clamp_us(k.p99_us)),
            9,
            p.color.stroke_width(2),
        )))
        .map_err(plot_err)?;
    let text = format!("{} knee {} req/s", p.label, fmt_rate(x));
    let left_room = (x - x0) / (x1 - x0);
    let (dx, hpos) = if left_room < 0.4 {
        (5, HPos::Left)
    } else {
        (-5, HPos::Right)
    };
    let style = (FONT, 13).into_font().color(&p.color).pos(Pos::new(hpos, VPos::Top));
    let dy = 4 + 17 * row as i32;
    chart
        .draw_series(std::iter::once(
            EmptyElement::at((x, y1)) + Text::new(text, (dx, dy), style),
        ))
        .map_err(plot_err)?;
    Ok(())
}

/// The legend, in its own area right of the plot: sweeps (with their knees),
/// percentile styles, the SLO line, the knee ring and the flagged marker.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, prepared: &[Prepared<'_>], slo: bool) -> Result<(), String> {
    let text = |s: &str, at: (i32, i32), size: u32, color: &RGBColor| {
        area.draw(&Text::new(
            s.to_string(),
            at,
            (FONT, size)
                .into_font()
                .color(color)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)
    };
    let (sx0, sx1, tx) = (8, 44, 52); // sample line from sx0 to sx1, text at tx
    let mut y = 24;

    if !prepared.is_empty() {
        text("servers", (sx0, y), 14, &TEXT)?;
        y += 20;
    }
    for p in prepared {
        area.draw(&PathElement::new([(sx0, y), (sx1, y)], p.color.stroke_width(2)))
            .map_err(plot_err)?;
        area.draw(&Circle::new(((sx0 + sx1) / 2, y), 3, p.color.filled()))
            .map_err(plot_err)?;
        text(&ellipsize(p.label, 24), (tx, y), 13, &TEXT)?;
        y += 16;
        let note = match &p.knee {
            Some(k) => format!("knee {} req/s", fmt_rate(k.offered_rps)),
            None => "no knee".to_string(),
        };
        text(&note, (tx, y), 12, &MUTED)?;
        y += 22;
    }

    y += 6;
    text("percentiles", (sx0, y), 14, &TEXT)?;
    y += 20;
    for pct in Pct::ALL {
        area.draw(&pct.line(vec![(sx0, y), (sx1, y)], NEUTRAL))
            .map_err(plot_err)?;
        area.draw(&pct.marker(((sx0 + sx1) / 2, y), NEUTRAL.filled()))
            .map_err(plot_err)?;
        text(pct.name(), (tx, y), 13, &TEXT)?;
        y += 20;
    }

    y += 6;
    if slo {
        area.draw(&DashedPathElement::new(
            [(sx0, y), (sx1, y)],
            10,
            6,
            SLO_COLOR.stroke_width(2),
        ))
        .map_err(plot_err)?;
        text("p99 objective (SLO)", (tx, y), 13, &TEXT)?;
        y += 22;
    }
    if prepared.iter().any(|p| p.knee.is_some()) {
        area.draw(&Circle::new(((sx0 + sx1) / 2, y), 8, NEUTRAL.stroke_width(2)))
            .map_err(plot_err)?;
        text("knee: highest rate within", (tx, y - 7), 13, &TEXT)?;
        text("the SLO (ring at its p99)", (tx, y + 8), 13, &TEXT)?;
        y += 38;
    }
    if prepared.iter().any(|p| p.steps.iter().any(|s| !s.selfcheck_ok)) {
        for (i, pct) in Pct::ALL.into_iter().enumerate() {
            area.draw(&pct.marker((sx0 + 4 + 14 * i as i32, y), FLAGGED.stroke_width(1)))
                .map_err(plot_err)?;
        }
        text("generator self-check", (tx, y - 7), 13, &TEXT)?;
        text("failed: not a server figure", (tx, y + 8), 13, &TEXT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, p99: f64) -> Step {
        Step {
            offered_rps: offered,
            achieved_rps: offered,
            p50_us: p99 / 4.0,
            p99_us: p99,
            p999_us: p99 * 2.0,
            errors: 0,
            selfcheck_ok: true,
        }
    }

    fn flagged(mut s: Step) -> Step {
        s.selfcheck_ok = false;
        s
    }

    fn sweep(label: &str, slo: Option<f64>, steps: Vec<Step>) -> Sweep {
        let knee = slo.and_then(|slo| knee(&steps, slo));
        Sweep {
            label: label.to_string(),
            slo_p99_us: slo,
            steps,
            knee,
        }
    }

    /// A plausible sweep: latency flat until about `cap` req/s, then climbing.
    fn shaped(cap: f64, base_us: f64, n: usize) -> Vec<Step> {
        (1..=n)
            .map(|i| {
                let offered = cap * 1.3 * i as f64 / n as f64;
                let load = offered / cap;
                let p99 =
                    base_us * (1.0 + 0.3 / (1.0 - load.min(0.999)).max(0.02)) * if load > 1.0 { 8.0 } else { 1.0 };
                Step {
                    offered_rps: offered,
                    achieved_rps: offered.min(cap),
                    p50_us: p99 / 5.0,
                    p99_us: p99,
                    p999_us: p99 * 2.5,
                    errors: 0,
                    selfcheck_ok: true,
                }
            })
            .collect()
    }

    #[test]
    fn knee_monotonic() {
        let steps = vec![
            step(100.0, 10.0),
            step(200.0, 50.0),
            step(300.0, 200.0),
            step(400.0, 900.0),
        ];
        let k = knee(&steps, 100.0).expect("knee");
        assert_eq!(k.step, 1);
        assert_eq!(k.offered_rps, 200.0);
        assert_eq!(k.p99_us, 50.0);
        assert_eq!(knee(&steps, 1000.0).map(|k| k.step), Some(3));
    }

    #[test]
    fn knee_skips_flagged_step() {
        // The flagged step in the middle is over the SLO but is not a server figure.
        let steps = vec![step(100.0, 10.0), flagged(step(200.0, 5000.0)), step(300.0, 20.0)];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(2));
        // A flagged step that would meet is not the knee either.
        let steps = vec![step(100.0, 10.0), flagged(step(200.0, 10.0))];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(0));
        // Only flagged steps: no knee.
        assert_eq!(knee(&[flagged(step(100.0, 10.0))], 100.0), None);
    }

    #[test]
    fn knee_stops_at_first_failure() {
        let steps = vec![
            step(100.0, 10.0),
            step(200.0, 20.0),
            step(300.0, 500.0),
            step(400.0, 30.0),
        ];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(1));
    }

    #[test]
    fn knee_failures_before_first_met_do_not_stop() {
        // A cold first step over the SLO does not end the search.
        let steps = vec![step(100.0, 500.0), step(200.0, 20.0), step(300.0, 500.0)];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(1));
    }

    #[test]
    fn knee_in_offered_order_with_original_index() {
        let steps = vec![step(300.0, 500.0), step(100.0, 10.0), step(200.0, 20.0)];
        let k = knee(&steps, 100.0).expect("knee");
        assert_eq!((k.step, k.offered_rps), (2, 200.0));
    }

    #[test]
    fn knee_none_when_nothing_meets() {
        let steps = vec![step(100.0, 500.0), step(200.0, 600.0)];
        assert_eq!(knee(&steps, 100.0), None);
        assert_eq!(knee(&[], 100.0), None);
        assert_eq!(knee(&[step(100.0, f64::NAN)], 100.0), None);
    }

    #[test]
    fn errors_disqualify() {
        let mut bad = step(200.0, 20.0);
        bad.errors = 1;
        assert!(!meets(&bad, 100.0));
        let steps = vec![step(100.0, 10.0), bad, step(300.0, 30.0)];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(0));
    }

    #[test]
    fn falling_behind_disqualifies() {
        let mut behind = step(200.0, 20.0);
        behind.achieved_rps = 189.0; // < 95 %
        assert!(!meets(&behind, 100.0));
        let mut just = step(200.0, 20.0);
        just.achieved_rps = 190.0; // exactly 95 %
        assert!(meets(&just, 100.0));
        let steps = vec![step(100.0, 10.0), behind, step(300.0, 30.0)];
        assert_eq!(knee(&steps, 100.0).map(|k| k.step), Some(0));
    }

    #[test]
    fn meets_boundaries() {
        assert!(meets(&step(100.0, 100.0), 100.0));
        assert!(!meets(&step(100.0, 100.1), 100.0));
        assert!(!meets(&flagged(step(100.0, 10.0)), 100.0));
        assert!(!meets(&step(100.0, 10.0), f64::NAN));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_rate(812_000.0), "812k");
        assert_eq!(fmt_rate(1_250_000.0), "1.25M");
        assert_eq!(fmt_rate(0.0), "0");
        assert_eq!(fmt_rate(950.0), "950");
        assert_eq!(fmt_rate(999_999.0), "1M");
        assert_eq!(fmt_rate(999.7), "1k");
        assert_eq!(fmt_us(1000.0), "1 ms");
        assert_eq!(fmt_us(640.0), "640 µs");
        assert_eq!(fmt_us(0.01), "0.01 µs");
        assert_eq!(fmt_us(2_500_000.0), "2.5 s");
    }

    fn two_sweeps() -> Vec<Sweep> {
        let mut a = shaped(900_000.0, 80.0, 12);
        a[11].selfcheck_ok = false; // the generator ran out of steam at the top
        let b = shaped(400_000.0, 120.0, 12);
        vec![sweep("amring", Some(1000.0), a), sweep("go-ref", Some(1000.0), b)]
    }

    #[test]
    fn svg_two_sweeps() {
        let sweeps = two_sweeps();
        let ka = sweeps[0].knee.clone().expect("amring knee");
        let kb = sweeps[1].knee.clone().expect("go-ref knee");
        let doc = svg("rate sweep", &sweeps).expect("svg");
        assert!(doc.contains("<svg"), "{doc}");
        assert!(doc.contains("rate sweep"));
        assert!(doc.contains("amring"));
        assert!(doc.contains("go-ref"));
        assert!(
            doc.contains(&format!("amring knee {} req/s", fmt_rate(ka.offered_rps))),
            "{doc}"
        );
        assert!(
            doc.contains(&format!("go-ref knee {} req/s", fmt_rate(kb.offered_rps))),
            "{doc}"
        );
        assert!(doc.contains("SLO p99 1 ms"), "{doc}");
        assert!(doc.contains("generator self-check"));
        // The SLO line is drawn in its own colour.
        assert!(doc.contains("#333333"));
    }

    #[test]
    fn svg_escapes_labels() {
        let s = sweep("a<b&c", Some(100.0), vec![step(100.0, 10.0)]);
        let doc = svg("t <&>", &[s]).expect("svg");
        assert!(doc.contains("a&lt;b&amp;c"));
        assert!(!doc.contains("a<b"));
    }

    #[test]
    fn svg_degenerate_input_does_not_panic() {
        let weird = Step {
            offered_rps: 100.0,
            achieved_rps: f64::NAN,
            p50_us: 0.0,
            p99_us: -5.0,
            p999_us: f64::NAN,
            errors: 3,
            selfcheck_ok: true,
        };
        let cases: Vec<Vec<Sweep>> = vec![
            vec![],
            vec![sweep("empty", None, vec![])],
            vec![sweep("empty", Some(100.0), vec![])],
            vec![sweep("one", Some(100.0), vec![step(1000.0, 10.0)])],
            vec![sweep("one-flagged", None, vec![flagged(step(1000.0, 10.0))])],
            vec![sweep(
                "same-x",
                Some(100.0),
                vec![step(500.0, 10.0), step(500.0, 20.0), step(500.0, 30.0)],
            )],
            vec![sweep("zero-x", Some(100.0), vec![step(0.0, 10.0), step(0.0, 20.0)])],
            vec![sweep("weird", Some(f64::NAN), vec![weird.clone(), weird.clone()])],
            vec![sweep("neg-slo", Some(-1.0), vec![weird.clone()])],
            vec![sweep(
                "non-finite",
                Some(f64::INFINITY),
                vec![
                    step(f64::NAN, 10.0),
                    step(f64::INFINITY, 10.0),
                    step(-100.0, f64::INFINITY),
                    step(200.0, f64::NEG_INFINITY),
                ],
            )],
            vec![sweep("all-zero", Some(0.0), vec![step(100.0, 0.0), step(200.0, 0.0)])],
            vec![Sweep {
                label: "bad-knee".into(),
                slo_p99_us: None,
                steps: vec![step(100.0, 10.0)],
                knee: Some(Knee {
                    step: 99,
                    offered_rps: f64::NAN,
                    achieved_rps: 0.0,
                    p99_us: f64::NAN,
                }),
            }],
            (0..20)
                .map(|i| sweep(&format!("s{i}"), Some(100.0), vec![step(100.0, 10.0)]))
                .collect(),
        ];
        for sweeps in cases {
            let doc = svg("degenerate", &sweeps).unwrap_or_else(|e| panic!("{e}"));
            assert!(doc.contains("<svg"));
            assert!(doc.contains("</svg>"));
            for s in &sweeps {
                let _ = table(s);
            }
        }
    }

    #[test]
    fn table_has_knee_line() {
        let steps = vec![
            step(100.0, 10.0),
            flagged(step(200.0, 10.0)),
            step(812_000.0, 640.0),
            step(900_000.0, 5000.0),
        ];
        let t = table(&sweep("amring", Some(1000.0), steps));
        assert!(
            t.contains("knee: 812000 req/s offered (p99 640.0 µs <= SLO 1000.0 µs)"),
            "{t}"
        );
        assert!(t.contains("<- knee"), "{t}");
        assert!(t.contains("flagged"), "{t}");
        assert!(t.contains("FAIL (p99 > SLO)"), "{t}");
        assert_eq!(t.lines().count(), 2 + 4 + 1, "{t}");

        let t = table(&sweep("slow", Some(1.0), vec![step(100.0, 10.0)]));
        assert!(t.lines().last().is_some_and(|l| l.starts_with("knee: none")), "{t}");
        let t = table(&sweep("no-slo", None, vec![step(100.0, 10.0)]));
        assert!(t.contains("knee: none (no SLO given)"), "{t}");
    }

    #[test]
    fn serde_round_trip() {
        // Round figures: serde_json's default float parsing is not exact to the last bit.
        let s = sweep(
            "amring",
            Some(1000.0),
            vec![step(100.0, 10.0), flagged(step(200.0, 20.5)), step(300.0, 2000.0)],
        );
        let json = serde_json::to_string(&s).expect("serialize");
        let back: Sweep = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }

    /// Writes a sample plot for a visual check:
    /// `PLOT_SAMPLE=/tmp/plot-sample.svg cargo test -p loadgen --lib plot::tests::write_sample -- --ignored`
    #[test]
    #[ignore = "writes a file; for a visual check"]
    fn write_sample() {
        let path = std::env::var("PLOT_SAMPLE").unwrap_or_else(|_| "/tmp/plot-sample.svg".to_string());
        let sweeps = two_sweeps();
        std::fs::write(&path, svg("rate sweep: echo, 64 B, 8 cores", &sweeps).expect("svg")).expect("write");
        for s in &sweeps {
            println!("{}", table(s));
        }
    }
}
