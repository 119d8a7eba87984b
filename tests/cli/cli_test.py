#!/usr/bin/python3
"""End-to-end tests of the offload-copy binary (DESIGN.md section 5, issue 2 item 6).

Usage: cli_test.py BINARY CASE     runs one case: exit 0 passed, 1 failed, 77 skipped (reason printed)
       cli_test.py BINARY --list   prints the case names (tests/cli/CMakeLists.txt registers each one)

Every bad-input case asserts exit status 2, exactly one line on stderr that starts with "offload-copy: "
and says what is wrong, and that nothing was written: the destination's checksum is unchanged and a
missing destination file was not created. Block-device cases use loop devices (losetup); they are
skipped when losetup is unavailable or not permitted.
Standard library only.
"""

import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CASES, Failure, Skip, binary, case, check, digest, loop_device, memmove, read, schema_validator  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers


def run(*args, stdin=None, user=None):
    """Runs the binary (as `user` through setpriv when given); returns (rc, stdout str, stderr str)."""
    wrap = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    rc, out, err = harness.run(*args, stdin=stdin, wrap=wrap)
    return rc, out.decode(), err.decode()


def write_random(path, size, seed):
    """Seeded random bytes written to `path` and returned (the cases compare against them)."""
    data = random.Random(seed).randbytes(size)
    with open(path, "wb") as f:
        f.write(data)
    return data


def _clear_immutable(d):
    """chattr -i every file below `d` (the immutable-file case leaves one), so that it can be removed."""
    for root, _dirs, files in os.walk(d):
        for name in files:
            subprocess.run(["chattr", "-i", os.path.join(root, name)], capture_output=True)


def tempdir():
    return harness.tempdir("offcopy-cli-", _clear_immutable)


def expect_bad_input(rc, out, err, *needles):
    """Exit 2 and one clear line on stderr containing every needle."""
    lines = err.splitlines()
    check(rc == 2, f"exit status {rc}, expected 2 (stderr: {err!r})")
    check(len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}")
    check(lines[0].startswith("offload-copy: "), f"error line lacks the program name: {lines[0]!r}")
    for n in needles:
        check(n in lines[0], f"error line {lines[0]!r} does not mention {n!r}")


class Files:
    """A random source file and a random destination file in a temp dir."""

    def __init__(self, d, size=256 * 1024):
        self.dir = d
        self.src = os.path.join(d, "src.bin")
        self.dst = os.path.join(d, "dst.bin")
        self.src_data = write_random(self.src, size, 1)
        self.dst_data = write_random(self.dst, size, 2)
        self.dst_sum = digest(self.dst)

    def untouched(self):
        check(digest(self.dst) == self.dst_sum, "the destination was modified")
        check(read(self.src) == self.src_data, "the source was modified")


def bad_file_case(extents, *needles, extra=()):
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, *extents, *extra)
        expect_bad_input(rc, out, err, *needles)
        f.untouched()
        # The same input to a destination that does not exist yet: it must not be left behind.
        missing = os.path.join(d, "new.bin")
        rc, out, err = run("copy", f.src, missing, *extents, *extra)
        expect_bad_input(rc, out, err, *needles)
        check(not os.path.exists(missing), "a missing destination was created by a refused copy")


# ------------------------------------------------------------------------------------------- bad input


@case
def missing_source():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", os.path.join(d, "nope.bin"), f.dst)
        expect_bad_input(rc, out, err, "nope.bin", "no such file")
        f.untouched()
        missing = os.path.join(d, "new.bin")
        rc, out, err = run("copy", os.path.join(d, "nope.bin"), missing)
        expect_bad_input(rc, out, err, "no such file")
        check(not os.path.exists(missing), "destination created although the source is missing")


@case
def missing_destination_directory():
    with tempdir() as d:
        f = Files(d)
        target = os.path.join(d, "no-such-dir", "dst.bin")
        rc, out, err = run("copy", f.src, target)
        expect_bad_input(rc, out, err, "no-such-dir")
        check(not os.path.exists(os.path.dirname(target)), "a directory was created")


@case
def source_is_directory():
    with tempdir() as d:
        f = Files(d)
        sub = os.path.join(d, "sub")
        os.mkdir(sub)
        rc, out, err = run("copy", sub, f.dst)
        expect_bad_input(rc, out, err, "is a directory")
        f.untouched()


@case
def destination_is_directory():
    with tempdir() as d:
        f = Files(d)
        sub = os.path.join(d, "sub")
        os.mkdir(sub)
        rc, out, err = run("copy", f.src, sub)
        expect_bad_input(rc, out, err, "is a directory")
        check(os.listdir(sub) == [], "something was written into the directory")


@case
def extent_past_source_end():
    bad_file_case(["0:0:64K", "200K:100K:57K"], "extent 2", "past the end of the source")


@case
def extent_past_block_device_end():
    with tempdir() as d:
        f = Files(d)
        img = os.path.join(d, "disk.img")
        write_random(img, 1 << 20, 3)
        before = digest(img)
        with loop_device(img) as dev:
            rc, out, err = run("copy", f.src, dev, "0:1020K:8K")
            expect_bad_input(rc, out, err, "past the end of the destination")
            rc, out, err = run("copy", f.src, dev, "0:1M:512")
            expect_bad_input(rc, out, err, "past the end of the destination")
            # Exactly up to the end is fine for plan (writes nothing either way).
            rc, out, err = run("plan", f.src, dev, "0:1020K:4K")
            check(rc == 0, f"plan up to the end failed: {err}")
        check(digest(img) == before, "the loop device's backing file changed")


@case
def zero_length():
    bad_file_case(["0:0:0"], "zero length")
    bad_file_case(["0:0:4K", "4K:4K:0"], "extent 2", "zero length")


@case
def empty_source():
    with tempdir() as d:
        f = Files(d)
        empty = os.path.join(d, "empty.bin")
        open(empty, "wb").close()
        rc, out, err = run("copy", empty, f.dst)
        expect_bad_input(rc, out, err, "empty")
        f.untouched()


@case
def malformed_extent():
    bad_file_case(["0:4K"], "expected [SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH")
    bad_file_case(["0:0:4K:1"], "expected [SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH")
    bad_file_case(["a:b:c"], "not a number")


@case
def malformed_size_suffix():
    bad_file_case(["0:0:4Q"], "unknown size suffix")
    bad_file_case(["0:0:1.5K"], "unknown size suffix")
    bad_file_case(["0:0:4KB"], "unknown size suffix")


@case
def negative_number():
    bad_file_case(["0:0:-1"], "negative")
    bad_file_case(["-4K:0:4K"], "negative")
    bad_file_case(["0:-0x10:4K"], "negative")


@case
def overflowing_number():
    bad_file_case(["0:0:18446744073709551616"], "too large")
    bad_file_case(["0:0:16777216T"], "too large")
    bad_file_case(["0:0:0x10000000000000000"], "too large")
    # Each number fits, their sum does not.
    bad_file_case(["18446744073709551615:0:1"], "overflows")
    # Fits in 64 bits but not in a file offset (off_t).
    bad_file_case(["0:0xfffffffffffffff0:10"], "past the largest file offset")


@case
def overlapping_destinations():
    bad_file_case(["0:0:8K", "100K:4K:8K"], "extents 1 and 2", "both write destination bytes [4096, 8192)")


@case
def several_sources():
    with tempdir() as d:
        f = Files(d)
        b = os.path.join(d, "b.bin")
        c = os.path.join(d, "c.bin")
        bd = write_random(b, 64 * 1024, 7)
        cd = write_random(c, 64 * 1024, 8)
        lst = os.path.join(d, "list.txt")
        with open(lst, "w") as fh:
            fh.write("# source 2 from the file\n2@100:40K:1000\n")
        rc, out, err = run("copy", f.src, f.dst, "--source", b, "0:0:4K", "1@8K:4K:8K", "--source", c,
                           "--extents-file", lst, "--json")
        check(rc == 0, f"exit {rc}: {err!r}")
        rep = json.loads(out)
        check(rep["bytes_copied"] == 4096 + 8192 + 1000, f"bytes_copied {rep['bytes_copied']}")
        want = bytearray(f.dst_data)
        want[0:4096] = f.src_data[0:4096]
        want[4096:12288] = bd[8192:16384]
        want[40960:41960] = cd[100:1100]
        check(read(f.dst) == bytes(want), "destination bytes differ from the three sources' ranges")
        rc, out, err = run("plan", f.src, f.dst, "--source", b, "0:0:4K", "1@8K:4K:8K")
        check(rc == 0, f"plan: exit {rc}: {err!r}")
        check("source 1: src 8192 -> dst 4096 x 8192 bytes" in out, f"plan does not show the source: {out!r}")
    # An extent naming a source that was not given; the same through a file (nothing written).
    bad_file_case(["0:0:4K", "1@0:4K:4K"], "extent 2: source 1 does not exist")
    bad_file_case(["x@0:0:4K"], "expected SOURCE@SRC_OFFSET:DST_OFFSET:LENGTH")
    with tempdir() as d:
        f = Files(d)
        b = os.path.join(d, "b.bin")
        write_random(b, 64 * 1024, 7)
        rc, out, err = run("copy", f.src, f.dst, "--source", b, "0:0:8K", "1@0:4K:4K")
        expect_bad_input(rc, out, err, "extents 1 and 2", "both write destination bytes [4096, 8192)")
        rc, out, err = run("copy", f.src, f.dst, "--source", b, "0:0:4K", "1@60K:4K:8K")
        expect_bad_input(rc, out, err, "extent 2: source 1", "past the end of")
        journal = os.path.join(d, "j")
        rc, out, err = run("copy", f.src, f.dst, "--source", b, "0:0:4K", "1@0:4K:4K", "--journal", journal)
        expect_bad_input(rc, out, err, "--journal with several sources")
        check(not os.path.exists(journal), "a refused journal was created")
        f.untouched()


@case
def several_sources_offload_loop():
    # A source without offload among several: --mode offload refuses before anything is written.
    with tempdir() as d:
        a, b, c = (os.path.join(d, n) for n in ("a.img", "b.img", "c.img"))
        write_random(a, 1 << 20, 4)
        write_random(b, 1 << 20, 5)
        write_random(c, 1 << 20, 6)
        before = digest(b)
        with loop_device(a) as src, loop_device(b) as dst, loop_device(c) as more:
            rc, out, err = run("copy", src, dst, "--source", more, "0:0:4K", "1@0:4K:4K", "--mode", "offload")
            check(rc == 3, f"exit {rc}, expected 3 ({err!r})")
            check("offload impossible" in err, f"no reason given: {err!r}")
        check(digest(b) == before, "the destination changed")


@case
def misaligned_offload_loop():
    with tempdir() as d:
        a, b = os.path.join(d, "a.img"), os.path.join(d, "b.img")
        write_random(a, 1 << 20, 4)
        write_random(b, 1 << 20, 5)
        before = digest(b)
        with loop_device(a) as src, loop_device(b) as dst:
            # Misaligned for offload but not for a fallback: only --mode offload forbids it (exit 3).
            for ext in ("1:0:512", "0:512:100", "0:0:1000"):
                rc, out, err = run("copy", src, dst, ext, "--mode", "offload")
                check(rc == 3, f"{ext} --mode offload: exit {rc}, expected 3 ({err!r})")
                check("not a multiple of the 512-byte logical block" in err, f"no reason given: {err!r}")
            # Aligned but no offload on a loop device: exit 3, still nothing written.
            rc, out, err = run("copy", src, dst, "0:0:4K", "--mode", "offload")
            check(rc == 3, f"aligned --mode offload on loop devices: exit {rc}, expected 3 ({err!r})")
            check("offload impossible" in err, f"no reason given: {err!r}")
        check(digest(b) == before, "the destination changed")


@case
def read_only_loop_device():
    with tempdir() as d:
        f = Files(d)
        img = os.path.join(d, "disk.img")
        write_random(img, 1 << 20, 6)
        before = digest(img)
        with loop_device(img, read_only=True) as dev:
            rc, out, err = run("copy", f.src, dev, "0:0:4K")
            expect_bad_input(rc, out, err, "read-only")
            rc, out, err = run("copy", f.src, dev, "0:0:4K", "--force")
            expect_bad_input(rc, out, err, "read-only")
        check(digest(img) == before, "the read-only device changed")


@case
def immutable_file():
    with tempdir() as d:
        f = Files(d)
        p = subprocess.run(["chattr", "+i", f.dst], capture_output=True, text=True)
        if p.returncode != 0:
            raise Skip(f"chattr +i not possible here: {p.stderr.strip()}")
        try:
            rc, out, err = run("copy", f.src, f.dst, "0:0:4K")
            expect_bad_input(rc, out, err, "read-only", "cannot open for writing")
            f.untouched()
        finally:
            subprocess.run(["chattr", "-i", f.dst], capture_output=True)


@case
def read_only_file_unprivileged():
    # Root ignores file modes, so run the binary as nobody when we are root.
    with tempdir() as d:
        os.chmod(d, 0o755)
        f = Files(d)
        for p in (f.src, f.dst):
            os.chmod(p, 0o444)
        user = None
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                raise Skip("running as root and setpriv is missing: file modes cannot be tested")
            user = 65534
            binary_ok = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-x",
                                        binary()], capture_output=True).returncode == 0
            if not binary_ok:
                raise Skip(f"{binary()} is not executable by uid 65534")
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", user=user)
        expect_bad_input(rc, out, err, "read-only")
        f.untouched()


@case
def busy_mounted_loop_device():
    for tool in ("mkfs.ext2", "mount", "umount"):
        if shutil.which(tool) is None:
            raise Skip(f"{tool} is not installed")
    with tempdir() as d:
        f = Files(d)
        img = os.path.join(d, "fs.img")
        with open(img, "wb") as fh:
            fh.truncate(8 << 20)
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        with loop_device(img) as dev:
            p = subprocess.run(["mkfs.ext2", "-q", "-F", dev], capture_output=True, text=True)
            check(p.returncode == 0, f"mkfs.ext2 failed: {p.stderr}")
            p = subprocess.run(["mount", dev, mnt], capture_output=True, text=True)
            if p.returncode != 0:
                raise Skip(f"cannot mount a loop device here: {p.stderr.strip()}")
            try:
                # The mounted file system may write its own metadata at any time: compare the range
                # the copy targets (free data blocks of a fresh 8 MiB ext2), not the whole device.
                def target():
                    with open(dev, "rb") as fh:
                        fh.seek(1 << 20)
                        return fh.read(64 * 1024)
                before = target()
                rc, out, err = run("copy", f.src, dev, "0:1M:64K")
                expect_bad_input(rc, out, err, "busy", "--force")
                check(target() == before, "the mounted device's target range changed")
            finally:
                subprocess.run(["umount", mnt], capture_output=True)


@case
def busy_held_exclusively():
    with tempdir() as d:
        f = Files(d)
        img = os.path.join(d, "disk.img")
        write_random(img, 1 << 20, 7)
        before = digest(img)
        with loop_device(img) as dev:
            holder = subprocess.Popen(
                [sys.executable, "-c",
                 "import os, sys\n"
                 f"fd = os.open({dev!r}, os.O_RDONLY | os.O_EXCL)\n"
                 "print('held', flush=True)\n"
                 "sys.stdin.read()\n"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                check(holder.stdout.readline().strip() == "held", "the holder could not open the device O_EXCL")
                rc, out, err = run("copy", f.src, dev, "0:0:64K")
                expect_bad_input(rc, out, err, "busy")
            finally:
                holder.stdin.close()
                holder.wait(timeout=30)
        check(digest(img) == before, "the busy device changed")


@case
def bad_option_values():
    # The library checks option values (the same messages for the CLI, Python and C callers).
    bad_file_case(["0:0:4K"], "mode 'sometimes'", extra=["--mode", "sometimes"])
    bad_file_case(["0:0:4K"], "backend 'teleport'", "unknown", extra=["--backend", "teleport"])
    bad_file_case(["0:0:4K"], "in-flight", extra=["--in-flight", "0"])
    bad_file_case(["0:0:4K"], "submit 'later'", extra=["--submit", "later"])
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", os.path.join(d, "missing.txt"))
        expect_bad_input(rc, out, err, "missing.txt")
        f.untouched()


# -------------------------------------------------------------------------------------- valid behaviour


@case
def overlap_same_file_memmove():
    with tempdir() as d:
        path = os.path.join(d, "one.bin")
        size = 512 * 1024
        for (s, t, n) in [(0, 4096, 65536), (4096, 0, 65536), (3, 1000, 50001), (1000, 3, 50001),
                          (0, 1, 20000), (1, 0, 20000), (8192, 8192, 4096)]:
            data = write_random(path, size, s * 31 + t)
            rc, out, err = run("copy", path, path, f"{s}:{t}:{n}", "--json")
            check(rc == 0, f"{s}:{t}:{n}: exit {rc}: {err}")
            check(json.loads(out)["bytes_copied"] == n, f"{s}:{t}:{n}: bytes_copied {out}")
            check(read(path) == memmove(data, s, t, n), f"{s}:{t}:{n}: result differs from memmove")


@case
def overlap_chained_extents():
    # The second extent reads what the first wrote: request order decides, like successive memmoves.
    with tempdir() as d:
        path = os.path.join(d, "one.bin")
        data = write_random(path, 256 * 1024, 9)
        rc, out, err = run("copy", path, path, "0:100K:50K", "100K:0:50K", "10K:60K:30K")
        check(rc == 0, f"exit {rc}: {err}")
        want = memmove(memmove(memmove(data, 0, 100 * 1024, 50 * 1024), 100 * 1024, 0, 50 * 1024),
                       10 * 1024, 60 * 1024, 30 * 1024)
        check(read(path) == want, "result differs from successive memmoves")


@case
def overlap_loop_device_memmove():
    with tempdir() as d:
        img = os.path.join(d, "disk.img")
        data = write_random(img, 1 << 20, 10)
        with loop_device(img) as dev:
            # The source's plain open does not make the exclusively opened destination "busy".
            rc, out, err = run("copy", dev, dev, "0:4K:512K")
            check(rc == 0, f"exit {rc}: {err}")
            rc, out, err = run("copy", dev, dev, "8K:0:256K", "--json")
            check(json.loads(out).get("fallback_reason"), f"no fallback reason for a loop device: {out}")
            check(rc == 0, f"exit {rc}: {err}")
            got = read(dev)
        want = memmove(memmove(data, 0, 4096, 512 * 1024), 8192, 0, 256 * 1024)
        check(got == want, "loop device result differs from memmove")


@case
def whole_source_to_new_file():
    with tempdir() as d:
        f = Files(d, size=3 * 1024 * 1024 + 123)
        new = os.path.join(d, "new.bin")
        rc, out, err = run("copy", f.src, new)
        check(rc == 0, f"exit {rc}: {err}")
        check(read(new) == f.src_data, "copy differs from the source")


@case
def io_error_exit_1_reports_progress():
    # A loop device over a sparse file on a 1 MiB tmpfs: writes past 1 MiB fail with ENOSPC.
    with tempdir() as d:
        f = Files(d, size=4 << 20)
        mnt = os.path.join(d, "small")
        os.mkdir(mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", mnt], capture_output=True, text=True)
        if p.returncode != 0:
            raise Skip(f"cannot mount a small tmpfs: {p.stderr.strip()}")
        try:
            img = os.path.join(mnt, "sparse.img")
            with open(img, "wb") as fh:
                fh.truncate(8 << 20)
            with loop_device(img) as dev:
                rc, out, err = run("copy", f.src, dev, "--json")
                check(rc == 1, f"exit {rc}, expected 1: {err}")
                j = json.loads(out)
                check(j["status"] == "error" and j["error"]["code"] == "io-error", j)
                done = j["bytes_copied"]
                check(0 < done < (4 << 20), f"bytes_copied {done}")
                check(sum(u["bytes"] for u in j["backends"].values()) == done, j)
                check(read(dev)[:done] == f.src_data[:done], "the bytes reported done are not at the destination")
                lines = err.splitlines()
                check(len(lines) == 1 and lines[0].startswith("offload-copy: io-error"), err)
        finally:
            subprocess.run(["umount", mnt], capture_output=True)


@case
def progress_bar():
    with tempdir() as d:
        f = Files(d, size=2 << 20)
        rc, out, err = run("copy", f.src, f.dst, "--progress")
        check(rc == 0 and "100.0%" in err and "ETA" in err, f"no progress bar on stderr: {err!r}")
        rc, out, err = run("copy", f.src, f.dst, "--no-progress")
        check(rc == 0 and "ETA" not in err, f"progress bar despite --no-progress: {err!r}")
        f.dst_data = f.src_data


@case
def json_report_fields():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "0:0:64K", "64K:128K:1K", "--json")
        check(rc == 0, f"exit {rc}: {err}")
        check(out.count("\n") == 1, f"expected one JSON line: {out!r}")
        j = json.loads(out)
        check(j["status"] == "ok", j)
        check(j["bytes_copied"] == 65 * 1024 and j["bytes_requested"] == 65 * 1024, j)
        check(isinstance(j["backends"], dict) and j["backends"], j)
        known = {"nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"}
        for name, u in j["backends"].items():
            check(name in known, f"unknown backend {name}")
            check(isinstance(u["bytes"], int) and isinstance(u["commands"], int), u)
        check(sum(u["bytes"] for u in j["backends"].values()) == 65 * 1024, j)
        for key in ("elapsed_seconds", "verified", "source", "destination", "mode", "planned_backend",
                    "planned_commands"):
            check(key in j, f"missing {key}: {j}")
        check("error" not in j, j)
        want = bytearray(f.dst_data)
        want[0:65536] = f.src_data[0:65536]
        want[131072:132096] = f.src_data[65536:66560]
        check(read(f.dst) == bytes(want), "destination bytes differ")

        # Failure: one JSON object with the error, and exit status 2.
        rc, out, err = run("copy", f.src, f.dst, "0:0:0", "--json")
        check(rc == 2, f"exit {rc}")
        j = json.loads(out)
        check(j["status"] == "error" and j["bytes_copied"] == 0, j)
        check(j["error"]["code"] == "zero-length" and "zero length" in j["error"]["message"], j)
        f.dst_data = bytes(want)


@case
def json_fallback_reason_block_device():
    with tempdir() as d:
        f = Files(d)
        img = os.path.join(d, "disk.img")
        write_random(img, 1 << 20, 11)
        with loop_device(img) as dev:
            rc, out, err = run("copy", f.src, dev, "0:0:64K", "--json")
            check(rc == 0, f"exit {rc}: {err}")
            j = json.loads(out)
            check("fallback_reason" in j and j["fallback_reason"], f"no fallback_reason: {j}")
            check(j["bytes_copied"] == 65536, j)
            check(set(j["backends"]) <= {"copy-file-range", "buffered"}, j)
            check(read(dev)[:65536] == f.src_data[:65536], "device bytes differ")


@case
def mode_offload_impossible_exit_3():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", "--mode", "offload")
        check(rc == 3, f"exit {rc}, expected 3: {err}")
        check(len(err.splitlines()) == 1 and "offload impossible" in err, err)
        f.untouched()
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", "--mode", "offload", "--json")
        check(rc == 3 and json.loads(out)["error"]["code"] == "not-supported", out)
        f.untouched()


@case
def mode_fallback():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "4K:0:8K", "--mode", "fallback", "--json")
        check(rc == 0, err)
        check(read(f.dst)[:8192] == f.src_data[4096:12288], "bytes differ")


@case
def extents_file():
    with tempdir() as d:
        f = Files(d)
        lst = os.path.join(d, "list.txt")
        with open(lst, "w") as fh:
            fh.write("# src:dst:len\n0:0:4K\n\n  8s:16K:0x1000  \n# end\n")
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", lst, "--json")
        check(rc == 0, err)
        check(json.loads(out)["bytes_copied"] == 8192, out)
        want = bytearray(f.dst_data)
        want[0:4096] = f.src_data[0:4096]
        want[16384:20480] = f.src_data[4096:8192]
        check(read(f.dst) == bytes(want), "bytes differ")

        # Command-line extents and the file combine; an error names the file and line.
        with open(lst, "w") as fh:
            fh.write("0:0:4K\n0:0:4Q\n")
        sum_before = digest(f.dst)
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", lst)
        expect_bad_input(rc, out, err, "list.txt:2", "unknown size suffix")
        check(digest(f.dst) == sum_before, "destination changed")

        # An extents file without any extent is an error, not "copy everything".
        with open(lst, "w") as fh:
            fh.write("# nothing\n")
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", lst)
        expect_bad_input(rc, out, err, "no extents")


@case
def extents_file_stdin():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", "-", "--json",
                           stdin=b"100K:0:1K\n0:200K:2K\n")
        check(rc == 0, err)
        check(json.loads(out)["bytes_copied"] == 3072, out)
        got = read(f.dst)
        check(got[0:1024] == f.src_data[102400:103424], "first extent differs")
        check(got[204800:206848] == f.src_data[0:2048], "second extent differs")
        rc, out, err = run("copy", f.src, f.dst, "--extents-file", "-", stdin=b"1:2\n")
        expect_bad_input(rc, out, err, "stdin:1")


@case
def verify():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "0:4K:128K", "--verify", "--json")
        check(rc == 0, err)
        j = json.loads(out)
        check(j["verified"] is True, j)
        rc, out, err = run("copy", f.src, f.dst, "0:4K:128K", "--verify")
        check(rc == 0 and "verify: source and destination match" in out, out + err)
        # An overlapping move on one file cannot be compared afterwards: skipped, said so, no fallback.
        rc, out, err = run("copy", f.src, f.src, "0:1K:8K", "--verify", "--json")
        check(rc == 0, err)
        j = json.loads(out)
        check(j["verified"] is False and "verify_skipped" in j and "fallback_reason" not in j, j)


@case
def plan_json():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("plan", f.src, f.dst, "0:0:4K", "4K:4K:4K", "64K:8K:1K", "--json")
        check(rc == 0, err)
        j = json.loads(out)
        for key in ("backend", "block_bytes", "total_bytes", "commands_total", "segments_total", "ordered",
                    "limits", "considered", "commands"):
            check(key in j, f"missing {key}: {j}")
        check(j["total_bytes"] == 9 * 1024, j)
        check(j["backend"] in ("copy-file-range", "buffered"), j)
        segs = [s for c in j["commands"] for s in c["segments"]]
        bb = j["block_bytes"]
        # Adjacent extents merged: [0,8K) is one segment.
        check([0, 0, 8192 // bb] in segs, f"adjacent extents not merged: {segs}")
        check(sum(s[2] for s in segs) * bb == 9 * 1024, segs)
        check(all(set(c) == {"backend", "chosen", "reason"} for c in j["considered"]), j)
        check(sum(1 for c in j["considered"] if c["chosen"]) == 1, j)
        f.untouched()
        # Text form, and plan never creates a missing destination.
        rc, out, err = run("plan", f.src, f.dst, "0:0:4K")
        check(rc == 0 and "command 1" in out, out + err)
        missing = os.path.join(d, "new.bin")
        dir_mtime = os.stat(d).st_mtime_ns
        rc, out, err = run("plan", f.src, missing, "0:0:4K")
        check(rc == 0 and "copy-file-range" in out, f"plan to a new file: exit {rc}: {out + err}")
        check(not os.path.exists(missing), "plan created the destination")
        # Not even for a moment: creating and removing a file would change the directory.
        check(os.stat(d).st_mtime_ns == dir_mtime, "plan created (and removed) a file in the destination directory")
        rc, out, err = run("plan", f.src, os.path.join(d, "no-such-dir", "new.bin"))
        expect_bad_input(rc, out, err, "no-such-dir")
        # Overlap on one file is planned in memmove order with barriers.
        rc, out, err = run("plan", f.src, f.src, "0:1K:8K", "--json")
        j = json.loads(out)
        check(rc == 0 and j["ordered"] is True and all(c["barrier"] for c in j["commands"]), out)
        f.untouched()


@case
def probe_json():
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("probe", f.src, "--json")
        check(rc == 0, err)
        j = json.loads(out)
        check(j["kind"] == "regular-file" and j["size_bytes"] == len(f.src_data), j)
        check(isinstance(j["offload"], list), j)
        rc, out, err = run("probe", os.path.join(d, "nope"))
        expect_bad_input(rc, out, err, "no such file")
        if shutil.which("losetup") is None:
            return
        img = os.path.join(d, "disk.img")
        write_random(img, 1 << 20, 12)
        with loop_device(img) as dev:
            rc, out, err = run("probe", dev, "--json")
            check(rc == 0, err)
            j = json.loads(out)
            check(j["kind"] == "block-device" and j["size_bytes"] == 1 << 20, j)
            check(j["logical_block_bytes"] == 512 and j["block_path"] == dev and j["identity"].startswith("blk:"), j)
            rc, out, err = run("probe", dev)
            check(rc == 0 and "block-device" in out and "512-byte logical blocks" in out, out)



def check_schema(validator, out, what):
    check(out.count("\n") == 1 and out.endswith("\n"), f"{what}: expected one JSON line, got {out!r}")
    obj = json.loads(out)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    check(not errors, f"{what}: {obj} does not match the schema: {[e.message for e in errors][:3]}")
    return obj


@case
def json_schema():
    """Every --json object, success or failure of each verb, matches docs/offload-copy.schema.json,
    and its outcome and exit_status agree with the process's exit status."""
    v = schema_validator()
    with tempdir() as d:
        f = Files(d)
        new = os.path.join(d, "new.bin")
        runs = [
            (["probe", f.src], 0),
            (["probe", os.path.join(d, "nope")], 2),
            (["plan", f.src, f.dst, "0:0:4K", "8K:100K:3"], 0),
            (["plan", f.src, new], 0),
            (["plan", f.src, f.src, "0:1K:8K"], 0),
            (["plan", f.src, f.dst, "0:0:4K", "--mode", "offload"], 3),
            (["copy", f.src, f.dst, "0:0:4K", "4K:8K:1K", "--verify"], 0),
            (["copy", f.src, f.src, "0:1K:8K", "--verify"], 0),
            (["copy", f.src, f.dst, "0:0:0"], 2),
            (["copy", f.src, f.dst, "--mode", "offload"], 3),
            (["copy", f.src, f.dst, "--mode", "sometimes"], 2),
            (["copy", f.src, f.dst, "--no-such-option"], 2),  # a usage error is one JSON object too
            (["plan", f.src], 2),
        ]
        for args, rc_want in runs:
            rc, out, err = run(*args, "--json")
            obj = check_schema(v, out, " ".join(args))
            check(rc == rc_want and obj["exit_status"] == rc, f"{args}: exit {rc}, JSON {obj['exit_status']}, want {rc_want}")
            check(obj["operation"] == args[0], obj)
            if rc != 0:
                lines = err.splitlines()
                check(len(lines) == 1 and lines[0].startswith("offload-copy: "), f"{args}: stderr {err!r}")
        check(not os.path.exists(new), "plan created the destination")


@case
def untrusted_bytes_in_output():
    """Paths that are not UTF-8 or hold control characters come out as valid JSON and as text a
    terminal cannot act on (no raw ESC)."""
    with tempdir() as d:
        f = Files(d)
        weird = os.path.join(d.encode(), b"bad-\xff\xfe-\x1b[31m-name")
        with open(weird, "wb") as fh:
            fh.write(f.src_data[:8192])
        cmd = [binary().encode(), b"copy", weird, f.dst.encode(), b"0:0:4K", b"--json"]
        p = subprocess.run(cmd, capture_output=True, timeout=120)
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr!r}")
        obj = json.loads(p.stdout.decode("utf-8"))  # strict: must be valid UTF-8
        check("\ufffd" in obj["source"] and obj["bytes_copied"] == 4096, obj)
        missing = os.path.join(d.encode(), b"gone-\xff-\x1b]0;title\x07")
        p = subprocess.run([binary().encode(), b"probe", missing], capture_output=True, timeout=120)
        check(p.returncode == 2, f"exit {p.returncode}")
        check(b"\x1b" not in p.stderr and b"\x07" not in p.stderr, f"raw control bytes on stderr: {p.stderr!r}")
        p.stderr.decode("utf-8")  # valid UTF-8
        p = subprocess.run([binary().encode(), b"probe", missing, b"--json"], capture_output=True, timeout=120)
        obj = json.loads(p.stdout.decode("utf-8"))
        check(obj["error"]["code"] == "not-found" and "\ufffd" in obj["error"]["message"], obj)
        p = subprocess.run([binary().encode(), b"plan", weird, f.dst.encode()], capture_output=True, timeout=120)
        check(p.returncode == 0 and b"\x1b" not in p.stdout, f"plan text: {p.stdout!r}")


@case
def help_for_every_verb():
    for args in ([], ["probe"], ["plan"], ["copy"]):
        rc, out, err = run(*args, "--help")
        check(rc == 0 and "Usage" in out + err, f"{args} --help: exit {rc}")
    rc, out, err = run("copy", "--help")
    for opt in ("--extents-file", "--mode", "--json", "--verify", "--force", "--progress", "--no-progress"):
        check(opt in out, f"copy --help lacks {opt}")
    rc, out, err = run("--version")
    check(rc == 0 and "offload-copy" in out, out)
    rc, out, err = run()
    check(rc == 2, f"no verb: exit {rc}")



@case
def options_built_on_demand_parse_as_before():
    """The CLI builds only the options a command line names (all of them for --help): every
    option is listed by --help, the --opt=value form is seen, an option's value that looks like
    another option is taken as before, and an unknown option is still refused."""
    copy_opts = ("--source", "--extents-file", "--mode", "--backend", "--in-flight", "--submit", "--max-segments",
                 "--max-segment-blocks", "--max-command-blocks", "--no-overlap", "--journal", "--extents-timeout",
                 "--json", "--verify", "--force", "--progress", "--no-progress", "--buffer-size", "--buffers",
                 "--no-sync")
    for verb, opts in (("copy", copy_opts), ("plan", tuple(o for o in copy_opts if o not in (
            "--verify", "--force", "--progress", "--no-progress", "--buffer-size", "--buffers", "--no-sync")) +
            ("--show",))):
        for help_flag in ("--help", "-h"):
            rc, out, err = run(verb, "a", "b", help_flag)
            check(rc == 0, f"{verb} {help_flag}: exit {rc} {err}")
            for opt in opts:
                check(opt in out, f"{verb} {help_flag} lacks {opt}")
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("copy", f.src, f.dst, "4K:0:8K", "--mode=fallback", "--buffers=2", "--json")
        check(rc == 0, err)
        rep = json.loads(out)
        check(rep["bytes_copied"] == 8192 and rep["mode"] == "fallback", rep)
        check(read(f.dst)[:8192] == f.src_data[4096:12288], "bytes differ")
    with tempdir() as d:
        f = Files(d)
        rc, out, err = run("plan", f.src, f.dst, "0:0:4K", "--mode", "offload", "--json")
        check(rc == 3, f"--mode offload on files: exit {rc}")
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", "--mode=bogus")
        expect_bad_input(rc, out, err, "bogus")
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", "--modes=fallback")
        expect_bad_input(rc, out, err, "--modes")
        rc, out, err = run("copy", f.src, f.dst, "0:0:4K", "--journal")
        expect_bad_input(rc, out, err, "--journal")
        f.untouched()

if __name__ == "__main__":
    sys.exit(CASES.main(__doc__))
