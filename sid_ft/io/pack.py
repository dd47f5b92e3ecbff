"""SID's ``pack_raw``: a RAW mosaic as the network's input, for the sensor the file has.

The Bayer packing is SID's ``pack_raw`` generalised to any 2x2 Bayer layout and
any per-colour black level:

    channel k of the packed (H//2, W//2, 4) array holds the photosites whose
    colour index (``raw.raw_colors_visible``, ``raw.color_desc`` == ``RGBG``) is
    k: 0 R, 1 G (the green in the red rows), 2 B, 3 G2 (the green in the blue
    rows); value = max(x - black[k], 0) / (white - black[k]) in float32.

For an RGGB sensor this is exactly SID's order (top-left, top-right,
bottom-right, bottom-left) and, with black 512 / white 16383, bit-identical to
SID's ``pack_raw`` on the Sony A7S II.  X-Trans files get SID's Fuji packing,
(h, w, 9) at 1/3 resolution (:mod:`sid_ft.io.xtrans`).  Levels come from
``raw.black_level_per_channel`` (indexed by colour index, not position) and
``raw.white_level``; nothing assumes Sony constants.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import rawpy

from sid_ft.errors import SidFtError
from sid_ft.io import xtrans
from sid_ft.io.cfa import sensor_tile


def _check_mosaic_args(mosaic: np.ndarray, raw_colors: np.ndarray,
                       black_level_per_channel) -> tuple[np.ndarray, np.ndarray]:
    """(2, 2) colour-index tile and (4,) black levels for :func:`pack_mosaic`; ValueError when malformed."""
    if mosaic.ndim != 2:
        raise ValueError(f"mosaic must be (H, W), got shape {mosaic.shape}")
    tile = np.asarray(raw_colors)[:2, :2]
    if tile.shape != (2, 2) or sorted(tile.ravel().tolist()) != [0, 1, 2, 3]:
        raise ValueError(f"raw_colors must give a Bayer tile with colour indices 0..3, got {tile.tolist()}")
    black = np.asarray(black_level_per_channel, dtype=np.float64).ravel()
    if black.shape != (4,):
        raise ValueError(f"black_level_per_channel must have 4 values, got {black_level_per_channel!r}")
    return tile, black


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
    tile, black = _check_mosaic_args(mosaic, raw_colors, black_level_per_channel)
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
    unusable levels.  :func:`sid_ft.io.cfa.camera_kind` says which packing a file gets.
    """
    kind, tile = sensor_tile(raw, path)
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
    kind, tile = sensor_tile(raw, path)
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
    kind, tile = sensor_tile(raw, path)
    return xtrans.xtrans_offset(tile, path) if kind == "fuji" else (0, 0)
