"""Fuji X-Trans end to end: released-layout Fuji checkpoint, fine-tune a few steps, run test.py's library."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.inference.options import InferOptions
from sid_ft.inference.run import run_inference
from sid_ft.io.png import read_png
from sid_ft.training.loop import train
from sid_ft.training.options import TrainOptions
from sid_ft.io.xtrans import XT2_PATTERN

try:
    from tests.sid_reference import write_released_checkpoint
except ImportError:  # plain `pytest` from inside tests/
    from sid_reference import write_released_checkpoint

SIZE = 516  # LibRaw's X-Trans demosaic (the ground truth) needs >= 512 photosites


@pytest.fixture(scope="module")
def fuji_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuji")
    data = root / "data"
    (data / "short").mkdir(parents=True)
    (data / "long").mkdir()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    rng = np.random.default_rng(1)
    scene = 0.3 + 0.5 * (0.5 + 0.5 * np.sin(5 * xx + 3 * yy))
    long = (1024 + scene * 15000 * 0.8).astype(np.uint16)
    short = np.clip(1024 + scene * 15000 * 0.8 / 100 + rng.normal(0, 2, scene.shape), 0, 16383).astype(np.uint16)
    kw = dict(cfa=np.asarray(XT2_PATTERN), black_level=1024, white_level=16383)
    write_dng(data / "long" / "00001_00_10s.dng", long, exposure_time=10.0, **kw)
    write_dng(data / "short" / "00001_00_0.1s.dng", short, exposure_time=0.1, **kw)
    fuji = write_released_checkpoint(root / "Fuji", camera="fuji", seed=5)
    sony = write_released_checkpoint(root / "Sony", camera="sony", seed=5)
    return root, data, fuji, sony


@pytest.mark.slow
def test_fuji_finetune_and_infer(fuji_setup, tmp_path):
    root, data, fuji, _ = fuji_setup
    result = train(TrainOptions(dataset_dir=str(data), pretrained=fuji, train_dir=str(tmp_path / "run"), steps=3,
                                patch_size=48, g_add_width=8, lr=1e-2, progress=False, save_every=100),
                   report=lambda m: None)
    spec = json.loads((tmp_path / "run" / "sid_ft.json").read_text())
    assert spec["camera"] == "fuji"
    short = data / "short" / "00001_00_0.1s.dng"
    outs = {}
    for name, ckpt in (("base", fuji), ("finetuned", result.checkpoint)):
        summary = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(short)], out_dir=str(tmp_path / name),
                                             ratio=100, progress=False))
        assert summary.failed == 0
        outs[name] = read_png(tmp_path / name / "00001_00_0.1s_out.png")
    assert outs["base"].shape == (SIZE // 3 * 3, SIZE // 3 * 3, 3)  # 9-channel packing, depth_to_space(3)
    assert not np.array_equal(outs["base"], outs["finetuned"])


def test_sony_checkpoint_with_xtrans_files_is_a_clear_error(fuji_setup, tmp_path):
    _, data, _, sony = fuji_setup
    with pytest.raises(SidFtError, match="sony checkpoint cannot fine-tune on fuji files"):
        train(TrainOptions(dataset_dir=str(data), pretrained=sony, train_dir=str(tmp_path / "run"), steps=1,
                           patch_size=48, progress=False), report=lambda m: None)
