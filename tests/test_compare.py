"""sid_ft.eval.sheets: contact sheets read back from the JPEG and measured (panels, sizes, labels)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft.eval import sheets as compare
from sid_ft.errors import SidFtError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheet_reading import panel_boxes, read_sheet  # noqa: E402


def scene(h: int, w: int, shift: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([0.5 + 0.4 * np.sin(xx / 17 + shift), 0.5 + 0.4 * np.cos(yy / 13 - shift),
                     np.full((h, w), 0.3 + 0.2 * shift)], axis=-1).astype(np.float32)


def test_sheet_layout_panels_sizes_and_labels(tmp_path):
    rows = [[compare.Panel(scene(300, 900, s), compare.label(f"panel {s}", 30.0 + s, 0.8)) for s in (0, 1, 2)],
            [compare.Panel(scene(100, 150, s), compare.label("small")) for s in (0, 1)]]
    path = compare.write_sheet(tmp_path / "sheet.jpg", rows, panel_width=400)
    sheet = read_sheet(path)
    g, lh = compare.GAP, compare.LABEL_HEIGHT
    # 400 wide panels (300x900 scaled to 133x400), the small row kept at 150x100 (never enlarged)
    assert sheet.shape == (g + lh + 133 + g + lh + 100 + g, g + 3 * (400 + g), 3)
    boxes = panel_boxes(sheet)
    assert [len(r) for r in boxes] == [3, 2]
    near = lambda a, b: abs(int(a) - int(b)) <= 2  # noqa: E731 - JPEG ringing blurs an edge by a pixel or two
    for (y0, y1, x0, x1), k in zip(boxes[0], range(3)):
        assert near(y1 - y0, 133) and near(x1 - x0, 400)
        assert near(x0, g + k * (400 + g)) and near(y0, g + lh)
    assert all(near(y1 - y0, 100) and near(x1 - x0, 150) for y0, y1, x0, x1 in boxes[1])
    # the panels show different images: their crops differ clearly
    crops = [sheet[y0 + 2:y0 + 130, x0 + 2:x0 + 396].astype(float) for y0, y1, x0, x1 in boxes[0]]
    assert min(np.abs(a - b).mean() for a, b in ((crops[0], crops[1]), (crops[1], crops[2]))) > 10
    # a label strip holds light text above each panel, and no text where there is no panel
    strip = sheet[g:g + lh]
    for y0, y1, x0, x1 in boxes[0]:
        assert (strip[:, x0:x1].max(axis=2) > 150).sum() > 50
    assert (sheet[g + lh + 133 + g:g + lh + 133 + g + lh, g + 2 * (150 + g):].max(axis=2) > 150).sum() == 0


def test_label_text():
    assert compare.label("output", 28.8812, 0.78712) == "output  PSNR 28.88 dB  SSIM 0.787"
    assert compare.label("ground truth") == "ground truth"
    assert compare.label("x", float("nan"), None) == "x"


def test_bad_sheets(tmp_path):
    with pytest.raises(ValueError, match="differ in size"):
        compare.render_sheet([[compare.Panel(scene(20, 30, 0), "a"), compare.Panel(scene(20, 31, 0), "b")]])
    with pytest.raises(ValueError, match="at least one panel"):
        compare.render_sheet([])
    with pytest.raises(SidFtError, match="cannot write"):
        compare.write_sheet(tmp_path / "no" / "such" / "dir.jpg", [[compare.Panel(scene(20, 30, 0), "a")]])
