"""Reading camera RAW files for SID: open, check the sensor, pack, render, exposure.

Everything is read from the file through rawpy (LibRaw); nothing assumes Sony
constants.  Two sensor kinds are packed, named after SID's two models
(``sid_ft.nets.model.CAMERAS``), see :func:`camera_kind`:

* ``'sony'``: 2x2 Bayer sensors -> (H//2, W//2, 4) (below);
* ``'fuji'``: X-Trans sensors -> (H'//3, W'//3, 9), SID's Fuji packing with the
  tile phase taken from the file (:mod:`sid_ft.io.xtrans`).

The Bayer packing is SID's ``pack_raw`` generalised to any 2x2 Bayer
layout and any per-colour black level:

    channel k of the packed (H//2, W//2, 4) array holds the photosites whose
    colour index (``raw.raw_colors_visible``, ``raw.color_desc`` == ``RGBG``) is
    k: 0 R, 1 G (the green in the red rows), 2 B, 3 G2 (the green in the blue
    rows); value = max(x - black[k], 0) / (white - black[k]) in float32.

For an RGGB sensor this is exactly SID's order (top-left, top-right,
bottom-right, bottom-left) and, with black 512 / white 16383, bit-identical to
SID's ``pack_raw`` on the Sony A7S II.

Facts about rawpy 0.28 / LibRaw 0.22 this module relies on (checked against
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
* rawpy exposes no camera make/model; :class:`RawImage` reads them from the
  TIFF header when the container is TIFF-based (DNG, ARW, NEF, CR2, ...).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy

from sid_ft.io import xtrans
from sid_ft.errors import SidFtError

RAW_EXTENSIONS: frozenset[str] = frozenset({
    ".3fr", ".ari", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".dcr", ".dcs", ".dng",
    ".drf", ".eip", ".erf", ".fff", ".iiq", ".k25", ".kdc", ".mdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".ptx", ".pxn", ".raf", ".raw", ".rw2", ".rwl", ".sr2",
    ".srf", ".srw", ".x3f",
})
"""File extensions (lower case, with the dot) treated as camera RAW files."""

BAYER_LAYOUTS = ("RGGB", "BGGR", "GRBG", "GBRG")

XTRANS_CFA = "X-Trans"
"""``RawImage.cfa`` of an X-Trans file."""

XTRANS_MIN_RENDER = 512
"""LibRaw 0.22's X-Trans demosaic (Markesteijn, tile size 512) fails on images smaller than this in
either dimension (``LibRawIOError``), so :func:`render_reference` needs X-Trans files at least this big."""

CAMERA_KINDS = ("sony", "fuji")
"""Sensor kinds, named like SID's models: 'sony' = 2x2 Bayer (4 channels), 'fuji' = X-Trans (9 channels)."""

# SID file names: <scene id>_<burst index>_<exposure seconds>s.<ext>, e.g. 00001_00_0.1s.ARW
_SID_NAME = re.compile(r"^(?P<scene>\d+)_(?P<burst>\d+)_(?P<seconds>\d+(?:\.\d*)?|\.\d+)s"
                       r"(?:\.[A-Za-z][A-Za-z0-9]*)?$")

_COLOUR_LETTERS = "RGBG"  # colour index -> letter (raw.color_desc for Bayer RGB sensors)

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


def open_raw(path: str | os.PathLike) -> rawpy.RawPy:
    """Open and decode a camera RAW file.

    Returns an unpacked ``rawpy.RawPy``; use it as a context manager (or call
    ``close()``).  Raises :class:`SidFtError` naming the path for a missing file,
    a folder, an empty file, a file that is not a RAW format LibRaw reads
    (including JPEG/PNG images with a RAW extension), and truncated or corrupted
    RAW data.
    """
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

    try:
        raw = rawpy.imread(os.fspath(p))
    except rawpy.LibRawFileUnsupportedError as err:
        what = _sniff(p)
        if what:
            raise SidFtError(path, f"is {what}, not a camera RAW file") from err
        raise SidFtError(path, "not a camera RAW file LibRaw can read "
                               "(unsupported format, or a truncated/corrupted file)") from err
    except rawpy.LibRawError as err:
        raise SidFtError(path, f"cannot open as a camera RAW file ({_libraw_message(err)})") from err
    try:
        raw.unpack()
    except rawpy.LibRawError as err:
        raw.close()
        raise SidFtError(path, "RAW data is truncated or corrupted, LibRaw could not decode it "
                               f"({_libraw_message(err)})") from err
    return raw


def _libraw_message(err: Exception) -> str:
    msg = err.args[0] if err.args else err
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return f"{type(err).__name__}: {msg}"


# --------------------------------------------------------------------------- sensor layout

def _sensor_tile(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> tuple[str, np.ndarray]:
    """('sony', (2, 2) Bayer tile) or ('fuji', (6, 6) X-Trans tile) of the visible image's top-left corner.

    Tiles hold colour indices (0 R, 1 G, 2 B, 3 G2).  SidFtError for every
    other sensor: demosaiced/linear data, monochrome, CMYG, other CFA sizes.
    """
    where = path if path is not None else "RAW image"
    if raw.raw_type != rawpy.RawType.Flat or raw.raw_image.ndim != 2:
        raise SidFtError(where, "holds demosaiced or multi-layer RGB data (a linear DNG, a Foveon sensor "
                                "or a reduced-size sRAW), not a Bayer mosaic; SID needs the sensor's "
                                "Bayer (or X-Trans) mosaic")
    if raw.num_colors == 1:
        raise SidFtError(where, "is a monochrome sensor (1 colour, no colour filter array); "
                                "SID needs a colour Bayer (or X-Trans) mosaic")
    try:
        pattern = raw.raw_pattern
    except NotImplementedError as err:  # unusual LibRaw 'filters' values
        raise SidFtError(where, f"has a colour filter array rawpy cannot describe ({err})") from err
    if pattern is None:
        raise SidFtError(where, "has no colour filter array pattern; not a Bayer mosaic")
    if pattern.shape not in ((2, 2), (6, 6)):
        raise SidFtError(where, f"has a {pattern.shape[0]}x{pattern.shape[1]} colour filter array "
                                f"{pattern.tolist()}, not a 2x2 Bayer pattern (nor a 6x6 X-Trans pattern)")
    desc = raw.color_desc.decode("ascii", "replace") if isinstance(raw.color_desc, bytes) else str(raw.color_desc)
    if desc != "RGBG":
        raise SidFtError(where, f"has a {desc} colour filter, not an RGB Bayer (or X-Trans) sensor")
    visible = raw.raw_colors_visible
    if pattern.shape == (6, 6):
        if visible.shape[0] < xtrans.TILE or visible.shape[1] < xtrans.TILE:
            raise SidFtError(where, f"visible image {visible.shape} is smaller than one 6x6 X-Trans tile")
        tile6 = np.array(visible[:xtrans.TILE, :xtrans.TILE], dtype=np.uint8)
        xtrans.xtrans_offset(tile6, where)  # SidFtError when the 6x6 pattern is not X-Trans
        return "fuji", tile6
    return "sony", _bayer_tile_of(visible, where)


def _bayer_tile(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> np.ndarray:
    """(2, 2) colour indices of the visible image's top-left tile; SidFtError for non-Bayer sensors."""
    kind, tile = _sensor_tile(raw, path)
    if kind == "fuji":
        raise SidFtError(path if path is not None else "RAW image",
                         "is a Fujifilm X-Trans sensor (6x6 colour filter array), not a 2x2 Bayer sensor")
    return tile


def _bayer_tile_of(visible: np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """(2, 2) Bayer tile from the visible colour map, with the second green as 3."""
    if visible.shape[0] < 2 or visible.shape[1] < 2:
        raise SidFtError(where, f"visible image {visible.shape} is smaller than one 2x2 tile")
    tile = np.array(visible[:2, :2], dtype=np.uint8)
    if sorted(tile.ravel().tolist()) == [0, 1, 1, 2]:  # 3-colour file without a separate G2 index
        for r in range(2):
            if 2 in tile[r]:
                tile[r][tile[r] == 1] = 3
    if sorted(tile.ravel().tolist()) != [0, 1, 2, 3] or tile[0, 0] + tile[1, 1] not in (2, 4):
        raise SidFtError(where, f"colour filter tile {tile.tolist()} is not a Bayer layout (R, G, B, G)")
    return tile


def camera_kind(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> str:
    """Which SID model the file's sensor needs: 'sony' (2x2 Bayer, 4 channels) or 'fuji' (X-Trans, 9 channels).

    The names are the keys of ``sid_ft.nets.model.CAMERAS``.  Raises
    :class:`SidFtError` (naming ``path`` when given) for sensors neither model
    can take (linear DNG / Foveon, monochrome, CMYG, other CFAs).
    """
    return _sensor_tile(raw, path)[0]


def tile_to_layout(tile: np.ndarray) -> str:
    """'RGGB' | 'BGGR' | 'GRBG' | 'GBRG' for a (2, 2) array of colour indices (positions TL, TR, BL, BR)."""
    return "".join(_COLOUR_LETTERS[int(c)] for c in np.asarray(tile).ravel())


def cfa_pattern(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> str:
    """Bayer layout of the visible mosaic: 'RGGB' | 'BGGR' | 'GRBG' | 'GBRG' (positions TL, TR, BL, BR).

    Raises :class:`SidFtError` (naming ``path`` when given) for non-Bayer
    sensors: X-Trans, Foveon / linear DNG, monochrome, CMYG.
    """
    return tile_to_layout(_bayer_tile(raw, path))


# --------------------------------------------------------------------------- packing

def pack_mosaic(mosaic: np.ndarray, raw_colors: np.ndarray,
                black_level_per_channel, white_level: float) -> np.ndarray:
    """Pack a Bayer mosaic into SID's 4-channel half-resolution input.

    Args:
        mosaic: (H, W) sensor values (any numeric dtype).  Odd H or W: the last
            row/column is dropped.
        raw_colors: (H, W) or (2, 2) colour indices (0 R, 1 G, 2 B, 3 G2) of the
            mosaic's positions; only the top-left 2x2 tile is used (a Bayer
            pattern repeats every 2 pixels).
        black_level_per_channel: 4 black levels indexed by colour index.
        white_level: saturation level.

    Returns:
        (H//2, W//2, 4) float32; channel k = colour index k, computed in float32
        as ``max(x - black[k], 0) / (white - black[k])`` (not clipped above, like SID).
    """
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2:
        raise ValueError(f"mosaic must be (H, W), got shape {mosaic.shape}")
    tile = np.asarray(raw_colors)[:2, :2]
    if tile.shape != (2, 2) or sorted(tile.ravel().tolist()) != [0, 1, 2, 3]:
        raise ValueError(f"raw_colors must give a Bayer tile with colour indices 0..3, got {tile.tolist()}")
    black = np.asarray(black_level_per_channel, dtype=np.float64).ravel()
    if black.shape != (4,):
        raise ValueError(f"black_level_per_channel must have 4 values, got {black_level_per_channel!r}")
    h, w = mosaic.shape[0] // 2, mosaic.shape[1] // 2
    out = np.empty((h, w, 4), dtype=np.float32)
    for i in range(2):
        for j in range(2):
            k = int(tile[i, j])
            scale = float(white_level) - black[k]
            if not scale > 0:
                raise ValueError(f"white level {white_level} is not above black level {black[k]}")
            plane = mosaic[i:2 * h:2, j:2 * w:2].astype(np.float32)
            np.subtract(plane, np.float32(black[k]), out=plane)
            np.maximum(plane, np.float32(0), out=plane)
            np.divide(plane, np.float32(scale), out=out[:, :, k])
    return out


def pack_raw(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> np.ndarray:
    """SID's ``pack_raw`` from ``raw.raw_image_visible``, for the sensor the file has.

    * Bayer (any layout): (H//2, W//2, 4) float32, channel order R, G, B, G2 by
      colour index (:func:`pack_mosaic`).
    * X-Trans: (h, w, 9) float32 at 1/3 resolution, SID's Fuji packing after
      aligning the file's tile phase with the X-T2's
      (:func:`sid_ft.io.xtrans.pack_xtrans_mosaic`; ``h = (H - dy) // 6 * 2``).

    Levels from ``raw.black_level_per_channel`` and ``raw.white_level``.
    :class:`SidFtError` (naming ``path`` when given) for other sensors or
    unusable levels.  :func:`camera_kind` says which packing a file gets.
    """
    kind, tile = _sensor_tile(raw, path)
    black = raw.black_level_per_channel
    white = raw.white_level
    if not all(white > b for b in black):
        raise SidFtError(path if path is not None else "RAW image",
                         f"white level {white} is not above the black levels {list(black)}")
    if kind == "fuji":
        return xtrans.pack_xtrans_mosaic(raw.raw_image_visible, tile, black, white, path)
    return pack_mosaic(raw.raw_image_visible, tile, black, white)


@dataclass
class PackedIntegers:
    """A packed RAW image kept as the sensor's integers plus the levels that normalise them.

    ``values`` (h, w, C) uint16: the photosites of :func:`pack_raw`'s layout, before levels
    (2 bytes a value instead of float32's 4).  ``black`` (2, 2, C) float32: the black level of
    each packed position; the pattern repeats every 2 packed pixels (Bayer: one value per
    channel; X-Trans: per colour index of each photosite).  :meth:`normalise` gives
    :func:`pack_raw`'s float32 values bit for bit, for the whole image or a crop.
    """

    values: np.ndarray
    black: np.ndarray
    white: float

    def normalise(self, values: np.ndarray | None = None, y0: int = 0, x0: int = 0) -> np.ndarray:
        """``max(x - black, 0) / (white - black)`` in float32, as :func:`pack_raw` computes it.

        ``values``: a crop of :attr:`values` (default: all of it) whose top-left packed pixel is (y0, x0).
        """
        v = self.values if values is None else values
        h, w = v.shape[:2]
        black = np.roll(self.black, (-(y0 % 2), -(x0 % 2)), axis=(0, 1))
        reps = (-(-h // 2), -(-w // 2), 1)
        b = np.tile(black, reps)[:h, :w]
        scale = (np.float64(self.white) - b.astype(np.float64)).astype(np.float32)
        out = v.astype(np.float32)
        np.subtract(out, b, out=out)
        np.maximum(out, np.float32(0), out=out)
        np.divide(out, scale, out=out)
        return out


def pack_raw_integers(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> PackedIntegers:
    """:func:`pack_raw` without the levels: the packed sensor integers, their black levels and white level.

    Packing with black 0 and white 1 only moves values (exact for integers below 2**24), so the
    same code packs the file's values and a map of the black level of each photosite.
    """
    kind, tile = _sensor_tile(raw, path)
    white = float(raw.white_level)
    black = np.asarray(raw.black_level_per_channel, dtype=np.float64)
    if not all(white > b for b in black):
        raise SidFtError(path if path is not None else "RAW image",
                         f"white level {white:g} is not above the black levels {black.tolist()}")
    visible = raw.raw_image_visible
    if visible.max(initial=0) > np.iinfo(np.uint16).max:
        raise SidFtError(path if path is not None else "RAW image", "sensor values above 65535")
    black_map = black[raw.raw_colors_visible]
    if kind == "fuji":
        values = xtrans.pack_xtrans_mosaic(visible, tile, 0.0, 1.0, path)
        levels = xtrans.pack_xtrans_mosaic(black_map, tile, 0.0, 1.0, path)
    else:
        values = pack_mosaic(visible, tile, (0.0,) * 4, 1.0)
        levels = pack_mosaic(black_map, tile, (0.0,) * 4, 1.0)
    period = levels[:2, :2]
    h, w = levels.shape[:2]
    if not np.array_equal(np.tile(period, (-(-h // 2), -(-w // 2), 1))[:h, :w], levels):
        raise ValueError("black levels of the packed image do not repeat every 2 packed pixels")
    return PackedIntegers(values=values.astype(np.uint16), black=np.ascontiguousarray(period), white=white)


def packed_origin(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> tuple[int, int]:
    """(row, col) of the visible mosaic where the packed image starts, in photosites.

    (0, 0) for Bayer files and for X-Trans files in the X-T2's phase; otherwise
    the X-Trans phase offset (:func:`sid_ft.io.xtrans.xtrans_offset`).  A
    full-resolution image aligned with ``pack_raw(raw)`` (h, w) is
    ``image[r0:r0 + s*h, c0:c0 + s*w]`` with s = 2 (Bayer) or 3 (X-Trans).
    """
    kind, tile = _sensor_tile(raw, path)
    return xtrans.xtrans_offset(tile, path) if kind == "fuji" else (0, 0)


# --------------------------------------------------------------------------- loading

@dataclass
class RawImage:
    """A packed RAW file and what later steps need from it.

    ``packed`` is (h, w, 4) float32 for Bayer files, (h, w, 9) for X-Trans
    files (see :func:`pack_raw`); ``exposure_s`` in seconds or None; ``cfa`` the
    Bayer layout ('RGGB', ...) or ``'X-Trans'``; ``black_level`` per colour index
    (R, G, B, G2); ``visible_size`` (H, W) of the mosaic; ``camera`` "Make Model"
    when the file says (TIFF-based containers), else "".  ``camera_kind`` is the
    SID model the packing is for ('sony' 4-channel / 'fuji' 9-channel, the keys
    of ``sid_ft.nets.model.CAMERAS``); ``origin`` (row, col) of the mosaic where the
    packed footprint starts (non-zero only for X-Trans files in another phase
    than the X-T2's); ``scale`` (2 or 3) photosites per packed pixel; ``flip`` LibRaw's
    orientation of the file (``raw.sizes.flip``, see :func:`orient`; 0 when upright).
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
    """Open ``path`` and return :func:`pack_raw_integers` of it; SidFtError for every problem with the file."""
    with open_raw(path) as raw:
        try:
            return pack_raw_integers(raw, path)
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"RAW data is truncated or corrupted ({_libraw_message(err)})") from err


def load_raw(path: str | os.PathLike) -> RawImage:
    """Open ``path``, pack it (:func:`pack_raw`), read levels and exposure, close it.

    Bayer files give a 4-channel ``packed`` and ``camera_kind`` 'sony', X-Trans
    files a 9-channel one and 'fuji'.  Raises :class:`SidFtError` for every
    problem with the file.
    """
    with open_raw(path) as raw:
        try:
            kind, tile = _sensor_tile(raw, path)
            packed = pack_raw(raw, path)
            origin = packed_origin(raw, path)
            black = tuple(float(b) for b in raw.black_level_per_channel)
            white = float(raw.white_level)
            visible = tuple(int(s) for s in raw.raw_image_visible.shape[:2])
            exposure = exposure_time(path, raw)
            flip = int(raw.sizes.flip)
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"RAW data is truncated or corrupted ({_libraw_message(err)})") from err
    cfa = XTRANS_CFA if kind == "fuji" else tile_to_layout(tile)
    return RawImage(path=os.fspath(path), packed=packed, exposure_s=exposure, cfa=cfa,
                    black_level=black, white_level=white, visible_size=visible, camera=camera_name(path),
                    camera_kind=kind, origin=origin, flip=flip)


# --------------------------------------------------------------------------- orientation

FLIP_NAMES = {0: "upright", 1: "mirrored left-right", 2: "mirrored top-bottom", 3: "rotated 180°",
              4: "transposed", 5: "rotated 90° counter-clockwise", 6: "rotated 90° clockwise",
              7: "transposed across the other diagonal"}
"""What LibRaw's ``flip`` (``raw.sizes.flip``) does to the sensor image when it is applied.  LibRaw maps
the TIFF/EXIF Orientation tag onto it: 1 -> 0, 3 -> 3, 6 -> 6, 8 -> 5 (2, 4, 5, 7 are the mirrored ones)."""


def orient(image: np.ndarray, flip: int) -> np.ndarray:
    """``image`` (H, W, ...) in sensor orientation turned the way LibRaw turns it for ``flip``.

    LibRaw's output pixel (r, c) is the sensor pixel ``flip_index(r, c)``: with bit 4 the
    coordinates are swapped, bit 2 reverses the rows, bit 1 the columns.  So: reverse rows
    (bit 2), reverse columns (bit 1), then transpose (bit 4) — identical, pixel for pixel,
    to ``postprocess()`` without ``user_flip=0`` (tested for all eight values).  Returns a
    view (no copy); (W, H, ...) when bit 4 is set.
    """
    flip = int(flip)
    if not 0 <= flip <= 7:
        raise ValueError(f"LibRaw flip must be 0..7, got {flip}")
    if flip & 2:
        image = image[::-1]
    if flip & 1:
        image = image[:, ::-1]
    if flip & 4:
        image = image.swapaxes(0, 1)
    return image


# --------------------------------------------------------------------------- ground truth

def _unstretch(rgb: np.ndarray, axis: int, size: int, pixel_aspect: float) -> np.ndarray:
    """Undo LibRaw's pixel-aspect stretch along ``axis``: linear interpolation back to ``size`` samples.

    LibRaw (``stretch()``) resamples the stretched axis linearly, output sample
    j taken at source position j / a (a = pixel_aspect, or 1 / pixel_aspect for
    a height stretch).  Source sample c therefore sits at stretched position c * a.
    """
    a = pixel_aspect if axis == 1 else 1.0 / pixel_aspect
    n = rgb.shape[axis]
    pos = np.arange(size, dtype=np.float64) * a
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = np.clip(pos - lo, 0.0, 1.0).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = size
    frac = frac.reshape(shape)
    return np.take(rgb, lo, axis=axis) * (1 - frac) + np.take(rgb, hi, axis=axis) * frac


def render_reference(path: str | os.PathLike, brightness: float = 1.0) -> np.ndarray:
    """SID ground truth of a (long-exposure) RAW file.

    LibRaw ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
    output_bps=16)`` / 65535 as float32, like SID, with two alignment rules so
    that the result lies exactly on the packed input's footprint:

    * ``user_flip=0``: the image stays in sensor orientation (no EXIF rotation),
      like the packed mosaic.
    * Non-square pixels (``raw.sizes.pixel_aspect`` != 1, e.g. Kodak DC120 at
      about 1.53): LibRaw stretches its rendering; it is resampled back to the
      mosaic's size by linear interpolation along the stretched axis.

    Returns (2*h, 2*w, 3) float32 in [0, 1] for Bayer files, (3*h, 3*w, 3) for
    X-Trans files (LibRaw's default X-Trans demosaic, 3-pass Markesteijn, as SID
    used), (h, w) = packed size, taken from the packed footprint
    (:func:`packed_origin`: X-Trans files in another phase than the X-T2's start
    a few rows/columns in).  Raises :class:`SidFtError` for unreadable files and
    sensors :func:`pack_raw` refuses, for X-Trans images under 512x512 photosites
    (LibRaw's X-Trans demosaic refuses them), and when LibRaw's rendering cannot
    be mapped onto the mosaic (e.g. Fuji SuperCCD's 45° layout).

    ``brightness`` is LibRaw's ``bright``: the linear values are multiplied by it before
    the gamma curve (and clip at white), so ``brightness=ratio`` renders a short exposure
    as a camera would have exposed it ``ratio`` times longer, noise and all — what one
    gets without the network.
    """
    if not (math.isfinite(brightness) and brightness > 0):
        raise ValueError(f"brightness must be a positive number, got {brightness!r}")
    with open_raw(path) as raw:
        try:
            kind, tile = _sensor_tile(raw, path)
            vis_h, vis_w = raw.raw_image_visible.shape[:2]
            if kind == "fuji" and min(vis_h, vis_w) < XTRANS_MIN_RENDER:
                raise SidFtError(path, f"X-Trans image {vis_h}x{vis_w} is too small to render: LibRaw's "
                                       f"X-Trans demosaic needs at least {XTRANS_MIN_RENDER}x"
                                       f"{XTRANS_MIN_RENDER} photosites")
            aspect = float(raw.sizes.pixel_aspect)
            rgb = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
                                  output_bps=16, user_flip=0, bright=float(brightness))
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"LibRaw could not render the file ({_libraw_message(err)})") from err
    img = rgb.astype(np.float32) / np.float32(65535.0)
    h, w = img.shape[:2]
    if (h, w) != (vis_h, vis_w) and aspect != 1.0 and math.isfinite(aspect) and aspect > 0:
        if aspect > 1 and h == vis_h and w == int(vis_w * aspect + 0.5):
            img = _unstretch(img, 1, vis_w, aspect)
        elif aspect < 1 and w == vis_w and h == int(vis_h / aspect + 0.5):
            img = _unstretch(img, 0, vis_h, aspect)
        h, w = img.shape[:2]
    if (h, w) != (vis_h, vis_w):
        raise SidFtError(path, f"LibRaw renders {h}x{w} pixels from a {vis_h}x{vis_w} mosaic (pixel aspect "
                               f"{aspect:g}); the rendering cannot be aligned with the packed input")
    if kind == "fuji":
        top, left, out_h, out_w = xtrans.xtrans_footprint((vis_h, vis_w), xtrans.xtrans_offset(tile, path))
        return np.ascontiguousarray(img[top:top + out_h, left:left + out_w], dtype=np.float32)
    out_h, out_w = 2 * (vis_h // 2), 2 * (vis_w // 2)
    return np.ascontiguousarray(img[:out_h, :out_w], dtype=np.float32)


# --------------------------------------------------------------------------- exposure

def sid_name_parts(path: str | os.PathLike) -> tuple[str, str, float] | None:
    """(scene id, burst index, exposure seconds) from a SID file name, or None.

    SID names are ``<scene>_<burst>_<seconds>s.<ext>``: ``00001_00_0.1s.ARW`` ->
    ('00001', '00', 0.1).  Any folder and extension; digits counts not enforced.
    """
    m = _SID_NAME.match(Path(os.fspath(path)).name)
    if m is None:
        return None
    seconds = float(m.group("seconds"))
    if not seconds > 0:
        return None
    return m.group("scene"), m.group("burst"), seconds


def exposure_from_name(path: str | os.PathLike) -> float | None:
    """Exposure time in seconds from a SID file name (``00001_00_0.1s.ARW`` -> 0.1), else None."""
    parts = sid_name_parts(path)
    return None if parts is None else parts[2]


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


def exposure_ratio(short_s: float | None, long_s: float | None, cap: float = 300.0) -> float:
    """SID's amplification ratio ``min(long / short, cap)``.

    Raises :class:`SidFtError` when an exposure is unknown (None), not positive,
    or the cap is not positive.
    """
    for name, value in (("short", short_s), ("long", long_s), ("cap", cap)):
        if value is None or not (isinstance(value, (int, float, np.floating, np.integer))
                                 and math.isfinite(float(value)) and value > 0):
            raise SidFtError(None, f"{name} exposure {value!r} is not a positive number of seconds"
                             if name != "cap" else f"ratio cap {value!r} is not a positive number")
    return min(float(long_s) / float(short_s), float(cap))
