#!/usr/bin/env python3
"""Quality of g_add fine-tuning against all-layer fine-tuning, on the demo's "new camera".

    python benchmarks/bench_quality.py --workdir /tmp/sid_quality --steps 400 [--seeds 0,1,2] [--head-options]

From one base model (the released Sony checkpoint in ``<workdir>/checkpoints/Sony``
if present, else the demo's short base training on the source camera), in one run:

* base            — no fine-tuning;
* g_add @ N       — only the g_add layers, N steps (cached features, the default);
* all @ N         — every layer (``--trainable-scopes all``), N steps;
* all @ g_add's time — every layer, as many steps as fit in g_add's wall-clock time.

Each is evaluated on the new camera's held-out scenes (PSNR/SSIM against the
rendered long exposure, through scripts/test.py's library).  With several
``--seeds`` every fine-tuning run is repeated per seed (patch sampling, and
TensorFlow's own nondeterminism) and the table gives means and ranges.  The targets: at
equal steps g_add recovers >= 80% of the all-layer PSNR gain; at equal time it
beats all-layer fine-tuning.
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
from sid_ft.demo import DemoSettings, base_model, build_dataset, evaluate  # noqa: E402
from sid_ft.train import TrainOptions, train  # noqa: E402


EQUAL_TIME = "all @ g_add's time"


def finetune(name: str, workdir: Path, base: str, data: Path, settings: DemoSettings, steps: int, scopes: str,
             lr: float, seed: int = 0, **head) -> tuple[str, float, float]:
    """Fine-tune from ``base``; returns (checkpoint, wall seconds excluding decode/feature caching, s/step)."""
    train_dir = workdir / "runs" / name
    shutil.rmtree(train_dir, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(TrainOptions(dataset_dir=str(data), split="train", pretrained=base, train_dir=str(train_dir),
                                steps=steps, lr=lr, lr_decay_step=10**9, patch_size=settings.finetune_patch,
                                trainable_scopes=scopes, g_add_width=settings.g_add_width,
                                g_add_depth=settings.g_add_depth, seed=seed, save_every=10**9,
                                progress=False, log_every=1, cache_dir=str(workdir / "cache"), **head),
                   report=lambda m: None)
    wall = time.perf_counter() - t0
    times = [json.loads(x)["step_time_s"] for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    return result.checkpoint, wall, sum(times) / len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="benchmarks/results/quality", help="data, base model and runs go here")
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps N (default: %(default)s)")
    ap.add_argument("--lr-g-add", type=float, default=1e-3)
    ap.add_argument("--lr-all", type=float, default=1e-4, help="SID's rate for all layers (default: %(default)s)")
    ap.add_argument("--head-options", action="store_true",
                    help="also run g_add with --g-add-packed-input, --g-add-linear and both, at N steps")
    ap.add_argument("--seeds", default="0", help="comma-separated fine-tuning seeds; each run is repeated per seed "
                                                 "and the table shows means and ranges (default: %(default)s)")
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()

    settings = DemoSettings()
    workdir = Path(args.workdir)
    dirs = build_dataset(workdir / "datasets" / "demo", settings, progress=False)
    base = base_model(workdir, dirs, settings, progress=False, report=lambda m: print(m, file=sys.stderr))
    test_list = dirs["newcam"] / "test_list.txt"

    seeds = [int(v) for v in args.seeds.split(",")]
    rows: dict[str, dict] = {}

    def add(name: str, ckpt: str, steps: int, wall: float | None, step_s: float | None, seed: int = 0) -> None:
        res = evaluate(ckpt, test_list, workdir / "eval" / f"{name.replace(' ', '_')}_{seed}", progress=False,
                       report=lambda m: None)
        row = rows.setdefault(name, {"run": name, "steps": steps, "step_s": [], "train_s": [], "psnr": [], "ssim": []})
        for key, value in (("step_s", step_s), ("train_s", wall), ("psnr", res["psnr"]), ("ssim", res["ssim"])):
            row[key].append(value)

    add("base", base, 0, None, None)
    eq_steps = None
    for seed in seeds:
        ck, wall, g_step = finetune(f"g_add_{seed}", workdir, base, dirs["newcam"], settings, args.steps, "g_add",
                                    args.lr_g_add, seed)
        add("g_add @ N", ck, args.steps, wall, g_step, seed)
        ck, wall, a_step = finetune(f"all_{seed}", workdir, base, dirs["newcam"], settings, args.steps, "all",
                                    args.lr_all, seed)
        add("all @ N", ck, args.steps, wall, a_step, seed)
        if eq_steps is None:  # equal wall-clock: the all-layer steps that fit in g_add's measured time for N steps
            eq_steps = max(1, int(g_step * args.steps / a_step))
        ck, wall, e_step = finetune(f"all_eq_time_{seed}", workdir, base, dirs["newcam"], settings, eq_steps, "all",
                                    args.lr_all, seed)
        add(EQUAL_TIME, ck, eq_steps, wall, e_step, seed)
        if args.head_options:
            for label, head in (("g_add packed_input", {"g_add_packed_input": True}),
                                ("g_add linear", {"g_add_linear": True}),
                                ("g_add packed+linear", {"g_add_packed_input": True, "g_add_linear": True})):
                ck, wall, step_s = finetune(label.replace(" ", "_").replace("+", "_") + f"_{seed}", workdir, base,
                                            dirs["newcam"], settings, args.steps, "g_add", args.lr_g_add, seed, **head)
                add(f"{label} @ N", ck, args.steps, wall, step_s, seed)

    def mean(values: list) -> float:
        return float(np.mean(values))

    table = list(rows.values())
    base_psnr = mean(rows["base"]["psnr"])
    gain_g = mean(rows["g_add @ N"]["psnr"]) - base_psnr
    gain_a = mean(rows["all @ N"]["psnr"]) - base_psnr
    print(f"machine: CPU {cpu_name()}, {os.cpu_count()} cores; new camera held-out scenes; N = {args.steps}; "
          f"fine-tuning seeds {seeds} (PSNR/SSIM: mean, and min..max over the seeds)")
    print(f"{'run':26s} {'steps':>6s} {'s/step':>8s} {'PSNR dB':>8s} {'(min..max)':>14s} {'SSIM':>7s}")
    for r in table:
        steps = [v for v in r["step_s"] if v]
        step = f"{mean(steps):.3f}" if steps else "-"
        spread = f"{min(r['psnr']):.2f}..{max(r['psnr']):.2f}"
        print(f"{r['run']:26s} {r['steps']:6d} {step:>8s} {mean(r['psnr']):8.2f} {spread:>14s} {mean(r['ssim']):7.4f}")
    recovered = gain_g / gain_a if gain_a > 0 else float("nan")
    print(f"g_add recovers {100 * recovered:.0f}% of the all-layer PSNR gain at equal steps "
          f"({gain_g:+.2f} vs {gain_a:+.2f} dB, means); at equal time g_add {mean(rows['g_add @ N']['psnr']):.2f} vs "
          f"all {mean(rows[EQUAL_TIME]['psnr']):.2f} dB")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": seeds, "rows": table, "recovered_fraction": recovered},
                                              indent=2))


if __name__ == "__main__":
    main()
