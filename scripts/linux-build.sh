#!/usr/bin/env bash
# Builds kmm_protect.ko and the test modules (linux/, issue 17) into build/linux/ against the
# Kbuild tree of Debian's stock kernel: the newest installed linux-image whose headers are
# installed too (the guest test boots that image), or KVER=<version> when given.
# Kbuild builds beside its sources, so linux/ is copied to build/linux/ first and the source
# tree stays clean. Installs the packages it needs (scripts/setup-linux.sh build).
# Usage: linux-build.sh [OUTDIR]   (default build/linux)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build/linux}"
bash "$root/scripts/setup-linux.sh" build

kver="${KVER:-}"
if [ -z "$kver" ]; then
  for dir in $(ls -d /lib/modules/*/ 2>/dev/null | sort -V -r); do
    v="$(basename "$dir")"
    if [ -e "/lib/modules/$v/build/Makefile" ]; then kver="$v"; break; fi
  done
fi
if [ -z "$kver" ] || [ ! -e "/lib/modules/$kver/build/Makefile" ]; then
  echo "linux-build: no kernel headers found under /lib/modules/*/build (KVER=${KVER:-unset})" >&2
  exit 1
fi

mkdir -p "$out"
# Copy sources only (keep earlier objects so an unchanged tree rebuilds quickly).
(cd "$root/linux" && find . -type f \( -name '*.c' -o -name '*.h' -o -name Kbuild \) -print0 |
  while IFS= read -r -d '' f; do
    mkdir -p "$out/$(dirname "$f")"
    cmp -s "$f" "$out/$f" || cp "$f" "$out/$f"
  done)
echo "linux-build: kernel $kver -> $out"
make -s -C "/lib/modules/$kver/build" M="$out" -j"${JOBS:-2}" modules
echo "$kver" > "$out/KERNEL_VERSION"
ls "$out"/kmm_protect.ko "$out"/tests/*.ko >/dev/null
