#!/usr/bin/env bash
# Side-by-side loadgen comparison of amring and the Go reference, in one run.
#
# For every case of a small matrix (conns × pipeline × payload × v2/v3) it runs
# the same loadgen workload twice: against loadgen's embedded amring echo
# server (no --target), and against the Go peer server (`go-peer server`,
# 127.0.0.1 only, `-recovery` for the v3 cases) when AMRING_GO_PEER is set.
# It prints a table with the ratios amring/Go for throughput, p50 and p99 and
# appends one JSON line with every case to bench/history/loadgen.jsonl.
# Without AMRING_GO_PEER the Go columns stay empty and the run says so: Go
# numbers are never invented.
#
# Usage:   scripts/compare-go.sh [--quick] [--duration 3s] [--warmup 1s] [--out-dir DIR]
#   --quick      4 cases (1×1 and 64×16, payload 32, v2 and v3) instead of 16
#   --duration   measured phase per run (default 3s); every run is also killed
#                after duration + warmup + 60 s (coreutils timeout)
# Env:
#   AMRING_GO_PEER  path to a prebuilt go-peer binary (optional; never built here)
#   LOADGEN         loadgen binary (default: cargo build --release -p loadgen)
#   GO_CPUS         CPU list the Go server is pinned to with taskset (default 0,
#                   the core loadgen's embedded server uses with --server-cores 1);
#                   empty = no pinning
#   GO_MAXPROCS     GOMAXPROCS of the Go server (default 1, matching one amring core)
#   CARGO_TARGET_DIR  default <repo>/target
# Outputs: DIR/<case>.{amring,go}.json (loadgen reports, schema
#          loadgen/schema/report.schema.json), DIR/summary.txt, one line in
#          bench/history/loadgen.jsonl (LOADGEN_HISTORY overrides the path).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
history="${LOADGEN_HISTORY:-$root/bench/history/loadgen.jsonl}"

quick=0
duration=3s
warmup=1s
out_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --duration) duration="$2"; shift ;;
        --warmup) warmup="$2"; shift ;;
        --out-dir) out_dir="$2"; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "compare-go.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
out_dir="${out_dir:-$CARGO_TARGET_DIR/compare-go/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"

to_secs() { # 3s / 500ms / 2m -> whole seconds (rounded up), for the kill timeout
    python3 -c 'import re,sys,math
m=re.fullmatch(r"([0-9.]+)(ms|s|m|)",sys.argv[1]); v=float(m.group(1)); u=m.group(2)
print(math.ceil(v/1000 if u=="ms" else v*60 if u=="m" else v))' "$1"
}
run_limit=$(( $(to_secs "$duration") + $(to_secs "$warmup") + 60 ))

# ---------------------------------------------------------------- loadgen ---
if [[ -z "${LOADGEN:-}" ]]; then
    echo "compare-go.sh: building loadgen (release)" >&2
    cargo build --release -p loadgen >&2
    LOADGEN="$CARGO_TARGET_DIR/release/loadgen"
fi
[[ -x "$LOADGEN" ]] || { echo "compare-go.sh: loadgen binary $LOADGEN not found" >&2; exit 1; }

# --------------------------------------------------------------- Go peers ---
go_pids=()
cleanup() {
    local p
    for p in "${go_pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT # exit, so the EXIT trap runs and no further case starts
trap 'exit 143' TERM

# Starts `go-peer server` (127.0.0.1, ephemeral port) in the background and
# sets go_addr to its address (not in a subshell: the trap needs the pid).
start_go() { # $1 = v2|v3
    local log="$out_dir/go-server-$1.log" args=(server -addr tcp://127.0.0.1:0) pin=()
    [[ $1 == v3 ]] && args+=(-recovery)
    [[ -n "${GO_CPUS-0}" ]] && pin=(taskset -c "${GO_CPUS-0}")
    GOMAXPROCS="${GO_MAXPROCS:-1}" "${pin[@]}" "$AMRING_GO_PEER" "${args[@]}" >"$log" 2>&1 &
    go_pids+=($!)
    go_addr=""
    local i
    for i in $(seq 1 50); do
        go_addr=$(sed -n 's/^listening \(tcp:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$log" | head -1)
        [[ -n "$go_addr" ]] && return 0
        sleep 0.1
    done
    echo "compare-go.sh: go-peer ($1) did not report a 127.0.0.1 address; log: $log" >&2
    return 1
}

go_status="absent (AMRING_GO_PEER not set)"
go_v2="" go_v3=""
if [[ -n "${AMRING_GO_PEER:-}" ]]; then
    if [[ ! -x "$AMRING_GO_PEER" ]]; then
        go_status="absent (AMRING_GO_PEER=$AMRING_GO_PEER is not executable)"
    elif start_go v2 && go_v2="$go_addr" && start_go v3 && go_v3="$go_addr"; then
        go_status="ok (GOMAXPROCS=${GO_MAXPROCS:-1}, cpus ${GO_CPUS-0}; v2 $go_v2, v3 $go_v3)"
    else
        go_status="failed to start (see $out_dir/go-server-*.log)"
        go_v2="" go_v3=""
    fi
fi
echo "compare-go.sh: Go peer: $go_status" >&2
[[ $go_status == ok* ]] || echo "compare-go.sh: NOTE: no Go numbers in this run; only amring is measured." >&2

# ----------------------------------------------------------------- matrix ---
cases=()
if [[ $quick == 1 ]]; then
    for proto in v2 v3; do cases+=("1 1 32 $proto" "64 16 32 $proto"); done
else
    for proto in v2 v3; do
        for conns in 1 64; do
            for pipe in 1 16; do
                for payload in 32 1024; do cases+=("$conns $pipe $payload $proto"); done
            done
        done
    done
fi

# Runs loadgen once; never fails the script (a failed run is recorded).
run_one() { # $1 = report file, $2 = stderr file, rest = loadgen args
    local report="$1" err="$2"
    shift 2
    rm -f "$report"
    local rc=0
    timeout --kill-after=5 "$run_limit" "$LOADGEN" "$@" --duration "$duration" --warmup "$warmup" \
        --output json --out "$report" --no-progress >/dev/null 2>"$err" || rc=$?
    if [[ $rc != 0 ]]; then
        echo "compare-go.sh: loadgen $* failed (rc=$rc): $(tail -c 300 "$err")" >&2
        rm -f "$report"
    fi
    return 0
}

for c in "${cases[@]}"; do
    read -r conns pipe payload proto <<<"$c"
    name="c${conns}_p${pipe}_s${payload}_${proto}"
    args=(--conns "$conns" --pipeline "$pipe" --payload "$payload")
    [[ $proto == v3 ]] && args+=(--recovery)
    echo "compare-go.sh: $name: amring" >&2
    run_one "$out_dir/$name.amring.json" "$out_dir/$name.amring.err" "${args[@]}"
    target=""
    [[ $proto == v2 ]] && target="$go_v2"
    [[ $proto == v3 ]] && target="$go_v3"
    if [[ -n "$target" ]]; then
        echo "compare-go.sh: $name: go ($target)" >&2
        run_one "$out_dir/$name.go.json" "$out_dir/$name.go.err" "${args[@]}" --target "$target"
    fi
done

# ------------------------------------------------------- table + history ---
mkdir -p "$(dirname "$history")"
python3 - "$out_dir" "$history" "$go_status" "$duration" "$warmup" "${cases[@]}" <<'PY' | tee "$out_dir/summary.txt"
import datetime, json, os, subprocess, sys

out_dir, history, go_status, duration, warmup = sys.argv[1:6]
cases = sys.argv[6:]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

def load(path, err_path):
    if not os.path.exists(path):
        err = ""
        if os.path.exists(err_path):
            err = open(err_path, errors="replace").read().strip().splitlines()
            err = err[-1] if err else ""
        return {"error": err or "no report"}
    r = json.load(open(path))
    lat = r.get("latency_us") or {}
    return {
        "throughput_rps": r.get("throughput_rps"),
        "p50_us": lat.get("p50"),
        "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"),
        "requests": r.get("requests"),
        "errors_total": r.get("errors_total"),
        "connected": (r.get("connect") or {}).get("connected"),
        "server_kind": (r.get("server") or {}).get("kind"),
        "server_cpu_s": (r.get("server") or {}).get("cpu_s"),
        "report": os.path.relpath(path),
    }

rows = []
for c in cases:
    conns, pipe, payload, proto = c.split()
    name = f"c{conns}_p{pipe}_s{payload}_{proto}"
    a = load(os.path.join(out_dir, name + ".amring.json"), os.path.join(out_dir, name + ".amring.err"))
    g = None
    if go_status.startswith("ok"):
        g = load(os.path.join(out_dir, name + ".go.json"), os.path.join(out_dir, name + ".go.err"))
    rows.append({
        "case": name,
        "params": {"conns": int(conns), "pipeline": int(pipe), "payload": int(payload), "recovery": proto == "v3", "codec": "compact"},
        "amring": a,
        "go": g,
    })

def ratio(a, g, k):
    if not g or a.get(k) is None or not g.get(k):
        return None
    return a[k] / g[k]

def f(v, d=1):
    return "-" if v is None else f"{v:,.{d}f}"

hdr = f"{'case':<20} {'server':<16} {'amring req/s':>13} {'Go req/s':>13} {'ratio':>6}  {'a p50':>8} {'Go p50':>8} {'ratio':>6}  {'a p99':>8} {'Go p99':>8} {'ratio':>6}"
print(f"loadgen --duration {duration} --warmup {warmup}; Go peer: {go_status}")
print("latency in µs; ratio = amring / Go (throughput > 1 and latency < 1 favour amring)")
print(hdr)
print("-" * len(hdr))
kinds = set()
for r in rows:
    a, g = r["amring"], r["go"] or {}
    kinds.add(a.get("server_kind"))
    print(f"{r['case']:<20} {str(a.get('server_kind') or 'FAILED'):<16} {f(a.get('throughput_rps'), 0):>13} {f(g.get('throughput_rps'), 0):>13} {f(ratio(a, g, 'throughput_rps'), 2):>6}  "
          f"{f(a.get('p50_us')):>8} {f(g.get('p50_us')):>8} {f(ratio(a, g, 'p50_us'), 2):>6}  "
          f"{f(a.get('p99_us')):>8} {f(g.get('p99_us')):>8} {f(ratio(a, g, 'p99_us'), 2):>6}")
for r in rows:
    for side in ("amring", "go"):
        s = r[side]
        if s and s.get("error"):
            print(f"  {r['case']} {side}: {s['error']}")
        elif s and s.get("errors_total"):
            print(f"  {r['case']} {side}: {s['errors_total']} loadgen errors during the run")
if kinds - {"embedded-amring"}:
    print(f"WARNING: the embedded server was {sorted(k for k in kinds if k)} in some runs, not the amring server: "
          "those numbers do not measure amring.")
if not go_status.startswith("ok"):
    print("NOTE: Go peer absent: set AMRING_GO_PEER to a go-peer binary for the Go columns.")

status = sh("git", "status", "--porcelain", "--untracked-files=no")
cpu = None
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
record = {
    "schema": "amring-loadgen/1",
    "sha": sh("git", "rev-parse", "HEAD"),
    "branch": sh("git", "rev-parse", "--abbrev-ref", "HEAD"),
    "dirty": bool(status),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "duration": duration,
    "warmup": warmup,
    "go_status": go_status,
    "machine": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "loadavg": open("/proc/loadavg").read().split()[:3]},
    "out_dir": os.path.relpath(out_dir),
    "cases": rows,
}
with open(history, "a") as fh:
    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
print(f"appended {len(rows)} cases to {history}; reports in {out_dir}")
PY
