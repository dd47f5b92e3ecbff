"""Synthetic pairs while training (--clean-dir): the in-graph noise, the runs, and what clean means.

Inputs are tiny real DNGs written by sid_ft.io.dng.write_dng: clean photos (smooth scenes at
15-45 % of full scale), dark frames (black 512 + read, row and column noise) and, for the
mixed runs, short/long pairs whose short exposures carry Poisson shot noise of a known K.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sid_ft._tf import tf1
from sid_ft.cli.train import options_from_args, parse_args
from sid_ft.data.calibrate import calibrate
from sid_ft.data.clean_photos import PhotoFigures, judge_photo, load_clean_photos
from sid_ft.data.dark_noise import tukey_lambda_std
from sid_ft.data.noise_profile import NoiseProfile, save_noise_profile
from sid_ft.data.raw_frames import FrameMeta
from sid_ft.data.sampling import DecodeCache, PatchSampler
from sid_ft.data.synthetic import DarkOffsets, SyntheticNoise, SyntheticSampler, noise_from_profile
from sid_ft.data.synthetic_data import prepare_synthetic_data
from sid_ft.errors import SidFtError
from sid_ft.io.dng import write_dng
from sid_ft.nets.model_spec import classify_tensor
from sid_ft.training.options import DEFAULT_SYNTHETIC_SHARE
from sid_ft.training.loop import train
from sid_ft.training.options import TrainOptions
from sid_ft.training.synthesis import synthesize_short

BLACK, WHITE, SHAPE, K = 512, 16383, (64, 96), 3.0
FULL = WHITE - BLACK


# --------------------------------------------------------------------------- inputs

def _write(path: Path, mosaic: np.ndarray, exposure: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, np.clip(np.rint(mosaic), 0, WHITE), cfa="RGGB", black_level=BLACK, white_level=WHITE,
              exposure_time=exposure)
    return path


def _scene(seed: int, shape=SHAPE) -> np.ndarray:
    """A smooth scene, fraction of full scale in [0.15, 0.45]."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    return 0.15 + 0.3 * (0.5 + 0.5 * np.sin(5 * x + 3 * y + seed))


def _dark(rng: np.random.Generator, shape=SHAPE) -> np.ndarray:
    """One dark frame, DN with black: read 3, row 1, column 0.7."""
    h, w = shape
    return BLACK + rng.normal(0, 3, shape) + rng.normal(0, 1, (h, 1)) + rng.normal(0, 0.7, (1, w))


def write_clean(folder: Path, n: int = 2, shape=SHAPE, clipped: float = 0.0) -> Path:
    for i in range(n):
        mosaic = BLACK + _scene(i, shape) * FULL
        mosaic[: int(shape[0] * clipped)] = WHITE
        _write(folder / f"photo_{i}.dng", mosaic, 1.0)
    return folder


def write_darks(folder: Path, n: int = 4, shape=SHAPE, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        _write(folder / f"dark_{i}.dng", _dark(rng, shape), 0.1)
    return folder


def write_pairs(root: Path, n: int = 2, ratio: float = 100.0) -> Path:
    """SID-layout pairs: the long exposure is the scene, the short K * Poisson(scene / ratio / K) + a dark frame."""
    rng = np.random.default_rng(11)
    for i in range(n):
        signal = _scene(10 + i) * FULL
        _write(root / "long" / f"0000{i + 1}_00_10s.dng", BLACK + signal, 10.0)
        short = K * rng.poisson(signal / ratio / K) + _dark(rng)
        _write(root / "short" / f"0000{i + 1}_00_0.1s.dng", short, 10.0 / ratio)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_clean(root / "clean")
    write_darks(root / "darks")
    write_pairs(root / "pairs")
    return root


def _opts(root: Path, pretrained: str, train_dir: Path, **kw) -> TrainOptions:
    base = dict(clean_dir=str(root / "clean"), dark_frames=str(root / "darks"), gain=K, pretrained=pretrained,
                train_dir=str(train_dir), steps=4, patch_size=16, save_every=1000, log_every=1, progress=False,
                g_add_width=8, lr=1e-3, g_add_head=True, g_add_rank=0)
    base.update(kw)
    return TrainOptions(**base)


# --------------------------------------------------------------------------- the in-graph noise

def _noise(mode: str, read=(0.0,) * 4, shape=0.14, row=(0.0, 0.0), column=(0.0, 0.0), gain=K) -> SyntheticNoise:
    """RGGB: channel k = colour index k at (0,0) R, (0,1) G, (1,1) B, (1,0) G2."""
    return SyntheticNoise(mode=mode, gain=gain, black=(float(BLACK),) * 4, white=float(WHITE),
                          read_scale=tuple(r / tukey_lambda_std(shape) for r in read), read_shape=shape,
                          row_noise=row, column_noise=column, row_parity=(0, 0, 1, 1), column_parity=(0, 1, 1, 0))


def _synthesize(noise: SyntheticNoise, clean: np.ndarray, dark: np.ndarray, ratio: float, seed=(0, 1)) -> np.ndarray:
    """The graph's noisy short exposure, in DN above black."""
    tf = tf1()
    with tf.Graph().as_default(), tf.Session() as sess:
        out = synthesize_short(tf.constant(clean, tf.float32), tf.constant(dark, tf.float32),
                               tf.constant([ratio] * len(clean), tf.float32), tf.constant(seed, tf.int64), noise)
        short = sess.run(out)
    return short.astype(np.float64) * FULL


def test_parametric_noise_has_the_profiles_mean_and_variance():
    """Flat clean patch: mean s + dark level, variance K s + read^2 (+ rounding's 1/12) per channel; the read
    noise alone has the profile's standard deviation and its heavy Tukey-lambda tail."""
    read, ratio, s = (2.0, 3.0, 4.0, 3.0), 100.0, 120.0
    noise = _noise("parametric", read=read, shape=-0.15)
    clean = np.full((8, 64, 64, 4), s * ratio / FULL, np.float32)
    dark = np.full_like(clean, 0.5)
    x = _synthesize(noise, clean, dark, ratio)
    for k in range(4):
        assert x[..., k].mean() == pytest.approx(s + 0.5, abs=0.3)
        assert x[..., k].var() == pytest.approx(K * s + read[k] ** 2 + 1 / 12, rel=0.05)
    only_read = _synthesize(noise, np.zeros_like(clean), np.full_like(clean, 40.0), ratio)
    for k in range(4):
        v = only_read[..., k] - 40.0
        assert v.std() == pytest.approx(np.hypot(read[k], np.sqrt(1 / 12)), rel=0.05)
        assert ((v - v.mean()) ** 4).mean() / v.var() ** 2 - 3 > 1.0  # heavier-tailed than a Gaussian (0)


def test_parametric_noise_has_row_and_column_noise_per_mosaic_parity():
    noise = _noise("parametric", read=(0.5,) * 4, row=(2.0, 1.0), column=(1.5, 0.5))
    x = _synthesize(noise, np.zeros((16, 64, 64, 4), np.float32), np.full((16, 64, 64, 4), 50.0, np.float32), 100.0)
    rows, columns = x.mean(axis=2), x.mean(axis=1)  # (N, 64, 4) each
    assert rows[..., 0].var() == pytest.approx(4.0, rel=0.2)  # R: even mosaic rows
    assert rows[..., 2].var() == pytest.approx(1.0, rel=0.25)  # B: odd rows
    assert columns[..., 0].var() == pytest.approx(2.25, rel=0.2)  # R: even columns
    assert columns[..., 1].var() == pytest.approx(0.25, rel=0.3)  # G: odd columns

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert corr(rows[..., 0], rows[..., 1]) > 0.8  # R and G share their mosaic row's offset
    assert abs(corr(rows[..., 0], rows[..., 3])) < 0.2  # G2 sits on the other row
    assert corr(columns[..., 0], columns[..., 3]) > 0.8  # R and G2 share a column
    assert abs(corr(columns[..., 0], columns[..., 1])) < 0.2


def test_a_sampled_dark_crop_is_added_exactly_up_to_poisson():
    rng = np.random.default_rng(0)
    dark = rng.integers(-6, 40, size=(4, 32, 32, 4)).astype(np.float32)
    noise = _noise("sampled", read=(9.0,) * 4, row=(5.0, 5.0), gain=1.0)  # parametric parts: not used
    black = _synthesize(noise, np.zeros_like(dark), dark, 100.0)
    assert np.abs(black - np.rint(black)).max() < 1e-3  # whole DN, up to the float32 normalisation
    np.testing.assert_array_equal(np.rint(black), np.maximum(dark, 0))  # the crop itself, clipped at 0
    s = 30.0
    lit = _synthesize(noise, np.full_like(dark, s * 250.0 / FULL), dark + 10.0, 250.0)
    electrons = np.rint(lit) - (dark + 10.0)
    assert np.all(electrons >= 0) and np.all(electrons == np.round(electrons))
    assert electrons.mean() == pytest.approx(s, rel=0.03) and electrons.var() == pytest.approx(s, rel=0.1)


def test_the_noise_depends_on_the_seed_and_step_only():
    noise = _noise("parametric", read=(3.0,) * 4, row=(1.0, 1.0), column=(1.0, 1.0))
    clean = np.full((2, 16, 16, 4), 0.5, np.float32)
    dark = np.zeros_like(clean)
    a, b, c = (_synthesize(noise, clean, dark, 100.0, seed) for seed in ((3, 7), (3, 7), (3, 8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _profile(**kw) -> NoiseProfile:
    base = dict(camera="sid_ft Synthetic", iso=3200.0, exposure_s=0.1, cfa="GRBG", image_size=SHAPE,
                white_level=float(WHITE), black_level_metadata=np.array([[510.0, 511.0], [512.0, 513.0]]),
                dark_frames=8, black_level=np.array([[510.5, 511.5], [512.5, 513.5]]), read_noise=3.0,
                read_noise_per_position=np.array([[2.0, 3.0], [4.0, 3.0]]), read_noise_shape=-0.1,
                read_noise_excess_kurtosis=1.0, row_noise=1.0, row_noise_per_phase=np.array([1.0, 2.0]),
                column_noise=0.5, column_noise_per_phase=np.array([0.5, 0.25]), fixed_pattern_std=1.0,
                fixed_pattern_stderr=0.1, dark_shading_range=2.0, gain=2.5, gain_source="given")
    base.update(kw)
    return NoiseProfile(**base)


def test_profile_positions_map_to_packed_channels():
    """GRBG: G (0,0), R (0,1), B (1,0), G2 (1,1); channel k is colour index k."""
    profile = _profile()
    noise = noise_from_profile(profile, "parametric")
    assert noise.black == (511.0, 510.0, 512.0, 513.0)
    assert noise.row_parity == (0, 0, 1, 1) and noise.column_parity == (1, 0, 0, 1)
    unit = profile.read_noise_scale / profile.read_noise
    assert noise.read_scale == pytest.approx((3.0 * unit, 2.0 * unit, 4.0 * unit, 3.0 * unit))
    assert noise.row_noise == (1.0, 2.0) and noise.gain == 2.5
    profile.fixed_pattern = np.arange(SHAPE[0] * SHAPE[1], dtype=np.float32).reshape(SHAPE)
    offsets = DarkOffsets.parametric(profile, noise, "noise.json")
    crop = offsets.crop(0, 0, 0, 2)  # packed (0, 0): mosaic rows 0-1, columns 0-1
    assert crop[0, 0, 0] == pytest.approx(profile.fixed_pattern[0, 1] + 511.5 - 511.0)  # R at (0, 1)
    assert crop[0, 0, 1] == pytest.approx(profile.fixed_pattern[0, 0] + 510.5 - 510.0)  # G at (0, 0)
    assert crop[0, 0, 3] == pytest.approx(profile.fixed_pattern[1, 1] + 513.5 - 513.0)  # G2 at (1, 1)


# --------------------------------------------------------------------------- runs

def _base_and_g_add(checkpoint: str) -> tuple[dict, dict]:
    reader = tf1().train.load_checkpoint(checkpoint)
    names = reader.get_variable_to_shape_map()
    base = {n: reader.get_tensor(n) for n in names if classify_tensor(n) == "base"}
    g_add = {n: reader.get_tensor(n) for n in names if n.startswith("g_add")}
    return base, g_add


def test_clean_dir_with_dark_frames_trains_and_records_config(inputs, pretrained, tmp_path):
    messages: list[str] = []
    result = train(_opts(inputs, pretrained, tmp_path / "run"), report=messages.append)
    assert result.global_step == 4 and result.mode == "frozen"  # 'cached' cannot cache noisy features
    assert any("runs as 'frozen'" in m for m in messages)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    synthetic = config["synthetic"]
    assert config["mode"] == "frozen" and config["pairs"] == []
    assert set(synthetic["noise"]) == {"gain", "gain_source", "read_noise", "row_noise", "column_noise",
                                       "black_level", "dark_frames", "mode"}
    assert synthetic["noise"]["gain"] == K and synthetic["noise"]["gain_source"] == "given"
    assert synthetic["noise"]["mode"] == "sampled" and synthetic["noise"]["dark_frames"] == 4
    assert synthetic["noise"]["read_noise"] == pytest.approx(3.0, rel=0.15)
    assert synthetic["clean"] == [str(inputs / "clean" / f"photo_{i}.dng") for i in range(2)]
    assert synthetic["ratios"] == [100.0, 250.0, 300.0] and synthetic["share"] == 1.0
    base, g_add = _base_and_g_add(result.checkpoint)
    before = tf1().train.load_checkpoint(pretrained)
    assert len(base) == 42 and g_add
    for name, value in base.items():
        np.testing.assert_array_equal(value, before.get_tensor(name), err_msg=name)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all("data_wait_s" in r for r in records)
    assert (tmp_path / "run" / "samples" / "step_0000004.png").is_file()


@pytest.mark.slow
def test_resume_is_exact(inputs, pretrained, tmp_path):
    """8 steps straight == 4 steps, then a resume to 8: the patches and the noise of step i depend on --seed and i."""
    def run(train_dir: Path, steps: int):
        return train(_opts(inputs, pretrained, train_dir, steps=steps, lr_decay_step=6), report=lambda m: None)

    start = tmp_path / "start"
    run(start, 2)  # the g_add layers' initial values are not seeded: both runs go on from this checkpoint
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    shutil.copytree(start, straight)
    shutil.copytree(start, resumed)
    a = run(straight, 8)
    run(resumed, 4)
    b = run(resumed, 8)
    assert a.global_step == b.global_step == 8 and b.resumed
    g_a, g_b = _base_and_g_add(a.checkpoint)[1], _base_and_g_add(b.checkpoint)[1]
    assert g_a.keys() == g_b.keys() and g_a
    for name in g_a:
        np.testing.assert_array_equal(g_a[name], g_b[name], err_msg=name)


def test_real_and_synthetic_patches_mix_at_the_share(inputs):
    cache = DecodeCache(inputs / "cache")
    photos = load_clean_photos(inputs / "clean", cache, report=lambda m: None)
    darks = DarkOffsets.sampled([cache.packed(str(p))[0].packed.values for p in sorted((inputs / "darks").iterdir())],
                                _noise("sampled"), ["dark"])
    real = PatchSampler([[np.zeros((32, 48, 4), np.float32)]], [np.zeros((64, 96, 3), np.float16)], [100.0], 16)
    sampler = SyntheticSampler(photos, darks, [100.0, 300.0], 16, seed=1, batch_size=4, real=real, share=0.25)
    patches = [p for _ in range(100) for p in sampler.sample()]
    share = np.mean([p.synthetic is not None for p in patches])
    assert share == pytest.approx(0.25, abs=0.06)
    assert {p.ratio for p in patches if p.synthetic is not None} == {100.0, 300.0}
    again = SyntheticSampler(photos, darks, [100.0, 300.0], 16, seed=1, batch_size=4, real=real, share=0.25,
                             first_step=37)
    np.testing.assert_array_equal(again.sample()[0].packed[0], patches[37 * 4].packed[0])


@pytest.mark.slow
def test_two_real_pairs_measure_k_and_mix_with_synthetic_patches_inside(inputs, pretrained, tmp_path):
    """Real pairs + clean photos + darks, additions inside the network: K from the pairs, both kinds trained."""
    messages: list[str] = []
    opts = _opts(inputs, pretrained, tmp_path / "run", dataset_dir=str(inputs / "pairs"), split="all", gain=None,
                 g_add_head=False, g_add_rank=4, g_add_down_init="xavier", batch_size=2, steps=3)
    result = train(opts, report=messages.append)
    assert result.mode == "inside" and result.global_step == 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(config["pairs"]) == 2 and config["synthetic"]["share"] == DEFAULT_SYNTHETIC_SHARE == 0.8
    assert config["synthetic"]["noise"]["gain_source"] == "pairs"
    assert 2.0 < config["synthetic"]["noise"]["gain"] < 4.5  # true K 3 (tiny images: a rough estimate)
    assert any("DN per electron (from pairs)" in m for m in messages)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in records)


# --------------------------------------------------------------------------- what clean means, bad inputs

def test_a_clipped_clean_photo_is_named(inputs, tmp_path):
    folder = write_clean(tmp_path / "clean", n=1)
    clipped = _write(folder / "photo_9.dng", np.full(SHAPE, WHITE, float), 1.0)
    messages: list[str] = []
    photos = load_clean_photos(folder, DecodeCache(tmp_path / "cache"), messages.append)
    assert [p.path for p in photos] == [str(folder / "photo_0.dng")]
    assert any(str(clipped) in m and "is clipped" in m for m in messages)
    (folder / "photo_0.dng").unlink()
    with pytest.raises(SidFtError, match="no usable clean photo"):
        load_clean_photos(folder, DecodeCache(tmp_path / "cache"), messages.append)


def test_dark_frames_of_another_size_are_named(inputs, tmp_path):
    darks = write_darks(tmp_path / "darks", shape=(64, 64))
    with pytest.raises(SidFtError) as err:
        prepare_synthetic_data(inputs / "clean", DecodeCache(tmp_path / "cache"), lambda m: None,
                               dark_frames=str(darks), gain=K)
    assert err.value.path == str(darks / "dark_0.dng") and "is 64x64" in err.value.reason


def test_a_noise_profile_without_frames_gives_parametric_noise(inputs, tmp_path):
    profile = calibrate(inputs / "darks", gain=K)
    save_noise_profile(profile, tmp_path / "noise.json")
    data = prepare_synthetic_data(inputs / "clean", DecodeCache(tmp_path / "cache"), lambda m: None,
                                  noise_profile=str(tmp_path / "noise.json"))
    assert data.noise.mode == "parametric" and data.config()["noise"]["mode"] == "parametric"
    assert data.noise.gain == K and len(data.darks.frames) == 1
    expected = profile.fixed_pattern[0, 0] + profile.black_level[0, 0] - BLACK
    assert data.darks.crop(0, 0, 0, 1)[0, 0, 0] == pytest.approx(expected, abs=1e-3)  # R at (0, 0)
    other = dataclasses.replace(profile, image_size=(64, 64), fixed_pattern=None)
    save_noise_profile(other, tmp_path / "other.json")
    with pytest.raises(SidFtError, match="is 64x64") as err:
        prepare_synthetic_data(inputs / "clean", DecodeCache(tmp_path / "cache"), lambda m: None,
                               noise_profile=str(tmp_path / "other.json"))
    assert err.value.path == str(tmp_path / "other.json")


def _figures(iso=100.0, clipped=0.0, median=0.2, noise=0.001) -> PhotoFigures:
    meta = FrameMeta("cam", iso, 1.0, "RGGB", SHAPE, ((512.0, 512.0), (512.0, 512.0)), float(WHITE))
    return PhotoFigures(meta, clipped, median, noise)


def test_what_clean_means():
    assert judge_photo(_figures()) == (None, [])
    assert "clipped" in judge_photo(_figures(clipped=0.2))[0]
    assert "clipped" in judge_photo(_figures(clipped=0.02))[1][0]
    assert "too dark" in judge_photo(_figures(median=0.001))[0]
    assert "dark" in judge_photo(_figures(median=0.01))[1][0]
    assert "ISO 12800" in judge_photo(_figures(iso=12800.0))[0]
    assert "ISO 3200" in judge_photo(_figures(iso=3200.0))[1][0]
    assert "noisy" in judge_photo(_figures(iso=None, noise=0.03))[1][0]


def test_options_and_the_command_line(tmp_path):
    with pytest.raises(SidFtError, match="--clean-dir"):
        TrainOptions(dark_frames="darks").check()
    with pytest.raises(SidFtError, match="--dark-frames DIR"):
        TrainOptions(clean_dir="clean").check()
    with pytest.raises(SidFtError, match="--synthetic-share"):
        TrainOptions(clean_dir="clean", dark_frames="d", synthetic_share=1.5).check()
    args = ["--clean-dir", "c", "--dark-frames", "d", "--ratios", "50", "200", "--gain", "2.5"]
    opts = options_from_args(parse_args(args))
    assert opts.ratios == (50.0, 200.0) and opts.gain == 2.5 and opts.synthetic_share == 0.8
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"options": dataclasses.asdict(opts)}))
    assert options_from_args(parse_args(["--config", str(run / "config.json")])) == opts
