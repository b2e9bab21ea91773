#!/usr/bin/env bash
# Opens the rendered benchmark dashboard in headless Chromium and checks that every chart is
# there: the DOM after load (and after the inline filter JS ran) has as many chart cards and
# svg.chart elements as the source HTML, in the same order, each with data marks; the section
# headings are all present; nothing is hidden on load; every card has a box in the layout; the
# page logs no JS error; a full-page screenshot exists, has the requested width and is not blank.
#
# Usage:   scripts/dashboard-browser-check.sh [--regenerate] [--install] [--out DIR]
#                                             [--width PX] [--timeout S] [HTML]
#   HTML           the page to check (default bench/dashboard.html)
#   --regenerate   render bench/history/*.jsonl into OUT/dashboard.html first (dashboard.py
#                  render --out) and check that; dashboard.py's chart count must match too
#   --install      no Chromium found: apt-get install --no-install-recommends chromium (sudo
#                  if not root; also when CI is set). Without it a missing browser = exit 2
#   --out DIR      reports (default $CARGO_TARGET_DIR/dashboard-check, i.e. target/dashboard-check)
#   --width PX     window and screenshot width (default 1400); the height is the page's
#   --timeout S    bound on each Chromium run (default 180)
# Env:     CHROMIUM (a browser binary to use), CHROMIUM_PACKAGE (what --install installs,
#          default chromium; chromium-headless-shell works too), CI, CARGO_TARGET_DIR
# Outputs: OUT/dashboard.png (full-page screenshot), OUT/dom.html (DOM after load), OUT/*.log
#          (Chromium's stderr), OUT/probe.html (kept on failure); one summary line on stdout.
#          Exit 0 ok, 1 a check failed (each reason on stderr), 2 no browser / bad usage.
# Chromium runs twice: --dump-dom on a copy of the page with a probe script appended (after
# load it records the page height and how many cards / charts have a box in the layout), then
# --screenshot of the unmodified page at WIDTH x that height. Checks are python3 stdlib.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
me=dashboard-browser-check
t_start=$(date +%s.%N)

html="" regenerate=0 install=0 width=1400 limit=180
out="${CARGO_TARGET_DIR:-$root/target}/dashboard-check"
if [[ -n "${CI:-}" ]]; then install=1; fi
while [[ $# -gt 0 ]]; do
    case "$1" in
        --regenerate) regenerate=1 ;;
        --install) install=1 ;;
        --out) out="$2"; shift ;;
        --width) width="$2"; shift ;;
        --timeout) limit="$2"; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        -*) echo "$me: unknown argument $1 (see --help)" >&2; exit 2 ;;
        *) [[ -z "$html" ]] || { echo "$me: one HTML file only (see --help)" >&2; exit 2; }; html="$1" ;;
    esac
    shift
done
[[ "$width" =~ ^[0-9]+$ && "$limit" =~ ^[0-9]+$ ]] || { echo "$me: --width and --timeout take integers" >&2; exit 2; }
if [[ $regenerate == 1 && -n "$html" ]]; then
    echo "$me: --regenerate checks a fresh render; give no HTML path with it" >&2; exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -f "$out"/{dashboard.png,dom.html,probe.html,dom.log,screenshot.log,render.log}

# ---- the page ------------------------------------------------------------------------------
expect_charts=""  # dashboard.py's own count, with --regenerate
if [[ $regenerate == 1 ]]; then
    html="$out/dashboard.html"
    python3 "$root/scripts/dashboard.py" render --out "$html" >"$out/render.log" 2>&1 || {
        echo "$me: FAIL: dashboard.py render failed:" >&2; tail -n 20 "$out/render.log" >&2; exit 1
    }
    # "dashboard: wrote PATH (N charts, ...)"
    expect_charts="$(sed -n 's/^dashboard: wrote .* (\([0-9][0-9]*\) charts.*/\1/p' "$out/render.log")"
fi
html="${html:-$root/bench/dashboard.html}"
[[ -f "$html" ]] || { echo "$me: no such file: $html" >&2; exit 2; }
html="$(cd "$(dirname "$html")" && pwd)/$(basename "$html")"

# ---- the checks (python3 stdlib), called as: checks prepare|dom|shot ARGS... ---------------
checks() {
    python3 - "$@" <<'PY'
import re, struct, sys, zlib
from html.parser import HTMLParser

ME = "dashboard-browser-check"
PROBE_ID = "dashboard-browser-check-probe"
# Appended to a copy of the page (never to the page itself). After load, and after every
# load handler of the page (setTimeout 0), it writes onto <html> the page height and how many
# cards / chart SVGs have a non-empty box and are not visibility:hidden: display:none on the
# element or an ancestor gives an empty box.
PROBE = """<script id="%s">
window.addEventListener('load', function () { setTimeout(function () {
  var d = document.documentElement;
  function shown(sel) {
    return Array.prototype.filter.call(document.querySelectorAll(sel), function (e) {
      var r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    }).length;
  }
  d.setAttribute('data-check-height', Math.ceil(Math.max(d.scrollHeight, document.body ? document.body.scrollHeight : 0)));
  d.setAttribute('data-check-cards', shown('.card'));
  d.setAttribute('data-check-svgs', shown('svg.chart'));
}, 0); });
</script>""" % PROBE_ID
# Emitted unconditionally by dashboard.py's render_page.
REQUIRED_HEADINGS = ("amring benchmarks", "Regressions (latest run of each history)", "Criterion micro-benchmarks", "amring vs Go (compare-go)")
FOOTER = "Generated by scripts/dashboard.py"
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


class Page(HTMLParser):
    """Chart cards (with their svg.chart count and data marks), headings and hidden elements.

    Nesting is followed through <div> only: a card ends at the </div> closing its own <div>
    (both dashboard.py and Chromium's serialisation close every div explicitly)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards = []  # [{"name", "svgs", "marks"}] in document order
        self.svgs = 0  # every svg.chart, inside a card or not
        self.headings = []
        self.hidden = []  # elements hidden by an inline style or the hidden attribute
        self.root_attrs = {}
        self.probe_seen = False
        self._div = 0
        self._card_div = None  # div depth of the open card
        self._in_svg = False
        self._heading = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "html":
            self.root_attrs = a
        if tag == "script" and a.get("id") == PROBE_ID:
            self.probe_seen = True
        if HIDDEN_STYLE.search(a.get("style") or "") or "hidden" in a:
            self.hidden.append(f"<{tag}{' data-name=' + repr(a['data-name']) if 'data-name' in a else ''}{' id=' + repr(a['id']) if 'id' in a else ''}>")
        if tag == "div":
            self._div += 1
            if "card" in cls and self._card_div is None:
                self._card_div = self._div
                self.cards.append({"name": a.get("data-name", "?"), "svgs": 0, "marks": 0})
        elif tag == "svg" and "chart" in cls:
            self.svgs += 1
            self._in_svg = True
            if self._card_div is not None:
                self.cards[-1]["svgs"] += 1
        elif self._in_svg and self._card_div is not None and (
            (tag == "circle" and a.get("cx") and a.get("cy")) or (tag == "polyline" and (a.get("points") or "").strip())
        ):
            self.cards[-1]["marks"] += 1  # a data point or a series line
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "div":
            if self._card_div == self._div:
                self._card_div = None
            self._div -= 1
        elif tag == "svg":
            self._in_svg = False
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def parse(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    p = Page()
    p.feed(text)
    p.close()
    return text, p


def fail(reasons):
    for r in reasons:
        print(f"{ME}: FAIL: {r}", file=sys.stderr)
    sys.exit(1)


def card_problems(p, what):
    """Cards without exactly one svg.chart or without any data mark."""
    out = []
    for i, c in enumerate(p.cards):
        if c["svgs"] != 1:
            out.append(f"{what}: card #{i + 1} ({c['name']!r}) has {c['svgs']} svg.chart elements, expected 1")
        elif c["marks"] == 0:
            out.append(f"{what}: card #{i + 1} ({c['name']!r}) has an empty chart (no data point or line)")
    return out


def prepare(src, probe_path):
    """Checks the source page is a whole dashboard (not truncated, charts with data), writes the probe copy."""
    text, p = parse(src)
    bad = []
    if not text.lstrip().lower().startswith("<!doctype html"):
        bad.append(f"{src}: does not start with <!doctype html>")
    if not text.rstrip().lower().endswith("</html>"):
        bad.append(f"{src}: does not end with </html> (truncated?)")
    if FOOTER not in text:
        bad.append(f"{src}: no '{FOOTER}' footer (truncated, or not a dashboard.py page?)")
    for h in REQUIRED_HEADINGS:
        if h not in p.headings:
            bad.append(f"{src}: heading {h!r} missing")
    if not p.cards:
        bad.append(f"{src}: no chart card (<div class=\"card\">)")
    bad += card_problems(p, src)
    if p.hidden:
        bad.append(f"{src}: {len(p.hidden)} element(s) hidden in the source itself, e.g. {p.hidden[0]}")
    if bad:
        fail(bad)
    cut = text.lower().rfind("</body>")
    copy = text[:cut] + PROBE + text[cut:] if cut >= 0 else text + PROBE
    with open(probe_path, "w", encoding="utf-8") as f:
        f.write(copy)


def png_check(path):
    """(width, height, distinct colours, non-uniform bands, sampled bands) of an 8-bit RGB(A) PNG.

    Decoding every row in pure Python takes ~10 s per 16000 rows of 1400 px (the Paeth filter is
    per byte; the dashboard is ~46000 rows), so it decodes bands instead: K evenly spaced bands of up to 8 rows, each
    starting at a row filtered None or Sub (those do not depend on the row above; row 0 never
    does), and counts the colours. Decoding is exact, so a blank image can never pass."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, ihdr = 8, [], None
    while pos + 12 <= len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n] or b"\0\0\0\0")
        if len(body) != n or zlib.crc32(typ + body) != crc:
            raise ValueError(f"corrupt or truncated {typ.decode('latin-1')} chunk at byte {pos}")
        if typ == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat.append(body)
        elif typ == b"IEND":
            break
        pos += 12 + n
    if ihdr is None or not idat:
        raise ValueError("no IHDR or IDAT chunk")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (stride + 1):
        raise ValueError(f"image data is {len(raw)} bytes, expected {h * (stride + 1)}")

    def unfilter(y, prev):
        off = y * (stride + 1)
        f, cur = raw[off], bytearray(raw[off + 1:off + 1 + stride])
        if f == 1:  # Sub
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 255
        elif f == 2:  # Up
            cur = bytearray((x + b) & 255 for x, b in zip(cur, prev))
        elif f == 3:  # Average
            for i in range(stride):
                cur[i] = (cur[i] + ((cur[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:  # Paeth
            for i in range(stride):
                a, b, c = (cur[i - bpp], prev[i], prev[i - bpp]) if i >= bpp else (0, prev[i], 0)
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)  # |p-a|, |p-b|, |p-c|, p = a+b-c
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif f != 0:
            raise ValueError(f"row {y}: bad filter type {f}")
        return cur

    bands = min(48, h)
    colours, nonuniform, sampled = set(), 0, 0
    for k in range(bands):
        y0, y1 = k * h // bands, (k + 1) * h // bands
        start = next((y for y in range(y0, y1) if y == 0 or raw[y * (stride + 1)] in (0, 1)), None)
        if start is None:
            continue
        sampled += 1
        band, prev = set(), bytearray(stride)
        for y in range(start, min(start + 8, y1)):
            prev = unfilter(y, prev)
            band.update(bytes(prev[i:i + 3]) for i in range(0, stride, bpp))  # RGB, alpha ignored
        nonuniform += len(band) > 1
        colours |= band
    return w, h, len(colours), nonuniform, sampled


def console_problems(log):
    """JS errors in a Chromium log: console lines ('...:CONSOLE(12)] ...' in older versions,
    '...:CONSOLE:1] ...' in newer) saying Uncaught or logged at ERROR level. Other console
    lines are printed as notes (the dashboard logs nothing itself)."""
    bad, name = [], log.rsplit("/", 1)[-1]
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if re.search(r":CONSOLE[(:\]]", line):
                if "Uncaught" in line or "ERROR:CONSOLE" in line:
                    bad.append(f"JS error ({name}): {line.strip()}")
                else:
                    print(f"{ME}: note: console ({name}): {line.strip()}", file=sys.stderr)
    return bad


def check_dom(src, dom_path, expect, log):
    """The DOM after load against the source; prints the page height and a summary."""
    _, s = parse(src)
    _, d = parse(dom_path)
    n = len(s.cards)
    bad = console_problems(log)
    if expect and int(expect) != n:
        bad.append(f"dashboard.py rendered {expect} charts but the page has {n} cards")
    if not d.probe_seen:
        bad.append(f"{dom_path}: Chromium's DOM dump has no probe script: the page did not load?")
    if len(d.cards) != n:
        bad.append(f"{n} chart cards in the source, {len(d.cards)} in the DOM after load")
    if d.svgs != s.svgs:
        bad.append(f"{s.svgs} svg.chart in the source, {d.svgs} in the DOM after load")
    names = {c["name"] for c in d.cards}
    missing = [c["name"] for c in s.cards if c["name"] not in names]
    if missing:
        bad.append(f"{len(missing)} card(s) of the source missing from the DOM, e.g. {missing[0]!r}")
    for i, (a, b) in enumerate(zip(s.cards, d.cards)):
        if a != b:  # the first difference says enough (a removed card shifts all the rest)
            bad.append(f"card #{i + 1} differs: source {a}, DOM {b}")
            break
    bad += card_problems(d, "DOM")
    if d.headings != s.headings:
        lost = [h for h in s.headings if h not in d.headings]
        bad.append(f"headings differ after load ({len(s.headings)} in the source, {len(d.headings)} in the DOM)" + (f", e.g. {lost[0]!r} missing" if lost else ""))
    if d.hidden:
        bad.append(f"{len(d.hidden)} element(s) hidden after load (display:none, visibility:hidden or hidden), e.g. {d.hidden[0]}")
    # the layout, as the probe saw it
    ra = d.root_attrs
    if "data-check-cards" not in ra:
        bad.append("the layout probe did not run (JS off, or a script error stopped it)")
    else:
        for key, what, want in (("data-check-cards", "cards", n), ("data-check-svgs", "svg.chart", s.svgs)):
            if int(ra[key]) != want:
                bad.append(f"{want} {what} in the source, {ra[key]} with a visible box in the layout")
    if bad:
        fail(bad)
    print(int(ra.get("data-check-height") or 0), f"{n} charts in source, {len(d.cards)} rendered ({ra['data-check-cards']} laid out), {len(d.headings)} headings")


def check_shot(png_path, shown, want_w, want_h, page_h, log):
    """The screenshot: size as requested, not blank; prints a summary."""
    want_w, want_h, page_h = int(want_w), int(want_h), int(page_h)
    bad = console_problems(log)
    shot = ""
    try:
        w, h, ncol, nonuni, sampled = png_check(png_path)
        if (w, h) != (want_w, want_h):
            bad.append(f"screenshot is {w}x{h}, requested {want_w}x{want_h}")
        if ncol < 16 or nonuni * 2 < sampled:
            bad.append(f"screenshot looks blank: {ncol} colour(s), {nonuni} of {sampled} sampled bands not uniform")
        capped = f", page {page_h} px, cut" if page_h > want_h else ""
        shot = f"screenshot {w}x{h} ({shown}; {ncol} colours in {sampled} sampled bands{capped})"
    except (OSError, ValueError, zlib.error) as e:
        bad.append(f"screenshot {png_path}: {e}")
    if bad:
        fail(bad)
    print(shot)


cmd, args = sys.argv[1], sys.argv[2:]
{"prepare": prepare, "dom": check_dom, "shot": check_shot}[cmd](*args)
PY
}

# The source must be a whole dashboard page (fails fast, before any browser); writes the probe copy.
checks prepare "$html" "$out/probe.html" || exit 1

# ---- the browser ---------------------------------------------------------------------------
find_chromium() {
    local c
    for c in ${CHROMIUM:+"$CHROMIUM"} chromium chromium-headless-shell chromium-browser google-chrome google-chrome-stable; do
        if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
    done
    return 1
}
if [[ -n "${CHROMIUM:-}" ]] && ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    echo "$me: CHROMIUM=$CHROMIUM is not an executable" >&2; exit 2
fi
if ! browser="$(find_chromium)"; then
    if [[ $install != 1 ]]; then
        echo "$me: no Chromium found (tried \$CHROMIUM, chromium, chromium-headless-shell, chromium-browser, google-chrome);" \
             "install one (apt-get install chromium), set CHROMIUM=/path, or pass --install" >&2
        exit 2
    fi
    pkg="${CHROMIUM_PACKAGE:-chromium}"
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "$me: --install needs root or sudo" >&2; exit 2; }
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "$me: --install needs apt-get (Debian/Ubuntu)" >&2; exit 2; }
    # Without recommends: ~25 packages, ~414 MB on Debian 12, and no upgrade of installed
    # packages (with recommends apt also pulls ~90 more and upgrades systemd, perl, ...).
    echo "$me: installing $pkg with apt-get" >&2
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >&2
    browser="$(find_chromium)" || { echo "$me: installed $pkg but found no Chromium binary" >&2; exit 2; }
fi

# ---- run -----------------------------------------------------------------------------------
profile="$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX")"
trap 'rm -rf "$profile"' EXIT
# A throwaway profile; no sandbox (containers, root); software rendering; a virtual-time budget
# so load handlers and timers (the page's filter JS, the probe) run before the dump/screenshot.
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --no-default-browser-check
       --disable-extensions --user-data-dir="$profile" --virtual-time-budget=10000
       --enable-logging=stderr --v=0)
run_chromium() {  # LOG ARGS...: one bounded Chromium run, its stderr in OUT/LOG
    local log="$out/$1" rc=0; shift
    timeout --kill-after=10 "$limit" "$browser" "${flags[@]}" "$@" 2>"$log" || rc=$?
    if [[ $rc == 124 || $rc == 137 ]]; then
        echo "$me: FAIL: Chromium did not finish within ${limit}s ($*); log: $log" >&2; exit 1
    elif [[ $rc != 0 ]]; then
        echo "$me: FAIL: Chromium exited $rc ($*); last lines of $log:" >&2; tail -n 15 "$log" >&2; exit 1
    fi
}
url() { python3 -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).as_uri())' "$1"; }

# 1. the DOM after load, from the probe copy: checked before the screenshot (a wrong DOM fails
#    here, in seconds); the probe's page height sizes the screenshot
run_chromium dom.log --window-size="$width,1000" --dump-dom "$(url "$out/probe.html")" >"$out/dom.html"
read -r page_h dom_summary < <(checks dom "$html" "$out/dom.html" "$expect_charts" "$out/dom.log" || echo FAIL)
[[ "${page_h:-FAIL}" != FAIL ]] || exit 1
if [[ "$page_h" -le 0 ]]; then
    echo "$me: FAIL: the layout probe reported no page height; DOM in $out/dom.html" >&2; exit 1
fi
max_h=60000  # a taller page is cut there in the screenshot (the DOM / layout checks cover every card)
shot_h=$(( page_h < max_h ? page_h : max_h ))
# 2. the unmodified page, WIDTH x its full height
run_chromium screenshot.log --window-size="$width,$shot_h" --screenshot="$out/dashboard.png" "$(url "$html")" >/dev/null
shown="$out/dashboard.png"; shown="${shown#"$root/"}"
shot_summary="$(checks shot "$out/dashboard.png" "$shown" "$width" "$shot_h" "$page_h" "$out/screenshot.log")" || exit 1
rm -f "$out/probe.html"  # only worth keeping to debug a failure
secs="$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.1f}")' "$t_start" "$(date +%s.%N)")"
version="$("$browser" --version 2>/dev/null | grep -o '[0-9][0-9.]*[0-9]' | head -n 1 || true)"
echo "$me: ok: $dom_summary, $shot_summary; ${secs} s, $(basename "$browser") ${version:-?}"
