"""SID's ground truth: LibRaw's rendering of a long exposure, aligned with the packed input; orientation.

:func:`render_reference` is SID's ``postprocess(use_camera_wb=True, half_size=False,
no_auto_bright=True, output_bps=16)`` kept in sensor orientation and mapped onto the
packed mosaic's footprint; :func:`orient` turns an image the way LibRaw's ``flip``
(the file's orientation) would.
"""
from __future__ import annotations

import math
import os

import numpy as np
import rawpy

from sid_ft.errors import SidFtError
from sid_ft.io import xtrans
from sid_ft.io.cfa import sensor_tile
from sid_ft.io.raw import libraw_message, open_raw

XTRANS_MIN_RENDER = 512
"""LibRaw 0.22's X-Trans demosaic (Markesteijn, tile size 512) fails on images smaller than this in
either dimension (``LibRawIOError``), so :func:`render_reference` needs X-Trans files at least this big."""

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


def _render(path: str | os.PathLike, brightness: float):
    """LibRaw's 16-bit rendering in sensor orientation: (kind, tile, (vis_h, vis_w), pixel aspect, (H, W, 3) uint16)."""
    with open_raw(path) as raw:
        try:
            kind, tile = sensor_tile(raw, path)
            vis_h, vis_w = raw.raw_image_visible.shape[:2]
            if kind == "fuji" and min(vis_h, vis_w) < XTRANS_MIN_RENDER:
                raise SidFtError(path, f"X-Trans image {vis_h}x{vis_w} is too small to render: LibRaw's "
                                       f"X-Trans demosaic needs at least {XTRANS_MIN_RENDER}x"
                                       f"{XTRANS_MIN_RENDER} photosites")
            aspect = float(raw.sizes.pixel_aspect)
            rgb = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
                                  output_bps=16, user_flip=0, bright=float(brightness))
        except rawpy.LibRawError as err:
            raise SidFtError(path, f"LibRaw could not render the file ({libraw_message(err)})") from err
    return kind, tile, (vis_h, vis_w), aspect, rgb


def _onto_mosaic(img: np.ndarray, visible: tuple[int, int], aspect: float,
                 path: str | os.PathLike) -> np.ndarray:
    """``img`` at the mosaic's (vis_h, vis_w) size: a pixel-aspect stretch undone; SidFtError otherwise."""
    vis_h, vis_w = visible
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
    return img


def _packed_footprint(img: np.ndarray, kind: str, tile: np.ndarray,
                      path: str | os.PathLike) -> np.ndarray:
    """The part of a full-size image that the packed input covers, contiguous float32."""
    vis_h, vis_w = img.shape[:2]
    if kind == "fuji":
        top, left, out_h, out_w = xtrans.xtrans_footprint((vis_h, vis_w), xtrans.xtrans_offset(tile, path))
        return np.ascontiguousarray(img[top:top + out_h, left:left + out_w], dtype=np.float32)
    out_h, out_w = 2 * (vis_h // 2), 2 * (vis_w // 2)
    return np.ascontiguousarray(img[:out_h, :out_w], dtype=np.float32)


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
    (:func:`sid_ft.io.pack.packed_origin`: X-Trans files in another phase than the X-T2's start
    a few rows/columns in).  Raises :class:`SidFtError` for unreadable files and
    sensors :func:`sid_ft.io.pack.pack_raw` refuses, for X-Trans images under 512x512 photosites
    (LibRaw's X-Trans demosaic refuses them), and when LibRaw's rendering cannot
    be mapped onto the mosaic (e.g. Fuji SuperCCD's 45° layout).

    ``brightness`` is LibRaw's ``bright``: the linear values are multiplied by it before
    the gamma curve (and clip at white), so ``brightness=ratio`` renders a short exposure
    as a camera would have exposed it ``ratio`` times longer, noise and all — what one
    gets without the network.
    """
    if not (math.isfinite(brightness) and brightness > 0):
        raise ValueError(f"brightness must be a positive number, got {brightness!r}")
    kind, tile, visible, aspect, rgb = _render(path, brightness)
    img = rgb.astype(np.float32) / np.float32(65535.0)
    img = _onto_mosaic(img, visible, aspect, path)
    return _packed_footprint(img, kind, tile, path)
