#!/usr/bin/env bash
# Installs the Debian 12 packages the Linux kernel module (linux/, issue 17) needs, when any is
# missing: build (make linux): gcc, make, linux-headers-amd64 (the Kbuild tree of Debian's stock
# kernel); guest test (make test-linux): linux-image-amd64 (the kernel the guest boots, same
# version as the headers), qemu-system-x86, busybox-static and cpio (the initramfs).
# Usage: setup-linux.sh [build|guest]   (default: guest, which includes build). Idempotent and
# quiet when everything is there; needs root (or sudo) only when it installs.
set -euo pipefail

what="${1:-guest}"
packages=(gcc make kmod linux-headers-amd64)
case "$what" in
  build) ;;
  guest) packages+=(linux-image-amd64 qemu-system-x86 busybox-static cpio gzip) ;;
  *) echo "usage: $0 [build|guest]" >&2; exit 2 ;;
esac

bash "$(dirname "$0")/apt-install.sh" setup-linux "${packages[@]}"
