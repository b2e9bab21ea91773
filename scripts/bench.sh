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
#          bench/history/criterion.jsonl); for vs_go, AMRING_GO_PEER (a go-peer
#          binary instead of the one tests/src/gopeer.rs builds from tests/go-peer
#          wherever Go is installed) and AMRING_REQUIRE_GO=1 (no Go peer = failure)
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
# One code path for the record (sha, branch, dirty, date, machine, estimates):
# scripts/dashboard.py append --criterion, also usable on its own.
python3 "$root/scripts/dashboard.py" append --criterion \
    --criterion-dir "$CARGO_TARGET_DIR/criterion" --since "$marker" \
    --mode "$mode" --load-before "$load_before" --criterion-file "$history"
