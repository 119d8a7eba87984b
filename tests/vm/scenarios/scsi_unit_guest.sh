#!/bin/bash
# The SCSI backend's own guest tests (tests/unit/scsi/guest_test.cpp, built as guest_scsi) against two LIO LUNs:
# discovery on /dev/sdX and /dev/sgN, an XCOPY session LUN→LUN, LIO's 26/08 for two segments,
# the engine in --mode offload through scsi-xcopy, and POPULATE TOKEN refused as not supported.
# vm-lio: name=lun0 backstore=fileio size=64M
# vm-lio: name=lun1 backstore=fileio size=64M
# vm-require: OFFCOPY_BUILD
# vm-timeout: 180
# vm-group: lio_pair
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bin=$OFFCOPY_BUILD/tests/guest_scsi
[[ -x $bin ]] || skip "$bin not built"
OFFCOPY_SCSI_SRC=$LUN0_SD OFFCOPY_SCSI_SRC_SG=$LUN0_SG OFFCOPY_SCSI_DST=$LUN1_SD \
    "$bin" --success=false || fail "guest_scsi failed"
note "scsi_unit_guest: ok"
