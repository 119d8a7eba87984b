#!/usr/bin/env bash
# bench/vm_fallback_256m.sh [BUILD_DIR] — in the QEMU guest (tests/vm), copy a 256 MiB NVMe
# namespace to another with `offload-copy --mode fallback` and with
# `dd bs=1M iflag=direct oflag=direct`, a few repetitions each (OFFCOPY_BENCH_REPS, default 3),
# and print the medians and the ratio dd_time / offcopy_time (> 1 means offload-copy is faster).
# The last line is machine-readable: RESULT ... ratio_dd_over_offcopy=R
# Emulated devices on TCG: compare ratios from the same run, never absolute times across machines.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
vm_bench "${1:-}" "$ROOT/tests/vm/bench/fallback_256m.sh" bench_fallback_256m
