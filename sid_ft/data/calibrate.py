"""Calibrating a sensor's noise from what a user has: dark frames, and a few pairs or flat fields for K.

:func:`calibrate` is what ``scripts/calibrate.py`` runs: dark frames
(:mod:`sid_ft.data.dark_frames`, :mod:`sid_ft.data.dark_noise`) give the black
level, read noise and its tail, row and column noise and the fixed pattern; the
gain K comes from short/long pairs, else flat fields (:mod:`sid_ft.data.photon_transfer`),
else is given, else guessed (K = 1, ``make_pairs``' default, said so).  The result
is a :class:`sid_ft.data.noise_profile.NoiseProfile`.

:func:`estimate_from_dark_frames` is the quick estimate ``make_pairs`` uses (read
noise, row noise and black level from frames already in memory, no K).  Dark frames
are lens-capped exposures at the ISO of the short exposures to simulate.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from sid_ft.data.dark_frames import load_calibration_darks
from sid_ft.data.dark_noise import DarkNoise, analyse_dark_frames
from sid_ft.data.noise import NoiseParams
from sid_ft.data.noise_profile import NoiseProfile
from sid_ft.data.pairs import Pair, find_pairs
from sid_ft.data.photon_transfer import (GainEstimate, flat_field_curves, gain_from_flat_curves,
                                         gain_from_pair_curves, group_flat_levels, pair_curves)
from sid_ft.data.raw_frames import RawFrame, iso_text, mismatch, read_frame, read_matching_frames
from sid_ft.errors import SidFtError
from sid_ft.io.cfa import cfa_pattern
from sid_ft.io.dng import cfa_indices
from sid_ft.io.raw import list_raw_files, open_raw

@dataclass
class DarkFrameEstimate:
    """What dark frames (lens capped, at the ISO of the short exposures) tell about the sensor.

    Estimated: ``read_noise`` and ``row_noise`` (DN standard deviations, temporal
    when there are 2+ frames) and the black level.  NOT estimated: the system gain
    K (needs flat fields at several levels, the photon-transfer curve), the shot
    noise (needs light), the heavy-tail shape (use ``estimate_shape=True`` for a
    rough Tukey-lambda fit), dark current's dependence on exposure time, and
    column noise.

    Attributes:
        read_noise: per-pixel read noise std, DN (rounding variance 1/12 removed when
            the frames are integer-valued, so :func:`simulate_short` with
            ``quantize=True`` reproduces the frames' variance).
        row_noise: std of the per-row offset, DN, corrected for the read noise
            that leaks into row means (var(row mean) = row^2 + read^2 / W).
        black_level: mean of each 2x2 CFA position, (2, 2) DN.
        black_level_mean: mean over all pixels, DN.
        fixed_pattern_noise: std of the per-pixel temporal means after removing
            row/position offsets (DSNU plus leftover temporal noise / n); None with one frame.
        read_noise_shape: Tukey-lambda shape from a probability-plot fit, or None.
        n_frames, frame_shape: what was used.
    """

    read_noise: float
    row_noise: float
    black_level: np.ndarray
    black_level_mean: float
    fixed_pattern_noise: float | None
    read_noise_shape: float | None
    n_frames: int
    frame_shape: tuple[int, int]

    def black_level_per_channel(self, cfa: str | np.ndarray) -> tuple[float, float, float, float]:
        """The black level per colour index (R, G, B, G2) for a Bayer layout."""
        tile = cfa_indices(cfa)
        out = [0.0] * 4
        for (r, c), k in np.ndenumerate(tile):
            out[int(k)] = float(self.black_level[r, c])
        return tuple(out)

    def apply_to(self, params: NoiseParams | None = None) -> NoiseParams:
        """A copy of ``params`` with read noise and row noise replaced (gain etc. kept)."""
        params = NoiseParams() if params is None else params
        new = dataclasses.replace(params, read_noise=self.read_noise, row_noise=self.row_noise)
        if self.read_noise_shape is not None:
            new = dataclasses.replace(new, read_noise_dist="tukey-lambda", read_noise_shape=self.read_noise_shape)
        return new

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["black_level"] = np.asarray(self.black_level).tolist()
        d["frame_shape"] = list(self.frame_shape)
        return d

def _stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(N, H, W) float64 stack of the frames; SidFtError when there are none or their shapes differ or are odd."""
    if len(frames) == 0:
        raise SidFtError(None, "no dark frames given")
    shape = np.shape(frames[0])
    if len(shape) != 2 or shape[0] < 2 or shape[1] < 2 or shape[0] % 2 or shape[1] % 2:
        raise SidFtError(None, f"dark frames must be (H, W) mosaics with even H, W; got shape {shape}")
    for i, f in enumerate(frames):
        if np.shape(f) != shape:
            raise SidFtError(None, f"dark frame {i} has shape {np.shape(f)}, frame 0 has {shape}")
    return np.stack([np.asarray(f, dtype=np.float64) for f in frames])


def _check_not_clipped(stack: np.ndarray, black: float | Sequence[float] | None,
                       max_clipped_fraction: float) -> None:
    """SidFtError when more than ``max_clipped_fraction`` of the pixels are at 0 (the noise is clipped)."""
    clipped = float(np.mean(stack <= 0))
    if clipped > max_clipped_fraction:
        raise SidFtError(None, f"{clipped:.1%} of dark-frame pixels are at 0: the noise is clipped "
                               f"(black level {black if black is not None else 'unknown'} is too low "
                               "to measure read noise)")


def _remove_offsets(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((2, 2) per-position mean, residuals (N, H, W) without position and row offsets, row means (N, H))."""
    n, h, w = stack.shape
    tile = stack.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(0, 1, 3))  # (2, 2) per-position mean
    resid = stack - np.tile(tile, (h // 2, w // 2))
    row_means = resid.mean(axis=2)                      # (n, h)
    resid -= row_means[:, :, None]
    return tile, resid, row_means


def _variances(resid: np.ndarray, row_means: np.ndarray) -> tuple[float, float, float | None]:
    """(per-pixel variance of the residuals, variance of the row means, fixed-pattern std or None), DN^2 / DN.

    Across frames (temporal) with 2+ frames; within the one frame otherwise.
    """
    n, h, w = resid.shape
    if n >= 2:
        pix_var = float(resid.var(axis=0, ddof=1).mean())
        row_var = float(row_means.var(axis=0, ddof=1).mean())
        pixel_means = resid.mean(axis=0)
        fpn = float(math.sqrt(max(pixel_means.var(ddof=1) - pix_var / n, 0.0)))
        return pix_var, row_var, fpn
    # dof: each row loses one to its mean
    pix_var = float((resid ** 2).sum() / (h * (w - 1)))
    row_var = float(row_means.var(ddof=1))
    return pix_var, row_var, None


def _fit_tukey_shape(resid: np.ndarray, integer: bool) -> float:
    """Tukey-lambda shape of the residuals: maximum probability-plot correlation on 20000 samples."""
    from scipy import stats
    flat = resid.ravel()
    sub_rng = np.random.default_rng(0)
    sample = flat[sub_rng.choice(flat.size, size=min(flat.size, 20000), replace=False)]
    # jitter within the quantisation step so ties do not flatten the probability plot
    if integer:
        sample = sample + sub_rng.uniform(-0.5, 0.5, sample.size)
    return float(stats.ppcc_max(sample, brack=(-0.45, 0.5), dist="tukeylambda"))


def estimate_from_dark_frames(frames: Sequence[np.ndarray],
                              black: float | Sequence[float] | None = None,
                              *, estimate_shape: bool = False,
                              max_clipped_fraction: float = 1e-3) -> DarkFrameEstimate:
    """Estimate read noise, row noise and black level from dark frames.

    Args:
        frames: N >= 1 mosaics (H, W) of the same shape, in DN (black included),
            taken with no light at the ISO to simulate.  With N >= 2 the noise is
            measured across frames (temporal), so fixed patterns are excluded; with
            one frame fixed patterns count as read/row noise.
        black: the nominal black level from the file's metadata, only used in
            the error when the frames look clipped at 0.
        estimate_shape: also fit a Tukey-lambda shape to the read-noise residuals
            (maximum probability-plot correlation on a subsample; rough, biased by
            quantisation when the read noise is a few DN).
        max_clipped_fraction: a larger fraction of pixels at 0 means the noise is
            clipped by a black level too low to measure it: SidFtError.

    Method: subtract the mean of each 2x2 position (black level); the mean of
    each row of each frame is its row offset plus read noise / W; subtracting
    those leaves read noise (variance read^2 (1 - 1/W)).  Read noise is the
    per-pixel variance across frames of those residuals; row noise is the
    variance across frames of the row means minus read^2 / W.  For integer frames
    the rounding variance 1/12 DN^2 is subtracted from the per-pixel variance
    (Sheppard's correction), since the simulator adds it back by rounding.
    """
    stack = _stack_frames(frames)
    n, h, w = stack.shape
    _check_not_clipped(stack, black, max_clipped_fraction)
    integer = bool(np.all(stack == np.round(stack)))
    tile, resid, row_means = _remove_offsets(stack)
    pix_var, row_var, fpn = _variances(resid, row_means)
    quant = 1.0 / 12.0 if integer else 0.0
    # var(resid) = read^2 (1 - 1/W); var(row mean) = row^2 + read^2 / W
    read_var_total = pix_var / (1.0 - 1.0 / w)
    read_var = max(read_var_total - quant, 0.0)
    row_var_true = max(row_var - read_var_total / w, 0.0)
    shape_est = _fit_tukey_shape(resid, integer) if estimate_shape else None
    return DarkFrameEstimate(read_noise=math.sqrt(read_var), row_noise=math.sqrt(row_var_true),
                             black_level=tile, black_level_mean=float(tile.mean()),
                             fixed_pattern_noise=fpn, read_noise_shape=shape_est,
                             n_frames=n, frame_shape=(h, w))


def load_dark_frames(inputs: str | os.PathLike | Iterable[str | os.PathLike]
                     ) -> tuple[list[np.ndarray], tuple[float, float, float, float], str]:
    """Read dark frames (RAW files or folders of them) with rawpy.

    Returns ``(frames, black_level_per_channel, cfa)``: the visible mosaics as
    uint16 arrays, the metadata black level of the first file and its CFA layout.
    SidFtError when a file cannot be read or the frames differ in size.
    """
    frames, black, cfa = [], None, None
    for path in list_raw_files(inputs, "dark frames"):
        with open_raw(path) as raw:
            mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
            if frames and mosaic.shape != frames[0].shape:
                raise SidFtError(path, f"dark frame is {mosaic.shape}, the first one is {frames[0].shape}")
            if black is None:
                black = tuple(float(b) for b in raw.black_level_per_channel)
                cfa = cfa_pattern(raw, path)
            frames.append(mosaic)
    return frames, black, cfa


# --------------------------------------------------------------------------- calibrate(): the noise profile

DEFAULT_GAIN = 1.0
"""K used when nothing measures or gives it: ``make_pairs``' default, DN per electron."""

MAX_PAIRS = 16
"""Pairs read for photon transfer (the first by short-file name); 2 already give K within a few percent."""


def _read_pair(pair: Pair, skipped: list[SidFtError]) -> tuple[RawFrame, RawFrame] | None:
    """(short, long) RawFrames of a pair, or None (the reason appended to ``skipped``)."""
    try:
        short, long = read_frame(pair.short_path), read_frame(pair.long_path)
    except SidFtError as err:
        skipped.append(err)
        return None
    reason = mismatch(dataclasses.replace(long.meta, iso=short.meta.iso), short.meta, short.path,
                      "short exposure of its pair")
    if reason is not None:
        skipped.append(SidFtError(long.path, reason))
        return None
    return short, long


def _iso_warning(what: str, iso: float | None, dark_iso: float | None) -> str | None:
    """A warning when ``what`` ('the flat fields are') was taken at another ISO than the dark frames, else None."""
    if iso == dark_iso:
        return None
    return (f"the dark frames are ISO {iso_text(dark_iso)}, {what} ISO {iso_text(iso)}: "
            f"K is measured at ISO {iso_text(iso)}, the rest of the noise at ISO {iso_text(dark_iso)}")


def _short_black(short: RawFrame, darks: list[RawFrame], dark: DarkNoise) -> np.ndarray:
    """The short exposure's black: the dark frames' mean dark when they match it (size, CFA, camera, ISO),
    else its metadata black per position."""
    if mismatch(short.meta, darks[0].meta, darks[0].path, "first dark frame") is None:
        return dark.mean_dark
    return short.meta.black_tile()


def _gain_from_pairs(pairs_dir: str | os.PathLike, darks: list[RawFrame], dark: DarkNoise,
                     skipped: list[SidFtError], warnings: list[str]) -> GainEstimate | None:
    """GainEstimate from the pairs in ``pairs_dir`` (SID layout), or None when none is usable."""
    found = find_pairs(pairs_dir, skipped=skipped)
    pairs = found[:MAX_PAIRS]
    curves, used = [], []
    for pair in pairs:
        frames = _read_pair(pair, skipped)
        if frames is None:
            continue
        short, long = frames
        warning = _iso_warning(f"the short exposure {short.path} is", short.meta.iso, darks[0].meta.iso)
        if warning:
            warnings.append(warning)
        curves.append(pair_curves(short, long, _short_black(short, darks, dark)))
        used.append(pair)
    details = {"pairs_found": len(found),
               "pairs": [{"short": p.short_path, "long": p.long_path,
                          "exposure_ratio": p.long_exposure / p.short_exposure,
                          "brightness_ratio": c.brightness_ratio} for p, c in zip(used, curves)]}
    return gain_from_pair_curves(curves, details) if curves else None


def _gain_from_flats(flat_fields, darks: list[RawFrame], dark: DarkNoise, skipped: list[SidFtError],
                     warnings: list[str]) -> GainEstimate | None:
    """GainEstimate from flat fields at several levels, or None when none is usable."""
    frames = read_matching_frames(list_raw_files(flat_fields, "flat fields"), "flat field", skipped)
    if not frames:
        return None
    warning = _iso_warning("the flat fields are", frames[0].meta.iso, darks[0].meta.iso)
    if warning:
        warnings.append(warning)
    groups = group_flat_levels(frames)
    pooled, per_position = flat_field_curves(groups, skipped)
    dark_variance = dark.temporal_variance if warning is None else None
    details = {"flat_fields": [f.path for f in frames], "frames_per_level": [len(g) for g in groups]}
    return gain_from_flat_curves(pooled, per_position, dark_variance, details)


def _gain(pairs_dir, flat_fields, gain: float | None, darks: list[RawFrame], dark: DarkNoise,
          skipped: list[SidFtError], warnings: list[str]) -> GainEstimate:
    """K from the first source that gives it: pairs, flat fields, ``gain``, else the guess DEFAULT_GAIN."""
    if pairs_dir is not None:
        found = _gain_from_pairs(pairs_dir, darks, dark, skipped, warnings)
        if found is not None:
            return found
        warnings.append(f"no usable pairs in {pairs_dir}: K from the next source")
    if flat_fields is not None:
        found = _gain_from_flats(flat_fields, darks, dark, skipped, warnings)
        if found is not None:
            return found
        warnings.append(f"no usable flat fields in {flat_fields}: K from the next source")
    if gain is not None:
        if not (gain > 0 and math.isfinite(gain)):
            raise SidFtError(None, f"--gain must be a positive number of DN per electron, got {gain}")
        return GainEstimate(gain=float(gain), stderr=None, source="given")
    return GainEstimate(gain=DEFAULT_GAIN, stderr=None, source="guessed")


def _profile(darks: list[RawFrame], dark: DarkNoise, gain: GainEstimate, skipped: list[SidFtError],
             warnings: list[str]) -> NoiseProfile:
    """The NoiseProfile of measured dark noise ``dark`` and GainEstimate ``gain``."""
    meta = darks[0].meta
    stderr = {"black_level": dark.black_level_se, "read_noise": dark.read_noise_se,
              "read_noise_per_position": dark.read_noise_per_position_se,
              "read_noise_shape": dark.read_noise_shape_se, "row_noise": dark.row_noise_se,
              "column_noise": dark.column_noise_se, "gain": gain.stderr}
    inputs = {"dark_frame_files": [f.path for f in darks],
              "skipped": [{"path": e.path, "reason": e.reason} for e in skipped],
              "warnings": list(warnings), "gain": dict(gain.details, per_input=gain.per_input,
                                                        intercept=gain.intercept)}
    return NoiseProfile(
        camera=meta.camera, iso=meta.iso, exposure_s=meta.exposure_s, cfa=meta.cfa, image_size=meta.size,
        white_level=meta.white_level, black_level_metadata=meta.black_tile(), dark_frames=dark.n_frames,
        black_level=dark.black_level, read_noise=dark.read_noise,
        read_noise_per_position=dark.read_noise_per_position, read_noise_shape=dark.read_noise_shape,
        read_noise_excess_kurtosis=dark.read_noise_excess_kurtosis, row_noise=dark.row_noise,
        row_noise_per_phase=dark.row_noise_per_phase, column_noise=dark.column_noise,
        column_noise_per_phase=dark.column_noise_per_phase, fixed_pattern_std=dark.fixed_pattern_std,
        fixed_pattern_stderr=dark.fixed_pattern_stderr, dark_shading_range=dark.dark_shading_range,
        gain=gain.gain, gain_source=gain.source, gain_per_position=gain.per_position,
        stderr=stderr, inputs=inputs, fixed_pattern=dark.fixed_pattern)


def calibrate(dark_frames: str | os.PathLike | Iterable[str | os.PathLike], *,
              pairs_dir: str | os.PathLike | None = None,
              flat_fields: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
              gain: float | None = None,
              skipped: list[SidFtError] | None = None,
              warnings: list[str] | None = None) -> NoiseProfile:
    """Calibrate a camera's noise at the dark frames' ISO: a :class:`sid_ft.data.noise_profile.NoiseProfile`.

    Args:
        dark_frames: RAW files or folders of them: 2+ lens-capped frames (8 recommended).
        pairs_dir: SID-layout folder (short/ + long/, matched by scene id as
            :func:`sid_ft.data.pairs.find_pairs` does) for K by photon transfer.
        flat_fields: flat-field RAW files or folders, 2+ frames at each of 2+ levels, for K.
        gain: K in DN per electron, used when neither pairs nor flats give it.
        skipped: files left out are appended as SidFtError(path, reason) (they are
            also in the profile's ``inputs``): unreadable, another size / CFA / camera
            / ISO than the first, light in a dark frame, clipped flats, unpaired files.
        warnings: one-line warnings are appended (darks and pairs/flats at different ISOs).

    K's source is recorded in ``gain_source``: 'pairs', 'flat-fields', 'given', or
    'guessed' (K = :data:`DEFAULT_GAIN`).  Raises SidFtError when fewer than 2
    usable dark frames are left, or for a missing folder.
    """
    skipped = [] if skipped is None else skipped
    warnings = [] if warnings is None else warnings
    darks = load_calibration_darks(dark_frames, skipped)
    dark = analyse_dark_frames(darks)
    found = _gain(pairs_dir, flat_fields, gain, darks, dark, skipped, warnings)
    return _profile(darks, dark, found, skipped, warnings)
