#!/usr/bin/python3
"""Helpers for the stacked-device scenarios (tests/vm/scenarios/stack_*.sh), stdlib only.

A scenario is one python process (each start costs about a second under emulation): it builds its
stack with the real tools (lvm2, dmsetup, sfdisk, sgdisk, losetup), runs offload-copy, and checks
every copy the same way:

  * before the copy, the source, the destination and every medium under them are read whole
    (O_DIRECT);
  * after it, the destination read back through itself -- buffered (what any program sees; a stale
    page cache over the medium would show here) and O_DIRECT -- must be its old bytes with the
    extents' source bytes in place;
  * and every medium must be unchanged outside the destination's own ranges on it, which come from
    the kernel (dmsetup table, or a partition's sysfs start and size), parsed here from the formats
    the kernel documents -- never from offload-copy's own resolution.

LVM runs without udev (the guest has none): configuration in $LVM_SYSTEM_DIR (a tmpfs directory),
device nodes made by libdevmapper itself (DM_DISABLE_UDEV=1).
"""

import json
import mmap
import os
import random
import subprocess
import sys

OFFCOPY = os.environ.get("OFFCOPY_BIN", "")
CHUNK = 4 << 20
LVM_DIR = "/tmp/stack-lvm"
ENV = dict(os.environ, DM_DISABLE_UDEV="1", LVM_SYSTEM_DIR=LVM_DIR, LVM_SUPPRESS_FD_WARNINGS="1")


class Failed(Exception):
    pass


def note(msg):
    print(f"--- {msg}", flush=True)


def ok(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


def sh(*args, check=True, input=None):
    r = subprocess.run(list(args), capture_output=True, text=True, env=ENV, input=input)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def run(main):
    """Runs a scenario's main(); exit 0 pass, 1 fail (with the reason), 77 skip."""
    if not OFFCOPY or not os.access(OFFCOPY, os.X_OK):
        print("SKIP: OFFCOPY_BIN is not an executable", file=sys.stderr)
        sys.exit(77)
    try:
        main()
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("pass", flush=True)


# ---- offload-copy --------------------------------------------------------------------------------

def offcopy(*args):
    """Runs offload-copy ARGS --json: (exit status, the JSON object)."""
    r = subprocess.run([OFFCOPY, *args, "--json"], capture_output=True, text=True, env=ENV)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise Failed(f"offload-copy {' '.join(args)}: not JSON (exit {r.returncode}): {r.stdout!r} {r.stderr!r}")
    return r.returncode, doc


def backends(doc):
    return {k: v["bytes"] for k, v in doc.get("backends", {}).items() if v.get("bytes")}


# ---- data ---------------------------------------------------------------------------------------

def size_of(dev):
    fd = os.open(dev, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def read_dev(dev, direct=True, offset=0, length=None):
    """Bytes of a device: through the page cache (direct=False) or around it (O_DIRECT)."""
    if length is None:
        length = size_of(dev) - offset
    out = bytearray(length)
    view = memoryview(out)
    fd = os.open(dev, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    try:
        buf = mmap.mmap(-1, CHUNK) if direct else None  # page aligned, as O_DIRECT needs
        done = 0
        while done < length:
            want = min(CHUNK, length - done)
            if direct:
                n = os.preadv(fd, [memoryview(buf)[:want]], offset + done)
                view[done: done + n] = buf[:n]
            else:
                n = os.preadv(fd, [view[done: done + want]], offset + done)
            if n <= 0:
                raise Failed(f"{dev}: short read at {offset + done}")
            done += n
        return bytes(out)
    finally:
        os.close(fd)


def write_dev(dev, offset, data):
    """O_DIRECT write of `data` (a multiple of 4 KiB) at `offset`."""
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, CHUNK)
        done = 0
        while done < len(data):
            n = min(CHUNK, len(data) - done)
            buf[:n] = data[done: done + n]
            w = os.pwritev(fd, [memoryview(buf)[:n]], offset + done)
            if w != n:
                raise Failed(f"{dev}: short write")
            done += n
        os.fsync(fd)
    finally:
        os.close(fd)


def fill(dev, seed, offset=0, length=None):
    if length is None:
        length = size_of(dev) - offset
    write_dev(dev, offset, random.Random(seed).randbytes(length))


def devno(dev):
    st = os.stat(dev)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def node_of(majmin):
    """/dev/NAME of a MAJOR:MINOR, from sysfs."""
    return "/dev/" + os.path.basename(os.path.realpath(f"/sys/dev/block/{majmin}"))


def mapped_ranges(dev):
    """The destination's own bytes on the devices below it: [(device, start, length)], from the
    kernel's dmsetup table (linear, striped, multipath: Documentation/admin-guide/device-mapper)
    or a partition's sysfs start and size; recursively down to devices that map nothing."""
    majmin = devno(dev)
    sysfs = f"/sys/dev/block/{majmin}"
    if os.path.exists(f"{sysfs}/partition"):
        start = int(open(f"{sysfs}/start").read()) * 512
        size = int(open(f"{sysfs}/size").read()) * 512
        parent = node_of(open(os.path.realpath(f"{sysfs}/..") + "/dev").read().strip())
        return [(parent, start, size)]
    if not os.path.exists(f"{sysfs}/dm"):
        return [(dev, 0, size_of(dev))]
    out = []
    table = sh("dmsetup", "table", "-j", majmin.split(":")[0], "-m", majmin.split(":")[1]).stdout
    for line in table.splitlines():
        w = line.split()
        start, length, kind, args = int(w[0]) * 512, int(w[1]) * 512, w[2], w[3:]
        if kind == "linear":
            below = node_of(args[0])
            for d, s, n in shift(mapped_ranges(below), int(args[1]) * 512, length):
                out.append((d, s, n))
        elif kind == "striped":
            stripes, chunk = int(args[0]), int(args[1]) * 512
            for i in range(stripes):
                below = node_of(args[2 + 2 * i])
                per = length // stripes
                out += shift(mapped_ranges(below), int(args[3 + 2 * i]) * 512, per)
        elif kind == "multipath":
            for a in args:
                if ":" in a:
                    out += mapped_ranges(node_of(a))
        else:  # delay and the others: their first device, from the given offset
            devs = [a for a in args if ":" in a or a.startswith("/dev/")]
            below = devs[0] if devs[0].startswith("/dev/") else node_of(devs[0])
            off = int(args[args.index(devs[0]) + 1]) * 512
            out += shift(mapped_ranges(below), off, length)
    return out


def shift(ranges, offset, length):
    """The part [offset, offset + length) of a device mapped by `ranges` (in order, contiguous)."""
    out, pos = [], 0
    for d, s, n in ranges:
        lo, hi = max(pos, offset), min(pos + n, offset + length)
        if lo < hi:
            out.append((d, s + lo - pos, hi - lo))
        pos += n
    return out


class Snapshot:
    """Every byte of the given devices, before a copy."""

    def __init__(self, *devs):
        self.bytes = {d: read_dev(d) for d in dict.fromkeys(devs)}

    def check_copy(self, src, dst, extents, media, what):
        """dst now holds its old bytes with each extent's source bytes in place (memmove of each
        extent in turn), read buffered and O_DIRECT; every medium is unchanged outside dst's own
        ranges on it."""
        expect = bytearray(self.bytes[dst])
        source = self.bytes[src]
        for s, d, n in extents:
            piece = (bytes(expect) if src == dst else source)[s: s + n]
            expect[d: d + n] = piece
        expect = bytes(expect)
        ok(read_dev(dst, direct=False) == expect, f"{what}: {dst} read back buffered")
        ok(read_dev(dst, direct=True) == expect, f"{what}: {dst} read back O_DIRECT")
        own = mapped_ranges(dst)
        for m in media:
            after = read_dev(m)
            before = self.bytes[m]
            mine = sorted((s, n) for d, s, n in own if os.path.realpath(d) == os.path.realpath(m))
            pos = 0
            for s, n in mine + [(len(after), 0)]:
                if after[pos:s] != before[pos:s]:
                    bad = next(i for i in range(pos, s) if after[i] != before[i])
                    raise Failed(f"{what}: {m} changed at byte {bad}, outside {dst}")
                pos = max(pos, s + n)
            print(f"ok: {what}: {m} unchanged outside {dst} ({len(mine)} ranges of it there)", flush=True)

    def check_unchanged(self, devs, what):
        for d in devs:
            ok(read_dev(d) == self.bytes[d], f"{what}: {d} unchanged")


def copy_checked(src, dst, extents, media, backend, *opts):
    """`offload-copy copy SRC DST S:D:N... OPTS`, which BACKEND must carry whole, checked by
    Snapshot.check_copy over `media`. The destination's pages are cached through `dst` first: they
    must not survive the copy."""
    snap = Snapshot(src, dst, *media)
    read_dev(dst, direct=False)
    rc, r = offcopy("copy", src, dst, *[f"{s}:{d}:{n}" for s, d, n in extents], *opts)
    total = sum(n for _, _, n in extents)
    ok(rc == 0 and backends(r) == {backend: total},
       f"{src} -> {dst}: {backend} carried {total} bytes ({backends(r)}, {r.get('error')})")
    snap.check_copy(src, dst, extents, media, f"{src} -> {dst}")


# ---- stacks -------------------------------------------------------------------------------------

def lvm_setup():
    os.makedirs(LVM_DIR, exist_ok=True)
    with open(f"{LVM_DIR}/lvm.conf", "w") as f:
        f.write("devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 scan_lvs = 0 }\n"
                "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
                "backup { backup = 0 archive = 0 }\n"
                "global { use_lvmpolld = 0 }\n")


def lvm(*args):
    return sh("lvm", *args)


def dm_create(name, table):
    sh("dmsetup", "create", name, input=table + "\n")
    return f"/dev/mapper/{name}"


def sectors(dev):
    return size_of(dev) // 512
