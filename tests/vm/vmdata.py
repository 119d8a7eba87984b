#!/usr/bin/python3
"""Data helpers for guest scenarios (used through tests/vm/lib.sh), in one process each.

Under emulation a `dd | sha256sum` pipeline moves ~2 MB/s and every python start costs about a
second, so the scenarios' writes and checks happen here: O_DIRECT I/O (an offloaded copy bypasses
the page cache), memcmp instead of hashing where possible, several checks per start.

    vmdata.py fill DEV OFF LEN SEED          write the seeded pattern
    vmdata.py sum DEV OFF LEN                sha256 of a range
    vmdata.py sum-pattern LEN SEED           sha256 of the pattern
    vmdata.py sum-zero LEN                   sha256 of zeros
    vmdata.py count-same DEV1 OFF1 DEV2 OFF2 LEN
                                             bytes in 4 KiB blocks equal in both ranges, and the
                                             runs of unequal blocks: "SAME_BYTES RUNS FIRST_DIFF"
    vmdata.py kill-on-commit JOURNAL OUT CMD...
                                             runs CMD, SIGKILL once JOURNAL holds a record after its
                                             header: "SECONDS_TO_KILL RECORDS"
    vmdata.py check CHECK...                 each CHECK one argument, words separated by spaces:
        "same DEV1 OFF1 DEV2 OFF2 LEN WHAT..."   the two ranges are equal
        "zero DEV OFF LEN WHAT..."               the range is all zeros
        "pattern DEV OFF LEN SEED WHAT..."       the range holds the pattern of fill ... SEED
      prints "ok: WHAT" per check; exit 1 after the first mismatch (with where it differs).

Offsets and lengths take K, M, G, T (powers of 1024) and s (512-byte sectors).

The pattern: a seeded random 1 MiB base, rotated per MiB, with every 512-byte block starting with
its block number within the fill mixed with the seed, so no two blocks of a fill are equal (a
misplaced or stale block cannot pass) and generation costs little more than a memcpy.
"""

import hashlib
import mmap
import os
import random
import re
import sys
from array import array

CHUNK = 1 << 20


def to_bytes(text):
    m = re.fullmatch(r"(\d+)([KMGTs]?)", text)
    if not m:
        raise SystemExit(f"vmdata: bad size {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
                              "s": 512}[m.group(2)]


class Pattern:
    def __init__(self, seed):
        r = random.Random(seed)
        self.base = r.randbytes(CHUNK)
        self.key = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")

    def chunk(self, pos, length):
        """Bytes [pos, pos + length) of the pattern; pos is a multiple of CHUNK."""
        i = pos // CHUNK
        rot = (i * 4099 * 8) % CHUNK
        buf = bytearray(self.base[rot:] + self.base[:rot])
        words = memoryview(buf).cast("Q")
        first = pos // 512
        words[0::64] = array("Q", [(first + b) ^ self.key for b in range(CHUNK // 512)])
        return bytes(buf[:length])


class Dev:
    """A device or file read/written in aligned CHUNK pieces, O_DIRECT where it works."""

    def __init__(self, path, write=False):
        flags = os.O_RDWR if write else os.O_RDONLY
        try:
            self.fd = os.open(path, flags | os.O_DIRECT)
        except OSError:  # tmpfs files and the like: no O_DIRECT
            self.fd = os.open(path, flags)
        self.path = path
        self.buf = mmap.mmap(-1, CHUNK)  # page aligned, as O_DIRECT wants

    def read(self, off, length):
        """Yields (position within the range, bytes) in pieces of at most CHUNK."""
        done = 0
        while done < length:
            n = min(CHUNK, length - done)
            view = memoryview(self.buf)[:n]
            got = os.preadv(self.fd, [view], off + done)
            if got != n:
                raise SystemExit(f"vmdata: short read of {self.path} at {off + done}: {got} of {n}")
            yield done, bytes(view)
            done += n

    def write(self, off, data):
        n = len(data)
        self.buf[:n] = data
        got = os.pwritev(self.fd, [memoryview(self.buf)[:n]], off)
        if got != n:
            raise SystemExit(f"vmdata: short write to {self.path} at {off}: {got} of {n}")


def first_difference(a, b):
    for i in range(0, len(a), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, len(a))):
                if a[j] != b[j]:
                    return j
    return None


def cmd_fill(dev, off, length, seed):
    p, d = Pattern(seed), Dev(dev, write=True)
    off, length = to_bytes(off), to_bytes(length)
    for pos in range(0, length, CHUNK):
        d.write(off + pos, p.chunk(pos, min(CHUNK, length - pos)))
    os.fsync(d.fd)


def cmd_sum(dev, off, length):
    h = hashlib.sha256()
    for _, data in Dev(dev).read(to_bytes(off), to_bytes(length)):
        h.update(data)
    print(h.hexdigest())


def cmd_sum_pattern(length, seed):
    p, h, length = Pattern(seed), hashlib.sha256(), to_bytes(length)
    for pos in range(0, length, CHUNK):
        h.update(p.chunk(pos, min(CHUNK, length - pos)))
    print(h.hexdigest())


def cmd_sum_zero(length):
    h, length, zeros = hashlib.sha256(), to_bytes(length), bytes(CHUNK)
    for pos in range(0, length, CHUNK):
        h.update(zeros[:min(CHUNK, length - pos)])
    print(h.hexdigest())


def cmd_count_same(d1, o1, d2, o2, n):
    """What a copy killed half-way left: how much of the destination already equals the source."""
    o1, o2, n = to_bytes(o1), to_bytes(o2), to_bytes(n)
    same, runs, first_diff, prev_same = 0, 0, -1, True
    other = Dev(d2).read(o2, n)
    for pos, a in Dev(d1).read(o1, n):
        _, b = next(other)
        for i in range(0, len(a), 4096):
            eq = a[i:i + 4096] == b[i:i + 4096]
            if eq:
                same += min(4096, len(a) - i)
            elif prev_same:
                runs += 1
                if first_diff < 0:
                    first_diff = pos + i
            prev_same = eq
    print(same, runs, first_diff)


def journal_records(path):
    """Records after the header of an offcopy journal (docs/reliability.md: a 16-byte signature,
    then records of u32 kind, u32 length, payload, u32 CRC32C, little-endian), or -1 when the
    file is missing or holds no whole header. Counted from the file's bytes, not the library."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return -1
    if len(data) < 24:
        return -1
    at = 16 + 8 + int.from_bytes(data[20:24], "little") + 4
    if at > len(data):
        return -1
    n = 0
    while at + 8 <= len(data):
        at += 8 + int.from_bytes(data[at + 4:at + 8], "little") + 4
        if at > len(data):
            break  # a record being written
        n += 1
    return n


def cmd_kill_on_commit(journal, out, *argv):
    """Runs ARGV with stdout and stderr to OUT and sends it SIGKILL as soon as JOURNAL holds a
    record after its header (polled every millisecond: a 1 GiB NVMe Copy lasts ~1 s here).
    Prints "SECONDS_TO_KILL RECORDS"; fails when the command ends first."""
    import signal
    import subprocess
    import time
    with open(out, "wb") as o:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=o, stderr=subprocess.STDOUT)
        while p.poll() is None:
            n = journal_records(journal)
            if n > 0:
                p.send_signal(signal.SIGKILL)
                p.wait()
                print(f"{time.monotonic() - t0:.3f} {n}")
                return
            time.sleep(0.001)
    with open(out, "rb") as o:
        sys.stdout.write(o.read().decode(errors="replace"))
    raise SystemExit(f"vmdata: the command ended (exit {p.returncode}) before {journal} held a record")


def check(spec):
    words = spec.split()
    kind = words[0] if words else ""
    if kind == "same" and len(words) >= 6:
        d1, o1, d2, o2, n = words[1], to_bytes(words[2]), words[3], to_bytes(words[4]), to_bytes(words[5])
        what = " ".join(words[6:]) or spec
        other = Dev(d2).read(o2, n)
        for pos, a in Dev(d1).read(o1, n):
            _, b = next(other)
            if a != b:
                at = pos + first_difference(a, b)
                return f"{what}: {d1}@{o1 + at} differs from {d2}@{o2 + at}"
    elif kind == "zero" and len(words) >= 4:
        d, o, n = words[1], to_bytes(words[2]), to_bytes(words[3])
        what = " ".join(words[4:]) or spec
        zeros = bytes(CHUNK)
        for pos, a in Dev(d).read(o, n):
            if a != zeros[:len(a)]:
                at = pos + first_difference(a, zeros[:len(a)])
                return f"{what}: {d}@{o + at} is not zero"
    elif kind == "pattern" and len(words) >= 5:
        d, o, n, seed = words[1], to_bytes(words[2]), to_bytes(words[3]), words[4]
        what = " ".join(words[5:]) or spec
        p = Pattern(seed)
        for pos, a in Dev(d).read(o, n):
            b = p.chunk(pos, len(a))
            if a != b:
                at = pos + first_difference(a, b)
                return f"{what}: {d}@{o + at} differs from pattern {seed}@{at}"
    else:
        raise SystemExit(f"vmdata: bad check {spec!r}")
    print(f"ok: {what}", flush=True)
    return None


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "fill" and len(args) == 4:
        cmd_fill(*args)
    elif cmd == "sum" and len(args) == 3:
        cmd_sum(*args)
    elif cmd == "sum-pattern" and len(args) == 2:
        cmd_sum_pattern(*args)
    elif cmd == "sum-zero" and len(args) == 1:
        cmd_sum_zero(*args)
    elif cmd == "count-same" and len(args) == 5:
        cmd_count_same(*args)
    elif cmd == "kill-on-commit" and len(args) >= 3:
        cmd_kill_on_commit(*args)
    elif cmd == "check" and args:
        for spec in args:
            err = check(spec)
            if err:
                print(f"FAIL: {err}", file=sys.stderr, flush=True)
                return 1
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
