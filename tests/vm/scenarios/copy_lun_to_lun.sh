#!/bin/bash
# offload-copy between two LIO LUNs on one loopback session: LIO's copy manager implements
# EXTENDED COPY (LID1), so --mode offload must be carried by the scsi-xcopy backend; auto mode
# must land the same bytes whatever it chooses.
# vm-lio: name=lun0 backstore=fileio size=64M
# vm-lio: name=lun1 backstore=fileio size=64M
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: lio_pair
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$LUN0_SD
dst=$LUN1_SD

fill_random "$src" 0 16M seed-lun
expect_data "pattern $src 0 16M seed-lun source after fill"

note "auto mode, 3 extents, 7 MiB"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:8M:4M 4M:20M:2M 12M:30M:1M --verify --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((7 << 20))
expect_data "same $dst 8M $src 0 4M extent 0:8M:4M" "same $dst 20M $src 4M 2M extent 4M:20M:2M" \
    "same $dst 30M $src 12M 1M extent 12M:30M:1M" "zero $dst 0 8M head 0..8M untouched" \
    "zero $dst 12M 8M gap 12M..20M untouched" "zero $dst 22M 8M gap 22M..30M untouched" \
    "zero $dst 31M 33M tail 31M..64M untouched"

note "--mode offload, 6 MiB: EXTENDED COPY must carry it"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 2M:40M:6M --mode offload --verify --json
[[ $rc != 3 ]] || fail "--mode offload: offload reported impossible between two LIO LUNs"
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((6 << 20))
expect_eq "$(backend_bytes "$report" scsi-xcopy)" $((6 << 20)) "backends.scsi-xcopy.bytes"
expect_data "same $dst 40M $src 2M 6M extent 2M:40M:6M"
note "copy_lun_to_lun: ok"
