#!/usr/bin/env bash
# Under kmm exec: CPython runs a slice of its own test suite (Debian's libpython3.11-testsuite).
# Usage: python.sh KMM_BINARY [hardened]. Exit 77 (skip) when python3 or its test suite is
# missing. The exit stats of every python process prove kmm was the allocator (lib.sh).
set -u
kmm=$1
. "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
if [ -z "$py" ] || ! "$py" -c 'import test.test_list, test.test_dict, test.test_set, test.test_string' 2>/dev/null; then
  echo "SKIP: python3 with its test suite is missing (scripts/setup-debian.sh installs libpython3.11-testsuite)"
  exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
kmm_stats_begin "$out" "${2:-}"
"$kmm" exec -- "$py" -m test -j0 test_list test_dict test_set test_string test_bytes test_json >"$out/log" 2>&1
rc=$?
tail -8 "$out/log"
[ $rc -eq 0 ] && grep -qi "result: SUCCESS" "$out/log" || { echo "FAIL: python's tests (exit $rc)"; exit 1; }
kmm_stats_check 2 12288 1  # -j0: worker processes; CPython's heap passes 12 MB (measured 24712 kB)
