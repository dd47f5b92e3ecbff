"""Synthetic short exposures in the graph: shot noise and the dark part on a clean crop, with stateless random ops.

For a clean crop ``c`` (packed, normalised as ``pack_raw`` does, ``(N, p, p, C)``) at ratio ``r``,
per packed channel k with full scale ``F_k = white - black_k`` (DN):

    s     = c * F / r                                    short-exposure signal, DN above black
    x     = K * Poisson(s / K)                           shot noise, gain K
          + dark                                         the dark crop from the loader, DN above black:
                                                         a real dark frame ('sampled'), or the mean dark
                                                         (black per position + fixed pattern) ('parametric')
          [+ read_scale_k * Q_lam(u) + row + column]     'parametric' only: Tukey-lambda read noise by the
                                                         inverse CDF of a uniform, row / column offsets
    short = max(clip(round(x), -black, white - black), 0) / F     pack_raw's normalisation
    input = min(short * r, 1)                            SID's amplification

The random draws use ``tf.random.stateless_*`` seeded from the fed ``noise_seed`` = (``--seed``,
step) (:class:`sid_ft.data.synthetic.SyntheticSampler`), one sub-seed per kind of draw, so the noise
of step i is the same in a run that was stopped and resumed.  ``StatelessRandomPoisson`` has only
a CPU kernel in TensorFlow, so the shot noise's sampler depends on the machine (``shot_sampler``,
:mod:`sid_ft.training.poisson`): that op without a GPU, and with one a sampler whose ops all run on
the device, seeded from the same sub-seed.

:func:`add_synthesis` puts the placeholders into a training graph's inputs and sets
``inputs['network_input']``: per patch of the batch, the synthetic input where ``synthetic`` is
true, else the fed (real, amplified) ``image``.  :func:`synthesis_feed` feeds them for a batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import Patch
from sid_ft.data.synthetic import SyntheticNoise
from sid_ft.training.poisson import device_poisson, resolve_shot_sampler

__all__ = ["add_synthesis", "synthesis_feed", "synthesize_short", "tukey_lambda_quantile"]

_SHOT, _READ, _ROW, _COLUMN = range(4)
"""Sub-seeds of the kinds of draws."""


def _seed(noise_seed, kind: int):
    """The stateless seed (2,) int64 of one kind of draw from the step's (seed, step)."""
    tf = tf1()
    return tf.stack([noise_seed[0], noise_seed[1] * 8 + kind])


def tukey_lambda_quantile(u, lam: float):
    """Standard Tukey-lambda quantile ``(u**lam - (1-u)**lam) / lam`` of a tensor ``u`` in (0, 1); the
    logistic ``log(u / (1-u))`` at lam = 0."""
    tf = tf1()
    if abs(lam) < 1e-6:
        return tf.math.log(u) - tf.math.log1p(-u)
    return (tf.pow(u, lam) - tf.pow(1.0 - u, lam)) / lam


def _by_parity(values, parity: Sequence[int]):
    """``values`` (..., 2) per parity gathered per channel: (..., C) with ``values[..., parity[k]]``."""
    return tf1().gather(values, list(parity), axis=-1)


def _parametric_noise(shape, noise: SyntheticNoise, noise_seed):
    """Read noise (Tukey lambda, per channel) plus row and column offsets (per mosaic parity), DN, ``shape``."""
    tf = tf1()
    tiny = np.float32(2.0 ** -24)
    u = tf.random.stateless_uniform(shape, _seed(noise_seed, _READ), minval=tiny, maxval=1.0 - tiny)
    read = tukey_lambda_quantile(u, noise.read_shape) * np.asarray(noise.read_scale, np.float32)
    n, h, w = shape[0], shape[1], shape[2]
    rows = tf.random.stateless_normal(tf.stack([n, h, 1, 2]), _seed(noise_seed, _ROW)) \
        * np.asarray(noise.row_noise, np.float32)
    columns = tf.random.stateless_normal(tf.stack([n, 1, w, 2]), _seed(noise_seed, _COLUMN)) \
        * np.asarray(noise.column_noise, np.float32)
    return read + _by_parity(rows, noise.row_parity) + _by_parity(columns, noise.column_parity)


def _shot_electrons(electrons, seed, shot_sampler: str):
    """Poisson(``electrons``) counts, float32 of its shape, by ``shot_sampler`` ('auto', 'op' or 'device')."""
    if resolve_shot_sampler(shot_sampler) == "device":
        return device_poisson(electrons, seed)
    tf = tf1()
    return tf.random.stateless_poisson(tf.shape(electrons), seed, lam=electrons, dtype=tf.float32)


def synthesize_short(clean, dark, ratio, noise_seed, noise: SyntheticNoise, shot_sampler: str = "auto"):
    """The noisy short exposure of clean crops, normalised as ``pack_raw`` does, not amplified (module docstring).

    ``clean`` (N, p, p, C) float32 in [0, 1]; ``dark`` (N, p, p, C) float32 DN above black; ``ratio`` (N,)
    float32; ``noise_seed`` (2,) int64.  ``shot_sampler``: 'op' (``tf.random.stateless_poisson``),
    'device' (:func:`sid_ft.training.poisson.device_poisson`) or 'auto' (the device's when TensorFlow sees
    a GPU).  Returns (N, p, p, C) float32.
    """
    tf = tf1()
    full_scale = noise.full_scale
    black = np.asarray(noise.black, np.float32)
    electrons = tf.maximum(clean, 0.0) * (full_scale / np.float32(noise.gain)) / ratio[:, None, None, None]
    shape = tf.shape(clean)
    shot = _shot_electrons(electrons, _seed(noise_seed, _SHOT), shot_sampler)
    x = shot * np.float32(noise.gain) + dark
    if noise.mode == "parametric":
        x = x + _parametric_noise(shape, noise, noise_seed)
    x = tf.clip_by_value(tf.round(x), -black, np.float32(noise.white) - black)
    return tf.maximum(x, 0.0) / full_scale


def add_synthesis(inputs: dict, noise: SyntheticNoise, shot_sampler: str = "auto") -> None:
    """Add the synthetic patches' placeholders to ``inputs`` and set ``inputs['synthetic_short']`` (the noisy
    short exposures, normalised) and ``inputs['network_input']`` (amplified; real patches' ``image`` kept).
    ``shot_sampler``: as :func:`synthesize_short`."""
    tf = tf1()
    channels = inputs["image"].shape[-1]
    with tf.name_scope("synthesis"):
        placeholders = {
            "synthetic": tf.placeholder(tf.bool, [None], name="synthetic"),
            "clean": tf.placeholder(tf.float32, [None, None, None, channels], name="clean"),
            "dark": tf.placeholder(tf.float32, [None, None, None, channels], name="dark"),
            "synthetic_ratio": tf.placeholder(tf.float32, [None], name="ratio"),
            "noise_seed": tf.placeholder(tf.int64, [2], name="noise_seed"),
        }
        short = synthesize_short(placeholders["clean"], placeholders["dark"], placeholders["synthetic_ratio"],
                                 placeholders["noise_seed"], noise, shot_sampler)
        amplified = tf.minimum(short * placeholders["synthetic_ratio"][:, None, None, None], 1.0)
        network_input = tf.where(placeholders["synthetic"], amplified, inputs["image"])
    inputs.update(placeholders, synthetic_short=short, network_input=network_input)


def synthesis_feed(inputs: dict, batch: Sequence[Patch]) -> dict:
    """The feed of the synthesis placeholders for ``batch``: zeros for real patches (their ``image`` is used);
    the noise seed of the first synthetic patch (all of a step share it)."""
    shape = batch[0].packed[0].shape
    zeros = np.zeros(shape, np.float32)
    synthetic = [p.synthetic is not None for p in batch]
    seeds = [p.synthetic.noise_seed for p in batch if p.synthetic is not None]
    return {
        inputs["synthetic"]: np.asarray(synthetic, bool),
        inputs["clean"]: np.stack([p.packed[0] if s else zeros for p, s in zip(batch, synthetic)]),
        inputs["dark"]: np.stack([p.synthetic.dark if s else zeros for p, s in zip(batch, synthetic)]),
        inputs["synthetic_ratio"]: np.asarray([p.ratio if s else 1.0 for p, s in zip(batch, synthetic)], np.float32),
        inputs["noise_seed"]: np.asarray(seeds[0] if seeds else (0, 0), np.int64),
    }
