"""Synthetic SID pairs: clean long exposures of your camera -> ``long/`` and ``short/`` DNGs with SID names.

For each source (scene ``i``, id ``first_scene_id + i`` as 5 digits), :func:`make_pairs` writes

    out_dir/long/<scene>_00_<t>s.dng                 the clean exposure, re-written as DNG
    out_dir/short/<scene>_<burst>_<t/ratio>s.dng     one per ratio and burst (burst 00, 01, ...)

with the source's CFA layout, black levels (per colour index), white level,
colour matrix and as-shot neutral, and ExposureTime; the short exposures come from
:func:`sid_ft.data.noise.simulate_short`.  Exposure times in the names follow SID
('10s', '0.1s', '0.04s'; see :func:`sid_ft.data.sid.format_exposure`); the short
time is derived from the long *name's* time, so the ratio read back from the names
is the requested one within 0.5 % (SID caps it at 300 anyway).  SID's scene-id
convention sets the split: 0xxxx train, 1xxxx test, 2xxxx validation; pass
``first_scene_id=10001`` for a test set.

``out_dir/make_pairs.json`` records the settings.  Re-running with the same
settings reuses files that exist; different settings raise SidFtError unless
``overwrite``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from sid_ft.data.calibrate import estimate_from_dark_frames, load_dark_frames
from sid_ft.data.noise import NoiseParams, simulate_short
from sid_ft.data.pairs import Pair
from sid_ft.data.sid import format_exposure
from sid_ft.errors import SidFtError
from sid_ft.io import atomic
from sid_ft.io.atomic import atomic_path
from sid_ft.io.cfa import cfa_pattern
from sid_ft.io.dng import write_dng
from sid_ft.io.raw import exposure_time, list_raw_files, open_raw

MANIFEST = "make_pairs.json"
"""File in the output folder that records the settings and the scenes written."""


@dataclass
class _Source:
    """A clean long exposure as read from its RAW file: mosaic (H, W) uint16 DN cropped to even size, levels."""
    path: Path
    mosaic: np.ndarray
    cfa: str
    raw_colors: np.ndarray
    black: tuple[float, float, float, float]
    white: float
    exposure: float | None
    color_matrix: np.ndarray | None
    as_shot_neutral: tuple[float, float, float] | None


def _colour_metadata(raw) -> tuple[np.ndarray | None, tuple[float, float, float] | None]:
    """(XYZ -> camera matrix, as-shot neutral) when the file has them, else None for each."""
    cm = None
    try:
        m = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
        if m.shape == (3, 3) and np.any(m != 0) and np.all(np.isfinite(m)):
            cm = m
    except Exception:  # noqa: BLE001 - metadata we can do without
        cm = None
    neutral = None
    try:
        wb = np.asarray(raw.camera_whitebalance, dtype=np.float64)
        if wb.size >= 3 and np.all(wb[:3] > 0):
            neutral = (float(wb[1] / wb[0]), 1.0, float(wb[1] / wb[2]))
    except Exception:  # noqa: BLE001
        neutral = None
    return cm, neutral


def _read_source(path: Path) -> _Source:
    """Open a clean long exposure and keep what the pairs need (a Bayer sensor; SidFtError otherwise)."""
    with open_raw(path) as raw:
        cfa = cfa_pattern(raw, path)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
        colors = np.array(raw.raw_colors_visible, dtype=np.uint8)
        black = tuple(float(b) for b in raw.black_level_per_channel)
        white = float(raw.white_level)
        exposure = exposure_time(path, raw)
        cm, neutral = _colour_metadata(raw)
    h, w = (mosaic.shape[0] // 2) * 2, (mosaic.shape[1] // 2) * 2
    return _Source(path, mosaic[:h, :w], cfa, colors[:h, :w], black, white, exposure, cm, neutral)


def _settings(sources: list[Path], ratios: Sequence[float], params: NoiseParams, seed: int,
              bursts: int, first_scene_id: int, long_exposure: float | None) -> dict:
    """The settings recorded in :data:`MANIFEST`; a re-run with equal settings reuses the files."""
    return {"sources": [str(p.resolve()) for p in sources], "ratios": [float(r) for r in ratios],
            "noise": params.to_dict(), "seed": int(seed), "bursts": int(bursts),
            "first_scene_id": int(first_scene_id),
            "long_exposure": None if long_exposure is None else float(long_exposure)}


def _check_ratios(ratios: Sequence[float], bursts: int) -> list[float]:
    """The ratios as floats; SidFtError for no or non-positive ratios, or fewer than 1 burst."""
    ratios = [float(r) for r in ratios]
    if not ratios or any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise SidFtError(None, f"ratios must be positive numbers, got {ratios}")
    if bursts < 1:
        raise SidFtError(None, f"bursts must be >= 1, got {bursts}")
    return ratios


def _check_scene_ids(first_scene_id: int, n_sources: int) -> None:
    """SidFtError when the scene ids of ``n_sources`` scenes do not fit SID's 5 digits."""
    if not 0 <= first_scene_id or first_scene_id + n_sources - 1 > 99999:
        raise SidFtError(None, f"scene ids {first_scene_id}..{first_scene_id + n_sources - 1} "
                               "do not fit SID's 5 digits")


def _with_dark_frames(params: NoiseParams, dark_frames) -> NoiseParams:
    """``params`` with read and row noise from the dark frames (paths or arrays), when there are any."""
    if dark_frames is None:
        return params
    if isinstance(dark_frames, (str, os.PathLike)) or (
            isinstance(dark_frames, (list, tuple)) and dark_frames
            and isinstance(dark_frames[0], (str, os.PathLike))):
        frames, _, _ = load_dark_frames(dark_frames)
    else:
        frames = list(dark_frames)
    return estimate_from_dark_frames(frames).apply_to(params)


def _prepare_out_dir(out: Path, settings: dict, overwrite: bool) -> None:
    """Make ``out/long`` and ``out/short``.

    SidFtError for a folder made with other settings (unless ``overwrite``: then it is emptied) or holding
    files make_pairs did not write.
    """
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            previous = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            raise SidFtError(manifest, f"cannot read: {err}") from err
        if previous.get("settings") != settings:
            if not overwrite:
                raise SidFtError(out, "was made with other settings (see make_pairs.json); "
                                      "use another output folder or overwrite")
            for sub in ("long", "short"):
                if (out / sub).is_dir():
                    shutil.rmtree(out / sub)
            manifest.unlink()
    else:
        foreign = [p for sub in ("long", "short") if (out / sub).is_dir() for p in (out / sub).iterdir()]
        if foreign:
            raise SidFtError(out, f"holds {len(foreign)} files in long/ or short/ that make_pairs did not "
                                  f"write (no {MANIFEST}); choose an empty or new output folder")
    try:
        (out / "long").mkdir(parents=True, exist_ok=True)
        (out / "short").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SidFtError(out, f"cannot create output folder: {err.strerror or err}") from err


def _plan_shorts(out: Path, scene: str, t_long: float, ratios: list[float], bursts: int,
                 source: Path) -> list[tuple[int, float, int, Path, float]]:
    """(ratio index, ratio, burst, short file, short seconds) for each short exposure of a scene.

    SidFtError when two ratios round to the same SID name.
    """
    planned = []
    for k, ratio in enumerate(ratios):
        short_name = format_exposure(t_long / ratio)
        for b in range(bursts):
            planned.append((k, ratio, b, out / "short" / f"{scene}_{b:02d}_{short_name}s.dng",
                            float(short_name)))
    names = [p[3].name for p in planned]
    if len(set(names)) != len(names):
        raise SidFtError(source, f"ratios {ratios} give the same short exposure time "
                                 f"after rounding ({', '.join(names)}); use distinct ratios")
    return planned


def _output_levels(src: _Source, params: NoiseParams) -> tuple[tuple[float, ...], int]:
    """(black level per colour index, white level) of the short files: the noise model's, else the source's."""
    out_black = src.black if params.black_level is None else (
        (float(params.black_level),) * 4 if np.ndim(params.black_level) == 0 else tuple(params.black_level))
    out_white = int(round(src.white if params.white_level is None else params.white_level))
    return out_black, out_white


def _write_scene(out: Path, path: Path, scene_number: int, ratios: list[float], bursts: int,
                 params: NoiseParams, seed: int, long_exposure: float | None) -> tuple[list[Pair], dict]:
    """Write one scene's long file and its short files (those not there yet): (its pairs, its manifest record)."""
    scene = f"{scene_number:05d}"
    src = _read_source(path)
    exposure = src.exposure or long_exposure
    if exposure is None:
        raise SidFtError(path, "has no exposure time (in its name or metadata); give one "
                               "(long_exposure=..., --long-exposure SECONDS)")
    long_name = format_exposure(exposure)
    t_long = float(long_name)
    long_file = out / "long" / f"{scene}_00_{long_name}s.dng"
    planned = _plan_shorts(out, scene, t_long, ratios, bursts, path)

    tile = src.raw_colors[:2, :2]
    common = dict(cfa=tile, color_matrix=src.color_matrix, as_shot_neutral=src.as_shot_neutral,
                  make="sid_ft", model=f"Synthetic from {path.name}")
    if not long_file.exists():
        _atomic(write_dng, long_file, src.mosaic, black_level=src.black, white_level=int(round(src.white)),
                exposure_time=t_long, **common)
    out_black, out_white = _output_levels(src, params)
    pairs = []
    for k, ratio, b, short_file, t_short in planned:
        if not short_file.exists():
            rng = np.random.default_rng([int(seed), scene_number, k, b])
            short = simulate_short(src.mosaic, src.black, src.white, ratio, params, rng, cfa=tile)
            _atomic(write_dng, short_file, short, black_level=out_black, white_level=out_white,
                    exposure_time=t_short, **common)
        pairs.append(Pair(short_path=str(short_file), long_path=str(long_file),
                          short_exposure=t_short, long_exposure=t_long, scene_id=scene))
    record = {"scene_id": scene, "source": str(path), "long": long_file.name, "short": [p[3].name for p in planned]}
    return pairs, record


def make_pairs(long_paths: str | os.PathLike | Iterable[str | os.PathLike],
               out_dir: str | os.PathLike,
               ratios: Sequence[float] = (100, 250, 300),
               params: NoiseParams | None = None,
               dark_frames: str | os.PathLike | Sequence[np.ndarray] | Iterable[str | os.PathLike] | None = None,
               seed: int = 0,
               *,
               bursts: int = 1,
               first_scene_id: int = 1,
               long_exposure: float | None = None,
               overwrite: bool = False,
               progress: Callable[[Iterable], Iterable] | None = None) -> list:
    """Write SID-layout synthetic pairs from clean long exposures (layout and names: the module docstring).

    Args:
        long_paths: RAW files or folders of them (any Bayer RAW LibRaw reads).
        out_dir: dataset folder to write.
        ratios: exposure ratios long / short.
        params: noise model; default :class:`NoiseParams()`.
        dark_frames: a folder / files of dark frames or a list of (H, W) arrays;
            when given, read and row noise come from
            :func:`sid_ft.data.calibrate.estimate_from_dark_frames` (gain and the rest from ``params``).
        seed: every short frame gets its own generator from (seed, scene, ratio, burst).
        bursts: short frames per ratio and scene.
        first_scene_id: id of the first scene.
        long_exposure: seconds, used when a source has no exposure time (name or
            metadata); None then means SidFtError.
        overwrite: replace an out_dir made with other settings.
        progress: wraps the source iterator (e.g. ``tqdm``).

    Returns:
        list of :class:`sid_ft.data.pairs.Pair`, one per short file, in write order.
    """
    params = NoiseParams() if params is None else params
    ratios = _check_ratios(ratios, bursts)
    sources = list_raw_files(long_paths, "long exposures")
    _check_scene_ids(first_scene_id, len(sources))
    params = _with_dark_frames(params, dark_frames)
    params.validate()

    out = Path(out_dir)
    settings = _settings(sources, ratios, params, seed, bursts, first_scene_id, long_exposure)
    _prepare_out_dir(out, settings, overwrite)
    _write_manifest(out / MANIFEST, settings, None)
    pairs, records = [], []
    iterator = progress(list(enumerate(sources))) if progress else enumerate(sources)
    for i, path in iterator:
        scene_pairs, record = _write_scene(out, path, first_scene_id + i, ratios, bursts, params, seed,
                                           long_exposure)
        pairs.extend(scene_pairs)
        records.append(record)
    _write_manifest(out / MANIFEST, settings, records)
    return pairs


def _atomic(writer: Callable, path: Path, *args, **kwargs) -> None:
    """Write through a hidden temporary name so an interrupted run leaves no half file to reuse."""
    with atomic_path(path) as tmp:
        writer(tmp, *args, **kwargs)


def _write_manifest(manifest: Path, settings: dict, scenes: list | None) -> None:
    """Write :data:`MANIFEST` atomically: the settings and, once done, one record per scene (None before)."""
    try:
        atomic.write_text(manifest, json.dumps({"settings": settings, "scenes": scenes}, indent=2) + "\n")
    except OSError as err:
        raise SidFtError(manifest, f"cannot write: {err.strerror or err}") from err
