#!/usr/bin/env bash
# Runs the criterion benches of amring-bench and appends one JSON line per run
# to bench/history/criterion.jsonl: git sha, date, machine info and, per bench
# id, the median (ns) with its MAD and 95 % CI as criterion estimated them.
#
# Usage:   scripts/bench.sh [--full] [--bench NAME]... [-- CRITERION_ARGS...]
#   --full          full criterion sampling (default: `--quick`)
#   --bench NAME    only this bench target (bench/benches/NAME.rs); repeatable
#   -- ARGS         passed to criterion (e.g. a filter regex: -- frame/decode)
# Env:     CARGO_TARGET_DIR (default: <repo>/target), BENCH_HISTORY (default:
#          bench/history/criterion.jsonl)
# Inputs:  target/criterion/**/new/{estimates,benchmark}.json written by this run
#          (files older than the run are ignored, so stale benches never leak in)
# Outputs: one line appended to the history file; a summary table on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
history="${BENCH_HISTORY:-$root/bench/history/criterion.jsonl}"

mode=quick
benches=()
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --full) mode=full ;;
        --quick) mode=quick ;;
        --bench) benches+=(--bench "$2"); shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# Only the criterion targets (bench/benches/*.rs): the lib's libtest harness
# (also selected by `--benches`) rejects criterion flags such as --quick.
if [[ ${#benches[@]} -eq 0 ]]; then
    for f in bench/benches/*.rs; do benches+=(--bench "$(basename "$f" .rs)"); done
fi
crit_args=()
[[ $mode == quick ]] && crit_args+=(--quick)
crit_args+=("${extra[@]}")

marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT
# Criterion writes estimates after the marker; 1 s margin for coarse mtimes.
touch -d '-1 second' "$marker"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "bench.sh: cargo bench -p amring-bench ${benches[*]:-} -- ${crit_args[*]}" >&2
cargo bench -p amring-bench "${benches[@]}" -- "${crit_args[@]}"

mkdir -p "$(dirname "$history")"
python3 - "$CARGO_TARGET_DIR/criterion" "$marker" "$history" "$mode" "$load_before" <<'PY'
import datetime, json, os, platform, socket, subprocess, sys

crit, marker, history, mode, load_before = sys.argv[1:6]
since = os.path.getmtime(marker)

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None

benches = {}
for dirpath, _dirs, files in os.walk(crit):
    if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
        continue
    est_path = os.path.join(dirpath, "estimates.json")
    if os.path.getmtime(est_path) < since:
        continue  # not produced by this run
    try:
        est = json.load(open(est_path))
        meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
    except (OSError, ValueError) as e:
        print(f"bench.sh: skipping {dirpath}: {e}", file=sys.stderr)
        continue
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

if not benches:
    sys.exit("bench.sh: no estimates written by this run (did the benches run?)")

status = sh("git", "status", "--porcelain", "--untracked-files=no")
record = {
    "schema": "amring-criterion/1",
    "sha": sh("git", "rev-parse", "HEAD"),
    "branch": sh("git", "rev-parse", "--abbrev-ref", "HEAD"),
    "dirty": bool(status),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "mode": mode,
    "machine": {
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "rustc": sh("rustc", "--version"),
        "loadavg_before": load_before,
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
    },
    "benches": dict(sorted(benches.items())),
}
with open(history, "a") as f:
    f.write(json.dumps(record, separators=(",", ":")) + "\n")

w = max(len(k) for k in benches)
print(f"{'bench':<{w}}  {'median':>12}  {'mad':>10}")
for k, v in record["benches"].items():
    print(f"{k:<{w}}  {v['median_ns']:>10.1f}ns  {v['mad_ns']:>8.1f}ns")
print(f"appended {len(benches)} benches ({mode}, {record['sha'][:10] if record['sha'] else '?'}) to {history}")
PY
