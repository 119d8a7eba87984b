#!/bin/bash
# Host side of the SCSI XCOPY benchmark: boots the guest rig with bench/scsi_xcopy_bench.sh and
# replaces the "SCSI XCOPY" section of docs/benchmarks.md with the measured table.
#     OFFCOPY_BIN=build/offload-copy bench/scsi_xcopy_run.sh [CACHE_DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_to_doc "$ROOT/bench/scsi_xcopy_bench.sh" "${1:-$ROOT/build/vm-cache}" scsi-xcopy-bench \
    "SCSI EXTENDED COPY (LIO, guest)" '`bench/scsi_xcopy_run.sh` (guest part `bench/scsi_xcopy_bench.sh`)'
