#!/usr/bin/env bash
# Runs the I/O-sensitive test binaries on every socket and wake path a kernel may pick (issue 24,
# item 5), after the default path (glommio's sockets, parked in the shard's one ring) has run in
# `cargo test --workspace`:
#   AMRING_IO=uring                amring's raw ring I/O (opt-in). backpressure's shard-wide budget
#                                  test is skipped on this leg, by name and with a line saying so:
#                                  the raw ring path stalls there under load (open; README,
#                                  "Socket I/O")
#   AMRING_URING_COOP=0            rings set up without COOP_TASKRUN / TASKRUN_FLAG, as on a kernel
#                                  older than 5.19 (no ring uses DEFER_TASKRUN any more: that flag's
#                                  completions are posted only by the issuer's own io_uring_enter,
#                                  so they could not wake a sleeper elsewhere)
#   AMRING_GLOMMIO_SINGLE_RING=0   the fallback of a failed wake-path probe: glommio's linked
#                                  rings, its sockets, and the bounded sleep (patch 11)
# Usage: scripts/test-io-paths.sh [cargo test args...]   (CI: from .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

bins=(uring_io recovery_e2e backpressure backpressure_props interop_go counted_gate wake_gate)
args=()
for b in "${bins[@]}"; do args+=(--test "$b"); done

for env in AMRING_IO=uring AMRING_URING_COOP=0 AMRING_GLOMMIO_SINGLE_RING=0; do
  echo "test-io-paths: $env: ${bins[*]}"
  skip=()
  if [[ $env == AMRING_IO=uring ]]; then
    skip=(-- --skip the_server_wide_budget_bounds_all_connections_together)
    echo "test-io-paths: $env: SKIPPED backpressure::the_server_wide_budget_bounds_all_connections_together" \
      "(open stall of the raw ring path under load; README, Socket I/O)"
  fi
  start=$(date +%s)
  env "$env" cargo test -p amring-tests "${args[@]}" "$@" "${skip[@]}"
  echo "test-io-paths: $env: passed in $(($(date +%s) - start)) s"
done
