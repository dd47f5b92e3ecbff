#!/usr/bin/env python3
"""Quality of g_add fine-tuning designs against all-layer fine-tuning, on two new cameras.

    python benchmarks/bench_quality.py --workdir /tmp/sid_quality --steps 400 --seeds 0,1,2 \\
        --designs rank32,head,affine,rank16 --cases colour,noise

From one base model (the released Sony checkpoint in ``<workdir>/checkpoints/Sony`` if
present, else a plain SID trained from scratch on the demo's source camera for ``--base-steps``
steps, 10000 by default: four times the demo's short base, so that the base denoises its own
camera well and a new camera's noise is something to adapt to), per case:

* ``colour`` — the demo's new camera (``sid_ft.demo.NEW_CAMERA``): another CFA phase,
  black level, colour response and white balance, somewhat more noise;
* ``noise`` — a camera that differs mostly in its noise (``sid_ft.demo.NOISE_CAMERA``):
  3x the system gain and read noise, 4x the row noise, another black level and CFA phase.

Runs, each repeated per seed (patch sampling and TensorFlow's own nondeterminism):

Every fine-tuning run uses the training defaults a user gets (the learning rate drops 10x at
half the steps) except where a flag says otherwise.

* base                   — no fine-tuning;
* g_add <design> @ N     — only the g_add layers of each design in ``--designs``, N steps, at
  the mode's default learning rate (``sid_ft.training.options.DEFAULT_LR``) unless ``--lr-g-add``.
  A design is '+'-joined words: ``head`` (the head after the network), ``affine`` (per-channel
  scale and shift after every conv), ``rankR`` (rank-R delta beside every conv).
  The first design is the one the targets are checked for (the default);
* all @ N                — every layer (``--trainable-scopes all``) at SID's 1e-4, N steps;
* all @ g_add's time     — every layer, as many steps as fit in the first design's
  training time for N steps (from the two runs' median step times, measured in this run).

Held-out scenes are scored through scripts/test.py's library (PSNR/SSIM against the rendered
long exposure): 9 scenes x 2 ratios, none of them seen in training — chelsea, both views of the
stereo motorcycle, and two crops of each real RAW sample in ``tests/data/raw`` (colour charts;
the sample rendered by LibRaw is the photograph).  Targets: the first design gains at least
90% of the all-layer gain at equal steps and beats all layers at equal time, on both cases.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.bench_train_step import cpu_name  # noqa: E402

from sid_ft.nets.g_add.config import parse_design  # noqa: E402
from sid_ft.demo import DemoSettings, base_model, build_dataset, evaluate  # noqa: E402
from sid_ft.training.loop import train  # noqa: E402
from sid_ft.training.options import TrainOptions  # noqa: E402

CASES = {"colour": "newcam", "noise": "noisecam"}
TARGETS = ("noisecam", "newcam")
"""Both cameras' data are always written, in this order: the noise draws follow the order, so any
``--cases`` (and bench_batch.py) sees the same files."""
RAW_SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "raw"
TEST_PHOTOS = ("chelsea", "motorcycle", "motorcycle_right",
               *(f"raw:{RAW_SAMPLES / name}" for name in ("Canon_PowerShot_S40_CRW_0101.CRW",
                                                          "Kodak_DC120_DC120IMG_P003908.KDC",
                                                          "Kodak_DC120_DC120IMG_P003913.KDC")))
EQUAL_TIME = "all @ g_add's time"


def bench_settings(base_steps: int = 10000) -> DemoSettings:
    """The benchmark's world: the demo's cameras and training scenes, a ``base_steps`` base (the rate
    drops 10x at 80% of them) and the held-out :data:`TEST_PHOTOS`, two crops of each where they fit."""
    return DemoSettings(base_steps=base_steps, base_lr_decay_step=max(1, base_steps * 4 // 5),
                        newcam_test_photos=TEST_PHOTOS, newcam_test_crops=2)


def design_options(text: str) -> dict:
    """``TrainOptions`` fields of a design such as ``affine+rank16`` or ``head``."""
    try:
        cfg = parse_design(text)
    except ValueError as exc:
        raise SystemExit(f"--designs: {exc}") from None
    return {"g_add_head": cfg.head, "g_add_affine": cfg.affine, "g_add_rank": cfg.rank}


def finetune(name: str, workdir: Path, base: str, data: Path, settings: DemoSettings, steps: int, scopes: str,
             lr: float | None, seed: int = 0, **head) -> tuple[str, float, float]:
    """Fine-tune from ``base``; returns (checkpoint, wall seconds, median s/step)."""
    train_dir = workdir / "runs" / name
    shutil.rmtree(train_dir, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(TrainOptions(dataset_dir=str(data), split="train", pretrained=base, train_dir=str(train_dir),
                                steps=steps, lr=lr, patch_size=settings.finetune_patch,
                                trainable_scopes=scopes, g_add_width=settings.g_add_width,
                                g_add_depth=settings.g_add_depth, seed=seed, save_every=10**9,
                                progress=False, log_every=1, cache_dir=str(workdir / "cache"), **head),
                   report=lambda m: None)
    wall = time.perf_counter() - t0
    times = [json.loads(x)["step_time_s"] for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    return result.checkpoint, wall, float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="benchmarks/results/quality", help="data, base model and runs go here")
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps N (default: %(default)s)")
    ap.add_argument("--designs", default="rank32,head",
                    help="comma-separated g_add designs; the first is checked against the targets "
                         "(default: %(default)s)")
    ap.add_argument("--cases", default="colour,noise", help="comma-separated: colour, noise (default: %(default)s)")
    ap.add_argument("--lr-g-add", type=float, default=None, help="g_add rate (default: the mode's default)")
    ap.add_argument("--g-add-down-init", default=TrainOptions.g_add_down_init, choices=("xavier", "gradient"),
                    help="how the rank-R down kernels start (sid_ft.training.options.TrainOptions.g_add_down_init; "
                         "default: %(default)s)")
    ap.add_argument("--lr-warmup-g-add", type=int, default=0,
                    help="the g_add runs' rate rises linearly over their first K steps (default: none)")
    ap.add_argument("--lr-all", type=float, default=1e-4, help="SID's rate for all layers (default: %(default)s)")
    ap.add_argument("--seeds", default="0", help="comma-separated fine-tuning seeds; each run is repeated per seed "
                                                 "and the table shows means and ranges (default: %(default)s)")
    ap.add_argument("--no-equal-time", action="store_true", help="skip the all-layer run at g_add's time")
    ap.add_argument("--no-all", action="store_true", help="skip the all-layer runs (design sweeps)")
    ap.add_argument("--base-steps", type=int, default=10000,
                    help="from-scratch base training steps when there is no released checkpoint; the learning "
                         "rate drops 10x at 80%% of them (default: %(default)s)")
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()

    settings = bench_settings(args.base_steps)
    workdir = Path(args.workdir)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"--cases: unknown {sorted(unknown)}; choose from {sorted(CASES)}")
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    head_opts = {d: design_options(d) for d in designs}
    dirs = build_dataset(workdir / "datasets" / "demo", settings, progress=False, targets=TARGETS)
    base = base_model(workdir, dirs, settings, progress=False, report=lambda m: print(m, file=sys.stderr))
    seeds = [int(v) for v in args.seeds.split(",")]
    print(f"machine: CPU {cpu_name()}, {os.cpu_count()} cores; N = {args.steps}; patch {settings.finetune_patch}; "
          f"seeds {seeds} (PSNR/SSIM: mean, and min..max over the seeds); base {base}")

    report: dict = {"seeds": seeds, "steps": args.steps, "cases": {}}
    for case in cases:
        data = dirs[CASES[case]]
        test_list = data / "test_list.txt"
        rows: dict[str, dict] = {}

        def add(name: str, ckpt: str, steps: int, wall: float | None, step_s: float | None, seed: int = 0) -> None:
            res = evaluate(ckpt, test_list, workdir / "eval" / case / f"{name.replace(' ', '_')}_{seed}",
                           progress=False, report=lambda m: None)
            row = rows.setdefault(name, {"run": name, "steps": steps, "step_s": [], "train_s": [], "psnr": [],
                                         "ssim": []})
            for key, value in (("step_s", step_s), ("train_s", wall), ("psnr", res["psnr"]), ("ssim", res["ssim"])):
                row[key].append(value)
            print(f"  [{case}] {name} seed {seed}: {res['psnr']:.2f} dB", file=sys.stderr, flush=True)

        add("base", base, 0, None, None)
        first = f"g_add {designs[0]} @ N"
        for seed in seeds:
            for design in designs:
                tag = design.replace("+", "_")
                ck, wall, step_s = finetune(f"{case}_{tag}_{seed}", workdir, base, data, settings, args.steps,
                                            "g_add", args.lr_g_add, seed, lr_warmup_steps=args.lr_warmup_g_add,
                                            g_add_down_init=args.g_add_down_init,
                                            **head_opts[design])
                add(f"g_add {design} @ N", ck, args.steps, wall, step_s, seed)
            if args.no_all:
                continue
            ck, wall, a_step = finetune(f"{case}_all_{seed}", workdir, base, data, settings, args.steps, "all",
                                        args.lr_all, seed)
            add("all @ N", ck, args.steps, wall, a_step, seed)
            if not args.no_equal_time:
                # equal wall-clock: the all-layer steps that fit in the first design's time for N steps
                eq_steps = max(1, int(rows[first]["step_s"][-1] * args.steps / a_step))
                ck, wall, e_step = finetune(f"{case}_all_eq_time_{seed}", workdir, base, data, settings, eq_steps,
                                            "all", args.lr_all, seed)
                add(EQUAL_TIME, ck, eq_steps, wall, e_step, seed)
                rows[EQUAL_TIME]["steps"] = eq_steps  # of the last seed; each seed's are in runs/

        mean = lambda values: float(np.mean(values))  # noqa: E731
        base_psnr = mean(rows["base"]["psnr"])
        gain_all = mean(rows["all @ N"]["psnr"]) - base_psnr if "all @ N" in rows else float("nan")
        print(f"\ncase {case} ({CASES[case]}): base {base_psnr:.2f} dB")
        print(f"{'run':34s} {'steps':>6s} {'s/step':>8s} {'PSNR dB':>8s} {'(min..max)':>14s} {'gain':>6s} "
              f"{'of all':>7s} {'SSIM':>7s}")
        for r in rows.values():
            steps = [v for v in r["step_s"] if v]
            step = f"{mean(steps):.3f}" if steps else "-"
            gain = mean(r["psnr"]) - base_psnr
            share = f"{100 * gain / gain_all:.0f}%" if gain_all > 0 and r["run"] != "base" else "-"
            spread = f"{min(r['psnr']):.2f}..{max(r['psnr']):.2f}"
            print(f"{r['run']:34s} {r['steps']:6d} {step:>8s} {mean(r['psnr']):8.2f} {spread:>14s} {gain:+6.2f} "
                  f"{share:>7s} {mean(r['ssim']):7.4f}")
        gain_first = mean(rows[first]["psnr"]) - base_psnr
        verdict = f"{first} gains {gain_first:+.2f} dB = {100 * gain_first / gain_all:.0f}% of all layers' " \
                  f"{gain_all:+.2f} dB at equal steps" if gain_all > 0 else f"all layers gained {gain_all:+.2f} dB"
        if EQUAL_TIME in rows:
            verdict += f"; at equal time {mean(rows[first]['psnr']):.2f} vs {mean(rows[EQUAL_TIME]['psnr']):.2f} dB"
        print(verdict)
        report["cases"][case] = {"rows": list(rows.values()), "base_psnr": base_psnr, "gain_all": gain_all,
                                 "gain_first": gain_first}
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
