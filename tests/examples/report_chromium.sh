#!/usr/bin/env bash
# tests/examples/report_chromium.sh KMM SRC OUT — the HTML reports in a real browser (issue 19).
# Writes `kmm run --report` of examples/paper-2004.kms and of a scenario whose allocations
# fail, and `kmm replay --report` of a shipped trace, then loads each page in headless
# Chromium (Debian's package; scripts/setup-debian.sh installs it): the page must log nothing
# to the console (no error, no warning), its check script must have run and found every chart
# drawn (body data-charts >= the charts the page has, data-empty 0), and a screenshot is taken
# (OUT/*.png; docs/img/report-paper-2004.png is one of them).
set -euo pipefail
kmm=$1 src=$2 out=$3
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "report: no chromium (scripts/setup-debian.sh installs Debian's package)" >&2
  exit 1
fi
fail=0

"$kmm" run -q --report "$out/paper.html" "$src/examples/paper-2004.kms" > /dev/null
# A machine whose free memory is all in 1 MiB holes: a 2 MiB request fails, and the page shows
# the memory map of that moment.
cat > "$out/oom.kms" <<'KMS'
boot ram=16M
insmod hog
kmalloc hog 1M as b0
kmalloc hog 1M as b1
kmalloc hog 1M as b2
kmalloc hog 1M as b3
kmalloc hog 1M as b4
kmalloc hog 1M as b5
kmalloc hog 1M as b6
kmalloc hog 1M as b7
kmalloc hog 1M as b8
kmalloc hog 1M as b9
kmalloc hog 1M as b10
kmalloc hog 1M as b11
kmalloc hog 1M as b12
kmalloc hog 1M as b13
kmalloc hog 1M as b14
kfree b0
kfree b2
kfree b4
kfree b6
kfree b8
kfree b10
kfree b12
kfree b14
alloc_pages hog 9 as big     # 2 MiB: free memory is there, in 1 MiB holes
expect last.failed == 1
KMS
"$kmm" run -q --report "$out/oom.html" "$out/oom.kms" > /dev/null
"$kmm" replay "$src/tests/data/traces/sqlite3-script.rep.gz" --policy slab,pow2,kmalloc2 --report "$out/replay.html" > /dev/null

check() {  # page min_charts [extra grep]
  local page=$1 min=$2 extra=${3:-}
  local dom log
  dom=$("$browser" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --dump-dom \
          "file://$out/$page.html" 2> "$out/$page.log")
  if grep -q "CONSOLE" "$out/$page.log"; then
    echo "report: $page.html wrote to the console:"; grep "CONSOLE" "$out/$page.log"; fail=1
  fi
  local charts empty
  charts=$(grep -o 'data-charts="[0-9]*"' <<<"$dom" | grep -o '[0-9]*' || echo 0)
  empty=$(grep -o 'data-empty="[0-9]*"' <<<"$dom" | grep -o '[0-9]*' || echo missing)
  if [ "$charts" -lt "$min" ] || [ "$empty" != 0 ]; then
    echo "report: $page.html: $charts charts (want >= $min), $empty empty (want 0)"; fail=1
  fi
  if [ -n "$extra" ] && ! grep -q -- "$extra" <<<"$dom"; then
    echo "report: $page.html lacks '$extra'"; fail=1
  fi
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1500 \
    --screenshot="$out/$page.png" "file://$out/$page.html" > /dev/null 2>&1
  local bytes
  bytes=$(stat -c %s "$out/$page.png" 2> /dev/null || echo 0)
  if [ "$bytes" -lt 20000 ]; then
    echo "report: $page.png is $bytes bytes: nothing drawn?"; fail=1
  fi
  echo "report: $page.html: $charts charts, none empty, screenshot $bytes bytes"
}
check paper 6 'collector pass after'
check oom 3 'Failed allocations'
check replay 1 'footprint'
[ "$fail" = 0 ] && echo "report: PASS" || { echo "report: FAIL"; exit 1; }
