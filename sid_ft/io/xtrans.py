"""Fujifilm X-Trans packing for SID's Fuji model: a 6x6 tile -> 9 channels at 1/3 resolution.

SID's Fuji X-T2 network takes the X-Trans mosaic packed into 9 channels, one
photosite of every 3x3 block per channel, so the packed image is 1/3 of the
mosaic's size and the network's ``depth_to_space(3)`` brings it back to full
size.  SID crops the mosaic to multiples of 6 and assumes the X-T2's phase: the
visible image starts with this 6x6 tile (colour indices 0 R, 1 G, 2 B, as
``raw.raw_colors_visible`` reports them; ``XT2_PATTERN``)::

        col 0  1  2  3  4  5
    row 0   R  B  G  B  R  G
    row 1   G  G  R  G  G  B
    row 2   G  G  B  G  G  R
    row 3   B  R  G  R  B  G
    row 4   G  G  B  G  G  R
    row 5   G  G  R  G  G  B

Channel layout (SID's Fuji ``pack_raw``).  A 6x6 tile becomes a 2x2 block of
the packed image; sub-position (p, q) of that block (p = row, q = column) holds
the tile's 3x3 block at rows 3p..3p+2, columns 3q..3q+2.  Each entry below is
the (row, col) inside the 6x6 tile read into channel k at sub-position (p, q):

    ch  colour  (0,0)   (0,1)   (1,0)   (1,1)   what
    0   R       (0,0)   (0,4)   (3,1)   (3,3)   red in the rows without a 2x2 green block
    1   G       (0,2)   (0,5)   (3,2)   (3,5)   green in those rows
    2   B       (0,1)   (0,3)   (3,0)   (3,4)   blue in those rows
    3   R       (1,2)   (2,5)   (5,2)   (4,5)   red beside the 2x2 green blocks
    4   B       (2,2)   (1,5)   (4,2)   (5,5)   blue beside the 2x2 green blocks
    5   G       (1,0)   (1,3)   (4,0)   (4,3)   2x2 green block, top-left
    6   G       (1,1)   (1,4)   (4,1)   (4,4)   2x2 green block, top-right
    7   G       (2,0)   (2,3)   (5,0)   (5,3)   2x2 green block, bottom-left
    8   G       (2,1)   (2,4)   (5,1)   (5,4)   2x2 green block, bottom-right

Every photosite of the tile is used exactly once.  Values are
``max(x - black, 0) / (white - black)`` in float32, not clipped above (like SID;
SID hard-codes black 1024 / white 16383 of the X-T2, here they come from the
file, per colour index).

Other phases.  A file whose visible mosaic starts elsewhere in the X-Trans
pattern is first cropped by the offset (dy, dx) at which its pattern equals
``XT2_PATTERN``, so the same colours always land in the same channels.  The
X-Trans pattern is unchanged by a shift of (3, 3), so two offsets always match;
the first in row-major order (dy < 3) is used.  SID's packing respects that
symmetry (the two 3x3 blocks on each diagonal of the tile are packed alike), so
either offset gives the same channels.  After the offset the mosaic is cropped
to multiples of 6, as SID does.

Facts about rawpy 0.28 / LibRaw 0.22 (checked on synthetic 6x6-CFA DNGs from
:func:`sid_ft.io.dng.write_dng`): LibRaw reads them as X-Trans (``raw_pattern``
6x6, ``raw_colors_visible`` right, colour indices 0..2 only, pixels exact).
LibRaw keeps X-Trans black levels as a 6x6 per-position pattern, and rawpy's
``black_level_per_channel`` reports only its minimum (the common part), so a
per-position black pattern is not visible from Python.
"""
from __future__ import annotations

import os

import numpy as np

from sid_ft.errors import SidFtError

XT2_PATTERN: np.ndarray = np.array([
    [0, 2, 1, 2, 0, 1],
    [1, 1, 0, 1, 1, 2],
    [1, 1, 2, 1, 1, 0],
    [2, 0, 1, 0, 2, 1],
    [1, 1, 2, 1, 1, 0],
    [1, 1, 0, 1, 1, 2],
], dtype=np.uint8)
"""(6, 6) colour indices (0 R, 1 G, 2 B) of the tile SID's Fuji packing assumes at the mosaic's origin."""
XT2_PATTERN.setflags(write=False)

# SID_FUJI_LAYOUT[k][p][q] = (row, col) in the 6x6 tile read into channel k at sub-position (p, q).
SID_FUJI_LAYOUT: tuple[tuple[tuple[tuple[int, int], ...], ...], ...] = (
    (((0, 0), (0, 4)), ((3, 1), (3, 3))),  # 0 R
    (((0, 2), (0, 5)), ((3, 2), (3, 5))),  # 1 G
    (((0, 1), (0, 3)), ((3, 0), (3, 4))),  # 2 B
    (((1, 2), (2, 5)), ((5, 2), (4, 5))),  # 3 R
    (((2, 2), (1, 5)), ((4, 2), (5, 5))),  # 4 B
    (((1, 0), (1, 3)), ((4, 0), (4, 3))),  # 5 G
    (((1, 1), (1, 4)), ((4, 1), (4, 4))),  # 6 G
    (((2, 0), (2, 3)), ((5, 0), (5, 3))),  # 7 G
    (((2, 1), (2, 4)), ((5, 1), (5, 4))),  # 8 G
)
"""Channel layout of SID's Fuji packing; see the module docstring's table."""

CHANNEL_COLOURS: tuple[int, ...] = (0, 1, 2, 0, 2, 1, 1, 1, 1)
"""Colour index (0 R, 1 G, 2 B) held by each of the 9 packed channels."""

TILE = 6
"""The X-Trans pattern repeats every 6 photosites."""
SCALE = 3
"""Packed pixels are 3x3 photosites."""


def _rgb(colors: np.ndarray) -> np.ndarray:
    """Colour indices with a second green (3) folded into green (1)."""
    colors = np.asarray(colors)
    return np.where(colors == 3, 1, colors)


def is_xtrans_pattern(colors: np.ndarray) -> bool:
    """True when the (6, 6) colour indices are some phase of the X-Trans pattern."""
    colors = np.asarray(colors)
    if colors.shape != (TILE, TILE):
        return False
    rgb = _rgb(colors)
    return any(np.array_equal(np.roll(rgb, (-dy, -dx), axis=(0, 1)), XT2_PATTERN)
               for dy in range(TILE) for dx in range(TILE))


def xtrans_offset(colors: np.ndarray, path: str | os.PathLike | None = None) -> tuple[int, int]:
    """Where the X-T2 phase starts: the first (dy, dx) with ``colors[dy:dy+6, dx:dx+6] == XT2_PATTERN``.

    Args:
        colors: (6, 6) colour indices of the mosaic's top-left tile, or the whole
            (H, W) colour map (only its top-left 6x6 tile is used; the pattern
            repeats).  0 R, 1 G, 2 B; a 3 is read as green.
        path: named in the error.

    Returns:
        (dy, dx), 0 <= dy < 3, 0 <= dx < 6, in photosites.

    Raises:
        SidFtError: (naming ``path``) when no phase of the pattern matches the
        X-T2 reference, i.e. the sensor is not an X-Trans sensor.
    """
    colors = np.asarray(colors)
    tile = _rgb(colors[:TILE, :TILE])
    where = path if path is not None else "RAW image"
    if colors.ndim != 2 or tile.shape != (TILE, TILE):
        raise SidFtError(where, f"colour map {colors.shape} is smaller than one 6x6 X-Trans tile")
    for dy in range(TILE):
        for dx in range(TILE):
            if np.array_equal(np.roll(tile, (-dy, -dx), axis=(0, 1)), XT2_PATTERN):
                return dy, dx
    raise SidFtError(where, f"6x6 colour filter array {tile.tolist()} is not an X-Trans pattern "
                            "(no phase of it matches the Fuji X-T2 layout SID's Fuji model was trained on)")


def xtrans_footprint(mosaic_shape: tuple[int, int], offset: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the mosaic area the packing uses, in photosites.

    ``height`` and ``width`` are the largest multiples of 6 that fit after the
    offset; the packed image is (height // 3, width // 3, 9) and a ground-truth
    image must be cropped to ``[top:top+height, left:left+width]``.
    """
    dy, dx = offset
    h = (mosaic_shape[0] - dy) // TILE * TILE
    w = (mosaic_shape[1] - dx) // TILE * TILE
    return dy, dx, max(h, 0), max(w, 0)


def pack_xtrans_mosaic(mosaic: np.ndarray, colors: np.ndarray,
                       black_level_per_channel, white_level: float,
                       path: str | os.PathLike | None = None) -> np.ndarray:
    """Pack an X-Trans mosaic into SID's 9-channel, 1/3-resolution Fuji input.

    Args:
        mosaic: (H, W) sensor values (any numeric dtype), origin at the visible image's top-left.
        colors: (6, 6) colour indices of the mosaic's top-left tile, or the (H, W)
            colour map (``raw.raw_colors_visible``); 0 R, 1 G, 2 B (3 = green).
        black_level_per_channel: one black level, or 4 indexed by colour index
            (R, G, B, G2), as ``raw.black_level_per_channel``; each photosite
            uses the black of its own colour index.
        white_level: saturation level.
        path: named in errors.

    Returns:
        (h, w, 9) float32, (h, w) = ((H - dy) // 6 * 2, (W - dx) // 6 * 2) where
        (dy, dx) = :func:`xtrans_offset`; channels as in :data:`SID_FUJI_LAYOUT`,
        ``max(x - black, 0) / (white - black)`` (not clipped above).  For the
        X-T2 phase and black 1024 / white 16383 this equals SID's Fuji
        ``pack_raw`` bit for bit.

    Raises:
        SidFtError: the colours are not an X-Trans pattern, the mosaic holds no
            whole 6x6 tile after the offset, or white is not above black.
        ValueError: malformed arguments (a programming error).
    """
    mosaic = np.asarray(mosaic)
    where = path if path is not None else "RAW image"
    tile_colors, black = _check_pack_args(mosaic, colors, black_level_per_channel)
    dy, dx = xtrans_offset(tile_colors, path)
    _, _, hh, ww = xtrans_footprint(mosaic.shape, (dy, dx))
    if hh == 0 or ww == 0:
        raise SidFtError(where, f"mosaic {mosaic.shape} holds no whole 6x6 X-Trans tile after the "
                                f"phase offset ({dy}, {dx})")
    # colour index of each position of the re-phased tile (the file's own indices, for its black levels)
    phased = np.roll(tile_colors, (-dy, -dx), axis=(0, 1))
    return _pack_phased(mosaic[dy:dy + hh, dx:dx + ww], phased, black, white_level, where)


def _check_pack_args(mosaic: np.ndarray, colors: np.ndarray,
                     black_level_per_channel) -> tuple[np.ndarray, np.ndarray]:
    """((6, 6) int64 colour indices of the top-left tile, (4,) black per colour index); ValueError when malformed."""
    if mosaic.ndim != 2:
        raise ValueError(f"mosaic must be (H, W), got shape {mosaic.shape}")
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[0] < TILE or colors.shape[1] < TILE:
        raise ValueError(f"colors must be (6, 6) or (H, W) colour indices, got shape {colors.shape}")
    tile_colors = colors[:TILE, :TILE].astype(np.int64)
    if tile_colors.min() < 0 or tile_colors.max() > 3:
        raise ValueError(f"colors must hold colour indices 0..3, got {tile_colors.tolist()}")
    black = np.asarray(black_level_per_channel, dtype=np.float64).ravel()
    if black.size == 1:
        black = np.repeat(black, 4)
    if black.shape != (4,):
        raise ValueError(f"black_level_per_channel must have 1 or 4 values, got {black_level_per_channel!r}")
    return tile_colors, black


def _pack_phased(crop: np.ndarray, phased: np.ndarray, black: np.ndarray, white_level: float,
                 where: str | os.PathLike) -> np.ndarray:
    """SID's Fuji packing of a mosaic already in the X-T2 phase, (6a, 6b) -> (2a, 2b, 9) float32.

    ``phased``: (6, 6) colour indices of the crop's top-left tile, for each photosite's black level.
    """
    white = float(white_level)
    h, w = crop.shape[0] // SCALE, crop.shape[1] // SCALE
    out = np.empty((h, w, 9), dtype=np.float32)
    for k, rows in enumerate(SID_FUJI_LAYOUT):
        for p, cols in enumerate(rows):
            for q, (r, c) in enumerate(cols):
                b = black[phased[r, c]]
                scale = white - b
                if not scale > 0:
                    raise SidFtError(where, f"white level {white_level} is not above black level {b}")
                plane = crop[r::TILE, c::TILE].astype(np.float32)
                np.subtract(plane, np.float32(b), out=plane)
                np.maximum(plane, np.float32(0), out=plane)
                np.divide(plane, np.float32(scale), out=out[p::2, q::2, k])
    return out
