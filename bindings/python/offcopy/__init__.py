"""offcopy: copy inside storage (NVMe Copy, SCSI XCOPY / token copy) with a fast buffered fallback.

Three calls, each returning the same JSON object the ``offload-copy`` CLI prints with ``--json``:

    offcopy.probe(path)                      -> what a device is and which offloads it offers
    offcopy.plan(src, dst, extents=None)     -> the commands a copy would send (writes nothing)
    offcopy.copy(src, dst, extents=None)     -> copy, and report what ran

Extents are ``(src_offset, dst_offset, length)`` tuples in bytes; none means the whole source to
offset 0 of the destination. The work, and the classification of how it ended, happen in the C++
library (the same job the CLI runs); a failure raises the subclass of :class:`Error` that matches
the library's outcome, i.e. the CLI's exit status: :class:`InvalidRequest` (2: bad input, nothing
written), :class:`OffloadImpossible` (3: ``mode="offload"`` and no backend can offload, nothing
written), :class:`CopyError` (1: a device, I/O or verify error, or cancelled;
``.report["bytes_copied"]`` says how far it got).
"""

from __future__ import annotations

import operator
import os

from . import _offcopy

__all__ = [
    "Error",
    "InvalidRequest",
    "OffloadImpossible",
    "CopyError",
    "probe",
    "plan",
    "copy",
    "version",
    "LIMIT_NAMES",
    "__version__",
]


def version() -> str:
    """Version of the C++ library linked into the module ("MAJOR.MINOR.PATCH")."""
    return _offcopy.version()


__version__ = version()

#: Keyword arguments of plan() and copy() that tighten the device's copy limits (0 = no override).
#: Units are the device's logical blocks (bytes for regular files), as in probe()'s "limits".
LIMIT_NAMES = ("max_segments_per_command", "max_segment_blocks", "max_command_blocks")

_UINT32_MAX = (1 << 32) - 1
_UINT64_MAX = (1 << 64) - 1


class Error(Exception):
    """A failed offcopy operation.

    Attributes: ``code`` (the library's stable name, "out-of-range", "io-error", ...),
    ``message``, ``errno`` (0 when no system call failed) and ``report``: the CLI's JSON report as a
    dict, with at least "status" ("error"), "bytes_copied" and "error" (code, message, errno, and
    the device's own status under "nvme" or "scsi" when a device refused a command).
    """

    def __init__(self, message: str, code: str, errno: int = 0, report: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.errno = errno
        if report is None:
            error = {"code": code, "message": message}
            if errno:
                error["errno"] = errno
            report = {"status": "error", "bytes_copied": 0, "error": error}
        self.report = report

    @property
    def bytes_copied(self) -> int:
        """Bytes known to be at the destination when the operation stopped."""
        return int(self.report.get("bytes_copied", 0))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidRequest(Error, ValueError):
    """Bad input; nothing was written (invalid-argument, not-found, out-of-range, misaligned,
    zero-length, overlap, block-size-mismatch, read-only, busy)."""


class OffloadImpossible(Error):
    """``mode="offload"`` and no backend can offload this pair (not-supported); nothing was written."""


class CopyError(Error):
    """A device, I/O or verify error (or one of the codes above after bytes were written)."""


# The library's outcome (report["outcome"]) -> the exception; every other failure is a CopyError.
_OUTCOME_ERRORS = {"bad-input": InvalidRequest, "offload-impossible": OffloadImpossible}


def _error_from_report(report: dict) -> Error:
    """The exception for a failed job's report, chosen by the library's outcome."""
    error = report.get("error", {})
    cls = _OUTCOME_ERRORS.get(report.get("outcome"), CopyError)
    return cls(error.get("message", ""), error.get("code", "internal"), error.get("errno", 0), report)


def _run(operation: str, src: bytes, dst: bytes, extents, options, progress=None, sources=()) -> dict:
    value, outcome = _offcopy.run(operation, src, dst, extents, options, progress, list(sources))
    if outcome != "done":
        raise _error_from_report(value)
    return value


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, "invalid-argument")


def _path(value, what: str) -> bytes:
    """A path as the OS sees it: os.fsencode() of str, bytes or os.PathLike (a file name need not
    be UTF-8; a str from os.fsdecode() of such a name comes back to the same bytes). An embedded
    NUL is refused here, before anything is opened: the OS would read the name cut at the NUL."""
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(f"{what}: expected str, bytes or os.PathLike, got {type(value).__name__}") from None
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise _invalid(f"{what}: the path contains a NUL byte")
    if not encoded:
        raise _invalid(f"{what}: empty path")
    return encoded


def _uint(value, what: str, maximum: int = _UINT64_MAX) -> int:
    try:
        n = operator.index(value)  # int and int-likes (numpy integers), not float or bool-as-number
    except TypeError:
        raise TypeError(f"{what}: expected an integer, got {type(value).__name__}") from None
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected an integer, got bool")
    if n < 0 or n > maximum:
        raise _invalid(f"{what}: {n} is outside 0..{maximum}")
    return n


def _extents(extents) -> list[tuple[int, int, int, int]]:
    if extents is None:
        return []
    if isinstance(extents, (str, bytes)):
        raise TypeError("extents: expected a sequence of (src_offset, dst_offset, length) tuples")
    out = []
    for i, e in enumerate(extents):
        try:
            items = tuple(e)
        except TypeError:
            items = ()
        if len(items) == 3:
            source = 0
            src_offset, dst_offset, length = items
        elif len(items) == 4:
            source, src_offset, dst_offset, length = items
        else:
            raise _invalid(
                f"extent {i}: expected a (src_offset, dst_offset, length) or (source, src_offset, dst_offset, "
                f"length) tuple, got {e!r}"
            )
        out.append(
            (
                _uint(src_offset, f"extent {i} src_offset"),
                _uint(dst_offset, f"extent {i} dst_offset"),
                _uint(length, f"extent {i} length"),
                _uint(source, f"extent {i} source", _UINT32_MAX),
            )
        )
    return out


def _sources(sources) -> list[bytes]:
    if sources is None:
        return []
    if isinstance(sources, (str, bytes, os.PathLike)):
        raise TypeError("sources: expected a sequence of paths")
    return [_path(s, f"sources[{i}]") for i, s in enumerate(sources)]


def _options(fn: str, mode, backends, limits: dict) -> _offcopy.CopyOptions:
    o = _offcopy.CopyOptions()
    if not isinstance(mode, str):
        raise TypeError(f"mode: expected 'auto', 'offload' or 'fallback', got {type(mode).__name__}")
    o.mode = mode
    if backends is not None:
        if isinstance(backends, str):
            backends = [backends]
        names = list(backends)
        for b in names:
            if not isinstance(b, str):
                raise TypeError(f"backends: expected backend names, got {type(b).__name__}")
        o.backends = names
    for name, value in limits.items():
        if name not in LIMIT_NAMES:
            raise TypeError(f"{fn}() got an unexpected keyword argument '{name}'")
        if value is None:
            continue
        maximum = _UINT32_MAX if name == "max_segments_per_command" else _UINT64_MAX
        setattr(o, name, _uint(value, name, maximum))
    return o


def probe(path) -> dict:
    """What ``path`` is and which copy offloads it offers (``offload-copy probe --json``).

    Keys: path, kind, size_bytes, logical_block_bytes, physical_block_bytes, read_only, block_path,
    identity (parent_path and partition_start_bytes for partitions), and offload: a list of
    {backend, available, reason, limits{...}, details{...}}; plus status, operation, outcome and
    exit_status (docs/offload-copy.schema.json).
    Raises InvalidRequest (not-found, invalid-argument) or CopyError (io-error).
    """
    return _run("probe", _path(path, "path"), b"", [], _offcopy.CopyOptions())


def plan(src, dst, extents=None, mode: str = "auto", *, backends=None, sources=None, journal=None, **limits) -> dict:
    """The commands a copy would send, without writing anything (``offload-copy plan --json``).

    ``mode`` is "auto" (offload where possible, else fall back), "offload" (fail rather than fall
    back) or "fallback" (never offload). ``backends`` restricts and orders the backends tried
    ("nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"). ``sources`` are more
    source paths: an extent (source, src_offset, dst_offset, length) reads ``src`` when source is 0
    and ``sources[source - 1]`` otherwise (NVMe namespaces of the destination's controller are
    gathered into one Copy per destination run; docs/python.md). ``limits`` are
    max_segments_per_command, max_segment_blocks and max_command_blocks: they can only tighten the
    device's own. Nothing is created or written: a missing destination is planned as the new empty
    file a copy would create. ``journal``: the journal of an interrupted copy (see copy()); the plan
    is then what a resume would copy ("resumed_bytes" says how much is done), and the journal is
    only read.

    Keys: backend, block_bytes, total_bytes, commands_total, segments_total, ordered, limits,
    considered [{backend, chosen, reason}], fallback_reason (when set), and commands: a list of
    {barrier, segments: [[src_block, dst_block, blocks], ...]} in units of block_bytes; plus
    status, operation, outcome and exit_status.
    Raises InvalidRequest or OffloadImpossible.
    """
    options = _options("plan", mode, backends, limits)
    if journal is not None:
        options.journal = _path(journal, "journal")
    return _run("plan", _path(src, "src"), _path(dst, "dst"), _extents(extents), options, None, _sources(sources))


def copy(
    src,
    dst,
    extents=None,
    mode: str = "auto",
    verify: bool = False,
    in_flight: int = 32,
    force: bool = False,
    progress=None,
    *,
    backends=None,
    sync: bool = True,
    sources=None,
    journal=None,
    **limits,
) -> dict:
    """Copies, offloaded where possible, and returns the report (``offload-copy copy --json``).

    The destination is opened writable and, unless ``force``, exclusively (a mounted or claimed
    block device is refused with "busy"); a missing regular-file destination is created, and removed
    again when the request turns out to be invalid. ``verify`` reads both sides back and compares;
    ``in_flight`` is the number of offload commands kept in flight; ``sync`` makes the destination
    durable before returning. ``progress(bytes_done, bytes_total)`` is called after each completed
    command, from the calling thread, with bytes_done never decreasing. An exception it raises, and
    one a signal handler raises (Ctrl-C: KeyboardInterrupt), stops the copy within 0.1 s -- inside a
    long command too -- and propagates with the report of what was done as its ``offcopy_report``
    attribute. The GIL is released while copying. ``journal``: a file recording completed work
    (str, bytes or os.PathLike): after an interruption (an exception, kill -9, a power cut) the same
    call copies only what is missing; refused (InvalidRequest) when the request or a device
    changed; removed when the copy completes. ``mode``, ``backends``, ``sources`` and
    ``limits`` are as for plan().

    Keys: status ("ok"), bytes_requested, bytes_copied, backends {name: {bytes, commands, retries}},
    fallback_reason(s) (when a fallback happened), elapsed_seconds, timings {open_seconds,
    probe_seconds, plan_seconds, flush_seconds, copy_seconds, verify_seconds}, verified,
    verify_skipped (when set), source, destination, mode, planned_backend, planned_commands,
    operation, outcome, exit_status (docs/offload-copy.schema.json).
    Raises InvalidRequest, OffloadImpossible (nothing written) or CopyError (``.report`` says how
    many bytes were copied).
    """
    options = _options("copy", mode, backends, limits)
    options.verify = bool(verify)
    options.force = bool(force)
    options.sync = bool(sync)
    options.in_flight = _uint(in_flight, "in_flight", _UINT32_MAX)
    if journal is not None:
        options.journal = _path(journal, "journal")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable(bytes_done, bytes_total), got {type(progress).__name__}")
    return _run("copy", _path(src, "src"), _path(dst, "dst"), _extents(extents), options, progress, _sources(sources))
