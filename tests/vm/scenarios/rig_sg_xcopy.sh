#!/bin/bash
# Rig self-test: SCSI EXTENDED COPY (LID1) between two LIO LUNs with sg3-utils' sg_xcopy, no
# offcopy involved. Proves the LUNs have distinct NAA designators (vpd_unit_serial set, serials
# differing early) and share the loopback session, so LIO's copy manager accepts the pair.
# vm-lio: name=lun0 backstore=fileio size=64M
# vm-lio: name=lun1 backstore=fileio size=64M
# vm-timeout: 180
# vm-group: lio_pair
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

note "lun0 $LUN0_SD $LUN0_SG, lun1 $LUN1_SD $LUN1_SG"
expect_ne "$LUN0_SD" "$LUN1_SD" "the two LUNs are different disks"
expect_eq "$(dev_size "$LUN0_SD")" $((64 << 20)) "size of lun0"
expect_eq "$(dev_size "$LUN1_SD")" $((64 << 20)) "size of lun1"
# The LU's NAA (type 6, IEEE registered extended) from VPD 0x83, logical-unit designators only.
naa0=$(sg_vpd --page=di_lu "$LUN0_SD" | grep -m1 -o '0x6[0-9a-f]*' || true)
naa1=$(sg_vpd --page=di_lu "$LUN1_SD" | grep -m1 -o '0x6[0-9a-f]*' || true)
[[ -n $naa0 ]] || fail "lun0 has no NAA designator"
expect_ne "$naa0" "$naa1" "NAA of lun0 vs lun1"

# 2 MiB random at 1 MiB of lun0, XCOPY to 8 MiB of lun1 (the copy manager splits in segments).
fill_random "$LUN0_SD" 1M 2M seed-xcopy
expect_data "pattern $LUN0_SD 1M 2M seed-xcopy source after fill" \
    "zero $LUN1_SD 8M 2M destination before copy"
sg_xcopy if="$LUN0_SG" of="$LUN1_SG" bs=512 skip=2048 seek=16384 count=4096 ||
    fail "sg_xcopy exited $?"
# The data landed, and nothing else on lun1 changed.
expect_data "pattern $LUN1_SD 8M 2M seed-xcopy destination after sg_xcopy" \
    "zero $LUN1_SD 0 8M lun1 before the destination" "zero $LUN1_SD 10M 54M lun1 after the destination"
note "rig_sg_xcopy: ok"
