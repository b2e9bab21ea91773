#!/usr/bin/env bash
# loadgen-vs-go.sh — drive the Go reference server and the embedded amring server with
# the exact same loadgen workload and print both reports.
#
# Usage: scripts/loadgen-vs-go.sh [loadgen flags...]
#        e.g. --conns 10k --duration 10s      or   --conns 16 --pipeline 16 --output json
#
# The Go server is our Go peer (`go-peer server --addr tcp://127.0.0.1:0 [--recovery]` prints
# "listening tcp://HOST:PORT"), located by scripts/go-peer.sh: AMRING_GO_PEER if set (an
# override), else tests/go-peer built into target/go-peer/go-peer (needs Go; uses
# ../shared/goproxy when that exists). Without Go and without AMRING_GO_PEER it exits 2.
# Placement: both servers on core 0 (Go via taskset, amring by loadgen's default --server-cores 1), loadgen on
# the highest core (its default). The Go server runs with --recovery so that `--recovery`
# runs work; v2 clients are unaffected. Its CPU time and RSS per connection are measured
# through `--server-pid` exactly like the embedded server's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/go-peer.sh
source "$root/scripts/go-peer.sh"
if ! peer="$(amring_go_peer)"; then
  echo "loadgen-vs-go: no Go peer: install Go (tests/go-peer is built automatically) or set AMRING_GO_PEER" >&2
  exit 2
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -p loadgen >&2
loadgen="$target_dir/release/loadgen"

log="$(mktemp)"
taskset -c 0 "$peer" server --addr tcp://127.0.0.1:0 --recovery >"$log" &
go_pid=$!
trap 'kill "$go_pid" 2>/dev/null || true; rm -f "$log"' EXIT
go_addr=""
for _ in $(seq 1 100); do   # bounded wait: 10 s
  go_addr="$(awk '/^listening /{print $2; exit}' "$log")"
  [ -n "$go_addr" ] && break
  sleep 0.1
done
[ -n "$go_addr" ] || { echo "loadgen-vs-go: Go server did not start" >&2; exit 1; }
hp="${go_addr#tcp://}"
for _ in $(seq 1 100); do   # the peer listens just after printing its address
  (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null && break
  sleep 0.1
done

# This script passes --no-progress itself; drop a user's copy (clap rejects a flag given twice).
args=()
for a in "$@"; do
  [ "$a" = "--no-progress" ] || args+=("$a")
done

echo "== Go reference server at $go_addr (pid $go_pid, core 0)"
"$loadgen" --target "$go_addr" --server-pid "$go_pid" --no-progress ${args[@]+"${args[@]}"}
echo "== amring embedded server (core 0)"
"$loadgen" --no-progress ${args[@]+"${args[@]}"}
