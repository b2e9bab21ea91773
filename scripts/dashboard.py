#!/usr/bin/env python3
"""Regression dashboard for amring (python3 stdlib only, no network).

Histories (one JSON object per line, appended, never rewritten):
  bench/history/criterion.jsonl     amring-criterion/1  (`append --criterion`, run by scripts/bench.sh)
  bench/history/compare-go.jsonl    amring-compare-go/2 (scripts/compare-go.sh, or `append --compare`)
  bench/history/loadgen-runs.jsonl  amring-loadgen-run/1 (`append --loadgen REPORT.json ...`)
  bench/history/loadgen.jsonl       amring-loadgen/1    (legacy compare-go.sh lines, read only)

Commands:
  dashboard.py [render] [--out FILE] [--fail-on-regression]   write bench/dashboard.html
  dashboard.py check [--fail-on-regression]                    print the latest run's flags
  dashboard.py append [--criterion [--since MARKER] [--mode quick|full]]
                      [--loadgen REPORT.json ... [--label NAME]] [--compare DIR_OR_JSON]
  dashboard.py --self-test                                      unit tests (rule, parsers, exit codes)
Common: --history DIR (default bench/history), --window K (default 10).

Regression rule (also in scripts/README.md): every metric of every run is judged
against the last K earlier runs of the same series with the same comparability
key (criterion: mode + machine; compare-go: machine + run duration + server spin; loadgen:
machine + server kind / duration). With >= 3 such runs it is flagged when
|value - median| > max(3 x 1.4826 x MAD, 1 % of the median); with 1-2 runs when
the change exceeds 10 %; never with none. Only the direction that is worse
(lower throughput, higher time/latency/CPU/syscalls/memory) is a regression.
Only amring's own series are judged (the Go reference and the null/floor
servers are drawn for context). A target met by the previous run that carries
it and missed by the latest one is a regression too. `--fail-on-regression`
exits 1 when any metric of the *latest* run of any history is a regression.
"""

from __future__ import annotations

import argparse
import datetime
import html
import io
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTDATA = os.path.join(ROOT, "scripts", "testdata")

MAD_K = 3.0  # flag beyond this many (scaled) MADs
MAD_SCALE = 1.4826  # MAD -> sigma for normal noise
MIN_REL = 0.01  # never flag below 1 % even when the history is flat
FEW_RUNS_REL = 0.10  # threshold with 1-2 earlier runs
WINDOW_K = 10  # earlier runs a value is compared with

CRITERION_FILE = "criterion.jsonl"
COMPARE_FILE = "compare-go.jsonl"
LOADGEN_RUNS_FILE = "loadgen-runs.jsonl"
LEGACY_LOADGEN_FILE = "loadgen.jsonl"

# Line names drawn beside amring: never judged, only context.
REFERENCE_LINES = ("go", "floor", "null")


# ------------------------------------------------------------------ helpers --


def load_jsonl(path: str) -> list[dict]:
    """Parsed objects of a .jsonl file; unreadable or non-object lines are reported and skipped."""
    out: list[dict] = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                print(f"dashboard: {path}:{n}: skipped ({e})", file=sys.stderr)
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                print(f"dashboard: {path}:{n}: skipped (not a JSON object)", file=sys.stderr)
    return out


def num(x) -> float | None:
    """`x` as a finite float, or None (also for bools, strings, NaN)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def obj(x) -> dict:
    """`x` if it is a dict, else an empty dict (tolerates nulls and junk)."""
    return x if isinstance(x, dict) else {}


def lst(x) -> list:
    """`x` if it is a list, else an empty list."""
    return x if isinstance(x, list) else []


def machine_key(m) -> str:
    """What makes two runs' machines comparable: CPU model and count."""
    m = obj(m)
    return f"{m.get('cpu') or '?'} x{m.get('cpus') or '?'}"


def load1(rec: dict) -> str | None:
    """The 1-minute load average recorded with a run (before it, for criterion), as text."""
    m = obj(rec.get("machine"))
    la = m.get("loadavg_before") or m.get("loadavg")
    if isinstance(la, list):
        la = la[0] if la else None
    elif isinstance(la, str):
        la = la.split()[0] if la.split() else None
    return None if la is None else str(la)


def judge(latest: float, earlier: list[float], higher_is_better: bool = False) -> dict:
    """Compares `latest` with the earlier values of the same metric (already windowed).

    Returns the ratios (latest/previous, latest/median of earlier), the median
    and threshold used, and `flag` in {"regression", "improvement", "ok", "new"}.
    """
    res = {"prev": None, "ratio_prev": None, "median": None, "ratio_median": None, "threshold": None, "flag": "new", "n": len(earlier)}
    if not earlier:
        return res
    prev = earlier[-1]
    med = statistics.median(earlier)
    res["prev"] = prev
    res["median"] = med
    res["ratio_prev"] = latest / prev if prev else None
    res["ratio_median"] = latest / med if med else None
    if len(earlier) >= 3:
        mad = statistics.median(abs(v - med) for v in earlier)
        thr = max(MAD_K * MAD_SCALE * mad, MIN_REL * abs(med))
    else:
        thr = FEW_RUNS_REL * abs(med)
    res["threshold"] = thr
    delta = latest - med
    if abs(delta) <= thr:
        res["flag"] = "ok"
    else:
        worse = delta < 0 if higher_is_better else delta > 0
        res["flag"] = "regression" if worse else "improvement"
    return res


# ------------------------------------------------------------ series model --
#
# Every history is turned into charts: a chart is one metric of one series
# (one bench id, one compare-go case, ...), x = run index in its history file,
# with one line per server (amring, go, floor, ...).


class Chart:
    """One metric over runs, one line per server/implementation."""

    def __init__(self, group: str, cid: str, title: str, unit: str, higher_is_better: bool, kind: str = "trend"):
        self.group = group
        self.id = cid
        self.title = title
        self.unit = unit
        self.hib = higher_is_better
        self.kind = kind  # "trend" or "target"
        self.lines: dict[str, list[dict]] = {}
        self.target: list[tuple[int, float]] = []  # (run, target value) for target charts
        self.band = None  # (x_from, x_to, median, threshold) of the latest judged point

    def add(self, line: str, run: int, value: float, rec: dict, ckey: str, lo=None, hi=None, met=None):
        """Adds one point (`rec` is the history record, for sha/date)."""
        self.lines.setdefault(line, []).append(
            {
                "run": run,
                "value": value,
                "lo": lo,
                "hi": hi,
                "sha": str(rec.get("sha") or "?")[:10],
                "dirty": bool(rec.get("dirty")),
                "date": str(rec.get("date") or "?"),
                "ckey": ckey,
                "load": load1(rec),
                "met": met,
                "flag": None,
                "judge": None,
            }
        )


def judged_line(name: str) -> bool:
    """Only amring's own series are judged; references are context."""
    return name not in REFERENCE_LINES and name != "external"


def evaluate(charts: list[Chart], latest_run: int, window: int) -> list[dict]:
    """Flags every point of every judged line; returns the regressions of `latest_run`."""
    regs = []
    for ch in charts:
        for name, pts in ch.lines.items():
            if ch.kind == "target":
                prev_met = None
                for p in pts:
                    if p["met"] is None:
                        continue
                    if p["met"] is False and prev_met is True:
                        p["flag"] = "regression"
                    elif p["met"] is True and prev_met is False:
                        p["flag"] = "improvement"
                    else:
                        p["flag"] = "ok" if prev_met is not None else "new"
                    prev_met = p["met"]
                    if p["run"] == latest_run and p["flag"] == "regression":
                        regs.append({"chart": ch, "line": name, "point": p, "judge": None})
                continue
            if not judged_line(name):
                continue
            for j, p in enumerate(pts):
                same = [q for q in pts[:j] if q["ckey"] == p["ckey"]][-window:]
                jd = judge(p["value"], [q["value"] for q in same], ch.hib)
                loads = [float(q["load"]) for q in same if (q["load"] or "").replace(".", "", 1).isdigit()]
                jd["window_load"] = f"{statistics.median(loads):.2f}" if loads else None
                p["flag"], p["judge"] = jd["flag"], jd
                if j == len(pts) - 1 and jd["threshold"] is not None:
                    ch.band = (same[0]["run"], p["run"], jd["median"], jd["threshold"])
                if p["run"] == latest_run and jd["flag"] == "regression":
                    regs.append({"chart": ch, "line": name, "point": p, "judge": jd})
    return regs


# ------------------------------------------------------------------ parsers --


def criterion_charts(runs: list[dict]) -> list[Chart]:
    """One chart per bench id (ids ending in /amring, /go, /floor share a chart; others are one "median" line)."""
    charts: dict[str, Chart] = {}
    for i, r in enumerate(runs):
        ckey = f"{r.get('mode') or '?'}|{machine_key(r.get('machine'))}"
        for bid, e in sorted(obj(r.get("benches")).items()):
            e = obj(e)
            v = num(e.get("median_ns"))
            if v is None:
                continue
            head, _, tail = str(bid).rpartition("/")
            if head and tail in ("amring",) + REFERENCE_LINES:
                title, line = head, tail
            else:
                title, line = str(bid), "median"  # amring code or an in-process baseline (e.g. rmp_serde_*)
            ch = charts.get(title)
            if ch is None:
                ch = charts[title] = Chart("criterion", f"criterion/{title}", title, "ns", False)
            ch.add(line, i, v, r, ckey, num(e.get("ci_low_ns")), num(e.get("ci_high_ns")))
    return [charts[k] for k in sorted(charts)]


COMPARE_METRICS = (
    # keys (first present wins: the agreed name, then compare-go.sh's spelling), label, unit, higher is better
    (("throughput_rps",), "throughput", "req/s", True),
    (("p50_us",), "p50", "µs", False),
    (("p99_us",), "p99", "µs", False),
    (("server_cpu_us_per_rt",), "server CPU / RT", "µs", False),
    (("syscalls_per_rt",), "syscalls / RT", "", False),
    (("rss_per_conn_b", "rss_per_conn_bytes"), "RSS / conn", "B", False),
    (("connect_s", "connect_time_s"), "connect time", "s", False),
)
# ratio keys: agreed short name, then compare-go.sh's metric-named key
RATIO_KEYS = {
    "throughput": ("throughput", "throughput_rps"),
    "p50": ("p50", "p50_us"),
    "p99": ("p99", "p99_us"),
    "cpu_per_rt": ("cpu_per_rt", "server_cpu_us_per_rt"),
    "syscalls_per_rt": ("syscalls_per_rt",),
}


def first_num(d: dict, keys) -> float | None:
    """The first of `keys` holding a number in `d`."""
    for k in keys:
        v = num(d.get(k))
        if v is not None:
            return v
    return None


def version_text(v) -> str:
    """Protocol version as v2/v3 whether recorded as 2 or "v2"."""
    v = str(v)
    return v if v.startswith("v") else f"v{v}"


def case_title(c: dict) -> str:
    """Human title of a compare-go case."""
    parts = [str(c.get("kind") or "?")]
    conns, streams = c.get("conns"), c.get("streams")
    parts.append(f"{conns if conns is not None else '?'}×{streams if streams is not None else '?'}")
    if c.get("pipeline") not in (None, 1):
        parts.append(f"pipeline {c.get('pipeline')}")
    if c.get("payload") is not None:
        parts.append(f"{c.get('payload')} B")
    if c.get("version") is not None:
        parts.append(version_text(c.get("version")))
    if c.get("rate") is not None:
        parts.append(f"{c.get('rate')} req/s offered")
    return " ".join(parts)


def case_id(c: dict) -> str:
    """The compare-go case id, derived from its parameters when absent."""
    if c.get("id"):
        return str(c["id"])
    return "_".join(f"{k}{c.get(k)}" for k in ("kind", "conns", "streams", "pipeline", "payload", "version", "rate") if c.get(k) is not None) or "?"


def compare_charts(runs: list[dict]) -> tuple[list[Chart], list[Chart]]:
    """Per compare-go case and metric one chart (amring, go, floor lines); one chart per target."""
    charts: dict[str, Chart] = {}
    order: list[str] = []
    targets: dict[str, Chart] = {}
    for i, r in enumerate(runs):
        params = obj(r.get('params'))
        # Runs whose servers busy-poll differently are not comparable (the spin
        # costs CPU at light load): older runs without the field had no spin.
        ckey = f"{machine_key(r.get('machine'))}|{params.get('duration')}|spin={params.get('server_spin') or '0'}"
        for c in lst(r.get("cases")):
            c = obj(c)
            cid = case_id(c)
            for keys, label, unit, hib in COMPARE_METRICS:
                key = f"compare/{cid}/{keys[0]}"
                for sname, s in sorted(obj(c.get("servers")).items()):
                    s = obj(s)
                    v = first_num(obj(s.get("median")), keys)
                    if v is None:
                        continue
                    ch = charts.get(key)
                    if ch is None:
                        ch = charts[key] = Chart("compare", key, f"{cid} · {label}", unit, hib)
                        ch.case = cid
                        ch.case_title = case_title(c)
                        order.append(key)
                    ch.add(str(sname), i, v, r, ckey, first_num(obj(s.get("min")), keys), first_num(obj(s.get("max")), keys))
        for t in lst(r.get("targets")):
            t = obj(t)
            name = str(t.get("name") or "?")
            ch = targets.get(name)
            if ch is None:
                ch = targets[name] = Chart("targets", f"target/{name}", name, "", False, kind="target")
            v = num(t.get("value"))
            met = t.get("met") if isinstance(t.get("met"), bool) else None
            tv = num(t.get("target"))
            if tv is not None:
                ch.target.append((i, tv))
            if v is None and met is None:
                continue
            ch.add("value", i, v if v is not None else float("nan"), r, "", met=met)
            ch.lines["value"][-1]["detail"] = str(t.get("detail") or "")
            if tv is None and t.get("target") is not None:
                ch.lines["value"][-1]["detail"] = f"target {t.get('target')}; " + ch.lines["value"][-1]["detail"]
    # case order: first appearance; metrics in COMPARE_METRICS order within a case
    return [charts[k] for k in order], [targets[k] for k in sorted(targets)]


def legacy_case_key(c: dict) -> str:
    """The case name of a legacy amring-loadgen/1 line."""
    return str(c.get("case") or json.dumps(c.get("params", {}), sort_keys=True))


def legacy_loadgen_charts(runs: list[dict]) -> list[Chart]:
    """Legacy compare-go lines (amring-loadgen/1): per case throughput, p50, p99, amring and go."""
    charts: dict[str, Chart] = {}
    order: list[str] = []
    mets = (("throughput_rps", "throughput", "req/s", True), ("p50_us", "p50", "µs", False), ("p99_us", "p99", "µs", False))
    for i, r in enumerate(runs):
        mk = machine_key(r.get("machine"))
        for c in lst(r.get("cases")):
            c = obj(c)
            case = legacy_case_key(c)
            for metric, label, unit, hib in mets:
                key = f"legacy/{case}/{metric}"
                for sname in ("amring", "go"):
                    s = obj(c.get(sname))
                    v = num(s.get(metric))
                    if v is None:
                        continue
                    ch = charts.get(key)
                    if ch is None:
                        ch = charts[key] = Chart("legacy", key, f"{case} · {label}", unit, hib)
                        order.append(key)
                    ch.add(sname, i, v, r, f"{mk}|{s.get('server_kind')}")
    return [charts[k] for k in order]


LABEL_OF_KIND = {"embedded-amring": "amring", "embedded-null": "null", "external": "external"}


def loadgen_series(report: dict) -> str:
    """Series name of a loadgen report: its workload, without the server."""
    c = obj(report.get("config"))
    s = f"{c.get('conns', '?')}×{c.get('streams', '?')} pipeline {c.get('pipeline', '?')} {c.get('payload', '?')} B {c.get('codec', '?')} {'v3' if c.get('recovery') else 'v2'}"
    if c.get("rate") is not None:
        s += f" {c.get('rate')} req/s offered"
    return s


def loadgen_run_charts(runs: list[dict]) -> list[Chart]:
    """Appended single loadgen reports: per workload throughput, p50, p99, server CPU/RT; one line per label."""
    charts: dict[str, Chart] = {}
    order: list[str] = []
    for i, r in enumerate(runs):
        rep = obj(r.get("report"))
        series = loadgen_series(rep)
        lat = obj(rep.get("latency_us"))
        srv = obj(rep.get("server"))
        label = str(r.get("label") or LABEL_OF_KIND.get(str(srv.get("kind")), "external"))
        # Reports without cpu_window_s counted the warm-up and the drain in
        # cpu_s: no CPU per request from them.
        cpu_s = num(srv.get("cpu_s")) if "cpu_window_s" in srv else None
        reqs = num(rep.get("requests"))
        vals = (
            ("throughput_rps", "throughput", "req/s", True, num(rep.get("throughput_rps"))),
            ("p50_us", "p50", "µs", False, num(lat.get("p50"))),
            ("p99_us", "p99", "µs", False, num(lat.get("p99"))),
            ("cpu_per_rt", "server CPU / RT", "µs", False, cpu_s * 1e6 / reqs if cpu_s is not None and reqs else None),
        )
        ckey = f"{machine_key(r.get('machine'))}|{srv.get('kind')}|{obj(rep.get('config')).get('duration_s')}"
        for metric, label_m, unit, hib, v in vals:
            if v is None:
                continue
            key = f"loadgen/{series}/{metric}"
            ch = charts.get(key)
            if ch is None:
                ch = charts[key] = Chart("loadgen", key, f"{series} · {label_m}", unit, hib)
                order.append(key)
            ch.add(label, i, v, r, ckey)
    return [charts[k] for k in order]


class History:
    """Every history file of a directory, parsed into charts and judged."""

    def __init__(self, history_dir: str, window: int = WINDOW_K):
        self.dir = history_dir
        self.criterion = load_jsonl(os.path.join(history_dir, CRITERION_FILE))
        self.compare = load_jsonl(os.path.join(history_dir, COMPARE_FILE))
        self.loadgen_runs = load_jsonl(os.path.join(history_dir, LOADGEN_RUNS_FILE))
        self.legacy = load_jsonl(os.path.join(history_dir, LEGACY_LOADGEN_FILE))
        self.crit_charts = criterion_charts(self.criterion)
        self.cmp_charts, self.target_charts = compare_charts(self.compare)
        self.lg_charts = loadgen_run_charts(self.loadgen_runs)
        self.legacy_charts = legacy_loadgen_charts(self.legacy)
        self.regressions = (
            evaluate(self.crit_charts, len(self.criterion) - 1, window)
            + evaluate(self.cmp_charts, len(self.compare) - 1, window)
            + evaluate(self.target_charts, len(self.compare) - 1, window)
            + evaluate(self.lg_charts, len(self.loadgen_runs) - 1, window)
            + evaluate(self.legacy_charts, len(self.legacy) - 1, window)
        )

    def all_charts(self) -> list[Chart]:
        """Every chart, in page order."""
        return self.crit_charts + self.cmp_charts + self.target_charts + self.lg_charts + self.legacy_charts


# -------------------------------------------------------------- formatting --


def esc(s) -> str:
    """HTML-escaped text."""
    return html.escape(str(s), quote=True)


def fmt_val(v, unit: str) -> str:
    """A value with its unit, scaled for reading."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    a = abs(v)
    if unit == "ns":
        if a >= 1e6:
            return f"{v / 1e6:.3g} ms"
        if a >= 1e3:
            return f"{v / 1e3:.3g} µs"
        return f"{v:.3g} ns"
    if unit == "µs":
        if a >= 1e3:
            return f"{v / 1e3:.3g} ms"
        return f"{v:.3g} µs"
    if unit == "B":
        if a >= 1 << 20:
            return f"{v / (1 << 20):.3g} MiB"
        if a >= 1 << 10:
            return f"{v / (1 << 10):.3g} KiB"
        return f"{v:.3g} B"
    sfx = f" {unit}" if unit else ""
    if a >= 1e6:
        return f"{v / 1e6:.3g}M{sfx}"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k{sfx}"
    return f"{v:.3g}{sfx}"


def fmt_ratio(r) -> str:
    """A ratio as 1.234×."""
    return "–" if r is None else f"{r:.3f}×"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    t = math.ceil(lo / step) * step
    out = []
    while t <= hi + step * 1e-9 and len(out) < 20:
        out.append(round(t, 12))
        t += step
    return out


PALETTE = {"amring": "#1f5fbf", "median": "#1f5fbf", "go": "#d9730d", "floor": "#6b7280", "null": "#6b7280", "value": "#1f5fbf"}
EXTRA = ("#7c3aed", "#0e7490", "#a16207", "#be185d")
W, H = 440, 210
ML, MR, MT, MB = 62, 12, 26, 36


def colour(name: str, i: int) -> str:
    """Line colour: fixed for the known servers, a palette for the rest."""
    return PALETTE.get(name) or EXTRA[i % len(EXTRA)]


def svg_chart(ch: Chart) -> str:
    """A static SVG trend chart: axes, lines, whiskers, noise band, flagged points, <title> tooltips."""
    pts_all = [p for pts in ch.lines.values() for p in pts]
    runs = [p["run"] for p in pts_all] + [r for r, _ in ch.target]
    ys = [p["value"] for p in pts_all if math.isfinite(p["value"])]
    ys += [p[k] for p in pts_all for k in ("lo", "hi") if p[k] is not None]
    ys += [t for _, t in ch.target]
    if ch.band:
        ys += [ch.band[2] - ch.band[3], ch.band[2] + ch.band[3]]
    if not runs or not ys:
        return '<svg class="chart" width="%d" height="40"><text x="4" y="24">no data</text></svg>' % W
    x0, x1 = min(runs), max(runs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    else:
        pad = (y1 - y0) * 0.08
        y0, y1 = y0 - pad, y1 + pad
    if min(ys) >= 0 and y0 < 0:
        y0 = 0.0
    pw, ph = W - ML - MR, H - MT - MB

    def X(run):
        return ML + (pw / 2 if x1 == x0 else pw * (run - x0) / (x1 - x0))

    def Y(v):
        return MT + ph - ph * (v - y0) / (y1 - y0)

    o = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(ch.title)}">']
    o.append(f"<title>{esc(ch.title)}</title>")
    # grid + y axis
    for t in nice_ticks(y0, y1):
        y = Y(t)
        o.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        o.append(f'<text x="{ML - 4}" y="{y + 3:.1f}" text-anchor="end" class="tick">{esc(fmt_val(t, ch.unit))}</text>')
    o.append(f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{MT + ph}" stroke="#9ca3af"/>')
    o.append(f'<line x1="{ML}" y1="{MT + ph}" x2="{W - MR}" y2="{MT + ph}" stroke="#9ca3af"/>')
    # x ticks: every run, thinned to <= 12 labels
    step = max(1, math.ceil((x1 - x0 + 1) / 12))
    for r in range(x0, x1 + 1, step):
        x = X(r)
        o.append(f'<line x1="{x:.1f}" y1="{MT + ph}" x2="{x:.1f}" y2="{MT + ph + 3}" stroke="#9ca3af"/>')
        o.append(f'<text x="{x:.1f}" y="{MT + ph + 13}" text-anchor="middle" class="tick">#{r + 1}</text>')
    o.append(f'<text x="{ML + pw / 2:.1f}" y="{H - 4}" text-anchor="middle" class="axis">run (oldest → newest)</text>')
    ylab = {"ns": "time / iter", "µs": "µs", "req/s": "req/s", "B": "bytes", "s": "seconds", "": "value"}.get(ch.unit, ch.unit)
    o.append(f'<text x="12" y="{MT + ph / 2:.1f}" text-anchor="middle" class="axis" transform="rotate(-90 12 {MT + ph / 2:.1f})">{esc(ylab)}</text>')
    # noise band of the latest judged point
    if ch.band:
        bx0, bx1, med, thr = ch.band
        xa, xb = X(bx0), X(bx1)
        if xb - xa < 6:
            xa, xb = xa - 3, xb + 3
        ya, yb = Y(med + thr), Y(med - thr)
        o.append(
            f'<rect x="{xa:.1f}" y="{ya:.1f}" width="{xb - xa:.1f}" height="{max(yb - ya, 1):.1f}" fill="#1f5fbf" fill-opacity="0.10">'
            f"<title>noise band: median {esc(fmt_val(med, ch.unit))} ± {esc(fmt_val(thr, ch.unit))} of runs #{bx0 + 1}–#{bx1}</title></rect>"
        )
        o.append(f'<line x1="{xa:.1f}" y1="{Y(med):.1f}" x2="{xb:.1f}" y2="{Y(med):.1f}" stroke="#1f5fbf" stroke-opacity="0.5" stroke-dasharray="3 3"/>')
    # target line
    if ch.target:
        tp = " ".join(f"{X(r):.1f},{Y(t):.1f}" for r, t in ch.target)
        if len(ch.target) == 1:
            r, t = ch.target[0]
            tp = f"{ML},{Y(t):.1f} {W - MR},{Y(t):.1f}"
        o.append(f'<polyline fill="none" stroke="#111827" stroke-dasharray="6 3" points="{tp}"><title>target</title></polyline>')
    # lines
    legend = []
    for li, (name, pts) in enumerate(sorted(ch.lines.items(), key=lambda kv: (kv[0] != "amring", kv[0]))):
        col = colour(name, li)
        legend.append((name, col))
        fin = [p for p in pts if math.isfinite(p["value"])]
        if len(fin) > 1:
            poly = " ".join(f"{X(p['run']):.1f},{Y(p['value']):.1f}" for p in fin)
            o.append(f'<polyline fill="none" stroke="{col}" stroke-width="1.6" points="{poly}"/>')
        for p in pts:
            x = X(p["run"])
            if p["lo"] is not None and p["hi"] is not None and math.isfinite(p["value"]):
                o.append(f'<line x1="{x:.1f}" y1="{Y(p["lo"]):.1f}" x2="{x:.1f}" y2="{Y(p["hi"]):.1f}" stroke="{col}" stroke-opacity="0.5"/>')
            tip = f"{name} · run #{p['run'] + 1} · {p['sha']}{' (dirty)' if p['dirty'] else ''} · {p['date']} · load {p['load'] or '?'} · {fmt_val(p['value'], ch.unit)}"
            if p["lo"] is not None and p["hi"] is not None:
                tip += f" [{fmt_val(p['lo'], ch.unit)} – {fmt_val(p['hi'], ch.unit)}]"
            jd = p.get("judge")
            if jd and jd.get("median") is not None:
                tip += f" · median of {jd['n']} earlier {fmt_val(jd['median'], ch.unit)} ± {fmt_val(jd['threshold'], ch.unit)}"
            if ch.kind == "target":
                tip += " · " + {True: "met", False: "MISSED", None: "not evaluated"}[p["met"]]
                if p.get("detail"):
                    tip += f" · {p['detail']}"
            if p["flag"] in ("regression", "improvement"):
                tip += f" · {p['flag'].upper()}"
            y = Y(p["value"]) if math.isfinite(p["value"]) else MT + ph
            if ch.kind == "target":
                fill = {True: "#15803d", False: "#dc2626", None: "#9ca3af"}[p["met"]]
            else:
                fill = col
            if p["flag"] == "regression":
                o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#dc2626" stroke="#7f1d1d" stroke-width="1.5" class="reg"><title>{esc(tip)}</title></circle>')
            else:
                o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{fill}" stroke="#fff" stroke-width="0.8"><title>{esc(tip)}</title></circle>')
    lx = ML
    for name, col in legend:
        o.append(f'<rect x="{lx}" y="8" width="10" height="10" fill="{col}"/><text x="{lx + 13}" y="17" class="legend">{esc(name)}</text>')
        lx += 22 + 7 * len(name)
    if ch.band:
        o.append(f'<rect x="{lx}" y="8" width="10" height="10" fill="#1f5fbf" fill-opacity="0.15"/><text x="{lx + 13}" y="17" class="legend">noise band</text>')
    o.append("</svg>")
    return "".join(o)


def chart_card(ch: Chart) -> str:
    """A chart inside a filterable card with its latest values."""
    latest = []
    for name, pts in sorted(ch.lines.items(), key=lambda kv: (kv[0] != "amring", kv[0])):
        p = pts[-1]
        latest.append(f"{esc(name)} {esc(fmt_val(p['value'], ch.unit))}")
    reg = any(p["flag"] == "regression" for pts in ch.lines.values() for p in pts[-1:])
    return (
        f'<div class="card{" regcard" if reg else ""}" data-name="{esc(ch.title.lower())}">'
        f'<div class="ctitle"><code>{esc(ch.title)}</code></div>{svg_chart(ch)}'
        f'<div class="clatest">latest: {" · ".join(latest)}</div></div>'
    )


def run_head(rec: dict, n: int, what: str) -> str:
    """One line describing the latest record of a history."""
    m = obj(rec.get("machine"))
    load = m.get("loadavg_before") or m.get("loadavg")
    if isinstance(load, list):
        load = " ".join(str(x) for x in load)
    extra = f", mode <b>{esc(rec.get('mode'))}</b>" if rec.get("mode") else ""
    return (
        f"<p>{esc(what)}: {n} run(s). Latest <code>{esc(str(rec.get('sha') or '?')[:12])}</code>"
        f"{' (dirty)' if rec.get('dirty') else ''} on {esc(rec.get('branch') or '?')}, {esc(rec.get('date') or '?')}{extra}, "
        f"{esc(m.get('cpus') or '?')} × {esc(m.get('cpu') or '?')}, load {esc(load or '?')}.</p>"
    )


def regressions_table(regs: list[dict]) -> str:
    """The table of the latest runs' regressions."""
    if not regs:
        return "<p class='summary good'>No regression in the latest run of any history.</p>"
    rows = []
    for r in regs:
        ch, p, jd = r["chart"], r["point"], r["judge"]
        if jd is None:  # target lost
            rows.append(
                f"<tr><td>{esc(ch.group)}</td><td><code>{esc(ch.title)}</code></td><td>{esc(r['line'])}</td>"
                f"<td class=num>{esc(fmt_val(p['value'], ch.unit))}</td><td colspan=3>target missed (met by the previous run): {esc(p.get('detail') or '')}</td>"
                f"<td><code>{esc(p['sha'])}</code> {esc(p['date'])}</td><td class=num>{esc(p['load'] or '?')}</td></tr>"
            )
            continue
        rows.append(
            f"<tr><td>{esc(ch.group)}</td><td><code>{esc(ch.title)}</code></td><td>{esc(r['line'])}</td>"
            f"<td class=num>{esc(fmt_val(p['value'], ch.unit))}</td><td class=num>{esc(fmt_val(jd['median'], ch.unit))} (n={jd['n']})</td>"
            f"<td class=num>± {esc(fmt_val(jd['threshold'], ch.unit))}</td><td class=num>{esc(fmt_ratio(jd['ratio_median']))}</td>"
            f"<td><code>{esc(p['sha'])}</code> {esc(p['date'])}</td><td class=num>{esc(p['load'] or '?')} (window {esc(jd.get('window_load') or '?')})</td></tr>"
        )
    return (
        f"<p class='summary bad'>{len(regs)} regression(s) in the latest runs.</p>"
        "<table><thead><tr><th>group</th><th>metric</th><th>series</th><th>latest</th><th>median of window</th>"
        "<th>noise band</th><th>latest / median</th><th>run</th><th>load 1 min</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def compare_latest_table(rec: dict) -> str:
    """Side-by-side medians and ratios of the latest compare-go run."""
    rows = []
    for c in lst(rec.get("cases")):
        c = obj(c)
        srv = obj(c.get("servers"))
        ratio = obj(c.get("ratio"))

        def med(s, k):
            return num(obj(obj(srv.get(s)).get("median")).get(k))

        def rt(k):
            return first_num(ratio, RATIO_KEYS[k])

        rows.append(
            f"<tr><td><code>{esc(case_id(c))}</code></td><td>{esc(case_title(c))}</td>"
            + "".join(f"<td class=num>{esc(fmt_val(med(s, 'throughput_rps'), 'req/s'))}</td>" for s in ("amring", "go"))
            + f"<td class=num><b>{esc(fmt_ratio(rt('throughput')))}</b></td>"
            + "".join(f"<td class=num>{esc(fmt_val(med(s, 'p50_us'), 'µs'))}</td>" for s in ("amring", "go"))
            + f"<td class=num><b>{esc(fmt_ratio(rt('p50')))}</b></td>"
            + "".join(f"<td class=num>{esc(fmt_val(med(s, 'p99_us'), 'µs'))}</td>" for s in ("amring", "go"))
            + f"<td class=num><b>{esc(fmt_ratio(rt('p99')))}</b></td>"
            + f"<td class=num>{esc(fmt_ratio(rt('cpu_per_rt')))}</td><td class=num>{esc(fmt_ratio(rt('syscalls_per_rt')))}</td></tr>"
        )
    return (
        f"<p>Go peer: <b>{esc(rec.get('go_status') or 'unknown')}</b>. Ratios are amring / Go: throughput &gt; 1, latency, CPU and syscalls &lt; 1 favour amring.</p>"
        "<table><thead><tr><th>case</th><th>workload</th><th>amring req/s</th><th>Go req/s</th><th>ratio</th>"
        "<th>amring p50</th><th>Go p50</th><th>ratio</th><th>amring p99</th><th>Go p99</th><th>ratio</th><th>CPU/RT ratio</th><th>syscalls/RT ratio</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def targets_table(rec: dict) -> str:
    """The targets of the latest compare-go run."""
    rows = []
    for t in lst(rec.get("targets")):
        t = obj(t)
        met = t.get("met")
        cls, txt = {True: ("imp", "met"), False: ("reg", "MISSED")}.get(met, ("new", "not evaluated")) if isinstance(met, bool) or met is None else ("new", "?")
        rows.append(
            f"<tr><td>{esc(t.get('name'))}</td><td class=num>{esc(fmt_val(num(t.get('value')), ''))}</td>"
            f"<td class=num>{esc(fmt_val(num(t.get('target')), '') if num(t.get('target')) is not None else (t.get('target') or '–'))}</td><td class={cls}>{txt}</td><td>{esc(t.get('detail') or '')}</td></tr>"
        )
    if not rows:
        return "<p>The latest compare-go run has no targets.</p>"
    return "<table><thead><tr><th>target</th><th>value</th><th>target</th><th>status</th><th>detail</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1900px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:middle}
th{background:#f3f3f3;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reg{background:#f8d7da;font-weight:bold;color:#842029}
td.imp{background:#d1e7dd;color:#0f5132}
td.new{color:#888;font-style:italic}
.summary{padding:.5em 1em;border-radius:4px;display:inline-block;font-weight:bold}
.bad{background:#f8d7da}.good{background:#d1e7dd}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:4px;padding:4px;background:#fff}
.regcard{border-color:#dc2626;box-shadow:0 0 0 1px #dc2626}
.ctitle{font-size:12px;margin:0 0 2px 4px}.clatest{font-size:11px;color:#555;margin-left:4px}
svg.chart text{font:10px system-ui,sans-serif;fill:#374151}
svg.chart text.axis{font-size:10px;fill:#6b7280}
h3{margin:1em 0 .3em}
"""

FILTER_JS = """
<script>
document.getElementById('flt').addEventListener('input',function(e){
 var q=e.target.value.toLowerCase();
 document.querySelectorAll('.card').forEach(function(c){c.style.display=c.dataset.name.indexOf(q)<0?'none':'';});
});
</script>
"""


def grid(charts: list[Chart]) -> str:
    """A flex grid of chart cards."""
    return '<div class="grid">' + "".join(chart_card(c) for c in charts) + "</div>"


def render_page(h: History, window: int = WINDOW_K) -> str:
    """The whole static page for a parsed history."""
    rule = (
        f"Every amring metric is compared with the median of the last {window} earlier runs of the same series with the same "
        f"comparability key (criterion: mode + machine; compare-go: machine + run duration + server spin; loadgen: machine + server kind). "
        f"Flagged when |value − median| > max({MAD_K:g} × 1.4826 × MAD, {MIN_REL:.0%} of the median) with ≥ 3 earlier runs, "
        f"> {FEW_RUNS_REL:.0%} with 1–2, never with none; only the worse direction is a regression. "
        "The shaded band is the latest point's band; red points are regressions against their own window. "
        "A target met by the previous run and missed by the latest is a regression too. Go and floor/null lines are context, never judged."
    )
    parts = [
        "<!doctype html><html><head><meta charset=utf-8><title>amring benchmarks</title>",
        f"<style>{CSS}</style></head><body><h1>amring benchmarks</h1>",
        "<h2>Regressions (latest run of each history)</h2>",
        regressions_table(h.regressions),
        f"<p><small>{esc(rule)}</small></p>",
        '<p>Filter charts: <input id="flt" type="search" placeholder="e.g. frame/ or 16x16 or p99"> (needs JS; every chart renders without it)</p>',
        "<h2>Criterion micro-benchmarks</h2>",
    ]
    if h.criterion:
        parts.append(run_head(h.criterion[-1], len(h.criterion), "bench/history/criterion.jsonl"))
        parts.append("<p>Median time per iteration, whiskers = criterion's 95 % CI. Ids ending in /amring, /go, /floor share a chart.</p>")
        parts.append(grid(h.crit_charts))
    else:
        parts.append("<p>No criterion history yet: run <code>scripts/bench.sh</code>.</p>")
    parts.append("<h2>amring vs Go (compare-go)</h2>")
    if h.compare:
        parts.append(run_head(h.compare[-1], len(h.compare), "bench/history/compare-go.jsonl"))
        parts.append(compare_latest_table(h.compare[-1]))
        parts.append("<p>Median of the repetitions per run, whiskers = min–max of the repetitions.</p>")
        cases: dict[str, list[Chart]] = {}
        for c in h.cmp_charts:
            cases.setdefault(c.case, []).append(c)
        for cid, chs in cases.items():
            parts.append(f"<h3><code>{esc(cid)}</code> — {esc(chs[0].case_title)}</h3>")
            parts.append(grid(chs))
        parts.append("<h2>Targets</h2>")
        parts.append(targets_table(h.compare[-1]))
        parts.append("<p>Value per run (green met, red missed, grey not evaluated); dashed line = the target.</p>")
        parts.append(grid(h.target_charts))
    else:
        parts.append("<p>No compare-go history yet: run <code>scripts/compare-go.sh</code> (it appends to <code>bench/history/compare-go.jsonl</code>).</p>")
    if h.loadgen_runs:
        parts.append("<h2>Single loadgen runs</h2>")
        parts.append(run_head(h.loadgen_runs[-1], len(h.loadgen_runs), "bench/history/loadgen-runs.jsonl"))
        parts.append(grid(h.lg_charts))
    if h.legacy:
        parts.append("<h2>Legacy loadgen matrix (amring-loadgen/1)</h2>")
        parts.append(run_head(h.legacy[-1], len(h.legacy), "bench/history/loadgen.jsonl"))
        parts.append(grid(h.legacy_charts))
    parts.append("<p><small>Generated by scripts/dashboard.py from bench/history/*.jsonl; static, no network assets.</small></p>")
    parts.append(FILTER_JS)
    parts.append("</body></html>\n")
    return "".join(parts)


def describe(r: dict) -> str:
    """One line for a regression on stdout."""
    ch, p, jd = r["chart"], r["point"], r["judge"]
    if jd is None:
        return f"REGRESSION {ch.group}: target '{ch.title}' missed (met by the previous run): {p.get('detail') or ''} [{p['sha']} {p['date']}]"
    return (
        f"REGRESSION {ch.group}: {ch.title} [{r['line']}] = {fmt_val(p['value'], ch.unit)} vs median {fmt_val(jd['median'], ch.unit)} "
        f"of {jd['n']} earlier run(s) ± {fmt_val(jd['threshold'], ch.unit)} ({fmt_ratio(jd['ratio_median'])}) "
        f"[{p['sha']} {p['date']}, load {p['load'] or '?'} vs {jd.get('window_load') or '?'}]"
    )


# ------------------------------------------------------------------- append --


def sh(*cmd) -> str | None:
    """stdout of a command run in the repo, or None."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model() -> str | None:
    """The CPU model name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def loadavg() -> list[str] | None:
    """The 1/5/15 min load averages."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


def capture_env() -> dict:
    """The one place that records sha, branch, dirty, date and machine for every history kind."""
    status = sh("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "sha": sh("git", "rev-parse", "HEAD"),
        "branch": sh("git", "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "host": socket.gethostname(),
            "kernel": platform.release(),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "rustc": sh("rustc", "--version"),
            "loadavg": loadavg(),
        },
    }


def collect_criterion(crit_dir: str, since: float | None) -> dict:
    """Per bench id the estimates criterion wrote under `crit_dir` (only files newer than `since`)."""
    benches = {}
    for dirpath, _dirs, files in os.walk(crit_dir):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        est_path = os.path.join(dirpath, "estimates.json")
        if since is not None and os.path.getmtime(est_path) < since:
            continue  # not produced by this run
        try:
            with open(est_path) as f:
                est = json.load(f)
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                meta = json.load(f)
            med = est["median"]
            entry = {
                "median_ns": med["point_estimate"],
                "ci_low_ns": med["confidence_interval"]["lower_bound"],
                "ci_high_ns": med["confidence_interval"]["upper_bound"],
                "mad_ns": est["median_abs_dev"]["point_estimate"],
                "mean_ns": est["mean"]["point_estimate"],
            }
            tp = meta.get("throughput") or {}
            if "Elements" in tp:
                entry["elements"] = tp["Elements"]
            if "Bytes" in tp:
                entry["bytes"] = tp["Bytes"]
            benches[meta["full_id"]] = entry
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"dashboard: skipping {dirpath}: {e}", file=sys.stderr)
    return dict(sorted(benches.items()))


def append_line(path: str, rec: dict) -> None:
    """Appends one compact JSON line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n")


def append_criterion(args, env: dict) -> int:
    """Records one criterion run (same record bench.sh has always written)."""
    since = os.path.getmtime(args.since) if args.since else None
    if since is None:
        print("dashboard: append --criterion without --since takes every estimate under the criterion dir (stale benches included)", file=sys.stderr)
    benches = collect_criterion(args.criterion_dir, since)
    if not benches:
        print(f"dashboard: no criterion estimates under {args.criterion_dir}{' newer than ' + args.since if args.since else ''}", file=sys.stderr)
        return 1
    m = dict(env["machine"])
    m["loadavg_before"] = args.load_before or " ".join(m.get("loadavg") or [])
    m["loadavg_after"] = m.pop("loadavg")
    rec = {"schema": "amring-criterion/1", **{k: env[k] for k in ("sha", "branch", "dirty", "date")}, "mode": args.mode, "machine": m, "benches": benches}
    path = args.criterion_file or os.path.join(args.history, CRITERION_FILE)
    append_line(path, rec)
    w = max(len(k) for k in benches)
    print(f"{'bench':<{w}}  {'median':>12}  {'mad':>10}")
    for k, v in benches.items():
        print(f"{k:<{w}}  {v['median_ns']:>10.1f}ns  {v['mad_ns']:>8.1f}ns")
    print(f"appended {len(benches)} benches ({args.mode}, {(rec['sha'] or '?')[:10]}) to {path}")
    return 0


def append_loadgen(args, env: dict) -> int:
    """Records each loadgen report (loadgen-report/1) as one line of loadgen-runs.jsonl."""
    path = os.path.join(args.history, LOADGEN_RUNS_FILE)
    bad = 0
    for f in args.loadgen:
        try:
            with open(f, encoding="utf-8") as fh:
                rep = json.load(fh)
        except (OSError, ValueError) as e:
            print(f"dashboard: {f}: {e}", file=sys.stderr)
            bad += 1
            continue
        if not isinstance(rep, dict) or rep.get("schema") != "loadgen-report/1" or num(rep.get("throughput_rps")) is None:
            print(f"dashboard: {f}: not a loadgen-report/1 with a throughput", file=sys.stderr)
            bad += 1
            continue
        label = args.label or LABEL_OF_KIND.get(str(obj(rep.get("server")).get("kind")), "external")
        rec = {"schema": "amring-loadgen-run/1", **env, "label": label, "source": os.path.relpath(os.path.abspath(f), ROOT), "report": rep}
        append_line(path, rec)
        print(f"appended loadgen run {loadgen_series(rep)} [{label}] to {path}")
    return 1 if bad else 0


def append_compare(args, env: dict) -> int:
    """Records a compare-go compare.json (a directory holding it, or the file) unless already in the history."""
    src = args.compare
    if os.path.isdir(src):
        src = os.path.join(src, "compare.json")
    try:
        with open(src, encoding="utf-8") as fh:
            rec = json.load(fh)
    except (OSError, ValueError) as e:
        print(f"dashboard: {src}: {e}", file=sys.stderr)
        return 1
    if not isinstance(rec, dict) or not str(rec.get("schema") or "").startswith("amring-compare-go/"):
        print(f"dashboard: {src}: not an amring-compare-go record", file=sys.stderr)
        return 1
    for k in ("sha", "branch", "dirty", "date", "machine"):
        if rec.get(k) is None:
            rec[k] = env[k]
    path = os.path.join(args.history, COMPARE_FILE)
    for old in load_jsonl(path):
        if old.get("sha") == rec.get("sha") and old.get("date") == rec.get("date"):
            print(f"dashboard: {src}: already recorded in {path} (sha {str(rec.get('sha'))[:10]}, {rec.get('date')})")
            return 0
    append_line(path, rec)
    print(f"appended compare-go run ({len(lst(rec.get('cases')))} cases) to {path}")
    return 0


# ---------------------------------------------------------------------- cli --


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(prog="dashboard.py", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--self-test", action="store_true", help="run the unit tests and exit")
    sub = ap.add_subparsers(dest="cmd")
    for name in ("render", "check", "append"):
        p = sub.add_parser(name)
        p.add_argument("--history", default=os.path.join(ROOT, "bench", "history"), help="history directory")
        p.add_argument("--window", type=int, default=WINDOW_K, help="earlier runs compared with (default %(default)s)")
        if name in ("render", "check"):
            p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when the latest run of any history regressed")
        if name == "render":
            p.add_argument("--out", default=os.path.join(ROOT, "bench", "dashboard.html"))
        if name == "append":
            p.add_argument("--criterion", action="store_true", help="record criterion's estimates")
            p.add_argument("--criterion-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "criterion"))
            p.add_argument("--criterion-file", help="criterion history file (default HISTORY/criterion.jsonl)")
            p.add_argument("--since", help="only estimates newer than this file's mtime")
            p.add_argument("--mode", choices=("quick", "full"), default="quick", help="criterion sampling mode of the run")
            p.add_argument("--load-before", help="load average before the run (default: now)")
            p.add_argument("--loadgen", nargs="+", default=[], metavar="REPORT.json", help="loadgen --output json reports")
            p.add_argument("--label", help="line name of the loadgen reports (default from server.kind: amring/null/external)")
            p.add_argument("--compare", metavar="DIR_OR_JSON", help="a compare-go out dir (compare.json) or the JSON file")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        r = unittest.TextTestRunner(verbosity=1).run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
        return 0 if r.wasSuccessful() else 1
    if not argv or argv[0] not in ("render", "check", "append", "-h", "--help"):
        argv.insert(0, "render")
    args = build_parser().parse_args(argv)
    window = max(1, args.window)
    if args.cmd == "append":
        if not (args.criterion or args.loadgen or args.compare):
            print("dashboard: append needs --criterion, --loadgen or --compare", file=sys.stderr)
            return 2
        env = capture_env()
        rc = 0
        if args.criterion:
            rc |= append_criterion(args, env)
        if args.loadgen:
            rc |= append_loadgen(args, env)
        if args.compare:
            rc |= append_compare(args, env)
        return rc
    h = History(args.history, window)
    if args.cmd == "render":
        page = render_page(h, window)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(page)
        print(f"dashboard: wrote {args.out} ({len(h.all_charts())} charts, {len(h.regressions)} regression(s) in the latest runs)")
    for r in h.regressions:
        print(describe(r))
    if args.cmd == "check" and not h.regressions:
        print(f"dashboard: no regression in the latest runs ({len(h.all_charts())} metrics)")
    return 1 if args.fail_on_regression and h.regressions else 0


# -------------------------------------------------------------------- tests --


def crit_line(values: dict, mode: str = "quick", sha: str = "s") -> dict:
    """A criterion history record with the given medians."""
    return {"schema": "amring-criterion/1", "sha": sha, "date": "d", "mode": mode, "machine": {"cpu": "T", "cpus": 2}, "benches": {k: {"median_ns": v, "mad_ns": 1.0, "ci_low_ns": v * 0.99, "ci_high_ns": v * 1.01} for k, v in values.items()}}


def write_jsonl(path: str, recs: list) -> None:
    """Writes records (dicts, or raw strings as-is) one per line."""
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def run_quiet(argv: list[str]) -> tuple[int, str]:
    """main(argv) with stdout/stderr captured."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        rc = main(argv)
    return rc, out.getvalue()


class JudgeTests(unittest.TestCase):
    """The regression rule."""

    def test_no_history_is_new(self):
        self.assertEqual(judge(100.0, [])["flag"], "new")

    def test_few_runs_use_ten_percent(self):
        self.assertEqual(judge(109.0, [100.0])["flag"], "ok")
        self.assertEqual(judge(111.0, [100.0])["flag"], "regression")
        self.assertEqual(judge(89.0, [100.0, 100.0])["flag"], "improvement")

    def test_mad_threshold(self):
        earlier = [100.0, 102.0, 98.0, 101.0, 99.0]  # median 100, MAD 1
        self.assertEqual(judge(104.0, earlier)["flag"], "ok")  # 4 < 3*1.4826
        self.assertEqual(judge(105.0, earlier)["flag"], "regression")
        self.assertAlmostEqual(judge(105.0, earlier)["ratio_median"], 1.05)

    def test_noisy_history_absorbs_big_change(self):
        earlier = [100.0, 130.0, 80.0, 120.0, 90.0]  # MAD 10 -> threshold 44.5
        self.assertEqual(judge(140.0, earlier)["flag"], "ok")

    def test_flat_history_has_floor(self):
        earlier = [100.0, 100.0, 100.0]
        self.assertEqual(judge(100.5, earlier)["flag"], "ok")
        self.assertEqual(judge(102.0, earlier)["flag"], "regression")

    def test_direction_for_throughput(self):
        earlier = [1000.0, 1000.0, 1000.0]
        self.assertEqual(judge(800.0, earlier, higher_is_better=True)["flag"], "regression")
        self.assertEqual(judge(1200.0, earlier, higher_is_better=True)["flag"], "improvement")

    def test_window_only_uses_recent_runs(self):
        # an old slow era followed by a fast one: with window 3 the old era is out of scope
        runs = [crit_line({"b": v}) for v in (200.0, 200.0, 200.0, 100.0, 100.0, 100.0, 150.0)]
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, CRITERION_FILE), runs)
            self.assertEqual(len(History(d, window=3).regressions), 1)
            self.assertEqual(len(History(d, window=10).regressions), 0)  # median 150 of all six earlier

    def test_modes_and_machines_not_mixed(self):
        runs = [crit_line({"b": 100.0}, "full") for _ in range(4)] + [crit_line({"b": 300.0}, "quick")]
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, CRITERION_FILE), runs)
            h = History(d)
            self.assertEqual(h.regressions, [])
            self.assertEqual(h.crit_charts[0].lines["median"][-1]["flag"], "new")

    def test_go_line_never_judged(self):
        cases = lambda g: [{"id": "c", "kind": "closed", "servers": {"amring": {"median": {"throughput_rps": 1000.0}}, "go": {"median": {"throughput_rps": g}}}}]
        runs = [{"schema": "amring-compare-go/2", "machine": {"cpu": "T", "cpus": 2}, "params": {"duration": "3s"}, "cases": cases(g)} for g in (500.0, 500.0, 500.0, 100.0)]
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, COMPARE_FILE), runs)
            self.assertEqual(History(d).regressions, [])


class ParserTests(unittest.TestCase):
    """Each history kind parses from fixtures, tolerating missing keys and nulls."""

    def test_compare_go_fixture(self):
        h = History(os.path.join(TESTDATA, "history-ok"))
        self.assertEqual(len(h.compare), 4)
        titles = {c.title for c in h.cmp_charts}
        for m in ("throughput", "p50", "p99", "server CPU / RT", "syscalls / RT"):
            self.assertIn(f"c1x1_v2_s32 · {m}", titles)
        self.assertIn("idle10k_v2_s32 · RSS / conn", titles)
        tput = next(c for c in h.cmp_charts if c.title == "c16x16_v2_s32 · throughput")
        self.assertEqual(sorted(tput.lines), ["amring", "go"])
        self.assertEqual(len(tput.lines["amring"]), 4)
        self.assertIsNotNone(tput.lines["amring"][0]["lo"])
        floor = next(c for c in h.cmp_charts if c.title == "c1x1_v2_s32 · p50")
        self.assertIn("floor", floor.lines)
        self.assertEqual({c.title for c in h.target_charts}, {"throughput_10x_go_best", "cpu_per_rt_us", "p50_1x1_below_go"})
        self.assertEqual(h.regressions, [], [describe(r) for r in h.regressions])

    def test_compare_go_tolerates_nulls_and_junk(self):
        recs = [
            {"schema": "amring-compare-go/2", "cases": None, "targets": None, "machine": None},
            {"schema": "amring-compare-go/2", "cases": [None, {"id": "x", "servers": {"amring": None, "go": {"median": None}}}, {"servers": {"amring": {"median": {"throughput_rps": "fast", "p50_us": None, "p99_us": 12.5}}}}]},
            {"schema": "amring-compare-go/2", "targets": [{"name": "t", "value": None, "met": None}, {"value": 3, "met": "yes"}]},
            "[1, 2]",
            "{not json",
        ]
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, COMPARE_FILE), recs)
            with redirect_stderr(io.StringIO()):
                h = History(d)
                page = render_page(h)
            self.assertEqual(len(h.compare), 3)
            self.assertEqual([c.title for c in h.cmp_charts], ["? · p99"])
            self.assertIn("<svg", page)

    def test_compare_go_sh_spellings(self):
        # what scripts/compare-go.sh writes: metric-named ratio keys, rss_per_conn_bytes,
        # connect_time_s, version "v2", textual targets
        srv = lambda t, rss: {"runs": [], "median": {"throughput_rps": t, "p50_us": 50.0, "rss_per_conn_bytes": rss, "connect_time_s": 2.0}, "min": {"throughput_rps": t * 0.9}, "max": {"throughput_rps": t * 1.1}}
        rec = {
            "schema": "amring-compare-go/2",
            "sha": "a" * 40,
            "machine": {"cpu": "T", "cpus": 2},
            "params": {"duration": "3s"},
            "cases": [{"id": "idle_10000_s32_v2", "kind": "idle", "conns": 10000, "streams": 1, "pipeline": 1, "payload": 32, "version": "v2", "rate": 20000, "servers": {"amring": srv(20000.0, 7000.0), "go": srv(20000.0, 9000.0)}, "ratio": {"throughput_rps": 1.0, "p50_us": 0.8, "server_cpu_us_per_rt": 0.5}}],
            "targets": [{"name": "throughput_vs_go_at_go_best", "value": 4.2, "target": ">= 10x", "met": False, "detail": "d"}],
        }
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, COMPARE_FILE), [rec])
            h = History(d)
            titles = [c.title for c in h.cmp_charts]
            self.assertIn("idle_10000_s32_v2 · RSS / conn", titles)
            self.assertIn("idle_10000_s32_v2 · connect time", titles)
            self.assertEqual(h.cmp_charts[0].case_title, "idle 10000×1 32 B v2 20000 req/s offered")
            page = render_page(h)
            self.assertIn("<b>0.800×</b>", page)  # p50 ratio read from p50_us
            self.assertIn("0.500×", page)  # cpu ratio read from server_cpu_us_per_rt
            self.assertIn("&gt;= 10x", page)
            self.assertIn("target &gt;= 10x; d", page)  # in the point's tooltip

    def test_criterion_fixture_and_reference_lines(self):
        h = History(os.path.join(TESTDATA, "history-ok"))
        self.assertEqual(len(h.criterion), 4)
        ch = next(c for c in h.crit_charts if c.title == "vs_go_v2_1x1")
        self.assertEqual(sorted(ch.lines), ["amring", "go"])
        self.assertIn("frame/encode64_v2/32", {c.title for c in h.crit_charts})

    def test_legacy_loadgen_real_lines(self):
        h = History(os.path.join(ROOT, "bench", "history"))
        if not h.legacy:
            self.skipTest("no legacy loadgen history")
        titles = {c.title for c in h.legacy_charts}
        self.assertIn("c1_p1_s32_v2 · throughput", titles)
        ch = next(c for c in h.legacy_charts if c.title == "c1_p1_s32_v2 · throughput")
        self.assertEqual(sorted(ch.lines), ["amring", "go"])
        self.assertEqual(len(ch.lines["go"]), len(h.legacy))

    def test_loadgen_run_append_and_parse(self):
        with tempfile.TemporaryDirectory() as d:
            rep = os.path.join(TESTDATA, "loadgen-report.json")
            rc, out = run_quiet(["append", "--history", d, "--loadgen", rep, rep])
            self.assertEqual(rc, 0, out)
            rc, out = run_quiet(["append", "--history", d, "--loadgen", rep, "--label", "go"])
            self.assertEqual(rc, 0, out)
            h = History(d)
            self.assertEqual(len(h.loadgen_runs), 3)
            self.assertEqual(h.loadgen_runs[0]["schema"], "amring-loadgen-run/1")
            self.assertTrue(h.loadgen_runs[0]["date"])
            self.assertIn("cpus", h.loadgen_runs[0]["machine"])
            ch = next(c for c in h.lg_charts if c.title.endswith("· throughput"))
            self.assertEqual(sorted(ch.lines), ["amring", "go"])
            self.assertEqual(ch.title, "16×16 pipeline 1 32 B compact v2 · throughput")
            cpu = next(c for c in h.lg_charts if c.title.endswith("server CPU / RT"))
            self.assertAlmostEqual(cpu.lines["amring"][0]["value"], 2.5e6 / 250000)
            # a file that is not a report is refused, and nothing is written for it
            rc, _ = run_quiet(["append", "--history", d, "--loadgen", os.path.join(TESTDATA, "history-ok", COMPARE_FILE)])
            self.assertEqual(rc, 1)
            self.assertEqual(len(History(d).loadgen_runs), 3)

    def test_compare_append_dedupes(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "out")
            os.mkdir(src)
            rec = load_jsonl(os.path.join(TESTDATA, "history-ok", COMPARE_FILE))[-1]
            with open(os.path.join(src, "compare.json"), "w") as f:
                json.dump(rec, f)
            self.assertEqual(run_quiet(["append", "--history", d, "--compare", src])[0], 0)
            self.assertEqual(run_quiet(["append", "--history", d, "--compare", os.path.join(src, "compare.json")])[0], 0)
            self.assertEqual(len(load_jsonl(os.path.join(d, COMPARE_FILE))), 1)
            with open(os.path.join(src, "compare.json"), "w") as f:
                json.dump({"schema": "other"}, f)
            self.assertEqual(run_quiet(["append", "--history", d, "--compare", src])[0], 1)

    def test_criterion_append_collects_new_estimates_only(self):
        with tempfile.TemporaryDirectory() as d:
            crit = os.path.join(d, "criterion")

            def bench(path, full_id, med, old):
                nd = os.path.join(crit, path, "new")
                os.makedirs(nd)
                est = {"median": {"point_estimate": med, "confidence_interval": {"lower_bound": med - 1, "upper_bound": med + 1}}, "median_abs_dev": {"point_estimate": 0.5}, "mean": {"point_estimate": med}}
                for name, o in (("estimates.json", est), ("benchmark.json", {"full_id": full_id, "throughput": {"Elements": 64}})):
                    with open(os.path.join(nd, name), "w") as f:
                        json.dump(o, f)
                    if old:
                        os.utime(os.path.join(nd, name), (1, 1))

            bench("a", "grp/a", 10.0, False)
            bench("b", "grp/b", 20.0, True)
            marker = os.path.join(d, "marker")
            open(marker, "w").close()
            os.utime(marker, (1000, 1000))
            hist = os.path.join(d, "h")
            rc, out = run_quiet(["append", "--history", hist, "--criterion", "--criterion-dir", crit, "--since", marker, "--mode", "full", "--load-before", "1 2 3"])
            self.assertEqual(rc, 0, out)
            recs = load_jsonl(os.path.join(hist, CRITERION_FILE))
            self.assertEqual(len(recs), 1)
            self.assertEqual(list(recs[0]["benches"]), ["grp/a"])
            self.assertEqual(recs[0]["benches"]["grp/a"]["elements"], 64)
            self.assertEqual(recs[0]["mode"], "full")
            self.assertEqual(recs[0]["machine"]["loadavg_before"], "1 2 3")
            self.assertEqual(recs[0]["schema"], "amring-criterion/1")


class FailOnRegressionTests(unittest.TestCase):
    """`--fail-on-regression` exit codes on synthetic histories and fixtures."""

    def test_fails_on_synthetic_criterion_regression(self):
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, CRITERION_FILE), [crit_line({"g/b": v, "g/c": 50.0}) for v in (100.0, 101.0, 99.0, 100.5, 150.0)])
            rc, out = run_quiet(["check", "--history", d, "--fail-on-regression"])
            self.assertEqual(rc, 1)
            self.assertIn("REGRESSION criterion: g/b", out)
            self.assertNotIn("g/c", out)
            self.assertEqual(run_quiet(["check", "--history", d])[0], 0)  # reported, but no failure without the flag
            outf = os.path.join(d, "dash.html")
            rc, out = run_quiet(["render", "--history", d, "--out", outf, "--fail-on-regression"])
            self.assertEqual(rc, 1)
            with open(outf, encoding="utf-8") as f:
                page = f.read()
            self.assertIn("1 regression(s)", page)
            self.assertIn('class="reg"', page)

    def test_passes_on_noise(self):
        with tempfile.TemporaryDirectory() as d:
            write_jsonl(os.path.join(d, CRITERION_FILE), [crit_line({"g/b": v}) for v in (100.0, 104.0, 97.0, 102.0, 99.0, 103.0)])
            rc, out = run_quiet(["check", "--history", d, "--fail-on-regression"])
            self.assertEqual(rc, 0, out)
            rc, out = run_quiet(["render", "--history", d, "--out", os.path.join(d, "x.html"), "--fail-on-regression"])
            self.assertEqual(rc, 0, out)

    def test_fixture_noise_passes_and_regression_fails(self):
        rc, out = run_quiet(["check", "--history", os.path.join(TESTDATA, "history-ok"), "--fail-on-regression"])
        self.assertEqual(rc, 0, out)
        rc, out = run_quiet(["check", "--history", os.path.join(TESTDATA, "history-regressed"), "--fail-on-regression"])
        self.assertEqual(rc, 1, out)
        self.assertIn("c16x16_v2_s32 · throughput [amring]", out)
        self.assertIn("target 'throughput_10x_go_best' missed", out)
        self.assertNotIn("[go]", out)

    def test_page_has_charts_band_and_tooltips(self):
        h = History(os.path.join(TESTDATA, "history-regressed"))
        page = render_page(h)
        self.assertIn("<h2>Regressions", page)
        self.assertIn("noise band", page)
        self.assertIn("<title>amring · run #4", page)
        self.assertIn('stroke="#d9730d"', page)  # the Go line
        self.assertNotIn("http://", page.replace('xmlns="http://www.w3.org/2000/svg"', ""))
        self.assertNotIn("https://", page)


if __name__ == "__main__":
    sys.exit(main())
