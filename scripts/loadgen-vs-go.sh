#!/usr/bin/env bash
# loadgen-vs-go.sh — drive the Go reference server and the amring server with the
# exact same loadgen workload and print both reports (JSON with --json).
#
# Usage: scripts/loadgen-vs-go.sh [loadgen flags...]      e.g. --conns 100 --duration 10s
#
# Needs the Go peer (tests/go-peer, `go-peer server --addr tcp://127.0.0.1:0`), which is
# BLOCKED on this machine: the Go module proxy refuses github.com/adaptivemsg/adaptivemsg-go
# (403), so the script stops with a clear message instead of faking a comparison.
# Cores: the Go server is restricted to core 0 with taskset, loadgen runs on core 1
# (its default), matching the embedded amring server's placement.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! command -v go >/dev/null 2>&1; then
  echo "loadgen-vs-go: 'go' not found; install Go to build tests/go-peer" >&2
  exit 2
fi
if [ ! -f tests/go-peer/go.sum ]; then
  echo "loadgen-vs-go: tests/go-peer has no go.sum: the Go module proxy refuses" >&2
  echo "  github.com/adaptivemsg/adaptivemsg-go here (see tests/go-peer/README.md)." >&2
  exit 2
fi

cargo build --release -p loadgen
(cd tests/go-peer && go build -o "$root/target/go-peer" .)

# Start the Go server on core 0 and read its address from "listening tcp://HOST:PORT".
log="$(mktemp)"
taskset -c 0 "$root/target/go-peer" server --addr tcp://127.0.0.1:0 >"$log" &
go_pid=$!
trap 'kill "$go_pid" 2>/dev/null || true; rm -f "$log"' EXIT
go_addr=""
for _ in $(seq 1 100); do   # bounded wait: 10 s
  go_addr="$(awk '/^listening /{print $2; exit}' "$log")"
  [ -n "$go_addr" ] && break
  sleep 0.1
done
[ -n "$go_addr" ] || { echo "loadgen-vs-go: Go server did not start" >&2; exit 1; }

echo "== Go reference server at $go_addr"
"$root/target/release/loadgen" --target "$go_addr" --no-progress "$@"
echo "== amring embedded server"
"$root/target/release/loadgen" --no-progress "$@"
