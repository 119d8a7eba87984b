#!/usr/bin/python3
"""Issue 8, bad input and hostile bytes (classes 8.1, 8.3, 8.6): every string a user can hand the
binary -- file names, extent arguments, extents-file lines, option values, unknown options -- is
checked before anything is opened, gives exit 2 (or 3 only when --mode offload alone forbade a
request a fallback could do), one terminal-safe line on stderr and, under --json, one object of
valid UTF-8; an extents file that never ends a line, is a directory, a FIFO nobody writes to or
enormous is an error at once in bounded memory; plan never creates or changes anything.

Usage: test_reliability_input.py BINARY CASE | BINARY --list   (exit 0 pass, 1 fail, 77 skip)
"""

import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CASES, Skip, case, check, digest, loop_device, one_error_line, one_json, read, run,  # noqa: E402
                     tempdir, write_random)

# Byte strings a hostile user or file system supplies: invalid UTF-8 of every kind, C0/C1 controls,
# terminal escapes, DEL, a lone continuation byte, overlong and surrogate encodings, U+FFFF.
HOSTILE = [
    b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82",
    b"\x1b]0;title\x07", b"\x1b[31mred", b"\x7f\x01\x02\x1f", b"\xc2\x9b", b"tab\there", b"cr\rlf",
    b"\xef\xbf\xbf", b"quote\"back\\slash", b"\xf0\x9f\x92\xa9",
]


def mkfiles(d, size=64 * 1024):
    src = os.path.join(d, "src.bin")
    dst = os.path.join(d, "dst.bin")
    write_random(src, size, 1)
    write_random(dst, size, 2)
    return src, dst


def expect_refused(args, want_rc, what, *needles, stdin=None):
    """Runs with --json and without: exit want_rc, one JSON object, one stderr line."""
    rc, out, err = run(*args, "--json", stdin=stdin)
    obj = one_json(out, what)
    check(rc == want_rc and obj["exit_status"] == rc, f"{what}: exit {rc} (JSON {obj.get('exit_status')}), want {want_rc}")
    check(obj["status"] == "error" and obj["bytes_copied"] == 0, f"{what}: {obj}")
    line = one_error_line(err, what)
    for n in needles:
        check(n in line, f"{what}: {line!r} does not say {n!r}")
    rc2, out2, err2 = run(*args, stdin=stdin)
    check(rc2 == want_rc, f"{what} (text): exit {rc2}, want {want_rc}")
    one_error_line(err2, what + " (text)")
    out2.decode("utf-8")
    check(b"\x1b" not in out2, f"{what}: raw ESC on stdout")
    return obj


# ------------------------------------------------------------------------------------- hostile bytes


@case
def hostile_bytes_in_every_user_string():
    """File names, extents, extents-file lines, option values and option names made of hostile
    bytes: valid JSON, exit 2, nothing written."""
    with tempdir() as d:
        src, dst = mkfiles(d)
        before = digest(dst)
        for i, h in enumerate(HOSTILE):
            bad = os.path.join(d.encode(), b"missing-" + h)
            expect_refused([b"copy", bad, dst.encode()], 2, f"source name {h!r}")
            expect_refused([b"probe", bad], 2, f"probe name {h!r}")
            expect_refused([b"copy", src.encode(), os.path.join(d.encode(), b"nodir-" + h, b"x")], 2,
                           f"destination dir {h!r}")
            expect_refused([b"copy", src.encode(), dst.encode(), b"0:0:" + h], 2, f"extent {h!r}", "extent")
            expect_refused([b"copy", src.encode(), dst.encode(), b"--mode", h], 2, f"mode {h!r}", "mode")
            expect_refused([b"copy", src.encode(), dst.encode(), b"--backend", h], 2, f"backend {h!r}")
            expect_refused([b"copy", src.encode(), dst.encode(), b"--no-such-" + h], 2, f"option {h!r}")
            expect_refused([b"plan", src.encode(), dst.encode(), b"--extents-file", b"-"], 2, f"extents line {h!r}",
                           "stdin:2", stdin=b"0:0:4K\n" + h + b":0:1\n")
            lst = os.path.join(d, f"list{i}.txt")
            with open(lst, "wb") as f:
                f.write(b"# ok\n0:0:1K\n4K:" + h + b":1K\n")
            expect_refused(["copy", src, dst, "--extents-file", lst], 2, f"extents file {h!r}", "list")
            # A name that exists works and comes back with U+FFFD in the JSON.
            good = os.path.join(d.encode(), b"exists-" + h.replace(b"/", b"_"))
            shutil.copyfile(src, good)
            rc, out, err = run(b"copy", good, os.path.join(d.encode(), b"out-" + h.replace(b"/", b"_")), b"--json")
            obj = one_json(out, f"copy of {h!r}")
            check(rc == 0 and obj["bytes_copied"] == 64 * 1024, f"copy of {h!r}: exit {rc} {err!r}")
        check(digest(dst) == before, "a refused request changed the destination")


@case
def nul_bytes_in_extents_are_refused():
    """NUL cannot come through argv, but it can through an extents file or stdin: exit 2."""
    with tempdir() as d:
        src, dst = mkfiles(d)
        before = digest(dst)
        for line in (b"0:0:4K\x00", b"\x000:0:4K", b"0\x00:0:4K", b"0:0:4\x00K", b"\x00"):
            expect_refused(["copy", src, dst, "--extents-file", "-"], 2, f"line {line!r}", "stdin:1",
                           stdin=line + b"\n")
        check(digest(dst) == before, "the destination changed")


@case
def huge_arguments_give_one_short_line():
    with tempdir() as d:
        src, dst = mkfiles(d)
        huge = "1" * 100000
        for ext in (f"0:0:{huge}", f"{huge}:0:1", "0:0:" + "K" * 100000, ":" * 50000):
            obj = expect_refused(["copy", src, dst, ext], 2, f"{len(ext)}-byte extent")
            check(len(obj["error"]["message"]) < 400, f"message of {len(obj['error']['message'])} bytes")


# ---------------------------------------------------------------------------------------- extents file


def timed(args, timeout=60, **kw):
    """(rc, out, err, seconds, max RSS of the child in KiB)."""
    cmd = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    t0 = time.monotonic()
    p = subprocess.Popen([CASES.binary.encode()] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    return p.returncode, out, err, time.monotonic() - t0


def start_up_rss_kib():
    """Peak RSS in KiB of `offload-copy --version`: the binary's own footprint (about 10 MiB built
    normally, over 100 MiB with AddressSanitizer's shadow and allocator)."""
    p = subprocess.Popen([CASES.binary, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.wait4(p.pid, 0)[2].ru_maxrss


def child_max_rss_kib(fn):
    """Runs fn() and returns (its result, the peak RSS in KiB of any child waited for so far, less
    the binary's start-up RSS): an upper bound of what the child fn ran added to its footprint."""
    base = start_up_rss_kib()
    r = fn()
    return r, max(0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss - base)


@case
def extents_file_dev_zero_is_refused_at_once():
    with tempdir() as d:
        src, dst = mkfiles(d)
        (rc, out, err, dt), rss = child_max_rss_kib(lambda: timed(["copy", src, dst, "--extents-file", "/dev/zero",
                                                                     "--json"]))
        obj = one_json(out, "/dev/zero")
        check(rc == 2 and "longer than 4096 bytes" in obj["error"]["message"], f"exit {rc}: {obj}")
        check(dt < 5, f"took {dt:.1f} s")
        check(rss < 100 * 1024, f"peak RSS {rss} KiB above start-up")
        (rc, out, err, dt) = timed(["copy", src, dst, "--extents-file", "/dev/urandom", "--json"])
        check(rc == 2 and dt < 5, f"/dev/urandom: exit {rc} in {dt:.1f} s: {out!r}")


@case
def extents_file_directory_is_refused():
    with tempdir() as d:
        src, dst = mkfiles(d)
        obj = expect_refused(["copy", src, dst, "--extents-file", d], 2, "directory", "is a directory")
        check(obj["error"]["code"] == "invalid-argument", obj)
        expect_refused(["copy", src, dst, "--extents-file", os.path.join(d, "missing.txt")], 2, "missing",
                       "missing.txt")


@case
def extents_file_enormous_is_refused_at_once():
    with tempdir() as d:
        src, dst = mkfiles(d)
        big = os.path.join(d, "big.txt")
        with open(big, "wb") as f:
            f.truncate(100 << 30)  # sparse: 100 GiB of NULs
        rc, out, err, dt = timed(["copy", src, dst, "--extents-file", big, "--json"])
        obj = one_json(out, "100 GiB file")
        check(rc == 2 and "more than an extents file may have" in obj["error"]["message"], f"exit {rc}: {obj}")
        check(dt < 5, f"took {dt:.1f} s")
        # An endless stream of valid lines is cut at the line limit, in bounded memory.
        yes = subprocess.Popen(["yes", "0:0:1"], stdout=subprocess.PIPE)
        try:
            (rc, out, err, dt), rss = child_max_rss_kib(
                lambda: timed(["copy", src, dst, "--extents-file", "-", "--json"], stdin=yes.stdout))
        finally:
            yes.kill()
            yes.wait()
        obj = one_json(out, "yes")
        check(rc == 2 and "more than 1048576 lines" in obj["error"]["message"], f"exit {rc}: {obj}")
        check(rss < 200 * 1024, f"peak RSS {rss} KiB above start-up")


@case
def extents_file_fifo_nobody_writes_to():
    with tempdir() as d:
        src, dst = mkfiles(d)
        before = digest(dst)
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        # No writer at all: opening must not hang; silent for --extents-timeout: exit 2.
        rc, out, err, dt = timed(["copy", src, dst, "--extents-file", fifo, "--extents-timeout", "1", "--json"])
        obj = one_json(out, "fifo without writer")
        check(rc == 2 and "no data for 1 s" in obj["error"]["message"], f"exit {rc}: {obj}")
        check(dt < 10, f"took {dt:.1f} s")
        # A writer that keeps it open and sends one line, then nothing.
        w = os.open(fifo, os.O_RDWR)  # a writer that never closes
        try:
            os.write(w, b"0:0:4K\n")
            rc, out, err, dt = timed(["copy", src, dst, "--extents-file", fifo, "--extents-timeout", "1", "--json"])
            check(rc == 2 and dt < 10, f"silent writer: exit {rc} in {dt:.1f} s")
        finally:
            os.close(w)
        check(digest(dst) == before, "the destination changed")


# --------------------------------------------------------------------------------------- bad paths


@case
def bad_paths_are_exit_2_and_create_nothing():
    with tempdir() as d:
        src, dst = mkfiles(d)
        loop = os.path.join(d, "loop")
        os.symlink("loop", loop)
        cases = {
            "not a directory": os.path.join(src, "x"),
            "name too long": os.path.join(d, "n" * 300),
            "path too long": os.path.join(d, *(["p" * 200] * 30)),
            "symlink loop": loop,
            "missing parent": os.path.join(d, "no", "such", "dir", "x"),
            "empty": "",
        }
        for what, p in cases.items():
            expect_refused(["copy", src, p], 2, f"destination: {what}")
            expect_refused(["copy", p, dst], 2, f"source: {what}")
            expect_refused(["plan", src, p], 2, f"plan destination: {what}")
            expect_refused(["probe", p], 2, f"probe: {what}")
            expect_refused(["copy", src, dst, "--journal", p], 2, f"journal: {what}")
        check(sorted(os.listdir(d)) == ["dst.bin", "loop", "src.bin"], f"left behind: {os.listdir(d)}")
        # A directory the user may not write: as nobody (root ignores modes).
        if os.geteuid() == 0 and shutil.which("setpriv"):
            ro = os.path.join(d, "ro")
            os.mkdir(ro, 0o555)
            os.chmod(d, 0o755)
            os.chmod(src, 0o644)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CASES.binary, "copy", src,
                   os.path.join(ro, "x"), "--json"]
            p = subprocess.run(cmd, capture_output=True)
            if p.returncode == 126:
                raise Skip("the binary is not executable by uid 65534")
            obj = one_json(p.stdout, "EACCES")
            check(p.returncode == 2 and obj["exit_status"] == 2, f"EACCES: exit {p.returncode}: {obj}")
            check(os.listdir(ro) == [], "created in a read-only directory")


@case
def option_values_and_usage_errors_are_exit_2():
    with tempdir() as d:
        src, dst = mkfiles(d)
        before = digest(dst)
        for args in (["--in-flight", "abc"], ["--in-flight", "-1"], ["--in-flight", "0"],
                     ["--in-flight", "99999999999999999999"], ["--max-segments", "x"], ["--buffer-size", "0"],
                     ["--buffer-size", "2G"], ["--buffer-size", "1G", "--buffers", "64"], ["--buffers", "many"],
                     ["--submit", "later"], ["--mode"], ["--extents-timeout", "-3"], ["--show", "1"],
                     ["--no-such-option"], ["0:0:1K", "extra:arg"]):
            expect_refused(["copy", src, dst, *args], 2, " ".join(args))
        for args in (["plan", src], ["copy"], ["probe"], ["frobnicate"], []):
            rc, out, err = run(*args, "--json")
            obj = one_json(out, f"{args}")
            check(rc == 2 and obj["exit_status"] == 2 and obj["status"] == "error", f"{args}: exit {rc}")
        check(digest(dst) == before, "the destination changed")


# ----------------------------------------------------------------------------------- one exit rule


@case
def exit_3_only_when_mode_offload_alone_forbids_it():
    """2: no mode could carry it out; 3: a fallback could, but --mode offload forbids it."""
    with tempdir() as d:
        src, dst = mkfiles(d, 1 << 20)
        before = digest(dst)
        # Files: no offload exists. --mode offload: 3. A backend list that cannot serve files: 2 in
        # auto (no mode could run the request as given), 3 under --mode offload.
        expect_refused(["copy", src, dst, "--mode", "offload"], 3, "files, offload", "offload impossible")
        expect_refused(["copy", src, dst, "--backend", "nvme-copy"], 2, "files, --backend nvme-copy (auto)")
        expect_refused(["copy", src, dst, "--backend", "nvme-copy", "--backend", "scsi-xcopy", "--mode", "fallback"],
                       2, "files, offload backends, fallback mode")
        expect_refused(["plan", src, dst, "--backend", "scsi-token"], 2, "plan, --backend scsi-token")
        expect_refused(["copy", src, dst, "--backend", "nvme-copy", "--mode", "offload"], 3, "files, nvme-copy, offload")
        check(digest(dst) == before, "the destination changed")
        a, b = os.path.join(d, "a.img"), os.path.join(d, "b.img")
        write_random(a, 1 << 20, 4)
        write_random(b, 1 << 20, 5)
        before = digest(b)
        with loop_device(a) as la, loop_device(b) as lb:
            # Misaligned for offload: a fallback could copy it (3 under offload, 0 in auto).
            expect_refused(["copy", la, lb, "1:0:512", "--mode", "offload"], 3, "misaligned, offload", "not a multiple")
            expect_refused(["plan", la, lb, "0:0:100", "--mode", "offload"], 3, "plan misaligned, offload")
            p = subprocess.run(["losetup", "-b", "4096", lb], capture_output=True, text=True)
            big_blocks = p.returncode == 0
            if big_blocks:
                expect_refused(["copy", la, lb, "0:0:4K", "--mode", "offload"], 3, "512 vs 4096, offload",
                               "equal logical block sizes")
                expect_refused(["plan", la, lb, "0:0:4K", "--mode", "offload"], 3, "plan 512 vs 4096, offload")
            expect_refused(["copy", la, lb, "0:0:4K", "--mode", "offload"] if not big_blocks else
                           ["copy", la, lb, "0:0:8K", "--mode", "offload"], 3, "no offload on loop devices")
            # Out of range is 2 in every mode.
            for mode in ("auto", "offload", "fallback"):
                expect_refused(["copy", la, lb, "0:1020K:8K", "--mode", mode], 2, f"past the end, {mode}")
            # --backend nvme-copy cannot serve loop devices: 2 in auto, never 3. (copy-file-range
            # can: the resolution stage gives it the backing files.)
            expect_refused(["copy", la, lb, "0:0:4K", "--backend", "nvme-copy"], 2, "nvme-copy on loop devices")
        check(digest(b) == before, "the loop destination changed")


@case
def plan_never_creates_or_touches_anything():
    with tempdir() as d:
        src, dst = mkfiles(d)
        st_before = os.stat(dst)
        dir_before = os.stat(d).st_mtime_ns
        journal = os.path.join(d, "j.journal")
        missing = os.path.join(d, "new.bin")
        for args in (["plan", src, dst], ["plan", src, dst, "--journal", journal], ["plan", src, missing],
                     ["plan", src, missing, "--journal", journal], ["plan", src, dst, "0:0:0"],
                     ["plan", src, dst, "--mode", "offload"], ["plan", src, src, "0:1:1K"]):
            run(*args)
            run(*args, "--json")
        st_after = os.stat(dst)
        check(st_after.st_mtime_ns == st_before.st_mtime_ns and st_after.st_ctime_ns == st_before.st_ctime_ns,
              "plan changed the destination's times")
        check(sorted(os.listdir(d)) == ["dst.bin", "src.bin"], f"plan created {os.listdir(d)}")
        check(os.stat(d).st_mtime_ns == dir_before, "plan created and removed something")


if __name__ == "__main__":
    sys.exit(CASES.main(__doc__))
