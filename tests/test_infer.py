"""scripts/test.py and sid_ft.inference (run, options, predictor, jobs, shards): outputs against an independent forward pass, bad files, tiling,
shards, SavedModel export, 16-bit PNGs, real camera files.

Networks are the real SID layer list with random weights (tests/sid_reference.py) on tiny
synthetic DNGs, on the CPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sid_ft.inference.options import InferOptions
from sid_ft.inference.run import run_inference
from sid_ft.inference import jobs
from sid_ft.data import sid
from sid_ft.io import png as pngio
from sid_ft.inference import predictor
from sid_ft.inference import shards
from sid_ft.io import raw as sid_raw
from sid_ft.io.render import render_reference
from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.eval.metrics import psnr

from tests.builders import make_dng, scene_mosaic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from samples import RAW_DIR, SHARED_RAW  # noqa: E402
from sheet_reading import panel_boxes, read_sheet  # noqa: E402
from sid_reference import reference_forward, write_released_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test.py"
LSB16 = 1.0 / 65535.0


@pytest.fixture(scope="module")
def ckpt(released_checkpoint) -> str:
    """Prefix of a released-layout Sony checkpoint with random values."""
    return released_checkpoint("sony", 0)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        env.pop(k, None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


# --------------------------------------------------------------------------- PNG


@pytest.mark.parametrize("compression", [pngio.PNG_FAST, 1, 6])
@pytest.mark.parametrize("bits", [16, 8])
def test_png_round_trips_every_bit(tmp_path, bits, compression):
    rng = np.random.default_rng(bits)
    peak = 65535 if bits == 16 else 255
    img = rng.integers(0, peak + 1, (37, 53, 3)).astype(np.uint16 if bits == 16 else np.uint8)
    img[0, 0] = 0
    img[-1, -1] = peak
    pngio.write_png(tmp_path / "a.png", img, compression=compression)
    back = pngio.read_png(tmp_path / "a.png")
    assert back.dtype == img.dtype and back.shape == img.shape
    np.testing.assert_array_equal(back, img)  # channel order and low bits survive
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_png_fast_encoding_compresses_smooth_images(tmp_path):
    # Huffman-only coding still compresses: a smooth 16-bit gradient ends well below the raw size
    yy, xx = np.mgrid[0:128, 0:192]
    img = np.stack([xx * 300, yy * 400, (xx + yy) * 150], axis=-1).astype(np.uint16)
    pngio.write_png(tmp_path / "fast.png", img)
    pngio.write_png(tmp_path / "stored.png", img, compression=0)
    assert (tmp_path / "fast.png").stat().st_size < 0.8 * (tmp_path / "stored.png").stat().st_size
    np.testing.assert_array_equal(pngio.read_png(tmp_path / "fast.png"), img)
    with pytest.raises(ValueError, match="zlib level"):
        pngio.write_png(tmp_path / "bad.png", img, compression=12)


def test_to_uint_rounds_and_clips():
    q = pngio.to_uint(np.array([-0.5, 0.0, 0.6 / 65535, 1.4 / 65535, 1.0, 2.0]), 16)
    np.testing.assert_array_equal(q, [0, 0, 1, 1, 65535, 65535])
    assert pngio.to_uint(np.array([0.5]), 8)[0] == 128


def test_read_png_names_a_bad_file(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(SidFtError, match="not a readable PNG"):
        pngio.read_png(bad)


# --------------------------------------------------------------------------- output vs reference


def test_out_png_equals_independent_forward_pass(tmp_path, ckpt):
    dng = make_dng(tmp_path / "dark.dng", 64, 96)
    summary = run_inference(InferOptions(checkpoint=str(Path(ckpt).parent), inputs=[str(dng)],
                                                     out_dir=str(tmp_path / "out"), ratio=60, progress=False))
    assert summary.failed == 0 and summary.count("ok") == 1
    out = pngio.read_png(tmp_path / "out" / "dark_out.png")
    assert out.dtype == np.uint16 and out.shape == (64, 96, 3)

    packed = sid_raw.load_raw(dng).packed
    expected = np.clip(reference_forward(ckpt, np.minimum(packed * 60, 1)[None])[0], 0, 1)
    assert 0.02 < expected.mean() < 0.98 and expected.std() > 0.01, "reference output is degenerate"
    err = np.abs(out / 65535.0 - expected)
    assert err.max() <= 1.0 * LSB16, f"max error {err.max() * 65535:.2f} LSB"

    rec = summary.records[0]
    assert rec.ratio == 60 and rec.exposure_s == pytest.approx(0.1)
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["files"][0]["status"] == "ok" and doc["totals"]["ok"] == 1
    assert (tmp_path / "out" / "summary.csv").read_text().splitlines()[0].startswith("input,status")


def test_eight_bit_and_target_exposure(tmp_path, ckpt):
    dng = make_dng(tmp_path / "d.dng", 32, 32, exposure=0.05)
    s = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(dng)], out_dir=str(tmp_path / "o"),
                                               target_exposure=2.0, bits=8, progress=False))
    assert s.records[0].ratio == pytest.approx(40.0)  # 2 s / 0.05 s
    out = pngio.read_png(tmp_path / "o" / "d_out.png")
    assert out.dtype == np.uint8


def test_missing_ratio_is_a_clear_error(tmp_path, ckpt):
    dng = make_dng(tmp_path / "d.dng", 32, 32)
    with pytest.raises(SidFtError, match="--ratio"):
        run_inference(InferOptions(checkpoint=ckpt, inputs=[str(dng)], out_dir=str(tmp_path / "o")))


def test_resolve_ratio_rules():
    assert jobs.resolve_ratio("a", 0.1, ratio=5, target_exposure=10) == 5
    assert jobs.resolve_ratio("a", 0.1, target_exposure=10, pair_ratio=300) == pytest.approx(100)
    assert jobs.resolve_ratio("a", None, pair_ratio=250) == 250
    with pytest.raises(SidFtError, match="exposure time unknown"):
        jobs.resolve_ratio("a", None, target_exposure=10)
    with pytest.raises(SidFtError, match="no amplification ratio"):
        jobs.resolve_ratio("a", 0.1)


def test_test_list_writes_gt_scale_and_metrics(tmp_path, ckpt):
    data = tmp_path / "data"
    (data / "short").mkdir(parents=True)
    (data / "long").mkdir()
    write_dng(data / "long" / "10001_00_10s.dng", scene_mosaic(32, 48, 1, level=0.4), cfa="RGGB",
              black_level=512, white_level=16383)
    write_dng(data / "short" / "10001_00_0.1s.dng", scene_mosaic(32, 48, 1, level=0.004), cfa="RGGB",
              black_level=512, white_level=16383)
    (data / "list.txt").write_text("./short/10001_00_0.1s.dng ./long/10001_00_10s.dng ISO200 F8\n")
    s = run_inference(InferOptions(checkpoint=ckpt, test_list=str(data / "list.txt"),
                                               out_dir=str(tmp_path / "o"), progress=False))
    rec = s.records[0]
    assert rec.status == "ok", rec.reason
    assert rec.ratio == 100  # SID rule: min(10 / 0.1, 300)
    gt = pngio.read_png(tmp_path / "o" / "10001_00_0.1s_gt.png") / 65535.0
    scale = pngio.read_png(tmp_path / "o" / "10001_00_0.1s_scale.png") / 65535.0
    np.testing.assert_allclose(gt, render_reference(data / "long" / "10001_00_10s.dng"), atol=LSB16)
    assert abs(scale.mean() - gt.mean()) < 0.01 * gt.mean() + 2 * LSB16  # brightness-matched like SID
    out = pngio.read_png(tmp_path / "o" / "10001_00_0.1s_out.png") / 65535.0
    assert rec.psnr == pytest.approx(psnr(out, gt), abs=0.01)
    assert rec.ssim is not None and -1 <= rec.ssim <= 1
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert doc["totals"]["mean_psnr"] == pytest.approx(rec.psnr)


# --------------------------------------------------------------------------- SID's protocol

SID_LONGS = ["00001_00_10s", "10003_00_10s", "10034_00_10s", "10045_00_30s", "10172_00_10s", "20005_00_10s"]
SID_SHORTS = ["00001_00_0.1s", "10003_00_0.1s", "10003_00_0.04s", "10003_01_0.1s", "10003_01_0.04s",
              "10034_00_0.1s", "10034_01_0.1s", "10045_00_0.1s", "10172_00_0.033s", "10172_05_0.033s",
              "20005_00_0.1s"]
SID_SCORED = ["10003_00_0.04s", "10003_00_0.1s", "10034_00_0.1s", "10045_00_0.1s", "10172_00_0.033s"]


@pytest.fixture(scope="module")
def sid_set(tmp_path_factory) -> Path:
    """A SID-layout set: train/test/val scenes, bursts 00 and others, the three misaligned scene ids."""
    root = tmp_path_factory.mktemp("sid")
    (root / "long").mkdir()
    (root / "short").mkdir()
    for i, name in enumerate(SID_LONGS):
        make_dng(root / "long" / f"{name}.dng", 32, 48, seed=i, level=0.4)
    for name in SID_SHORTS:
        seed = SID_LONGS.index(next(n for n in SID_LONGS if n[:5] == name[:5]))
        make_dng(root / "short" / f"{name}.dng", 32, 48, seed=seed, level=0.004)
    longs = {n[:5]: n for n in SID_LONGS}
    (root / "Sony_test_list.txt").write_text("".join(f"./short/{n}.dng ./long/{longs[n[:5]]}.dng ISO200 F8\n"
                                                     for n in SID_SHORTS))
    return root


@pytest.mark.parametrize("source", ["folder", "list"])
def test_sid_protocol_scores_what_sids_scripts_score(tmp_path, ckpt, sid_set, source):
    test_list = sid_set if source == "folder" else sid_set / "Sony_test_list.txt"
    out = tmp_path / "o"
    s = run_inference(InferOptions(checkpoint=ckpt, test_list=str(test_list), out_dir=str(out),
                                               protocol="sid", progress=False))
    assert s.failed == 0, [(r.input, r.reason) for r in s.records]
    assert sorted(Path(r.input).stem for r in s.records) == SID_SCORED
    by_stem = {Path(r.input).stem: r for r in s.records}
    assert by_stem["10003_00_0.04s"].ratio == 250 and by_stem["10045_00_0.1s"].ratio == 300  # min(long/short, 300)
    left_out = sorted(Path(r.input).stem[:5] for r in s.records if r.left_out)
    assert left_out == ["10034", "10045", "10172"]
    # 8-bit PNGs, and the scores are those of the files written (as SID scored its PNGs)
    for stem in SID_SCORED:
        o8, g8 = (pngio.read_png(out / f"{stem}_{k}.png") for k in ("out", "gt"))
        assert o8.dtype == np.uint8 and g8.dtype == np.uint8
        mse = np.mean((o8.astype(np.float64) - g8.astype(np.float64)) ** 2)
        assert by_stem[stem].psnr == pytest.approx(10 * np.log10(255.0 ** 2 / mse), abs=1e-9)
    doc = json.loads((out / "summary.json").read_text())
    assert doc["protocol"] == "sid" and "burst 00" in doc["protocol_note"]
    assert doc["left_out_scenes"] == ["10034", "10045", "10172"]
    kept = [by_stem[n] for n in SID_SCORED if n.startswith("10003")]
    assert doc["totals"]["mean_psnr"] == pytest.approx(np.mean([r.psnr for r in kept]))
    assert doc["totals"]["mean_ssim"] == pytest.approx(np.mean([r.ssim for r in kept]))
    assert doc["totals"]["scored_in_means"] == 2 and len(doc["totals"]["left_out_of_means"]) == 3
    assert all(f["left_out"] for f in doc["files"] if Path(f["input"]).stem[:5] in sid.SID_MISALIGNED_SCENES)


def test_protocol_all_scores_every_pair_in_float(tmp_path, ckpt, sid_set):
    s = run_inference(InferOptions(checkpoint=ckpt, test_list=str(sid_set / "Sony_test_list.txt"),
                                               out_dir=str(tmp_path / "o"), progress=False))
    assert len(s.records) == len(SID_SHORTS) and not any(r.left_out for r in s.records)
    assert pngio.read_png(tmp_path / "o" / "00001_00_0.1s_out.png").dtype == np.uint16
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["protocol"] == "all"


def test_sid_protocol_usage_errors(tmp_path, ckpt, sid_set):
    with pytest.raises(SidFtError, match="--test-list"):
        run_inference(InferOptions(checkpoint=ckpt, inputs=[str(sid_set / "short")], ratio=3,
                                               out_dir=str(tmp_path / "o"), protocol="sid"))
    (tmp_path / "train_only.txt").write_text("./short/00001_00_0.1s.dng ./long/00001_00_10s.dng\n")
    (tmp_path / "short").symlink_to(sid_set / "short")
    (tmp_path / "long").symlink_to(sid_set / "long")
    with pytest.raises(SidFtError, match="train_only.txt.*burst 00"):
        run_inference(InferOptions(checkpoint=ckpt, test_list=str(tmp_path / "train_only.txt"),
                                               out_dir=str(tmp_path / "o"), protocol="sid"))
    proc = run_cli("--checkpoint", ckpt, "--out-dir", str(tmp_path / "o"), "--protocol", "sid", str(sid_set))
    assert proc.returncode == 2 and "--protocol sid" in proc.stderr


# --------------------------------------------------------------------------- contact sheets


@pytest.mark.slow
def test_compare_sheets_show_brightened_input_output_and_ground_truth(tmp_path, ckpt, sid_set):
    out = tmp_path / "o"
    s = run_inference(InferOptions(checkpoint=ckpt, test_list=str(sid_set / "Sony_test_list.txt"),
                                               out_dir=str(out), protocol="sid", compare=True, progress=False))
    rec = next(r for r in s.records if Path(r.input).stem == "10003_00_0.1s")
    assert rec.compare == str(out / "10003_00_0.1s_compare.jpg")
    sheet = read_sheet(rec.compare)
    boxes = panel_boxes(sheet, min_run=40)
    assert len(boxes) == 1 and len(boxes[0]) == 3  # short x ratio | output | ground truth
    sizes = {(y1 - y0, x1 - x0) for y0, y1, x0, x1 in boxes[0]}
    assert all(abs(h - 32) <= 2 and abs(w - 48) <= 2 for h, w in sizes)  # small images are not enlarged
    crops = [sheet[y0 + 2:y0 + 30, x0 + 2:x0 + 46].astype(float) for y0, y1, x0, x1 in boxes[0]]
    # the middle panel is the output as written (8-bit PNG), the right one the ground truth
    o8 = pngio.read_png(out / "10003_00_0.1s_out.png")[2:30, 2:46].astype(float)
    g8 = pngio.read_png(out / "10003_00_0.1s_gt.png")[2:30, 2:46].astype(float)
    assert np.abs(crops[1] - o8).mean() < np.abs(crops[1] - g8).mean()
    assert np.abs(crops[2] - g8).mean() < 4 and np.abs(crops[1] - o8).mean() < 8  # JPEG error (on noise) only
    # the left panel is LibRaw's rendering brightened 100x: about as bright as the long exposure, unlike the raw short
    bright = render_reference(sid_set / "short" / "10003_00_0.1s.dng", brightness=100)
    assert np.abs(crops[0] - np.floor(bright[2:30, 2:46] * 255 + 0.5)).mean() < 4
    assert abs(crops[0].mean() - crops[2].mean()) < 0.25 * crops[2].mean()
    # a file without a ground truth: two panels
    s = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(make_dng(tmp_path / "p.dng", 32, 48))],
                                               out_dir=str(tmp_path / "f"), ratio=20, compare=True, progress=False))
    assert [len(r) for r in panel_boxes(read_sheet(s.records[0].compare), min_run=40)] == [2]


# --------------------------------------------------------------------------- orientation


@pytest.mark.slow
def test_portrait_dng_comes_out_portrait_with_camera_orientation(tmp_path, ckpt):
    dng = make_dng(tmp_path / "portrait.dng", 32, 48, orientation=6)  # TIFF 6: rotate 90 degrees clockwise
    outs = {}
    for orientation in ("camera", "sensor", None):
        out = tmp_path / str(orientation)
        s = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(dng)], out_dir=str(out), ratio=50,
                                                   orientation=orientation, progress=False))
        assert s.records[0].orientation == (orientation or "camera")  # a file given: camera by default
        outs[orientation] = pngio.read_png(out / "portrait_out.png")
    assert outs["camera"].shape == (48, 32, 3)  # portrait
    assert outs["sensor"].shape == (32, 48, 3)  # landscape, as the sensor recorded it
    np.testing.assert_array_equal(outs["camera"], np.rot90(outs["sensor"], k=-1))
    np.testing.assert_array_equal(outs[None], outs["camera"])
    with pytest.raises(SidFtError, match="--orientation"):
        run_inference(InferOptions(checkpoint=ckpt, inputs=[str(dng)], out_dir=str(tmp_path / "x"),
                                               ratio=50, orientation="upright"))


@pytest.mark.slow
def test_pairs_stay_in_sensor_orientation_unless_asked(tmp_path, ckpt):
    """With --test-list the default is sensor; --orientation camera turns output, ground truth and scale alike."""
    data = tmp_path / "data"
    (data / "long").mkdir(parents=True)
    (data / "short").mkdir()
    make_dng(data / "long" / "10001_00_10s.dng", 32, 48, seed=1, orientation=8, level=0.4)
    make_dng(data / "short" / "10001_00_0.1s.dng", 32, 48, seed=1, orientation=8, level=0.004)
    (data / "list.txt").write_text("./short/10001_00_0.1s.dng ./long/10001_00_10s.dng ISO200 F8\n")
    shapes, records = {}, {}
    for orientation in (None, "camera"):
        out = tmp_path / str(orientation)
        s = run_inference(InferOptions(checkpoint=ckpt, test_list=str(data / "list.txt"),
                                                   out_dir=str(out), orientation=orientation, progress=False))
        records[orientation] = s.records[0]
        shapes[orientation] = {k: pngio.read_png(out / f"10001_00_0.1s_{k}.png").shape for k in ("out", "gt", "scale")}
    assert set(shapes[None].values()) == {(32, 48, 3)}
    assert set(shapes["camera"].values()) == {(48, 32, 3)}  # TIFF 8: 90 degrees counter-clockwise
    assert records[None].orientation == "sensor" and records["camera"].flip == 5
    assert records["camera"].psnr == pytest.approx(records[None].psnr)  # the same images, turned


def test_help_states_the_orientation_defaults():
    proc = run_cli("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--orientation {sensor,camera}" in text and "Default: camera for files and folders you give" in text


# --------------------------------------------------------------------------- bad files


@pytest.mark.slow
def test_cli_reports_bad_files_and_writes_good_ones(tmp_path, ckpt):
    src = tmp_path / "in"
    src.mkdir()
    make_dng(src / "good1.dng", 32, 48, seed=1)
    make_dng(src / "good2.DNG", 32, 48, seed=2)
    good_bytes = (src / "good1.dng").read_bytes()
    bad = {
        "random.ARW": np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "empty.NEF": b"",
        "truncated.dng": good_bytes[: len(good_bytes) // 3],
        "photo.CR2": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200),
        "picture.arw": b"\x89PNG\r\n\x1a\n" + bytes(200),
    }
    for name, data in bad.items():
        (src / name).write_bytes(data)
    xtrans = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                       [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])
    write_dng(src / "xtrans.dng", scene_mosaic(48, 48), cfa=xtrans, black_level=512, white_level=16383)
    bad["xtrans.dng"] = None  # a Fuji X-Trans sensor: unsupported by a Sony model
    (src / "notes.txt").write_text("ignored: not a RAW extension")

    out = tmp_path / "out"
    proc = run_cli("--checkpoint", str(Path(ckpt).parent), "--out-dir", str(out), "--ratio", "50",
                   "--no-progress", str(src))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for name in bad:
        assert name in proc.stderr, f"{name} not reported:\n{proc.stderr}"
    assert "unsupported sensor" in proc.stderr
    assert (out / "good1_out.png").is_file() and (out / "good2_out.png").is_file()
    assert sorted(p.name for p in out.glob("*.png")) == ["good1_out.png", "good2_out.png"]
    doc = json.loads((out / "summary.json").read_text())
    status = {Path(f["input"]).name: f["status"] for f in doc["files"]}
    assert status == {"good1.dng": "ok", "good2.DNG": "ok", **{n: "failed" for n in bad}}
    assert all(f["reason"] for f in doc["files"] if f["status"] == "failed")
    assert doc["totals"]["failed"] == len(bad)


@pytest.mark.slow
def test_cli_usage_errors_exit_2(tmp_path, ckpt):
    dng = make_dng(tmp_path / "d.dng", 32, 32)
    proc = run_cli("--checkpoint", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "o"), "--ratio", "2",
                   str(dng))
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_same_stem_twice_is_refused(tmp_path, ckpt):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        make_dng(tmp_path / d / "x.dng", 32, 32)
    with pytest.raises(SidFtError, match="same output"):
        run_inference(InferOptions(checkpoint=ckpt, inputs=[str(tmp_path / "a"), str(tmp_path / "b")],
                                               out_dir=str(tmp_path / "o"), ratio=2))


@pytest.mark.slow
def test_skip_existing(tmp_path, ckpt):
    dng = make_dng(tmp_path / "d.dng", 32, 32)
    opts = InferOptions(checkpoint=ckpt, inputs=[str(dng)], out_dir=str(tmp_path / "o"), ratio=2,
                              progress=False)
    assert run_inference(opts).records[0].status == "ok"
    opts.skip_existing = True
    assert run_inference(opts).records[0].status == "skipped"


# --------------------------------------------------------------------------- tiling


def test_tile_spans_cover_align_and_overlap():
    for length, tile, overlap in [(1000, 256, 64), (1424, 512, 128), (2128, 384, 128), (300, 256, 128),
                                  (257, 256, 0), (200, 256, 64)]:
        spans = predictor.tile_spans(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(s % 16 == 0 for s, _ in spans)
        assert all(e - s == tile for s, e in spans[:-1]) and tile <= spans[-1][1] - spans[-1][0] < tile + 16 \
            or len(spans) == 1
        assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))
        for scale in (1, 2):
            total = np.zeros(scale * length)
            for (s, _), w in zip(spans, predictor.blend_windows(spans, scale)):
                total[scale * s:scale * s + len(w)] += w
            np.testing.assert_allclose(total, 1.0, atol=1e-6)
    with pytest.raises(SidFtError, match="half the tile"):
        predictor.tile_spans(1000, 256, 200)


@pytest.mark.slow
def test_tiled_matches_full_resolution(tmp_path, ckpt):
    """At the default overlap, tiled output is within 50 dB PSNR of the full-resolution output."""
    packed = sid_raw.load_raw(make_dng(tmp_path / "t.dng", 2 * 300, 2 * 304, seed=3)).packed
    x = predictor.amplify(packed, 80)
    with predictor.Predictor(ckpt, device="cpu") as p:
        full = p.predict(x)
        p.tile = 256
        spans = predictor.tile_spans(300, 256, p.overlap)
        assert len(spans) == 2  # 2 x 2 tiles: horizontal, vertical seams and a corner
        tiled = p.predict(x)
    assert full.std() > 0.01
    assert psnr(tiled, full) >= 50.0


# --------------------------------------------------------------------------- shards


def test_shard_from_environment():
    env = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shards.shard_from_env(env) == (1, 4)
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shards.shard_from_env(env) == (3, 4)
    env = {"SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "5",
           "SLURM_ARRAY_TASK_COUNT": "3"}
    assert shards.shard_from_env(env) == (3, 3)
    assert shards.shard_from_env({"JOB_COMPLETION_INDEX": "0"}, count=3) == (1, 3)
    assert shards.shard_from_env({"JOB_COMPLETION_INDEX": "2", "SID_FT_SHARD_COUNT": "3"}) == (3, 3)
    with pytest.raises(SidFtError, match="shard-count"):
        shards.shard_from_env({"JOB_COMPLETION_INDEX": "0"})
    assert shards.shard_from_env({}) is None
    assert shards.parse_shard("2/5") == (2, 5)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(SidFtError):
            shards.parse_shard(bad)


@pytest.mark.slow
def test_shards_cover_a_folder_exactly_once(tmp_path, ckpt):
    src = tmp_path / "in"
    src.mkdir()
    names = [f"img{i}" for i in (3, 0, 4, 1, 2)]
    for i, n in enumerate(names):
        make_dng(src / f"{n}.dng", 32, 32, seed=i)
    out = tmp_path / "out"
    seen = []
    for k in (1, 2):
        s = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(src)], out_dir=str(out), ratio=3,
                                                   shard=(k, 2), progress=False))
        assert s.failed == 0 and s.summary_json.name == f"summary.shard-{k}-of-2.json"
        seen.append(sorted(Path(r.input).stem for r in s.records))
    assert seen[0] == ["img0", "img2", "img4"] and seen[1] == ["img1", "img3"]
    assert sorted(p.name for p in out.glob("*_out.png")) == sorted(f"{n}_out.png" for n in names)
    # one summary for the whole run, through the command line
    proc = run_cli("--merge-summaries", str(out))
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((out / "summary.json").read_text())
    assert [Path(r["input"]).stem for r in merged["files"]] == sorted(names)
    assert merged["totals"]["ok"] == 5 and merged["missing_shards"] == []
    assert merged["merged_from"] == ["summary.shard-1-of-2.json", "summary.shard-2-of-2.json"]
    assert len((out / "summary.csv").read_text().splitlines()) == 1 + 5


@pytest.mark.slow
def test_merging_shard_summaries_names_missing_and_mismatched_shards(tmp_path, ckpt):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        make_dng(src / f"img{i}.dng", 32, 32, seed=i)
    out = tmp_path / "out"
    run_inference(InferOptions(checkpoint=ckpt, inputs=[str(src)], out_dir=str(out), ratio=3,
                                           shard=(2, 3), progress=False))
    summary, missing = shards.merge_shard_summaries(out)
    assert missing == [1, 3] and [Path(r.input).name for r in summary.records] == ["img1.dng"]
    proc = run_cli("--merge-summaries", str(out))
    assert proc.returncode == 1 and "shard(s) 1, 3" in proc.stderr
    # a summary of a run with another shard count is refused, naming the file
    (out / "summary.shard-1-of-4.json").write_text((out / "summary.shard-2-of-3.json").read_text())
    with pytest.raises(SidFtError, match="shard-1-of-4.json.*shards of 3|shards of 4"):
        shards.merge_shard_summaries(out)
    with pytest.raises(SidFtError, match="no summary.shard"):
        shards.merge_shard_summaries(tmp_path / "in")
    # rows from another sid_ft version (an extra key) merge; a broken summary is named, not a traceback
    (out / "summary.shard-1-of-4.json").unlink()
    doc = json.loads((out / "summary.shard-2-of-3.json").read_text())
    doc["files"][0]["gpu_s"] = 1.0
    (out / "summary.shard-2-of-3.json").write_text(json.dumps(doc))
    assert shards.merge_shard_summaries(out)[0].records[0].input.endswith("img1.dng")
    (out / "summary.shard-3-of-3.json").write_text(json.dumps({"totals": None, "files": []}))
    proc = run_cli("--merge-summaries", str(out))
    assert proc.returncode == 2 and "summary.shard-3-of-3.json" in proc.stderr and "Traceback" not in proc.stderr
    assert run_cli("--out-dir", str(out), str(src), "--ratio", "3").returncode == 2  # --checkpoint missing


# --------------------------------------------------------------------------- SavedModel


@pytest.mark.slow
def test_savedmodel_reproduces_test_py_output(tmp_path, ckpt):
    dng = make_dng(tmp_path / "s.dng", 48, 64, seed=5)
    export = tmp_path / "export" / "1"
    proc = run_cli("--checkpoint", ckpt, "--out-dir", str(tmp_path / "o"), "--ratio", "40", "--no-progress",
                   "--export-savedmodel", str(export), str(dng))
    assert proc.returncode == 0, proc.stderr
    packed = predictor.amplify(sid_raw.load_raw(dng).packed, 40)
    np.save(tmp_path / "x.npy", packed[None])
    code = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({str(export)!r})
        f = m.signatures["serving_default"]
        assert list(f.structured_input_signature[1]) == ["packed"], f.structured_input_signature
        y = f(packed=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        assert list(y) == ["rgb"], list(y)
        np.save({str(tmp_path / 'y.npy')!r}, y["rgb"].numpy())
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    served = np.load(tmp_path / "y.npy")[0]
    written = pngio.read_png(tmp_path / "o" / "s_out.png") / 65535.0
    assert served.shape == written.shape == (48, 64, 3)
    assert np.abs(served - written).max() <= LSB16


# --------------------------------------------------------------------------- real files


@pytest.mark.slow
def test_real_camera_samples_end_to_end(tmp_path, ckpt):
    # the repository's samples (tests/data/raw), and those only ../shared/samples/raw has when it is there
    extras = sorted(p for p in SHARED_RAW.glob("*") if p.suffix.lower() in sid_raw.RAW_EXTENSIONS
                    and not (RAW_DIR / p.name).exists()) if SHARED_RAW.is_dir() else []
    files = sorted(p for p in RAW_DIR.iterdir() if p.suffix.lower() in sid_raw.RAW_EXTENSIONS) + extras
    assert len(files) >= 3
    s = run_inference(InferOptions(checkpoint=ckpt, inputs=[str(RAW_DIR)] + [str(p) for p in extras],
                                               out_dir=str(tmp_path), ratio=1.0, progress=False))
    assert len(s.records) == len(files)
    assert s.failed == 0, [(r.input, r.reason) for r in s.records if r.status == "failed"]
    for f in files:
        packed = sid_raw.load_raw(f).packed
        out = pngio.read_png(tmp_path / f"{f.stem}_out.png")
        assert out.shape == (2 * packed.shape[0], 2 * packed.shape[1], 3) and out.dtype == np.uint16

