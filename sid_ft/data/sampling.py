"""Training data: decode each RAW pair once into an on-disk cache, sample patches in the background.

SID keeps every decoded image in RAM (about 37 GB for its Sony set).  Here each
file is decoded once into ``<cache_dir>/*.npy`` and read back memory-mapped, so
memory does not grow with the dataset: the operating system pages in only the
patches that are sampled.  A background thread cuts the patches and fills a
bounded queue, so a training step does not wait for I/O after warm-up.

Arrays in the cache:

* packed short exposure as the sensor's integers, ``(h, w, C)`` uint16, and their
  levels (``*_levels.json``): 2 bytes a value, and :class:`PackedArray` normalises
  crops to exactly the float32 values of :func:`sid_ft.io.pack.pack_raw` (float16 would
  round them: measured in the README);
* SID rendering of the long exposure, ``(scale*h, scale*w, 3)`` float16 in [0, 1];
* (trainer) frozen-network features, see :mod:`sid_ft.training.features`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from sid_ft.io import atomic
from sid_ft.runtime import preempt
from sid_ft.io.atomic import atomic_path
from sid_ft.data.pairs import Pair
from sid_ft.errors import SidFtError
from sid_ft.io.raw import load_raw_integers
from sid_ft.io.pack import PackedIntegers
from sid_ft.io.render import render_reference


def file_key(path: str | os.PathLike, *extra: object) -> str:
    """A cache key for ``path``: its absolute path, size and modification time (plus ``extra``)."""
    p = Path(path).resolve()
    st = p.stat()
    text = "|".join([str(p), str(st.st_size), str(st.st_mtime_ns), *map(str, extra)])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class CacheWriteError(SidFtError):
    """A cache file could not be written (e.g. the disk is full): stops the run, never skips a pair."""


def _write_error(path: Path, exc: OSError) -> CacheWriteError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += (" (nothing half-written is left; free space, pass --cache-dir on a larger disk, "
                   "or see --cache-max-gb)")
    return CacheWriteError(path, f"cannot write the cache file: {reason}")


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.npy) through a temporary file and a rename.

    A failed write (e.g. ENOSPC, the disk is full) leaves no file and raises SidFtError naming ``path``.
    """
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    except OSError as exc:
        raise _write_error(path, exc) from None


def load_npy(path: Path) -> np.ndarray:
    """Memory-map a cached array read-only."""
    return np.load(path, mmap_mode="r")


class PackedArray:
    """A packed image stored as integers and levels that reads like a float32 ``(h, w, C)`` array.

    Indexing with two slices (``a[y0:y1, x0:x1]``) returns the normalised float32 crop, bit for bit
    what :func:`sid_ft.io.pack.pack_raw` gives for those pixels; ``np.asarray(a)`` the whole image.
    """

    def __init__(self, packed: PackedIntegers):
        self.packed = packed
        self.shape = packed.values.shape
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, index) -> np.ndarray:
        if not (isinstance(index, tuple) and len(index) == 2 and all(isinstance(i, slice) for i in index)):
            raise TypeError("PackedArray supports a[y0:y1, x0:x1] only")
        ys, xs = (i.indices(n) for i, n in zip(index, self.shape[:2]))
        if ys[2] != 1 or xs[2] != 1:
            raise TypeError("PackedArray supports contiguous crops only")
        return self.packed.normalise(self.packed.values[index], ys[0], xs[0])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.packed.normalise()
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclass
class CachedPair:
    """One decoded training pair: memory-mapped arrays plus its amplification ratio."""

    pair: Pair
    ratio: float
    short: "np.ndarray | PackedArray"  # (h, w, C) float32 values, packed, not amplified
    gt: np.ndarray  # (scale*h, scale*w, 3) float16
    short_key: str

    @property
    def packed_shape(self) -> tuple[int, int]:
        return int(self.short.shape[0]), int(self.short.shape[1])


def packed_cache_file(cache_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Where :meth:`DecodeCache.packed` keeps the packed integers of ``path`` (``<key>_packed_u16.npy``)."""
    return Path(cache_dir) / f"{file_key(path, 'packed')}_packed_u16.npy"


def reference_cache_file(cache_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Where :meth:`DecodeCache.reference` keeps the rendering of ``path`` (``<key>_gt.npy``)."""
    return Path(cache_dir) / f"{file_key(path, 'gt')}_gt.npy"


class DecodeCache:
    """Decodes RAW files once into ``cache_dir`` and hands out memory-mapped arrays."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def packed(self, path: str) -> tuple[PackedArray, str]:
        """The packed mosaic of ``path`` (reads as ``(h, w, C)`` float32) and its cache key.

        Stored as ``<key>_levels.json`` (written first) and ``<key>_packed_u16.npy``.
        """
        key = file_key(path, "packed")
        values_path = packed_cache_file(self.cache_dir, path)
        levels_path = self.cache_dir / f"{key}_levels.json"
        if not (values_path.exists() and levels_path.exists()):
            packed = load_raw_integers(path)
            levels = {"black": packed.black.tolist(), "white": packed.white}
            try:
                atomic.write_text(levels_path, json.dumps(levels))
            except OSError as exc:
                raise _write_error(levels_path, exc) from None
            save_npy_atomic(values_path, packed.values)
        levels = json.loads(levels_path.read_text())
        packed = PackedIntegers(values=load_npy(values_path),
                                        black=np.asarray(levels["black"], np.float32), white=float(levels["white"]))
        return PackedArray(packed), key

    def reference(self, path: str) -> np.ndarray:
        """SID rendering of ``path`` as float16 ``(H, W, 3)``."""
        target = reference_cache_file(self.cache_dir, path)
        if not target.exists():
            save_npy_atomic(target, render_reference(path).astype(np.float16))
        return load_npy(target)

    def load_pair(self, pair: Pair, ratio_cap: float = 300.0) -> CachedPair:
        """Decode (or fetch from the cache) both files of ``pair``; SidFtError naming the bad file."""
        short, key = self.packed(pair.short_path)
        gt = self.reference(pair.long_path)
        h, w = short.shape[:2]
        if gt.shape[0] % h or gt.shape[1] % w or gt.shape[0] // h != gt.shape[1] // w:
            raise SidFtError(
                pair.long_path,
                f"long exposure renders to {gt.shape[1]}x{gt.shape[0]} pixels, which does not match "
                f"the short exposure {pair.short_path} (packed {w}x{h})",
            )
        return CachedPair(pair=pair, ratio=pair.ratio(ratio_cap), short=short, gt=gt, short_key=key)

    def load_pairs(
        self, pairs: Sequence[Pair], ratio_cap: float = 300.0, on_error: Callable[[SidFtError], None] | None = None
    ) -> list[CachedPair]:
        """Decode every pair; bad pairs are reported through ``on_error`` and skipped.

        Raises SidFtError only when no usable pair is left (or when ``on_error`` is None).
        """
        good: list[CachedPair] = []
        for pair in pairs:
            preempt.check()  # SIGTERM/SIGUSR1 while decoding: stop between files
            try:
                good.append(self.load_pair(pair, ratio_cap))
            except SidFtError as err:
                if on_error is None or isinstance(err, CacheWriteError):
                    raise
                on_error(err)
        if not good:
            raise SidFtError(None, f"no usable training pair left (of {len(pairs)}); see the errors above")
        return good


@dataclass
class SyntheticCrop:
    """What makes a patch synthetic: the dark part of its short exposure, added in the graph
    (:mod:`sid_ft.training.synthesis`) to shot noise drawn there from the clean crop (``Patch.packed[0]``)."""

    clean_path: str  # the clean photo the crop comes from
    dark: np.ndarray  # (p, p, C) float32, DN above the metadata black: a dark-frame crop, or the mean dark
    noise_seed: tuple[int, int]  # (--seed, step): the stateless seed of the step's noise


@dataclass
class Patch:
    """One training sample: crops at packed resolution, the ground-truth crop, and SID's augmentation flags."""

    index: int  # which pair (which clean photo for a synthetic patch)
    packed: list[np.ndarray]  # each (p, p, c) float32; a synthetic patch: [the clean crop, normalised]
    gt: np.ndarray  # (scale*p, scale*p, 3) float32
    ratio: float
    flags: np.ndarray  # (3,) bool: flip rows, flip columns, transpose
    synthetic: SyntheticCrop | None = None  # None: a crop of a real pair


class PatchSampler:
    """Random patches as SID samples them: a random pair, a random crop, random flips and transpose.

    ``sources[i]`` holds the packed-resolution arrays of pair ``i`` (e.g. the short
    exposure, or cached network features), ``gts[i]`` its full-resolution ground truth.
    Crops are cut here; the flips are returned as flags and applied in the graph, so
    that they can act after a frozen network (see :func:`sid_ft.training.augment.augment`).

    Each step takes ``batch_size`` independent patches (each its own pair, crop and flips).
    The patches of training step ``i`` depend only on ``seed`` and ``i`` (a generator seeded
    with ``(seed, i)`` per step, ``first_step`` being the step the run starts or resumes at),
    so a run that was stopped and resumed sees exactly the patches an uninterrupted run sees.
    """

    def __init__(
        self,
        sources: Sequence[Sequence[np.ndarray]],
        gts: Sequence[np.ndarray],
        ratios: Sequence[float],
        patch_size: int,
        seed: int = 0,
        augment: bool = True,
        names: Sequence[str] | None = None,
        first_step: int = 0,
        batch_size: int = 1,
    ):
        if not sources:
            raise SidFtError(None, "no training pairs to sample from")
        self.sources, self.gts, self.ratios = list(sources), list(gts), list(ratios)
        self.patch_size = int(patch_size)
        self.augment = augment
        if int(seed) < 0:
            raise SidFtError(None, f"--seed {seed}: must be 0 or more")
        self.seed = int(seed)
        self.step = int(first_step)  # the step whose patches sample() returns next
        self.batch_size = int(batch_size)
        for i, arrays in enumerate(self.sources):
            h, w = arrays[0].shape[:2]
            if h < self.patch_size or w < self.patch_size:
                name = names[i] if names else f"pair {i}"
                raise SidFtError(
                    name,
                    f"patch size {self.patch_size} is larger than the packed image ({w}x{h}); "
                    f"use --patch-size {min(h, w)} or less",
                )

    def sample(self) -> list[Patch]:
        """The ``batch_size`` patches of the next step (one caller at a time: steps are numbered in call order)."""
        rng = np.random.default_rng([self.seed, self.step])
        self.step += 1
        return [self.draw(rng) for _ in range(self.batch_size)]

    def draw(self, rng: np.random.Generator) -> Patch:
        """One patch from ``rng``: a random pair, crop and flips."""
        i = int(rng.integers(len(self.sources)))
        arrays, gt = self.sources[i], self.gts[i]
        h, w = arrays[0].shape[:2]
        s = gt.shape[0] // h
        p = self.patch_size
        y = int(rng.integers(h - p + 1))
        x = int(rng.integers(w - p + 1))
        packed = [np.asarray(a[y : y + p, x : x + p], dtype=np.float32) for a in arrays]
        gt_crop = np.asarray(gt[s * y : s * (y + p), s * x : s * (x + p)], dtype=np.float32)
        flags = rng.integers(0, 2, size=3).astype(bool) if self.augment else np.zeros(3, bool)
        return Patch(index=i, packed=packed, gt=gt_crop, ratio=float(self.ratios[i]), flags=flags)


class BackgroundLoader:
    """Runs ``produce()`` in a daemon thread and keeps up to ``depth`` results ready.

    Iterating yields results in order; an exception in the producer is re-raised in
    the consumer.  ``close()`` stops the thread.
    """

    def __init__(self, produce: Callable[[], object], depth: int = 8):
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sid_ft-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = (True, self._produce())
            except BaseException as exc:  # handed to the consumer
                item = (False, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    def get(self) -> object:
        ok, value = self._queue.get()
        if not ok:
            raise value  # type: ignore[misc]
        return value

    def __iter__(self) -> Iterator[object]:
        while True:
            yield self.get()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "BackgroundLoader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
