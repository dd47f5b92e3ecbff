"""A camera's calibrated noise at one ISO: ``noise.json`` plus its fixed pattern, ``noise.fixed_pattern.npz``.

Written by ``scripts/calibrate.py`` (:func:`sid_ft.data.calibrate.calibrate`), read by
training (:func:`load_noise_profile`).  The model it parameterises, per pixel (y, x)
at 2x2 CFA position p of the visible mosaic, for a short-exposure signal ``s`` (DN
above black):

    x = K * Poisson(s / K)                                   shot noise, gain K
        + black_level[p] + fixed_pattern[y, x]               mean dark frame
        + read_noise_scale * Q_lam(u),  u ~ U(0, 1)          read noise, Tukey lambda
        + row[y] + column[x]                                 N(0, row_noise_per_phase[y % 2]^2), ...[x % 2]
    short = clip(round(x), 0, white_level)

``Q_lam(u) = (u**lam - (1-u)**lam) / lam`` (``log(u / (1-u))`` at lam = 0) with
``lam = read_noise_shape``; ``read_noise_scale = read_noise / std(Q_lam)`` so the read
noise has standard deviation ``read_noise`` (``read_noise_per_position[p]`` per
position, scale it by ``read_noise_per_position[p] / read_noise``).  The read
noise excludes rounding's 1/12 DN^2 (``"quantized": true``: round to put it back).

JSON keys (units in ``"units"``; per-position values are [[TL, TR], [BL, BR]] of the
visible mosaic whose layout is ``cfa``):

    format, version          "sid_ft noise profile", 1
    camera, iso, exposure_s  of the dark frames ("Make Model"; null when unknown)
    cfa, cfa_colour_indices  'RGGB' ... and the colour index per position (0 R, 1 G, 2 B, 3 G2)
    image_size               [H, W] of the dark frames (and of fixed_pattern)
    white_level, black_level_metadata   from the files, DN
    dark_frames              number of dark frames used
    black_level              median dark level per position, DN
    read_noise, read_noise_per_position, read_noise_dist ("tukey-lambda"), read_noise_shape (lam),
    read_noise_scale, read_noise_excess_kurtosis, quantized
    row_noise, row_noise_per_phase [even rows, odd rows], column_noise, column_noise_per_phase, DN
    fixed_pattern            file name beside the JSON: an .npz with one float32 (H, W) array
                             'fixed_pattern' = mean dark - black_level, DN (glow/dark shading included)
    fixed_pattern_std, fixed_pattern_stderr (temporal noise left in it per pixel), dark_shading_range, DN
    gain, gain_source, gain_per_position   K in DN per electron; 'pairs' | 'flat-fields' | 'given' | 'guessed'
    stderr                   {key: standard error} for black_level, read_noise, read_noise_per_position,
                             read_noise_shape, row_noise, column_noise, gain (null when not measured)
    inputs                   dark_frame_files, skipped [{path, reason}], gain details, warnings
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sid_ft.data.dark_noise import tukey_lambda_std
from sid_ft.data.noise import NoiseParams
from sid_ft.errors import SidFtError
from sid_ft.io import atomic
from sid_ft.io.atomic import atomic_path
from sid_ft.io.dng import cfa_indices

PROFILE_FORMAT = "sid_ft noise profile"
PROFILE_VERSION = 1
GAIN_SOURCES = ("pairs", "flat-fields", "given", "guessed")

UNITS = {
    "black_level": "DN", "read_noise": "DN (standard deviation)", "read_noise_shape": "Tukey lambda (1)",
    "read_noise_scale": "DN per unit of Q_lam", "row_noise": "DN (standard deviation)",
    "column_noise": "DN (standard deviation)", "fixed_pattern": "DN", "gain": "DN per electron",
    "white_level": "DN", "exposure_s": "seconds", "image_size": "pixels (H, W)",
}

_ARRAYS = ("black_level_metadata", "black_level", "read_noise_per_position", "row_noise_per_phase",
           "column_noise_per_phase", "gain_per_position")


@dataclass
class NoiseProfile:
    """The calibrated noise of one camera at one ISO; fields are the JSON keys (module docstring).

    ``fixed_pattern`` is the (H, W) float32 array itself (None when not loaded);
    arrays are numpy arrays, (2, 2) per CFA position or (2,) per row/column parity.
    """

    camera: str
    iso: float | None
    exposure_s: float | None
    cfa: str
    image_size: tuple[int, int]
    white_level: float
    black_level_metadata: np.ndarray
    dark_frames: int
    black_level: np.ndarray
    read_noise: float
    read_noise_per_position: np.ndarray
    read_noise_shape: float
    read_noise_excess_kurtosis: float
    row_noise: float
    row_noise_per_phase: np.ndarray
    column_noise: float
    column_noise_per_phase: np.ndarray
    fixed_pattern_std: float
    fixed_pattern_stderr: float
    dark_shading_range: float
    gain: float
    gain_source: str
    gain_per_position: np.ndarray | None = None
    read_noise_dist: str = "tukey-lambda"
    quantized: bool = True
    stderr: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    fixed_pattern: np.ndarray | None = None

    @property
    def read_noise_scale(self) -> float:
        """DN per unit of the standard Tukey-lambda quantile ``Q_lam``: ``read_noise / std(Q_lam)``."""
        return self.read_noise / tukey_lambda_std(self.read_noise_shape)

    def black_level_per_channel(self) -> tuple[float, float, float, float]:
        """The black level per colour index (R, G, B, G2), DN."""
        out = [0.0] * 4
        for (r, c), k in np.ndenumerate(cfa_indices(self.cfa)):
            out[int(k)] = float(self.black_level[r, c])
        return tuple(out)

    def noise_params(self) -> NoiseParams:
        """The parts :func:`sid_ft.data.noise.simulate_short` models: K, read noise with its Tukey-lambda tail,
        row noise, black per colour index, white.  Column noise and the fixed pattern it has no place for."""
        return NoiseParams(gain=self.gain, read_noise=self.read_noise, read_noise_dist="tukey-lambda",
                           read_noise_shape=self.read_noise_shape, row_noise=self.row_noise,
                           black_level=self.black_level_per_channel(), white_level=self.white_level)

    def config_summary(self, mode: str) -> dict:
        """The ``"noise"`` block of a training run's ``config.json`` (``mode`` 'sampled' | 'parametric')."""
        return {"gain": self.gain, "gain_source": self.gain_source, "read_noise": self.read_noise,
                "row_noise": self.row_noise, "column_noise": self.column_noise,
                "black_level": np.asarray(self.black_level).tolist(), "dark_frames": self.dark_frames,
                "mode": mode}

    def to_dict(self, fixed_pattern_name: str | None) -> dict:
        """The JSON object (``fixed_pattern``: the .npz file's name, or None)."""
        out = {"format": PROFILE_FORMAT, "version": PROFILE_VERSION}
        for name in self.__dataclass_fields__:
            if name in ("fixed_pattern", "stderr", "inputs"):
                continue
            out[name] = _jsonable(getattr(self, name))
        out["image_size"] = list(self.image_size)
        out["cfa_colour_indices"] = cfa_indices(self.cfa).tolist()
        out["read_noise_scale"] = self.read_noise_scale
        out["fixed_pattern"] = fixed_pattern_name
        out["units"] = UNITS
        out["stderr"] = _jsonable(self.stderr)
        out["inputs"] = _jsonable(self.inputs)
        return out


def _jsonable(value):
    """``value`` with numpy arrays and scalars turned into lists and floats, NaN into None."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def fixed_pattern_path(json_path: str | os.PathLike) -> Path:
    """Where the fixed pattern of ``noise.json`` goes: ``noise.fixed_pattern.npz`` beside it."""
    p = Path(json_path)
    return p.with_name(p.stem + ".fixed_pattern.npz")


def save_noise_profile(profile: NoiseProfile, path: str | os.PathLike) -> Path | None:
    """Write ``path`` (JSON) and, when the profile has one, its fixed pattern beside it; returns the .npz path.

    Both files are written atomically; SidFtError when they cannot be written.
    """
    npz = fixed_pattern_path(path) if profile.fixed_pattern is not None else None
    try:
        if npz is not None:
            with atomic_path(npz) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, fixed_pattern=np.asarray(profile.fixed_pattern, dtype=np.float32))
        text = json.dumps(profile.to_dict(npz.name if npz else None), indent=2) + "\n"
        atomic.write_text(path, text)
    except OSError as err:
        raise SidFtError(path, f"cannot write the noise profile: {err.strerror or err}") from err
    return npz


def _read_json(path: Path) -> dict:
    """The profile's JSON object; SidFtError for a missing, unreadable or foreign file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SidFtError(path, "noise profile not found (make one with scripts/calibrate.py)") from None
    except (OSError, ValueError) as err:
        raise SidFtError(path, f"cannot read the noise profile: {err}") from err
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise SidFtError(path, f"not a noise profile (no \"format\": \"{PROFILE_FORMAT}\"); "
                               "make one with scripts/calibrate.py")
    if data.get("version") != PROFILE_VERSION:
        raise SidFtError(path, f"noise profile version {data.get('version')!r}; this sid_ft reads "
                               f"version {PROFILE_VERSION}")
    return data


def _load_fixed_pattern(path: Path, name: str | None, size: tuple[int, int]) -> np.ndarray | None:
    """The (H, W) float32 fixed pattern named in the JSON, or None when it names none."""
    if name is None:
        return None
    npz = path.parent / name
    try:
        with np.load(npz) as data:
            pattern = np.asarray(data["fixed_pattern"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as err:
        raise SidFtError(npz, f"cannot read the fixed pattern of {path.name}: {err}") from err
    if pattern.shape != tuple(size):
        raise SidFtError(npz, f"fixed pattern is {pattern.shape}, the profile says {tuple(size)}")
    return pattern


def load_noise_profile(path: str | os.PathLike, *, fixed_pattern: bool = True) -> NoiseProfile:
    """Read a noise profile (and its fixed pattern unless ``fixed_pattern`` is False).

    SidFtError naming the file for a missing, unreadable or foreign file, a wrong
    version, missing keys and a fixed pattern that is missing or of another size.
    """
    path = Path(path)
    data = _read_json(path)
    kwargs = {}
    for name, spec in NoiseProfile.__dataclass_fields__.items():
        if name == "fixed_pattern":
            continue
        if name not in data:
            if spec.default is not dataclasses.MISSING or spec.default_factory is not dataclasses.MISSING:
                continue
            raise SidFtError(path, f"noise profile has no {name!r}")
        value = data[name]
        kwargs[name] = np.asarray(value, dtype=np.float64) if name in _ARRAYS and value is not None else value
    kwargs["image_size"] = tuple(int(v) for v in kwargs["image_size"])
    if kwargs["gain_source"] not in GAIN_SOURCES:
        raise SidFtError(path, f"gain_source {kwargs['gain_source']!r}: expected one of {', '.join(GAIN_SOURCES)}")
    profile = NoiseProfile(**kwargs)
    if fixed_pattern:
        profile.fixed_pattern = _load_fixed_pattern(path, data.get("fixed_pattern"), profile.image_size)
    return profile
