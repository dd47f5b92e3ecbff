"""Poisson shot noise from stateless random ops: TensorFlow's own op, or a sampler whose ops all run on a GPU.

``tf.random.stateless_poisson`` (``StatelessRandomPoisson``) has only a CPU kernel: in a graph on a GPU it
runs on the host (about 130 ms for a 512x512x4 patch on one core), and synthesis, not the step, would set
the pace.  :func:`device_poisson` draws from the same distribution with ops that have GPU kernels
(``stateless_uniform``, ``ndtri``, elementwise math, one ``while_loop``).  It is the Poisson quantile
function of one uniform ``u`` per element, so a draw is a function of the seed alone, like the op's:

* ``lam < INVERSION_BELOW`` (16 electrons): exact inversion of the CDF, ``k = min{k : F(k) > u}``, with
  ``p_0 = exp(-lam)``, ``p_k = p_(k-1) * lam / k`` and ``F`` summed in float64 (float32 sums stop short of
  ``u`` near 1).  A vectorised ``while_loop`` adds one round per ``k`` and stops when every element's ``F``
  has passed its ``u``: about 40 rounds for 10^6 elements just under 16 e-, 20 when all are under 5 e-.
* ``lam >= 16``: the Cornish-Fisher quantile of ``z = Phi^-1(u)``, rounded to an integer.  Rounding adds
  Sheppard's corrections (+1/12 to the variance, -1/120 to the 4th cumulant), so the continuous ``Y`` takes
  the Poisson's cumulants less them::

      s^2 = lam - 1/12,   g1 = lam / s^3,   g2 = (lam + 1/120) / s^4
      w   = z + (z^2 - 1) g1/6 + (z^3 - 3z) g2/24 - (2z^3 - 5z) g1^2/36
      k   = max(floor(lam + s w + 1/2), 0)

  Its total-variation distance from Poisson(lam), computed over z: 1.2e-4 at 16 e-, 8e-5 at 20, 2e-5 at 50,
  under 1e-5 at 100-160; mean within 2e-5 e-, variance within 2e-4 e-^2 up to 50 e- (relative 1e-5 at 160).
  A plain rounded normal is 3e-2 away at 16 e- (its variance 1/12 e-^2 too large).  That error is far below
  what the synthesis leaves out anyway (a real sensor's heavy tails and fixed patterns, the uncertainty of
  K): a pixel's variance, lam + (read noise / K)^2, comes out within 1e-5 of itself.  The threshold 16 keeps
  the exact loop short (above) where the approximation is already this close.

``u`` is ``stateless_uniform`` (Philox, float32 on the grid ``j * 2^-23``) moved half a step, into
``(0, 1)``: ``z`` stays finite (|z| <= 5.33) and both branches see the same ``u``.  The same seed draws
the same counts on the same machine; the two samplers draw different counts from one seed, so a run
resumed under the other sampler draws other noise from then on (``config.json`` names the one used).

:func:`resolve_shot_sampler` picks ``"op"`` (TensorFlow's op) on a machine without GPU, where the
project's benchmarks and resume tests were measured with it, and ``"device"`` when TensorFlow sees a GPU.
"""
from __future__ import annotations

import numpy as np

from sid_ft._tf import tf1

__all__ = ["INVERSION_BELOW", "SHOT_SAMPLERS", "device_poisson", "resolve_shot_sampler", "shot_uniform"]

SHOT_SAMPLERS = ("auto", "op", "device")
"""``"op"``: ``tf.random.stateless_poisson`` (CPU kernel only); ``"device"``: :func:`device_poisson`;
``"auto"``: ``"device"`` when TensorFlow sees a GPU, else ``"op"``."""

INVERSION_BELOW = 16.0
"""Electrons: below, exact inversion of the CDF; from here on, the Cornish-Fisher quantile (module docstring)."""

_MAX_ROUNDS = 200
"""A bound on the inversion's rounds that is never reached: F passes every u <= 1 - 2^-24 by k = 41 at 16 e-."""

_HALF_STEP = np.float32(2.0 ** -24)
"""Half the spacing of float32 ``stateless_uniform`` values: moves them from [0, 1) into (0, 1)."""


def resolve_shot_sampler(sampler: str = "auto") -> str:
    """``"op"`` or ``"device"`` for ``sampler`` in :data:`SHOT_SAMPLERS`; ``"auto"`` asks TensorFlow for a GPU
    (physical devices: the runtime and its GPU memory are left alone)."""
    if sampler not in SHOT_SAMPLERS:
        raise ValueError(f"shot_sampler {sampler!r}: expected one of {', '.join(SHOT_SAMPLERS)}")
    if sampler != "auto":
        return sampler
    return "device" if tf1().config.list_physical_devices("GPU") else "op"


def shot_uniform(shape, seed):
    """Uniform draws in (0, 1), float32 of ``shape``, on the grid ``(j + 1/2) * 2^-23``; ``seed`` (2,) int."""
    tf = tf1()
    return tf.random.stateless_uniform(shape, seed, dtype=tf.float32, alg="philox") + _HALF_STEP


def _inverse_cdf(lam, u):
    """Exact Poisson(``lam``) quantiles of ``u``: ``min{k : F(k) > u}``, float32 like ``lam``.

    ``lam`` float32 >= 0 (small: the loop runs to the largest count drawn); ``u`` float32 in (0, 1).
    """
    tf = tf1()
    lam64, u64 = tf.cast(lam, tf.float64), tf.cast(u, tf.float64)
    p0 = tf.exp(-lam64)

    def not_done(k, count, p, cdf):
        return tf.reduce_any(cdf <= u64)

    def next_k(k, count, p, cdf):
        count = count + tf.cast(cdf <= u64, tf.float32)
        k = k + 1.0
        p = p * lam64 / k
        return k, count, p, cdf + p

    start = (tf.constant(0.0, tf.float64), tf.zeros_like(lam, dtype=tf.float32), p0, p0)
    _, count, _, _ = tf.while_loop(not_done, next_k, start, back_prop=False, maximum_iterations=_MAX_ROUNDS,
                                   name="poisson_inversion")
    return count


def _cornish_fisher(lam, u):
    """Approximate Poisson(``lam``) quantiles of ``u`` for ``lam >= INVERSION_BELOW`` (smaller ``lam`` is
    raised to it), float32 integers >= 0 (module docstring)."""
    tf = tf1()
    lam = tf.maximum(lam, np.float32(INVERSION_BELOW))
    z = tf.math.ndtri(u)
    z2 = z * z
    var = lam - np.float32(1.0 / 12.0)
    s = tf.sqrt(var)
    g1 = lam / (var * s)
    g2 = (lam + np.float32(1.0 / 120.0)) / (var * var)
    w = z + (z2 - 1.0) * g1 / 6.0 + z * (z2 - 3.0) * g2 / 24.0 - z * (2.0 * z2 - 5.0) * g1 * g1 / 36.0
    return tf.maximum(tf.floor(lam + s * w + 0.5), 0.0)


def device_poisson(lam, seed):
    """Poisson(``lam``) counts, float32 of ``lam``'s shape, with ops that have GPU kernels (module docstring).

    ``lam`` float32 >= 0, any shape (e.g. electrons, (N, p, p, C)); ``seed`` (2,) int64, a stateless seed.
    """
    tf = tf1()
    with tf.name_scope("device_poisson"):
        u = shot_uniform(tf.shape(lam), seed)
        small = lam < np.float32(INVERSION_BELOW)
        exact = _inverse_cdf(tf.where(small, lam, tf.zeros_like(lam)), u)
        return tf.where(small, exact, _cornish_fisher(lam, u))
