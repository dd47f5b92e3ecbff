"""Synthetic training patches: a clean photo's crop plus the dark part of a short exposure; the noise comes later.

Each synthetic patch is cut here, in the background loader, and noised in the graph
(:mod:`sid_ft.training.synthesis`, stateless random ops seeded by ``(--seed, step)``):

* the clean crop: the photo's packed mosaic, normalised as ``pack_raw`` does, and the same
  crop of its SID rendering as ground truth (:mod:`sid_ft.data.clean_photos`);
* the dark crop, in DN above the metadata black level (:class:`DarkOffsets`): in mode
  ``sampled`` a random crop of a real dark frame (it brings whatever the sensor does:
  heavy tails, row and column noise, the fixed pattern, glow); in mode ``parametric`` a
  crop of the profile's mean dark (black per position plus the fixed pattern), to which
  the graph adds the fitted temporal noise;
* a ratio drawn from ``--ratios`` and SID's flips.

In the packed domain every crop of a Bayer frame keeps the CFA phase (channel k is colour
index k wherever the crop starts), so dark crops are taken anywhere in the frame,
independently of where the clean crop is.  :class:`SyntheticNoise` holds the numbers the
graph needs, per packed channel, from a :class:`sid_ft.data.noise_profile.NoiseProfile`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sid_ft.data.clean_photos import CleanPhoto
from sid_ft.data.noise_profile import NoiseProfile
from sid_ft.data.sampling import Patch, PatchSampler, SyntheticCrop
from sid_ft.errors import SidFtError
from sid_ft.io.dng import cfa_indices
from sid_ft.io.pack import pack_mosaic

__all__ = ["NOISE_MODES", "DarkOffsets", "PreviewSource", "SyntheticNoise", "SyntheticSampler",
           "channel_positions", "noise_from_profile"]

NOISE_MODES = ("sampled", "parametric")
"""'sampled': real dark-frame crops; 'parametric': the profile's fitted noise on its mean dark."""


@dataclass(frozen=True)
class SyntheticNoise:
    """What the graph's noise needs, per packed channel k (colour index k of a Bayer mosaic).

    ``black`` and ``white`` are the metadata levels of the noisy short exposure (the dark frames'
    camera at their ISO) in DN: the network input is normalised with them as ``pack_raw`` would.
    The parametric parts (``read_*``, ``row_noise``, ``column_noise``) are only used in mode
    'parametric'; row and column noise per mosaic row / column parity, ``row_parity[k]`` and
    ``column_parity[k]`` the parity of channel k's photosites.
    """

    mode: str  # 'sampled' | 'parametric'
    gain: float  # K, DN per electron
    black: tuple[float, ...]  # (C,) DN
    white: float  # DN
    read_scale: tuple[float, ...]  # (C,) DN per unit of the standard Tukey-lambda quantile
    read_shape: float  # Tukey lambda
    row_noise: tuple[float, float]  # DN (standard deviation), even / odd mosaic rows
    column_noise: tuple[float, float]  # DN, even / odd mosaic columns
    row_parity: tuple[int, ...]  # (C,)
    column_parity: tuple[int, ...]  # (C,)

    @property
    def full_scale(self) -> np.ndarray:
        """(C,) float32 ``white - black``, DN: what 1.0 of a normalised value is."""
        return (np.float64(self.white) - np.asarray(self.black, np.float64)).astype(np.float32)


def channel_positions(cfa: str) -> list[tuple[int, int]]:
    """(row, column) in the 2x2 tile of colour index k = 0 R, 1 G, 2 B, 3 G2 for a Bayer layout ('RGGB', ...)."""
    tile = cfa_indices(cfa)
    return [tuple(int(v) for v in np.argwhere(tile == k)[0]) for k in range(4)]


def noise_from_profile(profile: NoiseProfile, mode: str) -> SyntheticNoise:
    """The graph's noise numbers from a calibrated profile (``mode`` 'sampled' or 'parametric')."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
    positions = channel_positions(profile.cfa)
    black = np.asarray(profile.black_level_metadata, np.float64)
    per_position = np.asarray(profile.read_noise_per_position, np.float64)
    unit = profile.read_noise_scale / profile.read_noise if profile.read_noise > 0 else 0.0
    return SyntheticNoise(
        mode=mode, gain=float(profile.gain), black=tuple(float(black[p]) for p in positions),
        white=float(profile.white_level), read_scale=tuple(float(per_position[p] * unit) for p in positions),
        read_shape=float(profile.read_noise_shape),
        row_noise=tuple(float(v) for v in profile.row_noise_per_phase),
        column_noise=tuple(float(v) for v in profile.column_noise_per_phase),
        row_parity=tuple(p[0] for p in positions), column_parity=tuple(p[1] for p in positions))


class DarkOffsets:
    """The dark part of synthetic short exposures: crops ``(p, p, C)`` float32 in DN above the metadata black.

    ``frames`` are packed arrays ``(h, w, C)`` (the sensor's uint16 values of dark frames, or one
    float32 mean dark already above black); ``black`` (C,) is subtracted from every crop.
    """

    def __init__(self, frames: Sequence[np.ndarray], black: np.ndarray, names: Sequence[str]):
        if not frames:
            raise SidFtError(None, "no dark frames to crop")
        self.frames, self.names = list(frames), list(names)
        self.black = np.asarray(black, np.float32)

    @classmethod
    def sampled(cls, packed_frames: Sequence[np.ndarray], noise: SyntheticNoise, names: Sequence[str]
                ) -> "DarkOffsets":
        """Real dark frames (packed sensor values, black included) minus ``noise.black``."""
        return cls(packed_frames, np.asarray(noise.black, np.float32), names)

    @classmethod
    def parametric(cls, profile: NoiseProfile, noise: SyntheticNoise, where: str) -> "DarkOffsets":
        """The profile's mean dark, packed: black level per position plus the fixed pattern, minus
        ``noise.black`` (a constant when the profile has no fixed pattern)."""
        h, w = profile.image_size
        positions = channel_positions(profile.cfa)
        black = np.asarray(noise.black, np.float32)
        level = np.asarray([profile.black_level[p] for p in positions], np.float32) - black
        if profile.fixed_pattern is None:
            mean_dark = np.zeros((h // 2, w // 2, 4), np.float32)
        else:
            mean_dark = pack_mosaic(profile.fixed_pattern, cfa_indices(profile.cfa), (0.0,) * 4, 1.0)
        return cls([mean_dark + level], np.zeros(4, np.float32), [where])

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the packed frames."""
        return int(self.frames[0].shape[0]), int(self.frames[0].shape[1])

    def crop(self, i: int, y: int, x: int, p: int) -> np.ndarray:
        """(p, p, C) float32 crop of frame ``i`` at packed (y, x), DN above the metadata black."""
        return np.asarray(self.frames[i][y:y + p, x:x + p], np.float32) - self.black


@dataclass
class PreviewSource:
    """What :func:`sid_ft.training.summaries.sample_images` crops its preview from (a PatchSampler's fields)."""

    patch_size: int
    sources: list  # [[packed short (h, w, C)]]
    gts: list  # [(2h, 2w, 3)]
    ratios: list  # [ratio]


class SyntheticSampler:
    """Synthetic patches (module docstring), mixed with real pairs' patches when ``real`` is given.

    Each patch of a step is synthetic with probability ``share`` (always without ``real``), else
    ``real.draw``.  The patches of step ``i`` depend only on ``seed`` and ``i`` (a generator seeded
    with ``(seed, i)``; ``first_step`` the step the run starts or resumes at), and so does the noise:
    each synthetic patch carries ``noise_seed = (seed, i)`` for the graph's stateless random ops.
    """

    def __init__(self, photos: Sequence[CleanPhoto], darks: DarkOffsets, ratios: Sequence[float], patch_size: int,
                 seed: int = 0, first_step: int = 0, batch_size: int = 1, real: PatchSampler | None = None,
                 share: float = 1.0, augment: bool = True):
        self.photos, self.darks, self.ratios_drawn = list(photos), darks, [float(r) for r in ratios]
        self.patch_size, self.seed, self.step = int(patch_size), int(seed), int(first_step)
        self.batch_size, self.real, self.share, self.augment = int(batch_size), real, float(share), augment
        if self.seed < 0:
            raise SidFtError(None, f"--seed {seed}: must be 0 or more")
        sizes = [(ph.path, ph.packed_shape) for ph in self.photos] + [(darks.names[0], darks.shape)]
        for name, (h, w) in sizes:
            if min(h, w) < self.patch_size:
                raise SidFtError(name, f"patch size {self.patch_size} is larger than the packed image ({w}x{h}); "
                                       f"use --patch-size {min(h, w)} or less")

    def sample(self) -> list[Patch]:
        """The ``batch_size`` patches of the next step (one caller at a time: steps are numbered in call order)."""
        rng = np.random.default_rng([self.seed, self.step])
        noise_seed = (self.seed, self.step)
        self.step += 1
        return [self._one(rng, noise_seed) for _ in range(self.batch_size)]

    def _one(self, rng: np.random.Generator, noise_seed: tuple[int, int]) -> Patch:
        if self.real is not None and rng.random() >= self.share:
            return self.real.draw(rng)
        return self.draw(rng, noise_seed)

    def draw(self, rng: np.random.Generator, noise_seed: tuple[int, int]) -> Patch:
        """One synthetic patch: a random photo, crop, dark crop, ratio and flips."""
        i = int(rng.integers(len(self.photos)))
        photo, p = self.photos[i], self.patch_size
        h, w = photo.packed_shape
        y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        clean = np.asarray(photo.packed[y:y + p, x:x + p], np.float32)
        gt = np.asarray(photo.gt[2 * y:2 * (y + p), 2 * x:2 * (x + p)], np.float32)
        d = int(rng.integers(len(self.darks.frames)))
        dh, dw = self.darks.shape
        dark = self.darks.crop(d, int(rng.integers(dh - p + 1)), int(rng.integers(dw - p + 1)), p)
        ratio = self.ratios_drawn[int(rng.integers(len(self.ratios_drawn)))]
        flags = rng.integers(0, 2, size=3).astype(bool) if self.augment else np.zeros(3, bool)
        return Patch(index=i, packed=[clean], gt=gt, ratio=ratio, flags=flags,
                     synthetic=SyntheticCrop(photo.path, dark, noise_seed))

    def preview_patch(self) -> Patch:
        """A fixed synthetic patch: the centre of the first photo and of the first dark frame, the first
        ratio, no flips, noise seed (seed, 0)."""
        photo, p = self.photos[0], self.patch_size
        (h, w), (dh, dw) = photo.packed_shape, self.darks.shape
        y, x = (h - p) // 2, (w - p) // 2
        clean = np.asarray(photo.packed[y:y + p, x:x + p], np.float32)
        gt = np.asarray(photo.gt[2 * y:2 * (y + p), 2 * x:2 * (x + p)], np.float32)
        dark = self.darks.crop(0, (dh - p) // 2, (dw - p) // 2, p)
        return Patch(0, [clean], gt, self.ratios_drawn[0], np.zeros(3, bool),
                     SyntheticCrop(photo.path, dark, (self.seed, 0)))

    def preview(self, noisy_short: np.ndarray) -> PreviewSource:
        """A preview source whose centre crop is ``noisy_short`` ((p, p, C), the graph's short exposure of
        :meth:`preview_patch`, normalised, not amplified); the rest of its frame is never read."""
        photo, p = self.photos[0], self.patch_size
        h, w = photo.packed_shape
        canvas = np.zeros((h, w, noisy_short.shape[-1]), np.float32)  # untouched pages take no memory
        y, x = (h - p) // 2, (w - p) // 2
        canvas[y:y + p, x:x + p] = noisy_short
        return PreviewSource(p, [[canvas]], [photo.gt], [self.ratios_drawn[0]])
