#!/bin/bash
# Protection-information reference tags on QEMU 10's controller, with end-to-end checking on
# (tests/unit/nvme/guest_pi_test.cpp, built as guest_nvme): 16-byte PI (64-bit guard, 48-bit
# reference tag) Type 1 and 8-byte PI Type 1, both above 2^32 blocks — our Copy's initial
# reference tag (ILBRT in CDW14 + CDW3) and a format 1h/0h range's EILBRT pass a PRCHK read or a
# source-checked Copy, a wrong expected tag is refused (0x181); 16-byte PI Type 2: an arbitrary
# 48-bit tag in format 1h, most-significant byte first, passes, and wrong tags (one bit, or the
# byte-swapped tag) fail the per-block check with End-to-end Reference Tag Check Error (0x284).
# The two large namespaces are sparse images: 2113 GiB / (512 + 16) and 2090 GiB / (512 + 8) B
# give 2^32 + ~2.0M and 2^32 + ~20.6M blocks; a few hundred KiB are ever written. Alone in its
# boot: a group's reset (Write Zeroes over every namespace) would have to zero 2^32 blocks.
# vm-nvme: ctrl=0 nsid=1 size=2113G lbs=512 ms=16 mset=0 pi=1 pif=2 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=2090G lbs=512 ms=8 mset=0 pi=1 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=3 size=16M lbs=512 ms=16 mset=0 pi=2 pif=2 mssrl=128 mcl=128 msrc=127
# vm-require: OFFCOPY_BUILD
# vm-timeout: 240
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bin=$OFFCOPY_BUILD/tests/guest_nvme
[[ -x $bin ]] || skip "$bin not built"
OFFCOPY_PI16_T1=$NVME0N1 OFFCOPY_PI8_T1=$NVME0N2 OFFCOPY_PI16_T2=$NVME0N3 \
    "$bin" --success=false || fail "guest_nvme failed"
note "nvme_pi_tags: ok"
