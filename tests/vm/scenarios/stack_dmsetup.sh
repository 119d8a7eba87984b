#!/bin/bash
# dmsetup tables of several pieces: a 3-piece linear table copied onto a 2-piece one (cut where
# either side's pieces end: 4 pairs of namespaces, all NVMe Copy); a table mixing a namespace with
# a loop device (auto: nvme-copy and buffered both used, bytes right; --mode offload: exit 3,
# nothing written); an opaque target, dm-delay (auto: a fallback whose reason names "dm delay";
# offload: exit 3); a block-size mismatch below two 4 KiB tables (512 B and 4 KiB namespaces mixed:
# the mismatched pairs fall back, the matched one offloads; offload: exit 3). Every destination read
# back buffered and O_DIRECT, every namespace unchanged outside it. A suspended table is refused
# with nothing written; a table reloaded while a copy runs stops it, reported with the bytes done.
# vm-nvme: ctrl=0 nsid=1 size=48M lbs=512
# vm-nvme: ctrl=0 nsid=2 size=48M lbs=512
# vm-nvme: ctrl=0 nsid=3 size=16M lbs=4096
# vm-require: OFFCOPY_BIN
# vm-timeout: 400
# vm-group: stack_nvme
exec /usr/bin/python3 -S - <<'EOF'
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.environ["SCENARIO"])))
from stacklib import *

M = 1 << 20
ns1, ns2, ns3 = os.environ["NVME0N1"], os.environ["NVME0N2"], os.environ["NVME0N3"]
media = [ns1, ns2, ns3]


def table(*pieces):
    """Linear pieces (device, start byte, length) -> a dm table."""
    lines, at = [], 0
    for dev, start, n in pieces:
        lines.append(f"{at // 512} {n // 512} linear {devno(dev)} {start // 512}")
        at += n
    return "\n".join(lines)


def main():
    note("sources on the namespaces: random bytes where the source tables map them")
    fill(ns1, 1, 0, 48 * M)
    fill(ns2, 2, 0, 8 * M)
    fill(ns3, 3, 0, 4 * M)
    three = dm_create("three", table((ns1, 8 * M, 4 * M), (ns2, 0, 4 * M), (ns1, 20 * M, 4 * M)))
    two = dm_create("two", table((ns2, 8 * M, 6 * M), (ns1, 32 * M, 6 * M)))

    note("3 pieces -> 2 pieces: cut at 4, 6 and 8 MiB, four pairs of namespaces, NVMe Copy each")
    rc, plan = offcopy("plan", three, two)
    ok(rc == 0, "plan: exit 0")
    ok([(x["source_medium"], x["destination_medium"]) for x in plan["parts"]] ==
       [(ns1, ns2), (ns2, ns2), (ns2, ns1), (ns1, ns1)], "plan: 4 parts, in the pieces' order")
    ok(all(x["backend"] == "nvme-copy" for x in plan["parts"]), "plan: every part nvme-copy")
    snap = Snapshot(three, two, *media)
    rc, r = offcopy("copy", three, two, "--mode", "offload")
    ok(rc == 0 and backends(r) == {"nvme-copy": 12 * M}, f"copy: offloaded, 12 MiB ({backends(r)}, {r.get('error')})")
    snap.check_copy(three, two, [(0, 0, 12 * M)], media, "three -> two")

    note("a table mixing a namespace and a loop device")
    img = "/tmp/stack-loop.img"
    with open(img, "wb") as f:
        f.write(random.Random(4).randbytes(8 * M))
    loop = sh("losetup", "-f", "--show", img).stdout.strip()
    mixed = dm_create("mixed", table((ns1, 24 * M, 4 * M), (loop, 0, 4 * M)))
    snap = Snapshot(mixed, two, *media)
    rc, r = offcopy("copy", mixed, two, "0:0:8M", "--mode", "offload")
    ok(rc == 3, f"--mode offload: exit 3 ({r.get('error', {}).get('message')})")
    snap.check_unchanged(media, "offload refused")
    rc, r = offcopy("copy", mixed, two, "0:0:8M")
    ok(rc == 0, f"auto: exit 0 ({r.get('error')})")
    ok(backends(r) == {"nvme-copy": 4 * M, "buffered": 4 * M}, f"auto: nvme-copy 4 MiB, buffered 4 MiB ({backends(r)})")
    snap.check_copy(mixed, two, [(0, 0, 8 * M)], media, "mixed -> two")

    note("an opaque target: dm-delay over a namespace")
    delay = dm_create("slow", f"0 8192 delay {devno(ns1)} {28 * M // 512} 0")
    snap = Snapshot(delay, two, *media)
    rc, r = offcopy("copy", delay, two, "0:1M:4M", "--mode", "offload")
    ok(rc == 3 and "dm delay" in r["error"]["message"], f"--mode offload: exit 3 naming dm delay ({r['error']['message']})")
    snap.check_unchanged(media, "offload refused")
    rc, r = offcopy("copy", delay, two, "0:1M:4M")
    ok(rc == 0 and backends(r) == {"buffered": 4 * M}, f"auto: buffered ({backends(r)}, {r.get('error')})")
    ok("dm delay" in r.get("fallback_reason", ""), f"auto: the fallback names dm delay ({r.get('fallback_reason')})")
    snap.check_copy(delay, two, [(0, M, 4 * M)], media, "slow -> two")

    note("a block-size mismatch below two 4 KiB tables")
    mixed_lbs = dm_create("lbs_src", table((ns1, 36 * M, 4 * M), (ns3, 0, 4 * M), (ns1, 40 * M, 4 * M)))
    other_lbs = dm_create("lbs_dst", table((ns3, 8 * M, 4 * M), (ns2, 16 * M, 4 * M), (ns2, 24 * M, 4 * M)))
    ok(sh("blockdev", "--getss", mixed_lbs).stdout.strip() == "4096", "the tables have 4 KiB blocks")
    snap = Snapshot(mixed_lbs, other_lbs, *media)
    rc, r = offcopy("copy", mixed_lbs, other_lbs, "--mode", "offload")
    ok(rc == 3, f"--mode offload: exit 3 ({r.get('error', {}).get('message')})")
    snap.check_unchanged(media, "offload refused")
    rc, r = offcopy("copy", mixed_lbs, other_lbs)
    ok(rc == 0, f"auto: exit 0 ({r.get('error')})")
    ok(backends(r) == {"nvme-copy": 4 * M, "buffered": 8 * M},
       f"auto: the 512 B -> 512 B piece offloaded, the mismatched ones buffered ({backends(r)})")
    ok(any("512" in x and "4096" in x for x in r.get("fallback_reasons", [])),
       f"auto: the reason names both block sizes ({r.get('fallback_reasons')})")
    snap.check_copy(mixed_lbs, other_lbs, [(0, 0, 12 * M)], media, "lbs_src -> lbs_dst")

    note("a suspended table is refused before anything is written")
    sh("dmsetup", "suspend", "two")
    snap = Snapshot(*media)
    rc, r = offcopy("copy", three, two, "0:0:1M")
    ok(rc == 2 and r["error"]["code"] == "busy" and "suspended" in r["error"]["message"],
       f"suspended destination: exit 2, busy ({r.get('error')})")
    snap.check_unchanged(media, "suspended destination")
    sh("dmsetup", "resume", "two")

    note("a table reloaded while the copy runs: stopped, reported with the bytes done")
    # A slow source (dm-delay, 50 ms per I/O, read 64 KiB at a time: 64 reads, over 3 s) so the
    # reload lands mid-copy; the copy writes the namespaces directly, behind `two`. The reload
    # waits for the first 64 KiB to reach `two`'s first piece (ns2 at 8 MiB), not for a guessed time.
    slow = dm_create("slow50", f"0 8192 delay {devno(ns1)} {28 * M // 512} 50")
    first = read_dev(ns1, True, 28 * M, 64 * 1024)
    ok(read_dev(ns2, True, 8 * M, 64 * 1024) != first, "mid-copy: the destination does not hold the source yet")
    copy = subprocess.Popen([OFFCOPY, "copy", slow, two, "0:0:4M", "--buffer-size", "64K", "--buffers", "1",
                             "--json"], stdout=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 60
    while read_dev(ns2, True, 8 * M, 64 * 1024) != first and copy.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    sh("dmsetup", "reload", "two", input=table((ns2, 10 * M, 6 * M), (ns1, 32 * M, 6 * M)) + "\n")
    sh("dmsetup", "resume", "two")
    out, _ = copy.communicate(timeout=120)
    r = json.loads(out)
    ok(copy.returncode == 1 and r["error"]["code"] == "busy" and "during the copy" in r["error"]["message"],
       f"reloaded mid-copy: exit 1, busy, during the copy ({r.get('error', {}).get('message', '')[:160]})")
    done = r["bytes_copied"]
    ok(0 < done < 4 * M, f"reloaded mid-copy: stopped part way, {done} bytes reported")
    ok(read_dev(ns2, True, 8 * M, done) == read_dev(ns1, True, 28 * M, done),
       "reloaded mid-copy: the bytes reported are on the medium the plan named")

    sh("dmsetup", "remove", "mixed")
    sh("losetup", "-d", loop)


run(main)
EOF
