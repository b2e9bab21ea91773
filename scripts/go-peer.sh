#!/usr/bin/env bash
# The Go peer (tests/go-peer, our Go module on the Go reference adaptivemsg-go): where the
# module comes from and where the built binary is.
#
# Sourced (`source scripts/go-peer.sh`), it defines two functions and changes nothing else:
#   amring_go_env   when <repo>/../shared/goproxy exists (the on-disk module proxy of these
#                   machines, whose registry refuses the Go reference), exports
#                   GOPROXY=file://<that dir>,<previous GOPROXY or `go env GOPROXY`, else
#                   `direct` when neither names one (no Go on PATH)> and appends
#                   github.com/adaptivemsg/adaptivemsg-go to GONOSUMDB; elsewhere it does nothing
#                   (the ordinary registry serves the module). Idempotent.
#   amring_go_peer  prints the path of a go-peer binary: $AMRING_GO_PEER when set (an override,
#                   never rebuilt), else <target>/go-peer/go-peer, built with `go build` in
#                   tests/go-peer (under amring_go_env, in a subshell) when it is missing or
#                   older than any file in tests/go-peer. <target> = $CARGO_TARGET_DIR or
#                   <repo>/target: the same path tests/src/gopeer.rs builds into. Returns 1
#                   with a one-line reason on stderr (last line, prefixed "go-peer.sh: ")
#                   when Go is missing or the build fails; build output goes to stderr.
# Run (`scripts/go-peer.sh`): prints the path of a built peer (building it if needed), or
# exits 1 with the reason. `--env` prints the GOPROXY/GONOSUMDB that amring_go_env sets.

_amring_go_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_amring_go_module=github.com/adaptivemsg/adaptivemsg-go

amring_go_env() {
    local proxy="$_amring_go_root/../shared/goproxy" prev
    [[ -d $proxy ]] || return 0
    proxy="file://$(cd "$proxy" && pwd -P)"
    prev="${GOPROXY:-}"
    if [[ -z $prev ]] && command -v go >/dev/null 2>&1; then
        prev="$(go env GOPROXY 2>/dev/null || true)"
    fi
    prev="${prev:-direct}"
    case ",$prev," in
        *",$proxy,"*) ;;
        *) export GOPROXY="$proxy,$prev" ;;
    esac
    case ",${GONOSUMDB:-}," in
        *",$_amring_go_module,"*) ;;
        *) export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}$_amring_go_module" ;;
    esac
}

amring_go_peer() {
    if [[ -n ${AMRING_GO_PEER:-} ]]; then
        if [[ -f $AMRING_GO_PEER && -x $AMRING_GO_PEER ]]; then
            echo "$AMRING_GO_PEER"
            return 0
        fi
        echo "go-peer.sh: AMRING_GO_PEER=$AMRING_GO_PEER is not an executable file" >&2
        return 1
    fi
    local module="$_amring_go_root/tests/go-peer" target="${CARGO_TARGET_DIR:-$_amring_go_root/target}"
    [[ $target == /* ]] || target="$PWD/$target" # cargo reads a relative CARGO_TARGET_DIR from the cwd
    local out="$target/go-peer/go-peer" tmp newer
    if [[ -f $out && -x $out ]]; then
        newer="$(find "$module" -newer "$out" -print -quit 2>/dev/null || echo "?")"
        if [[ -z $newer ]]; then
            echo "$out"
            return 0
        fi
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "go-peer.sh: Go is not installed (no \`go\` on PATH): cannot build tests/go-peer" >&2
        return 1
    fi
    mkdir -p "$target/go-peer" || { echo "go-peer.sh: cannot create $target/go-peer" >&2; return 1; }
    # A per-process name and a rename, like tests/src/gopeer.rs: nobody runs a half-written file.
    tmp="$target/go-peer/go-peer.$$.tmp"
    local timeout=()
    command -v timeout >/dev/null 2>&1 && timeout=(timeout 600)
    echo "go-peer.sh: building tests/go-peer ($(go version 2>/dev/null)) into $out" >&2
    if ! (amring_go_env && cd "$module" && ${timeout[@]+"${timeout[@]}"} go build -buildvcs=false -o "$tmp" . 1>&2); then
        rm -f "$tmp"
        echo "go-peer.sh: \`go build\` in tests/go-peer failed (see above; GOPROXY=$(amring_go_env && echo "${GOPROXY:-}"))" >&2
        return 1
    fi
    mv -f "$tmp" "$out" || { echo "go-peer.sh: cannot move the built peer to $out" >&2; return 1; }
    echo "$out"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        --env) amring_go_env; echo "GOPROXY=${GOPROXY:-}"; echo "GONOSUMDB=${GONOSUMDB:-}"; exit 0 ;;
        "") amring_go_peer ;;
        *) echo "go-peer.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
fi
