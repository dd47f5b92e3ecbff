#!/usr/bin/env python3
"""Inference cost of a fine-tuned model against plain SID: folded additions add nothing.

    python benchmarks/bench_fold.py --size 1024x1536 --repeat 5 --design rank32

Three checkpoints from the same random released-layout base, run through ``Predictor``:

* plain SID;
* the base with the g_add design's additions set to non-zero values, folded into the
  convolutions at load time (the default of ``Predictor`` and ``scripts/test.py``);
* the same checkpoint unfolded (``Predictor(fold=False)``): the additions as separate layers,
  as in training.

The bare forward pass runs interleaved (one of each in turn, after a warm-up), medians;
ratios to plain SID and the largest difference between folded and unfolded outputs (LSB16).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.bench_train_step import cpu_name  # noqa: E402

from sid_ft.nets import checkpoint as ckpt  # noqa: E402
from sid_ft.nets.checkpoint_save import make_saver, save_checkpoint  # noqa: E402
from sid_ft.nets.g_add.config import GAddConfig, parse_design  # noqa: E402
from sid_ft.nets.network import sid_network  # noqa: E402
from sid_ft._tf import slim as _slim  # noqa: E402
from sid_ft._tf import tf1  # noqa: E402
from sid_ft.inference.predictor import Predictor  # noqa: E402
from sid_reference import write_released_checkpoint  # noqa: E402


def adapted_checkpoint(base: str, design: GAddConfig, train_dir: Path, seed: int = 0) -> str:
    """``base`` plus ``design``'s g_add layers with small random values, saved as a full checkpoint."""
    tf, slim = tf1(), _slim()
    rng = np.random.default_rng(seed)
    with tf.Graph().as_default():
        sid_network(tf.placeholder(tf.float32, [None, None, None, 4]), g_add=design)
        with tf.Session() as sess:
            ckpt.restore_pretrained(sess, base)
            for v in slim.get_model_variables():
                if v.op.name.startswith("g_add"):
                    v.load(rng.normal(0, 0.02, v.shape.as_list()).astype(np.float32), sess)
            return save_checkpoint(sess, make_saver(), str(train_dir), 1,
                                   {"camera": "sony", "g_add": design})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1024x1536", help="mosaic HxW (packed is half) (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed forwards per model (default: %(default)s)")
    ap.add_argument("--design", default="rank32", help="g_add design (default: %(default)s)")
    ap.add_argument("--device", default=None, help="cpu, gpu or gpu:K (default: TensorFlow's choice)")
    args = ap.parse_args()
    h, w = (int(v) // 2 for v in args.size.lower().split("x"))
    design = parse_design(args.design)
    with tempfile.TemporaryDirectory() as tmp:
        base = write_released_checkpoint(Path(tmp) / "base", camera="sony", seed=0)
        adapted = adapted_checkpoint(base, design, Path(tmp) / "adapted")
        models = {"plain SID": Predictor(base, device=args.device),
                  f"{args.design}, folded": Predictor(adapted, device=args.device),
                  f"{args.design}, unfolded": Predictor(adapted, device=args.device, fold=False)}
        x = np.random.default_rng(1).uniform(0, 1, (1, h, w, 4)).astype(np.float32)
        outputs = {name: m.forward(x) for name, m in models.items()}  # warm-up
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.repeat):
            for name, m in models.items():
                t0 = time.perf_counter()
                m.forward(x)
                times[name].append(time.perf_counter() - t0)
        for m in models.values():
            m.close()
    med = {name: statistics.median(t) for name, t in times.items()}
    plain = med["plain SID"]
    names = list(models)
    diff = np.abs(outputs[names[1]] - outputs[names[2]]).max() * 65535
    print(f"machine: CPU {cpu_name()}, {os.cpu_count()} cores; packed {h}x{w}; median of {args.repeat}; "
          f"design {design.describe()}")
    for name in names:
        print(f"  {name:32s} {med[name]:8.3f} s   {med[name] / plain:5.3f}x plain SID")
    print(f"folded vs unfolded output: max difference {diff:.3f} LSB16")


if __name__ == "__main__":
    main()
