#!/usr/bin/env bash
# Renders a workdir's report.html in headless Chromium to a PNG, to look at the report as a
# reader's browser shows it (styling, tables, figures).
#
#   scripts/render_report.sh WORKDIR [OUT.png] [WIDTHxHEIGHT]
#
# OUT defaults to WORKDIR/report.png, the window to 1280x6000 (the top 6000 px of the page;
# pass a taller window for a longer report). Chromium: `apt-get install -y chromium` (Debian),
# or set CHROMIUM to the browser binary.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 WORKDIR [OUT.png] [WIDTHxHEIGHT]" >&2
  exit 2
fi
workdir=$(cd "$1" && pwd)
html="$workdir/report.html"
[[ -f "$html" ]] || { echo "no report.html in $workdir (run the evaluate job first)" >&2; exit 1; }
out=${2:-$workdir/report.png}
size=${3:-1280x6000}
[[ "$size" =~ ^[0-9]+x[0-9]+$ ]] || { echo "window size must be WIDTHxHEIGHT, got $size" >&2; exit 2; }

browser=${CHROMIUM:-}
if [[ -z "$browser" ]]; then
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null; then browser=$name; break; fi
  done
fi
[[ -n "$browser" ]] || { echo "no Chromium found: apt-get install -y chromium, or set CHROMIUM" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out"
# --no-sandbox: containers often run as root, where Chromium's sandbox refuses to start.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files \
  --window-size="${size/x/,}" --screenshot="$out" "file://$html" >/dev/null 2>&1 || true
[[ -s "$out" ]] || { echo "Chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
