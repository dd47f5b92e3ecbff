"""sid_ft.eval.metrics: SID's evaluation protocol (selection, 8-bit rounding, exclusions) and SSIM against MATLAB's."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft.data import sid
from sid_ft.eval import metrics
from sid_ft.data.pairs import Pair

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matlab_ssim_reference import gaussian_window, matlab_ssim, synthetic_pair  # noqa: E402
from samples import SID_LISTS  # noqa: E402


def pair(short: str, long: str = "10003_00_10s.ARW") -> Pair:
    s, l_ = float(short.split("_")[2][:-5]), float(long.split("_")[2][:-5])
    return Pair(short_path=f"/d/short/{short}", long_path=f"/d/long/{long}", short_exposure=s, long_exposure=l_,
                scene_id=short[:5])


def test_sid_selection_is_burst_00_of_test_scenes_at_every_exposure():
    names = ["10003_00_0.1s.ARW", "10003_01_0.1s.ARW", "10003_00_0.04s.ARW", "10003_02_0.04s.ARW",
             "00001_00_0.1s.ARW", "20005_00_0.1s.ARW", "10034_00_0.033s.ARW", "10034_10_0.033s.ARW"]
    chosen = [Path(p.short_path).name for p in sid.sid_test_selection([pair(n) for n in names])]
    assert chosen == ["10003_00_0.1s.ARW", "10003_00_0.04s.ARW", "10034_00_0.033s.ARW"]


@pytest.mark.parametrize("camera,listed,scored,scenes,left_out", [("Sony", 598, 93, 50, 5), ("Fuji", 524, 94, 41, 3)])
def test_sid_selection_on_sids_own_test_lists(camera, listed, scored, scenes, left_out):
    from sid_ft.data.pairs import read_pair_list

    pairs = read_pair_list(SID_LISTS / f"{camera}_test_list.txt", check_exists=False)
    chosen = sid.sid_test_selection(pairs)
    assert len(pairs) == listed and len(chosen) == scored and len({p.scene_id for p in chosen}) == scenes
    assert all("_00_" in Path(p.short_path).name for p in chosen)
    # every test scene keeps all the exposures its burst 00 was shot at
    for scene in {p.scene_id for p in pairs}:
        wanted = {p.short_exposure for p in pairs if p.scene_id == scene and "_00_" in Path(p.short_path).name}
        assert wanted == {p.short_exposure for p in chosen if p.scene_id == scene}
    assert sum(sid.sid_left_out(p.short_path) is not None for p in chosen) == left_out


def test_misaligned_scenes_are_named():
    assert sid.SID_MISALIGNED_SCENES == ("10034", "10045", "10172")
    assert "10045" in sid.sid_left_out("x/10045_00_0.1s.ARW")
    assert sid.sid_left_out("x/10046_00_0.1s.ARW") is None
    assert sid.sid_left_out("photo.ARW") is None


def test_eight_bit_rounding_is_sids_half_up():
    x = np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.49 / 255, 1.0, 1.3], np.float32)
    # half up, where numpy's rint would round 0.5 and 2.5 down to even
    np.testing.assert_array_equal(metrics.to_uint8_sid(x), [0, 0, 1, 2, 3, 0, 255, 255])
    assert metrics.to_uint8_sid(x).dtype == np.uint8


def test_score_8bit_psnr_is_matlabs_on_uint8():
    out, gt = synthetic_pair(40, 56, noise=6.0)
    p, s = metrics.score_8bit(out, gt)
    mse = np.mean((out.astype(np.float64) - gt.astype(np.float64)) ** 2)
    assert p == pytest.approx(10 * np.log10(255.0 ** 2 / mse), abs=1e-9)
    assert 0 < s < 1
    assert metrics.score_8bit(gt, gt)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="uint8"):
        metrics.score_8bit(out.astype(np.float32), gt.astype(np.float32))


# --------------------------------------------------------------------------- the MATLAB reference


def test_matlab_window_is_11_wide_and_normalised():
    for ndim in (2, 3):
        w = gaussian_window(ndim)
        assert w.shape == (11,) * ndim and w.sum() == pytest.approx(1.0)
        assert np.unravel_index(w.argmax(), w.shape) == (5,) * ndim


def test_matlab_reference_separable_equals_full_window():
    out, gt = synthetic_pair(30, 34, noise=10.0)
    for channels in (False, True):
        assert matlab_ssim(out, gt, channels=channels, separable=True) == pytest.approx(
            matlab_ssim(out, gt, channels=channels, separable=False), abs=1e-12)


def test_matlab_reference_agrees_with_ours_where_the_two_methods_coincide():
    """2-D, away from the border: the same window and formula, so the same map (an independent check of both)."""
    from skimage.metrics import structural_similarity

    out, gt = synthetic_pair(48, 64, noise=12.0)
    a, b = out[..., 1], gt[..., 1]
    _, ours_map = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=255,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    x, y = a.astype(np.float64), b.astype(np.float64)
    from matlab_ssim_reference import _filter_separable

    mu_x, mu_y = _filter_separable(x, 1.5), _filter_separable(y, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * (_filter_separable(x * y, 1.5) - mu_x * mu_y) + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (_filter_separable(x * x, 1.5) - mu_x ** 2
                                         + _filter_separable(y * y, 1.5) - mu_y ** 2 + c2)
    np.testing.assert_allclose(ours_map[5:-5, 5:-5], (num / den)[5:-5, 5:-5], atol=1e-9)


def test_matlab_volume_of_a_grey_image_is_its_2d_ssim():
    # replicate padding along the three colour planes: an image with R = G = B is a 2-D image
    out, gt = synthetic_pair(36, 40, noise=9.0)
    grey_out, grey_gt = np.repeat(out[..., :1], 3, axis=2), np.repeat(gt[..., :1], 3, axis=2)
    assert matlab_ssim(grey_out, grey_gt) == pytest.approx(matlab_ssim(out[..., 0], gt[..., 0]), abs=1e-12)


def test_ours_vs_matlab_per_channel_and_volume():
    """The differences the README quotes, measured on a small synthetic pair (benchmarks/bench_ssim_matlab.py)."""
    out, gt = synthetic_pair(96, 128, noise=8.0)
    ours = metrics.score_8bit(out, gt)[1]
    per_channel = matlab_ssim(out, gt, channels=True)
    volume = matlab_ssim(out, gt)
    assert abs(ours - per_channel) < 0.01  # the same index; only the border handling differs
    assert volume > ours + 0.05  # the 3-D window averages independent noise across colour planes
