"""Reading contact sheets back for tests: the JPEG through OpenCV, panels found by looking at the pixels."""
from __future__ import annotations

import cv2
import numpy as np

from sid_ft.eval import sheets as compare


def read_sheet(path) -> np.ndarray:
    """The sheet as written, RGB uint8 (an independent reader: OpenCV's imread)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not a readable image"
    return bgr[:, :, ::-1]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def panel_boxes(sheet: np.ndarray, tolerance: int = 12, min_run: int = 100) -> list[list[tuple[int, int, int, int]]]:
    """Panels found by looking: rows of the sheet that are not background, then columns of each.

    Returns per sheet row a list of (y0, y1, x0, x1) of the image part (below the label strip).
    Panel content must not be background-grey over a whole row or column (true for the test images).
    """
    background = np.abs(sheet.astype(int) - compare.BACKGROUND).max(axis=2) <= tolerance
    found = []
    # image rows: rows with a long unbroken run of non-background pixels (text has gaps between words)
    dense = np.array([max((e - b for b, e in runs(~line)), default=0) >= min_run for line in background])
    for y0, y1 in runs(dense):
        cols = (~background[y0:y1]).mean(axis=0) > 0.5
        found.append([(y0, y1, x0, x1) for x0, x1 in runs(cols)])
    return found
