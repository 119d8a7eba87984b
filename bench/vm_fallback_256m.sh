#!/usr/bin/env bash
# bench/vm_fallback_256m.sh [BUILD_DIR] — in the QEMU guest (tests/vm), copy a 256 MiB NVMe
# namespace to another with `offload-copy --mode fallback` and with
# `dd bs=1M iflag=direct oflag=direct`, a few repetitions each (OFFCOPY_BENCH_REPS, default 3),
# and print the medians and the ratio dd_time / offcopy_time (> 1 means offload-copy is faster).
# The last line is machine-readable: RESULT ... ratio_dd_over_offcopy=R
# Emulated devices on TCG: compare ratios from the same run, never absolute times across machines.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${OFFCOPY_BUILD:-$repo/build}}" && pwd)
export OFFCOPY_BUILD=$build
export OFFCOPY_BIN=${OFFCOPY_BIN:-$build/offload-copy}
[[ -x $OFFCOPY_BIN ]] || { echo "no offload-copy at $OFFCOPY_BIN (build first)" >&2; exit 77; }
cache=${OFFCOPY_VM_CACHE:-$build/vm-cache}
"$repo/tests/vm/setup.sh" "$cache"
exec /usr/bin/python3 "$repo/tests/vm/vmrun.py" --cache "$cache" \
    --scenario "$repo/tests/vm/bench/fallback_256m.sh" --log "$build/vm-logs/bench_fallback_256m.log"
