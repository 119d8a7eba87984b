"""Issue 8, resumable copies (class 8.8) through the Python module: copy(..., journal=) stopped
by an exception or killed with SIGKILL copies only what is missing when called again, ends with
identical bytes and removes its journal; a changed request is refused (InvalidRequest)."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import offcopy

MiB = 1 << 20


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def schema_validator():
    import json

    import jsonschema  # python3-jsonschema (scripts/install-deps.sh): missing fails, never skips

    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    with open(os.path.join(root, "docs", "offload-copy.schema.json")) as f:
        v = jsonschema.Draft202012Validator(json.load(f))

    def valid(obj):
        errors = list(v.iter_errors(obj))
        assert not errors, (obj, [e.message for e in errors][:3])
        return obj

    return valid


def test_stopped_by_an_exception_then_resumed(tmp_path):
    valid = schema_validator()
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j"
    with open(src, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(16 * MiB))
    size = src.stat().st_size

    class Stop(Exception):
        pass

    def progress(done, total):
        if done >= 128 * MiB:
            raise Stop

    with pytest.raises(Stop) as e:
        offcopy.copy(src, dst, backends=["buffered"], mode="fallback", progress=progress, journal=journal)
    done = valid(e.value.offcopy_report)["bytes_copied"]
    assert journal.exists() and done >= 128 * MiB
    with pytest.raises(offcopy.InvalidRequest) as refused:
        offcopy.copy(src, dst, [(0, 0, size // 2)], journal=journal)
    assert "extents differ" in refused.value.message
    valid(refused.value.report)
    p = valid(offcopy.plan(src, dst, backends=["buffered"], mode="fallback", journal=journal))
    assert p["resumed_bytes"] == done and p["total_bytes"] == size - done
    report = valid(offcopy.copy(src, dst, backends=["buffered"], mode="fallback", journal=journal, verify=True))
    assert report["resumed_bytes"] == done and report["bytes_copied"] == size - done
    assert report["verified"] is True
    assert sha(src) == sha(dst)
    assert not journal.exists()


_CHILD = textwrap.dedent(
    """
    import sys, offcopy
    offcopy.copy(sys.argv[1], sys.argv[2], journal=sys.argv[3], backends=["copy-file-range"], mode="fallback")
    """
)


def test_killed_then_resumed(tmp_path):
    src, dst, journal = tmp_path / "src", tmp_path / "dst", tmp_path / "j"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(16 * MiB))
    size = src.stat().st_size
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(src), str(dst), str(journal)],
                             env=dict(os.environ))
    header = 0
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and child.poll() is None:
        n = journal.stat().st_size if journal.exists() else 0
        header = header or n
        if header and n > header:
            child.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    child.wait()
    assert killed, "the copy finished before it could be killed"
    report = offcopy.copy(src, dst, journal=journal, backends=["copy-file-range"], mode="fallback")
    assert 0 < report["resumed_bytes"] < size
    assert report["resumed_bytes"] + report["bytes_copied"] == size
    assert sha(src) == sha(dst)
    assert not journal.exists()
