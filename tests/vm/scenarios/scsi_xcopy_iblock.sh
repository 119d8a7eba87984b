#!/bin/bash
# SCSI EXTENDED COPY on LIO iblock backstores sitting on the guest's NVMe namespaces: LUN→LUN,
# fileio→iblock across backstore types, and within one iblock LUN; verified with O_DIRECT reads.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=1 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-lio: name=lun0 backstore=iblock dev=nvme0n1
# vm-lio: name=lun1 backstore=iblock dev=nvme1n1
# vm-lio: name=lun2 backstore=fileio size=64M
# vm-require: OFFCOPY_BIN
# vm-timeout: 360
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$LUN0_SD
dst=$LUN1_SD
fill_random "$src" 0 32M seed-iblock

note "iblock → iblock, 3 extents + one past 65535 blocks, --mode offload"
offcopy copy "$src" "$dst" 0:40M:1M 4M:44M:2M 10M:50M:512K 0:0:36M --mode offload --json
report=$(report_json)
check_copy_report "$report" $(((1 + 2 + 36) * 1024 * 1024 + 512 * 1024))
eval "$(json_vars r "$report" backends.scsi-xcopy.commands)"
# 1 + 1 + 1 + ceil(73728 / 65535) = 5 commands.
expect_eq "$r_backends_scsi_xcopy_commands" 5 "backends.scsi-xcopy.commands (minimal)"
expect_eq "$(sum_direct "$dst" 0 32M)" "$(sum_direct "$src" 0 32M)" "36 MiB extent (random part)"
expect_eq "$(sum_direct "$dst" 44M 2M)" "$(sum_direct "$src" 4M 2M)" "extent 4M:44M:2M"
expect_eq "$(sum_direct "$dst" 50M 512K)" "$(sum_direct "$src" 10M 512K)" "extent 10M:50M:512K"
expect_eq "$(sum_direct "$dst" 51M 13M)" "$(sum_zero 13M)" "tail untouched"

note "the NVMe namespace under the LUN holds the same bytes"
[[ -n ${NVME1N1:-} ]] && expect_eq "$(sum_direct "$NVME1N1" 44M 2M)" "$(sum_direct "$src" 4M 2M)" "through nvme"

note "fileio → iblock (different backstores, one target)"
fill_random "$LUN2_SD" 8M 4M seed-fileio
offcopy copy "$LUN2_SD" "$dst" 8M:56M:4M --mode offload --json
expect_eq "$(backend_bytes "$(report_json)" scsi-xcopy)" $((4 << 20)) "fileio→iblock scsi-xcopy bytes"
expect_eq "$(sum_direct "$dst" 56M 4M)" "$(sum_random 4M seed-fileio)" "fileio→iblock bytes"

note "within one iblock LUN"
offcopy copy "$src" "$src" 1M:48M:3M --mode offload --json
expect_eq "$(backend_bytes "$(report_json)" scsi-xcopy)" $((3 << 20)) "same-LU scsi-xcopy bytes"
expect_eq "$(sum_direct "$src" 48M 3M)" "$(sum_direct "$src" 1M 3M)" "same-LU bytes"
note "scsi_xcopy_iblock: ok"
