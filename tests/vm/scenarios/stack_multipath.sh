#!/bin/bash
# dm-multipath over two paths to one LIO LU (two tcm_loop targets exporting the same backstore,
# `# vm-lio: ... paths=2`), built with dmsetup (round-robin over both paths). The multipath device
# resolves to the LU behind it through an active path: copies within it and to another LU go out as
# EXTENDED COPY, and read back right through the multipath device. The two paths given directly are
# two doors to one medium (both report the LU's designator): an overlapping copy between them is
# ordered on the LU, and refused by --no-overlap.
# vm-lio: name=lun0 backstore=fileio size=64M paths=2
# vm-lio: name=lun1 backstore=fileio size=64M
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: stack_lio
exec /usr/bin/python3 -S - <<'EOF'
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.environ["SCENARIO"])))
from stacklib import *

M = 1 << 20
path1, path2, lun1 = os.environ["LUN0_SD"], os.environ["LUN0_SD2"], os.environ["LUN1_SD"]


def main():
    ok(open(f"/sys/block/{os.path.basename(path1)}/device/wwid").read() ==
       open(f"/sys/block/{os.path.basename(path2)}/device/wwid").read(), "both paths report one LU designator")
    fill(path1, 21, 0, 16 * M)
    fill(lun1, 22, 0, 16 * M)
    mp = dm_create("mpatha", f"0 {sectors(path1)} multipath 0 0 1 1 round-robin 0 2 1 "
                             f"{devno(path1)} 1 {devno(path2)} 1")

    rc, p = offcopy("probe", mp)
    ok(rc == 0 and p["pieces_total"] == 1, "probe: one piece")
    ok(p["pieces"][0]["medium"] == path1 and "dm multipath" in p["pieces"][0]["via"],
       f"probe: on the LU through active path 1 ({p['pieces'][0]})")

    # The destination's pages are cached through the multipath device first (copy_checked).
    note("within the multipath device, then to another LU")
    copy_checked(mp, mp, [(0, 16 * M, 8 * M)], [path1, lun1], "scsi-xcopy", "--mode", "offload")
    copy_checked(mp, lun1, [(M, 32 * M, 8 * M)], [path1, lun1], "scsi-xcopy", "--mode", "offload")
    sh("dmsetup", "remove", "mpatha")

    note("the two paths as two doors to one medium")
    rc, r = offcopy("copy", path1, path2, "0:4096:1M", "--no-overlap")
    ok(rc == 2 and r["error"]["code"] == "overlap", f"--no-overlap: exit 2, overlap ({r.get('error')})")
    rc, plan = offcopy("plan", path1, path2, "0:4096:1M")
    ok(rc == 0 and plan["ordered"], "plan: ordered (the paths share the LU's bytes)")
    snap = Snapshot(path2)
    rc, r = offcopy("copy", path1, path2, "0:4096:1M")
    ok(rc == 0, f"copy: exit 0 ({r.get('error')})")
    snap.check_copy(path2, path2, [(0, 4096, M)], [path2], "path 1 -> path 2, moved up by 4 KiB on the LU")


run(main)
EOF
