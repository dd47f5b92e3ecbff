"""What N dark frames say about a sensor's noise, each number with its standard error.

Model of dark frame ``n`` (DN, black included), per pixel (y, x) at 2x2 CFA position p:

    dark_n[y, x] = black[p] + fixed_pattern[y, x] + row_n[y] + column_n[x] + read_n[y, x]

``fixed_pattern`` is what every dark frame shares beyond the black level: the
per-pixel offsets (DSNU, hot pixels), fixed row/column patterns and dark
shading / amplifier glow (PMN's "dark shading").  ``row_n`` / ``column_n`` are
one Gaussian offset per sensor row / column and frame (banding); ``read_n`` the
per-pixel read noise (heavy-tailed on many sensors).  Method (a two-way analysis
of variance per frame):

1. ``mean_dark`` = the per-pixel mean of the frames.  ``black[p]`` = the median of
   ``mean_dark`` over position p (a median, so the glow in a corner and hot pixels
   do not pull it); ``fixed_pattern = mean_dark - black``: it still holds the
   temporal noise averaged over N frames, ``sqrt((read^2 + row^2 + column^2) / N)``
   per pixel (``fixed_pattern_stderr``).
2. Per frame, ``r = dark_n - mean_dark`` minus its mean ``g``: row means ``R``,
   column means ``C`` and the residual ``e = r - R - C - g``.  Expectations over N
   frames (the frame-mean removal costs one degree of freedom, the row/column
   centring one each):
   ``E sum e^2 = (N-1)(H-1)(W-1) read^2``, ``E sum R^2 = (N-1)(H-1)(row^2 + read^2/W)``,
   ``E sum C^2 = (N-1)(W-1)(column^2 + read^2/H)``.
3. ``read^2`` then has the rounding variance 1/12 DN^2 removed (Sheppard's
   correction; synthesis that rounds to integer DN puts it back).
4. Tail shape: a Tukey-lambda shape ``lam`` fitted to ``e`` by maximum
   probability-plot correlation (Filliben's PPCC: sort the sample, correlate it
   with the Tukey-lambda quantiles of the uniform order-statistic medians, maximise
   over ``lam``).  Chosen over a Student-t fit because (a) it is ELD's published
   model of read noise, (b) one parameter covers lighter and heavier tails than a
   Gaussian (``lam`` ~ 0.14 is Gaussian-like, 0 logistic, smaller is heavier)
   where Student-t cannot be lighter, (c) its quantile function is closed form, so
   synthesis draws it from one uniform variate (stateless random ops in a graph
   need no gamma sampler), and (d) the PPCC needs no density, which Tukey lambda
   lacks in closed form.  Quantised samples get a uniform +-0.5 DN jitter first.
   With N frames ``e`` carries 1/N of the other frames' noise, which pulls the
   shape slightly towards Gaussian (12 % of the variance at N = 8).

Standard errors come from the spread across frames: each statistic is computed
per frame and its error is ``std / sqrt(N)`` (for the tail shape, fits on each
frame's residuals).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sid_ft.data.raw_frames import RawFrame

ROUNDING_VARIANCE = 1.0 / 12.0
"""Variance of rounding to integer DN, DN^2."""

TAIL_SAMPLES = 20000
"""Residuals per frame that the tail-shape fit uses (a random subset, fixed seed)."""


@dataclass
class DarkNoise:
    """Noise measured from dark frames; every ``*_se`` is the standard error of the field it follows.

    Shapes: ``(2, 2)`` arrays are per CFA position ((TL, TR), (BL, BR)); ``(2,)`` per
    row (column) parity, even then odd.  Units: DN unless said otherwise.
    """

    n_frames: int
    black_level: np.ndarray
    black_level_se: np.ndarray
    read_noise: float
    read_noise_se: float
    read_noise_per_position: np.ndarray
    read_noise_per_position_se: np.ndarray
    read_noise_shape: float
    read_noise_shape_se: float
    read_noise_excess_kurtosis: float
    row_noise: float
    row_noise_se: float
    row_noise_per_phase: np.ndarray
    column_noise: float
    column_noise_se: float
    column_noise_per_phase: np.ndarray
    fixed_pattern: np.ndarray
    fixed_pattern_std: float
    fixed_pattern_stderr: float
    dark_shading_range: float
    mean_dark: np.ndarray

    @property
    def temporal_variance(self) -> float:
        """read^2 + row^2 + column^2 (+ rounding): the variance a flat-signal frame shows beyond shot noise, DN^2."""
        return self.read_noise ** 2 + ROUNDING_VARIANCE + self.row_noise ** 2 + self.column_noise ** 2


@dataclass
class _Sums:
    """Per-frame sums of squares of the two-way decomposition (arrays over frames)."""

    e2_pos: np.ndarray    # (N, 2, 2) sum of e^2 per position
    r2_phase: np.ndarray  # (N, 2) sum of R^2 per row parity
    c2_phase: np.ndarray  # (N, 2) sum of C^2 per column parity
    excess_kurtosis: np.ndarray  # (N,)
    samples: list          # per frame, (TAIL_SAMPLES,) residuals


def _decompose_frame(frame: np.ndarray, mean_dark: np.ndarray, rng: np.random.Generator):
    """(e^2 per position (2, 2), R^2 per row parity (2,), C^2 per column parity (2,), kurtosis, sample)."""
    r = (frame - mean_dark).astype(np.float32)   # float32 residuals, float64 sums: 4 bytes a pixel at a time
    r -= np.float32(r.mean(dtype=np.float64))
    rows = r.mean(axis=1, dtype=np.float64)
    cols = r.mean(axis=0, dtype=np.float64)
    e = r - rows[:, None].astype(np.float32) - cols[None, :].astype(np.float32)
    del r
    e2 = e * e
    e2_pos = e2.reshape(e.shape[0] // 2, 2, e.shape[1] // 2, 2).sum(axis=(0, 2), dtype=np.float64)
    r2 = (rows * rows).reshape(-1, 2).sum(axis=0)
    c2 = (cols * cols).reshape(-1, 2).sum(axis=0)
    var = float(e2.mean(dtype=np.float64))
    kurt = float(np.mean(e2 * e2, dtype=np.float64) / (var * var) - 3.0) if var > 0 else 0.0
    flat = e.ravel()
    sample = flat[rng.choice(flat.size, size=min(flat.size, TAIL_SAMPLES), replace=False)]
    return e2_pos, r2, c2, kurt, sample


def _frame_sums(frames: list[RawFrame], mean_dark: np.ndarray) -> _Sums:
    """The decomposition of every frame (module docstring, step 2)."""
    rng = np.random.default_rng(0)
    parts = [_decompose_frame(f.mosaic, mean_dark, rng) for f in frames]
    return _Sums(e2_pos=np.array([p[0] for p in parts]), r2_phase=np.array([p[1] for p in parts]),
                 c2_phase=np.array([p[2] for p in parts]), excess_kurtosis=np.array([p[3] for p in parts]),
                 samples=[p[4] for p in parts])


def _mean_se(per_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean over frames, its standard error std / sqrt(N)) along axis 0."""
    n = per_frame.shape[0]
    return per_frame.mean(axis=0), per_frame.std(axis=0, ddof=1) / math.sqrt(n)


def _std_of_var(var: np.ndarray, var_se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sqrt(max(var, 0)), its standard error var_se / (2 std)) elementwise."""
    std = np.sqrt(np.maximum(var, 0.0))
    return std, np.where(std > 0, var_se / (2.0 * np.maximum(std, 1e-12)), np.sqrt(np.abs(var_se)))


def _read_variances(sums: _Sums, h: int, w: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(read^2 per position (2, 2), its se, pooled read^2, its se), rounding included, DN^2."""
    n = sums.e2_pos.shape[0]
    dof_frame = (h - 1) * (w - 1) * (n - 1) / n       # per frame: its share of (N-1)(H-1)(W-1)
    pooled_frames = sums.e2_pos.sum(axis=(1, 2)) / dof_frame
    pooled, pooled_se = _mean_se(pooled_frames)
    # per position: each position's share of the pooled variance (exact when the positions' variances agree,
    # off by O(1/W + 1/H) otherwise)
    share = sums.e2_pos / sums.e2_pos.sum(axis=(1, 2), keepdims=True) * 4.0
    per_pos, per_pos_se = _mean_se(share * pooled_frames[:, None, None])
    return per_pos, per_pos_se, float(pooled), float(pooled_se)


def _line_variances(sq_phase: np.ndarray, length: int, other: int, read_var_phase: np.ndarray):
    """(std per parity (2,), pooled std, pooled se) of row (or column) offsets from per-frame sums of squares.

    ``length`` lines (rows) of ``other`` pixels each; ``read_var_phase`` the pixel
    variance on each parity's lines, which leaks into a line mean as ``/ other``.
    """
    n = sq_phase.shape[0]
    dof_frame = (length - 1) * (n - 1) / n / 2.0
    per_phase_frames = sq_phase / dof_frame - read_var_phase[None, :] / other
    per_phase = per_phase_frames.mean(axis=0)
    pooled_var, pooled_se = _mean_se(per_phase_frames.mean(axis=1))
    pooled, se = _std_of_var(np.asarray(pooled_var), np.asarray(pooled_se))
    return np.sqrt(np.maximum(per_phase, 0.0)), float(pooled), float(se)


def tukey_lambda_quantile(u: np.ndarray, lam: float) -> np.ndarray:
    """Standard Tukey-lambda quantile function ``(u**lam - (1-u)**lam) / lam`` (the logistic at lam = 0)."""
    if abs(lam) < 1e-6:
        return np.log(u) - np.log1p(-u)
    return (u ** lam - (1.0 - u) ** lam) / lam


def tukey_lambda_std(lam: float) -> float:
    """Standard deviation of the standard Tukey-lambda distribution (finite for lam > -0.5)."""
    if abs(lam) < 1e-6:
        return math.pi / math.sqrt(3.0)
    var = 2.0 / lam ** 2 * (1.0 / (1.0 + 2.0 * lam) - math.exp(2.0 * math.lgamma(lam + 1.0)
                                                                 - math.lgamma(2.0 * lam + 2.0)))
    return math.sqrt(var)


def fit_tukey_lambda(sample: np.ndarray, integer: bool = True, seed: int = 0) -> float:
    """Tukey-lambda shape of ``sample`` by maximum probability-plot correlation, searched in [-0.45, 0.5]."""
    from scipy import optimize

    x = np.asarray(sample, dtype=np.float64)
    if integer:
        x = x + np.random.default_rng(seed).uniform(-0.5, 0.5, x.size)
    x = np.sort(x)
    n = x.size
    # Filliben's uniform order-statistic medians
    u = (np.arange(1, n + 1) - 0.3175) / (n + 0.365)
    u[-1] = 0.5 ** (1.0 / n)
    u[0] = 1.0 - u[-1]

    def negative_correlation(lam: float) -> float:
        return -float(np.corrcoef(tukey_lambda_quantile(u, lam), x)[0, 1])

    found = optimize.minimize_scalar(negative_correlation, bounds=(-0.45, 0.5), method="bounded",
                                     options={"xatol": 1e-4})
    return float(found.x)


def _tail_shape(samples: list) -> tuple[float, float]:
    """(Tukey-lambda shape of all frames' residuals pooled, its standard error from per-frame fits)."""
    pooled = fit_tukey_lambda(np.concatenate(samples))
    per_frame = np.array([fit_tukey_lambda(s, seed=i + 1) for i, s in enumerate(samples)])
    return pooled, float(per_frame.std(ddof=1) / math.sqrt(len(samples)))


def _black_level(frames: list[RawFrame], mean_dark: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median of the mean dark per position (2, 2), its standard error), DN.

    The error adds in quadrature the frames' common offset (std of the per-frame means
    of the position / sqrt(N)) and the median's sampling error (1.2533 x the robust
    spread of the position's pixels / sqrt(their count)).
    """
    black = np.zeros((2, 2))
    se = np.zeros((2, 2))
    for r in range(2):
        for c in range(2):
            plane = mean_dark[r::2, c::2]
            black[r, c] = np.median(plane)
            spread = 1.4826 * float(np.median(np.abs(plane - black[r, c])))
            frame_means = np.array([f.mosaic[r::2, c::2].mean() for f in frames])
            se[r, c] = math.sqrt(frame_means.var(ddof=1) / len(frames)
                                 + (1.2533 * spread) ** 2 / plane.size)
    return black, se


def _dark_shading_range(fixed_pattern: np.ndarray, block: int = 32) -> float:
    """Max minus min of the fixed pattern's ``block`` x ``block`` means (0 when the frame holds < 4 blocks), DN."""
    h, w = fixed_pattern.shape
    hb, wb = h // block, w // block
    if hb * wb < 4:
        return 0.0
    blocks = fixed_pattern[:hb * block, :wb * block].reshape(hb, block, wb, block).mean(axis=(1, 3))
    return float(blocks.max() - blocks.min())


def analyse_dark_frames(frames: list[RawFrame]) -> DarkNoise:
    """Measure black level, read noise (with tail shape), row and column noise and the fixed pattern.

    ``frames``: 2+ dark frames of one camera, size and ISO (see
    :func:`sid_ft.data.dark_frames.load_calibration_darks`).  Method: the module docstring.
    """
    n = len(frames)
    h, w = frames[0].mosaic.shape
    mean_dark = np.mean([f.mosaic for f in frames], axis=0, dtype=np.float64)
    black, black_se = _black_level(frames, mean_dark)
    sums = _frame_sums(frames, mean_dark)
    read_pos, read_pos_se, read_var, read_var_se = _read_variances(sums, h, w)
    read_pos_no_q, read_pos_se = _std_of_var(read_pos - ROUNDING_VARIANCE, read_pos_se)
    read, read_se = _std_of_var(np.asarray(read_var - ROUNDING_VARIANCE), np.asarray(read_var_se))
    row_phase, row, row_se = _line_variances(sums.r2_phase, h, w, read_pos.mean(axis=1))
    col_phase, col, col_se = _line_variances(sums.c2_phase, w, h, read_pos.mean(axis=0))
    shape, shape_se = _tail_shape(sums.samples)
    fixed = (mean_dark - np.tile(black, (h // 2, w // 2))).astype(np.float32)
    temporal = read_var + row ** 2 + col ** 2
    return DarkNoise(
        n_frames=n, black_level=black, black_level_se=black_se,
        read_noise=float(read), read_noise_se=float(read_se),
        read_noise_per_position=read_pos_no_q, read_noise_per_position_se=read_pos_se,
        read_noise_shape=shape, read_noise_shape_se=shape_se,
        read_noise_excess_kurtosis=float(sums.excess_kurtosis.mean()),
        row_noise=row, row_noise_se=row_se, row_noise_per_phase=row_phase,
        column_noise=col, column_noise_se=col_se, column_noise_per_phase=col_phase,
        fixed_pattern=fixed,
        fixed_pattern_std=float(math.sqrt(max(float(fixed.var()) - temporal / n, 0.0))),
        fixed_pattern_stderr=float(math.sqrt(temporal / n)),
        dark_shading_range=_dark_shading_range(fixed), mean_dark=mean_dark)
