#!/usr/bin/env bash
# Builds the seed corpus of every fuzz target from the golden vectors captured
# from the Go reference (tests/vectors/*.json, hex fields), so fuzzing starts
# from real wire bytes instead of nothing.
#
# Inputs:  tests/vectors/{handshake,sessions,codec}.json (or $1 = another vectors dir)
# Outputs: fuzz/corpus/<target>/<sha1 of content> for the targets
#          handshake_server, handshake_client, attach, frame, envelope
#          (corpus/ is git-ignored; re-run this script after the vectors change).
# Needs:   python3 (stdlib only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${1:-$here/../tests/vectors}"
[[ -f "$vectors/handshake.json" ]] || { echo "seed.sh: no vectors in $vectors" >&2; exit 1; }

python3 - "$vectors" "$here/corpus" <<'PY'
import hashlib, json, os, sys

vectors, out = sys.argv[1], sys.argv[2]
seeds = {t: set() for t in ("handshake_server", "handshake_client", "attach", "frame", "envelope")}

def add(target, *hexes):
    """Adds the concatenation of the given hex strings (skipping None)."""
    parts = [h for h in hexes if h]
    if parts:
        seeds[target].add(bytes.fromhex("".join(parts)))

hs = json.load(open(os.path.join(vectors, "handshake.json")))
for c in hs["server_cases"]:
    add("handshake_server", c.get("client_sent_hex"))
    add("handshake_server", c.get("client_sent_hex"), c.get("attach_request_hex"))
    add("handshake_client", c.get("server_reply_hex"))
    add("handshake_client", c.get("server_reply_hex"), c.get("attach_response_hex"))
    add("attach", c.get("attach_request_hex"))
    add("attach", c.get("attach_response_hex"))
for c in hs["client_cases"]:
    for t in c["tcp_connections"]:
        add("handshake_server", t.get("client_sent_hex"))
        add("handshake_client", t.get("raw_server_replied_hex"))
        add("handshake_client", t.get("raw_server_replied_hex"), t.get("raw_server_attach_reply_hex"))
        add("attach", t.get("client_attach_request_hex"))
        add("attach", t.get("raw_server_attach_reply_hex"))

ss = json.load(open(os.path.join(vectors, "sessions.json")))
for s in ss["scenarios"]:
    for conn in s["tcp_connections"]:
        stream = {"c2s": [], "s2c": []}
        for e in conn["events"]:
            k, h = e["kind"], e.get("hex")
            if not h:
                continue
            if k == "handshake_hello":
                add("handshake_server", h)
            elif k == "handshake_reply":
                add("handshake_client", h)
            elif k in ("attach_request", "attach_response"):
                add("attach", h)
            elif k in ("frame", "control_frame"):
                add("frame", h)
                stream[e["dir"]].append(h)
                p = (e.get("fields") or {}).get("payload_hex")
                if k == "frame" and p:
                    add("envelope", p)
        for d in ("c2s", "s2c"):
            add("frame", *stream[d])  # every frame of one direction, back to back

cd = json.load(open(os.path.join(vectors, "codec.json")))
for c in cd["encode_cases"]:
    add("envelope", c.get("compact_hex"))
    add("envelope", c.get("map_hex"))
for c in cd["decode_cases"]:
    add("envelope", c.get("payload_hex"))

for target, items in sorted(seeds.items()):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    for b in items:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{target}: {len(items)} seeds -> {d}")
PY
