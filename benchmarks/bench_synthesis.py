#!/usr/bin/env python3
"""Time of the shot noise's two samplers (issue 18), measured in one run: TensorFlow's op and the device sampler.

    python benchmarks/bench_synthesis.py                        # CPU: patch 512x512x4, batches 1 and 4
    python benchmarks/bench_synthesis.py --device gpu:0 --repeat 20
    python benchmarks/bench_synthesis.py --levels mixed --batches 4 --threads 1 --json synthesis.json

* op     — ``tf.random.stateless_poisson``: a CPU kernel only (on a GPU it runs on the host, and the
  electrons and the counts cross to it and back);
* device — :func:`sid_ft.training.poisson.device_poisson`: stateless uniforms, the exact CDF inversion
  below 16 e- (a ``while_loop`` of one round per count) and a Cornish-Fisher quantile above.

Each row draws Poisson counts for a (batch, p, p, 4) tensor of electrons held in the graph, with a new
(seed, step) every run, and fetches only their sum, so neither feeding nor fetching is timed.  The
electrons (``--levels``): ``mixed`` a short exposure's spread, 160 u^4 for uniform u (median 10 e-,
60 % under 20, at most 160); a number, that many everywhere (15.9: the exact loop's longest; 60: only the
Cornish-Fisher branch).  The samplers run interleaved (one run of each row in turn after a warm-up), so
machine noise hits them alike; the figures are medians.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.bench_train_step import _interleaved_medians, cpu_name  # noqa: E402
from sid_ft._tf import tf1  # noqa: E402
from sid_ft.nets import precision as prec  # noqa: E402
from sid_ft.training.poisson import device_poisson  # noqa: E402

SAMPLERS = ("op", "device")


def electrons(level: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Electrons per element, float32 of ``shape``: ``mixed`` (module docstring) or a number everywhere."""
    if level == "mixed":
        return (160.0 * rng.uniform(0, 1, shape) ** 4).astype(np.float32)
    return np.full(shape, float(level), np.float32)


def _counts(tf, sampler: str, lam, seed):
    """The ``sampler``'s Poisson counts of ``lam`` from the stateless ``seed``."""
    if sampler == "op":
        return tf.random.stateless_poisson(tf.shape(lam), seed, lam=lam, dtype=tf.float32)
    return device_poisson(lam, seed)


def _runner(tf, dev, config, sampler: str, lam: np.ndarray):
    """``(session, run)``: one draw of ``sampler`` for the electrons ``lam``, a new step each run."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(dev):
        seed = tf.placeholder(tf.int64, [2], name="noise_seed")
        total = tf.reduce_sum(_counts(tf, sampler, tf.constant(lam), seed))
    sess = tf.Session(graph=graph, config=config)
    step = [0]

    def run() -> None:
        step[0] += 1
        sess.run(total, {seed: np.asarray([1, step[0]], np.int64)})

    return sess, run


def _print(med: dict, rows: list, args, machine: str) -> None:
    print(f"cpu: {cpu_name()}; device: {args.device or 'default'}; intra-op threads: {args.threads or 'default'}; "
          f"median of {args.repeat} runs")
    print(f"machine: {machine}")
    for batch, level in dict.fromkeys((b, lv) for b, lv, _ in rows):
        op, device = med[(batch, level, "op")], med[(batch, level, "device")]
        print(f"  batch {batch} x {args.patch_size}x{args.patch_size}x4, electrons {level:>6s}:  op {op * 1e3:8.1f} ms"
              f"   device {device * 1e3:8.1f} ms   device/op {device / op:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch-size", type=int, default=512, help="packed patch size (default: %(default)s)")
    ap.add_argument("--batches", default="1,4", help="comma-separated batch sizes (default: %(default)s)")
    ap.add_argument("--levels", default="mixed,15.9,60",
                    help="comma-separated electrons: mixed, or a number everywhere (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, gpu:0 ... (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads, 0: TensorFlow's choice")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    tf = tf1()
    from sid_ft.inference.predictor import _session_config

    dev, config = _session_config(tf, args.device)
    config.intra_op_parallelism_threads = args.threads
    rng = np.random.default_rng(0)
    rows = [(int(b), lv.strip(), s) for b in args.batches.split(",") for lv in args.levels.split(",") for s in SAMPLERS]
    lams = {(b, lv): electrons(lv, (b, args.patch_size, args.patch_size, 4), rng) for b, lv, _ in rows}
    runners = {(b, lv, s): _runner(tf, dev, config, s, lams[(b, lv)]) for b, lv, s in rows}
    med = _interleaved_medians({key: run for key, (_, run) in runners.items()}, args.warmup, args.repeat)
    machine = prec.describe_machine()
    _print(med, rows, args, machine)
    for sess, _ in runners.values():
        sess.close()
    if args.json:
        figures = [{"batch": b, "electrons": lv, "sampler": s, "median_s": med[(b, lv, s)]} for b, lv, s in rows]
        Path(args.json).write_text(json.dumps({"machine": machine, "cpu": cpu_name(), "device": args.device,
                                               "patch_size": args.patch_size, "repeat": args.repeat,
                                               "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
