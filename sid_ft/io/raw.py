"""Reading camera RAW files for SID: open a file, load it packed with its levels, its exposure time.

Everything is read from the file through rawpy (LibRaw); nothing assumes Sony
constants.  The sensor layout is :mod:`sid_ft.io.cfa`, the packing
:mod:`sid_ft.io.pack` (Bayer) and :mod:`sid_ft.io.xtrans` (X-Trans), the ground
truth :mod:`sid_ft.io.render`.

Facts about rawpy 0.28 / LibRaw 0.22 this package relies on (checked against
rawpy's source and real files):

* ``raw.raw_pattern`` is the pattern at ``raw.raw_image[0, 0]`` (margins
  included), so for the *visible* image we use ``raw.raw_colors_visible``.
* ``raw.black_level_per_channel`` is indexed by colour index, not position.
* ``rawpy.imread`` only opens the file; decoding happens at the first data
  access.  :func:`open_raw` calls ``unpack()`` at once, so truncated or
  corrupted data fails there (``LibRawIOError`` / ``LibRawDataError``) and not
  somewhere later.  Some truncated files with a lossy/compressed payload are
  still decoded by LibRaw without an error (missing data filled in); that
  cannot be detected from Python.
* X-Trans (checked on 6x6-CFA DNGs): ``raw.raw_pattern`` is 6x6, colour
  indices are 0..2 (no G2); ``black_level_per_channel`` shows only the
  minimum of LibRaw's 6x6 per-position black pattern; the default
  ``postprocess`` demosaic refuses X-Trans images under 512x512.
* ``raw.other.shutter_speed`` is the exposure time in seconds, 0 when unknown.
* rawpy exposes no camera make/model; :class:`RawImage` reads them from the
  TIFF header when the container is TIFF-based (DNG, ARW, NEF, CR2, ...).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import rawpy

from sid_ft.errors import SidFtError
from sid_ft.io import xtrans
from sid_ft.io.cfa import XTRANS_CFA, sensor_tile, tile_to_layout
from sid_ft.io.pack import PackedIntegers, pack_raw, pack_raw_integers, packed_origin
from sid_ft.io.sid_names import exposure_from_name

RAW_EXTENSIONS: frozenset[str] = frozenset({
    ".3fr", ".ari", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".dcr", ".dcs", ".dng",
    ".drf", ".eip", ".erf", ".fff", ".iiq", ".k25", ".kdc", ".mdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".ptx", ".pxn", ".raf", ".raw", ".rw2", ".rwl", ".sr2",
    ".srf", ".srw", ".x3f",
})
"""File extensions (lower case, with the dot) treated as camera RAW files."""

_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF (WebP/AVI/WAV) file"),
)


# --------------------------------------------------------------------------- opening

def _sniff(path: Path) -> str | None:
    """Name a common non-RAW format from the first bytes, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1"):
        return "a HEIF/AVIF image"
    return None


def _check_readable(path: str | os.PathLike) -> Path:
    """``path`` as a Path once it is known to be a readable, non-empty file; SidFtError otherwise."""
    p = Path(path)
    if not p.exists():
        raise SidFtError(path, "no such file")
    if p.is_dir():
        raise SidFtError(path, "is a folder, expected a camera RAW file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as err:
        raise SidFtError(path, f"cannot read the file: {err.strerror or err}") from err
    if size == 0:
        raise SidFtError(path, "file is empty (0 bytes)")
    return p


def _imread(p: Path, path: str | os.PathLike) -> rawpy.RawPy:
    """``rawpy.imread``; a file LibRaw does not take is named as what it is (JPEG, PNG...) when known."""
    try:
        return rawpy.imread(os.fspath(p))
    except rawpy.LibRawFileUnsupportedError as err:
        what = _sniff(p)
        if what:
            raise SidFtError(path, f"is {what}, not a camera RAW file") from err
        raise SidFtError(path, "not a camera RAW file LibRaw can read "
                               "(unsupported format, or a truncated/corrupted file)") from err
    except rawpy.LibRawError as err:
        raise SidFtError(path, f"cannot open as a camera RAW file ({libraw_message(err)})") from err


def open_raw(path: str | os.PathLike) -> rawpy.RawPy:
    """Open and decode a camera RAW file.

    Returns an unpacked ``rawpy.RawPy``; use it as a context manager (or call
    ``close()``).  Raises :class:`SidFtError` naming the path for a missing file,
    a folder, an empty file, a file that is not a RAW format LibRaw reads
    (including JPEG/PNG images with a RAW extension), and truncated or corrupted
    RAW data.
    """
    raw = _imread(_check_readable(path), path)
    try:
        raw.unpack()
    except rawpy.LibRawError as err:
        raw.close()
        raise SidFtError(path, "RAW data is truncated or corrupted, LibRaw could not decode it "
                               f"({libraw_message(err)})") from err
    return raw


def libraw_message(err: Exception) -> str:
    """A rawpy/LibRaw exception as one line: ``'<ExceptionType>: <message>'`` (bytes decoded)."""
    msg = err.args[0] if err.args else err
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return f"{type(err).__name__}: {msg}"


def list_raw_files(inputs: str | os.PathLike | Iterable[str | os.PathLike], what: str) -> list[Path]:
    """Files and folders (not recursive) as a list of files; a folder gives its RAW files, sorted.

    ``what`` names the inputs in errors ('long exposures', 'dark frames').  SidFtError for a missing
    path, a folder without RAW files (:data:`RAW_EXTENSIONS`) and no inputs at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in RAW_EXTENSIONS)
            if not found:
                raise SidFtError(p, f"no RAW files in this folder ({what}); looked for "
                                    f"{', '.join(sorted(RAW_EXTENSIONS))}")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise SidFtError(p, f"no such file or folder ({what})")
    if not files:
        raise SidFtError(None, f"no {what} given")
    return files


# --------------------------------------------------------------------------- loading

@dataclass
class RawImage:
    """A packed RAW file and what later steps need from it.

    ``packed`` is (h, w, 4) float32 for Bayer files, (h, w, 9) for X-Trans
    files (see :func:`sid_ft.io.pack.pack_raw`); ``exposure_s`` in seconds or None; ``cfa`` the
    Bayer layout ('RGGB', ...) or ``'X-Trans'``; ``black_level`` per colour index
    (R, G, B, G2); ``visible_size`` (H, W) of the mosaic; ``camera`` "Make Model"
    when the file says (TIFF-based containers), else "".  ``camera_kind`` is the
    SID model the packing is for ('sony' 4-channel / 'fuji' 9-channel, the keys
    of ``sid_ft.nets.unet.CAMERAS``); ``origin`` (row, col) of the mosaic where the
    packed footprint starts (non-zero only for X-Trans files in another phase
    than the X-T2's); ``scale`` (2 or 3) photosites per packed pixel; ``flip`` LibRaw's
    orientation of the file (``raw.sizes.flip``, see :func:`sid_ft.io.render.orient`; 0 when upright).
    """
    path: str
    packed: np.ndarray
    exposure_s: float | None
    cfa: str
    black_level: tuple[float, float, float, float]
    white_level: float
    visible_size: tuple[int, int]
    camera: str
    camera_kind: str = "sony"
    origin: tuple[int, int] = (0, 0)
    flip: int = 0

    @property
    def scale(self) -> int:
        """Photosites per packed pixel along each axis: 2 (Bayer, 'sony') or 3 (X-Trans, 'fuji')."""
        return xtrans.SCALE if self.camera_kind == "fuji" else 2


def camera_name(path: str | os.PathLike) -> str:
    """"Make Model" from the TIFF header of TIFF-based RAW files (DNG, ARW, NEF, CR2...), else ""."""
    try:
        import tifffile
        with tifffile.TiffFile(os.fspath(path)) as tif:
            tags = tif.pages[0].tags
            parts = []
            for name in ("Make", "Model"):
                tag = tags.get(name)
                if tag is not None and isinstance(tag.value, str) and tag.value.strip():
                    parts.append(tag.value.strip().strip("\x00"))
    except Exception:  # noqa: BLE001 - not a TIFF container: the name is optional
        return ""
    if len(parts) == 2 and parts[1].lower().startswith(parts[0].lower()):
        return parts[1]
    return " ".join(parts)


def load_raw_integers(path: str | os.PathLike) -> PackedIntegers:
    """Open ``path`` and return :func:`sid_ft.io.pack.pack_raw_integers` of it.

    Raises :class:`SidFtError` for every problem with the file.
    """
    with open_raw(path) as raw:
        try:
            return pack_raw_integers(raw, path)
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"RAW data is truncated or corrupted ({libraw_message(err)})") from err


def load_raw(path: str | os.PathLike) -> RawImage:
    """Open ``path``, pack it (:func:`sid_ft.io.pack.pack_raw`), read levels and exposure, close it.

    Bayer files give a 4-channel ``packed`` and ``camera_kind`` 'sony', X-Trans
    files a 9-channel one and 'fuji'.  Raises :class:`SidFtError` for every
    problem with the file.
    """
    with open_raw(path) as raw:
        try:
            kind, tile = sensor_tile(raw, path)
            packed = pack_raw(raw, path)
            origin = packed_origin(raw, path)
            black = tuple(float(b) for b in raw.black_level_per_channel)
            white = float(raw.white_level)
            visible = tuple(int(s) for s in raw.raw_image_visible.shape[:2])
            exposure = exposure_time(path, raw)
            flip = int(raw.sizes.flip)
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"RAW data is truncated or corrupted ({libraw_message(err)})") from err
    cfa = XTRANS_CFA if kind == "fuji" else tile_to_layout(tile)
    return RawImage(path=os.fspath(path), packed=packed, exposure_s=exposure, cfa=cfa,
                    black_level=black, white_level=white, visible_size=visible, camera=camera_name(path),
                    camera_kind=kind, origin=origin, flip=flip)


# --------------------------------------------------------------------------- exposure

def exposure_time(path: str | os.PathLike, raw: rawpy.RawPy | None = None) -> float | None:
    """Exposure in seconds: from the SID file name, else ``raw.other.shutter_speed`` when > 0, else None.

    ``raw`` is an already open file for ``path``; without it the file is opened
    (:func:`open_raw`) only when the name does not tell.
    """
    seconds = exposure_from_name(path)
    if seconds is not None:
        return seconds
    if raw is None:
        with open_raw(path) as opened:
            return exposure_time(path, opened)
    shutter = float(raw.other.shutter_speed)
    if not (math.isfinite(shutter) and shutter > 0):
        return None
    # LibRaw stores a float32: give its shortest decimal (0.1, not 0.10000000149) so ratios come out round
    return float(str(np.float32(shutter)))
