#!/usr/bin/env bash
# Sets up everything (apt packages, the QEMU guest kernel) and runs every test:
# the normal build with all labels (unit, cli, fuzz replay, consumer, vm guest scenarios),
# then the ASan+UBSan build with everything but the guest, then the ThreadSanitizer build with
# the unit test programs that run threads.
#
# The ASan and TSan builds run beside the guest scenarios, niced: a guest keeps about one of the
# two cores busy (QEMU's CPU seconds are close to its wall time), the builds take the rest and
# never the guest's share. Each stage prints its start and its length ("=== ci: ..." lines);
# docs/testing.md "CI stages" has the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
t_start=$SECONDS

stage() { echo "=== ci: $* at $((SECONDS - t_start)) s ==="; }

stage "install-deps"
scripts/install-deps.sh

stage "dev build"
cmake --preset dev >/dev/null
cmake --build --preset dev -j"$jobs"

# Host tests two at a time (the stop-time tests run alone: RUN_SERIAL).
stage "dev host tests"
ctest --preset dev -LE vm -j"$jobs" --timeout 900

# The sanitizer builds in the background from here on, below the guest's priority. Each runs in
# its own session (setsid: a process group this script ends if a stage before them fails) and so
# in its own scheduler autogroup, whose nice is what counts against QEMU's (vmrun.py starts QEMU
# in a session of its own too): with autogroups on (Debian's default), a plain `nice` build took
# half the CPU from the guests (the guest stage 826 -> 958 s, demo 24 -> 78 s). Autogroup nice 19
# for both; inside, ASan before TSan (its tests come first).
asan_log=build/ci-asan-build.log
tsan_log=build/ci-tsan-build.log
background_build() { # PRESET NICE LOG: configure and build PRESET in the background (PID in $!)
    # /proc/self/autogroup inside the new session: its own autogroup (setsid made it).
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid -w bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null
        nice -n "$2" cmake --preset "$1" >/dev/null && exec nice -n "$2" cmake --build --preset "$1" -j"$3"' \
        _ "$1" "$2" "$jobs" >"$3" 2>&1 &
}
background_build asan 0 "$asan_log"
asan_pid=$!
# TSan: -O1 -g1 (CMakePresets.json), only the programs whose tests run threads.
background_build tsan 10 "$tsan_log"
tsan_pid=$!
trap 'kill -- -"$asan_pid" -"$tsan_pid" 2>/dev/null || true' EXIT

# Guest scenarios one at a time (each QEMU guest wants a core).
stage "guest scenarios (ASan and TSan builds beside them)"
ctest --preset dev -L vm -j1 --timeout 900

finish_build() { # PID LOG NAME: wait for a background build, show its log, fail with it
    local rc=0
    wait "$1" || rc=$?
    echo "--- $3 build (in the background): exit $rc; last lines of $2:"
    tail -n 5 "$2"
    if ((rc != 0)); then
        cat "$2"
        exit "$rc"
    fi
}

stage "ASan build (wait)"
finish_build "$asan_pid" "$asan_log" ASan
stage "ASan tests (TSan build beside them)"
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
stage "TSan build (wait)"
finish_build "$tsan_pid" "$tsan_log" TSan
trap - EXIT
stage "TSan tests"
OFFCOPY_FAULT_ITERATIONS=200 setarch "$(uname -m)" -R ctest --preset tsan -j"$jobs" --timeout 600
stage "done"
