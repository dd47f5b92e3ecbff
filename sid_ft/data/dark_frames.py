"""Dark frames for calibration: read them, and leave out those that are not dark.

A dark frame is a lens-capped exposure at the ISO to calibrate.  Three checks
name a frame that is not one (each a :class:`SidFtError` with the path and the
reason, collected in ``skipped`` so that the rest is still used):

* another size, CFA layout, camera or ISO than the first readable frame
  (:func:`sid_ft.data.raw_frames.mismatch`);
* noise clipped at 0 DN (more than 0.1 % of pixels at 0: a black level too low
  to measure the noise below it);
* light in it, by level: its median is more than ``4 sigma + 0.5 DN`` above
  the metadata black level (per CFA position), where sigma is the per-pixel
  temporal noise; or (3+ frames) its mean is above the other frames' by more
  than 0.5 sigma and by more than 6 standard errors of a frame mean (the
  error computed from that frame's own row and column means);
* light in it, by shape (3+ frames): low-frequency structure against the
  per-pixel median of all frames (which holds the fixed pattern and the
  glow, shared by every dark frame).  The variance of its 16x16-pixel block
  means is compared to what row noise, column noise and pixel noise give
  (``var(row means) / b + var(column means) / b + sigma^2 / b^2``); a smooth
  light leak puts its spatial variance into the block means at full size but
  into row and column means only averaged, so more than 4 times the expected
  variance means light.

With two frames neither relative check can tell which frame is lit; only the
level check against the black level runs.
"""
from __future__ import annotations

import math
import os
from typing import Iterable

import numpy as np

from sid_ft.data.raw_frames import RawFrame, read_matching_frames
from sid_ft.errors import SidFtError
from sid_ft.io.raw import list_raw_files

BLOCK = 16
"""Side of the blocks (pixels, a multiple of the 2x2 tile) whose means the structure check compares."""

MIN_DARK_FRAMES = 2
"""Fewest usable dark frames: one frame cannot tell its fixed pattern from its temporal noise."""


def _pixel_sigma(frames: list[RawFrame]) -> float:
    """Robust per-pixel temporal noise, DN, from consecutive frames' differences.

    For each consecutive pair, ``1.4826 x median |d - median(d)| / sqrt(2)`` of their
    difference ``d`` (a constant light leak does not change it) on a central crop of
    at most 512x512 pixels; the smallest over pairs (a lit frame only raises its pairs').
    """
    h, w = frames[0].mosaic.shape
    y0, x0 = max(h // 2 - 256, 0), max(w // 2 - 256, 0)
    crops = [f.mosaic[y0:y0 + 512, x0:x0 + 512].astype(np.float32) for f in frames]
    sigmas = []
    for a, b in zip(crops[:-1], crops[1:]):
        d = a - b
        sigmas.append(1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0))
    return min(sigmas)


def _level_above_black(frame: RawFrame, sigma: float) -> str | None:
    """Why ``frame`` is lit judged by its median against the metadata black, or None."""
    signal = frame.signal()
    medians = np.array([[np.median(signal[r::2, c::2]) for c in range(2)] for r in range(2)])
    limit = 4.0 * sigma + 0.5
    if medians.max() > limit:
        return (f"has light in it: its median is {medians.max():.1f} DN above the black level "
                f"(more than {limit:.1f} DN = 4 x the {sigma:.2f} DN read noise + 0.5); "
                "cap the lens and cover the viewfinder")
    return None


def _clipped_at_zero(frame: RawFrame, max_fraction: float = 1e-3) -> str | None:
    """Why ``frame``'s noise cannot be measured (too many pixels at 0 DN: clipped below), or None."""
    fraction = float(np.mean(frame.mosaic == 0))
    if fraction > max_fraction:
        return (f"{fraction:.1%} of its pixels are at 0 DN: the noise is clipped (black level "
                f"{frame.meta.black_tile().mean():g} is too low to measure read noise)")
    return None


def _frame_statistics(resid: np.ndarray) -> tuple[float, float, float]:
    """(mean, standard error of the mean, block-mean variance / its expectation) of one frame minus the reference."""
    h, w = resid.shape
    level = float(resid.mean())
    row_var = float(resid.mean(axis=1).var())
    col_var = float(resid.mean(axis=0).var())
    se = math.sqrt(row_var / h + col_var / w)
    hb, wb = h // BLOCK, w // BLOCK
    if hb * wb < 8:
        return level, se, 0.0
    blocks = resid[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK).mean(axis=(1, 3))
    pix_var = float(resid.var())
    expected = row_var / BLOCK + col_var / BLOCK + pix_var / BLOCK ** 2
    return level, se, float(blocks.var()) / max(expected, 1e-12)


def _relative_checks(frames: list[RawFrame], reference: np.ndarray, sigma: float) -> list[str | None]:
    """For each frame: why it looks lit against the others (3+ frames), or None."""
    stats = [_frame_statistics(f.mosaic.astype(np.float32) - reference) for f in frames]
    levels = np.array([s[0] for s in stats])
    reasons: list[str | None] = []
    for i, (level, se, structure) in enumerate(stats):
        above = level - float(np.median(np.delete(levels, i)))
        if above > max(6.0 * se * math.sqrt(2.0), 0.5 * sigma):
            reasons.append(f"has light in it: its mean is {above:.2f} DN above the other dark frames' "
                           f"(read noise {sigma:.2f} DN)")
        elif structure > 4.0:
            reasons.append(f"has light in it: low-frequency structure ({BLOCK}x{BLOCK} block means vary "
                           f"{structure:.0f} x more than row, column and pixel noise explain)")
        else:
            reasons.append(None)
    return reasons


def screen_dark_frames(frames: list[RawFrame], skipped: list[SidFtError]) -> list[RawFrame]:
    """The frames without light in them (module docstring); the others are appended to ``skipped``."""
    if len(frames) < 2:
        return frames
    stack = np.stack([f.mosaic for f in frames])
    reference = np.median(stack, axis=0).astype(np.float32)
    sigma = _pixel_sigma(frames)
    reasons = [_clipped_at_zero(f) or _level_above_black(f, sigma) for f in frames]
    if len(frames) >= 3:
        relative = _relative_checks(frames, reference, sigma)
        reasons = [a if a is not None else b for a, b in zip(reasons, relative)]
    kept = []
    for frame, reason in zip(frames, reasons):
        if reason is None:
            kept.append(frame)
        else:
            skipped.append(SidFtError(frame.path, reason))
    return kept


def load_calibration_darks(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                           skipped: list[SidFtError]) -> list[RawFrame]:
    """Read dark frames (RAW files or folders of them) and keep the usable ones.

    Unreadable files, frames that do not match the first (size, CFA, camera, ISO)
    and frames with light in them are appended to ``skipped`` (SidFtError naming
    the file and the reason).  SidFtError when fewer than :data:`MIN_DARK_FRAMES`
    are left (the message counts what was skipped).
    """
    paths = list_raw_files(inputs, "dark frames")
    frames = read_matching_frames(paths, "dark frame", skipped)
    frames = screen_dark_frames(frames, skipped)
    if len(frames) < MIN_DARK_FRAMES:
        raise SidFtError(None, f"{len(frames)} usable dark frame(s) of {len(paths)} "
                               f"({len(paths) - len(frames)} skipped): calibration needs at least "
                               f"{MIN_DARK_FRAMES} (8 recommended) to tell the fixed pattern from the "
                               "temporal noise")
    return frames
