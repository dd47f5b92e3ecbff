"""Image quality metrics used by training logs, test.py summaries and benchmarks.

Both take RGB images as float arrays in [0, 1], shape ``(H, W, 3)``.

* PSNR: ``10 log10(1 / MSE)`` over all pixels and channels (peak 1.0).
* SSIM: scikit-image's ``structural_similarity`` with ``channel_axis=-1`` and
  ``data_range=1``: the mean over the three channels of the single-channel SSIM
  of Wang et al. (2004) with a 7x7 uniform window.  SID's published figures come
  from MATLAB's ``ssim`` (11x11 Gaussian window, sigma 1.5, on each channel); pass
  ``gaussian=True`` for that window (``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False``), which is what summaries use.  Values from
  different windows are not comparable to each other.
"""
from __future__ import annotations

import numpy as np


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of ``output`` against ``reference`` (both in [0, 1]); inf when identical."""
    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(output: np.ndarray, reference: np.ndarray, gaussian: bool = True) -> float:
    """SSIM of two ``(H, W, 3)`` images in [0, 1] (see the module docstring for the window)."""
    from skimage.metrics import structural_similarity

    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, **kwargs))
