"""Physics-based low-light noise in the RAW domain: a clean long exposure -> its short exposure.

A clean long exposure (a RAW mosaic in DN, black level included) is turned into
the short exposure that the same sensor would have recorded ``ratio`` times
shorter, at the same ISO (the SID setting: the network multiplies the short
input by the ratio).  The formation model follows the published physics-based
descriptions (Wei et al., CVPR 2020, "A Physics-based Noise Formation Model for
Extreme Low-light Raw Denoising" (ELD); Brooks et al., CVPR 2019, "Unprocessing
Images for Learned Raw Denoising"); the code is our own:

    s      = max(clean - black_in, 0) / ratio              # short-exposure signal, DN above black
    e      ~ Poisson(s / K)                                # photo-electrons (shot noise)
    x      = K * e                                         # back to DN: mean s, variance K * s
           + read                                          # per pixel, std sigma_read (Gaussian or heavy-tailed)
           + row[y]                                        # one offset per sensor row, std sigma_row
           + column[x]                                     # one offset per sensor column, std sigma_col (default 0)
           + fpn[y, x]                                     # fixed per-pixel pattern, in every frame (default 0)
           + black_out
    short  = clip(round(x), 0, white_out)                  # quantisation, clipping at white (and at 0)

A corner glow (amplifier glow, dark shading) adds ``glow * t * exp(-r / glow_radius)`` DN to
``s`` before the shot noise (it is dark current: electrons too), ``t`` the exposure time in
seconds and ``r`` the distance in pixels from the mosaic's top-left corner.  Column noise, the
fixed pattern and the glow are what real sensors carry beyond the parametric model; they are off
by default, and a model without them draws exactly what it drew before they existed.

so, per signal level ``s`` (DN above black) and before clipping (without those three),

    E[short - black] = s,   Var[short] = K * s + sigma_read**2 + sigma_row**2 (+ 1/12 from rounding).

``K`` is the system gain in DN per electron *at the ISO of the short exposure*;
it cannot be measured from dark frames (that needs flat fields at several
levels, the photon-transfer curve).  Read and row noise, and the black level,
can: :func:`sid_ft.data.calibrate.estimate_from_dark_frames`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sid_ft.errors import SidFtError

READ_NOISE_DISTRIBUTIONS = ("gaussian", "tukey-lambda", "student-t")
DEFECT_DEFAULTS = {"column_noise": 0.0, "fixed_pattern": 0.0, "fixed_pattern_seed": 0, "glow": 0.0,
                   "glow_radius": 64.0}
"""What a real sensor carries beyond the parametric model, at the values that switch it off: a
:class:`NoiseParams` written without them reads back the same, and one at these values writes as before."""
FIXED_PATTERN_TILE = 64
"""Pixels per side of the tiles the fixed pattern is drawn in, each from (seed, tile row, tile column)."""


@dataclass
class NoiseParams:
    """Parameters of the short-exposure noise formation model (all in DN of the RAW file).

    The defaults (K 1 DN/e-, read 2 DN, row 0.5 DN, Gaussian) are illustrative,
    not any camera's calibration: measure read/row noise from dark frames and K
    from flat fields (photon-transfer curve) for the camera and ISO you simulate.

    Attributes:
        gain: system gain K, DN per photo-electron at the ISO of the short exposure.
            Shot noise variance is ``gain * signal`` (signal in DN above black).
        read_noise: standard deviation of the per-pixel read noise, DN.  For the
            heavy-tailed distributions it is still the standard deviation: the
            variates are scaled to it.
        read_noise_dist: ``'gaussian'``; ``'tukey-lambda'`` (ELD's choice:
            quantile function ``(u**lam - (1-u)**lam) / lam``, ``lam < 0.14`` is
            heavier-tailed than a Gaussian, 0 is the logistic; ``lam > -0.5`` so the
            variance exists); or ``'student-t'`` (``nu > 2`` degrees of freedom;
            smaller is heavier).
        read_noise_shape: ``lam`` for Tukey-lambda, ``nu`` for Student-t; ignored for Gaussian.
        row_noise: standard deviation of the per-row offset (banding), DN; one
            Gaussian value per sensor row, shared by all pixels of the row.
        quantize: round to integer DN (adds about 1/12 DN^2 of variance).
        clip_at_white: clip the result at the white level (the sensor saturates).
        black_level: black level of the *output*, DN: one value, or 4 per colour
            index (R, G, B, G2).  None: the same as the input's.
        white_level: white level of the output, DN.  None: the same as the input's.
        column_noise: standard deviation of the per-column offset, DN; one Gaussian
            value per sensor column and frame (drawn after the row noise).
        fixed_pattern: standard deviation of the fixed per-pixel offset (dark signal
            non-uniformity), DN; Gaussian, drawn from ``fixed_pattern_seed`` and the
            pixel's position only, so every frame of the camera (shots and dark frames,
            of any size) shares it (:func:`fixed_pattern_map`).
        fixed_pattern_seed: the seed of that pattern: one per camera.
        glow: dark shading at the top-left corner, DN per second of exposure
            (needs ``exposure_s`` in :func:`simulate_short`).
        glow_radius: distance over which the glow falls by a factor e, pixels.
    """

    gain: float = 1.0
    read_noise: float = 2.0
    read_noise_dist: str = "gaussian"
    read_noise_shape: float | None = None
    row_noise: float = 0.5
    quantize: bool = True
    clip_at_white: bool = True
    black_level: float | tuple[float, float, float, float] | None = None
    white_level: float | None = None
    column_noise: float = 0.0
    fixed_pattern: float = 0.0
    fixed_pattern_seed: int = 0
    glow: float = 0.0
    glow_radius: float = 64.0

    def __post_init__(self) -> None:
        if isinstance(self.black_level, (list, np.ndarray)):
            self.black_level = tuple(float(v) for v in np.ravel(self.black_level))
        self.validate()

    def validate(self) -> None:
        """Raise SidFtError (path None) when a parameter is out of its range."""
        if not (self.gain > 0 and math.isfinite(self.gain)):
            raise SidFtError(None, f"system gain must be positive DN per electron, got {self.gain}")
        if not (self.read_noise >= 0 and math.isfinite(self.read_noise)):
            raise SidFtError(None, f"read noise must be >= 0 DN, got {self.read_noise}")
        if not (self.row_noise >= 0 and math.isfinite(self.row_noise)):
            raise SidFtError(None, f"row noise must be >= 0 DN, got {self.row_noise}")
        if self.read_noise_dist not in READ_NOISE_DISTRIBUTIONS:
            raise SidFtError(None, f"read noise distribution {self.read_noise_dist!r}: "
                                   f"expected one of {', '.join(READ_NOISE_DISTRIBUTIONS)}")
        if self.read_noise_dist == "tukey-lambda":
            if self.read_noise_shape is None or not self.read_noise_shape > -0.5:
                raise SidFtError(None, f"Tukey-lambda shape must be > -0.5 (finite variance), "
                                       f"got {self.read_noise_shape}")
        if self.read_noise_dist == "student-t":
            if self.read_noise_shape is None or not self.read_noise_shape > 2:
                raise SidFtError(None, f"Student-t degrees of freedom must be > 2 (finite variance), "
                                       f"got {self.read_noise_shape}")
        if self.white_level is not None and not self.white_level > 0:
            raise SidFtError(None, f"white level must be positive, got {self.white_level}")
        for name in ("column_noise", "fixed_pattern", "glow"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise SidFtError(None, f"{name.replace('_', ' ')} must be >= 0, got {value}")
        if not self.glow_radius > 0:
            raise SidFtError(None, f"glow radius must be positive pixels, got {self.glow_radius}")

    def to_dict(self) -> dict:
        """JSON-ready dict of every field; the sensor-defect fields (:data:`DEFECT_DEFAULTS`) only where set."""
        d = dataclasses.asdict(self)
        for name, default in DEFECT_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        if d["black_level"] is not None and not np.isscalar(d["black_level"]):
            d["black_level"] = [float(v) for v in d["black_level"]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NoiseParams":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        if isinstance(d.get("black_level"), list):
            d["black_level"] = tuple(d["black_level"])
        return cls(**d)


def parse_heavy_tail(spec: str | None) -> tuple[str, float | None]:
    """Parse a command-line heavy-tail spec into ``(read_noise_dist, read_noise_shape)``.

    ``None``/``'gaussian'`` -> ``('gaussian', None)``; ``'tukey:-0.2'`` or
    ``'tukey-lambda:-0.2'`` -> Tukey-lambda with lam -0.2; ``'t:4'`` or
    ``'student-t:4'`` -> Student-t with 4 degrees of freedom.
    """
    if spec is None or spec.strip().lower() in ("", "gaussian", "none"):
        return "gaussian", None
    name, sep, value = spec.strip().lower().partition(":")
    names = {"tukey": "tukey-lambda", "tukey-lambda": "tukey-lambda", "tukeylambda": "tukey-lambda",
             "t": "student-t", "student-t": "student-t", "student": "student-t"}
    if name not in names or not sep:
        raise SidFtError(None, f"heavy-tail {spec!r}: expected 'tukey:LAMBDA' or 'student-t:NU'")
    try:
        shape = float(value)
    except ValueError:
        raise SidFtError(None, f"heavy-tail {spec!r}: shape {value!r} is not a number") from None
    return names[name], shape


def _level_map(level: float | Sequence[float] | np.ndarray, shape: tuple[int, int],
               cfa: str | np.ndarray | None, what: str) -> np.ndarray | float:
    """Broadcastable per-pixel level: scalar, (2, 2) per position, (4,) per colour index, or (H, W)."""
    arr = np.asarray(level, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    if arr.shape == shape:
        return arr
    if arr.shape == (2, 2):
        tile = arr
    elif arr.size == 4 and arr.ndim == 1:
        if cfa is None:
            if np.all(arr == arr[0]):
                return float(arr[0])
            raise ValueError(f"{what} given per colour index needs the CFA layout (cfa=...)")
        from sid_ft.io.dng import cfa_indices
        tile = arr[cfa_indices(cfa)]
    else:
        raise ValueError(f"{what} must be a scalar, 4 values per colour index, a (2, 2) tile or {shape}, "
                         f"got shape {arr.shape}")
    if shape[0] % 2 or shape[1] % 2:
        raise ValueError(f"mosaic shape {shape} is not a multiple of the 2x2 CFA tile")
    return np.tile(tile, (shape[0] // 2, shape[1] // 2))


def _tukey_lambda_std(lam: float) -> float:
    from scipy import stats
    return float(stats.tukeylambda(lam).std())


def _read_noise(params: NoiseParams, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Zero-mean read noise with standard deviation ``params.read_noise``, float32 of ``shape``."""
    sigma = params.read_noise
    if params.read_noise_dist == "gaussian":
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    if params.read_noise_dist == "student-t":
        nu = float(params.read_noise_shape)
        z = rng.standard_t(nu, size=shape)
        return (z * (sigma / math.sqrt(nu / (nu - 2.0)))).astype(np.float32)
    lam = float(params.read_noise_shape)
    # float32 is enough: u is kept in [1e-7, 1 - 1e-7], i.e. tails truncated at probability 1e-7
    u = rng.random(shape, dtype=np.float32)
    np.clip(u, np.float32(1e-7), np.float32(1.0 - 1e-7), out=u)
    lam32 = np.float32(lam)
    if abs(lam) < 1e-6:
        z = np.log(u) - np.log1p(-u)  # logistic limit
    else:
        z = (u ** lam32 - (np.float32(1.0) - u) ** lam32) / lam32
    z *= np.float32(sigma / _tukey_lambda_std(lam))
    return z



def _shot_noise(clean: np.ndarray, black_in: np.ndarray | float, ratio: float, gain: float,
                rng: np.random.Generator, dark_dn: np.ndarray | None = None) -> np.ndarray:
    """The short exposure's signal with shot noise, DN above black, float32 (H, W): ``K * Poisson(s / K)``.

    ``dark_dn``: dark current (the glow) in DN, (H, W), added to ``s`` before the draw; None adds nothing.
    """
    signal = clean.astype(np.float32) - np.asarray(black_in, dtype=np.float32)
    np.maximum(signal, 0, out=signal)
    # electrons collected in the short exposure; Poisson draws them, K converts back to DN
    electrons = signal * np.float32(1.0 / (ratio * gain))
    if dark_dn is not None:
        electrons += dark_dn * np.float32(1.0 / gain)
    out = rng.poisson(electrons).astype(np.float32)
    del electrons, signal
    out *= np.float32(gain)
    return out


def _fixed_pattern_tile(seed: int, ty: int, tx: int) -> np.ndarray:
    """One :data:`FIXED_PATTERN_TILE`-square tile of unit-variance Gaussian pattern, float32."""
    size = FIXED_PATTERN_TILE
    return np.random.default_rng([seed, ty, tx]).standard_normal((size, size), dtype=np.float32)


def fixed_pattern_map(shape: tuple[int, int], std: float, seed: int) -> np.ndarray:
    """The fixed per-pixel offset of a camera, (H, W) float32 DN with standard deviation ``std``.

    Each pixel's value depends only on ``seed`` and its position (y, x): a frame of another size
    sees the same pattern where the two overlap, as crops from one sensor's top-left corner do.
    """
    size = FIXED_PATTERN_TILE
    rows, cols = -(-shape[0] // size), -(-shape[1] // size)
    tiles = [[_fixed_pattern_tile(int(seed), ty, tx) for tx in range(cols)] for ty in range(rows)]
    return np.block(tiles)[: shape[0], : shape[1]] * np.float32(std)


def glow_map(shape: tuple[int, int], params: NoiseParams, exposure_s: float | None) -> np.ndarray | None:
    """The corner glow of an ``exposure_s`` exposure, (H, W) float32 DN; None when ``params.glow`` is 0."""
    if params.glow <= 0:
        return None
    if exposure_s is None or not (exposure_s >= 0 and math.isfinite(exposure_s)):
        raise SidFtError(None, f"a corner glow of {params.glow:g} DN/s needs the exposure time in seconds, "
                               f"got {exposure_s}")
    y = np.arange(shape[0], dtype=np.float32)[:, None]
    x = np.arange(shape[1], dtype=np.float32)[None, :]
    falloff = np.exp(-np.sqrt(y * y + x * x) / np.float32(params.glow_radius))
    return (falloff * np.float32(params.glow * exposure_s)).astype(np.float32)


def _add_read_and_row_noise(out: np.ndarray, params: NoiseParams, rng: np.random.Generator) -> None:
    """Add per-pixel read noise, then one Gaussian offset per sensor row, to ``out`` (H, W) in place."""
    shape = out.shape
    if params.read_noise > 0:
        out += _read_noise(params, shape, rng)
    if params.row_noise > 0:
        out += (rng.standard_normal((shape[0], 1), dtype=np.float32) * np.float32(params.row_noise))


def _add_sensor_defects(out: np.ndarray, params: NoiseParams, rng: np.random.Generator) -> None:
    """Add column noise (drawn after everything else) and the fixed pattern to ``out`` (H, W) in place."""
    if params.column_noise > 0:
        out += rng.standard_normal((1, out.shape[1]), dtype=np.float32) * np.float32(params.column_noise)
    if params.fixed_pattern > 0:
        out += fixed_pattern_map(out.shape, params.fixed_pattern, params.fixed_pattern_seed)


def simulate_short(clean_mosaic_dn: np.ndarray,
                   black: float | Sequence[float] | np.ndarray,
                   white: float,
                   ratio: float,
                   params: NoiseParams | None = None,
                   rng: np.random.Generator | int | None = None,
                   *, cfa: str | np.ndarray | None = None,
                   exposure_s: float | None = None) -> np.ndarray:
    """Synthesise the short exposure of a clean long exposure.

    Args:
        clean_mosaic_dn: (H, W) clean long-exposure mosaic in DN, black level
            included (what ``raw.raw_image_visible`` holds).
        black: the input's black level, DN: scalar, 4 values per colour index
            (R, G, B, G2; needs ``cfa``), a (2, 2) per-position tile, or (H, W).
        white: the input's white level, DN (used for the output when
            ``params.white_level`` is None).
        ratio: exposure ratio long / short (> 0, e.g. 100, 250, 300).
        params: noise model; default :class:`NoiseParams()`.
        rng: numpy Generator or seed.
        cfa: Bayer layout ('RGGB', ...) or (2, 2) colour-index tile; needed only
            when a black level is given per colour index.
        exposure_s: the short exposure's time in seconds; needed when ``params.glow`` > 0.
            A dark frame is the short exposure of a clean frame at the black level.

    Returns:
        (H, W) uint16 mosaic in DN (black level ``params.black_level`` or
        ``black`` included), clipped to [0, white].  With ``params.quantize``
        False, float32 and not rounded (still clipped).

    Vectorised numpy, float32: 16 Mpix take about 1.1 s (Gaussian read noise) or 1.6 s
    (Tukey-lambda) on one AMD EPYC core (median of 3, shared 2-core machine).
    """
    params = NoiseParams() if params is None else params
    params.validate()
    if not (ratio > 0 and math.isfinite(ratio)):
        raise SidFtError(None, f"exposure ratio must be positive, got {ratio}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    clean = np.asarray(clean_mosaic_dn)
    if clean.ndim != 2:
        raise ValueError(f"clean mosaic must be (H, W), got shape {clean.shape}")
    black_in = _level_map(black, clean.shape, cfa, "black")
    black_out = black_in if params.black_level is None else _level_map(params.black_level, clean.shape, cfa, "black")
    white_out = float(white if params.white_level is None else params.white_level)

    out = _shot_noise(clean, black_in, ratio, params.gain, rng, glow_map(clean.shape, params, exposure_s))
    _add_read_and_row_noise(out, params, rng)
    _add_sensor_defects(out, params, rng)
    out += np.asarray(black_out, dtype=np.float32)
    if params.quantize:
        np.rint(out, out=out)
    np.clip(out, 0.0, white_out if params.clip_at_white else 65535.0, out=out)
    return out.astype(np.uint16) if params.quantize else out
