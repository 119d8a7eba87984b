# Type stubs for the offcopy package (bindings/python/offcopy/__init__.py).
# The TypedDicts (ProbeResult, PlanResult, Report, ...) and the Mode/Backend aliases exist for type
# checkers only: import them under `if typing.TYPE_CHECKING:`.
import os
from typing import Any, Callable, Iterable, Literal, Sequence, TypedDict, Union

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]
_Extent = tuple[int, int, int] | tuple[int, int, int, int]  # (src, dst, length) or (source, src, dst, length)
Mode = Literal["auto", "offload", "fallback"]
Backend = Literal["nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"]
Operation = Literal["probe", "plan", "copy"]
Outcome = Literal["done", "device-error", "bad-input", "offload-impossible", "cancelled"]

class _JobFields(TypedDict):
    # Every object (docs/offload-copy.schema.json): which job, how it ended, the CLI's exit status.
    status: Literal["ok", "error"]
    operation: Operation
    outcome: Outcome
    exit_status: int

LIMIT_NAMES: tuple[str, str, str]
__version__: str

def version() -> str: ...

class Limits(TypedDict):
    max_segments_per_command: int
    max_segment_blocks: int
    max_command_blocks: int
    contiguous_destination: bool

class OffloadMechanism(TypedDict):
    backend: Backend
    available: bool
    reason: str
    limits: Limits
    details: dict[str, str]

class _ProbeRequired(_JobFields):
    path: str
    kind: Literal["regular-file", "block-device", "nvme-char", "scsi-generic"]
    size_bytes: int
    logical_block_bytes: int
    physical_block_bytes: int
    read_only: bool
    block_path: str
    identity: str
    offload: list[OffloadMechanism]

class _PieceRequired(TypedDict):
    offset_bytes: int
    length_bytes: int
    medium: str  # the device or file a backend addresses
    medium_offset_bytes: int
    via: str  # the layers crossed, top down; "" when the device is its own medium

class Piece(_PieceRequired, total=False):
    opaque: str  # a dm target nothing resolves ("dm crypt"): copied by a fallback

class ProbeResult(_ProbeRequired, total=False):
    parent_path: str
    partition_start_bytes: int
    pieces: list[Piece]  # the resolution (at most 1024 listed)
    pieces_total: int
    media: list[dict[str, Any]]  # a stacked device's media, each a probe object without the job fields

class BackendChoice(TypedDict):
    backend: Backend
    chosen: bool
    reason: str

class PlanCommand(TypedDict, total=False):
    barrier: bool
    part: int  # index into parts
    order: Literal["ascending", "descending"]
    segments: list[list[int]]  # [src_block, dst_block, blocks] in units of its part's block_bytes

class _PlanPartRequired(TypedDict):
    backend: Backend
    block_bytes: int
    limits: Limits
    source_medium: str
    destination_medium: str
    bytes: int
    considered: list[BackendChoice]
    ranges: list[list[int]]  # [src_offset, dst_offset, length] in the endpoints' offsets
    ranges_total: int

class PlanPart(_PlanPartRequired, total=False):
    fallback_reason: str

class _PlanRequired(_JobFields):
    backend: Backend
    block_bytes: int
    total_bytes: int
    commands_total: int
    segments_total: int
    ordered: bool
    limits: Limits
    considered: list[BackendChoice]
    parts: list[PlanPart]  # one per pair of media
    commands: list[PlanCommand]

class PlanResult(_PlanRequired, total=False):
    fallback_reason: str
    journal: str  # with journal=: the journal read
    resumed_bytes: int  # with journal=: bytes already done (not planned again)

class BackendUsage(TypedDict):
    bytes: int
    commands: int
    retries: int

class ErrorDetail(TypedDict, total=False):
    code: str
    message: str
    errno: int
    nvme: dict[str, Any]  # sct, sc, dnr, dw0, status, name
    scsi: dict[str, Any]  # status, sense_key, asc, ascq, text, information

class Timings(TypedDict):
    open_seconds: float
    probe_seconds: float
    plan_seconds: float
    flush_seconds: float
    copy_seconds: float
    verify_seconds: float

class _ReportRequired(_JobFields):
    bytes_copied: int

class Report(_ReportRequired, total=False):
    bytes_requested: int
    backends: dict[str, BackendUsage]
    fallback_reason: str
    fallback_reasons: list[str]
    elapsed_seconds: float
    timings: Timings
    verified: bool
    verify_skipped: str
    first_mismatch_offset: int
    error: ErrorDetail
    source: str
    destination: str
    mode: str
    planned_backend: str
    planned_commands: int
    journal: str  # with journal=: the journal used
    resumed_bytes: int  # with journal=: bytes done by earlier runs, not copied again

class Error(Exception):
    message: str
    code: str
    errno: int
    report: Report
    def __init__(self, message: str, code: str, errno: int = ..., report: Report | None = ...) -> None: ...
    @property
    def bytes_copied(self) -> int: ...

class InvalidRequest(Error, ValueError): ...
class OffloadImpossible(Error): ...
class CopyError(Error): ...

def probe(path: _Path) -> ProbeResult: ...
def plan(
    src: _Path,
    dst: _Path,
    extents: Iterable[_Extent] | None = ...,
    mode: Mode = ...,
    *,
    backends: Sequence[Backend] | Backend | None = ...,
    sources: Sequence[_Path] | None = ...,
    journal: _Path | None = ...,
    max_segments_per_command: int | None = ...,
    max_segment_blocks: int | None = ...,
    max_command_blocks: int | None = ...,
) -> PlanResult: ...
def copy(
    src: _Path,
    dst: _Path,
    extents: Iterable[_Extent] | None = ...,
    mode: Mode = ...,
    verify: bool = ...,
    in_flight: int = ...,
    force: bool = ...,
    progress: Callable[[int, int], object] | None = ...,
    *,
    backends: Sequence[Backend] | Backend | None = ...,
    sync: bool = ...,
    sources: Sequence[_Path] | None = ...,
    journal: _Path | None = ...,
    max_segments_per_command: int | None = ...,
    max_segment_blocks: int | None = ...,
    max_command_blocks: int | None = ...,
) -> Report: ...
