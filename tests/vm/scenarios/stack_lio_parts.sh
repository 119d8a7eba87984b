#!/bin/bash
# MBR and GPT partitions on LIO LUNs copied by EXTENDED COPY: partition to partition of one LU
# (one CSCD) and to a GPT partition of another LU. The resolution gives the XCOPY backend the LUs
# and LU-absolute LBAs (it refused partitions before); scsi-xcopy carries every byte, --mode
# offload succeeds, each destination partition reads back right (buffered and O_DIRECT) and both
# LUs are unchanged outside it.
# vm-lio: name=lun0 backstore=fileio size=64M paths=2
# vm-lio: name=lun1 backstore=fileio size=64M
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: stack_lio
exec /usr/bin/python3 -S - <<'EOF'
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.environ["SCENARIO"])))
from stacklib import *

M = 1 << 20
lun0, lun1 = os.environ["LUN0_SD"], os.environ["LUN1_SD"]
media = [lun0, lun1]


def wait_for(*paths):
    for _ in range(50):
        if all(os.path.exists(p) for p in paths):
            return
        time.sleep(0.1)
    raise Failed(f"partitions did not appear: {paths}")


def main():
    note("MBR on lun0 (sfdisk): p1 at 1 MiB, p2 at 22 MiB, 20 MiB each; GPT on lun1 (sgdisk): p1 at 1 MiB")
    sh("sfdisk", "-q", lun0, input="label: dos\nstart=2048, size=40960\nstart=45056, size=40960\n")
    sh("sgdisk", "-o", "-n", "1:2048:+20M", lun1)
    sh("blockdev", "--rereadpt", lun0)
    sh("blockdev", "--rereadpt", lun1)
    p1, p2, g1 = lun0 + "1", lun0 + "2", lun1 + "1"
    wait_for(p1, p2, g1)
    fill(p1, 11)
    fill(p2, 12)
    fill(g1, 13)

    rc, p = offcopy("probe", p2)
    ok(rc == 0 and p["pieces"][0]["medium"] == lun0 and p["pieces"][0]["medium_offset_bytes"] == 22 * M,
       "probe: p2 is one piece at 22 MiB of the LU")
    ok(any(o["backend"] == "scsi-xcopy" and o["available"] for o in p["media"][0]["offload"]),
       "probe: the LU offers scsi-xcopy")

    # The destination's pages are cached through the partition first (copy_checked).
    note("partition -> partition of one LU")
    copy_checked(p1, p2, [(0, 0, 8 * M)], media, "scsi-xcopy")
    copy_checked(p1, p2, [(M, 9 * M, 4 * M)], media, "scsi-xcopy", "--mode", "offload")
    note("MBR partition -> GPT partition of another LU")
    copy_checked(p1, g1, [(2 * M, 4 * M, 6 * M)], media, "scsi-xcopy", "--mode", "offload")


run(main)
EOF
