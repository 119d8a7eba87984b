#!/usr/bin/env bash
# Sets up everything (apt packages, the QEMU guest kernel) and runs every test:
# the normal build with all labels (unit, cli, fuzz replay, consumer, vm guest scenarios),
# then the ASan+UBSan build with everything but the guest, then the ThreadSanitizer build with
# the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh

cmake --preset dev >/dev/null
cmake --build --preset dev -j"$jobs"
# Host tests two at a time; guest scenarios one at a time (each QEMU guest wants a core).
ctest --preset dev -LE vm -j"$jobs" --timeout 900
ctest --preset dev -L vm -j1 --timeout 900

cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j"$jobs" --timeout 600

# ThreadSanitizer (issue 8.9): the unit tests only (the engine, the XCOPY worker threads,
# discovery's cache, the models; no guest, host or bench test), and only their programs are
# built (~5 min CPU to build, ~2.5 min CPU to run). The fault property tests run 200 random
# requests each here (thousands in the stages above). setarch -R turns address-space
# randomisation off: TSan's shadow mapping does not fit the layout of kernels with more mmap
# randomisation bits (vm.mmap_rnd_bits = 32).
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs"
OFFCOPY_FAULT_ITERATIONS=200 setarch "$(uname -m)" -R ctest --preset tsan -j"$jobs" --timeout 600
