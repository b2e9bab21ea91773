#!/usr/bin/env bash
# Records a CPU flamegraph of the amring server (or of loadgen itself) during a
# loadgen run.
#
# loadgen (no --target) starts its embedded amring echo server as a child
# process; this script finds that child by parent pid (or takes loadgen's own
# pid for the loadgen-* scenarios), attaches
# `perf record -e cpu-clock -g --call-graph dwarf` to it for the measured
# phase, and folds the stacks with inferno. The README section of the scenario
# gets the commands, the run's numbers and the top self-time frames.
#
# Usage:   scripts/flamegraph.sh SCENARIO [--duration 5s] [--call-graph dwarf|fp] [-- LOADGEN_ARGS...]
# Scenarios (loadgen workload, 127.0.0.1, closed loop, payload 32 unless named;
# "cN-sM" = N connections × M streams, one request in flight per stream):
#   server-c4-s16-v2    --conns 4 --streams 16              (the issue's 4×16 echo, v2)
#   server-c4-s16-v3    --conns 4 --streams 16 --recovery   (the same over v3)
#   server-c16-s16-v2   --conns 16 --streams 16             (issue 15's many-stream case, v2)
#   server-c16-s16-v3   --conns 16 --streams 16 --recovery  (the same over v3)
#   server-c10k-s1-v2   --conns 10k                         (10k connections, one request each)
#   loadgen-c4-s16      --conns 4 --streams 16, profiling the loadgen process
#   echo-c64-p16        --conns 64 --pipeline 16            (the reference scenario)
#   echo-c1-p1          --conns 1 --pipeline 1              (latency path)
#   echo-c64-p16-s1024  --conns 64 --pipeline 16 --payload 1024
#   echo-v3-c64-p16     --conns 64 --pipeline 16 --recovery (v3 replay/ACK path)
#   custom              only the LOADGEN_ARGS given after --
# Env:     LOADGEN (default: cargo build --release -p loadgen), PERF_FREQ (default 499 Hz),
#          CARGO_TARGET_DIR (default <repo>/target)
# Needs:   perf, inferno-collapse-perf + inferno-flamegraph (cargo install inferno --locked)
# Outputs: flamegraphs/<SCENARIO>.svg and .folded, the exact commands and the
#          run's loadgen numbers in flamegraphs/README.md (section per scenario),
#          perf.data and the loadgen report under target/flamegraph/ (not committed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

scenario="${1:-}"
[[ -n "$scenario" && "$scenario" != -* ]] || { sed -n '2,22p' "$0"; exit 2; }
shift
duration=5
call_graph=dwarf
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration="${2%s}"; shift ;;
        --call-graph) call_graph="$2"; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "flamegraph.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]] || { echo "flamegraph.sh: --duration takes whole seconds" >&2; exit 2; }
case "$call_graph" in dwarf|fp) ;; *) echo "flamegraph.sh: --call-graph dwarf|fp" >&2; exit 2 ;; esac

profile=server
case "$scenario" in
    server-c4-s16-v2) wl=(--conns 4 --streams 16 --payload 32) ;;
    server-c4-s16-v3) wl=(--conns 4 --streams 16 --payload 32 --recovery) ;;
    server-c16-s16-v2) wl=(--conns 16 --streams 16 --payload 32) ;;
    server-c16-s16-v3) wl=(--conns 16 --streams 16 --payload 32 --recovery) ;;
    server-c10k-s1-v2) wl=(--conns 10k --streams 1 --payload 32) ;;
    loadgen-c4-s16) wl=(--conns 4 --streams 16 --payload 32); profile=loadgen ;;
    echo-c64-p16) wl=(--conns 64 --pipeline 16 --payload 32) ;;
    echo-c1-p1) wl=(--conns 1 --pipeline 1 --payload 32) ;;
    echo-c64-p16-s1024) wl=(--conns 64 --pipeline 16 --payload 1024) ;;
    echo-v3-c64-p16) wl=(--conns 64 --pipeline 16 --payload 32 --recovery) ;;
    custom) wl=() ;;
    *) echo "flamegraph.sh: unknown scenario $scenario (see --help)" >&2; exit 2 ;;
esac
wl+=("${extra[@]}")

for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || {
        echo "flamegraph.sh: $tool not found (perf from the distro; inferno: cargo install inferno --locked)" >&2
        exit 1
    }
done

if [[ -z "${LOADGEN:-}" ]]; then
    echo "flamegraph.sh: building loadgen (release, line tables for symbols)" >&2
    cargo build --release -p loadgen >&2
    LOADGEN="$CARGO_TARGET_DIR/release/loadgen"
fi

work="$CARGO_TARGET_DIR/flamegraph/$scenario"
mkdir -p "$work" flamegraphs
perf_data="$work/perf.data"
report="$work/loadgen.json"
warmup=2
lg_duration=$((duration + 3)) # the recording window sits inside the measured phase

lg_cmd=("$LOADGEN" "${wl[@]}" --warmup "${warmup}s" --duration "${lg_duration}s" --output json --out "$report" --no-progress)
perf_cg=(--call-graph "$call_graph")
freq="${PERF_FREQ:-499}"

lg_pid=""
cleanup() { [[ -n "$lg_pid" ]] && kill "$lg_pid" 2>/dev/null; true; }
trap cleanup EXIT
trap 'exit 130' INT # exit, so the EXIT trap runs and no further case starts
trap 'exit 143' TERM

echo "flamegraph.sh: ${lg_cmd[*]}" >&2
rm -f "$report"
timeout --kill-after=5 $((warmup + lg_duration + 60)) "${lg_cmd[@]}" >/dev/null 2>"$work/loadgen.err" &
lg_pid=$!

# The embedded server is loadgen's child (`loadgen --internal-serve`); find it
# by parent pid. timeout → loadgen → server, so look two levels down.
server_pid=""
for _ in $(seq 1 100); do
    for p in $(pgrep -P "$lg_pid" || true); do
        for q in $(pgrep -P "$p" || true); do
            if tr '\0' ' ' <"/proc/$q/cmdline" 2>/dev/null | grep -q -- '--internal-serve'; then server_pid=$q; fi
        done
    done
    [[ -n "$server_pid" ]] && break
    kill -0 "$lg_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$server_pid" ]]; then
    echo "flamegraph.sh: no embedded server child found (loadgen output: $(tail -c 300 "$work/loadgen.err"))" >&2
    exit 1
fi
target_pid=$server_pid
if [[ $profile == loadgen ]]; then
    target_pid=$(pgrep -P "$lg_pid" | head -1) # timeout → loadgen
fi
sleep "$warmup" # connect + warm-up
perf_cmd=(perf record -e cpu-clock -F "$freq" -g "${perf_cg[@]}" -p "$target_pid" -o "$perf_data" -- sleep "$duration")
echo "flamegraph.sh: ${perf_cmd[*]}" >&2
"${perf_cmd[@]}" 2>"$work/perf.err" || { cat "$work/perf.err" >&2; exit 1; }
wait "$lg_pid" || { echo "flamegraph.sh: loadgen failed: $(tail -c 300 "$work/loadgen.err")" >&2; exit 1; }
lg_pid=""

folded="flamegraphs/$scenario.folded"
svg="flamegraphs/$scenario.svg"
perf script -i "$perf_data" 2>/dev/null | inferno-collapse-perf --kernel >"$folded"
[[ -s "$folded" ]] || { echo "flamegraph.sh: no stacks recorded" >&2; exit 1; }
samples=$(sed -n 's/.*(\([0-9]*\) samples).*/\1/p' "$work/perf.err" | tail -1)
samples="${samples:-?}"
kind=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("server",{}).get("kind","?"))' "$report")
[[ $kind == embedded-amring ]] || echo "flamegraph.sh: WARNING: loadgen's embedded server is '$kind', not amring" >&2
what="$kind server"
[[ $profile == loadgen ]] && what="loadgen (against the $kind server)"
inferno-flamegraph --title "$what: $scenario (${wl[*]})" --subtitle "perf cpu-clock ${freq} Hz, $call_graph, ${duration}s, $samples samples" \
    <"$folded" >"$svg"

python3 - "$scenario" "$report" "$samples" "${lg_cmd[*]}" "${perf_cmd[*]}" "$root" "$profile" "$folded" <<'PY'
import datetime, json, os, re, subprocess, sys

scenario, report, samples, lg_cmd, perf_cmd, root, profile, folded = sys.argv[1:9]
readme = os.path.join(root, "flamegraphs", "README.md")
sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
r = json.load(open(report))
lat = r.get("latency_us", {})
srv = r.get("server", {})
lg_cmd = lg_cmd.replace(root + "/", "")
perf_cmd = re.sub(r"-p \d+", f"-p <{profile} pid>", perf_cmd).replace(root + "/", "")
# Top self-time frames (leaf of each stack) and the kernel share, from the folded stacks.
self_t, total, kernel = {}, 0, 0
for line in open(folded):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    n = int(n)
    leaf = stack.rsplit(";", 1)[-1]
    total += n
    self_t[leaf] = self_t.get(leaf, 0) + n
    if leaf.endswith("_[k]"):
        kernel += n
top = sorted(self_t.items(), key=lambda kv: -kv[1])[:12]
top_md = "\n".join(f"| {100 * n / total:5.1f} % | `{f.replace('|', '/')}` |" for f, n in top)
top_md = f"Top self time (share of the recorded cpu-clock time; kernel frames {100 * kernel / max(total, 1):.0f} %):\n\n| share | frame |\n|---:|---|\n{top_md}\n"
note = ""
if srv.get("kind") != "embedded-amring":
    note = (f"\n**Not amring yet:** loadgen's embedded server was `{srv.get('kind')}` for this run (the amring\n"
            "server had not landed in loadgen), so this profiles that server and the shared glommio/socket\n"
            "path, not amring's engine. Re-run `scripts/flamegraph.sh " + scenario + "` once loadgen embeds amring.\n")
section = f"""<!-- scenario:{scenario} -->
## {scenario}

`{scenario}.svg` / `{scenario}.folded`: {samples} samples of the {"loadgen process" if profile == "loadgen" else "loadgen's embedded server process"}
(`server.kind` = `{srv.get('kind')}`), commit `{sha}`, {datetime.date.today().isoformat()},
{os.cpu_count()} CPUs.
{note}
```sh
scripts/flamegraph.sh {scenario}
# which ran:
{lg_cmd}
{perf_cmd}
perf script -i perf.data | inferno-collapse-perf --kernel > flamegraphs/{scenario}.folded
inferno-flamegraph < flamegraphs/{scenario}.folded > flamegraphs/{scenario}.svg
```

loadgen during the run (perf attached, so slower than a clean run): {r.get('throughput_rps', 0):,.0f} req/s,
p50 {lat.get('p50')} µs, p99 {lat.get('p99')} µs, errors {r.get('errors_total')}, server CPU {srv.get('cpu_s')} s,
generator CPU {r.get('generator', {}).get('cpu_s')} s.

{top_md}
<!-- /scenario:{scenario} -->
"""
text = open(readme).read() if os.path.exists(readme) else "# flamegraphs/\n"
pat = re.compile(rf"<!-- scenario:{re.escape(scenario)} -->.*?<!-- /scenario:{re.escape(scenario)} -->\n", re.S)
text = pat.sub(lambda _m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(readme, "w").write(text)
print(f"flamegraph.sh: wrote flamegraphs/{scenario}.svg, .folded ({samples} samples), README section")
PY
