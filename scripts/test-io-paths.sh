#!/usr/bin/env bash
# Runs the I/O-sensitive test binaries on every socket and wake path a kernel may pick (issue 24,
# item 5), after the default path has run in `cargo test --workspace`:
#   AMRING_IO=glommio              glommio's sockets (the executor still parks in one ring)
#   AMRING_URING_COOP=0            rings set up without COOP_TASKRUN / TASKRUN_FLAG, as on a kernel
#                                  older than 5.19 (amring's rings use no DEFER_TASKRUN any more:
#                                  that flag's completions are posted only by the issuer's own
#                                  io_uring_enter, so they could not wake a sleeper elsewhere)
#   AMRING_GLOMMIO_SINGLE_RING=0   the fallback of a failed wake-path probe: glommio's linked
#                                  rings, its sockets, and the bounded sleep (patch 11)
# Usage: scripts/test-io-paths.sh [cargo test args...]   (CI: from .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

bins=(uring_io recovery_e2e backpressure backpressure_props interop_go counted_gate wake_gate)
args=()
for b in "${bins[@]}"; do args+=(--test "$b"); done

for env in AMRING_IO=glommio AMRING_URING_COOP=0 AMRING_GLOMMIO_SINGLE_RING=0; do
  echo "test-io-paths: $env: ${bins[*]}"
  start=$(date +%s)
  env "$env" cargo test -p amring-tests "${args[@]}" "$@"
  echo "test-io-paths: $env: passed in $(($(date +%s) - start)) s"
done
