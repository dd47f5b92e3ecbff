"""Unprocessing: an sRGB photograph back to a linear Bayer mosaic a camera might have recorded.

The steps invert a camera pipeline, as Brooks et al. (CVPR 2019, "Unprocessing
Images for Learned Raw Denoising") describe them; the code is our own:
inverse sRGB gamma, optional inverse colour correction, inverse white balance,
mosaicking by a Bayer layout.  The result, with :mod:`sid_ft.data.noise`, gives
synthetic pairs when no RAW files of a scene exist (the demo uses it).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sid_ft.io.cfa import BAYER_LAYOUTS
from sid_ft.io.dng import XYZ_TO_LINEAR_SRGB, cfa_indices

SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
"""Linear sRGB (D65) -> XYZ, the inverse of :data:`sid_ft.io.dng.XYZ_TO_LINEAR_SRGB`."""


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse of the sRGB transfer curve (IEC 61966-2-1), x in [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def random_wb_gains(rng: np.random.Generator | int | None = None) -> tuple[float, float, float]:
    """White-balance gains (R, G, B) a daylight camera might apply: R in [1.9, 2.4], G 1, B in [1.5, 1.9].

    The ranges are those Brooks et al. (2019) sample for unprocessing.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return float(rng.uniform(1.9, 2.4)), 1.0, float(rng.uniform(1.5, 1.9))


def _linear_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H', W', 3) float32 linear RGB of an sRGB image cropped to even H', W' (ValueError when malformed)."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got shape {img.shape}")
    if img.dtype == np.uint8:
        x = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        x = img.astype(np.float32) / 65535.0
    else:
        x = np.clip(img.astype(np.float32), 0.0, 1.0)
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    if h == 0 or w == 0:
        raise ValueError(f"image {img.shape} is too small for a 2x2 CFA tile")
    return _srgb_to_linear(x[:h, :w])


def _to_camera(x: np.ndarray, rgb_to_cam: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(camera RGB, the 3x3 camera-from-sRGB matrix with rows summing to 1; identity without ``rgb_to_cam``)."""
    if rgb_to_cam is None:
        return x, np.eye(3)
    cam_from_rgb = np.asarray(rgb_to_cam, dtype=np.float64).reshape(3, 3)
    cam_from_rgb = cam_from_rgb / cam_from_rgb.sum(axis=1, keepdims=True)
    return np.einsum("ij,hwj->hwi", cam_from_rgb.astype(np.float32), x), cam_from_rgb


def _wb_gains(wb_gains: Sequence[float] | None, rng) -> tuple[float, float, float]:
    """The given gains (checked), else :func:`random_wb_gains` from ``rng``, else (1, 1, 1)."""
    if wb_gains is None:
        return random_wb_gains(rng) if rng is not None else (1.0, 1.0, 1.0)
    gains = tuple(float(g) for g in wb_gains)
    if len(gains) != 3 or min(gains) <= 0:
        raise ValueError(f"wb_gains must be 3 positive values, got {wb_gains!r}")
    return gains


def _mosaic(x: np.ndarray, letters: str) -> np.ndarray:
    """(H, W) float32 Bayer mosaic in [0, 1]: each position keeps the channel its layout letter names."""
    h, w = x.shape[:2]
    channel = {"R": 0, "G": 1, "B": 2}
    mosaic = np.empty((h, w), dtype=np.float32)
    for i, letter in enumerate(letters):
        r, c = divmod(i, 2)
        mosaic[r::2, c::2] = x[r::2, c::2, channel[letter]]
    np.clip(mosaic, 0.0, 1.0, out=mosaic)
    return mosaic


def unprocess_srgb(rgb: np.ndarray,
                   cfa: str = "RGGB",
                   rng: np.random.Generator | int | None = None,
                   *,
                   wb_gains: Sequence[float] | None = None,
                   rgb_to_cam: np.ndarray | None = None,
                   return_info: bool = False):
    """Turn an sRGB photograph into a linear Bayer mosaic in [0, 1].

    Steps: sRGB -> linear (inverse gamma); optional colour correction inverse
    (``rgb_to_cam``, 3x3, rows normalised to sum 1 so white stays white); inverse
    white balance (divide by ``wb_gains``, or by :func:`random_wb_gains` drawn from
    ``rng``; with neither, gains 1); mosaicking by ``cfa``.

    Args:
        rgb: (H, W, 3) uint8 (0..255), uint16 (0..65535) or float in [0, 1].
        cfa: 'RGGB' | 'BGGR' | 'GRBG' | 'GBRG' (colours at TL, TR, BL, BR).
        rng: Generator or seed for the white-balance gains.
        wb_gains: (R, G, B) gains the camera "applied"; the mosaic is divided by them.
        rgb_to_cam: optional 3x3 linear sRGB -> camera RGB matrix.
        return_info: also return a dict with ``wb_gains``, ``as_shot_neutral``
            (1/gains, normalised to G = 1, for :func:`sid_ft.io.dng.write_dng`),
            ``color_matrix`` (XYZ -> camera, for write_dng) and ``cfa``.

    Returns:
        (H', W') float32 mosaic in [0, 1] with H', W' the even parts of H, W; or
        ``(mosaic, info)`` with ``return_info``.
    """
    x, cam_from_rgb = _to_camera(_linear_rgb(rgb), rgb_to_cam)
    gains = _wb_gains(wb_gains, rng)
    x = x / np.asarray(gains, dtype=np.float32)
    letters = cfa.upper()
    if letters not in BAYER_LAYOUTS:
        raise ValueError(f"cfa {cfa!r}: expected one of {', '.join(BAYER_LAYOUTS)}")
    mosaic = _mosaic(x, letters)
    if not return_info:
        return mosaic
    neutral = np.array([gains[1] / gains[0], 1.0, gains[1] / gains[2]])
    info = {"wb_gains": gains, "as_shot_neutral": tuple(float(v) for v in neutral),
            "color_matrix": cam_from_rgb @ XYZ_TO_LINEAR_SRGB, "cfa": letters,
            "cfa_indices": cfa_indices(letters)}
    return mosaic, info

