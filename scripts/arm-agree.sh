#!/usr/bin/env bash
# Issue 4, part 3: the modelled ARMv7 page tables and the real 32-bit build agree. Builds
# tests/arm/pt_agree.cpp (kmm-pt-agree) for the host (build-arm-host) and for armhf (the ARM
# build folder given, default build-arm), runs the host one natively and the ARM one under
# qemu-arm, and compares the outputs byte for byte. Called by scripts/test-arm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
arm_build="${1:-build-arm}"
host_build="${ARM_HOST_BUILD:-build-arm-host}"
jobs="${JOBS:-$(nproc)}"

cmake -S . -B "$host_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMM_WERROR=ON -DKMM_BUILD_SIM=OFF \
  -DKMM_BUILD_BENCH=OFF -DKMM_TEST_LAYERS=arm >/dev/null
cmake --build "$host_build" -j "$jobs" --target kmm-pt-agree >/dev/null
cmake "$arm_build" >/dev/null  # picks up tests/arm if the folder was configured before it
cmake --build "$arm_build" -j "$jobs" --target kmm-pt-agree >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$host_build/bin/kmm-pt-agree" > "$out/host.txt"
qemu-arm -L /usr/arm-linux-gnueabihf "$arm_build/bin/kmm-pt-agree" > "$out/arm.txt"
if cmp "$out/host.txt" "$out/arm.txt"; then
  echo "arm-agree: host (64-bit) and armhf (qemu-arm) print the same $(wc -c < "$out/host.txt") bytes ($(wc -l < "$out/host.txt") lines)"
else
  diff "$out/host.txt" "$out/arm.txt" | head -40
  echo "arm-agree: the outputs differ" >&2
  exit 1
fi
