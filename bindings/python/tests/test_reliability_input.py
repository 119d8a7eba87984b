"""Issue 8, bad input (classes 8.1, 8.6) through the Python module: a path with a NUL byte is a
ValueError (InvalidRequest) before anything is opened -- never a write to the name cut at the
NUL -- and names that are not UTF-8 work with os.fsencode semantics (bytes, or str from
os.fsdecode) and come back as valid text; the outcome classes follow the one exit-status rule.
"""

import os

import pytest

import offcopy

MiB = 1 << 20


def test_nul_in_any_path_is_a_value_error_and_opens_nothing(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"s" * 8192)
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * 8192)
    before = victim.read_bytes()
    names = [str(victim) + "\0.new", os.fsencode(victim) + b"\0.new", str(victim) + "\0"]
    for bad in names:
        for call in (
            lambda: offcopy.copy(src, bad, [(0, 0, 4096)]),
            lambda: offcopy.copy(bad, tmp_path / "out", [(0, 0, 4096)]),
            lambda: offcopy.plan(src, bad),
            lambda: offcopy.probe(bad),
            lambda: offcopy.copy(src, tmp_path / "out2", journal=bad),
        ):
            with pytest.raises(ValueError) as e:
                call()
            assert isinstance(e.value, offcopy.InvalidRequest)
            assert e.value.code == "invalid-argument" and "NUL" in e.value.message
    assert victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "victim"]


class _Path:
    def __init__(self, p):
        self.p = p

    def __fspath__(self):
        return self.p


def test_nul_through_pathlike_and_option_strings(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(bytes(4096))
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.copy(_Path(os.fsencode(tmp_path / "x") + b"\0y"), tmp_path / "out")
    # Option strings reach the library, which refuses a NUL too.
    for kw in ({"mode": "auto\0offload"}, {"backends": ["buffered\0"]}):
        with pytest.raises(offcopy.InvalidRequest) as e:
            offcopy.copy(src, tmp_path / "out", **kw)
        assert "NUL" in e.value.message
    assert not (tmp_path / "out").exists()


def test_names_that_are_not_utf8_work_as_os_fsencode_promises(tmp_path):
    data = os.urandom(3 * MiB + 5)
    raw = os.fsencode(tmp_path) + b"/src-\xff\xfe-\x1b[31m"
    with open(raw, "wb") as f:
        f.write(data)
    as_str = os.fsdecode(raw)  # surrogateescape: the same bytes when encoded back
    assert "\udcff" in as_str
    out_raw = os.fsencode(tmp_path) + b"/dst-\xc0\xaf"
    for src_name, dst_name in ((raw, out_raw), (as_str, os.fsdecode(out_raw)), (_Path(raw), _Path(out_raw))):
        report = offcopy.copy(src_name, dst_name, verify=True)
        with open(out_raw, "rb") as f:
            assert f.read() == data
        # The report is text: the bad bytes came back as U+FFFD, the rest as it was.
        assert "\ufffd" in report["source"] and report["source"].encode("utf-8")
        assert report["verified"] is True
        os.unlink(out_raw)
        assert offcopy.plan(src_name, dst_name)["total_bytes"] == len(data)
        probed = offcopy.probe(src_name)
        assert probed["size_bytes"] == len(data) and "\ufffd" in probed["path"]


def test_bad_paths_are_invalid_requests(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(bytes(4096))
    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    for bad in (src / "x", tmp_path / ("n" * 300), loop, tmp_path / "no" / "dir" / "x"):
        with pytest.raises(offcopy.InvalidRequest):
            offcopy.copy(src, bad)
        with pytest.raises(offcopy.InvalidRequest):
            offcopy.copy(bad, tmp_path / "out")
        with pytest.raises(offcopy.InvalidRequest):
            offcopy.plan(src, bad)
    assert not (tmp_path / "out").exists()


def test_one_exit_rule_in_the_module(tmp_path):
    """OffloadImpossible (3) only for mode offload; a backend list that cannot serve files is an
    InvalidRequest (2) in auto mode."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(bytes(65536))
    with pytest.raises(offcopy.OffloadImpossible):
        offcopy.copy(src, dst, mode="offload")
    with pytest.raises(offcopy.InvalidRequest) as e:
        offcopy.copy(src, dst, backends=["nvme-copy"])
    assert e.value.report["exit_status"] == 2 and e.value.code == "not-supported"
    with pytest.raises(offcopy.InvalidRequest):
        offcopy.plan(src, dst, backends=["scsi-xcopy", "scsi-token"], mode="fallback")
    with pytest.raises(offcopy.OffloadImpossible):
        offcopy.plan(src, dst, backends=["scsi-xcopy"], mode="offload")
    assert not dst.exists()
    from offcopy import _offcopy

    assert _offcopy.classify("misaligned", 0, "offload") == "offload-impossible"
    assert _offcopy.classify("misaligned", 0, "auto") == "bad-input"
    assert _offcopy.classify("block-size-mismatch", 0, "offload") == "offload-impossible"
    assert _offcopy.classify("not-supported", 0, "fallback") == "bad-input"
    assert _offcopy.classify("not-supported", 4096, "offload") == "device-error"


def test_buffer_memory_is_capped(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(bytes(4096))
    # Only the CLI and the C API expose buffer sizes; the library's cap is what they hit.
    import subprocess

    cli = os.environ["OFFCOPY_CLI"]  # CTest sets it
    p = subprocess.run([cli, "copy", str(src), str(tmp_path / "d"), "--buffer-size", "1G", "--buffers", "32"],
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and b"more than" in p.stderr
