"""Clean photos for synthetic pairs: read them, and say which are not clean enough to be ground truth.

A clean photo (``--clean-dir``) is an ordinary RAW exposure of the camera to adapt to,
any name (SID's ``long/`` folder works too).  It becomes both halves of a synthetic
pair: its SID rendering is the ground truth (exactly what a real pair's long
exposure gives, :meth:`sid_ft.data.sampling.DecodeCache.reference`), and its packed
mosaic divided by the ratio is the signal of the short exposure that gets noise
(:mod:`sid_ft.training.synthesis`).  Whatever noise the photo has itself rides along
in the ground truth, so base-ISO exposures are best.

What is not clean (each named with the file and the reason):

* clipped: more than :data:`CLIPPED_REFUSE` of its photosites at the white level
  (98 % of full scale or more) is refused, more than :data:`CLIPPED_WARN` warned about;
  clipped areas teach the network that highlights are flat;
* very dark: a median signal below :data:`DARK_REFUSE` of full scale is refused, below
  :data:`DARK_WARN` warned about; divided by the ratio nothing of it is left above the
  read noise;
* noisy: ISO (``raw.other.iso_speed``) above :data:`ISO_REFUSE` is refused, above
  :data:`ISO_WARN` warned about; an estimated noise (from the difference of the two
  greens of each 2x2 tile, robust to edges) above :data:`NOISE_WARN` of full scale is
  warned about, for files that do not say their ISO too.

The figures read from a photo are kept in the decode cache (``<key>_clean.json``), so
a resumed run does not read the file again.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sid_ft.data.raw_frames import FrameMeta, RawFrame, iso_text, mismatch, read_frame
from sid_ft.data.sampling import CacheWriteError, DecodeCache, PackedArray, file_key
from sid_ft.errors import SidFtError
from sid_ft.io import atomic
from sid_ft.io.raw import list_raw_files

__all__ = ["CLIPPED_REFUSE", "CLIPPED_WARN", "CleanPhoto", "DARK_REFUSE", "DARK_WARN", "ISO_REFUSE", "ISO_WARN",
           "NOISE_WARN", "PhotoFigures", "judge_photo", "load_clean_photos"]

CLIPPED_WARN, CLIPPED_REFUSE = 0.01, 0.05
"""Fractions of photosites at the white level above which a clean photo is warned about / refused."""
DARK_WARN, DARK_REFUSE = 0.02, 0.002
"""Median signal, as a fraction of full scale (white - black), below which a photo is warned about / refused."""
ISO_WARN, ISO_REFUSE = 1600.0, 6400.0
"""ISO above which a clean photo is warned about / refused: its own noise rides along in the ground truth."""
NOISE_WARN = 0.01
"""Estimated noise (standard deviation) as a fraction of full scale above which a photo is warned about."""
CLIPPED_LEVEL = 0.98
"""A photosite at this fraction of full scale or more counts as clipped (sensors saturate a little below white)."""


@dataclass
class PhotoFigures:
    """What a clean photo is judged by; fractions of full scale (white - black)."""

    meta: FrameMeta
    clipped: float  # fraction of photosites at CLIPPED_LEVEL or more
    median: float  # median signal
    noise: float  # estimated noise standard deviation


@dataclass
class CleanPhoto:
    """One usable clean photo: its packed mosaic, its rendering and what its file says."""

    path: str
    packed: PackedArray  # reads as (h, w, 4) float32 in [0, 1], normalised as pack_raw does
    gt: np.ndarray  # (2h, 2w, 3) float16: SID's rendering, the ground truth of its synthetic patches
    meta: FrameMeta

    @property
    def packed_shape(self) -> tuple[int, int]:
        return int(self.packed.shape[0]), int(self.packed.shape[1])


def _figures_of(frame: RawFrame) -> PhotoFigures:
    """The figures of a read photo: clipping, median signal, noise from the two greens' difference."""
    scale = frame.meta.white_level - float(frame.meta.black_tile().mean())
    signal = frame.signal() / np.float32(scale)
    even, odd = signal[0::2, 0::2], signal[1::2, 1::2]  # the two greens of RGGB/BGGR ...
    if frame.meta.cfa in ("GRBG", "GBRG"):
        even, odd = signal[0::2, 1::2], signal[1::2, 0::2]  # ... or of GRBG/GBRG
    diff = (even - odd).ravel()
    mad = float(np.median(np.abs(diff - np.median(diff))))
    return PhotoFigures(meta=frame.meta, clipped=float(np.mean(signal >= CLIPPED_LEVEL)),
                        median=float(np.median(signal)), noise=1.4826 * mad / np.sqrt(2.0))


def _figures(path: str, cache: DecodeCache) -> PhotoFigures:
    """The photo's figures, from the decode cache or read now (and cached)."""
    where = cache.cache_dir / f"{file_key(path, 'clean')}_clean.json"
    if where.exists():
        data = json.loads(where.read_text())
        meta = data.pop("meta")
        meta["size"] = tuple(meta["size"])
        meta["black_level"] = tuple(tuple(row) for row in meta["black_level"])
        return PhotoFigures(meta=FrameMeta(**meta), **data)
    figures = _figures_of(read_frame(path))
    atomic.write_text(where, json.dumps(dataclasses.asdict(figures)))
    return figures


def judge_photo(figures: PhotoFigures) -> tuple[str | None, list[str]]:
    """(why the photo is refused or None, what to warn about) from its figures (module docstring)."""
    iso = figures.meta.iso
    if figures.clipped > CLIPPED_REFUSE:
        return (f"is clipped: {figures.clipped:.1%} of its photosites are at the white level (more than "
                f"{CLIPPED_REFUSE:.0%}); clipped areas are no ground truth: use a shorter exposure"), []
    if figures.median < DARK_REFUSE:
        return (f"is too dark: its median is {figures.median:.2%} of full scale (below {DARK_REFUSE:.1%}); "
                "divided by the ratio nothing of it is left"), []
    if iso is not None and iso > ISO_REFUSE:
        return (f"is noisy: ISO {iso_text(iso)} (above {ISO_REFUSE:g}); its own noise would be the ground "
                "truth: use base-ISO exposures"), []
    warnings = []
    if figures.clipped > CLIPPED_WARN:
        warnings.append(f"{figures.clipped:.1%} of its photosites are clipped (above {CLIPPED_WARN:.0%})")
    if figures.median < DARK_WARN:
        warnings.append(f"it is dark: median {figures.median:.2%} of full scale (below {DARK_WARN:.0%})")
    if iso is not None and iso > ISO_WARN:
        warnings.append(f"ISO {iso_text(iso)} is above {ISO_WARN:g}: its own noise rides along in the ground truth")
    elif figures.noise > NOISE_WARN:
        warnings.append(f"it looks noisy: about {figures.noise:.2%} of full scale (above {NOISE_WARN:.0%}); "
                        "its own noise rides along in the ground truth")
    return None, warnings


def _load_photo(path: str, cache: DecodeCache, first: CleanPhoto | None, report: Callable[[str], None]
                ) -> CleanPhoto:
    """One clean photo, judged and decoded; SidFtError naming it when it is refused or does not fit."""
    figures = _figures(path, cache)
    if first is not None:  # another ISO is fine: only size, CFA and camera must agree
        reason = mismatch(dataclasses.replace(figures.meta, iso=first.meta.iso), first.meta, first.path,
                          "first clean photo")
        if reason is not None:
            raise SidFtError(path, reason)
    refused, warnings = judge_photo(figures)
    if refused:
        raise SidFtError(path, refused)
    for warning in warnings:
        report(f"warning: clean photo {path}: {warning}")
    packed, _ = cache.packed(path)
    gt = cache.reference(path)
    h, w = packed.shape[:2]
    if gt.shape[0] != 2 * h or gt.shape[1] != 2 * w:
        raise SidFtError(path, f"renders to {gt.shape[1]}x{gt.shape[0]} pixels, not twice its packed {w}x{h}")
    return CleanPhoto(path=path, packed=packed, gt=gt, meta=figures.meta)


def load_clean_photos(clean_dir: str | os.PathLike, cache: DecodeCache, report: Callable[[str], None],
                      skipped: list[str] | None = None) -> list[CleanPhoto]:
    """The usable clean photos in ``clean_dir`` (RAW files, any names), decoded through ``cache``.

    Photos that are refused (module docstring), unreadable, or of another size, CFA or camera than
    the first usable one are reported (``skipped: path: reason``), appended to ``skipped`` and left
    out; warnings are reported.  SidFtError when none is usable.
    """
    paths = [str(p) for p in list_raw_files(clean_dir, "clean photos")]
    photos: list[CleanPhoto] = []
    for path in paths:
        try:
            photos.append(_load_photo(path, cache, photos[0] if photos else None, report))
        except CacheWriteError:
            raise
        except SidFtError as err:
            report(f"skipped: {err}")
            if skipped is not None:
                skipped.append(str(err))
    if not photos:
        raise SidFtError(clean_dir, f"no usable clean photo (of {len(paths)}); see the messages above")
    return photos
