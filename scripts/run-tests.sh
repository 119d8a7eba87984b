#!/usr/bin/env bash
# Sets up everything (apt packages, the QEMU guest kernel) and runs every test:
# the normal build with all labels (unit, cli, fuzz replay, consumer, vm guest scenarios),
# then the ASan+UBSan build with everything but the guest.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh

cmake --preset dev >/dev/null
cmake --build --preset dev -j"$jobs"
ctest --preset dev -j1 --timeout 900

cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j"$jobs" --timeout 600
