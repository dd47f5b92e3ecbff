"""Builders of small real inputs that several test modules use: DNG files, SID-layout pair trees, options.

Not a test module: conftest.py turns the costly ones into session-scoped fixtures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sid_ft.io.dng import write_dng


def scene_mosaic(h: int, w: int, seed: int = 0, black: int = 512, white: int = 16383,
                 level: float = 0.01) -> np.ndarray:
    """A dark (about ``level`` of full scale) smooth scene with noise, as a uint16 mosaic (h, w)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / 9.0
    signal = level * (0.6 + 0.4 * np.sin(x + seed) * np.cos(0.7 * y))
    dn = black + (white - black) * signal + rng.normal(0, 3, (h, w))
    return np.clip(np.rint(dn), 0, white).astype(np.uint16)


def make_dng(path: Path, h: int = 64, w: int = 96, seed: int = 0, exposure: float | None = 0.1,
             orientation: int = 1, level: float = 0.01) -> Path:
    write_dng(path, scene_mosaic(h, w, seed, level=level), cfa="RGGB", black_level=512, white_level=16383,
              exposure_time=exposure, orientation=orientation)
    return path


def make_pairs_tree(root: Path, scenes=("00001", "00002"), shape=(64, 96), seed=0) -> Path:
    """A tiny SID-layout dataset of real DNG files: smooth scenes, long 10 s, short 0.1 s (ratio 100)."""
    rng = np.random.default_rng(seed)
    (root / "short").mkdir(parents=True)
    (root / "long").mkdir(parents=True)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for k, scene in enumerate(scenes):
        base = 0.2 + 0.6 * (0.5 + 0.5 * np.sin(6 * xx + 4 * yy + k))
        long = (512 + base * (16383 - 512) * 0.8).astype(np.uint16)
        short_signal = base * (16383 - 512) * 0.8 / 100
        short = np.clip(512 + short_signal + rng.normal(0, 2, size=shape), 0, 16383).astype(np.uint16)
        write_dng(root / "long" / f"{scene}_00_10s.dng", long, cfa="RGGB", black_level=512, white_level=16383,
                  exposure_time=10.0)
        write_dng(root / "short" / f"{scene}_00_0.1s.dng", short, cfa="RGGB", black_level=512, white_level=16383,
                  exposure_time=0.1)
    return root


def train_opts(dataset: Path, pretrained: str, train_dir: Path, **kw) -> "TrainOptions":
    from sid_ft.training.options import TrainOptions

    base = dict(dataset_dir=str(dataset), pretrained=pretrained, train_dir=str(train_dir), steps=6, patch_size=16,
                save_every=1000, log_every=1, progress=False, g_add_width=8, lr=1e-3, g_add_head=True, g_add_rank=0)
    base.update(kw)
    return TrainOptions(**base)


def fake_val_scores(values, monkeypatch, signal_at: int | None = None) -> list[int]:
    """Make the held-out scoring (``sid_ft.training.validation.score_pairs``) return ``values`` in turn (PSNR,
    and SSIM = PSNR / 100); with ``signal_at``, send SIGTERM to this process during that scoring (1-based).
    Returns the calls counter."""
    import os
    import signal

    calls = [0]
    values = list(values)

    def fake(sess, vg, pairs):
        calls[0] += 1
        if calls[0] == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        value = values.pop(0)
        return value, value / 100

    monkeypatch.setattr("sid_ft.training.validation.score_pairs", fake)
    return calls
