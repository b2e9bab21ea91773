#!/usr/bin/env bash
# Regenerates the static regression dashboard bench/dashboard.html from the run
# histories bench/history/{criterion,loadgen}.jsonl (see scripts/dashboard.py
# for the flagging rule). Checks the flagging logic first (--self-test).
#
# Usage:   scripts/dashboard.sh [--open] [dashboard.py args...]
#   --open   print a file:// URL to open afterwards
# Inputs:  bench/history/*.jsonl
# Outputs: bench/dashboard.html (no network, inline SVG)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
open=0
if [[ "${1:-}" == "--open" ]]; then open=1; shift; fi
python3 "$root/scripts/dashboard.py" --self-test 2>/dev/null || {
    echo "dashboard.sh: dashboard.py self-test failed (run it with --self-test to see why)" >&2
    exit 1
}
python3 "$root/scripts/dashboard.py" "$@"
if [[ $open == 1 ]]; then echo "file://$root/bench/dashboard.html"; fi
