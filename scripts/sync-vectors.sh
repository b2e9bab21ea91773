#!/usr/bin/env bash
# Copies the golden vectors captured from the Go reference (../shared/vectors)
# into tests/vectors, so a clean clone (and CI) has them. Run after the shared
# vectors change; commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/vectors}
cp "$src"/*.json "$src"/README.md tests/vectors/
echo "synced $(ls tests/vectors | wc -l) files from $src"
