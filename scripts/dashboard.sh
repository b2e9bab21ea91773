#!/usr/bin/env bash
# Regenerates the static regression dashboard bench/dashboard.html from the run
# histories bench/history/*.jsonl (criterion, compare-go, loadgen-runs, legacy
# loadgen). Runs dashboard.py's unit tests first (regression rule, parsers,
# --fail-on-regression exit codes); the rule is in scripts/README.md.
#
# Usage:   scripts/dashboard.sh [--open] [render args...]
#   --open                 print a file:// URL to open afterwards
#   --fail-on-regression   exit 1 when the latest run of any history regressed
#   --history DIR --out FILE --window K   see scripts/dashboard.py --help
# Recording runs: scripts/dashboard.py append --criterion|--loadgen F.json|--compare DIR
# Inputs:  bench/history/*.jsonl
# Outputs: bench/dashboard.html (no network assets, inline SVG, no JS needed);
#          the latest runs' regressions on stdout
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
open=0
if [[ "${1:-}" == "--open" ]]; then open=1; shift; fi
case "${1:-}" in -h|--help) sed -n '2,15p' "$0"; exit 0 ;; esac
python3 "$root/scripts/dashboard.py" --self-test >/dev/null 2>&1 || {
    echo "dashboard.sh: dashboard.py self-test failed (run scripts/dashboard.py --self-test to see why)" >&2
    exit 1
}
rc=0
python3 "$root/scripts/dashboard.py" render "$@" || rc=$?
if [[ $open == 1 ]]; then echo "file://$root/bench/dashboard.html"; fi
exit $rc
