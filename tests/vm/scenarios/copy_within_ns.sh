#!/bin/bash
# offload-copy inside one NVMe namespace (the case QEMU's controller can offload with NVMe Copy).
# Several extents, two of them scattered sources landing back to back (one gather command), then
# the same device again with --mode offload, which must be carried by the nvme-copy backend.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_one_ns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
dev=$NVME0N1

fill_random "$dev" 0 16M seed-within
expect_data "pattern $dev 0 16M seed-within source after fill"

note "auto mode, 4 extents, 8 MiB"
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" 0:32M:4M 4M:40M:2M 8M:48M:1M 12M:49M:1M --verify --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((8 << 20))
expect_data "same $dev 32M $dev 0 4M extent 0:32M:4M" "same $dev 40M $dev 4M 2M extent 4M:40M:2M" \
    "same $dev 48M $dev 8M 1M extent 8M:48M:1M" "same $dev 49M $dev 12M 1M extent 12M:49M:1M" \
    "zero $dev 36M 4M gap 36M..40M untouched" "zero $dev 42M 6M gap 42M..48M untouched" \
    "zero $dev 50M 14M tail 50M..64M untouched" "pattern $dev 0 16M seed-within source unchanged"

note "--mode offload, 1 extent, 4 MiB: NVMe Copy must carry it"
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" 0:56M:4M --mode offload --verify --json
[[ $rc != 3 ]] || fail "--mode offload: offload reported impossible on a namespace with Copy"
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((4 << 20))
expect_eq "$(backend_bytes "$report" nvme-copy)" $((4 << 20)) "backends.nvme-copy.bytes"
expect_data "pattern $dev 56M 4M seed-within extent 0:56M:4M"
note "copy_within_ns: ok"
