#!/usr/bin/env python3
"""Regression dashboard for amring (python3 stdlib only, no network).

Reads the run histories appended by the scripts:
  bench/history/criterion.jsonl  (scripts/bench.sh: one line per criterion run)
  bench/history/loadgen.jsonl    (scripts/compare-go.sh: one line per matrix run)
and writes one static page, bench/dashboard.html (inline SVG and tables):

* per criterion bench: the latest median, its ratio to the previous run and to
  the median of the earlier runs, a sparkline, and a flag. A change is flagged
  only when it is beyond the noise of the earlier runs: with >= 3 earlier runs,
  |latest - median(earlier)| > max(3 x MAD(earlier) x 1.4826, 1 % of the
  median); with 1-2 earlier runs, a change > 10 %; never with no earlier run.
  Only runs of the same criterion mode (quick/full) are compared.
* per loadgen case: the latest amring throughput / p50 / p99 with the same
  flagging (throughput: lower is worse; latency: higher is worse), and the
  amring-vs-Go side-by-side ratios of the latest compare-go run.

Usage: scripts/dashboard.py [--history DIR] [--out FILE] [--self-test]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import statistics
import sys
import unittest

MAD_K = 3.0  # flag beyond this many (scaled) MADs
MAD_SCALE = 1.4826  # MAD -> sigma for normal noise
MIN_REL = 0.01  # never flag below 1 % even when the history is flat
FEW_RUNS_REL = 0.10  # threshold with 1-2 earlier runs


def load_jsonl(path: str) -> list[dict]:
    """Parsed records of a .jsonl file; unreadable lines are reported and skipped."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                print(f"dashboard: {path}:{n}: skipped ({e})", file=sys.stderr)
    return out


def judge(latest: float, earlier: list[float], higher_is_better: bool = False) -> dict:
    """Compares `latest` with the earlier values of the same metric.

    Returns the ratios (latest/previous, latest/median of earlier), the
    threshold used, and `flag` in {"regression", "improvement", "ok", "new"}.
    """
    res = {"prev": None, "ratio_prev": None, "median": None, "ratio_median": None, "threshold": None, "flag": "new"}
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


# ---------------------------------------------------------------- rendering --


def esc(s) -> str:
    return html.escape(str(s))


def fmt_ns(v) -> str:
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.1f} ns"


def fmt_ratio(r) -> str:
    return "–" if r is None else f"{r:.3f}×"


def fmt_num(v, unit="") -> str:
    if v is None:
        return "–"
    if unit == "µs" and abs(v) >= 1e3:
        return f"{v / 1e3:.2f} ms"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M{unit}"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.1f} k{unit}"
    return f"{v:.1f}{(' ' + unit) if unit else ''}"


def sparkline(values: list[float], width: int = 140, height: int = 28) -> str:
    """An inline SVG polyline of the values (last point highlighted)."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = len(values)
    pts = []
    for i, v in enumerate(values):
        x = 2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5)
        y = height - 2 - (height - 4) * ((v - lo) / span)
        pts.append((x, y))
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    lx, ly = pts[-1]
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f'<polyline fill="none" stroke="#4a6fa5" stroke-width="1.5" points="{poly}"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5" fill="#c0392b"/></svg>'
    )


FLAG_STYLE = {
    "regression": ("REGRESSION", "reg"),
    "improvement": ("improved", "imp"),
    "ok": ("within noise", "ok"),
    "new": ("new", "new"),
}


def flag_cell(j: dict) -> str:
    text, cls = FLAG_STYLE[j["flag"]]
    return f'<td class="{cls}">{esc(text)}</td>'


def criterion_section(runs: list[dict]) -> tuple[str, int]:
    if not runs:
        return "<p>No criterion history yet: run <code>scripts/bench.sh</code>.</p>", 0
    latest = runs[-1]
    same_mode = [r for r in runs[:-1] if r.get("mode") == latest.get("mode")]
    rows = []
    regressions = 0
    for bid, entry in sorted(latest.get("benches", {}).items()):
        v = entry["median_ns"]
        earlier = [r["benches"][bid]["median_ns"] for r in same_mode if bid in r.get("benches", {})]
        j = judge(v, earlier)
        regressions += j["flag"] == "regression"
        rows.append(
            "<tr>"
            f"<td><code>{esc(bid)}</code></td>"
            f"<td class=num>{fmt_ns(v)}</td>"
            f"<td class=num>{fmt_ns(entry.get('mad_ns'))}</td>"
            f"<td class=num>{fmt_ratio(j['ratio_prev'])}</td>"
            f"<td class=num>{fmt_ratio(j['ratio_median'])}</td>"
            f"<td class=num>{len(earlier)}</td>"
            f"<td class=num>{fmt_ns(j['threshold'])}</td>"
            f"{flag_cell(j)}"
            f"<td>{sparkline(earlier + [v])}</td>"
            "</tr>"
        )
    m = latest.get("machine", {})
    head = (
        f"<p>Latest run: <code>{esc((latest.get('sha') or '?')[:12])}</code>"
        f"{' (dirty)' if latest.get('dirty') else ''} on {esc(latest.get('branch'))}, "
        f"{esc(latest.get('date'))}, mode <b>{esc(latest.get('mode'))}</b>, "
        f"{esc(m.get('cpus'))} × {esc(m.get('cpu'))}, load {esc(m.get('loadavg_before'))}; "
        f"compared with {len(same_mode)} earlier {esc(latest.get('mode'))} run(s) of {len(runs)} in total.</p>"
    )
    table = (
        "<table><thead><tr><th>bench</th><th>median</th><th>MAD</th><th>/ previous</th>"
        "<th>/ median of earlier</th><th>earlier runs</th><th>noise threshold</th><th>flag</th>"
        "<th>history (median)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return head + table, regressions


def case_key(c: dict) -> str:
    return c.get("case") or json.dumps(c.get("params", {}), sort_keys=True)


def loadgen_section(runs: list[dict]) -> tuple[str, int]:
    if not runs:
        return "<p>No loadgen history yet: run <code>scripts/compare-go.sh</code>.</p>", 0
    latest = runs[-1]
    regressions = 0
    # amring history per case and metric
    hist_rows = []
    for c in latest.get("cases", []):
        key = case_key(c)
        a = c.get("amring") or {}
        if a.get("throughput_rps") is None:
            hist_rows.append(f"<tr><td><code>{esc(key)}</code></td><td colspan=7>amring run failed: {esc(a.get('error'))}</td></tr>")
            continue
        earlier = []
        for r in runs[:-1]:
            for ec in r.get("cases", []):
                ea = ec.get("amring") or {}
                if case_key(ec) == key and ea.get("throughput_rps") is not None and ea.get("server_kind") == a.get("server_kind"):
                    earlier.append(ea)
        cells = []
        for metric, hib in (("throughput_rps", True), ("p50_us", False), ("p99_us", False)):
            vals = [e[metric] for e in earlier if e.get(metric) is not None]
            j = judge(a[metric], vals, higher_is_better=hib)
            regressions += j["flag"] == "regression"
            unit = "req/s" if metric == "throughput_rps" else "µs"
            cells.append(f"<td class=num>{fmt_num(a[metric], unit)}</td><td class=num>{fmt_ratio(j['ratio_median'])}</td>{flag_cell(j)}")
        tps = [e["throughput_rps"] for e in earlier] + [a["throughput_rps"]]
        hist_rows.append(
            f"<tr><td><code>{esc(key)}</code></td><td>{esc(a.get('server_kind'))}</td>{''.join(cells)}"
            f"<td class=num>{len(earlier)}</td><td>{sparkline(tps)}</td></tr>"
        )
    hist = (
        "<table><thead><tr><th>case</th><th>server</th><th>req/s</th><th>/ median</th><th>flag</th>"
        "<th>p50</th><th>/ median</th><th>flag</th><th>p99</th><th>/ median</th><th>flag</th>"
        "<th>earlier runs</th><th>req/s history</th></tr></thead><tbody>" + "".join(hist_rows) + "</tbody></table>"
    )
    # side by side with Go
    go_status = latest.get("go_status", "absent")
    sbs_rows = []
    for c in latest.get("cases", []):
        a, g = c.get("amring") or {}, c.get("go") or {}

        def ratio(m):
            av, gv = a.get(m), g.get(m)
            return av / gv if av is not None and gv else None

        sbs_rows.append(
            f"<tr><td><code>{esc(case_key(c))}</code></td>"
            f"<td class=num>{fmt_num(a.get('throughput_rps'), 'req/s')}</td><td class=num>{fmt_num(g.get('throughput_rps'), 'req/s')}</td>"
            f"<td class=num><b>{fmt_ratio(ratio('throughput_rps'))}</b></td>"
            f"<td class=num>{fmt_num(a.get('p50_us'), 'µs')}</td><td class=num>{fmt_num(g.get('p50_us'), 'µs')}</td>"
            f"<td class=num><b>{fmt_ratio(ratio('p50_us'))}</b></td>"
            f"<td class=num>{fmt_num(a.get('p99_us'), 'µs')}</td><td class=num>{fmt_num(g.get('p99_us'), 'µs')}</td>"
            f"<td class=num><b>{fmt_ratio(ratio('p99_us'))}</b></td>"
            f"<td>{esc(g.get('error') or '')}</td></tr>"
        )
    sbs = (
        f"<p>Go peer: <b>{esc(go_status)}</b>. Ratios are amring / Go: throughput &gt; 1 and latency &lt; 1 favour amring.</p>"
        "<table><thead><tr><th>case</th><th>amring req/s</th><th>Go req/s</th><th>ratio</th>"
        "<th>amring p50</th><th>Go p50</th><th>ratio</th><th>amring p99</th><th>Go p99</th><th>ratio</th><th>note</th>"
        "</tr></thead><tbody>" + "".join(sbs_rows) + "</tbody></table>"
    )
    head = (
        f"<p>Latest run: <code>{esc((latest.get('sha') or '?')[:12])}</code>{' (dirty)' if latest.get('dirty') else ''}, "
        f"{esc(latest.get('date'))}, {esc(latest.get('duration'))} per case, {len(runs)} run(s) in history. "
        "amring history compares only runs against the same server kind.</p>"
    )
    return head + "<h3>amring over time</h3>" + hist + "<h3>amring vs Go (latest run)</h3>" + sbs, regressions


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:middle}
th{background:#f3f3f3;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reg{background:#f8d7da;font-weight:bold;color:#842029}
td.imp{background:#d1e7dd;color:#0f5132}
td.ok{color:#555}
td.new{color:#888;font-style:italic}
.summary{padding:.5em 1em;border-radius:4px;display:inline-block}
.bad{background:#f8d7da}.good{background:#d1e7dd}
"""


def render(history_dir: str) -> tuple[str, int]:
    crit = load_jsonl(os.path.join(history_dir, "criterion.jsonl"))
    lg = load_jsonl(os.path.join(history_dir, "loadgen.jsonl"))
    crit_html, crit_reg = criterion_section(crit)
    lg_html, lg_reg = loadgen_section(lg)
    total = crit_reg + lg_reg
    cls = "bad" if total else "good"
    rule = (
        f"A change is flagged when |latest − median(earlier)| exceeds max({MAD_K:g} × 1.4826 × MAD(earlier), "
        f"{MIN_REL:.0%}) with ≥ 3 earlier runs, or {FEW_RUNS_REL:.0%} with 1–2 earlier runs."
    )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>amring benchmarks</title>"
        f"<style>{CSS}</style></head><body><h1>amring benchmarks</h1>"
        f"<p class='summary {cls}'>{total} regression(s) flagged ({crit_reg} criterion, {lg_reg} loadgen).</p>"
        f"<p>{esc(rule)}</p>"
        f"<h2>Criterion micro-benchmarks</h2>{crit_html}"
        f"<h2>Load generator</h2>{lg_html}"
        "<p><small>Generated by scripts/dashboard.py from bench/history/*.jsonl.</small></p></body></html>\n"
    )
    return page, total


# -------------------------------------------------------------------- tests --


class JudgeTests(unittest.TestCase):
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

    def test_render_flags_a_regression(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "criterion.jsonl"), "w") as f:
                for v in (100.0, 101.0, 99.0, 150.0):
                    f.write(json.dumps({"sha": "x", "mode": "quick", "benches": {"g/b": {"median_ns": v, "mad_ns": 1}}}) + "\n")
            page, n = render(d)
            self.assertEqual(n, 1)
            self.assertIn("REGRESSION", page)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=os.path.join(root, "bench", "history"))
    ap.add_argument("--out", default=os.path.join(root, "bench", "dashboard.html"))
    ap.add_argument("--self-test", action="store_true", help="run the flagging unit tests and exit")
    args = ap.parse_args()
    if args.self_test:
        r = unittest.TextTestRunner(verbosity=1).run(unittest.defaultTestLoader.loadTestsFromTestCase(JudgeTests))
        return 0 if r.wasSuccessful() else 1
    page, total = render(args.history)
    with open(args.out, "w") as f:
        f.write(page)
    print(f"dashboard: wrote {args.out} ({total} regression(s) flagged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
