#!/usr/bin/env bash
# Sets up everything (apt packages, the QEMU guest kernel) and runs every test:
# the normal build with all labels (unit, cli, fuzz replay, consumer, vm guest scenarios),
# then the ASan+UBSan build with everything but the guest, then the ThreadSanitizer build with
# the unit test programs that run threads.
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

# ThreadSanitizer (issue 8.9): the unit programs whose code or tests start threads (the engine's
# dm watcher, the XCOPY worker threads, discovery's cache, the fault tests' watchdog, the extents
# file readers; unit_fallback starts none and is not built), -O1 -g1 (CMakePresets.json); no
# guest, host or bench test, and three cases that start no thread and take no lock another case
# of the stage does not (the planner property, the 600 MiB journal order, the journal's memmove
# crash sweep: 5 of the stage's 10 CPU minutes). The fault property tests run 200 random requests
# each here (thousands in the stages above). setarch -R turns address-space randomisation off:
# TSan's shadow mapping does not fit the layout of kernels with more mmap randomisation bits
# (vm.mmap_rnd_bits = 32).
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs"
OFFCOPY_FAULT_ITERATIONS=200 setarch "$(uname -m)" -R ctest --preset tsan -j"$jobs" --timeout 600
