#!/usr/bin/env python3
"""--batch-size: step time and patches/s per training mode, and quality at a fixed number of patches seen.

    python benchmarks/bench_batch.py --patch-size 256 --batch-sizes 1,4,8 --steps 3
    python benchmarks/bench_batch.py --quality --workdir /tmp/sid_quality --patches 600 --seeds 0,1,2

Speed: for each mode (full, frozen, cached; see benchmarks/bench_train_step.py) one
graph, fed batches of N random patches; the batch sizes run interleaved after a
warm-up, so machine noise hits them alike; medians.  Weights are random: step time
does not depend on their values.

Quality (``--quality``): in bench_quality.py's world (its base model and held-out
scenes; the same ``--workdir`` reuses them), g_add fine-tuning of the head (cached
features, its default rate and schedule) on the demo's new camera with the same number
of patches seen: batch 1 for P steps, and batch B for P/B steps at the rate times each
``--lr-scales``; PSNR/SSIM on the held-out scenes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.bench_train_step import cpu_name  # noqa: E402

from sid_ft._tf import tf1  # noqa: E402
from sid_ft.nets.g_add.config import GAddConfig  # noqa: E402
from sid_ft.data.sampling import Patch  # noqa: E402
from sid_ft.training.graph import build_train_graph, feed_for  # noqa: E402

MODES = (("full", ["all"]), ("frozen", ["g_add"]), ("cached", ["g_add"]))


def device_name() -> str:
    tf = tf1()
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU: {gpus[0].name}" if gpus else f"CPU: {cpu_name()}, {os.cpu_count()} cores"


def speed(patch: int, batch_sizes: list[int], steps: int, warmup: int, cfg: GAddConfig) -> dict:
    """Median seconds per step and patches per second, per mode and batch size."""
    tf = tf1()
    rng = np.random.default_rng(0)
    result: dict = {}
    for mode, scopes in MODES:
        tg = build_train_graph("sony", cfg, mode, scopes, 1e-4, 10**9, 0.1)
        config = tf.ConfigProto()
        config.gpu_options.allow_growth = True
        with tg.graph.as_default(), tf.Session(graph=tg.graph, config=config) as sess:
            sess.run(tf.global_variables_initializer())
            patches = []
            for _ in range(max(batch_sizes)):
                packed = rng.uniform(0, 0.004, size=(patch, patch, 4)).astype(np.float32)
                gt = rng.uniform(0, 1, size=(2 * patch, 2 * patch, 3)).astype(np.float32)
                flags = rng.integers(0, 2, size=3).astype(bool)
                if mode == "cached":
                    feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: np.minimum(packed * 100, 1)[None]})
                    patches.append(Patch(0, [feats[0], logits[0]], gt, 100.0, flags))
                else:
                    patches.append(Patch(0, [packed], gt, 100.0, flags))
            feeds = {n: feed_for(tg, patches[:n]) for n in batch_sizes}
            times: dict[int, list[float]] = {n: [] for n in batch_sizes}
            for i in range(warmup + steps):
                for n in batch_sizes:
                    t0 = time.perf_counter()
                    sess.run(tg.train_op, feeds[n])
                    if i >= warmup:
                        times[n].append(time.perf_counter() - t0)
        med = {n: statistics.median(t) for n, t in times.items()}
        result[mode] = {n: {"step_s": med[n], "patches_per_s": n / med[n]} for n in batch_sizes}
        print(f"  {mode:7s} " + "  ".join(f"N={n}: {med[n] * 1000:8.1f} ms/step {n / med[n]:7.2f} patches/s"
                                          for n in batch_sizes), flush=True)
    return result


def quality(workdir: Path, patches: int, batch: int, seeds: list[int], lr_scales: list[float],
            with_batch1: bool = True, base_steps: int = 10000, warmup: int = 0) -> list[dict]:
    """PSNR/SSIM of g_add fine-tuning with ``patches`` patches seen: batch 1, and batch ``batch`` at the
    learning rate times each of ``lr_scales``, its rate ramped up over its first ``warmup`` steps."""
    from benchmarks.bench_quality import TARGETS, bench_settings
    from sid_ft.demo import base_model, build_dataset, evaluate
    from sid_ft.training.loop import train
    from sid_ft.training.options import DEFAULT_LR, TrainOptions

    settings = bench_settings(base_steps)
    dirs = build_dataset(workdir / "datasets" / "demo", settings, progress=False, targets=TARGETS)
    base = base_model(workdir, dirs, settings, progress=False, report=lambda m: print(m, file=sys.stderr))
    lr = DEFAULT_LR["cached"]
    runs = [("batch 1", 1, patches, lr)] if with_batch1 else []
    ramp = f", warm-up {warmup}" if warmup else ""
    runs += [(f"batch {batch}, lr x{k:g}{ramp}", batch, patches // batch, lr * k) for k in lr_scales]
    rows = []
    for label, n, steps, rate in runs:
        row = {"run": label, "batch_size": n, "steps": steps, "lr": rate, "psnr": [], "ssim": [], "train_s": []}
        for seed in seeds:
            train_dir = workdir / "runs" / f"batch{n}_lr{rate:g}_w{warmup if n > 1 else 0}_{seed}"
            shutil.rmtree(train_dir, ignore_errors=True)
            t0 = time.perf_counter()
            result = train(TrainOptions(dataset_dir=str(dirs["newcam"]), split="train", pretrained=base,
                                        train_dir=str(train_dir), steps=steps, batch_size=n, lr=rate,
                                        lr_warmup_steps=warmup if n > 1 else 0,
                                        patch_size=settings.finetune_patch,
                                        g_add_width=settings.g_add_width, g_add_depth=settings.g_add_depth,
                                        g_add_head=True, g_add_rank=0,  # the head design, cached features
                                        seed=seed, save_every=10**9, progress=False, log_every=10,
                                        cache_dir=str(workdir / "cache")), report=lambda m: None)
            row["train_s"].append(time.perf_counter() - t0)
            res = evaluate(result.checkpoint, dirs["newcam"] / "test_list.txt", workdir / "eval" / train_dir.name,
                           progress=False, report=lambda m: None)
            row["psnr"].append(res["psnr"])
            row["ssim"].append(res["ssim"])
        print(f"  {label:22s} {steps:5d} steps  PSNR {np.mean(row['psnr']):.2f} dB "
              f"({min(row['psnr']):.2f}..{max(row['psnr']):.2f})  SSIM {np.mean(row['ssim']):.4f}", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch-size", type=int, default=256, help="packed patch size (default: %(default)s)")
    ap.add_argument("--batch-sizes", default="1,4,8", help="comma-separated (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per mode and batch size (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quality", action="store_true", help="run the quality comparison instead of the speed one")
    ap.add_argument("--workdir", default="benchmarks/results/quality", help="(--quality) data, base model, runs")
    ap.add_argument("--patches", type=int, default=600, help="(--quality) patches seen per run (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=4, help="(--quality) the batch size compared with 1")
    ap.add_argument("--seeds", default="0,1,2", help="(--quality) fine-tuning seeds (default: %(default)s)")
    ap.add_argument("--lr-scales", default="1,4", help="(--quality) learning rates of the batched runs, as "
                                                      "multiples of batch 1's (default: %(default)s)")
    ap.add_argument("--no-batch1", dest="batch1", action="store_false", help="(--quality) skip the batch-1 runs")
    ap.add_argument("--lr-warmup-steps", type=int, default=0,
                    help="(--quality) the batched runs' rate rises linearly over their first K steps (default: none)")
    ap.add_argument("--base-steps", type=int, default=10000,
                    help="(--quality) base training steps, as bench_quality.py's (default: %(default)s)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    print(f"device: {device_name()}", flush=True)
    if args.quality:
        out = {"quality": quality(Path(args.workdir), args.patches, args.batch,
                                  [int(s) for s in args.seeds.split(",")],
                                  [float(k) for k in args.lr_scales.split(",")], args.batch1, args.base_steps,
                                  args.lr_warmup_steps)}
    else:
        sizes = [int(n) for n in args.batch_sizes.split(",")]
        print(f"patch {args.patch_size}x{args.patch_size} packed; median of {args.steps} steps", flush=True)
        out = {"patch_size": args.patch_size, "speed": speed(args.patch_size, sizes, args.steps, args.warmup,
                                                              GAddConfig())}
    out["device"] = device_name()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
