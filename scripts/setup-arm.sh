#!/usr/bin/env bash
# Installs the Debian 12 packages the ARM builds need, when any is missing (issue 4):
#   test-arm  g++-arm-linux-gnueabihf (the armhf cross toolchain and its libc), qemu-user
#             (qemu-arm, runs the cross-built tests), googletest (its sources, built for the
#             target by the cross build from /usr/src/googletest), cmake.
#   firmware  gcc-arm-none-eabi + binutils, libnewlib-arm-none-eabi (C library for bare metal),
#             libstdc++-arm-none-eabi-newlib (freestanding C++ headers: <atomic>, <new>, ...).
# Usage: setup-arm.sh [linux|firmware|all]   (default: all). Idempotent and quiet when
# everything is there; needs root (or sudo) only when it installs.
set -euo pipefail

what="${1:-all}"
packages=(cmake make)
case "$what" in
  linux|all) packages+=(g++-arm-linux-gnueabihf qemu-user googletest) ;;&
  firmware|all) packages+=(gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi
                           libstdc++-arm-none-eabi-newlib) ;;
  linux|firmware|all) ;;
  *) echo "usage: $0 [linux|firmware|all]" >&2; exit 2 ;;
esac

bash "$(dirname "$0")/apt-install.sh" setup-arm "${packages[@]}"
