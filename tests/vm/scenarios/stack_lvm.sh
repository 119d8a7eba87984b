#!/bin/bash
# LVM with the real lvm2 tools: one volume group over two NVMe namespaces of one controller, linear
# LVs on each, an LV split over both PVs, a striped LV (2 x 64 KiB). LV -> LV on one namespace
# (NVMe Copy, format 0h) and across namespaces (2h), the split and the striped LV piece by piece:
# nvme-copy carries every byte, --mode offload succeeds, and each destination LV reads back right
# (buffered and O_DIRECT) with both namespaces unchanged outside it. probe and plan show the pieces.
# vm-nvme: ctrl=0 nsid=1 size=48M lbs=512
# vm-nvme: ctrl=0 nsid=2 size=48M lbs=512
# vm-nvme: ctrl=0 nsid=3 size=16M lbs=4096
# vm-require: OFFCOPY_BIN
# vm-timeout: 400
# vm-group: stack_nvme
exec /usr/bin/python3 -S - <<'EOF'
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.environ["SCENARIO"])))
from stacklib import *

M = 1 << 20
ns1, ns2 = os.environ["NVME0N1"], os.environ["NVME0N2"]
media = [ns1, ns2]


def main():
    lvm_setup()
    note("volume group vg over both namespaces (1 MiB extents)")
    lvm("pvcreate", "-ff", "-y", ns1, ns2)
    lvm("vgcreate", "-s", "1M", "vg", ns1, ns2)
    new = ["-y", "-W", "n", "-Z", "n"]
    lvm("lvcreate", *new, "-n", "a", "-L", "8M", "vg", ns1)
    lvm("lvcreate", *new, "-n", "b", "-L", "8M", "vg", ns1)
    lvm("lvcreate", *new, "-n", "c", "-L", "8M", "vg", ns2)
    lvm("lvcreate", *new, "-n", "split", "-L", "4M", "vg", ns1)
    lvm("lvextend", "-y", "-L", "+4M", "vg/split", ns2)
    lvm("lvcreate", *new, "-n", "stripe", "-i", "2", "-I", "64k", "-L", "8M", "vg", ns1, ns2)
    lv = {n: f"/dev/mapper/vg-{n}" for n in ("a", "b", "c", "split", "stripe")}
    for seed, n in enumerate(lv):
        fill(lv[n], 100 + seed)

    note("probe: the split LV is two pieces on two namespaces, each offering NVMe Copy")
    rc, p = offcopy("probe", lv["split"])
    ok(rc == 0 and p["pieces_total"] == 2, "split LV: 2 pieces")
    ok([x["medium"] for x in p["pieces"]] == [ns1, ns2], "split LV: on ns1 then ns2")
    ok(all("dm linear" in x["via"] for x in p["pieces"]), "split LV: via dm linear")
    ok(len(p["media"]) == 2 and all(any(o["backend"] == "nvme-copy" and o["available"] for o in m["offload"])
                                    for m in p["media"]), "both media offer nvme-copy")
    rc, p = offcopy("probe", lv["stripe"])
    ok(rc == 0 and p["pieces_total"] == 128, "striped LV: 128 chunks of 64 KiB")

    def copy(src, dst, extents, *opts):
        snap = Snapshot(lv[src], lv[dst], *media)
        args = [f"{s}:{d}:{n}" for s, d, n in extents]
        rc, r = offcopy("copy", lv[src], lv[dst], *args, *opts)
        total = sum(n for _, _, n in extents)
        ok(rc == 0, f"{src} -> {dst} {' '.join(opts)}: exit 0 ({r.get('error')})")
        ok(backends(r) == {"nvme-copy": total}, f"{src} -> {dst}: nvme-copy carried all {total} bytes ({backends(r)})")
        snap.check_copy(lv[src], lv[dst], extents, media, f"{src} -> {dst}")
        return r

    note("LV -> LV on one namespace (format 0h), then --mode offload")
    copy("a", "b", [(0, 0, 8 * M)])
    copy("a", "b", [(M, 3 * M, 2 * M), (5 * M, 0, 512 * 1024)], "--mode", "offload")
    note("LV -> LV across namespaces (format 2h)")
    copy("a", "c", [(0, 0, 8 * M)], "--mode", "offload")
    note("the split LV -> c: two pieces, two pairs of namespaces")
    rc, plan = offcopy("plan", lv["split"], lv["c"])
    ok(rc == 0 and len(plan["parts"]) == 2, "plan: 2 parts")
    ok([(x["source_medium"], x["destination_medium"], x["backend"]) for x in plan["parts"]] ==
       [(ns1, ns2, "nvme-copy"), (ns2, ns2, "nvme-copy")], "plan: ns1 -> ns2 and ns2 -> ns2, both nvme-copy")
    copy("split", "c", [(0, 0, 8 * M)], "--mode", "offload")
    note("striped LV -> b and back, across chunk boundaries")
    copy("stripe", "b", [(0, 0, 8 * M)])
    copy("b", "stripe", [(96 * 1024, 32 * 1024, M), (4 * M, 4 * M + 64 * 1024, 2 * M)], "--mode", "offload")
    note("an LV and its own PV are one medium")
    a_start = int(sh("dmsetup", "table", "vg-a").stdout.split()[4]) * 512  # "0 LEN linear MAJ:MIN START"
    rc, r = offcopy("plan", lv["a"], ns1, f"0:{a_start + M}:2M", "--no-overlap")
    ok(rc == 2 and r["error"]["code"] == "overlap", f"LV a onto its own bytes of the PV: --no-overlap refuses ({r.get('error')})")
    rc, r = offcopy("plan", lv["a"], ns1, f"0:{a_start + M}:2M")
    ok(rc == 0 and r["ordered"], "without --no-overlap: an ordered plan (memmove on the namespace)")
    lvm("vgchange", "-an", "vg")


run(main)
EOF
