#!/usr/bin/env bash
# bench/vm_lvm_256m.sh [BUILD_DIR] — in the QEMU guest (tests/vm), copy a 256 MiB LVM logical
# volume onto another (one volume group over two namespaces of one controller: cross-namespace
# NVMe Copy) with `offload-copy --mode offload` and with `dd bs=1M iflag=direct oflag=direct` on
# the LVs, a few repetitions each (OFFCOPY_BENCH_REPS, default 3), and print the medians and the
# ratio dd_time / offcopy_time (> 1 means offload-copy is faster). Last line machine-readable:
# RESULT ... ratio_dd_over_offcopy=R. Emulated devices on TCG: compare ratios from one run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_bench "${1:-}" "$ROOT/tests/vm/bench/lvm_256m.sh" bench_lvm_256m --timeout 1800
