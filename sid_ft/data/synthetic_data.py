"""Everything a run needs for synthetic pairs: clean photos, the noise profile, dark frames, all checked together.

:func:`prepare_synthetic_data` reads ``--clean-dir`` (:mod:`sid_ft.data.clean_photos`) and
finds the noise: ``--noise-profile noise.json`` when given, else a calibration of
``--dark-frames`` now (:func:`sid_ft.data.calibrate.calibrate`, with K from the real pairs
of ``--dataset-dir`` when there are any, else ``--gain``, else guessed as 1 and said so).
With dark frames the mode is 'sampled' (their crops are the dark part of each patch), without
them 'parametric' (the profile's fitted noise on its mean dark).  Dark frames and a profile of
another size, CFA or camera than the clean photos are an error naming the file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from sid_ft.data.calibrate import calibrate
from sid_ft.data.clean_photos import CleanPhoto, load_clean_photos
from sid_ft.data.dark_frames import load_calibration_darks
from sid_ft.data.noise_profile import NoiseProfile, load_noise_profile
from sid_ft.data.raw_frames import FrameMeta, iso_text
from sid_ft.data.sampling import DecodeCache
from sid_ft.data.synthetic import DarkOffsets, SyntheticNoise, noise_from_profile
from sid_ft.errors import SidFtError

__all__ = ["SyntheticData", "prepare_synthetic_data"]


@dataclass
class SyntheticData:
    """The clean photos, the noise and the dark crops of a run's synthetic patches."""

    photos: list[CleanPhoto]
    darks: DarkOffsets
    noise: SyntheticNoise
    profile: NoiseProfile
    ratios: list[float]
    share: float  # the fraction of patches that are synthetic (1.0 without real pairs)
    profile_path: str | None  # --noise-profile, or None when calibrated by this run
    dark_files: list[str] = field(default_factory=list)  # the dark frames cropped (mode 'sampled')
    skipped: list[str] = field(default_factory=list)  # clean photos and dark frames left out, and why
    warnings: list[str] = field(default_factory=list)

    def config(self) -> dict:
        """The ``"synthetic"`` block of ``config.json``."""
        return {"noise": self.profile.config_summary(self.noise.mode), "clean": [p.path for p in self.photos],
                "ratios": list(self.ratios), "share": self.share, "noise_profile": self.profile_path,
                "dark_frame_files": list(self.dark_files), "skipped": list(self.skipped),
                "warnings": list(self.warnings)}


def _describe_gain(profile: NoiseProfile) -> str:
    """One line on K and where it came from."""
    k, source, se = profile.gain, profile.gain_source, (profile.stderr or {}).get("gain")
    if source == "guessed":
        return (f"gain K = {k:g} DN per electron GUESSED (no real pairs and no --gain): it sets the shot noise; "
                "give --gain K, or --dataset-dir with 2 short/long pairs to measure it")
    if source == "given":
        return f"gain K = {k:g} DN per electron (given)"
    return f"gain K = {k:.4g}" + ("" if se is None else f" ± {se:.2g}") + f" DN per electron (from {source})"


def _given_profile(path: str, gain: float | None, with_frames: bool, report: Callable[[str], None]) -> NoiseProfile:
    """``--noise-profile`` (its fixed pattern only when no dark frames replace it); ``--gain`` replaces a
    guessed K only."""
    profile = load_noise_profile(path, fixed_pattern=not with_frames)
    if gain is not None and profile.gain_source == "guessed":
        if not gain > 0:
            raise SidFtError(None, f"--gain must be a positive number of DN per electron, got {gain}")
        profile.gain, profile.gain_source = float(gain), "given"
    elif gain is not None:
        report(f"--gain {gain:g} ignored: {path} measured K = {profile.gain:.4g} (from {profile.gain_source})")
    return profile


def _calibrated_profile(dark_frames: str, pairs_dir: str | None, gain: float | None, skipped: list[str],
                        warnings: list[str], report: Callable[[str], None]) -> NoiseProfile:
    """Calibrate from the dark frames now (K from the pairs in ``pairs_dir`` when any, else ``gain``)."""
    errors: list[SidFtError] = []
    try:
        return calibrate(dark_frames, pairs_dir=pairs_dir, gain=gain, skipped=errors, warnings=warnings)
    finally:
        for err in errors:
            report(f"skipped: {err}")
            skipped.append(str(err))
        for line in warnings:
            report(f"warning: {line}")


def _screened_darks(dark_frames: str, profile: NoiseProfile, skipped: list[str], warnings: list[str],
                    report: Callable[[str], None]) -> tuple[list[str], FrameMeta]:
    """The usable dark frames (lit ones and misfits are skipped and named) when a profile came with them."""
    errors: list[SidFtError] = []
    frames = load_calibration_darks(dark_frames, errors)
    for err in errors:
        report(f"skipped: {err}")
        skipped.append(str(err))
    if frames[0].meta.iso != profile.iso:
        warnings.append(f"the dark frames are ISO {iso_text(frames[0].meta.iso)}, the noise profile ISO "
                        f"{iso_text(profile.iso)}: K and the levels come from the profile")
        report(f"warning: {warnings[-1]}")
    return [f.path for f in frames], frames[0].meta


def _check_gain(profile: NoiseProfile, gain: float | None, where: str | None, warnings: list[str],
                report: Callable[[str], None]) -> None:
    """A K that is not a positive number (photon transfer on pairs whose noise does not grow with the signal)
    is replaced by ``--gain`` with a warning, else an error."""
    if math.isfinite(profile.gain) and profile.gain > 0:
        return
    measured = f"K = {profile.gain:.3g} DN per electron measured from the {profile.gain_source}"
    if gain is None:
        raise SidFtError(where, f"{measured} is not positive (their noise does not grow with the signal): check "
                                "them, or give --gain K")
    warnings.append(f"{measured} is not positive: using --gain {gain:g}")
    report(f"warning: {warnings[-1]}")
    profile.gain, profile.gain_source = float(gain), "given"


def _check_fits(what: str, where: str, size: tuple[int, int], cfa: str, camera: str, photo: CleanPhoto) -> None:
    """SidFtError naming ``where`` when dark frames or a profile (``what``) are of another size, CFA or camera
    than the clean photos."""
    meta = photo.meta
    if tuple(size) != tuple(meta.size):
        reason = f"is {size[0]}x{size[1]}, the clean photo {photo.path} is {meta.size[0]}x{meta.size[1]}"
    elif cfa != meta.cfa:
        reason = f"has CFA {cfa}, the clean photo {photo.path} has {meta.cfa}"
    elif camera != meta.camera:
        reason = (f"is from camera {camera or '(unnamed)'!r}, the clean photo {photo.path} from "
                  f"{meta.camera or '(unnamed)'!r}")
    else:
        return
    raise SidFtError(where, f"{reason}: {what} must be of the camera of the clean photos, at the same size")


def _noise(noise_profile: str | None, dark_frames: str | None, pairs_dir: str | None, gain: float | None,
           photo: CleanPhoto, data: dict, report: Callable[[str], None]) -> tuple[NoiseProfile, list[str]]:
    """The profile and the dark frames to crop, each checked against the first clean photo."""
    skipped, warnings = data["skipped"], data["warnings"]
    if noise_profile is None:
        profile = _calibrated_profile(dark_frames, pairs_dir, gain, skipped, warnings, report)
        _check_gain(profile, gain, pairs_dir, warnings, report)
        files = [str(f) for f in profile.inputs.get("dark_frame_files", [])]
        _check_fits("dark frames", files[0], profile.image_size, profile.cfa, profile.camera, photo)
        return profile, files
    profile = _given_profile(noise_profile, gain, dark_frames is not None, report)
    _check_gain(profile, gain, noise_profile, warnings, report)
    _check_fits("a noise profile", noise_profile, profile.image_size, profile.cfa, profile.camera, photo)
    if dark_frames is None:
        return profile, []
    files, meta = _screened_darks(dark_frames, profile, skipped, warnings, report)
    _check_fits("dark frames", files[0], meta.size, meta.cfa, meta.camera, photo)
    return profile, files


def prepare_synthetic_data(clean_dir: str | os.PathLike, cache: DecodeCache, report: Callable[[str], None], *,
                           dark_frames: str | None = None, noise_profile: str | None = None,
                           gain: float | None = None, pairs_dir: str | None = None,
                           ratios: Sequence[float] = (100.0, 250.0, 300.0), share: float = 1.0) -> SyntheticData:
    """Clean photos, noise profile and dark crops for synthetic patches (module docstring).

    ``share``: the fraction of patches that are synthetic (give 1.0 when there are no real pairs).
    SidFtError naming the file for every problem; at least one of ``dark_frames`` and
    ``noise_profile`` is needed.
    """
    if dark_frames is None and noise_profile is None:
        raise SidFtError(None, "--clean-dir needs the camera's noise: --dark-frames DIR (8 lens-capped frames at "
                               "the ISO you shoot at) and/or --noise-profile noise.json (scripts/calibrate.py)")
    data = {"skipped": [], "warnings": []}
    photos = load_clean_photos(clean_dir, cache, report, data["skipped"])
    profile, dark_files = _noise(noise_profile, dark_frames, pairs_dir, gain, photos[0], data, report)
    mode = "sampled" if dark_files else "parametric"
    noise = noise_from_profile(profile, mode)
    if mode == "sampled":
        darks = DarkOffsets.sampled([cache.packed(f)[0].packed.values for f in dark_files], noise, dark_files)
    else:
        darks = DarkOffsets.parametric(profile, noise, noise_profile)
    report(f"synthetic pairs: {len(photos)} clean photo(s), noise {mode} "
           + (f"({len(dark_files)} dark frames)" if dark_files else f"(fitted: {noise_profile})")
           + f", ratios {' '.join(f'{r:g}' for r in ratios)}; {_describe_gain(profile)}")
    return SyntheticData(photos, darks, noise, profile, [float(r) for r in ratios], float(share), noise_profile,
                         dark_files, data["skipped"], data["warnings"])
