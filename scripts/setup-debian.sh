#!/usr/bin/env bash
# Installs the Debian 12 packages kmm needs to build, test and benchmark, when any is missing.
# Idempotent and quiet when everything is there; needs root (or sudo) only when it installs.
set -euo pipefail

packages=(
  build-essential cmake make g++ clang-14 libclang-rt-14-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev
  libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev
  libpmemobj-dev
  clang-format
  pkg-config
  # issue 8: real programs under kmm exec (tests labelled realprog) and the allocators the
  # workload benchmarks preload (bench/run_workloads.sh)
  python3 libpython3.11-testsuite sqlite3 git redis-server redis-tools
  libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4
  # issue 7: the trace reader reads .gz traces (re-recording FRR's zebra with
  # scripts/record-traces.sh also wants the frr package; the tests replay the shipped traces)
  zlib1g-dev
  # issue 19: the HTML reports (kmm run/replay --report) are checked in a real headless browser
  chromium
  # issue 19: the man page (kmm help --man) is rendered with groff and man -l in a test
  groff-base man-db
)

bash "$(dirname "$0")/apt-install.sh" setup "${packages[@]}"
