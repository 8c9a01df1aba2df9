#!/usr/bin/env bash
# Re-records the real-program traces shipped in tests/data/traces/ (issue 7) with kmm trace.
#   scripts/record-traces.sh [OUTDIR]        (default tests/data/traces)
# Environment: KMM (default build/bin/kmm), KMM_TRACE_LIB (default: found next to KMM).
# Traces (all with --with-callers, gzip-compressed):
#   python3-imports.rep.gz  python3 -I importing json, re, collections, decimal, email.parser,
#                           argparse, datetime, sqlite3 (the real interpreter, not a pyenv shim)
#   sqlite3-script.rep.gz   the sqlite3 shell running tests/data/traces/sqlite3-script.sql
#   git-log.rep.gz          git log -p --stat on a scratch repository of 6 commits
#   zebra-startup.rep.gz    FRR's zebra (8.4) starting as the frr user with a small config, its
#                           sockets in a scratch directory (no root networking needed): the first
#                           60000 operations; stopped with SIGINT after 3 s (needs the frr package;
#                           skipped with a message when it is absent)
# Recording is not bit-for-bit reproducible (addresses, hash seeds, environment), but the
# shapes are stable: the tests check replay invariants, not exact figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/tests/data/traces}
kmm=${KMM:-$here/build/bin/kmm}
mkdir -p "$out"
work=$(mktemp -d /tmp/kmm-record.XXXXXX)
chmod 755 "$work"  # zebra drops to the frr user and must reach its scratch directory
trap 'rm -rf "$work"' EXIT

# python3: the real binary, so the main trace is the interpreter's (a shim would exec it).
py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
"$kmm" trace -o "$work/python3-imports.rep.gz" --with-callers -- "$py" -I -c \
  'import json, re, collections, decimal, email.parser, argparse, datetime, sqlite3; print("imported")'
cp "$work/python3-imports.rep.gz" "$out/"

# sqlite3 (apt: sqlite3)
"$kmm" trace -o "$work/sqlite3-script.rep.gz" --with-callers -- sqlite3 :memory: ".read $here/tests/data/traces/sqlite3-script.sql" >/dev/null
cp "$work/sqlite3-script.rep.gz" "$out/"

# git on a scratch repository
repo=$work/repo
git init -q "$repo"
for c in 1 2 3 4 5 6; do
  for f in $(seq 1 12); do
    printf 'file %s, commit %s\n%s\n' "$f" "$c" "$(seq 1 $((f * c * 3)) | tr '\n' ' ')" > "$repo/f$f.txt"
  done
  git -C "$repo" add -A
  git -C "$repo" -c user.name=kmm -c user.email=kmm@example.org commit -q -m "commit $c"
done
GIT_PAGER=cat "$kmm" trace -o "$work/git-log.rep.gz" --with-callers -- git -C "$repo" --no-pager log -p --stat >/dev/null
cp "$work/git-log.rep.gz" "$out/"

# FRR zebra: starts as a daemon (needs no routing privileges for this: it runs as the frr
# user with its sockets in a scratch directory), then stops on SIGINT after 3 seconds.
zebra=/usr/lib/frr/zebra
if [ -x "$zebra" ] && id frr >/dev/null 2>&1; then
  z=$work/zebra
  mkdir -p "$z" && chmod 777 "$z"
  printf 'hostname kmm-trace\n!\ninterface lo\n ip address 10.9.9.9/32\n!\n' > "$z/zebra.conf"
  "$kmm" trace -o "$work/zebra-startup.rep.gz" --with-callers -- "$zebra" -f "$z/zebra.conf" -i "$z/zebra.pid" \
    -z "$z/zserv.api" --vty_socket "$z" -u frr -g frr --log stdout >"$z/log" 2>&1 &
  tracer=$!
  for _ in $(seq 1 50); do [ -s "$z/zebra.pid" ] && break; sleep 0.1; done
  sleep 3
  kill -INT "$(cat "$z/zebra.pid")" 2>/dev/null || true
  wait "$tracer" || true
  if [ -s "$work/zebra-startup.rep.gz" ]; then
    # The whole run is ~220 K operations (600 KB compressed): keep the first 60000, the
    # start-up (its command tree of many tiny blocks), to stay within the test-data budget.
    # A prefix of a valid trace is valid (blocks simply stay live).
    python3 - "$work/zebra-startup.rep.gz" "$out/zebra-startup.rep.gz" 60000 <<'PY'
import gzip, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = gzip.open(src, "rt").read().split("\n")
heap, ids, nops, weight = (int(x) for x in lines[:4])
keep = min(keep, nops)
ops = lines[4:4 + nops][:keep]
trailer = []
for l in lines[4 + nops:]:
    f = l.split()
    if f and f[0] == "x" and int(f[1]) >= keep:
        continue
    trailer.append(l)
with gzip.open(dst, "wt", compresslevel=9) as out:
    out.write("\n".join([str(heap), str(ids), str(keep), str(weight)] + ops + trailer))
PY
  else
    echo "record-traces: zebra did not run (see its log below); no zebra trace" >&2
    cat "$z/log" >&2 || true
  fi
else
  echo "record-traces: FRR's zebra is not installed (apt install frr); no zebra trace" >&2
fi
ls -l "$out"/*.rep.gz
