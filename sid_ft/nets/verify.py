"""Check that a checkpoint can be read before it is used: its index, its data files' lengths, its tensors' CRC32C.

A TensorFlow V2 checkpoint's ``.index`` records, for each tensor, the data
file, offset and size of its bytes and their CRC32C (see
:mod:`sid_ft.nets.bundle_index`).  A short, missing or damaged data file, or
an index that belongs to another checkpoint, can therefore be recognised
without TensorFlow and before any work starts:

    report = verify_checkpoint("train_dir/model.ckpt-8")   # VerifyReport
    report.ok, report.problems                               # False, ['<file>: truncated: ...']
    check_readable(prefix)                                   # raises SidFtError(file, reason)
    verify_released("checkpoints/Sony")                      # also compares with the released SID model

Nothing here imports TensorFlow.  Files are only read, never changed, except by
:func:`set_aside_damaged`, which renames (never deletes) a damaged checkpoint.
"""
from __future__ import annotations

import functools
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

import google_crc32c

from sid_ft.errors import SidFtError
from sid_ft.nets.bundle_index import BundleIndex, TensorEntry, data_path, read_bundle_index, unmask_crc32c

__all__ = ["ShardReport", "VerifyReport", "verify_checkpoint", "check_readable", "format_report",
           "ReleasedExpectation", "released_expectation", "released_camera", "verify_released",
           "crc32c_bytes_per_second", "estimate_checksum_seconds", "checksums_affordable",
           "newest_readable", "set_aside_damaged", "DAMAGED_TAG"]

ASSUMED_READ_BYTES_PER_SECOND = 200e6
"""Disk read speed assumed by :func:`estimate_checksum_seconds` (bytes/s; a slow SSD or a fast disk)."""

DAMAGED_TAG = "damaged"
"""``model.ckpt-8`` set aside becomes ``model.ckpt-8.damaged`` (``.damaged-2``... if taken)."""


@dataclass
class ShardReport:
    """One data file: ``expected_bytes`` is what the index needs (max offset + size).

    ``found_bytes`` is the file's length, None when it is missing.
    """

    path: str
    expected_bytes: int
    found_bytes: int | None


@dataclass
class VerifyReport:
    """What :func:`verify_checkpoint` found.

    prefix: the checkpoint; errors: one SidFtError(file, reason) per problem,
    first problem first; tensors: tensors in the index; tensors_checked: those
    whose bytes were read and CRC32C compared; shards: one per data file;
    checksums: whether CRC32Cs were checked.
    """

    prefix: str
    errors: list[SidFtError] = field(default_factory=list)
    tensors: int = 0
    tensors_checked: int = 0
    shards: list[ShardReport] = field(default_factory=list)
    checksums: bool = True

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.errors

    @property
    def problems(self) -> list[str]:
        """One line per problem, ``"<file>: <reason>"``."""
        return [str(e) for e in self.errors]

    def raise_first(self) -> None:
        """Raise the first problem's SidFtError (file and one-line reason); nothing when ok."""
        if self.errors:
            raise self.errors[0]


def format_report(report: VerifyReport) -> str:
    """Human-readable lines for ``inspect_checkpoint.py --verify``: data files, checksums, then problems."""
    lines = [f"verify: {report.prefix}"]
    for shard in report.shards:
        found = "missing" if shard.found_bytes is None else f"{shard.found_bytes} bytes"
        lines.append(f"  data file {os.path.basename(shard.path)}: {found}, index expects {shard.expected_bytes}")
    if report.checksums:
        lines.append(f"  checksums: {report.tensors_checked} of {report.tensors} tensors checked")
    else:
        lines.append("  checksums: not checked")
    if report.ok:
        lines.append("readable: yes")
    else:
        lines.append("readable: no")
        lines.extend(f"  {p}" for p in report.problems)
    return "\n".join(lines)


# --------------------------------------------------------------------------- one checkpoint


def _check_entry_sizes(index: BundleIndex, report: VerifyReport) -> None:
    """An entry whose byte size disagrees with its shape and dtype means a garbled index."""
    for entry in index.entries.values():
        if entry.sliced or entry.itemsize is None:
            continue
        needed = math.prod(entry.shape) * entry.itemsize
        if entry.size != needed:
            report.errors.append(SidFtError(index.path, f"garbled index: {entry.name!r} is {entry.dtype} "
                                                        f"{list(entry.shape)} ({needed} bytes) but has {entry.size}"))
            return


def _check_length(index: BundleIndex, shard: int, report: VerifyReport) -> ShardReport:
    """Compare a data file's length with what the index expects; add a problem when they differ."""
    path, expected = index.data_path(shard), index.expected_bytes(shard)
    try:
        found = os.path.getsize(path)
    except OSError:
        found = None
    result = ShardReport(path, expected, found)
    report.shards.append(result)
    if found is None:
        report.errors.append(SidFtError(path, f"missing: the index {os.path.basename(index.path)} expects "
                                              f"a data file of {expected} bytes"))
    elif found < expected:
        cut = [e for e in _entries_of(index, shard) if e.end > found]
        report.errors.append(SidFtError(path, f"truncated: {found} of {expected} bytes; {len(cut)} tensor(s) "
                                              f"cut off, the first {cut[0].name!r}"))
    elif found > expected:
        report.errors.append(SidFtError(path, f"{found} bytes where the index {os.path.basename(index.path)} "
                                              f"expects {expected}: the index belongs to another checkpoint"))
    return result


def _entries_of(index: BundleIndex, shard: int) -> list[TensorEntry]:
    """The tensors stored in ``shard``, in file order."""
    return sorted((e for e in index.entries.values() if e.shard_id == shard and not e.sliced),
                  key=lambda e: e.offset)


def _check_crcs(index: BundleIndex, shard: ShardReport, number: int, report: VerifyReport) -> None:
    """Read every complete tensor of a data file and compare its CRC32C with the index's; name the first mismatch."""
    damaged: list[tuple[TensorEntry, int]] = []
    checked = 0
    with open(shard.path, "rb") as f:
        for entry in _entries_of(index, number):
            if entry.itemsize is None or entry.end > shard.found_bytes:
                continue  # string/variant tensors store a different checksum; cut-off ones are reported already
            f.seek(entry.offset)
            found = google_crc32c.value(f.read(entry.size))
            checked += 1
            if found != unmask_crc32c(entry.crc32c):
                damaged.append((entry, found))
    report.tensors_checked += checked
    if damaged:
        entry, found = damaged[0]
        many = len(damaged) > 1 and 2 * len(damaged) >= checked
        hint = " (so many: the index may belong to another checkpoint)" if many else ""
        report.errors.append(SidFtError(shard.path, (
            f"damaged: tensor {entry.name!r} (bytes {entry.offset}..{entry.end}) has CRC32C 0x{found:08x}, "
            f"the index expects 0x{unmask_crc32c(entry.crc32c):08x}; {len(damaged)} of {checked} tensors "
            f"differ{hint}")))


def verify_checkpoint(prefix: str | os.PathLike, *, checksums: bool | None = True) -> VerifyReport:
    """Check the checkpoint ``prefix`` (``<prefix>.index`` + data files) without TensorFlow.

    Checks: the index parses (footer, block checksums, entries); each entry's
    size fits its shape and dtype; every data file exists and is exactly as
    long as the index implies; with ``checksums``, every tensor's bytes match
    the CRC32C the index recorded (costs one read of the data files; see
    :func:`estimate_checksum_seconds`; None: only when :func:`checksums_affordable`
    says it takes under a second).  Never raises for a damaged checkpoint: the
    problems are in the report.
    """
    prefix = os.fspath(prefix)
    report = VerifyReport(prefix, checksums=bool(checksums))
    try:
        index = read_bundle_index(prefix)
    except SidFtError as exc:
        report.errors.append(exc)
        return report
    if checksums is None:
        checksums = report.checksums = checksums_affordable(sum(map(index.expected_bytes, range(index.num_shards))))
    report.tensors = len(index.entries)
    _check_entry_sizes(index, report)
    for number in range(index.num_shards):
        shard = _check_length(index, number, report)
        if checksums and shard.found_bytes is not None:
            _check_crcs(index, shard, number, report)
    return report


def check_readable(prefix: str | os.PathLike, *, checksums: bool | None = True) -> VerifyReport:
    """:func:`verify_checkpoint`, raising SidFtError(file, one-line reason) on the first problem."""
    report = verify_checkpoint(prefix, checksums=checksums)
    report.raise_first()
    return report


# --------------------------------------------------------------------------- the released SID models

_RELEASED_IO = {"sony": (4, 12), "fuji": (9, 27)}  # packed input channels, g_conv10 output channels
_WIDTHS = (32, 64, 128, 256, 512, 256, 128, 64, 32)  # g_conv1 .. g_conv9
_UP_FILTERS = ("Variable", "Variable_1", "Variable_2", "Variable_3")  # up6 .. up9, unscoped tf.Variable
RELEASED_DATA_FILE = "model.ckpt.data-00000-of-00001"
MODEL_JSON = "sid_ft.json"  # sid_ft.nets.model_spec.MODEL_JSON, not imported: that module loads TensorFlow


@dataclass(frozen=True)
class ReleasedExpectation:
    """The released SID checkpoint of one camera: every stored tensor (all float32) and the data file's length.

    tensors: {name: shape}, the network's weights, their Adam slots (the
    ``g_*`` ones only) and ``beta1_power``/``beta2_power``.  data_bytes: the
    data file's length, tensors packed back to back as TensorFlow writes them.
    """

    camera: str
    tensors: dict[str, tuple[int, ...]]

    @property
    def data_bytes(self) -> int:
        """Length of ``model.ckpt.data-00000-of-00001`` in bytes."""
        return sum(4 * math.prod(shape) for shape in self.tensors.values())


@functools.lru_cache(maxsize=None)
def released_expectation(camera: str) -> ReleasedExpectation:
    """:class:`ReleasedExpectation` of the released 'sony' or 'fuji' model (from SID's layer widths)."""
    cin, cout = _RELEASED_IO[str(camera).lower()]
    model: dict[str, tuple[int, ...]] = {}
    for level, width in enumerate(_WIDTHS, start=1):
        first_in = cin if level == 1 else (_WIDTHS[level - 2] if level <= 5 else 2 * width)
        model[f"g_conv{level}_1/weights"], model[f"g_conv{level}_1/biases"] = (3, 3, first_in, width), (width,)
        model[f"g_conv{level}_2/weights"], model[f"g_conv{level}_2/biases"] = (3, 3, width, width), (width,)
    model["g_conv10/weights"], model["g_conv10/biases"] = (1, 1, _WIDTHS[-1], cout), (cout,)
    for name, level in zip(_UP_FILTERS, range(6, 10)):
        model[name] = (2, 2, _WIDTHS[level - 1], _WIDTHS[level - 2])
    tensors = dict(model)
    tensors.update({f"{n}/{slot}": s for n, s in model.items() if n.startswith("g_") for slot in ("Adam", "Adam_1")})
    tensors.update({"beta1_power": (), "beta2_power": ()})
    return ReleasedExpectation(str(camera).lower(), dict(sorted(tensors.items())))


def released_camera(index: BundleIndex) -> str | None:
    """'sony' or 'fuji' when the index holds exactly that released model's tensors, else None.

    Exactly: the same names and shapes, all float32, nothing more.
    """
    found = {name: e.shape for name, e in index.entries.items() if e.dtype == "float32"}
    if len(found) != len(index.entries):
        return None
    return next((camera for camera in _RELEASED_IO if released_expectation(camera).tensors == found), None)


def _released_prefix(path: str) -> str:
    """``<folder>/model.ckpt`` for a folder, else ``path`` as a prefix (a trailing .index dropped)."""
    if os.path.isdir(path):
        return os.path.join(path, "model.ckpt")
    return path[:-len(".index")] if path.endswith(".index") else path


def _camera_for(prefix: str, camera: str | None) -> str | None:
    """The released camera a folder is meant to hold; None for a folder with ``sid_ft.json`` (sid_ft wrote it).

    From a readable index (None when it is not a released layout), else
    ``camera``, else the folder's name (Sony, Fuji).
    """
    if os.path.isfile(os.path.join(os.path.dirname(prefix), MODEL_JSON)):
        return None
    try:
        return released_camera(read_bundle_index(prefix))
    except SidFtError:
        pass
    folder = os.path.basename(os.path.dirname(os.path.abspath(prefix))).lower()
    camera = camera or folder
    return camera.lower() if camera.lower() in _RELEASED_IO else None


def _download_problem(prefix: str, expect: ReleasedExpectation) -> SidFtError | None:
    """A short or missing data file of a released model, as an incomplete download; None when long enough."""
    path = data_path(prefix, 0, 1)
    model = f"the released {expect.camera.capitalize()} model"
    try:
        found = os.path.getsize(path)
    except OSError:
        return SidFtError(path, f"not downloaded: missing ({model} has {expect.data_bytes} bytes here)")
    if found < expect.data_bytes:
        return SidFtError(path, f"not downloaded completely: {os.path.basename(path)} has {found} of "
                                f"{expect.data_bytes} bytes of {model}; download it again")
    return None


def verify_released(path: str | os.PathLike, *, camera: str | None = None,
                    checksums: bool | None = None) -> VerifyReport:
    """Verify a folder (or prefix) meant to hold a released SID model, e.g. ``checkpoints/Sony``.

    The camera comes from the index when it holds a released layout, else
    from ``camera``, else from the folder's name (Sony, Fuji).  A data file
    shorter than the released one is reported as "not downloaded completely"
    (with found and released bytes) before anything else is read.  Then the
    checkpoint is verified as :func:`verify_checkpoint` does; ``checksums=None``
    checks CRC32Cs when :func:`checksums_affordable` says it costs under a second.
    A checkpoint that is not a released layout (or has ``sid_ft.json`` beside it) is simply verified.
    """
    prefix = _released_prefix(os.fspath(path))
    found = _camera_for(prefix, camera)
    if found is None:
        return verify_checkpoint(prefix, checksums=checksums)
    expect = released_expectation(found)
    problem = _download_problem(prefix, expect)
    if problem is not None:
        return VerifyReport(prefix, errors=[problem], checksums=False)
    if checksums is None:
        checksums = checksums_affordable(expect.data_bytes)
    return verify_checkpoint(prefix, checksums=checksums)


# --------------------------------------------------------------------------- cost of checking


@functools.lru_cache(maxsize=None)
def crc32c_bytes_per_second() -> float:
    """CRC32C speed of this machine in bytes/s, measured once on 8 MiB in memory (best of 3)."""
    buffer = bytes(8 << 20)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        google_crc32c.value(buffer)
        best = min(best, time.perf_counter() - start)
    return len(buffer) / max(best, 1e-9)


def estimate_checksum_seconds(nbytes: int, read_bytes_per_second: float = ASSUMED_READ_BYTES_PER_SECOND) -> float:
    """Seconds to read ``nbytes`` of data files and CRC32C them: read at the assumed disk speed, plus the CRC."""
    return nbytes / read_bytes_per_second + nbytes / crc32c_bytes_per_second()


def checksums_affordable(nbytes: int, budget_s: float = 1.0) -> bool:
    """True when checking ``nbytes`` is estimated to take less than ``budget_s`` seconds."""
    return estimate_checksum_seconds(nbytes) < budget_s


# --------------------------------------------------------------------------- resuming past damage


def newest_readable(prefixes: Sequence[str | os.PathLike], *,
                    checksums: bool | None = True) -> tuple[str | None, list[VerifyReport]]:
    """The first readable checkpoint of ``prefixes`` (give them newest first) and the reports of those skipped.

    Returns ``(prefix or None, [reports of the unreadable ones before it])``;
    None when none can be read (then every report is in the list).
    """
    skipped = []
    for prefix in prefixes:
        report = verify_checkpoint(prefix, checksums=checksums)
        if report.ok:
            return os.fspath(prefix), skipped
        skipped.append(report)
    return None, skipped


_CHECKPOINT_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


def set_aside_damaged(prefix: str | os.PathLike) -> str:
    """Rename the files of checkpoint ``prefix`` to ``<prefix>.damaged.<suffix>``; return the new prefix.

    Only ``<prefix>.index``, ``.meta`` and ``.data-*`` are renamed (never
    ``<prefix>.1.*``, another checkpoint), nothing is deleted, and a taken name
    gets ``.damaged-2``, ``-3``...  The new name no longer matches
    ``model.ckpt-<step>``, and it can still be inspected with ``--verify``.
    The caller updates the ``checkpoint`` state file.
    """
    prefix = os.fspath(prefix)
    folder, base = os.path.split(prefix)
    names = [n for n in os.listdir(folder or ".")
             if n.startswith(base + ".") and _CHECKPOINT_SUFFIX.fullmatch(n[len(base):])]
    new, n = f"{prefix}.{DAMAGED_TAG}", 1
    while any(os.path.exists(new + name[len(base):]) for name in names):
        n += 1
        new = f"{prefix}.{DAMAGED_TAG}-{n}"
    for name in names:
        os.replace(os.path.join(folder, name), new + name[len(base):])
    return new
