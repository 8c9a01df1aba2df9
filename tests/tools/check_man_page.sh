#!/usr/bin/env bash
# tests/tools/check_man_page.sh — the generated man page (build/share/man/man1/kmm.1, from
# `kmm help --man`) renders with no warning and holds what a reader looks for.
#   check_man_page.sh PAGE
# Renders PAGE with groff (every warning on, -ww) and with man -l at 80 and 60 columns;
# any diagnostic fails the test. Then the rendered text must have the sections NAME, SYNOPSIS,
# COMMANDS, ENVIRONMENT, SCENARIO LANGUAGE, EXIT STATUS and a few subcommands, KMM_OPTIONS
# keys and scenario commands. Exit 77 (skip) when groff is not installed
# (scripts/setup-debian.sh installs groff-base and man-db).
# Depends on: bash, groff, man-db (optional: man -l is checked when present).
set -euo pipefail
page=$1
[[ -s $page ]] || { echo "FAIL: no man page at $page"; exit 1; }
command -v groff >/dev/null || { echo "SKIP: groff is not installed"; exit 77; }

fail=0
diag=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || echo "groff exited non-zero")
if [[ -n $diag ]]; then
  echo "FAIL: groff -man -ww: $diag"
  fail=1
fi
if command -v man >/dev/null; then
  for w in 80 60; do
    diag=$(MANWIDTH=$w man --warnings -l -P cat "$page" 2>&1 >/dev/null || echo "man exited non-zero")
    if [[ -n $diag ]]; then
      echo "FAIL: man -l at $w columns: $diag"
      fail=1
    fi
  done
fi

# Wide, so that nothing we look for is split over two lines.
text=$(groff -man -Tutf8 -rLL=250n "$page" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
for want in NAME SYNOPSIS DESCRIPTION COMMANDS ENVIRONMENT "SCENARIO LANGUAGE" "EXIT STATUS" \
            "kmm run" "kmm replay" "kmm exec" "kmm help" "--policy" \
            KMM_OPTIONS "guard_pages=on|off" "protect=off|report|reclaim|reclaim-unreachable" "fail_slab=" \
            "kmalloc OWNER SIZE [as LABEL]" "insmod NAME" "translate PROC|kernel VADDR" "expect EXPR"; do
  if ! grep -qF -- "$want" <<<"$text"; then
    echo "FAIL: the rendered page has no '$want'"
    fail=1
  fi
done
[[ $fail == 0 ]] && echo "man page $page: renders clean, every section and sample present: OK"
exit $fail
