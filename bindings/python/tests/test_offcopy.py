"""Tests of the offcopy Python package on regular files (no devices needed).

Run through CTest (`ctest -L python`), which sets PYTHONPATH to <build>/python. The import below
must not be skipped: a missing module has to fail the run, never turn it into "no tests".
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import offcopy

MiB = 1 << 20


@pytest.fixture
def rng():
    import random

    return random.Random(0x0FFC0)


def write_random(path, size, rng):
    data = rng.randbytes(size)
    path.write_bytes(data)
    return data


def apply_extents(dst: bytes, src: bytes, extents):
    """The reference result: each extent copied with memmove semantics (bytes slicing copies)."""
    out = bytearray(dst)
    for s, d, n in extents:
        chunk = src[s : s + n] if src is not dst else bytes(out[s : s + n])
        out[d : d + n] = chunk
    return bytes(out)


# --- copies -----------------------------------------------------------------------------------


def test_full_copy_to_new_file(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    data = write_random(src, 3 * MiB + 123, rng)
    report = offcopy.copy(src, dst)
    assert dst.read_bytes() == data
    assert report["status"] == "ok"
    assert report["bytes_copied"] == len(data)
    assert report["bytes_requested"] == len(data)
    assert report["source"] == str(src) and report["destination"] == str(dst)
    assert report["mode"] == "auto"
    # Files cannot be offloaded: whatever ran is a fallback and accounts for every byte.
    assert report["planned_backend"] in ("copy-file-range", "buffered")
    assert sum(b["bytes"] for b in report["backends"].values()) == len(data)


@pytest.mark.parametrize("backend", ["copy-file-range", "buffered"])
def test_full_copy_each_fallback_backend_with_verify(tmp_path, rng, backend):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    data = write_random(src, 2 * MiB + 4095, rng)
    dst.write_bytes(b"\xff" * 100)  # an existing, shorter destination is overwritten in place
    report = offcopy.copy(str(src), str(dst), backends=[backend], verify=True, mode="fallback")
    assert dst.read_bytes() == data
    assert report["verified"] is True
    assert list(report["backends"]) == [backend]
    assert report["backends"][backend]["bytes"] == len(data)


def test_extents_copy(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    data = write_random(src, 1 * MiB, rng)
    before = write_random(dst, 1 * MiB, rng)
    extents = [
        (0, 4096, 8192),  # block-aligned
        (100_000, 7, 333),  # unaligned: files are byte addressable
        (MiB - 1000, 500_000, 1000),  # up to the end of the source
        (12_345, MiB - 1, 1),  # the last destination byte
    ]
    report = offcopy.copy(src, dst, extents)
    assert dst.read_bytes() == apply_extents(before, data, extents)
    assert report["bytes_copied"] == sum(n for _, _, n in extents)


def test_several_sources(tmp_path, rng):
    a, b, c, dst = (tmp_path / n for n in ("a", "b", "c", "dst"))
    da = write_random(a, 64 * 1024, rng)
    db = write_random(b, 64 * 1024, rng)
    dc = write_random(c, 64 * 1024, rng)
    before = write_random(dst, 64 * 1024, rng)
    extents = [(0, 0, 4096), (1, 100, 4096, 5000), (2, 7, 20_000, 333), (0, 9000, 30_000, 10)]
    report = offcopy.copy(a, dst, extents, sources=[b, str(c)], verify=True)
    want = apply_extents(before, da, [(0, 0, 4096), (9000, 30_000, 10)])
    want = apply_extents(want, db, [(100, 4096, 5000)])
    want = apply_extents(want, dc, [(7, 20_000, 333)])
    assert dst.read_bytes() == want
    assert report["bytes_copied"] == 4096 + 5000 + 333 + 10
    assert report["verified"] is True
    p = offcopy.plan(a, dst, extents, sources=[b, c])
    assert sorted(part["source"] for part in p["parts"]) == [0, 1, 2]
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.plan(a, dst, [(3, 0, 0, 1)], sources=[b])
    assert e.value.code == "invalid-argument"
    assert "source 3 does not exist" in str(e.value)
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.plan(a, dst, [(0, 0, 0, 1, 2)], sources=[b])
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.copy(a, dst, [(0, 0, 0, 100), (1, 0, 50, 100)], sources=[b])
    assert e.value.code == "overlap"
    assert dst.read_bytes() == want  # nothing written


def test_extents_grow_the_destination(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    data = write_random(src, 64 * 1024, rng)
    offcopy.copy(src, dst, [(0, 1 * MiB, len(data))])  # new file, written past its (zero) end
    out = dst.read_bytes()
    assert len(out) == MiB + len(data)
    assert out[MiB:] == data
    assert out[:MiB] == bytes(MiB)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("shift", [1, 4096, 100_000])
def test_same_file_overlapping_memmove(tmp_path, rng, direction, shift):
    path = tmp_path / "f"
    size = 512 * 1024 if shift > 1 else 8 * 1024  # a 1-byte shift is one command per byte
    data = write_random(path, size, rng)
    n = size - shift
    extent = (0, shift, n) if direction == "forward" else (shift, 0, n)
    expected = bytearray(data)
    s, d, _ = extent
    expected[d : d + n] = data[s : s + n]
    report = offcopy.copy(path, path, [extent])
    assert path.read_bytes() == bytes(expected)
    assert report["bytes_copied"] == n
    # The plan says it had to order the commands (barriers) to make the move safe.
    p = offcopy.plan(path, path, [extent])
    assert p["ordered"] is True
    assert any(c["barrier"] for c in p["commands"])


def test_same_file_disjoint_extents_need_no_ordering(tmp_path, rng):
    path = tmp_path / "f"
    data = write_random(path, 256 * 1024, rng)
    extents = [(0, 128 * 1024, 4096), (8192, 200_000, 5000)]
    offcopy.copy(path, path, extents)
    assert path.read_bytes() == apply_extents(data, data, extents)
    assert offcopy.plan(path, path, extents)["ordered"] is False


# --- plan and probe ---------------------------------------------------------------------------


def test_plan_shape_and_writes_nothing(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 1 * MiB, rng)
    p = offcopy.plan(src, dst, [(0, 0, 4096), (8192, 8192, 4096), (20_000, 30_000, 100)])
    assert not dst.exists()  # created for planning, removed again
    for key, kind in [
        ("backend", str),
        ("block_bytes", int),
        ("total_bytes", int),
        ("commands_total", int),
        ("segments_total", int),
        ("ordered", bool),
        ("limits", dict),
        ("considered", list),
        ("commands", list),
    ]:
        assert isinstance(p[key], kind), key
    assert p["total_bytes"] == 4096 + 4096 + 100
    assert p["block_bytes"] == 1
    assert p["commands_total"] == len(p["commands"]) >= 1
    assert set(p["limits"]) == {
        "max_segments_per_command",
        "max_segment_blocks",
        "max_command_blocks",
        "contiguous_destination",
    }
    assert [c["backend"] for c in p["considered"]][-1] == p["backend"]
    assert sum(1 for c in p["considered"] if c["chosen"]) == 1
    segments = [seg for c in p["commands"] for seg in c["segments"]]
    assert len(segments) == p["segments_total"]
    assert all(isinstance(c["barrier"], bool) for c in p["commands"])
    assert sum(seg[2] for seg in segments) * p["block_bytes"] == p["total_bytes"]
    assert [0, 0, 4096] in segments


def test_plan_whole_source_and_limits_keywords(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 10_000, rng)
    dst.write_bytes(b"keep")
    p = offcopy.plan(src, dst, max_segment_blocks=8, max_command_blocks=None)
    assert p["total_bytes"] == 10_000
    assert dst.read_bytes() == b"keep"  # an existing destination is left alone
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_segments'"):
        offcopy.plan(src, dst, max_segments=1)


def test_probe_regular_file(tmp_path, rng):
    path = tmp_path / "f"
    write_random(path, 12_345, rng)
    c = offcopy.probe(path)
    assert c["path"] == str(path)
    assert c["kind"] == "regular-file"
    assert c["size_bytes"] == 12_345
    assert c["logical_block_bytes"] == 1
    assert c["physical_block_bytes"] >= 1
    assert c["read_only"] is False
    assert c["block_path"] == str(path)
    assert isinstance(c["identity"], str) and c["identity"]
    assert isinstance(c["offload"], list)
    for m in c["offload"]:
        assert set(m) == {"backend", "available", "reason", "limits", "details"}
        assert isinstance(m["details"], dict)
        assert m["available"] or m["reason"]
    # The same medium has the same identity; another file does not.
    other = tmp_path / "g"
    other.write_bytes(b"x")
    assert offcopy.probe(str(path))["identity"] == c["identity"]
    assert offcopy.probe(other)["identity"] != c["identity"]


def test_probe_bytes_path(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert offcopy.probe(os.fsencode(path))["size_bytes"] == 3


def test_version():
    assert offcopy.__version__ == offcopy.version()
    assert offcopy.__version__.count(".") == 2


# --- errors -----------------------------------------------------------------------------------


def test_error_hierarchy():
    for cls in (offcopy.InvalidRequest, offcopy.OffloadImpossible, offcopy.CopyError):
        assert issubclass(cls, offcopy.Error)
    assert issubclass(offcopy.InvalidRequest, ValueError)


def test_invalid_request_not_found(tmp_path):
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.probe(tmp_path / "missing")
    assert e.value.code == "not-found"
    assert e.value.report["bytes_copied"] == 0
    assert e.value.report["error"]["code"] == "not-found"
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(tmp_path / "missing", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize(
    "extents, code",
    [
        ([(0, 0, 2 * MiB)], "out-of-range"),  # past the end of the source
        ([(0, 0, 0)], "zero-length"),
        ([(0, 0, 4096), (8192, 2048, 4096)], "overlap"),  # two extents write the same bytes
    ],
)
def test_invalid_request_codes_and_created_destination_removed(tmp_path, rng, extents, code):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 1 * MiB, rng)
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.copy(src, dst, extents)
    assert e.value.code == code
    assert e.value.bytes_copied == 0
    assert str(e.value).startswith(code + ": ")
    assert not dst.exists()  # created for the copy, removed again: nothing was written
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.plan(src, dst, extents)
    assert not dst.exists()


def test_invalid_request_bad_arguments(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 4096, rng)
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.copy(src, dst, mode="sideways")
    assert e.value.code == "invalid-argument"
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(src, dst, backends=["teleport"])
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(src, dst, [(0, 0)])
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(src, dst, [(-1, 0, 10)])
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(src, dst, in_flight=0)
    with pytest.raises(ValueError):  # InvalidRequest is a ValueError too
        offcopy.plan(src, dst, max_segment_blocks=-1)
    with pytest.raises(TypeError):
        offcopy.copy(src, dst, [(0.5, 0, 10)])
    with pytest.raises(TypeError):
        offcopy.copy(src, dst, progress=42)
    with pytest.raises(TypeError):
        offcopy.probe(None)
    assert not dst.exists()


def test_directory_is_invalid(tmp_path):
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.probe(tmp_path)
    assert e.value.code == "invalid-argument"


def test_offload_impossible_on_files(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 64 * 1024, rng)
    with pytest.raises(offcopy.OffloadImpossible) as e:
        offcopy.copy(src, dst, mode="offload")
    assert e.value.code == "not-supported"
    assert e.value.bytes_copied == 0
    assert not dst.exists()
    with pytest.raises(offcopy.OffloadImpossible):
        offcopy.plan(src, dst, mode="offload")


# RLIMIT_FSIZE makes the kernel refuse writes past 64 KiB with EFBIG: a real I/O error mid-copy,
# without a device. In a child process so the limit does not touch pytest's own files.
_FSIZE_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    import offcopy
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
    try:
        offcopy.copy(sys.argv[1], sys.argv[2], backends=[sys.argv[3]])
    except offcopy.CopyError as e:
        print(json.dumps({"cls": type(e).__name__, "code": e.code, "errno": e.errno, "report": e.report}))
    """
)


@pytest.mark.parametrize("backend", ["copy-file-range", "buffered"])
def test_copy_error_io(tmp_path, rng, backend):
    import errno
    import json

    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 1 * MiB, rng)
    out = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(src), str(dst), backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["cls"] == "CopyError"
    assert got["code"] == "io-error"
    assert got["errno"] == errno.EFBIG
    report = got["report"]
    assert report["status"] == "error"
    assert report["error"]["errno"] == errno.EFBIG
    assert 0 <= report["bytes_copied"] <= 65536 < report["bytes_requested"]
    # A destination the copy created and wrote nothing known to is removed (issue 8.4).
    if report["bytes_copied"] == 0:
        assert not dst.exists()
    else:
        assert dst.stat().st_size <= 65536


def test_error_classification_follows_bytes_written():
    # The CLI's exit-status rule, decided by the library (offcopy::classify) for every front end: a
    # "bad input" or "not supported" code after bytes were written is a copy error (the
    # destination changed), not a clean refusal. The package maps the library's outcome to a class.
    from offcopy import _offcopy

    def report(code, written):
        return {
            "status": "error",
            "bytes_copied": written,
            "outcome": _offcopy.classify(code, written),
            "error": {"code": code, "message": "m", "errno": 5},
        }

    cases = [
        ("out-of-range", 0, offcopy.InvalidRequest),
        ("out-of-range", 512, offcopy.CopyError),
        ("not-supported", 0, offcopy.OffloadImpossible),
        ("not-supported", 512, offcopy.CopyError),
        ("device-error", 0, offcopy.CopyError),
        ("verify-mismatch", 4096, offcopy.CopyError),
        ("cancelled", 0, offcopy.CopyError),
    ]
    for code, written, cls in cases:
        e = offcopy._error_from_report(report(code, written))
        assert type(e) is cls, (code, written)
        assert e.code == code and e.errno == 5 and e.bytes_copied == written


# --- progress, cancellation, GIL --------------------------------------------------------------


def block_moves_up(size, block=4096):
    """A same-file move up by one block, written as one extent per block in memmove order (from the
    end): each extent is its own ordered command, so the copy takes many commands. (A move given as
    one extent is a single memmove-ordered command and ends too fast for these tests.)"""
    return [(block * i, block * (i + 1), block) for i in range(size // block - 2, -1, -1)]



def test_progress_monotonic(tmp_path, rng):
    path = tmp_path / "f"
    size = 1 * MiB
    data = write_random(path, size, rng)
    # A same-file move by 4 KiB, one ordered command per block: many progress calls.
    calls = []
    report = offcopy.copy(path, path, block_moves_up(size), progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 10
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert all(0 < d <= t for d, t in calls)
    assert {t for _, t in calls} == {size - 4096}
    assert calls[-1] == (size - 4096, size - 4096) == (report["bytes_copied"], report["bytes_requested"])
    assert path.read_bytes() == data[:4096] + data[: size - 4096]


def test_progress_exception_stops_the_copy(tmp_path, rng):
    path = tmp_path / "f"
    size = 1 * MiB
    write_random(path, size, rng)
    calls = []

    class Stop(Exception):
        pass

    def progress(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise Stop("enough")

    with pytest.raises(Stop):
        offcopy.copy(path, path, block_moves_up(size), progress=progress)
    assert len(calls) == 3  # never called again once it raised


def test_signal_interrupts_a_copy_without_progress(tmp_path):
    # Ctrl-C must work while the GIL is released: the module polls for signals between commands.
    path = tmp_path / "f"
    block = 4096
    blocks = 16 * 1024  # 64 MiB: ~16k ordered commands
    data = b"".join(i.to_bytes(4, "little") * (block // 4) for i in range(blocks))
    path.write_bytes(data)

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    def send_once_started():
        # The signal goes out once the copy has visibly started (a forward move runs from the end
        # of the file towards its start), so it cannot arrive before the copy enters C++.
        fd = os.open(path, os.O_RDONLY)
        try:
            deadline = time.monotonic() + 60
            while os.pread(fd, block, len(data) - block) == data[-block:] and time.monotonic() < deadline:
                time.sleep(0.001)
        finally:
            os.close(fd)
        os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        sender = threading.Thread(target=send_once_started)
        sender.start()
        with pytest.raises(Interrupted):
            offcopy.copy(path, path, block_moves_up(len(data), block), sync=False)
        sender.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    out = path.read_bytes()
    assert out[-block:] == data[-2 * block : -block], "the copy never started"
    assert out[block : 2 * block] == data[block : 2 * block], "the copy ran to the end: not interrupted"


def test_gil_released_during_copy(tmp_path):
    # While a copy runs in one thread, another thread must be able to run Python code. Were the
    # GIL held, the loop below could only tick before the copy enters C++ and after it returns
    # (a handful of times); released, it ticks every millisecond or so for the whole copy.
    path = tmp_path / "f"
    size = 64 * MiB  # ~16k ordered commands: 0.3 s or more
    path.write_bytes(bytes(size))
    started = threading.Event()
    result = {}

    def run():
        started.set()
        result["report"] = offcopy.copy(path, path, block_moves_up(size), sync=False)

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    ticks = 0
    while t.is_alive():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert result["report"]["bytes_copied"] == size - 4096
    assert ticks >= 20, (ticks, result["report"]["elapsed_seconds"])


# --- the same objects as the CLI's --json, and the stubs match the module -----------------------


def cli():
    path = os.environ.get("OFFCOPY_CLI")
    if not path:
        pytest.skip("OFFCOPY_CLI not set (CTest sets it to the built offload-copy)")
    return path


def run_cli(*args, expect=0):
    import json

    out = subprocess.run([cli(), *map(str, args), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == expect, out.stderr
    return json.loads(out.stdout)


def test_probe_and_plan_equal_the_cli(tmp_path, rng):
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    write_random(src, 300_000, rng)
    assert offcopy.probe(src) == run_cli("probe", src)
    extents = [(0, 4096, 8192), (100_000, 7, 333)]
    cli_extents = [f"{s}:{d}:{n}" for s, d, n in extents]
    assert offcopy.plan(src, dst, extents) == run_cli("plan", src, dst, *cli_extents)
    assert offcopy.plan(src, src, [(0, 4096, 200_000)]) == run_cli("plan", src, src, "0:4096:200000")


def test_copy_report_and_errors_match_the_cli(tmp_path, rng):
    src = tmp_path / "src"
    write_random(src, 300_000, rng)
    ours = offcopy.copy(src, tmp_path / "a", force=True)
    theirs = run_cli("copy", src, tmp_path / "b", "--force")
    for r in (ours, theirs):
        r.pop("elapsed_seconds")
        r.pop("timings")  # wall times of two different runs
        r.pop("destination")
    assert ours == theirs
    # Exit status 2 <-> InvalidRequest, 3 <-> OffloadImpossible, with the same error object.
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.copy(src, tmp_path / "c", [(0, 0, 1 << 30)])
    assert e.value.report["error"] == run_cli("copy", src, tmp_path / "c", "0:0:1G", expect=2)["error"]
    with pytest.raises(offcopy.OffloadImpossible) as e:
        offcopy.copy(src, tmp_path / "c", mode="offload")
    assert e.value.report["error"] == run_cli("copy", src, tmp_path / "c", "--mode", "offload", expect=3)["error"]


def test_outputs_match_the_schema(tmp_path, rng):
    # Every dict the package returns, and every Error.report, is docs/offload-copy.schema.json's
    # object (the same job_result::to_json the CLI prints).
    import json

    import jsonschema  # python3-jsonschema (scripts/install-deps.sh): missing fails, never skips
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    with open(os.path.join(root, "docs", "offload-copy.schema.json")) as f:
        schema = json.load(f)
    v = jsonschema.Draft202012Validator(schema)

    def valid(obj):
        errors = list(v.iter_errors(obj))
        assert not errors, (obj, [e.message for e in errors][:3])
        return obj

    src = tmp_path / "src"
    write_random(src, 100_000, rng)
    assert valid(offcopy.probe(src))["outcome"] == "done"
    assert valid(offcopy.plan(src, tmp_path / "new", [(0, 0, 4096)]))["operation"] == "plan"
    assert valid(offcopy.copy(src, tmp_path / "dst", verify=True))["exit_status"] == 0
    for call, cls, status in [
        (lambda: offcopy.copy(src, tmp_path / "x", [(0, 0, 1 << 30)]), offcopy.InvalidRequest, 2),
        (lambda: offcopy.copy(src, tmp_path / "x", mode="offload"), offcopy.OffloadImpossible, 3),
        (lambda: offcopy.copy(src, tmp_path / "x", mode="sideways"), offcopy.InvalidRequest, 2),
        (lambda: offcopy.probe(tmp_path / "missing"), offcopy.InvalidRequest, 2),
    ]:
        with pytest.raises(cls) as e:
            call()
        assert valid(e.value.report)["exit_status"] == status


def test_path_that_is_not_utf8(tmp_path, rng):
    # A file name is bytes: one that is not UTF-8 still opens, and comes back replaced (U+FFFD).
    src = os.path.join(os.fsencode(tmp_path), b"src-\xff\xfe")
    data = rng.randbytes(10_000)
    with open(src, "wb") as f:
        f.write(data)
    dst = tmp_path / "dst"
    report = offcopy.copy(src, dst)
    assert dst.read_bytes() == data
    assert "\ufffd" in report["source"]
    assert offcopy.probe(src)["size_bytes"] == len(data)


def test_stub_matches_the_module():
    import ast
    import inspect

    stub_path = os.path.join(os.path.dirname(offcopy.__file__), "__init__.pyi")
    tree = ast.parse(open(stub_path).read())
    defined = set()
    functions = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
            if isinstance(node, ast.FunctionDef):
                functions[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    assert set(offcopy.__all__) <= defined
    for name in ("probe", "plan", "copy", "version"):
        sig = inspect.signature(getattr(offcopy, name))
        expected = []
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                expected += list(offcopy.LIMIT_NAMES)
            else:
                expected.append(p.name)
        args = functions[name].args
        stub = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        assert stub == expected, name


def test_parallel_copies_in_threads(tmp_path, rng):
    datas = [write_random(tmp_path / f"src{i}", 2 * MiB + i, rng) for i in range(4)]
    errors = []

    def run(i):
        try:
            backends = ["buffered"] if i % 2 else ["copy-file-range"]
            offcopy.copy(tmp_path / f"src{i}", tmp_path / f"dst{i}", backends=backends, verify=True)
        except Exception as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, data in enumerate(datas):
        assert (tmp_path / f"dst{i}").read_bytes() == data
