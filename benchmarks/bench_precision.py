#!/usr/bin/env python3
"""Does 16-bit training reach float32's quality?  And how far are 16-bit outputs from float32's?

    python benchmarks/bench_precision.py --steps 300 --precisions fp32,bf16 --seeds 0
    python benchmarks/bench_precision.py --base RUN/model.ckpt-300 --steps 200 --seeds 0,1   # fine-tuning

On the demo's data (``sid_ft.demo``, made from scikit-image photographs): for each seed and
precision, plain SID is trained from scratch on every layer (the mode where 16-bit pays most)
on the source camera for ``--steps`` steps; the runs of one seed alternate precisions so load
changes hit them alike.  Each checkpoint is then scored on the demo's held-out scenes (new
camera, 3 scenes x 2 ratios; float32 inference, PSNR against the long exposures), and the
float32-trained checkpoint is run in every precision to compare its outputs with float32's
(PSNR and largest difference in 16-bit steps, over all held-out images).

With ``--base CHECKPOINT`` the runs fine-tune every layer of that plain SID checkpoint (with
the default g_add design added) on the new camera's training pairs instead.

Everything goes to a temporary folder unless ``--work-dir`` is given.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def held_out_inputs(test_list: Path, ratio_cap: float = 300.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(packed amplified input, ground truth)]`` of the pairs in a SID list file."""
    from sid_ft.io import raw as sid_raw
    from sid_ft.io.render import render_reference
    from sid_ft.inference.jobs import make_jobs
    from sid_ft.inference.predictor import amplify

    jobs, problems = make_jobs([], str(test_list), ratio_cap)
    if problems:
        raise SystemExit(f"unreadable held-out pairs: {problems}")
    return [(amplify(sid_raw.load_raw(j.input).packed, j.pair_ratio), render_reference(j.ground_truth))
            for j in jobs]


def main() -> None:
    from sid_ft import demo
    from sid_ft.nets import precision as prec
    from sid_ft.eval.metrics import psnr
    from sid_ft.inference.predictor import Predictor
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="training steps per run (default: %(default)s)")
    ap.add_argument("--patch-size", type=int, default=128, help="(default: %(default)s)")
    ap.add_argument("--lr", type=float, default=3e-4, help="(default: %(default)s, the demo's base rate)")
    ap.add_argument("--precisions", default="fp32,bf16", help="(default: %(default)s)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default: %(default)s)")
    ap.add_argument("--base", help="fine-tune every layer of this plain SID checkpoint on the new camera "
                                   "instead of training from scratch on the source camera")
    ap.add_argument("--work-dir", help="keep data and checkpoints here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    names = [p.strip() for p in args.precisions.split(",") if p.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    print(f"machine: {prec.describe_machine()}")
    for n in names:
        print(f"precision {n}: {prec.resolve(n).reason}")
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        root = Path(args.work_dir or tmp)
        settings = demo.DemoSettings()
        dirs = demo.build_dataset(root / "datasets" / "demo", settings, progress=False)
        test_list = dirs["newcam"] / "test_list.txt"
        held_out = held_out_inputs(test_list)
        runs: dict[str, dict[int, dict]] = {n: {} for n in names}
        for seed in seeds:
            order = names if seed % 2 == 0 else names[::-1]
            for n in order:
                t0 = time.perf_counter()
                what = dict(dataset_dir=str(dirs["source"]), split="all", from_scratch=True) if not args.base else \
                    dict(dataset_dir=str(dirs["newcam"]), split="train", pretrained=args.base)
                tag = "finetune_" if args.base else ""
                result = train(TrainOptions(
                    **what, train_dir=str(root / "runs" / f"{tag}{n}_seed{seed}"),
                    trainable_scopes="all", steps=args.steps, lr=args.lr, g_add_head=True, g_add_rank=0,
                    patch_size=args.patch_size, save_every=args.steps, seed=seed, progress=False, log_every=10,
                    precision=n), report=lambda m: None)
                seconds = time.perf_counter() - t0
                with Predictor(result.checkpoint) as p:
                    scores = [psnr(p.predict(x), gt) for x, gt in held_out]
                runs[n][seed] = {"checkpoint": result.checkpoint, "train_s": seconds, "psnr": float(np.mean(scores))}
                print(f"seed {seed} {n}: {args.steps} steps in {seconds:.0f} s, held-out PSNR {np.mean(scores):.3f} dB",
                      flush=True)
        start = f"fine-tuning {args.base}" if args.base else "from scratch"
        print(f"\nheld-out PSNR after {args.steps} steps {start} (float32 inference), mean over seeds {seeds}:")
        summary = {}
        for n in names:
            values = [runs[n][s]["psnr"] for s in seeds]
            summary[n] = {"psnr_mean": statistics.mean(values), "psnr_range": [min(values), max(values)],
                          "train_s_median": statistics.median(runs[n][s]["train_s"] for s in seeds)}
            print(f"  trained in {n}: {summary[n]['psnr_mean']:.3f} dB (range {min(values):.3f}-{max(values):.3f}), "
                  f"{summary[n]['train_s_median']:.0f} s per run")
        if "fp32" in summary:
            for n in names:
                if n != "fp32":
                    diff = summary[n]["psnr_mean"] - summary["fp32"]["psnr_mean"]
                    print(f"  {n} - fp32: {diff:+.3f} dB")
                    summary[n]["vs_fp32_db"] = diff
        inference = {}
        if "fp32" in runs:
            ck = runs["fp32"][seeds[0]]["checkpoint"]
            print(f"\ninference of the float32-trained checkpoint (seed {seeds[0]}) in each precision, "
                  f"against its float32 output on the {len(held_out)} held-out images:")
            with Predictor(ck) as p32:
                refs = [p32.predict(x) for x, _ in held_out]
            for n in names:
                if n == "fp32":
                    continue
                with Predictor(ck, precision=n) as p:
                    outs = [p.predict(x) for x, _ in held_out]
                values = [psnr(o, r) for o, r in zip(outs, refs)]
                lsb = max(float(np.abs(o - r).max()) for o, r in zip(outs, refs)) * 65535
                inference[n] = {"psnr_min": min(values), "psnr_mean": statistics.mean(values), "max_lsb16": lsb,
                                "vs_ground_truth_db": statistics.mean(psnr(o, gt) for o, (_, gt) in zip(outs, held_out))}
                print(f"  {n}: {min(values):.2f} dB PSNR at worst ({statistics.mean(values):.2f} mean), max difference "
                      f"{lsb:.0f} LSB16; against the ground truth {inference[n]['vs_ground_truth_db']:.3f} dB "
                      f"(float32: {runs['fp32'][seeds[0]]['psnr']:.3f} dB)")
        if args.json:
            Path(args.json).write_text(json.dumps({"steps": args.steps, "seeds": seeds, "runs": runs,
                                                   "summary": summary, "inference": inference}, indent=1))


if __name__ == "__main__":
    main()
