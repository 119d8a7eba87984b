#!/usr/bin/python3
"""Issue 8, crashes and resume (class 8.8), on the host's fallbacks: `copy --journal FILE` killed
with SIGKILL mid-copy (files, loop devices), run again, copies only what is missing and ends with
identical bytes; it refuses (exit 2, with the reason) when the request or a device changed or the
journal is damaged; an overlapping move on one file resumes correctly or is refused with the reason.

Usage: test_reliability_resume.py BINARY CASE | BINARY --list   (exit 0 pass, 1 fail, 77 skip)
"""

import fcntl
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CASES, case, check, digest, loop_device, memmove, one_json, random_source, read, run,  # noqa: E402
                     tempdir, write_random)

MiB = 1 << 20
RECORD_BYTES = 28  # one "done" record: kind, length, lo, hi, CRC


def kill_after_progress(args, journal, timeout=120):
    """Starts the copy and SIGKILLs it once its journal holds a done record. Returns False when the
    copy finished first."""
    p = subprocess.Popen([CASES.binary, *[str(a) for a in args]], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    header = 0
    try:
        while time.monotonic() < deadline:
            if p.poll() is not None:
                return False
            try:
                size = os.path.getsize(journal)
            except FileNotFoundError:
                size = 0
            if header == 0 and size > 0:
                header = size
            if header and size >= header + RECORD_BYTES:
                p.send_signal(signal.SIGKILL)
                p.wait()
                return True
            time.sleep(0.001)
        raise AssertionError("no progress recorded in the journal")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def resume(args, total, what):
    rc, out, err = run(*args, "--json")
    obj = one_json(out, what)
    check(rc == 0 and obj["outcome"] == "done", f"{what}: exit {rc}: {err!r}")
    check(obj["resumed_bytes"] > 0, f"{what}: nothing resumed: {obj}")
    check(obj["resumed_bytes"] + obj["bytes_copied"] == total,
          f"{what}: resumed {obj['resumed_bytes']} + copied {obj['bytes_copied']} != {total}")
    check(obj["bytes_copied"] < total, f"{what}: copied everything again")
    return obj


def killed_buffered_copy(d, size, seed):
    """A journalled buffered copy of `size` random bytes to a new file, SIGKILLed once its journal
    holds a done record. Returns (src, dst, journal, args of the copy)."""
    src, dst = random_source(d, size, seed)
    journal = os.path.join(d, "j")
    args = ["copy", src, dst, "--mode", "fallback", "--backend", "buffered", "--journal", journal]
    if not kill_after_progress(args, journal):
        raise AssertionError("finished before the kill")
    return src, dst, journal, args


@case
def kill9_then_resume_files():
    with tempdir() as d:
        size = 768 * MiB
        src, dst = random_source(d, size, 1)
        want = digest(src)
        for backend, existing in (("buffered", False), ("copy-file-range", True), ("buffered", True)):
            journal = os.path.join(d, "copy.journal")
            if existing:
                write_random(dst, size, 2)
            args = ["copy", src, dst, "--mode", "fallback", "--backend", backend, "--journal", journal]
            if not kill_after_progress(args, journal):
                raise AssertionError(f"{backend}: the copy finished before it could be killed")
            check(os.path.exists(journal), "the journal is gone after SIGKILL")
            # plan with the journal says what a resume would copy, and changes nothing.
            jsize = os.path.getsize(journal)
            rc, out, err = run("plan", src, dst, "--mode", "fallback", "--backend", backend, "--journal", journal,
                               "--json")
            planned = one_json(out, "plan --journal")
            check(rc == 0 and 0 < planned["resumed_bytes"] < size and planned["total_bytes"] == size - planned["resumed_bytes"],
                  f"plan --journal: {planned}")
            check(os.path.getsize(journal) == jsize, "plan changed the journal")
            obj = resume(args + ["--verify"], size, f"{backend} resume")
            check(obj["verified"] is True, f"the resumed copy was not verified whole: {obj}")
            check(digest(dst) == want, f"{backend}: the resumed copy differs from the source")
            check(not os.path.exists(journal), "the journal was not removed after the copy completed")
            print(f"{backend}{' (existing destination)' if existing else ''}: resumed "
                  f"{obj['resumed_bytes']} bytes, copied {obj['bytes_copied']}")
            os.unlink(dst)


@case
def kill9_then_resume_loop_devices():
    with tempdir() as d:
        a, b = os.path.join(d, "a.img"), os.path.join(d, "b.img")
        size = 768 * MiB
        write_random(a, size, 3)
        write_random(b, size, 4)
        with loop_device(a) as la, loop_device(b) as lb:
            journal = os.path.join(d, "loop.journal")
            ext = [f"0:{4 * MiB}:{size - 8 * MiB}", f"{size - 4 * MiB}:0:{4 * MiB}"]
            args = ["copy", la, lb, *ext, "--journal", journal]
            if not kill_after_progress(args, journal):
                raise AssertionError("the copy finished before it could be killed")
            obj = resume(args, size - 4 * MiB, "loop resume")
            print(f"loop devices: resumed {obj['resumed_bytes']} bytes, copied {obj['bytes_copied']}")
        got, src = read(b), read(a)
        check(got[4 * MiB:size - 4 * MiB] == src[:size - 8 * MiB], "extent 1 differs")
        check(got[:4 * MiB] == src[size - 4 * MiB:], "extent 2 differs")


@case
def kill9_then_resume_through_shifted_doors():
    """Loop devices at offsets into their files: the copy runs on the files (the resolution stage's
    media) at a shift, and the journal must still record the loop devices' own offsets."""
    with tempdir() as d:
        a, b = os.path.join(d, "a.img"), os.path.join(d, "b.img")
        size = 512 * MiB
        a_off, b_off = 1 * MiB, 96 * MiB  # wider than what a killed copy does past its last record
        write_random(a, size + a_off, 5)
        write_random(b, size + b_off, 6)
        before_b = read(b)
        with loop_device(a, offset=a_off) as la, loop_device(b, offset=b_off) as lb:
            journal = os.path.join(d, "shift.journal")
            n = size - 8 * MiB
            args = ["copy", la, lb, f"0:{4 * MiB}:{n}", "--journal", journal]
            if not kill_after_progress(args, journal):
                raise AssertionError("the copy finished before it could be killed")
            obj = resume(args, n, "shifted resume")
            print(f"loop devices at offsets: resumed {obj['resumed_bytes']} bytes, copied {obj['bytes_copied']}")
        got, src = read(b), read(a)
        lo = b_off + 4 * MiB
        check(got[lo:lo + n] == src[a_off:a_off + n], "the copied range differs from the source")
        check(got[:lo] == before_b[:lo] and got[lo + n:] == before_b[lo + n:], "bytes outside the range changed")


@case
def resume_is_refused_when_the_request_or_a_device_changed():
    with tempdir() as d:
        size = 1024 * MiB
        src, dst, journal, args = killed_buffered_copy(d, size, 5)
        saved = read(journal)
        dst_sum = digest(dst)

        def refused(what, cmd, *needles):
            journal_before = read(journal)
            rc, out, err = run(*cmd, "--json")
            obj = one_json(out, what)
            check(rc == 2 and obj["exit_status"] == 2, f"{what}: exit {rc}: {obj}")
            for n in needles:
                check(n in obj["error"]["message"], f"{what}: {obj['error']['message']!r} does not say {n!r}")
            check(digest(dst) == dst_sum, f"{what}: the destination changed")
            check(read(journal) == journal_before, f"{what}: the journal changed")

        refused("other extents", ["copy", src, dst, "0:0:1G", "--journal", journal], "extents differ")
        refused("fewer extents", ["copy", src, dst, "0:0:512M", "--journal", journal], "extents differ")
        st_src = os.stat(src)
        os.utime(src, ns=(st_src.st_atime_ns, st_src.st_mtime_ns + 1))
        refused("source touched", args, "source", "mtime_ns")
        os.utime(src, ns=(st_src.st_atime_ns, st_src.st_mtime_ns))  # back: the request is the same again
        other = os.path.join(d, "other.bin")
        os.rename(dst, other)
        write_random(dst, 4096, 6)
        dst_sum = digest(dst)
        refused("another destination", args, "destination is another file")
        os.unlink(dst)
        os.rename(other, dst)
        dst_sum = digest(dst)
        # Damaged journal: garbage before the records, a foreign file.
        with open(journal, "r+b") as f:
            f.seek(20)
            f.write(b"\xff\xff\xff\xff")
        refused("damaged header", args, "damaged")
        with open(journal, "wb") as f:
            f.write(saved)
        with open(journal, "wb") as f:
            f.write(b"#!/bin/sh\necho not a journal\n")
        refused("not a journal", args, "not an offcopy journal")
        with open(journal, "wb") as f:
            f.write(saved)
        # In use by another copy: busy, exit 2.
        with open(journal, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            refused("journal in use", args, "in use")
        # The journal must not be the source or the destination.
        refused("journal is the destination", ["copy", src, dst, "--journal", dst], "is the source or the destination")
        # Everything put back: it resumes.
        resume(args, size, "after the refusals")
        check(digest(dst) == digest(src), "bytes differ")


@case
def a_torn_journal_tail_is_ignored():
    """A crash mid-append leaves a partial record: it is ignored, the rest is used."""
    with tempdir() as d:
        size = 1024 * MiB
        src, dst, journal, args = killed_buffered_copy(d, size, 7)
        with open(journal, "ab") as f:
            f.write(b"\x02\x00\x00\x00\x10\x00\x00\x00" + b"\x00" * 9)  # a record cut short
        resume(args, size, "torn tail")
        check(digest(dst) == digest(src), "bytes differ")


@case
def an_overlapping_move_resumes_correctly_or_is_refused():
    """A move within one file by 4 KiB (the buffered copier runs each 64 MiB command in memmove
    order): stopped by SIGINT it never stops inside a command, so it resumes; killed with SIGKILL
    inside one, a re-run would read overwritten source bytes: it is refused with the reason, and
    a re-run after a kill between commands resumes."""
    with tempdir() as d:
        path = os.path.join(d, "one.bin")
        size = 512 * MiB
        shift = 4096
        write_random(path, size, 8)
        data = read(path)
        want = memmove(data, 0, shift, size - shift)
        journal = os.path.join(d, "j")
        args = ["copy", path, path, f"0:{shift}:{size - shift}", "--journal", journal]
        # SIGINT: stops between memmove commands, resumable.
        p = subprocess.Popen([CASES.binary, *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        obj = one_json(out, "memmove SIGINT")
        if obj["outcome"] == "cancelled":
            check(os.path.exists(journal), "no journal after the stop")
            resume(args, size - shift, "memmove after SIGINT")
        check(read(path) == want, "the move stopped by SIGINT and resumed differs from memmove")
        # SIGKILL: resumed exactly, or refused with the reason and the journal kept.
        write_random(path, size, 9)
        data = read(path)
        want = memmove(data, 0, shift, size - shift)
        outcomes = set()
        if kill_after_progress(args, journal):
            rc, out, err = run(*args, "--json")
            obj = one_json(out, "memmove after SIGKILL")
            if rc == 0:
                outcomes.add("resumed")
                check(read(path) == want, "the resumed move differs from memmove")
            else:
                outcomes.add("refused")
                check(rc == 2 and "interrupted" in obj["error"]["message"] and "overwritten" in obj["error"]["message"],
                      f"exit {rc}: {obj}")
                check(os.path.exists(journal), "the journal of a refused resume was removed")
            print("after SIGKILL:", outcomes)


if __name__ == "__main__":
    sys.exit(CASES.main(__doc__))
