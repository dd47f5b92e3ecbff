"""A reference for MATLAB's ``ssim(A, ref)`` with its default parameters, written from its documentation.

Used by tests/test_metrics.py and benchmarks/bench_ssim_matlab.py to measure how far
:func:`sid_ft.eval.metrics.ssim` (what sid_ft reports) is from what SID's authors computed in MATLAB
on their 8-bit PNGs.  The facts it follows (MATLAB Image Processing Toolbox, ``ssim``):

* integer images are converted to double; the dynamic range L is that of the class
  (255 for uint8, 1 for double); C1 = (0.01 L)^2, C2 = (0.03 L)^2, C3 = C2 / 2, exponents 1,
  so the index is Wang et al.'s equation 13;
* local statistics are weighted by an isotropic Gaussian of standard deviation 1.5 ('Radius'),
  of size 2 ceil(3 sigma) + 1 = 11 along each dimension, normalised to sum 1 (values below
  eps times the largest are set to 0);
* the filtering pads by replicating the border ('replicate') and keeps the full size, and the
  SSIM value is the mean of the full-size map (no border is cropped);
* a 3-D array, an RGB image included, is a volume: the Gaussian is 3-D (11 x 11 x 11) and
  the colour planes are filtered together ('DataFormat' 'SSS', the default); with
  'DataFormat' 'SSC' (newer releases) each channel gets the 2-D index, reported per channel
  (:func:`matlab_ssim` averages them when ``channels=True``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaussian_window(ndim: int, sigma: float = 1.5) -> np.ndarray:
    """MATLAB's ssim weighting window: a normalised Gaussian of side 2 ceil(3 sigma) + 1 in ``ndim`` dimensions."""
    radius = int(np.ceil(3 * sigma))
    axis = np.arange(-radius, radius + 1, dtype=np.float64)
    grids = np.meshgrid(*([axis] * ndim), indexing="ij")
    window = np.exp(-sum(g * g for g in grids) / (2 * sigma * sigma))
    window[window < np.finfo(np.float64).eps * window.max()] = 0
    return window / window.sum()


def _filter_direct(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    # 'conv' with a symmetric window is correlation; 'replicate' padding is ndimage's 'nearest'
    return ndimage.correlate(x, window, mode="nearest")


def _filter_separable(x: np.ndarray, sigma: float) -> np.ndarray:
    # the same Gaussian as a product of 1-D windows (nothing falls under eps for sigma 1.5)
    line = gaussian_window(1, sigma)
    for axis in range(x.ndim):
        x = ndimage.correlate1d(x, line, axis=axis, mode="nearest")
    return x


def matlab_ssim(a: np.ndarray, ref: np.ndarray, sigma: float = 1.5, channels: bool = False,
                separable: bool = True) -> float:
    """MATLAB ``ssim(a, ref)`` with default parameters.

    ``channels=False``: MATLAB's default, a 3-D array is one volume.  ``channels=True``:
    'DataFormat','SSC', the mean of the per-channel values.  ``separable`` filters along one
    axis at a time (the same numbers, much faster); False uses the full n-D window.
    """
    a, ref = np.asarray(a), np.asarray(ref)
    if a.shape != ref.shape or a.dtype != ref.dtype:
        raise ValueError("a and ref must have the same size and class")
    if a.dtype == np.uint8:
        dynamic_range = 255.0
    elif a.dtype == np.uint16:
        dynamic_range = 65535.0
    else:
        dynamic_range = 1.0
    if channels and a.ndim == 3:
        return float(np.mean([matlab_ssim(a[..., c], ref[..., c], sigma, False, separable)
                              for c in range(a.shape[2])]))
    x, y = a.astype(np.float64), ref.astype(np.float64)
    if separable:
        def filt(v: np.ndarray) -> np.ndarray:
            return _filter_separable(v, sigma)
    else:
        window = gaussian_window(x.ndim, sigma)

        def filt(v: np.ndarray) -> np.ndarray:
            return _filter_direct(v, window)
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x * mu_x
    var_y = filt(y * y) - mu_y * mu_y
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def synthetic_pair(h: int, w: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(output, ground truth) uint8 RGB images: a smooth coloured scene with edges, and a noisy, tinted copy.

    ``noise`` is the standard deviation of the added Gaussian noise in 8-bit steps; the copy is
    also slightly darker and bluer, as a network output often is.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.4 * np.sin(7 * xx + 2 * yy), 0.45 + 0.35 * np.cos(5 * yy - 3 * xx),
                     0.4 + 0.3 * np.sin(11 * xx * yy + 1)], axis=-1)
    base[(xx * 4).astype(int) % 2 == (yy * 3).astype(int) % 2] *= 0.6  # edges: a checkerboard of two levels
    gt = np.clip(np.rint(base * 255), 0, 255).astype(np.uint8)
    out = base * np.array([0.97, 0.98, 1.02]) * 255 + rng.normal(0, noise, base.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), gt
