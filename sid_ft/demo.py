"""The out-of-the-box demo: sid_ft's whole job on generated data, in minutes on a laptop.

``python scripts/train_finetune.py --demo`` runs :func:`run_demo`:

1. ``datasets/demo/`` — real DNG files in SID layout, made from photographs that
   ship with scikit-image: each photo is unprocessed into a linear Bayer mosaic
   (inverse sRGB gamma, inverse colour correction, inverse white balance,
   mosaicking) and written as a clean 10 s long exposure; the 0.1 s and 0.04 s
   short exposures come from :mod:`sid_ft.data.noise`'s noise model.  Two cameras
   (:mod:`sid_ft.data.demo_cameras`):

   * ``source`` — RGGB, black 512, white 16383 (Sony-like), moderate noise;
   * ``newcam`` — GRBG, black 1024, white 16383, another colour response
     and white balance, more read and row noise.  Scenes ``0xxxx`` are its
     training scenes, ``1xxxx`` the held-out test scenes (SID's split rule).
     Beside them, what a user who shot few pairs has: ``dark/`` (8 lens-capped
     frames), ``clean/`` (the training scenes' long exposures: photos already
     taken) and ``two_pairs/`` (2 tripod pairs).

2. a base model: the released SID checkpoint when ``checkpoints/Sony/`` holds
   one, else a short from-scratch training of every layer on the source camera
   (``checkpoints/demo_sid_base/``);
3. fine-tunes only the ``g_add`` layers (the default design) on the new camera the
   way the README recommends without many pairs: the 2 real pairs, plus synthetic
   pairs from the clean photos with crops of the dark frames as their noise and
   K estimated from the 2 pairs (``checkpoints/demo/``);
4. runs both models on the held-out scenes, prints a table and writes
   ``checkpoints/demo/demo_summary.json`` and a contact sheet.

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
from sid_ft.errors import SidFtError
from sid_ft.data.demo_cameras import (SOURCE_CAMERA, TARGET_CAMERAS, DemoCamera, empty_folders, write_dark_frames,
                                      write_scene, write_subsets, write_test_list)


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


def _plan(settings: DemoSettings, dirs: dict[str, Path],
          cameras: dict[str, DemoCamera]) -> list[tuple[Path, str, np.ndarray, DemoCamera]]:
    """Every scene to write, in the order of the noise draws: the source camera's, then each target's."""
    jobs: list[tuple[Path, str, np.ndarray, DemoCamera]] = []
    for k, name in enumerate(settings.source_photos):
        for j, crop in enumerate(_crops(_photo(name), settings.crop, settings.max_crops_per_photo)):
            jobs.append((dirs["source"], f"0{k:02d}{j:02d}", crop, SOURCE_CAMERA))
    for target, cam in cameras.items():
        train_crops = settings.newcam_train_crops if cam.train_crops is None else cam.train_crops
        for k, name in enumerate(settings.newcam_train_photos):
            # the last crops of each photo: the source camera took the first ones
            for j, crop in enumerate(_crops(_photo(name), settings.crop, 99)[::-1][:train_crops]):
                jobs.append((dirs[target], f"0{k:02d}{j:02d}", crop, cam))
        for k, name in enumerate(settings.newcam_test_photos):
            for j, crop in enumerate(_spread(_crops(_photo(name), settings.crop, 99), settings.newcam_test_crops)):
                jobs.append((dirs[target], f"1{k:02d}{j:02d}", crop, cam))
    return jobs


def build_dataset(root: str | os.PathLike, settings: DemoSettings, progress: bool = True,
                  targets: tuple[str, ...] = ("newcam",)) -> dict[str, Path]:
    """Write ``root/source`` and ``root/<target>`` for each of ``targets`` (names in
    :data:`TARGET_CAMERAS`) unless a matching manifest is there.

    Each is a SID-layout folder of DNGs (``short/``, ``long/``); a target camera's also has a
    ``test_list.txt`` of the held-out scenes, ``dark/`` (:data:`DARK_FRAMES` lens-capped frames),
    ``clean/`` (its training scenes' long exposures) and ``two_pairs/`` (2 of its training pairs).
    """
    from tqdm import tqdm

    root = Path(root)
    manifest = root / "manifest.json"
    cameras = {name: TARGET_CAMERAS[name] for name in targets}
    wanted = {"sid_ft": __version__, "settings": asdict(settings),
              "cameras": [repr(SOURCE_CAMERA)] + [repr(cam) for cam in cameras.values()]}
    dirs = {"source": root / "source", **{name: root / name for name in cameras}}
    if manifest.exists() and json.loads(manifest.read_text()) == json.loads(json.dumps(wanted, default=str)):
        return dirs
    jobs = _plan(settings, dirs, cameras)
    empty_folders(dirs)
    rng = np.random.default_rng(settings.seed)
    for folder, scene, rgb, cam in tqdm(jobs, desc="demo dataset (DNG)", unit="scene", disable=not progress):
        write_scene(folder, scene, rgb, cam, rng)
    for target, cam in cameras.items():
        write_test_list(dirs[target])
        write_dark_frames(dirs[target] / "dark", cam, settings.crop, settings.seed)
        write_subsets(dirs[target], cam)
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


def finetune_new_camera(camera_dir: Path, base: str, train_dir: Path, settings: DemoSettings, progress: bool,
                        report: Callable[[str], None], precision: str = "fp32") -> str:
    """Fine-tune the g_add layers on ``camera_dir``'s ``two_pairs/``, with synthetic pairs from its ``clean/``
    photos and ``dark/`` frames at its own ratios (K from the 2 pairs); returns the checkpoint."""
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions

    return train(TrainOptions(
        dataset_dir=str(camera_dir / "two_pairs"), split="train", clean_dir=str(camera_dir / "clean"),
        dark_frames=str(camera_dir / "dark"), ratios=TARGET_CAMERAS[camera_dir.name].ratios,
        pretrained=base, train_dir=str(train_dir),
        steps=settings.finetune_steps, lr=settings.finetune_lr, patch_size=settings.finetune_patch,
        g_add_width=settings.g_add_width, g_add_depth=settings.g_add_depth, seed=settings.seed,
        save_every=settings.finetune_steps, progress=progress, log_every=10, precision=precision),
        report=report).checkpoint


def run_demo(root: str | os.PathLike = ".", settings: DemoSettings | None = None, progress: bool = True,
             report: Callable[[str], None] = print, precision: str = "fp32") -> DemoResult:
    """Build the demo data, get a base model, fine-tune g_add, compare on held-out scenes (see module doc).

    ``precision`` (:mod:`sid_ft.nets.precision`) applies to the base training, the fine-tuning and the evaluation.
    """
    settings = settings or DemoSettings()
    root = Path(root)
    report("[1/4] demo dataset: photographs -> linear Bayer mosaics -> DNG pairs of two cameras")
    dirs = build_dataset(root / "datasets" / "demo", settings, progress)
    base = base_model(root, dirs, settings, progress, report, precision)

    report("[3/4] fine-tune only the g_add layers on the new camera: 2 real pairs, plus synthetic pairs from "
           "its clean photos and dark frames (checkpoints/demo/)")
    finetune_dir = root / "checkpoints" / "demo"
    finetuned = finetune_new_camera(dirs["newcam"], base, finetune_dir, settings, progress, report, precision)

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
