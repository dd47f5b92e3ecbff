"""Contact sheets: images side by side, downscaled and labelled, written as one JPEG (OpenCV).

``test.py --compare`` writes one row per file — the short exposure brightened by the ratio
(LibRaw's rendering: what one gets without the network) | the output | the ground truth —
and the demo one row per held-out image (short x ratio | base | fine-tuned | ground truth).

Layout (all sizes in pixels of the sheet): every panel of a row is the same image size
scaled to ``panel_width`` wide (never enlarged), under a :data:`LABEL_HEIGHT` strip holding
its label; panels and rows are :data:`GAP` apart and from the sheet's edge, on a
:data:`BACKGROUND` grey.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sid_ft.io import atomic
from sid_ft.errors import SidFtError

__all__ = ["Panel", "label", "render_sheet", "write_sheet", "DEFAULT_PANEL_WIDTH", "GAP", "LABEL_HEIGHT",
           "BACKGROUND"]

DEFAULT_PANEL_WIDTH = 640
"""Width of each panel: three panels make a sheet about 1950 pixels wide, readable on a laptop screen."""
GAP = 8
LABEL_HEIGHT = 28
BACKGROUND = 24
"""Grey level of the gaps and label strips (the labels are light text on it)."""
JPEG_QUALITY = 90


@dataclass
class Panel:
    """One image of a sheet: ``image`` ``(H, W, 3)`` RGB, float in [0, 1] or uint8 / uint16; ``text`` its label."""

    image: np.ndarray
    text: str


def label(title: str, psnr: float | None = None, ssim: float | None = None) -> str:
    """``title``, followed by ``PSNR .. dB  SSIM ..`` for the scores that are known."""
    parts = [title]
    if psnr is not None and np.isfinite(psnr):
        parts.append(f"PSNR {psnr:.2f} dB")
    if ssim is not None and np.isfinite(ssim):
        parts.append(f"SSIM {ssim:.3f}")
    return "  ".join(parts)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"a panel must be (H, W, 3) RGB, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.floor(np.clip(a.astype(np.float32) * 255.0, 0, 255) + 0.5).astype(np.uint8)


_FONT_SCALE = 0.55


def _fitting_scale(cv2, text: str, width: int) -> float:
    """The font scale (at most :data:`_FONT_SCALE`) at which ``text`` fits ``width`` pixels with margins."""
    (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, 1)
    room = width - 12
    return _FONT_SCALE * min(1.0, room / w) if w > 0 and room > 0 else _FONT_SCALE


def _put_label(cv2, strip: np.ndarray, text: str, scale: float) -> None:
    """Draw ``text`` left-aligned, vertically centred, in ``strip`` (a view of the sheet)."""
    (_, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(strip, text, (6, (strip.shape[0] + h) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1,
                cv2.LINE_AA)


def render_sheet(rows: Sequence[Sequence[Panel]], panel_width: int = DEFAULT_PANEL_WIDTH) -> np.ndarray:
    """The sheet as a ``(H, W, 3)`` uint8 RGB array (see the module docstring for the layout).

    The panels of a row must have the same size (they show the same scene); each row is
    scaled on its own, so rows of differently sized images can share a sheet.
    """
    import cv2

    if panel_width < 16:
        raise ValueError(f"panel_width {panel_width} is too small")
    if not rows or not all(rows):
        raise ValueError("a contact sheet needs at least one panel in every row")
    scaled: list[list[tuple[np.ndarray, str]]] = []
    for row in rows:
        shapes = {p.image.shape[:2] for p in row}
        if len(shapes) != 1:
            raise ValueError(f"the panels of a row differ in size: {sorted(shapes)}")
        h, w = shapes.pop()
        pw = min(int(panel_width), w)
        ph = max(1, int(round(h * pw / w)))
        scaled.append([(cv2.resize(_to_uint8(p.image), (pw, ph), interpolation=cv2.INTER_AREA)
                        if (ph, pw) != (h, w) else _to_uint8(p.image), p.text) for p in row])
    widths = [GAP + sum(img.shape[1] + GAP for img, _ in row) for row in scaled]
    heights = [LABEL_HEIGHT + row[0][0].shape[0] + GAP for row in scaled]
    sheet = np.full((GAP + sum(heights), max(widths), 3), BACKGROUND, np.uint8)
    y = GAP
    for row, height in zip(scaled, heights):
        x = GAP
        scale = min(_fitting_scale(cv2, text, img.shape[1]) for img, text in row)  # one text size a row
        for img, text in row:
            _put_label(cv2, sheet[y:y + LABEL_HEIGHT, x:x + img.shape[1]], text, scale)
            sheet[y + LABEL_HEIGHT:y + LABEL_HEIGHT + img.shape[0], x:x + img.shape[1]] = img
            x += img.shape[1] + GAP
        y += height
    return sheet


def write_sheet(path: str | os.PathLike, rows: Sequence[Sequence[Panel]],
                panel_width: int = DEFAULT_PANEL_WIDTH) -> Path:
    """Render the sheet and write it as a JPEG (quality 90, no chroma subsampling) to ``path``, atomically.

    Returns ``path``.

    SidFtError when the file cannot be encoded or written.
    """
    import cv2

    sheet = render_sheet(rows, panel_width)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):  # full-resolution colour: colour noise is what one looks for
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise SidFtError(path, "JPEG encoding of the contact sheet failed")
    try:
        atomic.write_bytes(path, buf)
    except OSError as exc:
        raise SidFtError(path, f"cannot write the contact sheet: {exc.strerror or exc}") from None
    return Path(path)
