#!/usr/bin/env bash
# Under kmm exec: git init, add, commit (many files, several commits), log, branch, merge, gc
# and fsck on a scratch repository; every step must succeed and the log must be complete.
# The exit stats of every git process prove kmm was the allocator (lib.sh).
# Usage: git.sh KMM_BINARY [hardened].
set -u
kmm=$1
. "$(dirname "$0")/lib.sh"
command -v git >/dev/null || { echo "SKIP: git is missing (scripts/setup-debian.sh installs it)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
kmm_stats_begin "$dir" "${2:-}"
g() { "$kmm" exec -- git -C "$dir/repo" -c user.name=kmm -c user.email=kmm@example.com -c init.defaultBranch=main "$@"; }
mkdir -p "$dir/repo" && cd "$dir/repo" || exit 1
g init -q || exit 1
for c in 1 2 3 4 5; do
  for f in $(seq 1 100); do echo "commit $c file $f $(seq 1 $((f % 50)))" >"f$f.txt"; done
  g add -A || exit 1
  g commit -q -m "commit $c" || exit 1
done
g checkout -q -b side || exit 1
echo side >side.txt && g add side.txt && g commit -q -m side || exit 1
g checkout -q main && g merge -q --no-edit side || exit 1
n=$(g log --oneline | wc -l)
g gc -q --aggressive || exit 1
g fsck --strict >/dev/null 2>&1 || { echo "FAIL: fsck"; exit 1; }
n2=$(g log --oneline | wc -l)
echo "git log: $n commits before gc, $n2 after"
[ "$n" -eq 6 ] && [ "$n2" -eq 6 ] || { echo "FAIL: want 6 commits"; exit 1; }
kmm_stats_check 20 0 120  # a git process per step (36 measured); the busiest held 245 objects at exit, `git --version` 60
