"""How much disk the training caches will take, checked before the first byte is written.

Per training pair, from the RAW headers alone (LibRaw opens the file without
decoding the pixels; a few milliseconds a file):

* decoded short exposure: the packed sensor integers, ``h*w*C`` uint16
  (:class:`sid_ft.data.sampling.PackedArray`), h, w the packed size, C 4 (Bayer) or 9 (X-Trans);
* ground truth of each long exposure: ``(s*h)*(s*w)*3`` float16, s 2 or 3;
* feature cache (cached g_add mode): ``g_conv9_2`` ``h*w*32`` and ``g_conv10``
  ``h*w*3*s*s`` values of ``--feature-dtype`` per short exposure and ratio.

Files already in the cache are not counted again.  :func:`check_caches` compares the
rest with the free space of the cache's file system and ``--cache-max-gb``.
"""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sid_ft.data.pairs import Pair
from sid_ft.errors import SidFtError

NPY_HEADER = 128  # bytes before the data of a .npy file (format 1.0, small header)
DEFAULT_FREE_FRACTION = 0.9  # without --cache-max-gb the caches may fill 90% of the free space


@dataclass
class RawGeometry:
    """Packed size of a RAW file, read from its header: ``(h, w)`` packed pixels, ``channels``, ``scale``."""

    h: int
    w: int
    channels: int
    scale: int


def raw_geometry(path: str | os.PathLike) -> RawGeometry | None:
    """The packed geometry of ``path`` without decoding it; None when LibRaw cannot open it (reported later).

    X-Trans sizes are an upper bound (the packing may drop a 6x6 tile row/column to align the phase).
    """
    import rawpy

    try:
        with rawpy.imread(os.fspath(path)) as raw:
            height, width = int(raw.sizes.height), int(raw.sizes.width)
            pattern = raw.raw_pattern
    except (rawpy.LibRawError, OSError, ValueError):
        return None
    if pattern is not None and np.asarray(pattern).shape == (6, 6):
        return RawGeometry(height // 6 * 2, width // 6 * 2, 9, 3)
    return RawGeometry(height // 2, width // 2, 4, 2)


def _npy(n_values: int, itemsize: int) -> int:
    return NPY_HEADER + n_values * itemsize


@dataclass
class CacheEstimate:
    """Bytes the caches of a run will add (``decoded``, ``features``) and what is already there."""

    decoded: int = 0
    features: int = 0
    cached_already: int = 0
    pairs: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.decoded + self.features


def estimate_caches(pairs: Sequence[Pair], cache_dir: str | os.PathLike, feature_cache: bool,
                    feature_dtype: str = "float16", ratio_cap: float = 300.0) -> CacheEstimate:
    """Estimate the bytes the decode cache (and, with ``feature_cache``, the feature cache) will add."""
    from sid_ft.data.sampling import file_key
    from sid_ft.nets.unet import FEATURE_CHANNELS

    cache_dir = Path(cache_dir)
    est = CacheEstimate()
    feature_bytes = np.dtype(feature_dtype).itemsize
    geometry: dict[str, RawGeometry | None] = {}
    seen_long: set[str] = set()
    for pair in pairs:
        for path in (pair.short_path, pair.long_path):
            if path not in geometry:
                geometry[path] = raw_geometry(path)
        g = geometry[pair.short_path]
        if g is None or geometry[pair.long_path] is None:
            est.unreadable.append(pair.short_path if g is None else pair.long_path)
            continue
        est.pairs += 1
        try:
            short_key = file_key(pair.short_path, "packed")
            long_key = file_key(pair.long_path, "gt")
        except OSError:
            est.unreadable.append(pair.short_path)
            continue
        packed = _npy(g.h * g.w * g.channels, 2)
        if (cache_dir / f"{short_key}_packed_u16.npy").exists():
            est.cached_already += packed
        else:
            est.decoded += packed
        if pair.long_path not in seen_long:
            seen_long.add(pair.long_path)
            gt = _npy(g.scale * g.h * g.scale * g.w * 3, 2)
            if (cache_dir / f"{long_key}_gt.npy").exists():
                est.cached_already += gt
            else:
                est.decoded += gt
        if feature_cache:
            feats = _npy(g.h * g.w * FEATURE_CHANNELS, feature_bytes) + _npy(g.h * g.w * 3 * g.scale ** 2,
                                                                             feature_bytes)
            ratio = pair.ratio(ratio_cap)
            done = glob.glob(os.path.join(glob.escape(str(cache_dir)),
                                          f"{short_key}_*_r{ratio:g}_{feature_dtype}_feat.npy"))
            if done:  # for some base network: counted as there (an estimate, not a promise)
                est.cached_already += feats
            else:
                est.features += feats
    return est


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.3f} MB"


def free_bytes(folder: str | os.PathLike) -> tuple[Path, int]:
    """Free bytes (for this user) on the file system of ``folder`` or of its nearest existing parent."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p, shutil.disk_usage(p).free


def check_caches(est: CacheEstimate, cache_dir: str | os.PathLike, cache_max_gb: float | None,
                 report: Callable[[str], None] = print) -> bool:
    """Whether the feature cache fits (True), or only the decoded images (False); SidFtError when not even those.

    Limit: ``cache_max_gb`` (all of this run's caches, those already written included) and the
    free space; without ``cache_max_gb``, :data:`DEFAULT_FREE_FRACTION` of the free space.
    """
    where, free = free_bytes(cache_dir)
    if cache_max_gb is None:
        room = int(free * DEFAULT_FREE_FRACTION)
        limit_text = f"{DEFAULT_FREE_FRACTION:.0%} of the {_gb(free)} free on {where}"
    else:
        if cache_max_gb <= 0:
            raise SidFtError(None, f"--cache-max-gb {cache_max_gb:g}: must be more than 0")
        room = min(free, int(cache_max_gb * 1e9) - est.cached_already)
        limit_text = (f"--cache-max-gb {cache_max_gb:g} less the {_gb(est.cached_already)} already cached, "
                      f"{_gb(free)} free on {where}")
    if est.total <= room:
        return True
    what = (f"the caches of {est.pairs} pair(s) need {_gb(est.total)} more (decoded images "
            f"{_gb(est.decoded)}, frozen-network features {_gb(est.features)}; {_gb(est.cached_already)} "
            f"already cached), but the room is {_gb(max(room, 0))} ({limit_text})")
    if est.features and est.decoded <= room:
        report(f"{what}: training without the feature cache (as --no-feature-cache: the frozen network runs "
               "on every patch, the same updates, slower). Free space, use --cache-dir on a larger disk or "
               "raise --cache-max-gb to cache the features")
        return False
    raise SidFtError(cache_dir, f"{what}. Nothing was written. Ways out: --cache-dir on a disk with more "
                                "room, free space, a larger --cache-max-gb, or fewer pairs (--split, a shorter "
                                "--train-list)")
