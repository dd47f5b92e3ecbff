"""Decoding one job: the short exposure packed and amplified, and the images written beside the output.

SID's test script, the input side::

    packed = pack_raw(raw)                 # (h, w, C) float32, black-subtracted, white-normalised
    x      = minimum(packed * ratio, 1)    # amplification, clamped like SID

and, when the long exposure is known, SID's two companions: the ground truth (LibRaw's
rendering of the long exposure) and the short exposure's own LibRaw rendering scaled to
the ground truth's mean brightness (``<stem>_scale.png``).  Runs in the decode threads
of :mod:`sid_ft.inference.pipeline`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sid_ft.errors import SidFtError
from sid_ft.inference.jobs import Job, resolve_ratio
from sid_ft.inference.options import InferOptions, job_orientation
from sid_ft.inference.predictor import amplify

__all__ = ["Decoded", "decode_job"]


@dataclass
class Decoded:
    """One job, decoded and ready for the network. Images are float32 in [0, 1], sensor orientation."""

    job: Job
    packed: np.ndarray  # amplified network input, (h, w, C)
    ratio: float
    exposure_s: float | None
    gt: np.ndarray | None  # (scale*h, scale*w, 3): LibRaw's rendering of the long exposure
    scale_img: np.ndarray | None  # the short exposure's rendering, brightness-matched to gt
    decode_s: float
    flip: int = 0  # LibRaw flip applied to every image written for this file (0: sensor orientation)
    brightened: np.ndarray | None = None  # the input rendered by LibRaw, brightened by the ratio (--compare)


def decode_job(job: Job, opts: InferOptions, in_channels: int, scale: int) -> Decoded:
    """Read ``job.input`` (and its ground truth), pack, amplify; SidFtError for a file this model cannot run.

    ``in_channels``: channels the network takes (4 for Bayer, 9 for X-Trans); ``scale``: output
    pixels per packed pixel along each side.
    """
    from sid_ft.io import raw as sid_raw

    t0 = time.perf_counter()
    image = sid_raw.load_raw(job.input)
    packed = image.packed
    if packed.ndim != 3 or packed.shape[2] != in_channels:
        raise SidFtError(job.input, f"unsupported sensor for this model: its {image.cfa} mosaic packs to "
                                    f"{packed.shape[-1]} channels but the checkpoint's network takes {in_channels}")
    ratio = _ratio(job, image.exposure_s, opts)
    x = amplify(packed, ratio)
    out_shape = (scale * packed.shape[0], scale * packed.shape[1], 3)
    gt = scale_img = None
    if job.ground_truth is not None:
        gt, scale_img = _references(job, out_shape)
    brightened = _brightened(job.input, ratio, out_shape) if opts.compare else None
    flip = image.flip if job_orientation(job, opts) == "camera" else 0
    return Decoded(job, x, ratio, image.exposure_s, gt, scale_img, time.perf_counter() - t0, flip, brightened)


def _ratio(job: Job, exposure_s: float | None, opts: InferOptions) -> float:
    """The amplification ratio of this job (:func:`sid_ft.inference.jobs.resolve_ratio`), a positive number."""
    ratio = resolve_ratio(job.input, exposure_s, opts.ratio, opts.target_exposure, job.pair_ratio)
    if not (math.isfinite(ratio) and ratio > 0):
        raise SidFtError(job.input, f"amplification ratio {ratio!r} is not a positive number")
    return ratio


def _references(job: Job, out_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """(ground truth, scaled short-exposure rendering or None when its size differs), each ``out_shape``."""
    from sid_ft.io.render import render_reference

    gt = render_reference(job.ground_truth)
    if gt.shape != out_shape:
        raise SidFtError(job.ground_truth, f"renders to {gt.shape[1]}x{gt.shape[0]} pixels but the output of "
                                           f"{job.input} is {out_shape[1]}x{out_shape[0]}")
    rendering = render_reference(job.input)
    if rendering.shape != gt.shape:
        return gt, None
    m = float(np.mean(rendering))
    return gt, rendering * np.float32(float(np.mean(gt)) / m) if m > 0 else rendering


def _brightened(path: Path, ratio: float, out_shape: tuple[int, int, int]) -> np.ndarray:
    """LibRaw's rendering of ``path`` brightened by ``ratio``: the contact sheet's first panel."""
    from sid_ft.io.render import render_reference

    brightened = render_reference(path, brightness=ratio)
    if brightened.shape != out_shape:
        raise SidFtError(path, f"LibRaw renders it to {brightened.shape[1]}x{brightened.shape[0]} pixels, "
                               f"the output is {out_shape[1]}x{out_shape[0]}: no contact sheet can be made")
    return brightened
