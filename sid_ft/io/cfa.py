"""The sensor's colour filter array (CFA): which SID model a RAW file needs and its Bayer layout.

Two sensor kinds are taken, named after SID's two models (the keys of
``sid_ft.nets.unet.CAMERAS``):

* ``'sony'``: 2x2 Bayer sensors of any layout (RGGB, BGGR, GRBG, GBRG);
* ``'fuji'``: X-Trans sensors (6x6 CFA, any phase, :mod:`sid_ft.io.xtrans`).

Tiles hold LibRaw's colour indices (``raw.color_desc`` == ``RGBG``): 0 R, 1 G
(the green in the red rows), 2 B, 3 G2 (the green in the blue rows).
``raw.raw_pattern`` is the pattern at ``raw.raw_image[0, 0]`` (margins
included), so the tile of the *visible* image is read from
``raw.raw_colors_visible``.  Every other sensor (demosaiced or linear data,
Foveon, monochrome, CMYG, other CFA sizes) is a :class:`SidFtError`.
"""
from __future__ import annotations

import os

import numpy as np
import rawpy

from sid_ft.errors import SidFtError
from sid_ft.io import xtrans

BAYER_LAYOUTS = ("RGGB", "BGGR", "GRBG", "GBRG")
"""Bayer layouts as colours at positions TL, TR, BL, BR."""

XTRANS_CFA = "X-Trans"
"""``RawImage.cfa`` of an X-Trans file."""

CAMERA_KINDS = ("sony", "fuji")
"""Sensor kinds, named like SID's models: 'sony' = 2x2 Bayer (4 channels), 'fuji' = X-Trans (9 channels)."""

_COLOUR_LETTERS = "RGBG"  # colour index -> letter (raw.color_desc for Bayer RGB sensors)


def _check_mosaic(raw: rawpy.RawPy, where: str | os.PathLike) -> np.ndarray:
    """The file's CFA pattern ((2, 2) or (6, 6) colour indices) after refusing sensors SID cannot take."""
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
    return pattern


def sensor_tile(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> tuple[str, np.ndarray]:
    """('sony', (2, 2) Bayer tile) or ('fuji', (6, 6) X-Trans tile) of the visible image's top-left corner.

    Tiles hold colour indices (0 R, 1 G, 2 B, 3 G2).  SidFtError (naming
    ``path`` when given) for every other sensor: demosaiced/linear data,
    monochrome, CMYG, other CFA sizes.
    """
    where = path if path is not None else "RAW image"
    pattern = _check_mosaic(raw, where)
    visible = raw.raw_colors_visible
    if pattern.shape == (6, 6):
        return "fuji", _xtrans_tile_of(visible, where)
    return "sony", _bayer_tile_of(visible, where)


def _xtrans_tile_of(visible: np.ndarray, where: str | os.PathLike) -> np.ndarray:
    """(6, 6) X-Trans tile from the visible colour map; SidFtError when it is no phase of X-Trans."""
    if visible.shape[0] < xtrans.TILE or visible.shape[1] < xtrans.TILE:
        raise SidFtError(where, f"visible image {visible.shape} is smaller than one 6x6 X-Trans tile")
    tile6 = np.array(visible[:xtrans.TILE, :xtrans.TILE], dtype=np.uint8)
    xtrans.xtrans_offset(tile6, where)  # SidFtError when the 6x6 pattern is not X-Trans
    return tile6


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


def _bayer_tile(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> np.ndarray:
    """(2, 2) colour indices of the visible image's top-left tile; SidFtError for non-Bayer sensors."""
    kind, tile = sensor_tile(raw, path)
    if kind == "fuji":
        raise SidFtError(path if path is not None else "RAW image",
                         "is a Fujifilm X-Trans sensor (6x6 colour filter array), not a 2x2 Bayer sensor")
    return tile


def camera_kind(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> str:
    """Which SID model the file's sensor needs: 'sony' (2x2 Bayer, 4 channels) or 'fuji' (X-Trans, 9 channels).

    The names are the keys of ``sid_ft.nets.unet.CAMERAS``.  Raises
    :class:`SidFtError` (naming ``path`` when given) for sensors neither model
    can take (linear DNG / Foveon, monochrome, CMYG, other CFAs).
    """
    return sensor_tile(raw, path)[0]


def tile_to_layout(tile: np.ndarray) -> str:
    """'RGGB' | 'BGGR' | 'GRBG' | 'GBRG' for a (2, 2) array of colour indices (positions TL, TR, BL, BR)."""
    return "".join(_COLOUR_LETTERS[int(c)] for c in np.asarray(tile).ravel())


def cfa_pattern(raw: rawpy.RawPy, path: str | os.PathLike | None = None) -> str:
    """Bayer layout of the visible mosaic: 'RGGB' | 'BGGR' | 'GRBG' | 'GBRG' (positions TL, TR, BL, BR).

    Raises :class:`SidFtError` (naming ``path`` when given) for non-Bayer
    sensors: X-Trans, Foveon / linear DNG, monochrome, CMYG.
    """
    return tile_to_layout(_bayer_tile(raw, path))
