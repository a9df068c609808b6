#!/usr/bin/env bash
# Build the site and look at it as a reader would, offline, in headless Chromium.
#
#   bash tools/browser_check.sh [OUT]       # screenshots and DOM dumps go to OUT (default ./browser-check)
#
# Needs Debian's chromium (apt-get update && apt-get install -y chromium); CI does not
# run this. It
#   1. builds the site with `mkdocs build --strict` into OUT/site;
#   2. runs `python3 -m tools.site_check` (no remote asset, no unrendered TeX);
#   3. takes a 1280x2000 screenshot of the home page, the catalogue overview, one family
#      page, the explainer and the kill matrix, with the network disabled;
#   4. dumps the explainer's DOM after rendering and fails if it holds no <math> element
#      or shows raw \( TeX.
# Look at the PNGs: formulas should be typeset (fractions, hats, sums), not TeX source.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-browser-check}"
mkdir -p "$out"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    echo "browser_check: no chromium on PATH (apt-get install -y chromium)" >&2
    exit 2
fi
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet --site-dir "$out/site"
python3 -m tools.site_check "$out/site"
site="$(cd "$out/site" && pwd)"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
       --proxy-server=127.0.0.1:9 --proxy-bypass-list="<-loopback>")  # any network use fails
pages=("home:index.html" "catalogue:catalogue/index.html" "family:catalogue/backward/index.html"
       "explainer:explainer/index.html" "kill-matrix:kill-matrix/index.html")
for entry in "${pages[@]}"; do
    name="${entry%%:*}"
    timeout 60 "$browser" "${flags[@]}" --window-size=1280,2000 \
        --screenshot="$out/$name.png" "file://$site/${entry#*:}" >/dev/null 2>&1
    echo "browser_check: wrote $out/$name.png"
done
timeout 60 "$browser" "${flags[@]}" --dump-dom "file://$site/explainer/index.html" \
    2>/dev/null > "$out/explainer.dom.html"
python3 - "$out/explainer.dom.html" <<'PY'
import sys
from pathlib import Path
from tools.site_check import page_problems
dom = Path(sys.argv[1]).read_text(encoding="utf-8")
problems = page_problems(dom) + ([] if "<math" in dom else ["no <math> element"])
for problem in problems:
    print(f"browser_check: explainer after rendering: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"browser_check: the rendered explainer holds {dom.count('<math')} MathML formulas "
      "and no raw TeX")
PY
echo "browser_check: screenshots in $out/"
