#!/usr/bin/env python3
"""Step time of the training modes at one patch size, measured in one run.

    python benchmarks/bench_train_step.py --patch-size 256 --steps 20 --designs rank32,rank16
    python benchmarks/bench_train_step.py --patch-size 512 --steps 3 --precision fp32,bf16   # a row per mode and precision

* full   — every layer learns (``--trainable-scopes all``): SID's own training step;
* inside <design> — only the g_add additions inside the network learn (one row per design in
  ``--designs``, see benchmarks/bench_quality.py): the whole network runs forward and backward,
  without weight gradients for the frozen convolutions;
* frozen — only the g_add head learns, the frozen network runs on every patch (``--no-feature-cache``);
* cached — only the g_add head learns, on cached frozen-network features.

With ``--precision`` (comma-separated: fp32, bf16, fp16, auto) each mode is measured in each
precision (:mod:`sid_ft.nets.precision`: 16-bit arithmetic, float32 weights; the cached head is
measured in 16-bit too, which is what decided that training keeps it in float32).

The modes run interleaved (one step of each in turn after a warm-up), so machine
noise hits them alike; the figures are medians.  Weights are random: step time
does not depend on their values.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from sid_ft._tf import tf1  # noqa: E402
from sid_ft.nets import precision as prec  # noqa: E402
from sid_ft.nets.g_add.config import GAddConfig, parse_design  # noqa: E402
from sid_ft.nets.precision import cpu_name  # noqa: E402,F401  (benchmarks/bench_fold.py and bench_quality.py import it from here)
from sid_ft.data.sampling import Patch  # noqa: E402
from sid_ft.training.graph import build_train_graph, feed_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch-size", type=int, default=256, help="packed patch size (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per mode (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--g-add-depth", type=int, default=GAddConfig().depth)
    ap.add_argument("--g-add-width", type=int, default=GAddConfig().width)
    ap.add_argument("--designs", default="rank32",
                    help="comma-separated designs with additions inside the network, one 'inside' row each "
                         "(default: %(default)s)")
    ap.add_argument("--precision", default="fp32",
                    help="comma-separated precisions to measure each mode in: fp32, bf16, fp16, auto "
                         "(default: %(default)s)")
    ap.add_argument("--device", default=None, help="cpu, gpu:0 ... (default: TensorFlow's choice)")
    ap.add_argument("--modes", default="full,inside,frozen,cached",
                    help="comma-separated modes to measure (default: %(default)s)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    tf = tf1()
    p = args.patch_size
    rng = np.random.default_rng(0)
    cfg = GAddConfig(depth=args.g_add_depth, width=args.g_add_width)
    wanted = {m.strip() for m in args.modes.split(",") if m.strip()}
    runs = [("full", "full", cfg, ["all"])]
    runs += [(f"inside {d}", "inside", parse_design(d, cfg.depth, cfg.width), ["g_add"])
             for d in args.designs.split(",") if d.strip()]
    runs += [("frozen", "frozen", cfg, ["g_add"]), ("cached", "cached", cfg, ["g_add"])]
    runs = [r for r in runs if r[1] in wanted]
    precisions = [prec.resolve(p.strip(), args.device) for p in args.precision.split(",") if p.strip()]
    runs = [(f"{name} {pr.name}" if len(precisions) > 1 else name, mode, design, scopes, pr)
            for name, mode, design, scopes in runs for pr in precisions]
    from sid_ft.inference.predictor import _session_config

    dev, base_config = _session_config(tf, args.device)
    runners = {}
    for name, mode, design, scopes, precision in runs:
        with tf.device(dev):
            tg = build_train_graph("sony", design, mode, scopes, 1e-4, 10**9, 0.1, precision=precision)
        config = tf.ConfigProto()
        config.CopyFrom(base_config)
        sess = tf.Session(graph=tg.graph, config=config)
        with tg.graph.as_default():
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        packed = rng.uniform(0, 0.004, size=(p, p, 4)).astype(np.float32)
        gt = rng.uniform(0, 1, size=(2 * p, 2 * p, 3)).astype(np.float32)
        if mode == "cached":
            feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: np.minimum(packed * 100, 1)[None]})
            patch = Patch(0, [feats[0], logits[0]], gt, 100.0, np.zeros(3, bool))
        else:
            patch = Patch(0, [packed], gt, 100.0, np.zeros(3, bool))
        runners[name] = (sess, tg, feed_for(tg, patch, 100.0))

    times = {m: [] for m in runners}
    for i in range(args.warmup + args.steps):
        for mode, (sess, tg, feed) in runners.items():
            t0 = time.perf_counter()
            sess.run(tg.train_op, feed)
            if i >= args.warmup:
                times[mode].append(time.perf_counter() - t0)
    med = {m: statistics.median(t) for m, t in times.items()}
    device = prec.describe_machine()
    first = next(iter(med))
    result = {
        "patch_size": p, "g_add": cfg.to_dict(), "steps": args.steps, "device": device,
        "requested_device": args.device, "precisions": [pr.to_dict() for pr in precisions],
        "median_step_s": med,
        "speedup_vs_first": {m: med[first] / t for m, t in med.items()},
    }
    print(f"device: {args.device or 'default'}; machine: {device}; patch {p}x{p} packed; g_add depth {cfg.depth} "
          f"width {cfg.width}; median of {args.steps} steps")
    for m in med:
        mode = m.rsplit(" ", 1)[0] if len(precisions) > 1 else m
        same_mode_fp = f"{mode} {precisions[0].name}" if len(precisions) > 1 else None
        vs = f"   {med[same_mode_fp] / med[m]:6.2f}x vs {precisions[0].name}" if same_mode_fp in med else ""
        print(f"  {m:28s} {med[m] * 1000:9.1f} ms/step   {med[first] / med[m]:6.2f}x vs {first}{vs}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    for sess, _, _ in runners.values():
        sess.close()


if __name__ == "__main__":
    main()
