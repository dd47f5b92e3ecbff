"""The shot noise's device sampler (sid_ft.training.poisson): Poisson counts from ops with GPU kernels.

Run here on the CPU with the device sampler forced.  The statistical checks compare a million draws with
Poisson(lam) at 5 standard errors (mean, variance, frequencies) or a chi-square p-value; the seeds are fixed,
so each test is deterministic.  ``test_the_checks_reject_wrong_samplers`` shows the same checks failing
numpy draws of a wrong variance or of a plain rounded normal.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sid_ft._tf import tf1
from sid_ft.data.synthetic import SyntheticNoise
from sid_ft.training.poisson import INVERSION_BELOW, device_poisson, resolve_shot_sampler
from sid_ft.training.synthesis import synthesize_short

N = 1_000_000
T = INVERSION_BELOW


@pytest.fixture(scope="module")
def sampler():
    """``draw(lam, seed) -> counts``: one graph and session with the device sampler on a placeholder."""
    tf = tf1()
    graph = tf.Graph()
    with graph.as_default():
        lam = tf.placeholder(tf.float32, None, name="lam")
        seed = tf.placeholder(tf.int64, [2], name="seed")
        counts = device_poisson(lam, seed)
    sess = tf.Session(graph=graph)

    def draw(values, seed_value=(7, 3)) -> np.ndarray:
        return sess.run(counts, {lam: np.asarray(values, np.float32), seed: np.asarray(seed_value, np.int64)})

    yield draw
    sess.close()


# --------------------------------------------------------------------------- the checks, on numpy draws

def moments_match(draws: np.ndarray, lam: float, z: float = 5.0) -> bool:
    """Mean and variance of ``draws`` within ``z`` standard errors of Poisson(lam)'s (both lam)."""
    n = draws.size
    mean_se = np.sqrt(lam / n)
    var_se = np.sqrt((lam + 2.0 * lam * lam) / n)  # (mu4 - sigma^4) / n, mu4 = lam (1 + 3 lam)
    return abs(draws.mean() - lam) <= z * mean_se and abs(draws.var() - lam) <= z * var_se


def chi2_pvalue(draws: np.ndarray, lam: float) -> float:
    """Chi-square p-value of ``draws`` against Poisson(lam), bins k with >= 50 expected, tails pooled."""
    n = draws.size
    ks = np.arange(int(lam + 20 * np.sqrt(lam) + 30))
    pmf = stats.poisson.pmf(ks, lam)
    inner = ks[pmf * n >= 50]
    lo, hi = int(inner[0]), int(inner[-1])
    expected = np.concatenate([[stats.poisson.cdf(lo, lam)], pmf[lo + 1:hi], [stats.poisson.sf(hi - 1, lam)]]) * n
    observed = np.bincount(np.clip(draws.astype(np.int64), lo, hi) - lo, minlength=hi - lo + 1)
    return float(stats.chisquare(observed, expected).pvalue)


def test_the_checks_reject_wrong_samplers():
    """The checks pass numpy's Poisson draws and fail a 10 % too large variance and a plain rounded normal."""
    rng = np.random.default_rng(1)
    for lam in (0.3, 3.0, 15.0, 100.0):
        assert moments_match(rng.poisson(lam, N).astype(np.float32), lam)
        wider = 1.1 * rng.poisson(lam / 1.1, N)  # mean lam, variance 1.1 lam
        assert not moments_match(wider, lam)
    for lam in (T - 1, T + 1, 100.0):
        assert chi2_pvalue(rng.poisson(lam, N), lam) > 1e-4
        rounded_normal = np.maximum(np.floor(lam + np.sqrt(lam) * rng.standard_normal(N) + 0.5), 0)
        assert chi2_pvalue(rounded_normal, lam) < 1e-6


# --------------------------------------------------------------------------- the device sampler

@pytest.mark.parametrize("lam", [0.0, 0.3, 3.0, 15.0, T - 1e-3, T, T + 1, 100.0, 160.0])
def test_mean_and_variance_match_lambda(sampler, lam):
    draws = sampler(np.full(N, lam), (11, int(lam * 1000)))
    assert moments_match(draws, lam), (draws.mean(), draws.var())


def test_small_lambda_frequencies_match_poisson(sampler):
    """k = 0..5 of a million draws each within 5 standard errors of scipy's pmf, and a chi-square fit."""
    for lam in (0.3, 1.0, 4.0):
        draws = sampler(np.full(N, lam), (5, int(lam * 10)))
        freq = np.bincount(draws.astype(np.int64), minlength=6)[:6] / N
        pmf = stats.poisson.pmf(np.arange(6), lam)
        assert np.all(np.abs(freq - pmf) <= 5 * np.sqrt(pmf * (1 - pmf) / N) + 1e-6), (lam, freq - pmf)
        assert chi2_pvalue(draws, lam) > 1e-4


@pytest.mark.parametrize("lam", [T - 1, T + 1, 100.0])
def test_frequencies_either_side_of_the_threshold_match_poisson(sampler, lam):
    assert chi2_pvalue(sampler(np.full(N, lam), (13, int(lam))), lam) > 1e-4


def test_counts_are_non_negative_integers_and_zero_at_lambda_zero(sampler):
    rng = np.random.default_rng(2)
    lam = rng.uniform(0, 200, 200_000).astype(np.float32)
    lam[::3] = 0.0
    draws = sampler(lam)
    assert draws.dtype == np.float32 and draws.shape == lam.shape
    assert np.all(draws >= 0) and np.array_equal(draws, np.floor(draws))
    assert np.all(draws[::3] == 0) and np.all(sampler(np.zeros(1000)) == 0)


def test_a_mixed_lambda_batch_keeps_its_shape_and_each_channels_law(sampler):
    """(N, p, p, C) with lam per channel 0, 0.7, 15.5 (inversion) and 60 (Cornish-Fisher)."""
    tf = tf1()
    lams = np.asarray([0.0, 0.7, 15.5, 60.0], np.float32)
    lam = np.broadcast_to(lams, (4, 128, 128, 4)).copy()
    with tf.Graph().as_default():
        out = device_poisson(tf.constant(lam), tf.constant([3, 4], tf.int64))
        assert out.shape.as_list() == [4, 128, 128, 4] and out.dtype == tf.float32
    draws = sampler(lam)
    assert draws.shape == lam.shape and draws.dtype == np.float32
    for c, value in enumerate(lams):
        assert moments_match(draws[..., c], float(value)), (value, draws[..., c].mean(), draws[..., c].var())


def test_the_device_graph_has_no_poisson_op():
    """Every op of the device sampler, in the graph and in the loop's functions, is not TensorFlow's Poisson
    op (its kernel is CPU-only); the sampler draws uniforms and inverts them."""
    tf = tf1()
    graph = tf.Graph()
    with graph.as_default():
        device_poisson(tf.placeholder(tf.float32, [None]), tf.constant([1, 2], tf.int64))
    graph_def = graph.as_graph_def()
    ops = {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}
    assert not any("Poisson" in op for op in ops), ops
    assert {"StatelessRandomUniformV2", "Ndtri"} <= ops


# --------------------------------------------------------------------------- seeding and the choice of sampler

def _noise() -> SyntheticNoise:
    """Shot noise only (mode 'sampled', dark 0), K = 1, 14-bit levels: the output is the counts / full scale."""
    return SyntheticNoise(mode="sampled", gain=1.0, black=(512.0,) * 4, white=16383.0, read_scale=(0.0,) * 4,
                          read_shape=0.14, row_noise=(0.0, 0.0), column_noise=(0.0, 0.0), row_parity=(0, 0, 1, 1),
                          column_parity=(0, 1, 1, 0))


def _short(noise_seed, sampler: str, electrons: float = 5.0, ratio: float = 100.0) -> np.ndarray:
    """synthesize_short of a flat clean crop (2, 64, 64, 4) of ``electrons`` per pixel, as counts."""
    tf = tf1()
    noise = _noise()
    clean = np.full((2, 64, 64, 4), electrons * ratio / noise.full_scale[0], np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        out = synthesize_short(tf.constant(clean), tf.zeros_like(clean), tf.constant([ratio] * 2),
                               tf.constant(noise_seed, tf.int64), noise, shot_sampler=sampler)
        return np.rint(sess.run(out) * noise.full_scale)


def test_same_seed_and_step_draw_the_same_noise_another_step_other_noise():
    first = _short((42, 7), "device")
    assert np.array_equal(first, _short((42, 7), "device"))  # a new graph and session: a resumed run
    assert np.mean(first != _short((42, 8), "device")) > 0.5  # the next step
    assert np.mean(first != _short((43, 7), "device")) > 0.5  # another --seed
    assert moments_match(first, 5.0)


def test_the_op_sampler_is_tensorflows_poisson_op_with_the_shot_sub_seed():
    """'op' draws exactly what ``tf.random.stateless_poisson`` draws from the _SHOT seed (seed, 8 * step)."""
    tf = tf1()
    with tf.Graph().as_default(), tf.Session() as sess:
        expected = sess.run(tf.random.stateless_poisson([2, 64, 64, 4], tf.constant([42, 7 * 8], tf.int64),
                                                        lam=tf.fill([2, 64, 64, 4], 5.0), dtype=tf.float32))
    assert np.array_equal(_short((42, 7), "op"), expected)
    assert not np.array_equal(_short((42, 7), "device"), expected)


def test_auto_is_the_op_without_a_gpu_and_the_device_sampler_with_one():
    has_gpu = bool(tf1().config.list_physical_devices("GPU"))
    assert resolve_shot_sampler("auto") == ("device" if has_gpu else "op")
    assert resolve_shot_sampler() == resolve_shot_sampler("auto")
    assert (resolve_shot_sampler("op"), resolve_shot_sampler("device")) == ("op", "device")
    with pytest.raises(ValueError, match="shot_sampler"):
        resolve_shot_sampler("gpu")
    if not has_gpu:  # nothing changed on a CPU: the default draws the op's noise
        assert np.array_equal(_short((9, 1), "auto"), _short((9, 1), "op"))
