#!/usr/bin/env bash
# Headless Chromium screenshot of the report page, to check it reads at a laptop's width.
# Usage: scripts/screenshot.sh [results/report/index.html] [report.png] [width=1280]
# Needs Debian's chromium package (apt-get install -y chromium). The page is laid out at WIDTH
# CSS pixels; the window is as tall as the page (measured by Chromium itself), so the PNG
# holds the whole report. Prints the page's scroll width: above WIDTH means horizontal overflow.
set -euo pipefail
page=$(realpath "${1:-results/report/index.html}")
out=${2:-report.png}
width=${3:-1280}
chrome=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chrome" ] || { echo "screenshot.sh: chromium not found (Debian: apt-get install -y chromium)" >&2; exit 1; }
[ -f "$page" ] || { echo "screenshot.sh: $page not found (build it with: snakemake --cores 2 report)" >&2; exit 1; }
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 --run-all-compositor-stages-before-draw)
# The page's size at this width: a small page loads the report in an iframe of that width and
# writes the report's scroll width and height into its DOM, which --dump-dom prints.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/measure.html" <<HTML
<!doctype html><html><body style="margin:0"><iframe id="f" src="file://$page" style="width:${width}px;height:800px;border:0"></iframe>
<script>document.getElementById('f').onload=()=>{const d=document.getElementById('f').contentDocument.documentElement;
document.body.insertAdjacentHTML('beforeend','<pre id="size">'+d.scrollWidth+' '+d.scrollHeight+'</pre>')}</script></body></html>
HTML
read -r scroll_width height < <("$chrome" "${flags[@]}" --allow-file-access-from-files --window-size="$width,800" \
  --virtual-time-budget=10000 --dump-dom "file://$tmp/measure.html" 2>/dev/null | sed -n 's/.*<pre id="size">\([0-9]*\) \([0-9]*\)<\/pre>.*/\1 \2/p')
"$chrome" "${flags[@]}" --window-size="$width,${height:-4000}" --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
echo "$out: ${width}x${height:-4000} px; page scroll width $scroll_width px ($([ "${scroll_width:-0}" -le "$width" ] && echo 'no horizontal overflow' || echo 'OVERFLOWS'))"
