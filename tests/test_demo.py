"""The demo's pieces at toy size (the full demo is the Quickstart's first command, not part of the suite)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy

from sid_ft.data.pairs import find_pairs, read_pair_list
from sid_ft.data.demo_cameras import NEW_CAMERA, NOISE_CAMERA, OUT_CAMERA, SOURCE_CAMERA
from sid_ft.demo import DemoSettings, build_dataset, run_demo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheet_reading import panel_boxes, read_sheet  # noqa: E402

TOY = DemoSettings(crop=128, base_steps=4, base_patch=32, finetune_steps=4, finetune_patch=32,
                   max_crops_per_photo=1, source_photos=("astronaut", "coffee"),
                   newcam_train_photos=("rocket",), newcam_train_crops=1, newcam_test_photos=("chelsea",),
                   g_add_width=8)


def test_dataset_is_two_real_cameras_in_sid_layout(tmp_path):
    dirs = build_dataset(tmp_path / "demo", TOY, progress=False)
    src = find_pairs(dirs["source"], split="train")
    new_train = find_pairs(dirs["newcam"], split="train")
    new_test = read_pair_list(dirs["newcam"] / "test_list.txt")
    assert len(src) == 4 and len(new_train) == 2 and len(new_test) == 2
    assert {p.ratio() for p in src} == {100.0, 250.0}
    for pair, cam in ((src[0], SOURCE_CAMERA), (new_train[0], NEW_CAMERA)):
        with rawpy.imread(pair.long_path) as raw:
            pattern = "".join("RGBG"[i] for i in raw.raw_colors_visible[:2, :2].ravel())
            assert pattern == cam.cfa
            assert raw.white_level == cam.white
            assert list(raw.black_level_per_channel) == [cam.black] * 4
            long_level = raw.raw_image_visible.astype(float).mean() - cam.black
        with rawpy.imread(pair.short_path) as raw:
            short_level = raw.raw_image_visible.astype(float).mean() - cam.black
        # the short exposure is the long one divided by the ratio (plus zero-mean noise)
        assert abs(long_level / short_level / pair.ratio() - 1) < 0.3  # 100 vs 250 is far outside


def test_noise_camera_differs_in_noise_layout_and_levels(tmp_path):
    dirs = build_dataset(tmp_path / "demo", TOY, progress=False, targets=("newcam", "noisecam"))
    assert (dirs["noisecam"] / "test_list.txt").exists()
    pair = find_pairs(dirs["noisecam"], split="train")[0]
    with rawpy.imread(pair.long_path) as raw:
        assert "".join("RGBG"[i] for i in raw.raw_colors_visible[:2, :2].ravel()) == NOISE_CAMERA.cfa == "BGGR"
        assert list(raw.black_level_per_channel) == [NOISE_CAMERA.black] * 4
    assert NOISE_CAMERA.noise.gain >= 2.5 * SOURCE_CAMERA.noise.gain
    assert NOISE_CAMERA.noise.read_noise >= 2.5 * SOURCE_CAMERA.noise.read_noise
    assert NOISE_CAMERA.noise.row_noise > SOURCE_CAMERA.noise.row_noise
    assert NOISE_CAMERA.rgb_to_cam == SOURCE_CAMERA.rgb_to_cam and NOISE_CAMERA.wb_gains == SOURCE_CAMERA.wb_gains


def test_out_of_model_camera_with_dark_frames_clean_photos_and_two_pairs(tmp_path):
    """Each target camera also has 8 lens-capped frames, its training scenes' long exposures as clean
    photos and 2 of its pairs; the out-of-model camera's darks carry its fixed pattern and corner glow,
    and adding it shifts no noise draw of the other cameras."""
    from sid_ft.data.demo_cameras import DARK_FRAMES
    from sid_ft.data.noise import fixed_pattern_map

    alone = build_dataset(tmp_path / "a", TOY, progress=False, targets=("newcam",))
    dirs = build_dataset(tmp_path / "b", TOY, progress=False, targets=("newcam", "outcam"))
    for sub in ("short", "long", "dark", "clean"):
        for f in sorted((alone["newcam"] / sub).iterdir()):
            assert f.read_bytes() == (dirs["newcam"] / sub / f.name).read_bytes(), f
    out = dirs["outcam"]
    assert len(find_pairs(out, split="train")) == 3  # 1 scene x SID's 3 ratios
    assert {p.ratio() for p in find_pairs(out / "two_pairs", split="train")} == {100.0, 300.0}
    clean = sorted(f.name for f in (out / "clean").iterdir())
    assert clean == sorted(f.name for f in (out / "long").glob("0*.dng"))  # no held-out scene among them
    darks = sorted((out / "dark").iterdir())
    assert len(darks) == DARK_FRAMES
    frames = []
    for path in darks:
        with rawpy.imread(str(path)) as raw:
            frames.append(raw.raw_image_visible.astype(np.float64) - OUT_CAMERA.black)
            assert raw.other.shutter_speed == pytest.approx(0.04)
    mean = np.mean(frames, axis=0)
    assert not np.array_equal(frames[0], frames[1])
    assert mean[:8, :8].mean() > mean[-32:, -32:].mean() + 5  # the glow in the top-left corner
    pattern = fixed_pattern_map(mean.shape, 1.0, OUT_CAMERA.noise.fixed_pattern_seed)
    far = (slice(64, None), slice(64, None))
    assert np.corrcoef(mean[far].ravel(), pattern[far].ravel())[0, 1] > 0.5


def test_held_out_photos_from_a_raw_file_and_several_crops(tmp_path):
    """The benchmark's held-out set: a real RAW sample rendered by LibRaw is the photograph, cut into
    crops spread over it; unknown names are refused with the name."""
    import dataclasses

    import pytest
    from sid_ft.demo import _photo
    from sid_ft.errors import SidFtError
    from sid_ft.io.render import render_reference

    sample = Path(__file__).parent / "data" / "raw" / "Kodak_DC120_DC120IMG_P003908.KDC"
    photo = _photo(f"raw:{sample}")
    assert photo.dtype == np.uint8 and photo.shape == render_reference(sample).shape
    settings = dataclasses.replace(TOY, crop=256, newcam_test_photos=(f"raw:{sample}", "motorcycle_right"),
                                   newcam_test_crops=3)
    dirs = build_dataset(tmp_path / "demo", settings, progress=False)
    test = read_pair_list(dirs["newcam"] / "test_list.txt")
    scenes = sorted({Path(p.short_path).name.split("_")[0] for p in test})
    # 976x848 photosites hold 3x3 crops of 256: three spread over them; the 500x741 motorcycle view
    # holds two, both taken
    assert scenes == ["10000", "10001", "10002", "10100", "10101"]
    longs = {}
    for pair in test:
        with rawpy.imread(pair.long_path) as raw:
            longs[Path(pair.short_path).name.split("_")[0]] = raw.raw_image_visible.copy()
    assert longs["10000"].shape == (256, 256)
    assert not np.array_equal(longs["10000"], longs["10001"])  # different parts of the photo
    with pytest.raises(SidFtError, match="no_such_photo"):
        _photo("no_such_photo")


@pytest.mark.slow
def test_toy_demo_end_to_end_and_rerun_reuses(tmp_path):
    messages: list[str] = []
    result = run_demo(tmp_path, TOY, progress=False, report=messages.append)
    summary = json.loads((tmp_path / "checkpoints/demo/demo_summary.json").read_text())
    for key in ("base_psnr", "finetuned_psnr", "base_ssim", "finetuned_ssim"):
        assert np.isfinite(summary[key])
    assert len(summary["images"]) == 2
    assert all(Path(im["finetuned_png"]).exists() and Path(im["base_png"]).exists() for im in summary["images"])
    base_json = json.loads((tmp_path / "checkpoints/demo_sid_base/sid_ft.json").read_text())
    assert base_json["g_add"] is None  # the base is plain SID: what the fine-tuning starts from is what is scored
    assert summary["finetuned_psnr"] != summary["base_psnr"]  # the g_add layers changed the output
    # the recommended way without many pairs: 2 real pairs, plus synthetic pairs from the clean photos with
    # dark-frame crops as noise, K from the 2 pairs
    synthetic = json.loads((tmp_path / "checkpoints/demo/config.json").read_text())["synthetic"]
    assert synthetic["noise"]["mode"] == "sampled" and synthetic["noise"]["gain_source"] == "pairs"
    assert synthetic["noise"]["dark_frames"] == 8 and len(synthetic["clean"]) == 1
    assert synthetic["ratios"] == list(NEW_CAMERA.ratios)
    # the last line names the contact sheet: one row per held-out image, short x ratio | base | fine-tuned | truth
    sheet_path = Path(messages[-1])
    assert sheet_path == tmp_path / "checkpoints/demo/demo_compare.jpg" and sheet_path.is_file()
    sheet = read_sheet(sheet_path)
    boxes = panel_boxes(sheet)
    assert [len(row) for row in boxes] == [4, 4]
    assert all(abs((y1 - y0) - 128) <= 2 and abs((x1 - x0) - 128) <= 2 for row in boxes for y0, y1, x0, x1 in row)
    first = [sheet[y0 + 3:y1 - 3, x0 + 3:x1 - 3].astype(float) for y0, y1, x0, x1 in boxes[0]]
    assert np.abs(first[1] - first[2]).mean() > 0.2  # base and fine-tuned differ
    assert min(np.abs(first[0] - first[k]).mean() for k in (1, 3)) > 1  # the network changed the picture
    metrics = (tmp_path / "checkpoints/demo/metrics.jsonl").read_text()
    again: list[str] = []
    result2 = run_demo(tmp_path, TOY, progress=False, report=again.append)
    assert (tmp_path / "checkpoints/demo/metrics.jsonl").read_text() == metrics  # no new training
    assert result2.finetuned_psnr == result.finetuned_psnr
    assert any("nothing to do" in m for m in again)
