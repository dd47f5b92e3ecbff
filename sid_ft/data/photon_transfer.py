"""The system gain K (DN per electron) by photon transfer: noise variance grows as K x signal.

Shot noise is Poisson in electrons, so in DN a pixel with signal ``s`` (DN above
black) has variance ``K s + c`` (``c``: read, row and column noise, rounding, what
does not grow with light).  Photon transfer bins pixels by signal, measures the
variance in each bin and fits the line ``v = K s + c`` (weighted least squares,
weight ``n / (2 v^2)``, the inverse variance of a sample variance); ``K`` is the
slope.  The intercept is fitted, not taken from the dark frames, so a fixed
pattern or a black-level error that adds the same variance at every level does
not bias ``K``.  Two sources of signal, each a :class:`GainEstimate`:

* **Short/long pairs** (:func:`pair_curves`): the long exposure, scaled by the
  brightness ratio ``a`` (fitted with an offset ``b``: the least-squares line
  ``short = a long + b`` over usable pixels, so an inexact shutter, an ND filter or
  a black level a little off does not matter), predicts each pixel's short
  signal; ``short - a long - b`` keeps the short's noise plus the long's, scaled:
  ``var = K s (1 + a) + c_short + a^2 c_long``, so ``K = slope / (1 + a)``.
  Pixel response non-uniformity cancels (both exposures see it).  In each signal
  bin the quarter of pixels with the most local contrast in the long exposure
  (edges, where a slight misalignment adds variance) is left out.  Left out too: pixels
  where the long exposure is within 5 % of its white level (clipped: its scaled
  value predicts nothing), and bins whose level is within 4 standard deviations
  of 0 or of the short's white level (clipping would cut their variance).
* **Flat fields** (:func:`flat_field_curves`): frames of a uniform light at
  several levels, 2+ per level (grouped by mean signal within 10 %).  For two
  frames at a level, ``d = s1 - k s2`` (``k`` matches their means, so flicker
  does not count) has variance ``(1 + k^2)(K m + c)``, free of the fixed pattern
  and of the illumination's unevenness.  Levels with more than 0.1 % of pixels
  within 2 % of white are left out as clipped.  With one level only, ``c`` is
  taken from the dark frames.

Standard errors: the fit's (inflated by sqrt(reduced chi^2) when the points
scatter more than their errors say), and for 2+ pairs also the spread of the
per-pair values, whichever is larger.  Everything is per CFA position as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sid_ft.data.raw_frames import RawFrame
from sid_ft.errors import SidFtError

N_BINS = 32
"""Signal bins per photon-transfer curve (equal pixel counts)."""

MIN_BIN_PIXELS = 200
"""Fewest pixels per bin; fewer bins when there are fewer pixels."""


@dataclass
class Curve:
    """Photon-transfer points: mean signal (DN above black), variance (DN^2), pixel count per point."""

    signal: np.ndarray
    variance: np.ndarray
    count: np.ndarray

    @staticmethod
    def concat(curves: list["Curve"]) -> "Curve":
        return Curve(*(np.concatenate([getattr(c, k) for c in curves]) for k in ("signal", "variance", "count")))


@dataclass
class GainEstimate:
    """System gain K, DN per electron, with its standard error and where it came from.

    ``source`` 'pairs' | 'flat-fields' | 'given' | 'guessed'; ``stderr`` None when not
    measured.  ``per_position`` (2, 2) K per CFA position (None unless measured);
    ``per_input`` K of each pair (pairs) or nothing; ``intercept`` the fitted
    signal-independent variance, DN^2; ``details`` what the JSON records about it
    (files, ratios, points).
    """

    gain: float
    stderr: float | None
    source: str
    per_position: np.ndarray | None = None
    per_input: list = field(default_factory=list)
    intercept: float | None = None
    details: dict = field(default_factory=dict)


def fit_line(curve: Curve, intercept: float | None = None) -> tuple[float, float, float]:
    """(slope, its standard error, intercept) of ``variance = slope * signal + intercept`` by weighted LS.

    With ``intercept`` given only the slope is fitted.  Weights ``count / (2 variance^2)``;
    the slope's error is inflated by sqrt(reduced chi^2) when that exceeds 1.
    """
    s, v, n = curve.signal, curve.variance, curve.count
    wgt = n / (2.0 * np.maximum(v, 1e-12) ** 2)
    if intercept is not None:
        slope = float(np.sum(wgt * s * (v - intercept)) / np.sum(wgt * s * s))
        se = math.sqrt(1.0 / float(np.sum(wgt * s * s)))
        resid, dof = v - intercept - slope * s, len(s) - 1
    else:
        design = np.stack([s, np.ones_like(s)], axis=1)
        normal = design.T @ (design * wgt[:, None])
        coef = np.linalg.solve(normal, design.T @ (wgt * v))
        slope, intercept = float(coef[0]), float(coef[1])
        se = math.sqrt(float(np.linalg.inv(normal)[0, 0]))
        resid, dof = v - design @ coef, len(s) - 2
    if dof > 0:
        chi2 = float(np.sum(wgt * resid ** 2)) / dof
        se *= math.sqrt(max(chi2, 1.0))
    return slope, se, float(intercept)


def _clipped_variance(x: np.ndarray) -> float:
    """Sample variance after one pass of 5-sigma clipping (hot pixels, misaligned edges)."""
    mean, sd = x.mean(), x.std()
    keep = np.abs(x - mean) <= 5.0 * sd if sd > 0 else np.ones(x.shape, bool)
    return float(x[keep].var(ddof=1))


def binned_curve(predicted: np.ndarray, resid: np.ndarray, texture: np.ndarray | None = None,
                 n_bins: int = N_BINS, keep: float = 0.75) -> Curve:
    """Bin pixels by ``predicted`` signal (equal counts) and measure the variance of ``resid`` in each bin.

    With ``texture`` (a local-contrast measure per pixel), each bin keeps its ``keep``
    least-textured pixels: edges that the pair's exposures do not line up on exactly
    would add variance that is not noise.
    """
    n_bins = max(2, min(n_bins, predicted.size // MIN_BIN_PIXELS))
    if predicted.size < 2 * MIN_BIN_PIXELS:
        return Curve(np.zeros(0), np.zeros(0), np.zeros(0))
    groups = np.array_split(np.argsort(predicted, kind="stable"), n_bins)
    if texture is not None:
        groups = [g[texture[g] <= np.quantile(texture[g], keep)] for g in groups]
    return Curve(signal=np.array([predicted[g].mean() for g in groups]),
                 variance=np.array([_clipped_variance(resid[g]) for g in groups]),
                 count=np.array([g.size for g in groups], dtype=np.float64))


def local_contrast(signal: np.ndarray) -> np.ndarray:
    """(H, W) largest absolute difference to the 4 same-colour neighbours (2 pixels away), edges replicated, DN."""
    padded = np.pad(signal, 2, mode="edge")
    h, w = signal.shape
    centre = padded[2:h + 2, 2:w + 2]
    out = np.zeros(signal.shape, dtype=np.float32)
    for dy, dx in ((0, 2), (4, 2), (2, 0), (2, 4)):
        np.maximum(out, np.abs(padded[dy:dy + h, dx:dx + w] - centre), out=out)
    return out


def _unclipped_bins(curve: Curve, black: float, white: float) -> Curve:
    """The bins whose level is 4 standard deviations clear of 0 DN and of the white level."""
    level = black + curve.signal
    sd = np.sqrt(np.maximum(curve.variance, 0.0))
    keep = (level - 4.0 * sd > 0) & (level + 4.0 * sd < white) & (curve.signal > 0)
    return Curve(curve.signal[keep], curve.variance[keep], curve.count[keep])


def _positions(shape: tuple[int, int]) -> np.ndarray:
    """(H, W) index of each pixel's 2x2 CFA position, 0..3 in the order TL, TR, BL, BR."""
    h, w = shape
    return np.tile(np.array([[0, 1], [2, 3]], dtype=np.uint8), (h // 2, w // 2))


def _brightness_fit(long_signal: np.ndarray, short_signal: np.ndarray) -> tuple[float, float]:
    """(a, b) of the least-squares line ``short = a long + b``: ``a`` the brightness ratio short / long,
    ``b`` what black-level and fixed-pattern offsets leave in the short's mean, DN."""
    x = long_signal.astype(np.float64)
    y = short_signal.astype(np.float64)
    xm, ym = x.mean(), y.mean()
    a = float(np.sum((x - xm) * (y - ym)) / max(np.sum((x - xm) ** 2), 1e-12))
    return a, float(ym - a * xm)


@dataclass
class PairCurves:
    """One pair's photon-transfer points: all pixels, per CFA position (TL, TR, BL, BR), and its ratio."""

    pooled: Curve
    per_position: list
    brightness_ratio: float


def pair_curves(short: RawFrame, long: RawFrame, short_black: np.ndarray) -> PairCurves:
    """Photon-transfer points of one aligned pair (module docstring).

    ``short_black``: (H, W) or (2, 2) black of the short exposure, DN (the dark frames'
    mean dark when they match the short files, else the metadata black).
    """
    h, w = short.mosaic.shape
    black_map = short_black if short_black.shape == (h, w) else np.tile(short_black, (h // 2, w // 2))
    s = short.mosaic.astype(np.float32) - black_map.astype(np.float32)
    lg = long.signal()
    usable = (long.mosaic < 0.95 * long.meta.white_level) & (lg > 0) & (short.mosaic < short.meta.white_level)
    a, b = _brightness_fit(lg[usable], s[usable])
    predicted, resid = (a * lg + b)[usable], (s - a * lg - b)[usable]
    black, white = float(np.mean(short.meta.black_tile())), float(short.meta.white_level)
    pos = _positions((h, w))[usable]
    texture = local_contrast(lg)[usable]
    per_position = [_unclipped_bins(binned_curve(predicted[pos == p], resid[pos == p], texture[pos == p]),
                                    black, white) for p in range(4)]
    pooled = _unclipped_bins(binned_curve(predicted, resid, texture), black, white)
    # var(short - a long) = K s (1 + a) + ...: undo the long's share so that slopes read K
    for curve in [pooled, *per_position]:
        curve.variance = curve.variance / (1.0 + a)
    return PairCurves(pooled=pooled, per_position=per_position, brightness_ratio=1.0 / a if a > 0 else math.inf)


def _slope_or_none(curve: Curve) -> tuple[float, float] | None:
    """(slope, se) of a curve with 3+ points, else None."""
    if curve.signal.size < 3:
        return None
    slope, se, _ = fit_line(curve)
    return slope, se


def _combine(values: list[tuple[float, float]]) -> tuple[float, float]:
    """Inverse-variance mean of (value, se) pairs and its se (the larger of the fit's and the spread's)."""
    v = np.array([x for x, _ in values])
    se = np.array([max(e, 1e-12) for _, e in values])
    wgt = 1.0 / se ** 2
    mean = float(np.sum(wgt * v) / np.sum(wgt))
    fit_se = float(1.0 / math.sqrt(np.sum(wgt)))
    spread_se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return mean, max(fit_se, spread_se)


def gain_from_pair_curves(curves: list[PairCurves], details: dict) -> GainEstimate | None:
    """K from the photon-transfer points of 1+ pairs (per pair, then combined), or None when no pair has 3+ bins."""
    fits = [_slope_or_none(c.pooled) for c in curves]
    good = [f for f in fits if f is not None]
    if not good:
        return None
    gain, se = _combine(good)
    per_position = np.full((2, 2), np.nan)
    for p in range(4):
        pos_fits = [f for f in (_slope_or_none(c.per_position[p]) for c in curves) if f is not None]
        if pos_fits:
            per_position[p // 2, p % 2] = _combine(pos_fits)[0]
    _, _, intercept = fit_line(Curve.concat([c.pooled for c in curves]))
    return GainEstimate(gain=gain, stderr=se, source="pairs", per_position=per_position,
                        per_input=[f[0] if f is not None else None for f in fits], intercept=intercept,
                        details=details)


def group_flat_levels(frames: list[RawFrame], tolerance: float = 0.10) -> list[list[RawFrame]]:
    """Flat fields grouped by level: sorted by mean signal, a frame within ``tolerance`` of its group's
    first frame joins that group."""
    by_level = sorted(frames, key=lambda f: float(f.signal().mean()))
    groups: list[list[RawFrame]] = []
    first_level = None
    for frame in by_level:
        level = float(frame.signal().mean())
        if groups and abs(level - first_level) <= tolerance * max(abs(first_level), 1.0):
            groups[-1].append(frame)
        else:
            groups.append([frame])
            first_level = level
    return groups


def _clipped_fraction(frame: RawFrame) -> float:
    """Fraction of pixels within 2 % of the white level."""
    return float(np.mean(frame.mosaic >= 0.98 * frame.meta.white_level))


def flat_pair_point(first: RawFrame, second: RawFrame, positions: np.ndarray) -> tuple[Curve, list]:
    """One photon-transfer point (pooled) and one per CFA position from two flats at one level."""
    s1, s2 = first.signal().astype(np.float64), second.signal().astype(np.float64)
    k = float(s1.mean() / s2.mean())
    d = s1 - k * s2
    m = 0.5 * (s1 + k * s2)

    def point(mask) -> Curve:
        return Curve(signal=np.array([m[mask].mean()]), variance=np.array([d[mask].var(ddof=1) / (1.0 + k * k)]),
                     count=np.array([float(np.count_nonzero(mask))]))

    return point(np.ones(d.shape, bool)), [point(positions == p) for p in range(4)]


def flat_field_curves(groups: list[list[RawFrame]], skipped: list) -> tuple[Curve, list]:
    """(pooled points, points per position) from consecutive frame pairs of each level; clipped levels skipped."""
    pooled, per_position = [], [[] for _ in range(4)]
    for group in groups:
        clipped = [f for f in group if _clipped_fraction(f) > 1e-3]
        if clipped:
            skipped.extend(SidFtError(f.path, f"flat field is clipped ({_clipped_fraction(f):.1%} of pixels "
                                              "at the white level): its level is left out") for f in group)
            continue
        positions = _positions(group[0].mosaic.shape)
        for a, b in zip(group[0::2], group[1::2]):
            point, points = flat_pair_point(a, b, positions)
            pooled.append(point)
            for p in range(4):
                per_position[p].append(points[p])
    if not pooled:
        return Curve(np.zeros(0), np.zeros(0), np.zeros(0)), [None] * 4
    return Curve.concat(pooled), [Curve.concat(c) for c in per_position]


def gain_from_flat_curves(pooled: Curve, per_position: list, dark_variance: float | None,
                          details: dict) -> GainEstimate | None:
    """K from flat-field points: a fitted line with 2+ levels, else through the dark frames' variance."""
    levels = np.unique(np.round(pooled.signal, 3)).size
    if levels == 0 or (levels < 2 and dark_variance is None):
        return None
    intercept = None if levels >= 2 else dark_variance
    gain, se, c = fit_line(pooled, intercept)
    per_pos = np.array([fit_line(curve, intercept)[0] for curve in per_position]).reshape(2, 2)
    return GainEstimate(gain=gain, stderr=se, source="flat-fields", per_position=per_pos, intercept=c,
                        details=dict(details, levels=int(levels)))
