"""The out-of-the-box demo: sid_ft's whole job on generated data, in minutes on a laptop.

``python scripts/train_finetune.py --demo`` runs :func:`run_demo`:

1. ``datasets/demo/`` — real DNG files in SID layout, made from photographs that
   ship with scikit-image: each photo is unprocessed into a linear Bayer mosaic
   (inverse sRGB gamma, inverse colour correction, inverse white balance,
   mosaicking) and written as a clean 10 s long exposure; the 0.1 s and 0.04 s
   short exposures come from :mod:`sid_ft.data.noise`'s noise model.  Two cameras:

   * ``source`` — RGGB, black 512, white 16383 (Sony-like), moderate noise;
   * ``newcam`` — GRBG, black 1024, white 16383, another colour response
     and white balance, more read and row noise.  Scenes ``0xxxx`` are its few
     training pairs, ``1xxxx`` the held-out test scenes (SID's split rule).

2. a base model: the released SID checkpoint when ``checkpoints/Sony/`` holds
   one, else a short from-scratch training of every layer on the source camera
   (``checkpoints/demo_sid_base/``);
3. fine-tunes only the ``g_add`` layers (the default design) on the new camera
   (``checkpoints/demo/``);
4. runs both models on the held-out scenes, prints a table and writes
   ``checkpoints/demo/demo_summary.json``.

Every stage reuses what a previous run left (dataset manifest, checkpoints at
their final step), so the command is cheap to re-run.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sid_ft import __version__
from sid_ft.io import atomic
from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.data.noise import NoiseParams, simulate_short
from sid_ft.data.unprocess import unprocess_srgb


@dataclass(frozen=True)
class DemoCamera:
    """A synthetic camera: CFA layout, levels, colour response and noise."""

    name: str
    cfa: str
    black: int
    white: int
    wb_gains: tuple[float, float, float]
    rgb_to_cam: tuple[tuple[float, float, float], ...] | None
    noise: NoiseParams
    exposure: float = 0.85  # long-exposure level: fraction of (white - black) for a white pixel


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

TARGET_CAMERAS = {"newcam": NEW_CAMERA, "noisecam": NOISE_CAMERA}
"""The cameras a base trained on ``SOURCE_CAMERA`` can be adapted to: colour (demo) and noise."""

LONG_S = 10.0
RATIOS = (100, 250)  # short exposures 0.1 s and 0.04 s, as in SID's Sony set


@dataclass
class DemoSettings:
    """Sizes and step counts; the defaults fit the 10-minute budget on 2 CPU cores."""

    crop: int = 384  # mosaic crop of each photo (pixels); packed crops are half that
    base_steps: int = 2400
    base_lr: float = 3e-4
    base_lr_decay_step: int = 2000
    base_patch: int = 128
    finetune_steps: int = 600
    finetune_lr: float | None = None  # None: the training mode's default (sid_ft.training.options.DEFAULT_LR)
    finetune_patch: int = 128
    g_add_width: int = 16
    g_add_depth: int = 2
    seed: int = 0
    source_photos: tuple[str, ...] = ("retina", "hubble_deep_field", "immunohistochemistry", "astronaut", "coffee",
                                      "rocket")
    newcam_train_photos: tuple[str, ...] = ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina",
                                            "hubble_deep_field")
    newcam_train_crops: int = 2
    newcam_test_photos: tuple[str, ...] = ("chelsea", "colorwheel", "motorcycle")
    newcam_test_crops: int = 1  # crops per held-out photo, spread evenly over it
    max_crops_per_photo: int = 4


@dataclass
class DemoResult:
    base_checkpoint: str
    finetuned_checkpoint: str
    base_psnr: float
    finetuned_psnr: float
    base_ssim: float
    finetuned_ssim: float
    images: list[dict] = field(default_factory=list)


def _photo(name: str) -> np.ndarray:
    """An RGB photograph: a scikit-image sample by name (``motorcycle`` and ``motorcycle_right`` are the
    two views of its stereo pair), or ``raw:<path>``, a RAW file rendered by LibRaw as SID renders its
    ground truth (8-bit)."""
    import skimage.data

    if name.startswith("raw:"):
        from sid_ft.io.render import render_reference

        return np.round(render_reference(name[4:]) * 255).astype(np.uint8)
    if name in ("motorcycle", "motorcycle_right"):
        img = skimage.data.stereo_motorcycle()[0 if name == "motorcycle" else 1]
    elif name.startswith("_") or not callable(getattr(skimage.data, name, None)):
        raise SidFtError(None, f"{name!r} is neither a scikit-image sample nor raw:<path>")
    else:
        img = getattr(skimage.data, name)()
    if img.ndim != 3 or img.shape[2] < 3:
        raise SidFtError(None, f"scikit-image sample {name!r} is not an RGB photograph")
    return img[..., :3]


def _spread(items: list, count: int) -> list:
    """``count`` of ``items`` spread evenly from the first to the last (all of them if there are fewer)."""
    if count >= len(items):
        return items
    return [items[int(round(i))] for i in np.linspace(0, len(items) - 1, count)]


def _crops(img: np.ndarray, size: int, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` non-overlapping ``size`` crops (even sizes), or the whole photo if it is smaller."""
    h, w = img.shape[:2]
    if h < size or w < size:
        return [img[: h - h % 2, : w - w % 2]]
    out = [img[y : y + size, x : x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    return out[:limit]


def _write_scene(root: Path, scene: str, rgb: np.ndarray, cam: DemoCamera, rng: np.random.Generator) -> None:
    mosaic, info = unprocess_srgb(rgb, cfa=cam.cfa, wb_gains=cam.wb_gains, rgb_to_cam=cam.rgb_to_cam,
                                  return_info=True)
    long_dn = np.round(cam.black + mosaic * cam.exposure * (cam.white - cam.black)).astype(np.uint16)
    common = dict(cfa=cam.cfa, black_level=cam.black, white_level=cam.white, color_matrix=info["color_matrix"],
                  as_shot_neutral=info["as_shot_neutral"], make="sid_ft demo", model=cam.name)
    write_dng(root / "long" / f"{scene}_00_{LONG_S:g}s.dng", long_dn, exposure_time=LONG_S, **common)
    for ratio in RATIOS:
        short = simulate_short(long_dn, cam.black, cam.white, ratio, cam.noise, rng, cfa=cam.cfa)
        t = LONG_S / ratio
        write_dng(root / "short" / f"{scene}_00_{t:g}s.dng", short, exposure_time=t, **common)


def build_dataset(root: str | os.PathLike, settings: DemoSettings, progress: bool = True,
                  targets: tuple[str, ...] = ("newcam",)) -> dict[str, Path]:
    """Write ``root/source`` and ``root/<target>`` for each of ``targets`` (names in
    :data:`TARGET_CAMERAS`; SID layout, DNG, a ``test_list.txt`` of the held-out scenes) unless a
    matching manifest is there."""
    from tqdm import tqdm

    root = Path(root)
    manifest = root / "manifest.json"
    cameras = {name: TARGET_CAMERAS[name] for name in targets}
    wanted = {"sid_ft": __version__, "settings": asdict(settings),
              "cameras": [repr(SOURCE_CAMERA)] + [repr(cam) for cam in cameras.values()]}
    dirs = {"source": root / "source", **{name: root / name for name in cameras}}
    if manifest.exists() and json.loads(manifest.read_text()) == json.loads(json.dumps(wanted, default=str)):
        return dirs
    jobs: list[tuple[Path, str, np.ndarray, DemoCamera]] = []
    for k, name in enumerate(settings.source_photos):
        for j, crop in enumerate(_crops(_photo(name), settings.crop, settings.max_crops_per_photo)):
            jobs.append((dirs["source"], f"0{k:02d}{j:02d}", crop, SOURCE_CAMERA))
    for target, cam in cameras.items():
        for k, name in enumerate(settings.newcam_train_photos):
            # the last crops of each photo: the source camera took the first ones
            for j, crop in enumerate(_crops(_photo(name), settings.crop, 99)[::-1][: settings.newcam_train_crops]):
                jobs.append((dirs[target], f"0{k:02d}{j:02d}", crop, cam))
        for k, name in enumerate(settings.newcam_test_photos):
            for j, crop in enumerate(_spread(_crops(_photo(name), settings.crop, 99), settings.newcam_test_crops)):
                jobs.append((dirs[target], f"1{k:02d}{j:02d}", crop, cam))
    for d in dirs.values():
        for sub in ("short", "long"):
            (d / sub).mkdir(parents=True, exist_ok=True)
            for old in (d / sub).glob("*.dng"):
                old.unlink()
    rng = np.random.default_rng(settings.seed)
    for folder, scene, rgb, cam in tqdm(jobs, desc="demo dataset (DNG)", unit="scene", disable=not progress):
        _write_scene(folder, scene, rgb, cam, rng)
    for target in cameras:
        lines = []
        for short in sorted((dirs[target] / "short").glob("1*.dng")):
            scene = short.name.split("_")[0]
            long = next((dirs[target] / "long").glob(f"{scene}_*.dng"))
            lines.append(f"./short/{short.name} ./long/{long.name} ISO0 F0")
        (dirs[target] / "test_list.txt").write_text("\n".join(lines) + "\n")
    atomic.write_text(manifest, json.dumps(wanted, indent=2, default=str))
    return dirs


def _released_sony(root: Path) -> str | None:
    from sid_ft.nets.checkpoint import resolve_checkpoint

    try:
        return resolve_checkpoint(root / "checkpoints" / "Sony")
    except SidFtError:
        return None


def evaluate(checkpoint: str, test_list: Path, out_dir: Path, progress: bool,
             report: Callable[[str], None] = print, precision: str = "fp32") -> dict:
    """Run ``checkpoint`` on the pairs of ``test_list`` in ``precision`` (:mod:`sid_ft.nets.precision`);
    ``{'psnr', 'ssim', 'records'}`` (means over the files, and their records)."""
    from sid_ft.inference.options import InferOptions
    from sid_ft.inference.run import run_inference

    summary = run_inference(InferOptions(checkpoint=checkpoint, test_list=str(test_list), out_dir=str(out_dir),
                                         bits=8, progress=progress, precision=precision), report=report)
    if summary.failed:
        raise SidFtError(str(out_dir), f"{summary.failed} held-out file(s) failed; see summary.json")
    return {"psnr": summary.mean("psnr"), "ssim": summary.mean("ssim"), "records": summary.records}


def base_model(root: Path, dirs: dict[str, Path], settings: DemoSettings, progress: bool,
               report: Callable[[str], None], precision: str = "fp32") -> str:
    """The released Sony checkpoint under ``root/checkpoints/Sony``, else a short base training on the source camera."""
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions

    released = _released_sony(root)
    if released:
        report(f"[2/4] base model: released SID checkpoint {released}")
        return released
    report("[2/4] base model: no released checkpoint in checkpoints/Sony/, so a short from-scratch "
           "training of every layer on the source camera (checkpoints/demo_sid_base/)")
    return train(TrainOptions(
        dataset_dir=str(dirs["source"]), split="all", train_dir=str(root / "checkpoints" / "demo_sid_base"),
        from_scratch=True, trainable_scopes="all", steps=settings.base_steps, lr=settings.base_lr,
        lr_decay_step=settings.base_lr_decay_step,
        patch_size=settings.base_patch, save_every=max(1, settings.base_steps // 2), seed=settings.seed,
        progress=progress, log_every=10, precision=precision), report=report).checkpoint


def run_demo(root: str | os.PathLike = ".", settings: DemoSettings | None = None, progress: bool = True,
             report: Callable[[str], None] = print, precision: str = "fp32") -> DemoResult:
    """Build the demo data, get a base model, fine-tune g_add, compare on held-out scenes (see module doc).

    ``precision`` (:mod:`sid_ft.nets.precision`) applies to the base training, the fine-tuning and the evaluation.
    """
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions

    settings = settings or DemoSettings()
    root = Path(root)
    report("[1/4] demo dataset: photographs -> linear Bayer mosaics -> DNG pairs of two cameras")
    dirs = build_dataset(root / "datasets" / "demo", settings, progress)
    base = base_model(root, dirs, settings, progress, report, precision)

    report("[3/4] fine-tune only the g_add layers on the new camera's training scenes (checkpoints/demo/)")
    finetune_dir = root / "checkpoints" / "demo"
    finetuned = train(TrainOptions(
        dataset_dir=str(dirs["newcam"]), split="train", pretrained=base, train_dir=str(finetune_dir),
        steps=settings.finetune_steps, lr=settings.finetune_lr, patch_size=settings.finetune_patch,
        g_add_width=settings.g_add_width, g_add_depth=settings.g_add_depth, seed=settings.seed,
        save_every=settings.finetune_steps, progress=progress, log_every=10, precision=precision),
        report=report).checkpoint

    report("[4/4] base vs fine-tuned on the new camera's held-out scenes")
    test_list = dirs["newcam"] / "test_list.txt"
    res_base = evaluate(base, test_list, finetune_dir / "eval_base", progress, report, precision)
    res_ft = evaluate(finetuned, test_list, finetune_dir / "eval_finetuned", progress, report, precision)
    images = []
    for rb, rf in zip(res_base["records"], res_ft["records"]):
        images.append({"input": rb.input, "ground_truth_png": str(Path(rf.output).with_name(
            Path(rf.output).name.replace("_out.png", "_gt.png"))), "base_png": rb.output, "finetuned_png": rf.output,
            "base_psnr": rb.psnr, "finetuned_psnr": rf.psnr, "base_ssim": rb.ssim, "finetuned_ssim": rf.ssim})
    result = DemoResult(base, finetuned, res_base["psnr"], res_ft["psnr"], res_base["ssim"], res_ft["ssim"], images)
    atomic.write_text(finetune_dir / "demo_summary.json", json.dumps(asdict(result), indent=2))

    report("")
    report(f"{'held-out scene':34s} {'base PSNR':>10s} {'g_add PSNR':>11s} {'base SSIM':>10s} {'g_add SSIM':>11s}")
    for im in images:
        report(f"{Path(im['input']).name:34s} {im['base_psnr']:10.2f} {im['finetuned_psnr']:11.2f} "
               f"{im['base_ssim']:10.4f} {im['finetuned_ssim']:11.4f}")
    report(f"{'mean':34s} {result.base_psnr:10.2f} {result.finetuned_psnr:11.2f} "
           f"{result.base_ssim:10.4f} {result.finetuned_ssim:11.4f}")
    report(f"images: {finetune_dir / 'eval_base'} and {finetune_dir / 'eval_finetuned'} "
           f"(*_out.png, *_gt.png); summary: {finetune_dir / 'demo_summary.json'}")
    sheet = write_demo_sheet(finetune_dir / "demo_compare.jpg", res_base["records"], res_ft["records"])
    report("contact sheet of the held-out scenes (short x ratio | base | fine-tuned | ground truth):")
    report(str(sheet))
    return result


def write_demo_sheet(path: Path, base_records: list, finetuned_records: list) -> Path:
    """One row per held-out image: LibRaw's rendering of the short exposure x ratio | base | fine-tuned | ground truth.

    The model panels are the 8-bit PNGs the evaluation wrote, labelled with their PSNR/SSIM; the first is
    labelled with its own scores against the ground truth (what one gets without a network).
    """
    from sid_ft.io import png as pngio
    from sid_ft.eval.sheets import Panel, label, write_sheet
    from sid_ft.eval.metrics import psnr, ssim
    from sid_ft.io.render import render_reference

    rows = []
    for rb, rf in zip(base_records, finetuned_records):
        gt = pngio.read_png(Path(rf.output).with_name(Path(rf.output).name.replace("_out.png", "_gt.png")))
        bright = render_reference(rb.input, brightness=rb.ratio)
        reference = render_reference(rb.ground_truth)  # scored as the evaluation scores the models, in float
        rows.append([Panel(bright, label(f"short x{rb.ratio:g} (LibRaw)", psnr(bright, reference),
                                         ssim(bright, reference))),
                     Panel(pngio.read_png(rb.output), label("base", rb.psnr, rb.ssim)),
                     Panel(pngio.read_png(rf.output), label("fine-tuned (g_add)", rf.psnr, rf.ssim)),
                     Panel(gt, label("ground truth"))])
    return write_sheet(path, rows)
