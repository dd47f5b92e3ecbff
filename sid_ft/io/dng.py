"""Write a colour-filter-array mosaic as a minimal, uncompressed DNG.

Tests and the demo use this to make *real* RAW files that go through the same
rawpy/LibRaw path as camera files.  The writer produces one IFD holding the
mosaic (PhotometricInterpretation CFA, 16 bits, no compression: LibRaw 0.22
cannot read deflate-compressed DNG) and the tags LibRaw needs to report the
levels, the layout and the exposure back exactly:

    NewSubfileType 0, CFARepeatPatternDim / CFAPattern, DNGVersion 1.4,
    UniqueCameraModel, Make/Model, BlackLevelRepeatDim / BlackLevel (one value
    per pattern position), WhiteLevel, ColorMatrix1, AsShotNeutral,
    CalibrationIlluminant1 (D65), ExposureTime (read back by rawpy as
    ``raw.other.shutter_speed``).

Colour indices follow LibRaw/rawpy (``raw.color_desc`` ``RGBG``): 0 R, 1 G,
2 B, 3 second G.  In a Bayer layout LibRaw calls the green that shares a row
with blue "3"; ``black_level`` values given per colour index are placed
accordingly, so ``raw.black_level_per_channel`` reads them back unchanged.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import numpy as np

from sid_ft.errors import SidFtError

# XYZ (D65) -> linear sRGB.  Used as the default ColorMatrix1 (XYZ -> camera), i.e.
# the synthetic "camera" sees linear sRGB primaries, so LibRaw's sRGB rendering of a
# neutral-balanced file is the identity colour transform.
XYZ_TO_LINEAR_SRGB = np.array(
    [[3.2404542, -1.5371385, -0.4985314],
     [-0.9692660, 1.8760108, 0.0415560],
     [0.0556434, -0.2040259, 1.0572252]])

MIN_SIZE = 22
"""LibRaw (like dcraw) rejects RAW images narrower or shorter than this as 'not RAW'."""

_LETTER_TO_DNG = {"R": 0, "G": 1, "B": 2}

# TIFF tag codes (TIFF 6, TIFF/EP, DNG 1.4)
_NEW_SUBFILE_TYPE = 254
_MAKE = 271
_MODEL = 272
_ORIENTATION = 274
_CFA_REPEAT_PATTERN_DIM = 33421
_CFA_PATTERN = 33422
_EXPOSURE_TIME = 33434
_DNG_VERSION = 50706
_DNG_BACKWARD_VERSION = 50707
_UNIQUE_CAMERA_MODEL = 50708
_CFA_PLANE_COLOR = 50710
_CFA_LAYOUT = 50711
_BLACK_LEVEL_REPEAT_DIM = 50713
_BLACK_LEVEL = 50714
_WHITE_LEVEL = 50717
_COLOR_MATRIX_1 = 50721
_AS_SHOT_NEUTRAL = 50728
_CALIBRATION_ILLUMINANT_1 = 50778
_D65 = 21


def cfa_indices(cfa: str | Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Colour index (0 R, 1 G, 2 B, 3 second G) of each position of a CFA tile.

    ``cfa`` is a 4-letter Bayer string over positions TL, TR, BL, BR
    (``'RGGB'``, ``'BGGR'``, ``'GRBG'``, ``'GBRG'``), or a square (2, 2) or
    (6, 6) array of colour indices (6x6 for X-Trans; there any
    green may be 1).  For a Bayer string the green sharing a row with blue gets
    index 3, as LibRaw numbers it.  Returns an (n, n) uint8 array.
    """
    if isinstance(cfa, str):
        letters = cfa.upper()
        if letters not in ("RGGB", "BGGR", "GRBG", "GBRG"):
            raise ValueError(f"cfa {cfa!r}: expected a Bayer layout such as 'RGGB', 'BGGR', 'GRBG', 'GBRG'")
        tile = np.array([_LETTER_TO_DNG[c] for c in letters], dtype=np.uint8).reshape(2, 2)
        for r in range(2):
            if 2 in tile[r]:
                tile[r][tile[r] == 1] = 3
        return tile
    tile = np.asarray(cfa)
    if tile.ndim != 2 or tile.shape[0] != tile.shape[1] or tile.shape[0] not in (2, 6):
        raise ValueError(f"cfa array must be (2, 2) or (6, 6) colour indices, got shape {tile.shape}")
    if not np.issubdtype(tile.dtype, np.integer) or tile.min() < 0 or tile.max() > 3 \
            or not (np.any(tile == 0) and np.any(tile == 2)):
        raise ValueError(f"cfa array must hold colour indices 0..3 including R (0) and B (2), got {tile.tolist()}")
    return tile.astype(np.uint8)


def _rational(x: float, signed: bool = False, max_den: int = 1_000_000) -> tuple[int, int]:
    f = Fraction(float(x)).limit_denominator(max_den)
    limit = 2**31 - 1 if signed else 2**32 - 1
    if abs(f.numerator) > limit:
        raise ValueError(f"{x} does not fit a TIFF {'S' if signed else ''}RATIONAL")
    return f.numerator, f.denominator


def _mosaic_uint16(mosaic: np.ndarray) -> np.ndarray:
    """``mosaic`` (H, W) as uint16 (floats rounded); ValueError when it is not 2-D, too small or out of 0..65535."""
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2:
        raise ValueError(f"mosaic must be 2-D (H, W), got shape {mosaic.shape}")
    if min(mosaic.shape) < MIN_SIZE:
        raise ValueError(f"mosaic {mosaic.shape} is too small: LibRaw refuses images under "
                         f"{MIN_SIZE}x{MIN_SIZE} pixels")
    if mosaic.dtype != np.uint16:
        if np.issubdtype(mosaic.dtype, np.floating) and not np.all(np.isfinite(mosaic)):
            raise ValueError("mosaic holds non-finite values")
        if mosaic.min() < 0 or mosaic.max() > 65535:
            raise ValueError("mosaic values must fit 0..65535")
        mosaic = np.round(mosaic).astype(np.uint16) if np.issubdtype(mosaic.dtype, np.floating) \
            else mosaic.astype(np.uint16)
    return mosaic


def _levels(black_level: float | Sequence[float], white_level: int | None, mosaic: np.ndarray,
            tile: np.ndarray) -> tuple[np.ndarray, int]:
    """((4,) black per colour index, white level) checked: 0 <= black < white <= 65535, one black for X-Trans."""
    black = np.broadcast_to(np.asarray(black_level, dtype=np.float64).ravel(), (4,)) \
        if np.ndim(black_level) == 0 else np.asarray(black_level, dtype=np.float64).ravel()
    if black.shape != (4,):
        raise ValueError(f"black_level must be one value or 4 per colour index (R, G, B, G2), got {black_level!r}")
    if white_level is None:
        white_level = max(int(mosaic.max()), 1)
    white_level = int(white_level)
    if not 0 < white_level <= 65535 or np.any(black < 0) or np.any(black >= white_level):
        raise ValueError(f"levels must satisfy 0 <= black < white <= 65535 "
                         f"(black {black.tolist()}, white {white_level})")
    if tile.shape[0] == 6 and np.ptp(black[np.unique(tile)]) != 0:
        # LibRaw keeps a 6x6 black pattern per position and rawpy reports only its minimum in
        # black_level_per_channel, so per-colour X-Trans blacks would not read back.
        raise ValueError(f"a 6x6 (X-Trans) CFA takes one black level: rawpy/LibRaw 0.22 report only the "
                         f"minimum of per-colour X-Trans blacks, got {black.tolist()}")
    return black, white_level


def _colour(color_matrix: np.ndarray | Sequence[float] | None,
            as_shot_neutral: Sequence[float] | None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(ColorMatrix1 with 9 values, AsShotNeutral with 3 positive values), defaults filled in; ValueError otherwise."""
    cm = XYZ_TO_LINEAR_SRGB if color_matrix is None else np.asarray(color_matrix, dtype=np.float64)
    if cm.size != 9:
        raise ValueError(f"color_matrix must have 9 values, got {cm.size}")
    neutral = (1.0, 1.0, 1.0) if as_shot_neutral is None else tuple(float(v) for v in as_shot_neutral)
    if len(neutral) != 3 or min(neutral) <= 0:
        raise ValueError(f"as_shot_neutral must be 3 positive values, got {as_shot_neutral!r}")
    return cm, neutral


def _tags(tile: np.ndarray, black: np.ndarray, white_level: int, cm: np.ndarray,
          neutral: tuple[float, float, float], make: str, model: str, orientation: int) -> list[tuple]:
    """tifffile ``extratags`` (code, dtype, count, value, writeonce) of the DNG, ExposureTime aside."""
    n = tile.shape[0]
    dng_pattern = np.where(tile == 3, 1, tile).astype(np.uint8)  # DNG CFA colours: 0 R, 1 G, 2 B
    black_per_position = black[tile].ravel()
    camera = f"{make} {model}".strip()
    return [
        (_NEW_SUBFILE_TYPE, "I", 1, 0, True),
        (_MAKE, "s", 0, make, True),
        (_MODEL, "s", 0, model, True),
        (_ORIENTATION, "H", 1, int(orientation), True),
        (_CFA_REPEAT_PATTERN_DIM, "H", 2, (n, n), True),
        (_CFA_PATTERN, "B", n * n, tuple(int(v) for v in dng_pattern.ravel()), True),
        (_DNG_VERSION, "B", 4, (1, 4, 0, 0), True),
        (_DNG_BACKWARD_VERSION, "B", 4, (1, 1, 0, 0), True),
        (_UNIQUE_CAMERA_MODEL, "s", 0, camera, True),
        (_CFA_PLANE_COLOR, "B", 3, (0, 1, 2), True),
        (_CFA_LAYOUT, "H", 1, 1, True),
        (_BLACK_LEVEL_REPEAT_DIM, "H", 2, (n, n), True),
        (_BLACK_LEVEL, "2I", n * n, tuple(v for b in black_per_position for v in _rational(b)), True),
        (_WHITE_LEVEL, "I", 1, white_level, True),
        (_COLOR_MATRIX_1, "2i", 9, tuple(v for x in cm.ravel() for v in _rational(x, signed=True, max_den=10000)),
         True),
        (_AS_SHOT_NEUTRAL, "2I", 3, tuple(v for x in neutral for v in _rational(x)), True),
        (_CALIBRATION_ILLUMINANT_1, "H", 1, _D65, True),
    ]


def _write_tiff(path: str | os.PathLike, mosaic: np.ndarray, tags: list[tuple]) -> None:
    """One uncompressed CFA IFD with ``tags``; SidFtError when the file cannot be written."""
    import tifffile  # local import: only the writer needs it

    try:
        with tifffile.TiffWriter(os.fspath(path), bigtiff=False) as tif:
            tif.write(mosaic, photometric=tifffile.PHOTOMETRIC.CFA, compression=None,
                      planarconfig=None, metadata=None, extratags=tags, software=False)
    except OSError as err:
        raise SidFtError(path, f"cannot write DNG: {err.strerror or err}") from err


def write_dng(path: str | os.PathLike,
              mosaic: np.ndarray,
              cfa: str | Sequence[Sequence[int]] | np.ndarray = "RGGB",
              black_level: float | Sequence[float] = 0,
              white_level: int | None = None,
              exposure_time: float | None = None,
              color_matrix: np.ndarray | Sequence[float] | None = None,
              as_shot_neutral: Sequence[float] | None = None,
              make: str = "sid_ft",
              model: str = "Synthetic",
              orientation: int = 1) -> None:
    """Write ``mosaic`` as an uncompressed CFA DNG that rawpy/LibRaw reads back exactly.

    Args:
        path: output file (conventionally ``*.dng``); overwritten.
        mosaic: (H, W) sensor values, written as uint16 (values must fit 0..65535);
            H, W >= 22 (:data:`MIN_SIZE`, LibRaw's limit; any parity).
        cfa: Bayer layout string over positions TL, TR, BL, BR, or a (2, 2) / (6, 6)
            array of colour indices (see :func:`cfa_indices`).
        black_level: one value, or 4 values per colour index (R, G, B, G2) as
            ``raw.black_level_per_channel`` reports them.  Written per CFA position.
            A 6x6 (X-Trans) CFA takes one value (the colours it uses must share it).
        white_level: saturation value; default ``mosaic.max()`` (at least 1).
        exposure_time: seconds (ExposureTime tag, ``raw.other.shutter_speed``); None: no tag.
        color_matrix: ColorMatrix1, 3x3 XYZ(D65) -> camera; default
            :data:`XYZ_TO_LINEAR_SRGB`.
        as_shot_neutral: camera-space neutral (3 values, the inverse of the white
            balance multipliers); default (1, 1, 1).
        make, model: Make / Model tags; UniqueCameraModel is "make model".
        orientation: TIFF Orientation (1 none, 3 180°, 6 90° CW, 8 90° CCW; rawpy
            reports it as ``raw.sizes.flip``).  The mosaic itself is stored unrotated.

    Raises:
        ValueError: for arguments that cannot describe a valid DNG (a programming error).
        SidFtError: when the file cannot be written.
    """
    mosaic = _mosaic_uint16(mosaic)
    tile = cfa_indices(cfa)
    black, white_level = _levels(black_level, white_level, mosaic, tile)
    cm, neutral = _colour(color_matrix, as_shot_neutral)
    if orientation not in (1, 2, 3, 4, 5, 6, 7, 8):
        raise ValueError(f"orientation must be a TIFF Orientation 1..8, got {orientation!r}")
    tags = _tags(tile, black, white_level, cm, neutral, make, model, orientation)
    if exposure_time is not None:
        if not exposure_time > 0:
            raise ValueError(f"exposure_time must be positive seconds, got {exposure_time!r}")
        tags.append((_EXPOSURE_TIME, "2I", 1, _rational(exposure_time), True))
    _write_tiff(path, mosaic, tags)
