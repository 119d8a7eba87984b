"""Shared helpers of the reliability scripts (tests/cli/test_reliability_*.py): cases, running the
binary, temporary directories, loop devices. Standard library only.

A script is run as `SCRIPT BINARY CASE` (exit 0 passed, 1 failed, 77 skipped with the reason
printed) or `SCRIPT BINARY --list` (its case names; tests/cli/CMakeLists.txt registers each).
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


class Skip(Exception):
    pass


class Failure(Exception):
    pass


class Cases:
    def __init__(self):
        self.cases = {}
        self.binary = ""

    def case(self, fn):
        self.cases[fn.__name__] = fn
        return fn

    def main(self, doc):
        if len(sys.argv) != 3:
            print(doc, file=sys.stderr)
            return 2
        self.binary = os.path.abspath(sys.argv[1])
        if sys.argv[2] == "--list":
            print("\n".join(self.cases))
            return 0
        fn = self.cases.get(sys.argv[2])
        if fn is None:
            print(f"unknown case {sys.argv[2]}; --list shows them", file=sys.stderr)
            return 2
        try:
            fn()
        except Skip as e:
            print(f"SKIP {sys.argv[2]}: {e}")
            return SKIP
        except Failure as e:
            print(f"FAIL {sys.argv[2]}: {e}")
            return 1
        print(f"PASS {sys.argv[2]}")
        return 0


CASES = Cases()
case = CASES.case


def binary():
    return CASES.binary


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(*args, stdin=None, timeout=120, wrap=(), **kw):
    """Runs the binary (behind the command `wrap`, e.g. setpriv, when given); arguments may be str or
    bytes. Returns (rc, stdout bytes, stderr bytes)."""
    cmd = [w.encode() for w in wrap] + [binary().encode()]
    cmd += [a if isinstance(a, bytes) else str(a).encode() for a in args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def one_json(out, what):
    """The one JSON object of a --json run: one line, strict UTF-8, parses."""
    text = out.decode("utf-8")  # strict: invalid UTF-8 is a failure
    check(text.count("\n") == 1 and text.endswith("\n"), f"{what}: expected one JSON line, got {out[:300]!r}")
    return json.loads(text)


def one_error_line(err, what):
    lines = err.splitlines()
    check(len(lines) == 1 and lines[0].startswith(b"offload-copy: "), f"{what}: stderr {err[:300]!r}")
    err.decode("utf-8")
    check(b"\x1b" not in err and b"\x07" not in err and b"\x00" not in err, f"{what}: raw control bytes {err!r}")
    return lines[0].decode()


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_random(path, size, seed=None):
    """`size` random bytes (os.urandom: fast; `seed` is kept for the call sites' readability)."""
    del seed
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n


def memmove(data, src, dst, n):
    """`data` after C memmove(dst, src, n) within it: the reference for an overlapping copy."""
    b = bytearray(data)
    b[dst:dst + n] = data[src:src + n]
    return bytes(b)


def random_source(d, size, seed=None):
    """Paths d/src.bin, written with `size` random bytes, and d/dst.bin (not created)."""
    src, dst = os.path.join(d, "src.bin"), os.path.join(d, "dst.bin")
    write_random(src, size, seed)
    return src, dst


@contextlib.contextmanager
def tempdir(prefix="offcopy-rel-", before_removal=None):
    """A temporary directory removed at exit, after `before_removal(path)` when given."""
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        if before_removal is not None:
            before_removal(d)
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def loop_device(image, read_only=False, offset=0):
    if shutil.which("losetup") is None:
        raise Skip("losetup is not installed")
    args = ["losetup", "-f", "--show"] + (["-r"] if read_only else []) + (["-o", str(offset)] if offset else []) + [image]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise Skip(f"cannot set up a loop device ({' '.join(args)}): {p.stderr.strip()}")
    dev = p.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def schema_validator():
    """A validator for docs/offload-copy.schema.json (python3-jsonschema, scripts/install-deps.sh)."""
    try:
        import jsonschema
    except ImportError:
        raise Failure("python3-jsonschema is not installed (scripts/install-deps.sh installs it)")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "offload-copy.schema.json")
    with open(path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
