#!/bin/bash
# Installs the build tree into a temporary prefix and builds two consumers against it: C with
# pkg-config, C++ with find_package(kmm); runs both, and `kmm exec` from the prefix and from
# the unpacked .deb (CPack).
# Usage: consumers.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/kmm lib/libkmm-preload.so lib/libkmm-trace.so include/kmm/kmm.h lib/cmake/kmm/kmmConfig.cmake lib/pkgconfig/kmm.pc share/man/man1/kmm.1; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
# `man kmm` finds the installed page (man-db: MANPATH=prefix/share/man).
if command -v man >/dev/null; then
  page=$(MANPATH=$prefix/share/man MANWIDTH=80 man -P cat kmm 2>&1 || true)
  grep -q "KMM_OPTIONS" <<<"$page" || { echo "man kmm from the prefix shows no page: $page"; exit 1; }
fi
cp "$src/tests/install/consumer.c" "$src/tests/install/consumer.cpp" "$tmp/"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cc -o "$tmp/consumer_c" "$tmp/consumer.c" $(pkg-config --cflags --libs kmm)
out=$("$tmp/consumer_c")
[ "$out" = "kmm from C" ] || { echo "C consumer said: $out"; exit 1; }
cp "$src/tests/install/CMakeLists.txt.consumer" "$tmp/CMakeLists.txt"
cmake -S "$tmp" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/b" >/dev/null
out=$("$tmp/b/consumer_cxx")
[ "$out" = "kmm from C++: 1000 strings" ] || { echo "C++ consumer said: $out"; exit 1; }
# kmm exec from the prefix preloads the prefix's library.
out=$("$prefix/bin/kmm" exec -- sh -c 'echo "$LD_PRELOAD"' 2>&1)
case "$out" in "$prefix"/lib/libkmm-preload.so*) ;; *) echo "kmm exec from the prefix preloads: $out"; exit 1 ;; esac
out=$("$prefix/bin/kmm" exec -- "$tmp/b/consumer_cxx" 2>&1)
echo "$out" | grep -q "kmm from C++" || { echo "kmm exec from the prefix: $out"; exit 1; }
# The .deb (CPack) holds the same set, and its kmm exec works from where it is unpacked.
(cd "$build" && cpack -G DEB -B "$tmp/deb" >/dev/null)
deb=$(ls "$tmp"/deb/kmm_*.deb)
dpkg-deb -x "$deb" "$tmp/unpacked"
out=$("$tmp/unpacked/usr/bin/kmm" exec -- sh -c 'echo "$LD_PRELOAD"' 2>&1)
case "$out" in "$tmp"/unpacked/usr/lib/libkmm-preload.so*) ;; *) echo "kmm exec from the .deb preloads: $out"; exit 1 ;; esac
out=$("$tmp/unpacked/usr/bin/kmm" exec -- "$tmp/b/consumer_cxx" 2>&1)
echo "$out" | grep -q "kmm from C++" || { echo "kmm exec from the .deb: $out"; exit 1; }
[ -s "$tmp/unpacked/usr/share/man/man1/kmm.1" ] || { echo "the .deb has no usr/share/man/man1/kmm.1"; exit 1; }
echo "install + consumers + .deb: ok"
