"""The synthetic cameras of the demo and the quality benchmark, and the DNG files each writes.

A camera (:class:`DemoCamera`) has a Bayer layout, black and white levels, a colour
response (white balance and an RGB -> camera matrix) and a noise model
(:class:`sid_ft.data.noise.NoiseParams`).  For a scene (a linear mosaic from
:func:`sid_ft.data.unprocess.unprocess_srgb`) it writes a clean 10 s long exposure
and one short exposure per ratio of the camera (:func:`write_scene`, SID layout and
names).  A target camera also gets what a user without many pairs has:
lens-capped dark frames (:func:`write_dark_frames`), its training scenes' long
exposures as clean photos and two of its pairs (:func:`write_subsets`).
"""
from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sid_ft.data.noise import NoiseParams, simulate_short
from sid_ft.data.unprocess import unprocess_srgb
from sid_ft.io.dng import write_dng

LONG_S = 10.0
RATIOS = (100, 250)  # short exposures 0.1 s and 0.04 s, as in SID's Sony set
DARK_FRAMES = 8
"""Lens-capped frames written per target camera (``<camera>/dark/``), at :data:`DARK_RATIO`'s exposure."""
DARK_RATIO = 250  # 0.04 s, SID's most common short exposure
TARGET_FOLDERS = ("short", "long", "dark", "clean", "two_pairs/short", "two_pairs/long")
"""The folders of a target camera's data (SID layout plus what a user without many pairs has)."""


@dataclass(frozen=True)
class DemoCamera:
    """A synthetic camera: CFA layout, levels, colour response, noise, and the ratios of its short exposures.

    ``train_crops``: crops per training photo (None: ``sid_ft.demo.DemoSettings.newcam_train_crops``).
    """

    name: str
    cfa: str
    black: int
    white: int
    wb_gains: tuple[float, float, float]
    rgb_to_cam: tuple[tuple[float, float, float], ...] | None
    noise: NoiseParams
    exposure: float = 0.85  # long-exposure level: fraction of (white - black) for a white pixel
    ratios: tuple[int, ...] = RATIOS
    train_crops: int | None = None


SOURCE_CAMERA = DemoCamera(
    "source", "RGGB", 512, 16383, (2.0, 1.0, 1.7), None,
    NoiseParams(gain=1.5, read_noise=4.0, row_noise=1.0),
)
NEW_CAMERA = DemoCamera(
    "newcam", "GRBG", 1024, 16383, (1.5, 1.0, 2.3),
    ((0.70, 0.25, 0.05), (0.12, 0.78, 0.10), (0.05, 0.30, 0.65)),
    NoiseParams(gain=2.5, read_noise=6.0, row_noise=2.5),
)

NOISE_CAMERA = DemoCamera(
    "noisecam", "BGGR", 2048, 16383, (2.0, 1.0, 1.7), None,
    NoiseParams(gain=4.0, read_noise=10.0, row_noise=3.0),
)
"""A new camera that differs from the source mostly in its noise: 2.7x the system gain, 2.5x the read
noise, 3x the row noise, another black level and CFA phase, the source's colour response."""

OUT_CAMERA = DemoCamera(
    "outcam", "GBRG", 800, 16383, (2.0, 1.0, 1.7), None,
    NoiseParams(gain=3.0, read_noise=8.0, read_noise_dist="student-t", read_noise_shape=3.0, row_noise=2.0,
                column_noise=3.0, fixed_pattern=4.0, fixed_pattern_seed=1801, glow=250.0, glow_radius=64.0),
    ratios=(100, 250, 300), train_crops=1,
)
"""A new camera whose noise is partly outside the parametric model: heavy-tailed (Student-t, 3 degrees
of freedom) read noise, column noise, a fixed per-pixel pattern and a corner glow (10 DN at 0.04 s),
K 3, another black level and CFA phase, the source's colour; 6 training scenes x SID's 3 ratios."""

TARGET_CAMERAS = {"newcam": NEW_CAMERA, "noisecam": NOISE_CAMERA, "outcam": OUT_CAMERA}
"""The cameras a base trained on ``SOURCE_CAMERA`` can be adapted to: colour (demo), noise, out-of-model noise."""


def dng_metadata(cam: DemoCamera, info: dict) -> dict:
    """``write_dng``'s keywords for a file of ``cam`` (``info``: :func:`unprocess_srgb`'s)."""
    return dict(cfa=cam.cfa, black_level=cam.black, white_level=cam.white, color_matrix=info["color_matrix"],
                as_shot_neutral=info["as_shot_neutral"], make="sid_ft demo", model=cam.name)


def write_scene(root: Path, scene: str, rgb: np.ndarray, cam: DemoCamera, rng: np.random.Generator) -> None:
    """``rgb`` (H, W, 3) uint8 as ``cam``'s clean 10 s long exposure ``root/long/<scene>_00_10s.dng`` and one
    noisy short exposure per ratio of the camera in ``root/short/`` (noise drawn from ``rng``)."""
    mosaic, info = unprocess_srgb(rgb, cfa=cam.cfa, wb_gains=cam.wb_gains, rgb_to_cam=cam.rgb_to_cam,
                                  return_info=True)
    long_dn = np.round(cam.black + mosaic * cam.exposure * (cam.white - cam.black)).astype(np.uint16)
    common = dng_metadata(cam, info)
    write_dng(root / "long" / f"{scene}_00_{LONG_S:g}s.dng", long_dn, exposure_time=LONG_S, **common)
    for ratio in cam.ratios:
        t = LONG_S / ratio
        short = simulate_short(long_dn, cam.black, cam.white, ratio, cam.noise, rng, cfa=cam.cfa, exposure_s=t)
        write_dng(root / "short" / f"{scene}_00_{t:g}s.dng", short, exposure_time=t, **common)


def write_dark_frames(folder: Path, cam: DemoCamera, size: int, seed: int) -> None:
    """:data:`DARK_FRAMES` lens-capped ``size`` x ``size`` frames of ``cam`` at :data:`DARK_RATIO`'s exposure:
    a scene at the black level through the camera's noise model, from an RNG stream of their own (seeded by
    ``seed`` and the camera's name), so that no other file's noise draws shift."""
    rng = np.random.default_rng([seed, zlib.crc32(cam.name.encode())])
    _, info = unprocess_srgb(np.zeros((2, 2, 3), np.uint8), cfa=cam.cfa, wb_gains=cam.wb_gains,
                             rgb_to_cam=cam.rgb_to_cam, return_info=True)
    capped = np.full((size, size), cam.black, dtype=np.uint16)
    t = LONG_S / DARK_RATIO
    for i in range(DARK_FRAMES):
        dark = simulate_short(capped, cam.black, cam.white, DARK_RATIO, cam.noise, rng, cfa=cam.cfa, exposure_s=t)
        write_dng(folder / f"dark_{i:02d}_{t:g}s.dng", dark, exposure_time=t, **dng_metadata(cam, info))


def write_subsets(folder: Path, cam: DemoCamera) -> None:
    """``clean/``: the training scenes' long exposures (photos a user already has); ``two_pairs/``: SID layout,
    the first training scene at the lowest ratio and the second (the first if it is alone) at the highest: the few
    pairs a user shoots."""
    for long in sorted((folder / "long").glob("0*.dng")):
        shutil.copyfile(long, folder / "clean" / long.name)
    scenes = sorted({f.name.split("_")[0] for f in (folder / "long").glob("0*.dng")})
    for scene, ratio in ((scenes[0], cam.ratios[0]), (scenes[min(1, len(scenes) - 1)], cam.ratios[-1])):
        for sub, t in (("long", LONG_S), ("short", LONG_S / ratio)):
            name = f"{scene}_00_{t:g}s.dng"
            shutil.copyfile(folder / sub / name, folder / "two_pairs" / sub / name)


def empty_folders(dirs: dict[str, Path]) -> None:
    """Create the DNG folders of every camera, and remove the DNGs a previous build left in them."""
    for name, d in dirs.items():
        subs = ("short", "long") if name == "source" else TARGET_FOLDERS
        for sub in subs:
            (d / sub).mkdir(parents=True, exist_ok=True)
            for old in (d / sub).glob("*.dng"):
                old.unlink()


def write_test_list(folder: Path) -> None:
    """``folder/test_list.txt``: the held-out (``1xxxx``) short exposures with their long ones, SID's format."""
    lines = []
    for short in sorted((folder / "short").glob("1*.dng")):
        scene = short.name.split("_")[0]
        long = next((folder / "long").glob(f"{scene}_*.dng"))
        lines.append(f"./short/{short.name} ./long/{long.name} ISO0 F0")
    (folder / "test_list.txt").write_text("\n".join(lines) + "\n")
