"""Writing one file's outputs: ``<stem>_out.png`` (and ``_gt``, ``_scale``, ``_compare.jpg``), with its scores.

Runs in the write threads of :mod:`sid_ft.inference.pipeline`.  Scores (PSNR/SSIM against the
ground truth) are computed on the network's float output before it is quantised, or, with
SID's protocol, on the 8-bit images that are written (:func:`score`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from sid_ft.eval.metrics import psnr, score_8bit, ssim, to_uint8_sid
from sid_ft.inference.decode import Decoded
from sid_ft.inference.options import InferOptions
from sid_ft.inference.summary import FileRecord

__all__ = ["write_outputs", "score", "write_compare_sheet"]


def write_outputs(d: Decoded, rgb: np.ndarray, paths: dict[str, Path], opts: InferOptions,
                  record: FileRecord) -> FileRecord:
    """Score ``rgb`` ((2h, 2w, 3) float32 in [0, 1]) and write it and its companions to ``paths``.

    Fills ``record`` (scores, timings, status 'ok') and returns it.  ``rgb`` and the
    images of ``d`` are quantised in their own memory: they must not be used afterwards.
    """
    from sid_ft.io import png as pngio
    from sid_ft.io.render import orient

    t0 = time.perf_counter()
    quantise = _quantiser(opts)
    if d.gt is not None and opts.metrics:  # on the network's output, before it is quantised in place
        record.psnr, record.ssim = score(rgb, d.gt, opts.protocol == "sid")
    if opts.compare:
        write_compare_sheet(d, rgb, paths["compare"], opts, record)
        record.compare = str(paths["compare"])

    def save(kind: str, image: np.ndarray) -> None:
        pngio.write_png(paths[kind], orient(quantise(image), d.flip), in_place=True)

    save("out", rgb)
    if d.gt is not None:
        save("gt", d.gt)
        if d.scale_img is not None:
            save("scale", d.scale_img)
    record.write_s = time.perf_counter() - t0
    record.seconds = (record.decode_s or 0) + (record.network_s or 0) + record.write_s
    record.status = "ok"
    return record


def _quantiser(opts: InferOptions) -> Callable[[np.ndarray], np.ndarray]:
    """float image in [0, 1] -> the unsigned integers written to the PNG (``opts.bits`` per channel)."""
    from sid_ft.io import png as pngio

    if opts.protocol == "sid" and opts.bits == 8:  # the PNGs are exactly the images that are scored, as in SID
        return to_uint8_sid

    def quantise(image: np.ndarray) -> np.ndarray:  # the image is not used after this: in its own memory
        return pngio.to_uint(image, opts.bits, in_place=True)

    return quantise


def score(output: np.ndarray, reference: np.ndarray, sid: bool) -> tuple[float, float]:
    """(PSNR, SSIM): on the float images, or with SID's protocol on their 8-bit versions."""
    if sid:
        return score_8bit(to_uint8_sid(output), to_uint8_sid(reference))
    return psnr(output, reference), ssim(output, reference, gaussian=True)


def write_compare_sheet(d: Decoded, rgb: np.ndarray, path: Path, opts: InferOptions, record: FileRecord) -> None:
    """``<stem>_compare.jpg``: the input brightened by the ratio | the output | the ground truth, turned like the PNGs."""
    from sid_ft.eval.sheets import Panel, label, write_sheet
    from sid_ft.io.render import orient

    bright_scores = (None, None)
    if d.gt is not None and opts.metrics:
        bright_scores = score(d.brightened, d.gt, opts.protocol == "sid")
    row = [Panel(orient(d.brightened, d.flip), label(f"short x{d.ratio:g} (LibRaw)", *bright_scores)),
           Panel(orient(rgb, d.flip), label("output", record.psnr, record.ssim))]
    if d.gt is not None:
        row.append(Panel(orient(d.gt, d.flip), label("ground truth")))
    write_sheet(path, [row])
