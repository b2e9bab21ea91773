#!/usr/bin/env bash
# Builds a throwaway crate outside this workspace that depends on amring by path, with no
# [patch] section, and checks that it gets amring's glommio fork (the package amring-glommio,
# amring-glommio/AMRING-PATCH.md) and not upstream glommio from the registry: what a service
# embedding amring gets is the runtime the benchmarks measured.
#
# Usage: scripts/check-downstream.sh   (CI runs it; target dir: <repo>/target/downstream)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
# The workspace's lock file pins the same versions (cargo drops what the crate does not use).
cp "$root/Cargo.lock" "$tmp/Cargo.lock"
cat > "$tmp/Cargo.toml" <<TOML
[package]
name = "amring-downstream-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
amring = { path = "$root/engine" }

[workspace]
TOML
cat > "$tmp/src/main.rs" <<'RS'
//! A service embedding amring, as a user would write it.
fn main() {
    let builder = amring::Server::builder();
    println!("{builder:?}");
}
RS
export CARGO_TARGET_DIR="$root/target/downstream"
cd "$tmp"
tree="$(cargo tree --edges normal --prefix none)"
if ! grep -q '^amring-glommio v0\.9\.0 (' <<<"$tree"; then
    echo "check-downstream: FAILED: the downstream crate does not get amring-glommio:" >&2
    echo "$tree" >&2
    exit 1
fi
if grep -q '^glommio v' <<<"$tree"; then
    echo "check-downstream: FAILED: upstream glommio is in the downstream crate's graph:" >&2
    grep '^glommio v' <<<"$tree" >&2
    exit 1
fi
cargo build --quiet
echo "check-downstream: ok: a crate depending on amring by path, without [patch], builds against $(grep '^amring-glommio v' <<<"$tree" | head -n 1)"
