"""Tests for sid_ft.data (noise, calibrate, unprocess, make_pairs): noise statistics, dark-frame estimates, unprocessing, SID pairs, CLI.

Statistical tests use fixed seeds and tolerances from sampling theory (5 standard
errors of the estimator), so they fail when the model is wrong, not by chance.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft.errors import SidFtError
from sid_ft.data.calibrate import estimate_from_dark_frames
from sid_ft.data.noise import NoiseParams, parse_heavy_tail, simulate_short
from sid_ft.data.sid import format_exposure
from sid_ft.data.unprocess import unprocess_srgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from samples import raw_sample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _var_se(x: np.ndarray) -> tuple[float, float]:
    """Sample variance and its standard error sqrt((m4 - var^2) / n)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    d = x - x.mean()
    v = float(np.mean(d ** 2))
    m4 = float(np.mean(d ** 4))
    return v, math.sqrt(max(m4 - v * v, 0.0) / x.size)


# --------------------------------------------------------------------------- simulate_short

@pytest.mark.parametrize("level", [0.5, 3.0, 20.0, 150.0])
def test_mean_and_variance_match_shot_plus_read_noise(level):
    """Per signal level s (DN above black): mean s, variance K*s + read^2."""
    gain, read, ratio, black = 2.5, 1.5, 100.0, 64.0
    params = NoiseParams(gain=gain, read_noise=read, row_noise=0.0, quantize=False)
    clean = np.full((256, 256), black + ratio * level)
    out = simulate_short(clean, black, 16383, ratio, params, np.random.default_rng(1))
    x = out.astype(np.float64) - black
    expected_var = gain * level + read ** 2
    assert abs(x.mean() - level) < 5 * math.sqrt(expected_var / x.size)
    v, se = _var_se(x)
    assert abs(v - expected_var) < 5 * se
    # the shot-noise term is really there: without it the variance would be read^2 only
    if level >= 3:
        assert v - read ** 2 > 10 * se


def test_quantised_output_variance_and_row_noise_from_row_means():
    """With rounding and row noise: pixel variance within rows = K*s + read^2 + 1/12 (times 1 - 1/W),
    and var(row means) = row^2 + (K*s + read^2 + 1/12) / W."""
    gain, read, row, level, ratio, black = 1.0, 2.0, 1.2, 8.0, 250.0, 512
    h, w = 2048, 128
    params = NoiseParams(gain=gain, read_noise=read, row_noise=row)
    clean = np.full((h, w), black + ratio * level)
    out = simulate_short(clean, black, 16383, ratio, params, np.random.default_rng(2))
    assert out.dtype == np.uint16
    x = out.astype(np.float64) - black
    pix = gain * level + read ** 2 + 1 / 12
    row_means = x.mean(axis=1)
    within = x - row_means[:, None]
    v, se = _var_se(within)
    assert abs(v - pix * (1 - 1 / w)) < 5 * se
    rv = float(row_means.var(ddof=1))
    expected_rv = row ** 2 + pix / w
    # sample variance of h Gaussian row means: relative standard error sqrt(2 / (h - 1))
    assert abs(rv - expected_rv) < 5 * expected_rv * math.sqrt(2 / (h - 1))
    # and the row term is really there
    assert rv > 10 * pix / w


def test_clipping_dtype_and_zero_floor():
    params = NoiseParams(gain=1.0, read_noise=3.0, row_noise=0.0)
    bright = simulate_short(np.full((64, 64), 4000), 64, 1023, 1.0, params, 0)
    assert bright.dtype == np.uint16 and np.all(bright == 1023)
    # black 0: noise below zero is clipped at 0, never wraps around to 65535
    dark = simulate_short(np.zeros((64, 64)), 0, 1023, 100.0, params, 0)
    assert dark.min() == 0 and dark.max() < 50
    # unclipped at white when asked
    free = simulate_short(np.full((64, 64), 4000), 64, 1023, 1.0,
                          NoiseParams(gain=1.0, read_noise=1.0, row_noise=0.0, clip_at_white=False), 0)
    assert free.mean() > 3000


def test_black_level_per_colour_index_and_output_levels():
    """Black given per colour index (R, G, B, G2) lands on the right CFA positions; an output black/white
    from NoiseParams replaces the input's."""
    black = (100.0, 200.0, 300.0, 400.0)  # R, G, B, G2
    clean = np.tile(np.array([[100, 200], [400, 300]]), (64, 64))  # RGGB: G2 shares a row with B
    params = NoiseParams(gain=1.0, read_noise=0.5, row_noise=0.0)
    out = simulate_short(clean, black, 4095, 100.0, params, 0, cfa="RGGB").astype(float)
    means = [[out[r::2, c::2].mean() for c in range(2)] for r in range(2)]
    assert np.allclose(means, [[100, 200], [400, 300]], atol=0.2)
    moved = simulate_short(clean, black, 4095, 100.0,
                           NoiseParams(gain=1.0, read_noise=0.5, row_noise=0.0, black_level=50, white_level=60),
                           0, cfa="RGGB")
    assert moved.max() <= 60 and abs(moved.mean() - 50) < 0.2
    with pytest.raises(ValueError, match="cfa"):
        simulate_short(clean, black, 4095, 100.0, params, 0)


@pytest.mark.parametrize("dist,shape", [("tukey-lambda", -0.2), ("tukey-lambda", 0.0), ("student-t", 5.0)])
def test_heavy_tailed_read_noise_keeps_sigma_and_has_heavier_tails(dist, shape):
    from scipy import stats
    sigma = 3.0
    params = NoiseParams(read_noise=sigma, read_noise_dist=dist, read_noise_shape=shape, row_noise=0.0,
                         quantize=False)
    x = simulate_short(np.full((512, 512), 1000.0), 1000, 65535, 100.0, params, 3).astype(np.float64) - 1000
    v, se = _var_se(x)
    assert abs(v - sigma ** 2) < 5 * se
    assert stats.kurtosis(x.ravel()) > 1.0  # a Gaussian has excess kurtosis 0


def test_invalid_parameters_raise_project_error():
    with pytest.raises(SidFtError, match="Tukey"):
        NoiseParams(read_noise_dist="tukey-lambda", read_noise_shape=-0.7)
    with pytest.raises(SidFtError, match="Student"):
        NoiseParams(read_noise_dist="student-t", read_noise_shape=2.0)
    with pytest.raises(SidFtError, match="gain"):
        NoiseParams(gain=0)
    with pytest.raises(SidFtError, match="ratio"):
        simulate_short(np.zeros((4, 4)), 0, 100, 0.0, NoiseParams(), 0)


def test_parse_heavy_tail():
    assert parse_heavy_tail(None) == ("gaussian", None)
    assert parse_heavy_tail("tukey:-0.2") == ("tukey-lambda", -0.2)
    assert parse_heavy_tail("student-t:4") == ("student-t", 4.0)
    with pytest.raises(SidFtError):
        parse_heavy_tail("cauchy:1")


def test_same_seed_same_frame_other_seed_other_frame():
    clean = np.full((32, 32), 600.0)
    a = simulate_short(clean, 64, 1023, 100, NoiseParams(), 7)
    b = simulate_short(clean, 64, 1023, 100, NoiseParams(), 7)
    c = simulate_short(clean, 64, 1023, 100, NoiseParams(), 8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --------------------------------------------------------------------------- beyond the parametric model

def test_sensor_defects_are_off_by_default_and_drawn_after_the_parametric_noise():
    """Column noise and the fixed pattern come after every earlier draw: with the same seed, a model with
    them differs from one without by a per-column constant plus the pattern, nothing else."""
    from sid_ft.data.noise import DEFECT_DEFAULTS, fixed_pattern_map

    assert not set(DEFECT_DEFAULTS) & set(NoiseParams().to_dict())  # files written before they existed stay the same
    defects = NoiseParams(gain=2.0, read_noise=3.0, row_noise=1.0, column_noise=1.5, fixed_pattern=2.0,
                          fixed_pattern_seed=5, quantize=False, clip_at_white=False)
    assert NoiseParams.from_dict(defects.to_dict()) == defects
    plain = NoiseParams(**{**defects.to_dict(), **DEFECT_DEFAULTS})
    clean = np.full((64, 96), 2000.0)
    a = simulate_short(clean, 500, 16383, 100, plain, 11)
    b = simulate_short(clean, 500, 16383, 100, defects, 11)
    column = (b - a) - fixed_pattern_map(clean.shape, 2.0, 5)
    assert np.allclose(column, column[:1], atol=1e-3)  # one offset per column
    assert column[0].std() > 0.5


def test_column_noise_variance_from_column_means():
    """var(column means) = column^2 + read^2 / H (row offsets are common to every column)."""
    read, col, h, w = 2.0, 1.5, 64, 2048
    params = NoiseParams(read_noise=read, row_noise=1.0, column_noise=col, quantize=False)
    out = simulate_short(np.full((h, w), 100.0), 100, 16383, 100, params, 2).astype(np.float64) - 100
    means = out.mean(axis=0)
    expected = col ** 2 + read ** 2 / h
    assert abs(means.var() - expected) < 5 * expected * math.sqrt(2 / w)


def test_fixed_pattern_is_shared_by_every_frame_and_size_of_a_camera():
    from sid_ft.data.noise import fixed_pattern_map

    params = NoiseParams(read_noise=0.0, row_noise=0.0, fixed_pattern=4.0, fixed_pattern_seed=3, quantize=False)
    capped = np.full((256, 256), 800.0)
    first = simulate_short(capped, 800, 16383, 100, params, 0) - 800
    second = simulate_short(capped, 800, 16383, 100, params, 1) - 800
    assert np.array_equal(first, second)
    assert abs(first.std() - 4.0) < 5 * 4.0 / math.sqrt(2 * first.size)
    small = simulate_short(capped[:100, :130], 800, 16383, 100, params, 2) - 800
    assert np.array_equal(small, first[:100, :130])  # crops from one sensor's corner
    assert not np.allclose(fixed_pattern_map((256, 256), 4.0, 4), first)  # another camera, another pattern


def test_corner_glow_grows_with_exposure_and_fades_from_the_corner():
    from sid_ft.data.noise import glow_map

    params = NoiseParams(gain=1e-5, read_noise=0.0, row_noise=0.0, glow=300.0, glow_radius=20.0, quantize=False)
    capped = np.full((128, 128), 512.0)
    long_dark = simulate_short(capped, 512, 16383, 100, params, 0, exposure_s=0.1) - 512
    short_dark = simulate_short(capped, 512, 16383, 100, params, 0, exposure_s=0.05) - 512
    assert long_dark[0, 0] == pytest.approx(30.0, abs=0.1) and short_dark[0, 0] == pytest.approx(15.0, abs=0.1)
    assert long_dark[20, 0] == pytest.approx(30.0 / math.e, abs=0.1) and abs(long_dark[-1, -1]) < 0.1
    assert np.allclose(long_dark, glow_map(capped.shape, params, 0.1), atol=0.1)
    with pytest.raises(SidFtError, match="exposure time"):
        simulate_short(capped, 512, 16383, 100, params, 0)
    for bad in ({"column_noise": -1.0}, {"fixed_pattern": float("nan")}, {"glow_radius": 0.0}):
        with pytest.raises(SidFtError):
            NoiseParams(**bad)


# --------------------------------------------------------------------------- dark frames

def _dark_frames(n, read, row, black_tile, shape=(256, 384), seed=0, **kw):
    rng = np.random.default_rng(seed)
    clean = np.tile(np.asarray(black_tile, dtype=float), (shape[0] // 2, shape[1] // 2))
    params = NoiseParams(read_noise=read, row_noise=row, **kw)
    return [simulate_short(clean, black_tile, 16383, 100.0, params, rng) for _ in range(n)]


@pytest.mark.parametrize("n", [1, 4])
def test_dark_frame_estimate_recovers_read_row_and_black(n):
    read, row = 2.0, 0.8
    black_tile = np.array([[512.0, 514.0], [510.0, 512.0]])
    h, w = 256, 384
    est = estimate_from_dark_frames(_dark_frames(n, read, row, black_tile, (h, w)), black=512)
    npix = n * h * w
    # read: relative standard error of a variance ~ sqrt(2 / dof); sigma's is half that
    assert abs(est.read_noise - read) < 5 * read * math.sqrt(2 / npix) / 2 + 1e-3
    dof_rows = h * (n - 1) if n > 1 else h - 1
    assert abs(est.row_noise ** 2 - row ** 2) < 5 * (row ** 2 + read ** 2 / w) * math.sqrt(2 / dof_rows)
    assert np.allclose(est.black_level, black_tile, atol=5 * math.sqrt((read ** 2 + row ** 2) / (npix / 4)) + 0.05)
    assert est.black_level_per_channel("RGGB") == pytest.approx((512, 514, 512, 510), abs=0.1)
    assert est.n_frames == n and est.frame_shape == (h, w)
    assert (est.fixed_pattern_noise is None) == (n == 1)
    # what it feeds into the simulator
    p = est.apply_to(NoiseParams(gain=3.0))
    assert p.gain == 3.0 and p.read_noise == est.read_noise and p.row_noise == est.row_noise


def test_dark_frame_estimate_without_row_noise_and_heavy_tail_shape():
    est = estimate_from_dark_frames(_dark_frames(3, 3.0, 0.0, [[256.0] * 2] * 2,
                                                 read_noise_dist="tukey-lambda", read_noise_shape=-0.2),
                                    estimate_shape=True)
    assert abs(est.read_noise - 3.0) < 0.03
    assert est.row_noise < 0.1
    gauss = estimate_from_dark_frames(_dark_frames(3, 3.0, 0.0, [[256.0] * 2] * 2), estimate_shape=True)
    # Tukey lambda ~0.14 approximates a Gaussian; heavy tails give a clearly smaller lambda
    assert abs(gauss.read_noise_shape - 0.14) < 0.08
    assert est.read_noise_shape < -0.1


def test_dark_frame_estimate_rejects_bad_input():
    with pytest.raises(SidFtError, match="no dark frames"):
        estimate_from_dark_frames([])
    with pytest.raises(SidFtError, match="shape"):
        estimate_from_dark_frames([np.zeros((8, 8)) + 10, np.zeros((8, 10)) + 10])
    clipped = _dark_frames(2, 2.0, 0.0, [[0.0] * 2] * 2, shape=(64, 64))
    with pytest.raises(SidFtError, match="clipped"):
        estimate_from_dark_frames(clipped, black=0)


# --------------------------------------------------------------------------- unprocessing

@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_unprocess_puts_each_colour_on_its_cfa_sites(cfa):
    for channel, letter in enumerate("RGB"):
        img = np.zeros((6, 8, 3), dtype=np.uint8)
        img[..., channel] = 255
        mosaic = unprocess_srgb(img, cfa=cfa, wb_gains=(1.0, 1.0, 1.0))
        assert mosaic.shape == (6, 8) and mosaic.dtype == np.float32
        for pos, site in enumerate(cfa):
            r, c = divmod(pos, 2)
            block = mosaic[r::2, c::2]
            if site == letter:
                assert np.allclose(block, 1.0)
            else:
                assert np.all(block == 0.0)


def test_unprocess_inverse_gamma_and_white_balance():
    img = np.full((4, 4, 3), 128, dtype=np.uint8)
    lin = ((128 / 255 + 0.055) / 1.055) ** 2.4
    mosaic, info = unprocess_srgb(img, cfa="GRBG", wb_gains=(2.0, 1.0, 1.6), return_info=True)
    assert mosaic[0, 0] == pytest.approx(lin, rel=1e-5)          # G
    assert mosaic[0, 1] == pytest.approx(lin / 2.0, rel=1e-5)    # R
    assert mosaic[1, 0] == pytest.approx(lin / 1.6, rel=1e-5)    # B
    assert info["as_shot_neutral"] == pytest.approx((0.5, 1.0, 0.625))
    # a dark sRGB value is on the linear toe
    assert unprocess_srgb(np.full((2, 2, 3), 0.02), wb_gains=(1, 1, 1))[0, 0] == pytest.approx(0.02 / 12.92)
    # random gains are drawn from the rng, reproducibly
    _, a = unprocess_srgb(img, rng=5, return_info=True)
    _, b = unprocess_srgb(img, rng=5, return_info=True)
    assert a["wb_gains"] == b["wb_gains"] and 1.9 <= a["wb_gains"][0] <= 2.4 and 1.5 <= a["wb_gains"][2] <= 1.9


def test_unprocess_colour_correction_keeps_white_and_crops_to_even():
    ccm = np.array([[1.5, -0.3, -0.2], [-0.2, 1.4, -0.2], [0.0, -0.5, 1.5]])
    mosaic = unprocess_srgb(np.ones((5, 7, 3)), wb_gains=(1, 1, 1), rgb_to_cam=ccm)
    assert mosaic.shape == (4, 6) and np.allclose(mosaic, 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        unprocess_srgb(np.ones((4, 4, 3)), cfa="RGBG")


# --------------------------------------------------------------------------- names and pairs

def test_format_exposure_like_sid_names():
    assert format_exposure(10) == "10"
    assert format_exposure(30.0) == "30"
    assert format_exposure(0.1) == "0.1"
    assert format_exposure(10 / 250) == "0.04"
    assert format_exposure(10 / 300) == "0.0333"
    assert format_exposure(1 / 60 / 300) == "0.0000556"   # never scientific notation
    with pytest.raises(SidFtError):
        format_exposure(0)


@pytest.fixture
def long_dngs(tmp_path):
    """Two tiny 'clean long exposure' DNGs (GRBG, per-channel black, 12-bit), one without an exposure tag."""
    write_dng = pytest.importorskip("sid_ft.io.dng").write_dng
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    black = (256.0, 250.0, 260.0, 252.0)
    for name, exposure in (("a.dng", 10.0), ("b.dng", 4.0)):
        mosaic = (rng.uniform(0.2, 0.9, (32, 48)) * 3800 + 260).astype(np.uint16)
        write_dng(src / name, mosaic, cfa="GRBG", black_level=black, white_level=4095, exposure_time=exposure,
                  as_shot_neutral=(0.5, 1.0, 0.6))
    return src


def test_make_pairs_writes_sid_pairs_that_find_pairs_reads(long_dngs, tmp_path):
    pytest.importorskip("sid_ft.io.raw")
    dataset = pytest.importorskip("sid_ft.data.pairs")
    import rawpy
    from sid_ft.data.make_pairs import make_pairs

    out = tmp_path / "pairs"
    params = NoiseParams(gain=1.5, read_noise=2.0, row_noise=0.5)
    pairs = make_pairs(long_dngs, out, ratios=(100, 250), params=params, seed=1, bursts=2)
    assert len(pairs) == 2 * 2 * 2
    names = sorted(p.name for p in (out / "short").iterdir())
    assert names == ["00001_00_0.04s.dng", "00001_00_0.1s.dng", "00001_01_0.04s.dng", "00001_01_0.1s.dng",
                     "00002_00_0.016s.dng", "00002_00_0.04s.dng", "00002_01_0.016s.dng", "00002_01_0.04s.dng"]
    assert sorted(p.name for p in (out / "long").iterdir()) == ["00001_00_10s.dng", "00002_00_4s.dng"]

    found = dataset.find_pairs(out)
    assert len(found) == len(pairs)
    assert sorted(round(p.ratio(), 6) for p in found) == [100.0] * 4 + [250.0] * 4
    assert {(Path(p.short_path).name, Path(p.long_path).name) for p in found} == \
        {(Path(p.short_path).name, Path(p.long_path).name) for p in pairs}

    # the short files carry the source's layout and levels; their signal is the long's / ratio
    with rawpy.imread(str(out / "short" / "00001_00_0.1s.dng")) as s, \
            rawpy.imread(str(long_dngs / "a.dng")) as src:
        assert np.array_equal(s.raw_pattern, src.raw_pattern)
        assert list(s.black_level_per_channel) == [256, 250, 260, 252]
        assert s.white_level == 4095 and s.other.shutter_speed == pytest.approx(0.1)
        black = np.asarray(src.black_level_per_channel, dtype=float)[src.raw_colors_visible]
        sig_long = src.raw_image_visible.astype(float) - black
        sig_short = s.raw_image_visible.astype(float) - black
        assert sig_short.mean() == pytest.approx(sig_long.mean() / 100, abs=0.3)
    with rawpy.imread(str(out / "long" / "00001_00_10s.dng")) as lg, \
            rawpy.imread(str(long_dngs / "a.dng")) as src:
        assert np.array_equal(lg.raw_image_visible, src.raw_image_visible)
    manifest = json.loads((out / "make_pairs.json").read_text())
    assert manifest["settings"]["ratios"] == [100.0, 250.0] and len(manifest["scenes"]) == 2

    # re-run with the same settings reuses the files; other settings are refused
    before = (out / "short" / "00001_00_0.1s.dng").stat().st_mtime_ns
    assert len(make_pairs(long_dngs, out, ratios=(100, 250), params=params, seed=1, bursts=2)) == 8
    assert (out / "short" / "00001_00_0.1s.dng").stat().st_mtime_ns == before
    with pytest.raises(SidFtError, match="other settings"):
        make_pairs(long_dngs, out, ratios=(100, 250), params=params, seed=2, bursts=2)


def test_make_pairs_with_dark_frames_and_missing_exposure(tmp_path):
    pytest.importorskip("sid_ft.io.raw")
    pytest.importorskip("sid_ft.data.pairs")
    from sid_ft.io.dng import write_dng
    from sid_ft.data.make_pairs import make_pairs

    src = tmp_path / "src"
    src.mkdir()
    write_dng(src / "noexp.dng", np.full((32, 32), 2000, np.uint16), cfa="RGGB", black_level=64, white_level=4095)
    darks = tmp_path / "darks"
    darks.mkdir()
    for i, frame in enumerate(_dark_frames(3, 2.5, 0.0, [[64.0] * 2] * 2, shape=(64, 64), seed=3)):
        write_dng(darks / f"dark{i}.dng", frame, cfa="RGGB", black_level=64, white_level=4095)
    with pytest.raises(SidFtError, match="exposure"):
        make_pairs(src, tmp_path / "o1", ratios=(100,))
    pairs = make_pairs(src, tmp_path / "o2", ratios=(100,), dark_frames=darks, long_exposure=10,
                       first_scene_id=10001)
    assert [Path(p.short_path).name for p in pairs] == ["10001_00_0.1s.dng"]
    noise = json.loads((tmp_path / "o2" / "make_pairs.json").read_text())["settings"]["noise"]
    assert noise["read_noise"] == pytest.approx(2.5, abs=0.1) and noise["row_noise"] < 0.3


def test_make_pairs_refuses_foreign_folder_and_bad_input(long_dngs, tmp_path):
    pytest.importorskip("sid_ft.io.raw")
    pytest.importorskip("sid_ft.data.pairs")
    from sid_ft.data.make_pairs import make_pairs

    foreign = tmp_path / "sid"
    (foreign / "long").mkdir(parents=True)
    (foreign / "long" / "00001_00_10s.ARW").write_bytes(b"x")
    with pytest.raises(SidFtError, match="did not"):
        make_pairs(long_dngs, foreign)
    with pytest.raises(SidFtError, match="no such"):
        make_pairs(tmp_path / "missing", tmp_path / "o")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SidFtError, match="no RAW files"):
        make_pairs(empty, tmp_path / "o")


# --------------------------------------------------------------------------- CLI

def test_cli_help_shows_example():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "make_pairs.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    for opt in ("--out-dir", "--ratios", "--gain", "--read-noise", "--row-noise", "--heavy-tail",
                "--dark-frames", "--seed", "example"):
        assert opt in res.stdout


def test_cli_error_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "make_pairs.py"), str(tmp_path / "nope"),
                          "--out-dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "no such file" in res.stderr


@pytest.mark.slow
def test_cli_writes_pairs(long_dngs, tmp_path):
    pytest.importorskip("sid_ft.io.raw")
    pytest.importorskip("sid_ft.data.pairs")
    out = tmp_path / "cli"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "make_pairs.py"), str(long_dngs / "a.dng"),
                          "--out-dir", str(out), "--ratios", "300", "--gain", "2", "--read-noise", "1.5",
                          "--row-noise", "0", "--heavy-tail", "tukey:-0.1", "--seed", "3"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in (out / "short").iterdir()] == ["00001_00_0.0333s.dng"]
    noise = json.loads((out / "make_pairs.json").read_text())["settings"]["noise"]
    assert noise["gain"] == 2 and noise["read_noise_dist"] == "tukey-lambda" and noise["read_noise_shape"] == -0.1


def test_make_pairs_on_a_real_camera_file(tmp_path):
    """A real Kodak DC120 KDC (GRBG, black 0, white 255, ~1/275 s): layout, levels and exposure carry over."""
    pytest.importorskip("sid_ft.io.raw")
    dataset = pytest.importorskip("sid_ft.data.pairs")
    import rawpy
    from sid_ft.data.make_pairs import make_pairs

    src = raw_sample("Kodak_DC120_DC120IMG_P003908.KDC")
    pairs = make_pairs(src, tmp_path / "kdc", ratios=(100,), params=NoiseParams(gain=0.5, read_noise=1.0))
    (pair,) = pairs
    assert Path(pair.long_path).name == "00001_00_0.00364s.dng"
    assert Path(pair.short_path).name == "00001_00_0.0000364s.dng"
    (found,) = dataset.find_pairs(tmp_path / "kdc")
    assert found.ratio() == pytest.approx(100.0)
    with rawpy.imread(str(src)) as a, rawpy.imread(pair.long_path) as b, rawpy.imread(pair.short_path) as s:
        assert np.array_equal(a.raw_image_visible, b.raw_image_visible)
        assert a.raw_pattern.tolist() == s.raw_pattern.tolist() == [[1, 0], [2, 3]]
        assert s.white_level == 255 and list(s.black_level_per_channel) == [0, 0, 0, 0]
        assert s.raw_image_visible.mean() < a.raw_image_visible.mean() / 20
