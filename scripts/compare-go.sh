#!/usr/bin/env bash
# A/B comparison of the amring echo server and the Go reference server, both driven by loadgen.
#
# Servers (each a fresh external process per run, pinned to core 0; loadgen runs on core 1):
#   amring  `loadgen --internal-serve --server amring --server-cores 1 [--recovery]` (the real
#           amring::server::Server, EchoRequest -> EchoReply; serves until its stdin closes)
#   go      `go-peer server --addr tcp://127.0.0.1:0 [-recovery]` (scripts/go-peer.sh: built
#           from tests/go-peer when Go is present, or AMRING_GO_PEER),
#           `taskset -c $GO_CPUS`, GOMAXPROCS=$GO_MAXPROCS, `ulimit -n 20000` in its subshell
#   floor   `loadgen --internal-serve --server null` (1×1 v2 cases only): a glommio endpoint
#           that echoes v2 frames without decoding them (see the note in the output)
# Matrix ("N×M" = N connections × M streams, one request in flight per stream):
#   closed  1×1, 1×16, 4×16, 16×16, 64×4  × payload 32 B / 1 KiB  × v2 / v3;
#           10k×1 (--idle-conns) × 32 B × v2 / v3
#   open    16×16 at --rate = 50 % of the Go server's best closed-loop median of that version
#           (same rate for both servers)
#   idle    10k connections × 1 stream at --rate 20k (connect time, RSS/conn, p99, CPU)
#   sweep   16×16 v2 32 B, `loadgen sweep` over SWEEP_RATES against each server (one server
#           process per sweep), knee = highest rate with p99 <= SWEEP_SLO (default 10ms); both
#           sweeps on one plot: DIR/sweep.svg, tables in DIR/sweep.<server>.txt, knees in
#           DIR/sweep.json and summary.txt
#   kernel floor  before the matrix, bench/benches/loopback.rs in its JSON mode
#           (AMRING_LOOPBACK_JSON): the sending thread's CPU per send(2) over loopback of one
#           64 B segment (loopback/segment_64B) and of 16 × 64 B in one segment
#           (loopback/batch_16x64B), sender on cpu 0 (the servers'), drainer on cpu 1
#           (loadgen's, SCHED_FIFO where allowed), median of 15 samples of ≈ 50 ms, samples
#           whose sends the kernel coalesced into fewer segments dropped -> DIR/kernel_floor.json
#           (failure: kernel_floor.err); a figure with no sample left is tried once more
#           after the matrix
# Every case runs R repetitions alternating amring, go[, floor], amring, go, ... (A/B/A/B).
# Per run, once loadgen's connections are up and its warm-up is over, the script measures the
# server over a window of (duration - 0.4 s): CPU from /proc/PID/stat (utime+stime) and
# syscalls with `perf stat -e raw_syscalls:sys_enter -p PID` (null + reason if perf fails).
#
# Usage: scripts/compare-go.sh [--quick] [--reps 3] [--duration 3s] [--warmup 1s]
#                              [--idle-conns 10k] [--idle-rate 20k] [--open-rate N] [--out-dir DIR]
#   --quick       1×1 and 16×16 closed, v2 only, 32 B, + open and idle (v2), 2 reps, 2 s runs
#   --reps        repetitions per server and case (default 3, at least 2 with --quick)
#   --duration    loadgen's measured phase (default 3s; --quick 2s); --warmup default 1s
#   --open-rate   fixed open-loop rate instead of 50 % of the Go best (needed for nothing;
#                 without a Go peer the fallback is 46k = 50 % of the issue's 93k Go figure)
#   --sweep       run only the sweep case (and print its knees); --no-sweep leaves it out
#   --summarize DIR  only redo the tables, targets, compare.json and history line of an earlier
#                 run's out dir (no new runs)
#   A run with no reply in its measured phase counts as failed (stall) and is left out of the
#   medians; open/idle runs serving < 90 % of the offered rate get a warning.
#   Every loadgen run is killed after duration + warmup + connect allowance + 30 s.
# Targets (the "== Targets" block, compare.json "targets"; met / MISSED / NOT EVALUATED):
#   throughput_vs_go_at_go_best   amring/Go req/s in the closed case where Go's median is
#                                 highest, >= 10x
#   closed_10k_throughput_vs_go   the same in the 10k×1 closed case, >= 10x
#   syscalls_per_rt               amring in closed_16x16_s32_v2, <= 0.05
#   cpu_per_frame_vs_kernel_16x16 amring server CPU per round trip in closed_16x16_s32_v2 /
#                                 the kernel's CPU per frame with 16 frames in one segment
#                                 (batch_16x64B / 16, this run's kernel floor), <= 1.5x
#   cpu_per_packet_vs_kernel_10k  amring server CPU per round trip in the 10k×1 closed case /
#                                 the kernel's CPU per packet (segment_64B), <= 1.5x
#                                 (both: "not evaluated: no kernel floor in this run" without
#                                 kernel_floor.json, e.g. in out dirs of older versions)
#   p50_1x1_below_go              closed_1x1_s32_v2 amring p50 < Go's
#   p50_1x1_vs_floor              amring/floor p50 there, <= 1.1x; defined without busy-polling,
#                                 i.e. on a run with SERVER_SPIN=0 (the detail names the spin used)
#   open_loop_p99_below_go        the open case (50 % of Go's capacity, same rate for both):
#   open_loop_p999_below_go       amring p99 < Go's, and amring p99.9 < Go's
#   p999_16x16_below_go           closed_16x16_s32_v2 amring p99.9 < Go's
# Env:
#   AMRING_GO_PEER   go-peer binary to use instead of building tests/go-peer (an override).
#                    Unset: scripts/go-peer.sh builds target/go-peer/go-peer when Go is
#                    installed (through ../shared/goproxy when that exists). No Go and no
#                    override: amring and floor only, "Go peer: absent", Go-dependent targets
#                    "not evaluated"
#   AMRING_REQUIRE_GO=1  a Go peer that is absent or fails to start is an error (exit 1)
#   GO_CPUS          taskset CPU list of the Go server (default 0)
#   GO_MAXPROCS      GOMAXPROCS of the Go server (default 1 = one core, like amring's one shard)
#   SERVER_SPIN      busy-poll time of the amring and floor server cores before they park
#                    (loadgen --server-spin; default 50us, as the Go runtime also spins before
#                    it parks; 0 = park at once, the library default)
#   SWEEP_RATES      offered rates of the sweep (default 10k,20k,30k,40k,60k,80k,120k,160k,240k,
#                    320k); SWEEP_SLO the p99 objective (default 10ms: on this VM periodic
#                    stalls put every server's p99 at 1-5 ms at any load); SWEEP_DURATION
#                    each step's measured phase (default 2s; 500 ms warm-up per step)
#   LOADGEN          loadgen binary (default: cargo build --release -p loadgen)
#   LOOPBACK_BENCH   the loopback bench binary for the kernel floor (default: cargo bench
#                    -p amring-bench --bench loopback --no-run)
#   PERF             perf binary (default /usr/bin/perf)
#   COMPARE_HISTORY  history file (default bench/history/compare-go.jsonl)
#   CARGO_TARGET_DIR default <repo>/target
# Outputs (DIR default target/compare-go/<UTC time>): per run <case>.<server>.r<N>.json (loadgen
# report), .err, .perf, .meas; runs.tsv; machine.json (uname -r, nproc, CPU model: printed at
# the top of the summary); kernel_floor.json; summary.txt (the printed tables + targets);
# compare.json (with machine and kernel_floor); compare.bmf.json (the medians in Bencher's metric format); runs that loadgen's
# self-check flags as generator-limited are listed with "!" and left out of the medians; one line (schema amring-compare-go/2, see scripts/README.md) appended to the
# history file.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
history="${COMPARE_HISTORY:-$root/bench/history/compare-go.jsonl}"
perf_bin="${PERF:-/usr/bin/perf}"
go_cpus="${GO_CPUS-0}"
go_maxprocs="${GO_MAXPROCS:-1}"
server_spin="${SERVER_SPIN:-50us}"

summarize_dir="" quick=0 reps="" duration="" warmup=1s out_dir="" idle_conns=10k idle_rate=20k open_rate=""
sweep=1 sweep_only=0
sweep_rates="${SWEEP_RATES:-10k,20k,30k,40k,60k,80k,120k,160k,240k,320k}"
sweep_slo="${SWEEP_SLO:-10ms}" sweep_duration="${SWEEP_DURATION:-2s}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --reps) reps="$2"; shift ;;
        --duration) duration="$2"; shift ;;
        --warmup) warmup="$2"; shift ;;
        --idle-conns) idle_conns="$2"; shift ;;
        --idle-rate) idle_rate="$2"; shift ;;
        --open-rate) open_rate="$2"; shift ;;
        --out-dir) out_dir="$2"; shift ;;
        --summarize) summarize_dir="$2"; shift ;;
        --sweep) sweep_only=1 ;;
        --no-sweep) sweep=0 ;;
        -h|--help) sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "compare-go.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $quick == 1 ]]; then
    reps="${reps:-2}" duration="${duration:-2s}"
else
    reps="${reps:-3}" duration="${duration:-3s}"
fi
[[ $reps =~ ^[0-9]+$ && $reps -ge 1 ]] || { echo "compare-go.sh: --reps must be a positive integer" >&2; exit 2; }
out_dir="${out_dir:-${summarize_dir:-$CARGO_TARGET_DIR/compare-go/$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

# 3s / 500ms / 2m / 10k -> a number (seconds or a count), via python for the float maths.
to_secs() {
    python3 -c 'import re,sys
m=re.fullmatch(r"([0-9.]+)(ms|s|m|)",sys.argv[1])
if not m: sys.exit("bad duration "+sys.argv[1])
v=float(m.group(1)); u=m.group(2)
print(v/1000 if u=="ms" else v*60 if u=="m" else v)' "$1"
}
to_count() {
    python3 -c 'import sys
s=sys.argv[1].lower(); k={"k":1e3,"m":1e6}.get(s[-1:],1)
print(int(float(s[:-1] if s[-1:] in "km" else s)*k))' "$1"
}
dur_s=$(to_secs "$duration")
warm_s=$(to_secs "$warmup")
idle_n=$(to_count "$idle_conns")
idle_r=$(to_count "$idle_rate")
[[ -n "$open_rate" ]] && open_rate=$(to_count "$open_rate")
# The measured window: starts 0.2 s into loadgen's measured phase, ends 0.2 s before its end.
window_s=$(python3 -c "print(max(0.2, $dur_s - 0.4))")

# ---------------------------------------------------- tables + JSON + history ---
# summarize DIR: tables, targets, DIR/summary.txt, DIR/compare.json, one history line; the
# run's parameters come from DIR/summarize.args (written before the first run).
summarize() {
    local dir=$1 a=()
    mapfile -t a <"$dir/summarize.args"
    mkdir -p "$(dirname "$history")"
    python3 - "$dir" "$history" "${a[@]}" <<'PY' | tee "$dir/summary.txt"
import datetime, json, os, re, statistics, subprocess, sys

(out_dir, history, go_status, duration, warmup, reps, go_maxprocs, go_cpus,
 perf_status, quick, window_s, started) = sys.argv[1:13]
server_spin = sys.argv[13] if len(sys.argv) > 13 else "0"  # older out dirs: no spin
have_go = go_status.startswith("ok")
spin_zero = re.fullmatch(r"0*(\.0*)?(ns|us|µs|ms|s)?", server_spin.strip()) is not None

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

def last_line(path):
    try:
        lines = [l for l in open(path, errors="replace").read().splitlines() if l.strip()]
        return lines[-1][:300] if lines else None
    except OSError:
        return None

def this_machine():
    cpu = None
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"kernel": os.uname().release, "nproc": len(os.sched_getaffinity(0)), "cpus": os.cpu_count(), "cpu": cpu}

# The machine as recorded when the run started (machine.json); older out dirs: this one, now.
try:
    mach = dict(json.load(open(os.path.join(out_dir, "machine.json"))), recorded="run start")
except (OSError, ValueError):
    mach = dict(this_machine(), recorded="summarize (the out dir has no machine.json)")

# The kernel's cost per packet / per frame over loopback, measured by this run
# (bench/benches/loopback.rs with AMRING_LOOPBACK_JSON); older out dirs have none.
kfloor, kfloor_note = None, None
try:
    kfloor = json.load(open(os.path.join(out_dir, "kernel_floor.json")))
    if not isinstance(kfloor, dict):
        kfloor, kfloor_note = None, "kernel_floor.json is not an object"
except FileNotFoundError:
    kfloor_note = last_line(os.path.join(out_dir, "kernel_floor.err"))  # None: the run never tried
except (OSError, ValueError) as e:
    kfloor_note = f"kernel_floor.json unreadable: {e}"

def perf_count(path, note):
    """(count, reason): count of raw_syscalls:sys_enter from `perf stat -x,` output."""
    if note:
        return None, note
    try:
        for line in open(path):
            f = line.strip().split(",")
            if len(f) >= 3 and f[2].startswith("raw_syscalls:sys_enter"):
                try:
                    return int(float(f[0])), None
                except ValueError:
                    return None, f"perf: {f[0]}"
    except OSError as e:
        return None, f"perf output missing: {e}"
    return None, "perf output has no raw_syscalls:sys_enter line"

def run_record(base, rep, kind, rate):
    rec = {"rep": rep, "report": os.path.relpath(base + ".json", out_dir)}
    try:
        meas = json.load(open(base + ".meas"))
    except (OSError, ValueError):
        meas = {"error": "no measurement"}
    if meas.get("error"):
        rec["error"] = meas["error"]
        return rec
    try:
        r = json.load(open(base + ".json"))
    except (OSError, ValueError):
        rec["error"] = last_line(base + ".err") or f"loadgen rc={meas.get('loadgen_rc')}, no report"
        return rec
    lat = r.get("latency_us") or {}
    srv = r.get("server") or {}
    thr = r.get("throughput_rps")
    win = meas["window_s"]
    rts = thr * win if thr else None
    cnt, why = perf_count(base + ".perf", meas.get("perf_note"))
    rec.update({
        "throughput_rps": thr,
        "p50_us": lat.get("p50"),
        "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"),
        "requests": r.get("requests"),
        "errors_total": r.get("errors_total"),
        "connected": (r.get("connect") or {}).get("connected"),
        "connect_time_s": (r.get("connect") or {}).get("time_s"),
        "rss_per_conn_bytes": srv.get("rss_per_conn_bytes"),
        "window_s": round(win, 4),
        "server_cpu_s": meas["server_cpu_s"],
        "server_cpu_util": meas["server_cpu_s"] / win if win else None,
        "server_cpu_us_per_rt": meas["server_cpu_s"] * 1e6 / rts if rts else None,
        "syscalls": cnt,
        "syscalls_per_rt": cnt / rts if (cnt is not None and rts) else None,
        "syscalls_note": why,
        "window_in_measured_phase": meas.get("connected_seen"),
    })
    if not r.get("requests"):
        rec["error"] = ("no replies in the measured phase (server or generator stalled; "
                        f"{r.get('warmup_requests')} replies in the warm-up, {r.get('errors_total')} loadgen errors)")
    elif rate and thr < 0.9 * rate:
        rec["warning"] = f"served {100 * thr / rate:.0f} % of the offered {rate:,} req/s (backlog or stall)"
    if not meas.get("connected_seen"):
        rec["warning"] = (rec.get("warning", "") + "; " if rec.get("warning") else "") + "connections not seen up at the server within the allowance: window may overlap connect/warm-up"
    sc = r.get("selfcheck") or {}
    if sc and not sc.get("ok", True):
        why = [w for w, k in (("generator CPU saturated", "saturated"), ("sends left late", "slipped")) if sc.get(k)]
        rec["generator_limited"] = (f"generator-limited (loadgen self-check: {', '.join(why)}; cpu "
                                    f"{100 * (sc.get('generator_cpu_share') or 0):.0f} %, slip p99 "
                                    f"{sc['slip_p99_us'] if sc.get('slip_p99_us') is not None else 'n/a'} µs): "
                                    "not counted as a server figure")
    if meas.get("loadgen_rc"):
        rec["error"] = last_line(base + ".err") or f"loadgen rc={meas['loadgen_rc']}"
    return rec

METRICS = ["throughput_rps", "p50_us", "p99_us", "p999_us", "server_cpu_us_per_rt", "syscalls_per_rt",
           "server_cpu_util", "rss_per_conn_bytes", "connect_time_s", "errors_total"]

def summarize(runs):
    # Runs with an error, and runs loadgen's self-check flagged as limited by
    # the generator, never make a server figure.
    good = [r for r in runs if not r.get("error") and not r.get("generator_limited")]
    med, lo, hi = {}, {}, {}
    for m in METRICS:
        v = [r[m] for r in good if r.get(m) is not None]
        med[m] = statistics.median(v) if v else None
        lo[m] = min(v) if v else None
        hi[m] = max(v) if v else None
    return {"runs": runs, "median": med, "min": lo, "max": hi}

cases, order = {}, []
open_rates = {}
for line in open(os.path.join(out_dir, "open-rates.tsv")):
    v, rate, basis = line.rstrip("\n").split("\t")
    open_rates[v] = basis
for line in open(os.path.join(out_dir, "runs.tsv")):
    cid, kind, conns, streams, payload, version, rate, server, rep, base = line.rstrip("\n").split("\t")
    if cid not in cases:
        order.append(cid)
        cases[cid] = {"id": cid, "kind": kind, "conns": int(conns), "streams": int(streams), "pipeline": 1,
                      "payload": int(payload), "version": version,
                      "rate": None if rate == "-" else int(rate), "servers": {}, "_runs": {}}
        if kind == "open":
            cases[cid]["rate_basis"] = open_rates.get(version)
    cases[cid]["_runs"].setdefault(server, []).append(
        run_record(base, int(rep), kind, None if rate == "-" else int(rate)))

def ratio(a, b, m):
    x = a["median"].get(m) if a else None
    y = b["median"].get(m) if b else None
    return x / y if (x is not None and y) else None

case_list = []
for cid in order:
    c = cases[cid]
    kind = c["kind"]
    for srv, runs in c.pop("_runs").items():
        c["servers"][srv] = summarize(runs)
    a, g, fl = (c["servers"].get(k) for k in ("amring", "go", "floor"))
    c["ratio"] = {m: ratio(a, g, m) for m in ("throughput_rps", "p50_us", "p99_us", "p999_us",
                                               "server_cpu_us_per_rt", "syscalls_per_rt", "rss_per_conn_bytes")}
    c["ratio"]["p50_us_vs_floor"] = ratio(a, fl, "p50_us")
    if kind != "idle":  # RSS/conn of a handful of connections is one-time cost, not per connection
        c["ratio"]["rss_per_conn_bytes"] = None
    case_list.append(c)

# ---- tables
def n(v, d=1, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 1000 and d <= 1:
        return f"{v:,.0f}{unit}"
    return f"{v:,.{d}f}{unit}"

def cell(s, m, d=1):
    if not s or s["median"].get(m) is None:
        return "-"
    med, lo, hi = s["median"][m], s["min"][m], s["max"][m]
    return f"{n(med, d)} ({n(lo, d)}–{n(hi, d)})"

def rcell(v):
    return "-" if v is None else f"{v:.2f}×"

print(f"machine: kernel {mach.get('kernel')} (uname -r), nproc {mach.get('nproc')} (of {mach.get('cpus')}), "
      f"cpu {mach.get('cpu') or 'unknown'} (recorded at {mach.get('recorded')})")
print(f"compare-go.sh: loadgen --duration {duration} --warmup {warmup}, {reps} reps A/B alternating, "
      f"server window {window_s} s; quick={quick == '1'}")
print(f"Go peer: {go_status}")
print(f"perf: {perf_status}")
if kfloor:
    def kfig(f):
        f = f or {}
        return (f"{n(f.get('median'), 3)} ({n(f.get('min'), 3)}–{n(f.get('max'), 3)}) us, "
                f"{f.get('samples_kept')} samples kept, {f.get('samples_coalesced')} coalesced, "
                f"{n(f.get('segments_per_send'), 2)} segments/send" + (f", {f['attempt']}" if f.get("attempt") else ""))
    print(f"kernel floor (bench/benches/loopback.rs: sender CPU per send(2) over loopback, sender cpu "
          f"{kfloor.get('sender_cpu')}, drainer cpu {kfloor.get('drain_cpu')}{'' if kfloor.get('pinned') else ', NOT pinned'}"
          f", drainer sched {kfloor.get('drain_sched') or '?'}; median (min–max); samples where sends coalesced into "
          f"fewer segments are dropped):")
    print(f"  segment_64B  {kfig(kfloor.get('segment_64B_us'))} -> {n(kfloor.get('per_packet_us'), 3)} us per packet")
    print(f"  batch_16x64B {kfig(kfloor.get('batch_16x64B_us'))} -> {n(kfloor.get('per_frame_16_us'), 3)} us per frame")
else:
    print("kernel floor: none in this run" + (f" ({kfloor_note})" if kfloor_note else ""))
print("servers on cpu 0, loadgen on cpu 1; N×M = N conns × M streams, 1 in flight per stream; "
      "latency µs; cells = median (min–max); ratio = amring/Go (throughput > 1, rest < 1 favour amring)")
print("floor = loadgen's null server (--server null): a glommio TcpStream endpoint, one task per connection, "
      "v2 handshake + frame parsing, replies by swapping the pre-encoded envelope prefix without decoding. "
      "It is the raw glommio TCP path plus minimal framing, not a bare byte echo.")
cols = [("req/s", "throughput_rps", 0), ("p50", "p50_us", 1), ("p99", "p99_us", 1), ("p99.9", "p999_us", 1),
        ("CPU µs/RT", "server_cpu_us_per_rt", 2), ("sys/RT", "syscalls_per_rt", 3)]
for c in case_list:
    extra = f", rate {c['rate']:,} req/s ({c.get('rate_basis') or 'fixed'})" if c["rate"] else ""
    print()
    print(f"== {c['id']}: {c['kind']}, {c['conns']}×{c['streams']}, {c['payload']} B, {c['version']}{extra}")
    idle = c["kind"] == "idle"
    use = cols + ([("conn s", "connect_time_s", 2), ("RSS B/conn", "rss_per_conn_bytes", 0),
                   ("CPU util", "server_cpu_util", 3)] if idle else [])
    rows = []
    for srv in ("amring", "go", "floor"):
        s = c["servers"].get(srv)
        if s is None:
            continue
        errs = sum((r.get("errors_total") or 0) for r in s["runs"])
        failed = sum(1 for r in s["runs"] if r.get("error"))
        rows.append([srv] + [cell(s, m, d) for _, m, d in use] + [f"{errs}" + (f" / {failed} failed" if failed else "")])
    rat = c["ratio"]
    if "go" in c["servers"]:
        rows.append(["amring/go"] + [rcell(rat.get(m)) for _, m, _ in use] + [""])
    if rat.get("p50_us_vs_floor") is not None:
        rows.append(["amring/floor"] + ["", rcell(rat["p50_us_vs_floor"])] + [""] * (len(use) - 1))
    hdr = ["server"] + [h for h, _, _ in use] + ["errors"]
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    print("  " + "  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        print("  " + "  ".join(str(x).ljust(w[i]) if i == 0 else str(x).rjust(w[i]) for i, x in enumerate(r)))
    for srv, s in c["servers"].items():
        for r in s["runs"]:
            if r.get("error"):
                print(f"  ! {srv} r{r['rep']}: {r['error']}")
            elif r.get("warning"):
                print(f"  ! {srv} r{r['rep']}: {r['warning']}")
            if r.get("generator_limited"):
                print(f"  ! {srv} r{r['rep']}: {r['generator_limited']}")
            if r.get("syscalls_note") and r.get("syscalls_note") != perf_status:
                print(f"  ! {srv} r{r['rep']}: syscalls null: {r['syscalls_note']}")

# ---- targets
by_id = {c["id"]: c for c in case_list}
def med(cid, srv, m):
    c = by_id.get(cid)
    s = c and c["servers"].get(srv)
    return s["median"].get(m) if s else None

targets = []
hows = {}  # name -> how far a missed target is off (printed only)
def target(name, value, goal, met, detail, how=""):
    targets.append({"name": name, "value": value, "target": goal, "met": met, "detail": detail})
    if met is False and how:
        hows[name] = how

closed = [c for c in case_list if c["kind"] == "closed"]
ms = "closed_16x16_s32_v2"
c11 = "closed_1x1_s32_v2"
big = sorted((c for c in closed if c["conns"] >= 1000), key=lambda c: c["id"])
big = big[0]["id"] if big else None

# 1. throughput >= 10x Go at Go's best closed-loop configuration.
gbest = max((c for c in closed if med(c["id"], "go", "throughput_rps")), default=None,
            key=lambda c: med(c["id"], "go", "throughput_rps"))
if not have_go or gbest is None:
    target("throughput_vs_go_at_go_best", None, ">= 10x", None, "not evaluated: Go peer absent or no Go result")
else:
    a, g = med(gbest["id"], "amring", "throughput_rps"), med(gbest["id"], "go", "throughput_rps")
    v = a / g if a and g else None
    refs = ""
    if ms in by_id and by_id[ms]["ratio"]["throughput_rps"] is not None:
        refs = f"; at the issue's Go-best config {ms}: {by_id[ms]['ratio']['throughput_rps']:.2f}x"
    target("throughput_vs_go_at_go_best", v, ">= 10x", None if v is None else v >= 10,
           f"Go best = {gbest['id']} at {g:,.0f} req/s; amring {n(a, 0)} req/s" + refs,
           f"by {10 / v:.2f}x: {v:.2f}x vs 10x" if v else "")

# 2. 10k connections x 1 request in flight, closed loop: throughput >= 10x Go's.
if big is None:
    target("closed_10k_throughput_vs_go", None, ">= 10x", None, "not evaluated: no many-connection closed case")
else:
    a, g = med(big, "amring", "throughput_rps"), med(big, "go", "throughput_rps")
    r = a / g if a and g else None
    target("closed_10k_throughput_vs_go", r, ">= 10x", None if r is None else r >= 10,
           f"{big}: amring {n(a, 0)} req/s, Go {n(g, 0)} req/s"
           + ("" if r is not None else " (not evaluated: a server has no result)"),
           f"by {10 / r:.2f}x: {r:.2f}x vs 10x" if r else "")

# 3. syscalls per round trip under the many-stream load (amring alone; issue 15: <= 0.05).
others = [c["id"] for c in closed if c["conns"] * c["streams"] >= 256 and c["id"] != ms]
v = med(ms, "amring", "syscalls_per_rt")
if v is None:
    target("syscalls_per_rt", None, "<= 0.05", None,
           "not evaluated: " + ("no such case in this run" if ms not in by_id else perf_status))
else:
    more = "; ".join(f"{o}: amring {n(med(o, 'amring', 'syscalls_per_rt'), 3)}, go {n(med(o, 'go', 'syscalls_per_rt'), 3)}"
                     for o in others)
    target("syscalls_per_rt", v, "<= 0.05", v <= 0.05,
           f"amring in {ms}: {v:.3f} (Go {n(med(ms, 'go', 'syscalls_per_rt'), 3)})" + (f"; {more}" if more else ""),
           f"by {v / 0.05:.2f}x")

# 4. server CPU per round trip against the kernel's own cost, measured in this run
# (kernel_floor.json, bench/benches/loopback.rs): the absolute figures issue 15 asked
# for (0.35 us, 2 us) lie below this VM's per-packet floor.
def vs_kernel(name, cid, floor_key, fig, what):
    goal = "<= 1.5x"
    if not kfloor:
        target(name, None, goal, None, "not evaluated: no kernel floor in this run" + (f" ({kfloor_note})" if kfloor_note else ""))
        return
    if not kfloor.get(floor_key):
        target(name, None, goal, None, f"not evaluated: the kernel floor has no {floor_key} (every sample coalesced?)")
        return
    k = kfloor[floor_key]
    a, g = med(cid, "amring", "server_cpu_us_per_rt") if cid else None, med(cid, "go", "server_cpu_us_per_rt") if cid else None
    if a is None:
        target(name, None, goal, None, "not evaluated: " + ("no such case in this run" if cid not in by_id else "no amring result")
               + f"; kernel {k:.3f} us {what}")
        return
    v = a / k
    gtxt = f" (Go {g:.3f} us = {g / k:.2f}x the kernel)" if g is not None else ""
    target(name, v, goal, v <= 1.5,
           f"{cid}: amring {a:.3f} us server CPU per round trip{gtxt}; kernel {k:.3f} us {what} "
           f"(kernel_floor.json, {(kfloor.get(fig) or {}).get('attempt') or 'this run'})",
           f"by {v / 1.5:.2f}x: {v:.2f}x vs 1.5x")
kb = (kfloor or {}).get("batch_16x64B_us") or {}
ks = (kfloor or {}).get("segment_64B_us") or {}
vs_kernel("cpu_per_frame_vs_kernel_16x16", ms, "per_frame_16_us", "batch_16x64B_us",
          f"per frame with 16 frames in one segment (loopback/batch_16x64B {n(kb.get('median'), 3)} us / 16)")
vs_kernel("cpu_per_packet_vs_kernel_10k", big, "per_packet_us", "segment_64B_us",
          f"per packet (loopback/segment_64B, one 64 B segment per send)")

# 5. 1x1 p50 below Go's, and within 1.1x of the floor.
a50, g50, f50 = med(c11, "amring", "p50_us"), med(c11, "go", "p50_us"), med(c11, "floor", "p50_us")
if not have_go or a50 is None or g50 is None:
    target("p50_1x1_below_go", None, "< Go p50", None, "not evaluated: Go peer absent or no result")
else:
    target("p50_1x1_below_go", a50, "< Go p50", a50 < g50, f"{c11}: amring p50 {a50:.1f} us, Go p50 {g50:.1f} us",
           f"amring/Go = {a50 / g50:.2f}x")
spin_txt = (f"server spin {server_spin}{'' if len(sys.argv) > 13 else ' (not recorded by this older out dir: 0 assumed)'}: " + (
    "no busy-polling (SERVER_SPIN=0), the measurement this target is defined on" if spin_zero else
    f"amring and floor busy-poll {server_spin} before parking; the target is defined without busy-polling, "
    "i.e. on a run with SERVER_SPIN=0"))
if a50 is None or f50 is None:
    target("p50_1x1_vs_floor", None, "<= 1.1x floor", None, f"not evaluated: no amring or floor result; {spin_txt}")
else:
    target("p50_1x1_vs_floor", a50 / f50, "<= 1.1x floor", a50 / f50 <= 1.1,
           f"{c11}: amring p50 {a50:.1f} us, floor (null server) p50 {f50:.1f} us; {spin_txt}",
           f"by {a50 / f50 / 1.1:.2f}x: {a50 / f50:.2f}x vs 1.1x")

# 6. open loop at 50 % of Go's closed-loop capacity (same offered rate for both servers):
# amring's p99 and p99.9 below Go's.
oc = [c for c in case_list if c["kind"] == "open"]
for name, m, label in (("open_loop_p99_below_go", "p99_us", "p99"), ("open_loop_p999_below_go", "p999_us", "p99.9")):
    goal = f"< Go {label}"
    if not have_go or not oc:
        target(name, None, goal, None, "not evaluated: Go peer absent or no open-loop case")
        continue
    first = oc[0]
    a, g = med(first["id"], "amring", m), med(first["id"], "go", m)
    rest = "; ".join(f"{c['id']}: amring {n(med(c['id'], 'amring', m))} us, go {n(med(c['id'], 'go', m))} us"
                     for c in oc[1:])
    if a is None or g is None:
        why = []
        for srv in ("amring", "go"):
            runs = (first["servers"].get(srv) or {}).get("runs") or []
            lim = sum(1 for r in runs if r.get("generator_limited") and not r.get("error"))
            if med(first["id"], srv, m) is None:
                why.append(f"{srv}: " + (f"all {len(runs)} runs generator-limited" if runs and lim == len(runs)
                                        else f"no result in {len(runs)} runs"))
        target(name, None, goal, None, f"not evaluated: no server figure in {first['id']} ({'; '.join(why)})")
        continue
    target(name, a, goal, a < g,
           f"{first['id']} at {first['rate']:,} req/s ({first.get('rate_basis') or 'fixed'}): "
           f"amring {label} {a:.1f} us, Go {label} {g:.1f} us" + (f"; {rest}" if rest else ""),
           f"amring/Go = {a / g:.2f}x" if g else "")

# 7. closed 16x16: amring's p99.9 below Go's.
a, g = med(ms, "amring", "p999_us"), med(ms, "go", "p999_us")
if not have_go or a is None or g is None:
    target("p999_16x16_below_go", None, "< Go p99.9", None,
           "not evaluated: " + ("Go peer absent" if not have_go else f"no {ms} result for a server"))
else:
    target("p999_16x16_below_go", a, "< Go p99.9", a < g,
           f"{ms}: amring p99.9 {a:.1f} us, Go p99.9 {g:.1f} us (p99 {n(med(ms, 'amring', 'p99_us'))} vs "
           f"{n(med(ms, 'go', 'p99_us'))} us)", f"amring/Go = {a / g:.2f}x" if g else "")

print()
print("== Targets")
for t in targets:
    v = t["value"]
    if t["met"] is None:
        verdict = "NOT EVALUATED"
    elif t["met"]:
        verdict = "met"
    else:
        verdict = "MISSED"
    how = f" ({hows[t['name']]})" if t["name"] in hows else ""
    shown = "-" if v is None else (f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}")
    print(f"  {t['name']:<30} {verdict:<13} value {shown:<10} target {t['target']:<14}{how}")
    print(f"      {t['detail']}")

# ---- JSON
status = sh("git", "status", "--porcelain", "--untracked-files=no")
record = {
    "schema": "amring-compare-go/2",
    "sha": sh("git", "rev-parse", "HEAD"),
    "dirty": bool(status),
    "branch": sh("git", "rev-parse", "--abbrev-ref", "HEAD"),
    "date": started,
    "machine": {"cpu": mach.get("cpu"), "cpus": mach.get("cpus"), "nproc": mach.get("nproc"),
                "kernel": mach.get("kernel"), "recorded": mach.get("recorded"),
                "loadavg": open("/proc/loadavg").read().split()[:3]},
    "params": {"duration": duration, "warmup": warmup, "reps": int(reps), "go_maxprocs": int(go_maxprocs),
               "go_cpus": go_cpus, "quick": quick == "1", "window_s": float(window_s), "perf": perf_status,
               "server_cpus": "0", "loadgen_cpus": "1", "server_spin": server_spin},
    "go_status": go_status,
    "out_dir": os.path.relpath(out_dir),
    "cases": case_list,
    "kernel_floor": kfloor,
    "kernel_floor_note": kfloor_note,
    "targets": targets,
}
with open(os.path.join(out_dir, "compare.json"), "w") as fh:
    json.dump(record, fh, indent=1)
# Bencher's metric format (BMF): the medians per case and server, for a dashboard.
BMF_UNITS = {"throughput_rps": "throughput", "p50_us": "latency_p50_us", "p99_us": "latency_p99_us",
             "p999_us": "latency_p999_us", "server_cpu_us_per_rt": "server_cpu_us_per_rt", "syscalls_per_rt": "syscalls_per_rt",
             "rss_per_conn_bytes": "rss_per_conn_bytes"}
bmf = {}
for c in case_list:
    for srv, sv in c["servers"].items():
        m = {BMF_UNITS[k]: {"value": sv["median"][k], "lower_value": sv["min"][k], "upper_value": sv["max"][k]}
             for k in BMF_UNITS if sv["median"].get(k) is not None}
        if m:
            bmf[f"compare-go/{c['id']}/{srv}"] = m
with open(os.path.join(out_dir, "compare.bmf.json"), "w") as fh:
    json.dump(bmf, fh, indent=1)
with open(history, "a") as fh:
    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
print()
print(f"wrote {os.path.join(out_dir, 'compare.json')}, {os.path.join(out_dir, 'compare.bmf.json')}, {os.path.join(out_dir, 'summary.txt')}; "
      f"appended 1 line ({len(case_list)} cases) to {history}")
PY
}

if [[ -n "$summarize_dir" ]]; then
    summarize "$summarize_dir"
    exit 0
fi

# ---------------------------------------------------------------- loadgen ---
if [[ -z "${LOADGEN:-}" ]]; then
    echo "compare-go.sh: building loadgen (release)" >&2
    cargo build --release -p loadgen >&2
    LOADGEN="$CARGO_TARGET_DIR/release/loadgen"
fi
[[ -x "$LOADGEN" ]] || { echo "compare-go.sh: loadgen binary $LOADGEN not found" >&2; exit 1; }

# ------------------------------------------------------------------- perf ---
perf_status="ok"
if [[ ! -x "$perf_bin" ]]; then
    perf_status="unavailable: $perf_bin not found"
elif ! "$perf_bin" stat -e raw_syscalls:sys_enter -x, -o "$out_dir/.perf-probe" -- true >/dev/null 2>"$out_dir/.perf-probe.err"; then
    perf_status="unavailable: $(tr '\n' ' ' <"$out_dir/.perf-probe.err" | cut -c1-200)"
fi
rm -f "$out_dir/.perf-probe" "$out_dir/.perf-probe.err"
echo "compare-go.sh: perf: $perf_status" >&2

# ----------------------------------------------------------- kernel floor ---
# bench/benches/loopback.rs in its JSON mode: the sender's CPU per send(2) of one 64 B
# segment and of 16 × 64 B in one segment, sender on cpu 0 (the servers'), drainer on cpu 1
# (loadgen's). Built here, run just before the matrix; a failure leaves kernel_floor.err and
# the targets that need it "not evaluated".
loopback_bench="${LOOPBACK_BENCH:-}"
rm -f "$out_dir/kernel_floor.json" "$out_dir/kernel_floor.err" "$out_dir/kernel_floor.log"
if [[ -z "$loopback_bench" && $sweep_only == 0 ]]; then
    echo "compare-go.sh: building the loopback bench (kernel floor)" >&2
    if loopback_bench=$(cargo bench -p amring-bench --bench loopback --no-run --message-format=json-render-diagnostics \
        2>"$out_dir/kernel_floor.build.log" | python3 -c 'import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact"
       and m.get("target", {}).get("name") == "loopback" and m.get("executable")]
print(exe[-1] if exe else "")') && [[ -n "$loopback_bench" ]]; then
        :
    else
        loopback_bench=""
        echo "kernel floor: the loopback bench did not build: $(tail -n 3 "$out_dir/kernel_floor.build.log" | tr '\n' ' ' | cut -c1-250)" \
            >"$out_dir/kernel_floor.err"
        cat "$out_dir/kernel_floor.err" >&2
    fi
fi
run_kernel_floor() { # $1 = when ("before the matrix" / "after the matrix")
    [[ -n "$loopback_bench" ]] || return 0
    local try="$out_dir/kernel_floor.try.json"
    echo "compare-go.sh: kernel floor ($1): $loopback_bench (sender cpu 0, drainer cpu 1)" >&2
    rm -f "$try"
    if AMRING_LOOPBACK_JSON="$try" AMRING_LOOPBACK_CPUS=0,1 \
        timeout --kill-after=5 120 taskset -c 0,1 "$loopback_bench" >>"$out_dir/kernel_floor.log" 2>&1 &&
        python3 - "$try" "$out_dir/kernel_floor.json" "$1" <<'PY' >&2
# Keeps, per figure, the first attempt that has it (an attempt where every sample
# coalesced has none); the file says which attempt each figure came from.
import json, os, sys
try_path, path, when = sys.argv[1:]
new = json.load(open(try_path))
old = json.load(open(path)) if os.path.exists(path) else None
keys = (("segment_64B_us", "per_packet_us"), ("batch_16x64B_us", "per_frame_16_us"))
for fig, _ in keys:
    new[fig]["attempt"] = when
if old is None:
    out = new
else:
    out = old
    for fig, derived in keys:
        if out.get(derived) is None and new.get(derived) is not None:
            out[fig], out[derived] = new[fig], new[derived]
out["attempts"] = (old or {}).get("attempts", []) + [when]
json.dump(out, open(path, "w"))
print("compare-go.sh: kernel floor: %s us per packet, %s us per frame (16 in a segment)"
      % (out.get("per_packet_us"), out.get("per_frame_16_us")))
PY
    then
        rm -f "$try"
    else
        rm -f "$try"
        [[ -s "$out_dir/kernel_floor.json" ]] && return 0
        echo "kernel floor: the loopback bench failed: $(tail -n 3 "$out_dir/kernel_floor.log" | tr '\n' ' ' | cut -c1-250)" \
            >"$out_dir/kernel_floor.err"
        cat "$out_dir/kernel_floor.err" >&2
    fi
}
kernel_floor_complete() { # both figures present
    python3 -c 'import json, sys
k = json.load(open(sys.argv[1]))
sys.exit(0 if k.get("per_packet_us") and k.get("per_frame_16_us") else 1)' "$out_dir/kernel_floor.json" 2>/dev/null
}

# ---------------------------------------------------------------- servers ---
srv_pid="" srv_fd="" srv_addr="" lg_pid=""
stop_server() {
    if [[ -n "$srv_fd" ]]; then
        exec {srv_fd}>&- # EOF on the amring/floor server's stdin: it exits on its own
        srv_fd=""
        for _ in $(seq 1 30); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -n "$srv_pid" ]]; then
        kill "$srv_pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
        srv_pid=""
    fi
}
cleanup() {
    if [[ -n "$lg_pid" ]]; then kill "$lg_pid" 2>/dev/null || true; wait "$lg_pid" 2>/dev/null || true; fi
    stop_server
    rm -f "$out_dir/.srv.fifo"
}
trap cleanup EXIT
trap 'exit 130' INT # exit, so that the EXIT trap runs and no further run starts
trap 'exit 143' TERM

wait_listening() { # $1 = log, $2 = sed expression printing the address; sets srv_addr
    srv_addr=""
    touch "$1" # the background redirect may not have created it yet
    for _ in $(seq 1 100); do
        srv_addr=$(sed -n "$2" "$1" | head -1)
        [[ -n "$srv_addr" ]] && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}

# amring or floor: loadgen's standalone server mode, stdin held open through a fifo.
start_loadgen_server() { # $1 = amring|null, $2 = v2|v3, $3 = log
    local fifo="$out_dir/.srv.fifo" args=(--internal-serve --server "$1" --server-cores 1 --server-spin "$server_spin")
    [[ $2 == v3 ]] && args+=(--recovery)
    rm -f "$fifo"
    mkfifo "$fifo"
    taskset -c 0 "$LOADGEN" "${args[@]}" <"$fifo" >"$3" 2>&1 &
    srv_pid=$!
    exec {srv_fd}>"$fifo"
    rm -f "$fifo"
    wait_listening "$3" 's/^listening \(127\.0\.0\.1:[0-9]*\)$/tcp:\/\/\1/p'
}

start_go() { # $1 = v2|v3, $2 = log
    local args=(server --addr tcp://127.0.0.1:0) pin=()
    [[ $1 == v3 ]] && args+=(-recovery)
    [[ -n "$go_cpus" ]] && pin=(taskset -c "$go_cpus")
    (
        ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        GOMAXPROCS="$go_maxprocs" exec "${pin[@]}" "$go_peer" "${args[@]}"
    ) >"$2" 2>&1 &
    srv_pid=$!
    wait_listening "$2" 's/^listening \(tcp:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p'
}

# The Go peer: AMRING_GO_PEER, else tests/go-peer built by scripts/go-peer.sh (needs Go).
# shellcheck source=scripts/go-peer.sh
source "$root/scripts/go-peer.sh"
if go_peer="$(amring_go_peer 2>"$out_dir/go-peer-build.log")"; then
    cat "$out_dir/go-peer-build.log" >&2
    if start_go v2 "$out_dir/go-probe.log"; then
        go_status="ok ($go_peer, GOMAXPROCS=$go_maxprocs, cpus ${go_cpus:-any})"
    else
        go_status="failed to start (see $out_dir/go-probe.log)"
    fi
    stop_server
else
    cat "$out_dir/go-peer-build.log" >&2
    go_status="absent ($(tail -n 1 "$out_dir/go-peer-build.log" | sed 's/^go-peer\.sh: //'))"
fi
have_go=0
[[ $go_status == ok* ]] && have_go=1
echo "compare-go.sh: Go peer: $go_status" >&2
if [[ $have_go == 0 && ${AMRING_REQUIRE_GO:-} == 1 ]]; then
    echo "compare-go.sh: AMRING_REQUIRE_GO=1 but the Go peer is $go_status" >&2
    exit 1
fi
if [[ $have_go == 0 ]]; then
    echo "compare-go.sh: ************************************************************" >&2
    echo "compare-go.sh: Go peer: absent -- only amring and the floor are measured;" >&2
    echo "compare-go.sh: no Go numbers, targets needing Go are not evaluated." >&2
    echo "compare-go.sh: ************************************************************" >&2
fi

# ---------------------------------------------------------------- one run ---
cpu_ticks() { # utime + stime of a whole process (all threads, dead ones included)
    local line rest
    read -r line <"/proc/$1/stat" || { echo 0; return; }
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $(( ${12} + ${13} ))
}
fd_count() { local f=(/proc/"$1"/fd/*); echo "${#f[@]}"; }
clk_tck=$(getconf CLK_TCK)
: >"$out_dir/runs.tsv"

# run_case ID KIND CONNS STREAMS PAYLOAD VERSION RATE SERVER REP
run_one() {
    local id=$1 kind=$2 conns=$3 streams=$4 payload=$5 version=$6 rate=$7 server=$8 rep=$9
    local base="$out_dir/$id.$server.r$rep"
    local report="$base.json" err="$base.err" perf_out="$base.perf" meas="$base.meas"
    rm -f "$report" "$err" "$perf_out" "$meas"
    local ok=1
    case "$server" in
        amring) start_loadgen_server amring "$version" "$base.server.log" || ok=0 ;;
        floor) start_loadgen_server null "$version" "$base.server.log" || ok=0 ;;
        go) start_go "$version" "$base.server.log" || ok=0 ;;
    esac
    if [[ $ok == 0 ]]; then
        echo "compare-go.sh: $id $server r$rep: server did not start ($(tail -c 200 "$base.server.log" | tr '\n' ' '))" >&2
        printf '{"error":"server did not start"}\n' >"$meas"
        stop_server
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$kind" "$conns" "$streams" "$payload" "$version" "$rate" "$server" "$rep" "$base" >>"$out_dir/runs.tsv"
        return 0
    fi
    local args=(--target "$srv_addr" --server-pid "$srv_pid" --conns "$conns" --streams "$streams"
        --pipeline 1 --payload "$payload" --cores 1 --duration "$duration" --warmup "$warmup"
        --output json --out "$report" --no-progress)
    [[ $version == v3 ]] && args+=(--recovery)
    [[ $rate != - ]] && args+=(--rate "$rate")
    local connect_allow=$(( 10 + conns / 2000 ))
    local limit
    limit=$(python3 -c "import math; print(math.ceil($dur_s + $warm_s + $connect_allow + 30))")
    local fds0
    fds0=$(fd_count "$srv_pid")
    local t_start=$EPOCHREALTIME
    timeout --kill-after=5 "$limit" "$LOADGEN" "${args[@]}" >/dev/null 2>"$err" &
    lg_pid=$!
    # Connections up = the server holds `conns` more descriptors (bounded wait).
    local connected=0 now_us deadline_us=$(( ${t_start/./} + connect_allow * 1000000 ))
    while kill -0 "$lg_pid" 2>/dev/null; do
        if (( $(fd_count "$srv_pid") >= fds0 + conns )); then connected=1; break; fi
        now_us=${EPOCHREALTIME/./}
        (( now_us < deadline_us )) || break
        sleep 0.02
    done
    local t_conn=$EPOCHREALTIME
    sleep "$(python3 -c "print($warm_s + 0.2)")"
    local perf_rc=0 perf_note="" cpu0 cpu1 w0 w1
    cpu0=$(cpu_ticks "$srv_pid")
    w0=$EPOCHREALTIME
    if [[ $perf_status == ok ]]; then
        "$perf_bin" stat -e raw_syscalls:sys_enter -x, -o "$perf_out" -p "$srv_pid" -- sleep "$window_s" \
            >/dev/null 2>"$perf_out.err" || perf_rc=$?
        [[ $perf_rc != 0 ]] && perf_note="perf rc=$perf_rc: $(tr '\n' ' ' <"$perf_out.err" | cut -c1-200)"
    else
        sleep "$window_s"
        perf_note="$perf_status"
    fi
    w1=$EPOCHREALTIME
    cpu1=$(cpu_ticks "$srv_pid")
    local rc=0
    wait "$lg_pid" || rc=$?
    lg_pid=""
    stop_server
    python3 - "$meas" "$connected" "$t_start" "$t_conn" "$w0" "$w1" "$cpu0" "$cpu1" "$clk_tck" "$rc" "$perf_note" <<'PY'
import json, sys
meas, connected, t_start, t_conn, w0, w1, cpu0, cpu1, tck, rc, perf_note = sys.argv[1:]
json.dump({
    "connected_seen": connected == "1",
    "connect_wait_s": float(t_conn) - float(t_start),
    "window_s": float(w1) - float(w0),
    "server_cpu_s": (int(cpu1) - int(cpu0)) / int(tck),
    "loadgen_rc": int(rc),
    "perf_note": perf_note or None,
}, open(meas, "w"))
PY
    if [[ $rc != 0 ]]; then
        echo "compare-go.sh: $id $server r$rep: loadgen failed (rc=$rc): $(tail -c 300 "$err" | tr '\n' ' ')" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$kind" "$conns" "$streams" "$payload" "$version" "$rate" "$server" "$rep" "$base" >>"$out_dir/runs.tsv"
    return 0
}

run_case() { # ID KIND CONNS STREAMS PAYLOAD VERSION RATE WITH_FLOOR
    local rep srv servers=(amring)
    [[ $have_go == 1 ]] && servers+=(go)
    [[ $8 == 1 ]] && servers+=(floor)
    for rep in $(seq 1 "$reps"); do
        for srv in "${servers[@]}"; do
            echo "compare-go.sh: $1 ${2} $srv r$rep/$reps" >&2
            run_one "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$srv" "$rep"
        done
    done
}

# Open-loop rate: 50 % of the Go server's best closed-loop median (this version) so far.
open_rate_for() { # VERSION -> "RATE<TAB>BASIS"
    if [[ -n "$open_rate" ]]; then printf '%s\t%s\n' "$open_rate" "fixed (--open-rate)"; return; fi
    python3 - "$out_dir/runs.tsv" "$1" <<'PY'
import json, statistics, sys
tsv, version = sys.argv[1:]
best = None
by_case = {}
for line in open(tsv):
    f = line.rstrip("\n").split("\t")
    if f[1] != "closed" or f[5] != version or f[7] != "go":
        continue
    try:
        r = json.load(open(f[9] + ".json"))
    except (OSError, ValueError):
        continue
    if r.get("errors_total", 0) == 0 and r.get("throughput_rps"):
        by_case.setdefault(f[0], []).append(r["throughput_rps"])
for case, v in by_case.items():
    m = statistics.median(v)
    if best is None or m > best[0]:
        best = (m, case)
if best is None:
    print("46000\tfallback: no Go closed-loop result; 50 % of the issue's 93k Go figure")
else:
    print(f"{max(1, int(best[0] / 2))}\t50 % of the Go median {best[0]:.0f} req/s in {best[1]}")
PY
}

printf '%s\n' "$go_status" "$duration" "$warmup" "$reps" "$go_maxprocs" "$go_cpus" "$perf_status" "$quick" \
    "$window_s" "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "$server_spin" >"$out_dir/summarize.args"
# The machine, as the summary prints it at its top (and compare.json stores it).
python3 - "$(uname -r)" "$(nproc)" "$(getconf _NPROCESSORS_ONLN)" >"$out_dir/machine.json" <<'PY'
import json, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
json.dump({"kernel": sys.argv[1], "nproc": int(sys.argv[2]), "cpus": int(sys.argv[3]), "cpu": cpu}, sys.stdout)
PY

# ------------------------------------------------------------------ sweep ---
# run_sweep: `loadgen sweep` against amring and (when present) Go, 16×16 v2 32 B, one fresh
# server process per sweep; both sweeps on one plot and their knees in DIR/sweep.json.
run_sweep() {
    local srv servers=(amring) files=() ok
    [[ $have_go == 1 ]] && servers+=(go)
    for srv in "${servers[@]}"; do
        echo "compare-go.sh: sweep $srv over $sweep_rates (p99 objective $sweep_slo)" >&2
        ok=1
        case "$srv" in
            amring) start_loadgen_server amring v2 "$out_dir/sweep.$srv.server.log" || ok=0 ;;
            go) start_go v2 "$out_dir/sweep.$srv.server.log" || ok=0 ;;
        esac
        if [[ $ok == 1 ]]; then
            timeout --kill-after=5 1800 "$LOADGEN" sweep --target "$srv_addr" --server-pid "$srv_pid" \
                --conns 16 --streams 16 --pipeline 1 --payload 32 --cores 1 --rates "$sweep_rates" \
                --duration "$sweep_duration" --warmup 500ms --slo-p99 "$sweep_slo" --label "$srv" \
                --sweep-json "$out_dir/sweep.$srv.json" --no-progress \
                >"$out_dir/sweep.$srv.txt" 2>"$out_dir/sweep.$srv.err" || ok=0
        fi
        stop_server
        if [[ $ok == 1 && -s "$out_dir/sweep.$srv.json" ]]; then
            files+=("$out_dir/sweep.$srv.json")
        else
            echo "compare-go.sh: sweep $srv failed: $(tail -c 300 "$out_dir/sweep.$srv.err" | tr '\n' ' ')" >&2
        fi
    done
    [[ ${#files[@]} -gt 0 ]] || return 0
    "$LOADGEN" plot "${files[@]}" --svg "$out_dir/sweep.svg" \
        --title "rate sweep: echo 16×16 v2 32 B, servers on one core, p99 objective $sweep_slo" >/dev/null
    python3 - "$out_dir" "${files[@]}" <<'PY' | tee "$out_dir/sweep.summary.txt"
import json, os, sys
out_dir, files = sys.argv[1], sys.argv[2:]
knees = {}
print("rate sweep (16x16 v2 32 B, open loop; '!' = generator-limited step, never the knee):")
for f in files:
    s = json.load(open(f))
    k = s.get("knee")
    knees[s["label"]] = k
    met = [st for st in s["steps"] if st["selfcheck_ok"]]
    flagged = len(s["steps"]) - len(met)
    if k:
        print(f"  {s['label']:>7}: knee {k['offered_rps']:.0f} req/s offered, {k['achieved_rps']:.0f} achieved, "
              f"p99 {k['p99_us']:.1f} us  ({len(s['steps'])} steps, {flagged} flagged)")
    else:
        print(f"  {s['label']:>7}: no step meets p99 <= {s.get('slo_p99_us')} us ({len(s['steps'])} steps, {flagged} flagged)")
a, g = knees.get("amring"), knees.get("go")
ratio = None
if a and g and g["offered_rps"] > 0:
    ratio = a["offered_rps"] / g["offered_rps"]
    print(f"  knee ratio amring/go: {ratio:.1f}x")
print(f"  plot: {os.path.join(out_dir, 'sweep.svg')}")
json.dump({"knees": knees, "ratio": ratio}, open(os.path.join(out_dir, "sweep.json"), "w"), indent=2)
PY
}

if [[ $sweep_only == 1 ]]; then
    run_sweep
    exit 0
fi

# ----------------------------------------------------------------- matrix ---
run_kernel_floor "before the matrix"
versions=(v2 v3) payloads=(32 1024) closed=("1 1" "1 16" "4 16" "16 16" "64 4")
if [[ $quick == 1 ]]; then versions=(v2) payloads=(32) closed=("1 1" "16 16"); fi
: >"$out_dir/open-rates.tsv"
for version in "${versions[@]}"; do
    for c in "${closed[@]}"; do
        read -r conns streams <<<"$c"
        for payload in "${payloads[@]}"; do
            floor=0
            [[ $conns == 1 && $streams == 1 && $version == v2 ]] && floor=1
            run_case "closed_${conns}x${streams}_s${payload}_${version}" closed "$conns" "$streams" "$payload" "$version" - "$floor"
        done
    done
    # Many connections, one request in flight each (issue 15's 10k case).
    run_case "closed_${idle_n}x1_s32_${version}" closed "$idle_n" 1 32 "$version" - 0
    IFS=$'\t' read -r rate basis < <(open_rate_for "$version")
    printf '%s\t%s\t%s\n' "$version" "$rate" "$basis" >>"$out_dir/open-rates.tsv"
    echo "compare-go.sh: open loop $version at $rate req/s ($basis)" >&2
    run_case "open_16x16_s32_${version}" open 16 16 32 "$version" "$rate" 0
done
for version in "${versions[@]}"; do
    run_case "idle_${idle_n}x1_s32_${version}" idle "$idle_n" 1 32 "$version" "$idle_r" 0
done
# Every sample of a kernel-floor figure coalesced (the drainer lagged): one more try.
if [[ -s "$out_dir/kernel_floor.json" ]] && ! kernel_floor_complete; then
    run_kernel_floor "after the matrix"
fi

summarize "$out_dir"
if [[ $sweep == 1 && $quick == 0 ]]; then
    run_sweep
    cat "$out_dir/sweep.summary.txt" >>"$out_dir/summary.txt" 2>/dev/null || true
fi
