#!/bin/bash
# Benchmark (run by bench/vm_fallback_256m.sh, not a CTest test): 256 MiB namespace -> namespace
# on two controllers, offload-copy --mode fallback against dd bs=1M iflag=direct oflag=direct.
# Prints the medians and the ratio dd_time / offcopy_time (> 1: offcopy is faster).
# vm-nvme: ctrl=0 nsid=1 size=256M lbs=512
# vm-nvme: ctrl=1 nsid=1 size=256M lbs=512
# vm-require: OFFCOPY_BIN
# vm-timeout: 1200
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$NVME0N1
dst=$NVME1N1
reps=${OFFCOPY_BENCH_REPS:-3}

note "filling $src (256 MiB)"
fill_random "$src" 0 256M seed-bench

time_dd_against_offcopy "$src" "$dst" fallback "$reps"
expect_data "pattern $dst 0 256M seed-bench destination after offload-copy"
echo "RESULT bench=vm_fallback_256m reps=$reps dd_s=$DD_MEDIAN offcopy_s=$OC_MEDIAN ratio_dd_over_offcopy=$RATIO_DD_OVER_OC"
