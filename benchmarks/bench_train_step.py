#!/usr/bin/env python3
"""Step time of the training modes at one patch size, measured in one run.

    python benchmarks/bench_train_step.py --patch-size 256 --steps 20 --designs rank32,rank16
    python benchmarks/bench_train_step.py --patch-size 512 --steps 3 --precision fp32,bf16   # a row per mode and precision
    python benchmarks/bench_train_step.py --patch-size 512 --steps 3 --warmup 1 --modes full,inside \
        --forms rule,delta --layers          # issue 20: the additions' forms, per layer and per step

* full   — every layer learns (``--trainable-scopes all``): SID's own training step;
* inside <design> — only the g_add additions inside the network learn (one row per design in
  ``--designs``, see benchmarks/bench_quality.py): the whole network runs forward and backward,
  without weight gradients for the frozen convolutions.  Each rank-r addition is built in the
  form :func:`sid_ft.nets.g_add.forms.addition_form` chooses for its conv (``--forms rule``, the
  row ``inside <design>``); ``--forms delta`` / ``factored`` / ``branch`` add rows with every
  addition in that form (``inside <design> delta``: the kernel delta everywhere, as before the rule);
* frozen — only the g_add head learns, the frozen network runs on every patch (``--no-feature-cache``);
* cached — only the g_add head learns, on cached frozen-network features.

With ``--precision`` (comma-separated: fp32, bf16, fp16, auto) each mode is measured in each
precision (:mod:`sid_ft.nets.precision`: 16-bit arithmetic, float32 weights; the cached head is
measured in 16-bit too, which is what decided that training keeps it in float32).

With ``--layers``, one convolution of each SID width (``--layer-widths``, C_in = C_out) at its
level's spatial size for each packed patch in ``--layer-patches`` (512: 512, 256, 128, 64, 32 pixels
for 32 .. 512 channels) is timed first, forward and backward (the gradients ``inside`` computes:
``down``, ``up``, ``up/biases`` and the conv's input), with its addition in each form.

The modes (and the layers' forms) run interleaved (one step of each in turn after a warm-up), so
machine noise hits them alike; the figures are medians.  Weights are random: step time does not
depend on their values.
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
from sid_ft.nets.g_add.forms import FORMS, addition_form, forced_addition_form  # noqa: E402
from sid_ft.nets.g_add.layers import g_add_conv_additions  # noqa: E402
from sid_ft.nets.precision import cpu_name  # noqa: E402,F401  (benchmarks/bench_fold.py and bench_quality.py import it from here)
from sid_ft.data.sampling import Patch  # noqa: E402
from sid_ft.training.graph import build_train_graph, feed_for  # noqa: E402


def _interleaved_medians(runners: dict, warmup: int, steps: int) -> dict:
    """``{name: median seconds}`` of ``runners`` (``{name: zero-argument callable}``), run in turn."""
    times = {name: [] for name in runners}
    for i in range(warmup + steps):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _layer_runner(tf, dev, base_config, width: int, size: int, rank: int, form: str, rng):
    """``(session, run)``: forward + backward of one ``width``-channel 3x3 conv on (1, size, size, width)
    with its rank-``rank`` addition in ``form``, gradients for the addition's variables and the input."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(dev):
        x = tf.identity(tf.Variable(rng.uniform(-1, 1, (1, size, size, width)).astype(np.float32), trainable=False))
        weights = tf.Variable(rng.normal(0, 0.05, (3, 3, width, width)).astype(np.float32), name="weights")
        biases = tf.Variable(np.zeros(width, np.float32), name="biases")
        with forced_addition_form(form):
            z = g_add_conv_additions(x, weights, biases, "g_conv", GAddConfig(head=False, rank=rank))
        g_add = [v for v in tf.trainable_variables() if v.op.name.startswith("g_add/")]
        dz = tf.Variable(rng.normal(0, 1, (1, size, size, width)).astype(np.float32), trainable=False)
        grads = tf.gradients(tf.reduce_sum(z * dz), g_add + [x])
        # applied (a step of 0) and summed: a group of bare gradients would be pruned unrun
        step = [tf.train.GradientDescentOptimizer(0.0).apply_gradients(zip(grads[:-1], g_add)),
                tf.reduce_sum(grads[-1])]
        sess = tf.Session(graph=graph, config=base_config)
        sess.run(tf.global_variables_initializer())
        # up starts at zero; any values do (the time does not depend on them)
        for v in g_add:
            v.load(rng.normal(0, 0.05, v.shape.as_list()).astype(np.float32), sess)
    return sess, lambda: sess.run(step)


def _bench_layers(args, tf, dev, base_config) -> list[dict]:
    """Time one conv of each width in each form at each patch size; print and return the rows."""
    rng = np.random.default_rng(1)
    widths = [int(w) for w in args.layer_widths.split(",")]
    patches = [int(p) for p in args.layer_patches.split(",")]
    sessions, runners = [], {}
    for patch in patches:
        for level, width in enumerate(widths):
            size = max(1, patch >> level)
            for form in FORMS:
                sess, run = _layer_runner(tf, dev, base_config, width, size, args.layer_rank, form, rng)
                sessions.append(sess)
                runners[patch, width, form] = run
    med = _interleaved_medians(runners, args.warmup, args.steps)
    for sess in sessions:
        sess.close()
    print(f"one 3x3 conv, C_in = C_out = width, rank {args.layer_rank}, fp32: median ms of forward + backward "
          f"(gradients for down, up, up/biases and the input), median of {args.steps}")
    print(f"  {'patch':>5s} {'width':>5s} {'pixels':>7s}" + "".join(f" {f + ' ms':>11s}" for f in FORMS)
          + "".join(f" {f + '/delta':>15s}" for f in FORMS[1:]) + "  rule")
    rows = []
    for patch in patches:
        for level, width in enumerate(widths):
            size = max(1, patch >> level)
            ms = {f: med[patch, width, f] for f in FORMS}
            rule = addition_form(width, width, min(args.layer_rank, width))
            rows.append({"patch": patch, "width": width, "pixels": size, "median_s": ms, "rule": rule})
            print(f"  {patch:5d} {width:5d} {size:4d}^2 " + "".join(f" {ms[f] * 1000:11.1f}" for f in FORMS)
                  + "".join(f" {ms[f] / ms['delta']:15.2f}" for f in FORMS[1:]) + f"  {rule}")
    return rows


def _step_runs(args, cfg: GAddConfig, precisions: list) -> list[tuple]:
    """``[(row name, mode, design, trainable scopes, precision, addition form or None), ...]``."""
    wanted = {m.strip() for m in args.modes.split(",") if m.strip()}
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    runs = [("full", "full", cfg, ["all"], None)]
    for d in (d.strip() for d in args.designs.split(",") if d.strip()):
        runs += [(f"inside {d}" + ("" if f == "rule" else f" {f}"), "inside", parse_design(d, cfg.depth, cfg.width),
                  ["g_add"], None if f == "rule" else f) for f in forms]
    runs += [("frozen", "frozen", cfg, ["g_add"], None), ("cached", "cached", cfg, ["g_add"], None)]
    runs = [r for r in runs if r[1] in wanted]
    return [(f"{name} {pr.name}" if len(precisions) > 1 else name, mode, design, scopes, pr, form)
            for name, mode, design, scopes, form in runs for pr in precisions]


def _step_runner(tf, dev, base_config, run: tuple, p: int, rng):
    """``(session, step)`` for one row of :func:`_step_runs` on a random patch of ``p`` x ``p`` packed pixels."""
    name, mode, design, scopes, precision, form = run
    with tf.device(dev), forced_addition_form(form):
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
    feed = feed_for(tg, patch, 100.0)
    return sess, lambda: sess.run(tg.train_op, feed)


def _print_steps(args, med: dict, precisions: list, cfg: GAddConfig, device: str) -> None:
    first = next(iter(med))
    print(f"device: {args.device or 'default'}; machine: {device}; patch {args.patch_size}x{args.patch_size} packed; "
          f"g_add depth {cfg.depth} width {cfg.width}; median of {args.steps} steps")
    for m in med:
        mode = m.rsplit(" ", 1)[0] if len(precisions) > 1 else m
        same_mode_fp = f"{mode} {precisions[0].name}" if len(precisions) > 1 else None
        vs = f"   {med[same_mode_fp] / med[m]:6.2f}x vs {precisions[0].name}" if same_mode_fp in med else ""
        print(f"  {m:28s} {med[m] * 1000:9.1f} ms/step   {med[first] / med[m]:6.2f}x vs {first} "
              f"({med[m] / med[first]:.2f} of its time){vs}")


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
    ap.add_argument("--forms", default="rule",
                    help="comma-separated forms of the rank-r additions, one 'inside' row each: rule (each conv's "
                         "cheaper form), delta, factored, branch (default: %(default)s)")
    ap.add_argument("--precision", default="fp32",
                    help="comma-separated precisions to measure each mode in: fp32, bf16, fp16, auto "
                         "(default: %(default)s)")
    ap.add_argument("--device", default=None, help="cpu, gpu:0 ... (default: TensorFlow's choice)")
    ap.add_argument("--modes", default="full,inside,frozen,cached",
                    help="comma-separated modes to measure, none for the layers alone (default: %(default)s)")
    ap.add_argument("--layers", action="store_true", help="first time one conv per width in each form (fp32)")
    ap.add_argument("--layer-widths", default="32,64,128,256,512")
    ap.add_argument("--layer-patches", default="256,512", help="packed patch sizes for --layers (default: %(default)s)")
    ap.add_argument("--layer-rank", type=int, default=32)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    for f in args.forms.split(","):
        if f.strip() and f.strip() not in ("rule",) + FORMS:
            ap.error(f"--forms: unknown form {f!r}; expected rule or one of {', '.join(FORMS)}")

    tf = tf1()
    from sid_ft.inference.predictor import _session_config

    dev, base_config = _session_config(tf, args.device)
    device = prec.describe_machine()
    cfg = GAddConfig(depth=args.g_add_depth, width=args.g_add_width)
    result = {"patch_size": args.patch_size, "g_add": cfg.to_dict(), "steps": args.steps, "device": device,
              "requested_device": args.device}
    if args.layers:
        result["layers"] = _bench_layers(args, tf, dev, base_config)
    precisions = [prec.resolve(p.strip(), args.device) for p in args.precision.split(",") if p.strip()]
    runs = _step_runs(args, cfg, precisions)
    if runs:
        rng = np.random.default_rng(0)
        runners = {run[0]: _step_runner(tf, dev, base_config, run, args.patch_size, rng) for run in runs}
        med = _interleaved_medians({name: run for name, (_, run) in runners.items()}, args.warmup, args.steps)
        first = next(iter(med))
        result.update(precisions=[pr.to_dict() for pr in precisions], median_step_s=med,
                      speedup_vs_first={m: med[first] / t for m, t in med.items()})
        _print_steps(args, med, precisions, cfg, device)
        for sess, _ in runners.values():
            sess.close()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
