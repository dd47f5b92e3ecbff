"""What dark frames tell about a sensor: read noise, row noise, black level (and a rough heavy-tail shape).

Dark frames are lens-capped exposures at the ISO of the short exposures to
simulate.  They measure everything of the noise model in :mod:`sid_ft.data.noise`
except the system gain K (that needs flat fields at several light levels, the
photon-transfer curve) and the shot noise (that needs light).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from sid_ft.data.noise import NoiseParams
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
