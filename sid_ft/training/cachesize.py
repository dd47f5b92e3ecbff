"""How much disk the training caches will take, checked before the first byte is written.

Per training pair, from the RAW headers alone (LibRaw opens the file without
decoding the pixels; a few milliseconds a file):

* decoded short exposure: the packed sensor integers, ``h*w*C`` uint16
  (:class:`sid_ft.data.sampling.PackedArray`), h, w the packed size, C 4 (Bayer) or 9 (X-Trans);
* ground truth of each long exposure: ``(s*h)*(s*w)*3`` float16, s 2 or 3;
* feature cache (cached g_add mode): ``g_conv9_2`` ``h*w*32`` and ``g_conv10``
  ``h*w*3*s*s`` values of ``--feature-dtype`` per short exposure and ratio.

The synthetic pairs' inputs (``--clean-dir``, ``--dark-frames``) go through the same decode cache and
are counted the same way: a clean photo as a short exposure (packed) and a long one (ground truth), a
dark frame as a short exposure.  The small JSON files beside them (levels, a clean photo's figures) are
not counted.

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
    """Bytes the caches of a run will add (``decoded``, ``features``) and what is already there.

    ``pairs``, ``clean_photos`` and ``dark_frames`` count the inputs whose cache files are in it.
    """

    decoded: int = 0
    features: int = 0
    cached_already: int = 0
    pairs: int = 0
    clean_photos: int = 0
    dark_frames: int = 0
    unreadable: list[str] = field(default_factory=list)
    counted: set[str] = field(default_factory=set, repr=False)  # names of the decode-cache files counted

    @property
    def total(self) -> int:
        return self.decoded + self.features

    def count_file(self, cache_file: Path, nbytes: int) -> None:
        """Count one decode-cache file once: as there when it exists, else as bytes to decode."""
        if cache_file.name in self.counted:
            return
        self.counted.add(cache_file.name)
        if cache_file.exists():
            self.cached_already += nbytes
        else:
            self.decoded += nbytes


def _packed_bytes(g: RawGeometry) -> int:
    return _npy(g.h * g.w * g.channels, 2)


def _reference_bytes(g: RawGeometry) -> int:
    return _npy(g.scale * g.h * g.scale * g.w * 3, 2)


def _count_features(est: CacheEstimate, pair: Pair, g: RawGeometry, cache_dir: Path, feature_dtype: str,
                    ratio_cap: float) -> None:
    """The feature cache of one short exposure and ratio (``g_conv9_2`` and ``g_conv10``)."""
    from sid_ft.data.sampling import file_key
    from sid_ft.nets.unet import FEATURE_CHANNELS

    nbytes = np.dtype(feature_dtype).itemsize
    feats = _npy(g.h * g.w * FEATURE_CHANNELS, nbytes) + _npy(g.h * g.w * 3 * g.scale ** 2, nbytes)
    done = glob.glob(os.path.join(glob.escape(str(cache_dir)), f"{file_key(pair.short_path, 'packed')}_*_"
                                                               f"r{pair.ratio(ratio_cap):g}_{feature_dtype}_feat.npy"))
    if done:  # for some base network: counted as there (an estimate, not a promise)
        est.cached_already += feats
    else:
        est.features += feats


def _count_pairs(est: CacheEstimate, pairs: Sequence[Pair], cache_dir: Path, feature_cache: bool,
                 feature_dtype: str, ratio_cap: float) -> None:
    """Packed short exposures, ground truths of the long exposures (each once) and, with ``feature_cache``,
    the features of each short exposure and ratio."""
    from sid_ft.data.sampling import packed_cache_file, reference_cache_file

    geometry: dict[str, RawGeometry | None] = {}
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
            short_file = packed_cache_file(cache_dir, pair.short_path)
            long_file = reference_cache_file(cache_dir, pair.long_path)
        except OSError:
            est.unreadable.append(pair.short_path)
            continue
        est.count_file(short_file, _packed_bytes(g))
        est.count_file(long_file, _reference_bytes(g))
        if feature_cache:
            _count_features(est, pair, g, cache_dir, feature_dtype, ratio_cap)


def _geometry_or_note(est: CacheEstimate, path: Path) -> RawGeometry | None:
    """``path``'s geometry; None (and noted in ``est.unreadable``) when LibRaw cannot open it: its loader names it."""
    g = raw_geometry(path)
    if g is None:
        est.unreadable.append(str(path))
    return g


def _count_synthetic(est: CacheEstimate, clean_dir: str | os.PathLike | None,
                     dark_frames: str | os.PathLike | None, cache_dir: Path) -> None:
    """Clean photos (packed mosaic and rendering, like a pair) and dark frames (packed mosaic), listed as
    their loaders list them (:func:`sid_ft.io.raw.list_raw_files`; SidFtError for a missing or empty folder)."""
    from sid_ft.data.sampling import packed_cache_file, reference_cache_file
    from sid_ft.io.raw import list_raw_files

    clean = list_raw_files(clean_dir, "clean photos") if clean_dir else []
    darks = list_raw_files(dark_frames, "dark frames") if dark_frames else []
    for path in clean:
        g = _geometry_or_note(est, path)
        if g is not None:
            est.clean_photos += 1
            est.count_file(packed_cache_file(cache_dir, path), _packed_bytes(g))
            est.count_file(reference_cache_file(cache_dir, path), _reference_bytes(g))
    for path in darks:
        g = _geometry_or_note(est, path)
        if g is not None:
            est.dark_frames += 1
            est.count_file(packed_cache_file(cache_dir, path), _packed_bytes(g))


def estimate_caches(pairs: Sequence[Pair], cache_dir: str | os.PathLike, feature_cache: bool,
                    feature_dtype: str = "float16", ratio_cap: float = 300.0, *,
                    clean_dir: str | os.PathLike | None = None,
                    dark_frames: str | os.PathLike | None = None) -> CacheEstimate:
    """Estimate the bytes the decode cache (and, with ``feature_cache``, the feature cache) will add.

    Counts ``pairs`` and the synthetic pairs' inputs: the clean photos of ``clean_dir`` and the dark
    frames of ``dark_frames`` (``--clean-dir``, ``--dark-frames``).  A file that several inputs share
    (a clean photo that is also a long exposure) is counted once.
    """
    cache_dir = Path(cache_dir)
    est = CacheEstimate()
    _count_pairs(est, pairs, cache_dir, feature_cache, feature_dtype, ratio_cap)
    _count_synthetic(est, clean_dir, dark_frames, cache_dir)
    return est


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.3f} MB"


def _inputs_text(est: CacheEstimate) -> str:
    """'2 pair(s)', or with synthetic inputs e.g. '2 pair(s), 3 clean photo(s) and 8 dark frame(s)'."""
    parts = [f"{est.pairs} pair(s)"] if est.pairs or not (est.clean_photos or est.dark_frames) else []
    if est.clean_photos:
        parts.append(f"{est.clean_photos} clean photo(s)")
    if est.dark_frames:
        parts.append(f"{est.dark_frames} dark frame(s)")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


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
    what = (f"the caches of {_inputs_text(est)} need {_gb(est.total)} more (decoded images "
            f"{_gb(est.decoded)}, frozen-network features {_gb(est.features)}; {_gb(est.cached_already)} "
            f"already cached), but the room is {_gb(max(room, 0))} ({limit_text})")
    if est.features and est.decoded <= room:
        report(f"{what}: training without the feature cache (as --no-feature-cache: the frozen network runs "
               "on every patch, the same updates, slower). Free space, use --cache-dir on a larger disk or "
               "raise --cache-max-gb to cache the features")
        return False
    raise SidFtError(cache_dir, f"{what}. Nothing was written. Ways out: --cache-dir on a disk with more "
                                "room, free space, a larger --cache-max-gb, or fewer pairs (--split, a shorter "
                                "--train-list)" + (" or fewer files in --clean-dir / --dark-frames"
                                                   if est.clean_photos or est.dark_frames else ""))
