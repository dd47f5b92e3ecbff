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

SID's evaluation protocol (``test.py --protocol sid``), from SID's ``test_Sony.py`` /
``test_Fuji.py`` and README:

* :func:`sid_ft.data.sid.sid_test_selection`: the test scenes (scene ids starting with 1), and of each only
  the first image of its sequence, burst ``00``, with every short exposure of it;
* :func:`to_uint8_sid`: outputs and ground truths written as 8-bit PNGs (SID's
  ``scipy.misc.toimage(x * 255, cmin=0, cmax=255)``: clip, then round half up);
* :func:`score_8bit`: PSNR (peak 255) and SSIM on those 8-bit RGB images, as SID scored
  its PNGs in MATLAB;
* :data:`sid_ft.data.sid.SID_MISALIGNED_SCENES`: scenes whose ground truth is misaligned, which SID's README
  asks to leave out of quantitative results (they are still scored and written).

About SSIM against MATLAB's: on an (H, W, 3) array MATLAB's ``ssim`` with its defaults (as
SID's authors used it) treats the image as a 3-D volume: one 11x11x11 Gaussian window that
also spans the three colour planes (replicated at the ends), ``'replicate'`` padding and the
mean of the full-size map.  :func:`ssim` is the mean of three per-channel SSIMs over the
interior (scikit-image crops 5 pixels at each border).  The difference is measured in the
README (``benchmarks/bench_ssim_matlab.py``).
"""
from __future__ import annotations

import numpy as np

PROTOCOLS = ("all", "sid")
"""``test.py --protocol``: 'all' scores every listed pair in float; 'sid' is SID's published evaluation."""


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


def to_uint8_sid(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as SID wrote it to an 8-bit PNG: ``floor(clip(x * 255, 0, 255) + 0.5)`` as uint8.

    (``scipy.misc.toimage(x * 255, high=255, low=0, cmin=0, cmax=255)``: clip, then round half up.)
    """
    x = np.clip(np.asarray(image, dtype=np.float32) * np.float32(255.0), 0.0, 255.0)
    return np.floor(x + np.float32(0.5)).astype(np.uint8)


def score_8bit(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of two ``(H, W, 3)`` uint8 images, as SID's MATLAB scoring of its PNGs.

    PSNR: ``10 log10(255^2 / MSE)`` over all pixels and channels (MATLAB's ``psnr`` on uint8).
    SSIM: :func:`ssim`'s window (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03) with L = 255 on the
    8-bit values, mean over R, G, B (see the module docstring for how that differs from MATLAB's default).
    """
    a, b = np.asarray(output), np.asarray(reference)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"score_8bit needs uint8 images, got {a.dtype} and {b.dtype}; see to_uint8_sid()")
    scaled_a, scaled_b = a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0
    return psnr(scaled_a, scaled_b), ssim(scaled_a, scaled_b, gaussian=True)
