#!/usr/bin/env bash
# Regenerates the amgen-go fixtures in tests/amgen/api/*/message.rs from the
# Go sources beside them, with the reference's own generator
# (github.com/adaptivemsg/adaptivemsg-go/cmd/amgen-go, the version pinned in
# tests/go-peer/go.mod). The .rs files are committed verbatim; tests/amgen is
# the crate a user of amgen-go would have (lib.rs in amgen-go's layout,
# Cargo.toml with `adaptivemsg = { package = "amring", .. }`), and
# tests/tests/amgen.rs checks its bytes against tests/vectors/codec.json.
#
# amgen-go rewrites lib.rs for the one package it generates; tests/amgen/lib.rs
# holds both packages in the same layout and is not regenerated.
#
# `--check` writes nothing: it generates into a temporary folder and fails
# (exit 1, with the diff) when a committed message.rs differs from what
# amgen-go emits today. tests/tests/amgen.rs runs it in `cargo test`.
#
# Needs Go (PATH or /usr/local/go/bin). Modules come from GOPROXY; when it is
# not set and ../shared/goproxy exists, from that folder (file://) first, then
# from what `go env GOPROXY` names (the Go installation's module proxy); else
# from the Go installation's own GOPROXY.
set -euo pipefail

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: amgen-regen.sh [--check]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="$root/tests/amgen"
peer="$root/tests/go-peer"
export PATH="$PATH:/usr/local/go/bin"
if [[ -z "${GOPROXY:-}" && -d "$root/../shared/goproxy" ]]; then
    upstream="$(go env GOPROXY 2>/dev/null || true)"
    GOPROXY="file://$(cd "$root/../shared/goproxy" && pwd)${upstream:+,$upstream}"
    export GOPROXY
fi
export GONOSUMDB="github.com/adaptivemsg/adaptivemsg-go"
export GOFLAGS="-mod=mod"

version="$(awk '$1 == "require" && $2 == "github.com/adaptivemsg/adaptivemsg-go" { print $3 }' "$peer/go.mod")"
[[ -n "$version" ]] || { echo "amgen-regen: no adaptivemsg-go version in $peer/go.mod" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mod="$work/amgenfix"
mkdir -p "$mod"
cat >"$mod/go.mod" <<GOMOD
module amgenfix

go 1.22

require github.com/adaptivemsg/adaptivemsg-go $version
GOMOD
cp "$peer/go.sum" "$mod/go.sum"
# A Cargo.toml of our own so amgen-go does not write its (adaptivemsg-rust) one.
printf '[package]\nname = "amgenfix"\nversion = "0.0.0"\n' >"$mod/Cargo.toml"

# api/hello/message.go is the reference's examples/hello/message.go, unchanged.
refdir="$(cd "$mod" && go mod download github.com/adaptivemsg/adaptivemsg-go && go list -m -f '{{.Dir}}' github.com/adaptivemsg/adaptivemsg-go)"
if ! cmp -s "$refdir/examples/hello/message.go" "$fixtures/api/hello/message.go"; then
    if ((check)); then
        diff -u "$fixtures/api/hello/message.go" "$refdir/examples/hello/message.go" || true
        echo "amgen-regen: tests/amgen/api/hello/message.go is not the reference's examples/hello/message.go" >&2
        stale=1
    else
        cp "$refdir/examples/hello/message.go" "$fixtures/api/hello/message.go"
    fi
fi

for src in "$fixtures"/api/*/message.go; do
    pkg="$(basename "$(dirname "$src")")"
    mkdir -p "$mod/api/$pkg"
    cp "$src" "$mod/api/$pkg/message.go"
    (cd "$mod/api/$pkg" && go generate ./...)
    if ((check)); then
        if ! diff -u "$fixtures/api/$pkg/message.rs" "$mod/api/$pkg/message.rs"; then
            echo "amgen-regen: tests/amgen/api/$pkg/message.rs is not amgen-go's output (run scripts/amgen-regen.sh)" >&2
            stale=1
        else
            echo "amgen-regen: api/$pkg/message.rs is amgen-go's output"
        fi
        continue
    fi
    cp "$mod/api/$pkg/message.rs" "$fixtures/api/$pkg/message.rs"
    echo "amgen-regen: api/$pkg/message.rs ($(wc -l <"$fixtures/api/$pkg/message.rs") lines); amgen-go's lib.rs:"
    sed 's/^/    /' "$mod/lib.rs"
done
exit "${stale:-0}"
