#!/usr/bin/env bash
# bench/vm_lvm_256m.sh [BUILD_DIR] — in the QEMU guest (tests/vm), copy a 256 MiB LVM logical
# volume onto another (one volume group over two namespaces of one controller: cross-namespace
# NVMe Copy) with `offload-copy --mode offload` and with `dd bs=1M iflag=direct oflag=direct` on
# the LVs, a few repetitions each (OFFCOPY_BENCH_REPS, default 3), and print the medians and the
# ratio dd_time / offcopy_time (> 1 means offload-copy is faster). Last line machine-readable:
# RESULT ... ratio_dd_over_offcopy=R. Emulated devices on TCG: compare ratios from one run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${OFFCOPY_BUILD:-$repo/build}}" && pwd)
export OFFCOPY_BUILD=$build
export OFFCOPY_BIN=${OFFCOPY_BIN:-$build/offload-copy}
[[ -x $OFFCOPY_BIN ]] || { echo "no offload-copy at $OFFCOPY_BIN (build first)" >&2; exit 77; }
cache=${OFFCOPY_VM_CACHE:-$build/vm-cache}
"$repo/tests/vm/setup.sh" "$cache"
exec /usr/bin/python3 "$repo/tests/vm/vmrun.py" --cache "$cache" --timeout 1800 \
    --scenario "$repo/tests/vm/bench/lvm_256m.sh" --log "$build/vm-logs/bench_lvm_256m.log"
