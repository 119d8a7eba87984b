#!/usr/bin/python3
"""Issue 11.4, the CLI's catch-all on the real binary: an unexpected exception is exit 1 (not a
signal, no core), one line on stderr and, under --json, one JSON object of the schema -- never an
abort. (tests/unit/cli/guard_test.cpp drives the same guard with every kind of exception.)

The exception is real: offload-copy links libstdc++ statically, so no LD_PRELOAD'ed operator new
can fail; instead RLIMIT_AS is set a little above what the binary needs to start and plan a small
request, and an --extents-file of 2^20 lines makes the CLI's own vector of extents (32 bytes each,
32 MiB at the end, 48 MiB live while it grows) throw std::bad_alloc before the library is called.
AddressSanitizer reserves terabytes of address space for its shadow memory, so under ASan
RLIMIT_AS cannot work: those cases are skipped (exit 77) with that reason.

Usage: test_reliability_unexpected.py BINARY CASE | BINARY --list   (exit 0 pass, 1 fail, 77 skip)
"""

import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CASES, Failure, Skip, case, check, one_error_line, one_json, tempdir, write_random, schema_validator  # noqa: E402

MiB = 1 << 20
LINES = 1 << 20  # the extents file's limit (src/cli/parse.hpp, extents_file_limits::max_lines)
HEADROOM = 16 * MiB  # above the start-up need; the growing vector needs 48 MiB


def binary_uses_asan():
    with open(CASES.binary, "rb") as f:
        return b"__asan_init" in f.read()


def run_limited(limit, args):
    """Runs the binary under RLIMIT_AS = `limit` bytes: (returncode, stdout, stderr)."""
    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    p = subprocess.run([CASES.binary, *args], capture_output=True, timeout=120, preexec_fn=limit_address_space)
    return p.returncode, p.stdout, p.stderr


def start_up_limit(d, src):
    """The smallest RLIMIT_AS, in 1 MiB steps, under which the binary plans a one-extent request
    normally (exit 0): what it needs to start, parse and plan."""
    if binary_uses_asan():
        raise Skip("built with AddressSanitizer, which reserves terabytes of address space for its shadow "
                   "memory: RLIMIT_AS cannot make an allocation fail without failing the start-up")
    args = ["plan", src, os.path.join(d, "dst.bin"), "0:0:4K", "--json"]
    lo, hi = 1 * MiB, 1024 * MiB  # lo fails, hi works
    rc, out, err = run_limited(hi, args)
    check(rc == 0, f"plan under RLIMIT_AS {hi} bytes: exit {rc}: {err[:300]!r}")
    while hi - lo > MiB:
        mid = (lo + hi) // 2 // MiB * MiB
        rc, _, _ = run_limited(mid, args)
        if rc == 0:
            hi = mid
        else:
            lo = mid
    return hi


def setup(d):
    """A source, and an extents file of LINES lines (each 0:0:1: valid, but they overlap)."""
    src = os.path.join(d, "src.bin")
    write_random(src, 64 * 1024)
    ext = os.path.join(d, "extents.txt")
    with open(ext, "w") as f:
        f.write("0:0:1\n" * LINES)
    return src, ext



def expect_caught(rc, err, what):
    """Exit 1 by exit(), not a signal (an abort is -6 here, and could leave a core)."""
    check(rc == 1, f"{what}: exit {rc} (negative: killed by signal {-rc}): {err[:300]!r}")
    line = one_error_line(err, what)
    check(line == "offload-copy: internal: unexpected error: out of memory (std::bad_alloc)",
          f"{what}: the CLI's catch-all did not report it: {line!r}")


@case
def bad_alloc_in_the_cli_is_exit_1_with_a_message():
    with tempdir() as d:
        src, ext = setup(d)
        base = start_up_limit(d, src)
        limit = base + HEADROOM
        print(f"start-up needs RLIMIT_AS >= {base // MiB} MiB; running under {limit // MiB} MiB")
        for verb in ("plan", "copy"):
            rc, out, err = run_limited(limit, [verb, src, os.path.join(d, "dst.bin"), "--extents-file", ext])
            expect_caught(rc, err, verb)
            check(out == b"", f"{verb}: stdout {out[:200]!r}")
            check(not os.path.exists(os.path.join(d, "dst.bin")), f"{verb} created the destination")
        # The input itself is fine for the parser: without the limit it is refused as bad input.
        rc, out, err = run_limited(resource.RLIM_INFINITY, ["plan", src, os.path.join(d, "dst.bin"),
                                                             "--extents-file", ext])
        check(rc == 2 and b"overlap" in err, f"without the limit: exit {rc}: {err[:300]!r}")


@case
def bad_alloc_in_the_cli_under_json_is_one_object():
    v = schema_validator()
    with tempdir() as d:
        src, ext = setup(d)
        limit = start_up_limit(d, src) + HEADROOM
        for verb in ("plan", "copy"):
            rc, out, err = run_limited(limit, [verb, src, os.path.join(d, "dst.bin"), "--extents-file", ext, "--json"])
            expect_caught(rc, err, f"{verb} --json")
            obj = one_json(out, f"{verb} --json")
            errors = [e.message for e in v.iter_errors(obj)]
            check(not errors, f"{verb} --json: {obj} does not match the schema: {errors[:3]}")
            check(obj["status"] == "error" and obj["error"]["code"] == "internal" and obj["exit_status"] == 1
                  and obj["outcome"] == "device-error" and obj["operation"] == verb and obj["bytes_copied"] == 0, obj)
            check(obj["error"]["message"] == "unexpected error: out of memory (std::bad_alloc)", obj)


if __name__ == "__main__":
    sys.exit(CASES.main(__doc__))
