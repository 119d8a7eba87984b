"""Issue 8, signals and limits (class 8.4) through the Python module: Ctrl-C (KeyboardInterrupt)
and an exception raised by a progress callback stop a copy within 0.1 s, also inside one long
command, with the bytes done known (the exception's `offcopy_report`); the callback runs on the
calling thread; a file size limit is a CopyError (EFBIG) even with SIGXFSZ at its default action.
"""

import json
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
STOP_LIMIT_S = 0.1
# The stop is timed from another thread on a shared 2-core host: scheduling noise alone can add
# tens of milliseconds. Each case runs up to ATTEMPTS times: one run within STOP_LIMIT_S proves the
# mechanism, and every run must still stop within NOISE_CEILING_S (a stop at the next 64 MiB
# buffer, or none at all, takes seconds).
ATTEMPTS = 3
NOISE_CEILING_S = 1.0


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "src"
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(16 * MiB))  # 768 MiB of data (no holes to skip)
    return path


def _copy_until_interrupted(src, dst, backend, send):
    """Copies with one backend and calls send() from another thread once bytes moved; returns
    (exception, seconds from send() to the exception reaching the caller)."""
    sent = []

    def sender():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if dst.exists() and dst.stat().st_size > 32 * MiB:
                break
            time.sleep(0.001)
        sent.append(time.monotonic())
        send()

    t = threading.Thread(target=sender)
    t.start()
    try:
        offcopy.copy(src, dst, mode="fallback", backends=[backend], sync=False)
    except BaseException as e:  # KeyboardInterrupt is not an Exception
        caught = (e, time.monotonic())
    else:
        caught = (None, time.monotonic())
    t.join()
    return caught[0], caught[1] - sent[0]


def _best_stop(tmp_path, what, run_once):
    """Runs run_once(dst) -> (seconds to stop, result) up to ATTEMPTS times, until one run stops
    within STOP_LIMIT_S; every run must stop within NOISE_CEILING_S. Returns the last result."""
    times = []
    for attempt in range(ATTEMPTS):
        dst = tmp_path / f"dst{attempt}"
        dt, result = run_once(dst)
        assert dt < NOISE_CEILING_S, f"stopped {dt:.3f} s after {what}"
        times.append(dt)
        if dt < STOP_LIMIT_S:
            return dt, result
        dst.unlink()
    raise AssertionError(f"stopped {[round(t, 3) for t in times]} s after {what}")


@pytest.mark.parametrize("backend", ["buffered", "copy-file-range"])
def test_keyboard_interrupt_stops_a_copy_within_0_1_s(tmp_path, big_source, backend):
    def once(dst):
        exc, dt = _copy_until_interrupted(big_source, dst, backend, lambda: os.kill(os.getpid(), signal.SIGINT))
        assert isinstance(exc, KeyboardInterrupt), f"got {exc!r}"
        return dt, exc

    dt, exc = _best_stop(tmp_path, "Ctrl-C", once)
    report = exc.offcopy_report
    assert report["outcome"] == "cancelled" and report["error"]["code"] == "cancelled"
    done = report["bytes_copied"]
    assert 0 < done < big_source.stat().st_size
    assert sum(u["bytes"] for u in report["backends"].values()) == done
    print(f"{backend}: KeyboardInterrupt {dt * 1000:.1f} ms after the signal, {done} bytes done")


def test_a_raising_progress_callback_stops_a_long_command_within_0_1_s(tmp_path, big_source):
    threads = set()

    class Stop(Exception):
        pass

    def once(dst):
        raised_at = []

        def progress(done, total):
            threads.add(threading.get_ident())
            if done >= 64 * MiB and not raised_at:
                raised_at.append(time.monotonic())
                raise Stop("enough")

        with pytest.raises(Stop) as e:
            offcopy.copy(big_source, dst, mode="fallback", backends=["buffered"], progress=progress, sync=False)
        return time.monotonic() - raised_at[0], e.value

    _, exc = _best_stop(tmp_path, "the callback raised", once)
    assert threads == {threading.get_ident()}, "the callback ran on another thread"
    report = exc.offcopy_report
    assert report["outcome"] == "cancelled" and 64 * MiB <= report["bytes_copied"] < big_source.stat().st_size
    assert any("offcopy: the copy stopped after" in n for n in getattr(exc, "__notes__", []))


_FSIZE_DEFAULT_SIGXFSZ = textwrap.dedent(
    """
    import json, resource, signal, sys
    import offcopy
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the library must not rely on the caller ignoring it
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    try:
        offcopy.copy(sys.argv[1], sys.argv[2], backends=[sys.argv[3]], mode="fallback")
    except offcopy.CopyError as e:
        print(json.dumps({"code": e.code, "errno": e.errno, "bytes": e.bytes_copied}))
    print("alive")
    """
)


@pytest.mark.parametrize("backend", ["copy-file-range", "buffered"])
def test_file_size_limit_with_default_sigxfsz_is_a_copy_error(tmp_path, backend):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(4 * MiB))
    p = subprocess.run([sys.executable, "-c", _FSIZE_DEFAULT_SIGXFSZ, str(src), str(tmp_path / "dst"), backend],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"the interpreter died: {p.returncode} {p.stderr}"
    lines = p.stdout.splitlines()
    assert lines[-1] == "alive"
    got = json.loads(lines[0])
    assert got["code"] == "io-error" and got["errno"] == 27 and got["bytes"] <= 1 * MiB
