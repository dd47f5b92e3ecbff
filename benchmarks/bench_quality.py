#!/usr/bin/env python3
"""Quality of g_add fine-tuning designs against all-layer fine-tuning, and of training data without
many pairs, on new cameras.

    python benchmarks/bench_quality.py --workdir /tmp/sid_quality --steps 400 --seeds 0,1,2 \\
        --designs rank32,head,affine,rank16 --cases colour,noise
    python benchmarks/bench_quality.py --workdir /tmp/sid_quality --steps 400 --seeds 0,1,2 --cases outnoise \\
        --designs rank32 --no-all --data pairs,2pairs,sampled,parametric,2pairs+sampled

From one base model (the released Sony checkpoint in ``<workdir>/checkpoints/Sony`` if
present, else a plain SID trained from scratch on the demo's source camera for ``--base-steps``
steps, 10000 by default: four times the demo's short base, so that the base denoises its own
camera well and a new camera's noise is something to adapt to), per case:

* ``colour`` — the demo's new camera (``sid_ft.data.demo_cameras.NEW_CAMERA``): another CFA phase,
  black level, colour response and white balance, somewhat more noise;
* ``noise`` — a camera that differs mostly in its noise (``sid_ft.data.demo_cameras.NOISE_CAMERA``):
  3x the system gain and read noise, 4x the row noise, another black level and CFA phase;
* ``outnoise`` — a camera whose noise is partly outside the parametric model
  (``sid_ft.data.demo_cameras.OUT_CAMERA``): Student-t read noise, column noise, a fixed
  per-pixel pattern, a corner glow, K 3; 6 training scenes x 3 ratios (18 pairs), 8 dark frames.

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

``--data`` chooses each g_add run's training data (benchmarks/quality_data.py): ``pairs`` (the
case's real pairs, the default), ``2pairs``, ``sampled`` and ``parametric`` (0 pairs: clean photos
and dark frames, the true K), ``2pairs+sampled`` (K estimated from the 2 pairs); the table then
shows each row's share of the ``pairs`` gain, and the K that 2 pairs give against the true K.

Held-out scenes are scored through scripts/test.py's library (PSNR/SSIM against the rendered
long exposure): 9 scenes x 2 ratios, none of them seen in training — chelsea, both views of the
stereo motorcycle, and two crops of each real RAW sample in ``tests/data/raw`` (colour charts;
the sample rendered by LibRaw is the photograph); 9 scenes x 3 ratios on ``outnoise``.
Targets: the first design gains at least 90% of the all-layer gain at equal steps and beats all
layers at equal time, on the colour and noise cases.  On ``outnoise`` (issue 18): 0 pairs (sampled,
given K) gain at least 90% of what the 18 pairs gain; 2 pairs + darks + clean photos (K estimated)
gain at least as much as the 18 pairs; K from 2 pairs is within 15% of the true K; sampled dark
frames beat the parametric fit.
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
from benchmarks.quality_data import (REFERENCE, gain_from_two_pairs, mixes, no_pairs_targets,  # noqa: E402
                                     parse_variants, run_synthetic_noise, variant_options)

from sid_ft.data.demo_cameras import TARGET_CAMERAS  # noqa: E402
from sid_ft.nets.g_add.config import parse_design  # noqa: E402
from sid_ft.demo import DemoSettings, base_model, build_dataset, evaluate  # noqa: E402
from sid_ft.training.loop import train  # noqa: E402
from sid_ft.training.options import TrainOptions  # noqa: E402

CASES = {"colour": "newcam", "noise": "noisecam", "outnoise": "outcam"}
TARGETS = ("noisecam", "newcam", "outcam")
"""Every camera's data are always written, in this order: the noise draws follow the order, so any
``--cases`` (and bench_batch.py) sees the same files."""
RAW_SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "raw"
TEST_PHOTOS = ("chelsea", "motorcycle", "motorcycle_right",
               *(f"raw:{RAW_SAMPLES / name}" for name in ("Canon_PowerShot_S40_CRW_0101.CRW",
                                                          "Kodak_DC120_DC120IMG_P003908.KDC",
                                                          "Kodak_DC120_DC120IMG_P003913.KDC")))
EQUAL_TIME = "all @ g_add's time"
RESUMES = 5
"""How often a run stopped by a signal is resumed before the benchmark gives up."""


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


def finetune(name: str, workdir: Path, base: str, data: Path | dict, settings: DemoSettings, steps: int,
             scopes: str, lr: float | None, seed: int = 0, keep: bool = False,
             **head) -> tuple[str, float, float, float]:
    """Fine-tune from ``base`` on ``data`` (a SID-layout folder, or :func:`variant_options`' fields);
    returns (checkpoint, wall seconds, median s/step, median data wait s/step).

    A run stopped by a signal (SIGTERM/SIGUSR1: it saves and returns) is resumed, as its message says;
    with ``keep`` a run that a previous benchmark left in ``workdir/runs`` is resumed (or found finished)
    instead of started again.
    """
    train_dir = workdir / "runs" / name
    if not keep:
        shutil.rmtree(train_dir, ignore_errors=True)
    fields = {"dataset_dir": str(data)} if isinstance(data, Path) else dict(data)
    opts = TrainOptions(split="train", pretrained=base, train_dir=str(train_dir), steps=steps, lr=lr,
                        patch_size=settings.finetune_patch, trainable_scopes=scopes,
                        g_add_width=settings.g_add_width, g_add_depth=settings.g_add_depth, seed=seed,
                        save_every=10**9, progress=False, log_every=1, cache_dir=str(workdir / "cache"),
                        **fields, **head)
    t0 = time.perf_counter()
    for _ in range(RESUMES):
        result = train(opts, report=lambda m: None)
        if result.stopped_by is None:
            break
        print(f"  {name}: stopped by {result.stopped_by} at step {result.global_step}; resuming",
              file=sys.stderr, flush=True)
    else:
        raise SystemExit(f"{name}: stopped {RESUMES} times; run the benchmark again with --keep-runs")
    wall = time.perf_counter() - t0
    records = [json.loads(x) for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "step_time_s" in r]
    return (result.checkpoint, wall, float(np.median([r["step_time_s"] for r in records])),
            float(np.median([r.get("data_wait_s", np.nan) for r in records])))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="benchmarks/results/quality", help="data, base model and runs go here")
    ap.add_argument("--steps", type=int, default=400, help="fine-tuning steps N (default: %(default)s)")
    ap.add_argument("--designs", default="rank32,head",
                    help="comma-separated g_add designs; the first is checked against the targets "
                         "(default: %(default)s)")
    ap.add_argument("--cases", default="colour,noise",
                    help="comma-separated: colour, noise, outnoise (default: %(default)s)")
    ap.add_argument("--data", default=REFERENCE,
                    help="comma-separated training data of the g_add runs: pairs, 2pairs, sampled, parametric, "
                         "2pairs+sampled (benchmarks/quality_data.py; default: %(default)s)")
    ap.add_argument("--synthetic-share", type=float, default=None,
                    help="share of synthetic patches where real and synthetic mix (2pairs+sampled; default: the "
                         "training default, sid_ft.training.options.DEFAULT_SYNTHETIC_SHARE)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "auto"),
                    help="the g_add runs' training precision (all-layer runs and every evaluation stay float32, so "
                         "that rows differ by how they were trained only; default: %(default)s)")
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
    ap.add_argument("--keep-runs", action="store_true",
                    help="resume the runs a stopped benchmark left in WORKDIR/runs (finished ones are reused) "
                         "instead of starting each again")
    ap.add_argument("--json", help="also write the table here")
    return ap.parse_args()


class Case:
    """One case's runs and their scores: ``rows[name]`` holds per-seed lists of PSNR, SSIM, times."""

    def __init__(self, case: str, data: Path, workdir: Path):
        self.case, self.data, self.workdir = case, data, workdir
        self.rows: dict[str, dict] = {}

    def add(self, name: str, ckpt: str, steps: int, timing: tuple | None, seed: int = 0, variant: str = "") -> None:
        """Score ``ckpt`` on the held-out list; ``timing`` is (wall s, s/step, data wait s/step) or None."""
        res = evaluate(ckpt, self.data / "test_list.txt",
                       self.workdir / "eval" / self.case / f"{name.replace(' ', '_')}_{seed}",
                       progress=False, report=lambda m: None)
        row = self.rows.setdefault(name, {"run": name, "data": variant, "steps": steps, "step_s": [],
                                          "train_s": [], "wait_s": [], "psnr": [], "ssim": []})
        wall, step_s, wait_s = timing or (None, None, None)
        for key, value in (("step_s", step_s), ("train_s", wall), ("wait_s", wait_s), ("psnr", res["psnr"]),
                           ("ssim", res["ssim"])):
            row[key].append(value)
        print(f"  [{self.case}] {name} seed {seed}: {res['psnr']:.2f} dB", file=sys.stderr, flush=True)


def g_add_name(design: str, variant: str) -> str:
    return f"g_add {design} @ N" + ("" if variant == REFERENCE else f" [{variant}]")


def data_label(variant: str, share: float | None) -> str:
    """The variant, with the synthetic share where one is given and it applies."""
    return variant if share is None or not mixes(variant) else f"{variant} share {share:g}"


def run_tag(design: str, label: str) -> str:
    """The part of a run's folder name (``runs/<case>_<tag>_<seed>``) that names its design and data."""
    return f"{design}_{label}".replace("+", "_").replace(" ", "_")


def run_case(case: str, args, base: str, dirs: dict, settings: DemoSettings, designs: list[str],
             variants: list[str], seeds: list[int]) -> Case:
    """Every run of one case, per seed: each design on each training-data variant, then all layers."""
    workdir = Path(args.workdir)
    out = Case(case, dirs[CASES[case]], workdir)
    true_gain = TARGET_CAMERAS[CASES[case]].noise.gain
    out.add("base", base, 0, None)
    for seed in seeds:
        for design in designs:
            for variant in variants:
                label = data_label(variant, args.synthetic_share)
                tag = run_tag(design, label) + ("" if args.precision == "fp32" else f"_{args.precision}")
                data = variant_options(variant, out.data, workdir, true_gain,
                                       args.synthetic_share if mixes(variant) else None)
                ck, *timing = finetune(f"{case}_{tag}_{seed}", workdir, base, data, settings, args.steps,
                                       "g_add", args.lr_g_add, seed, lr_warmup_steps=args.lr_warmup_g_add,
                                       keep=args.keep_runs, g_add_down_init=args.g_add_down_init,
                                       precision=args.precision,
                                       **design_options(design))
                out.add(g_add_name(design, label), ck, args.steps, tuple(timing), seed, label)
        if not args.no_all:
            all_layers(out, args, base, settings, seed,
                       g_add_name(designs[0], data_label(variants[0], args.synthetic_share)))
    return out


def all_layers(out: Case, args, base: str, settings: DemoSettings, seed: int, first: str) -> None:
    """All layers at N steps on the case's pairs, and (unless --no-equal-time) at ``first``'s time."""
    ck, *timing = finetune(f"{out.case}_all_{seed}", out.workdir, base, out.data, settings, args.steps, "all",
                           args.lr_all, seed, args.keep_runs)
    out.add("all @ N", ck, args.steps, tuple(timing), seed)
    if args.no_equal_time:
        return
    # equal wall-clock: the all-layer steps that fit in the first design's time for N steps
    eq_steps = max(1, int(out.rows[first]["step_s"][-1] * args.steps / timing[1]))
    ck, *timing = finetune(f"{out.case}_all_eq_time_{seed}", out.workdir, base, out.data, settings, eq_steps,
                           "all", args.lr_all, seed, args.keep_runs)
    out.add(EQUAL_TIME, ck, eq_steps, tuple(timing), seed)
    out.rows[EQUAL_TIME]["steps"] = eq_steps  # of the last seed; each seed's are in runs/


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def print_case(out: Case, first: str, reference: str | None) -> dict:
    """The case's table (means over seeds and min..max) and verdict; returns its JSON summary."""
    rows = out.rows
    base_psnr = _mean(rows["base"]["psnr"])
    gain_all = _mean(rows["all @ N"]["psnr"]) - base_psnr if "all @ N" in rows else float("nan")
    gain_ref = _mean(rows[reference]["psnr"]) - base_psnr if reference in rows else float("nan")
    print(f"\ncase {out.case} ({CASES[out.case]}): base {base_psnr:.2f} dB")
    print(f"{'run':40s} {'steps':>6s} {'s/step':>7s} {'wait s':>7s} {'PSNR dB':>8s} {'(min..max)':>14s} "
          f"{'gain':>6s} {'of all':>7s} {'of pairs':>8s} {'SSIM':>7s}")
    for r in rows.values():
        step, wait = _mean(r["step_s"]), _mean(r["wait_s"])
        gain = _mean(r["psnr"]) - base_psnr
        share = f"{100 * gain / gain_all:.0f}%" if gain_all > 0 and r["run"] != "base" else "-"
        of_ref = f"{100 * gain / gain_ref:.0f}%" if gain_ref > 0 and r["run"] != "base" else "-"
        spread = f"{min(r['psnr']):.2f}..{max(r['psnr']):.2f}"
        print(f"{r['run']:40s} {r['steps']:6d} {step:7.3f} {wait:7.4f} {_mean(r['psnr']):8.2f} {spread:>14s} "
              f"{gain:+6.2f} {share:>7s} {of_ref:>8s} {_mean(r['ssim']):7.4f}".replace("nan", "  -"))
    gain_first = _mean(rows[first]["psnr"]) - base_psnr
    if gain_all > 0:
        verdict = f"{first} gains {gain_first:+.2f} dB = {100 * gain_first / gain_all:.0f}% of all layers' " \
                  f"{gain_all:+.2f} dB at equal steps"
    else:
        verdict = f"{first} gains {gain_first:+.2f} dB" + ("" if np.isnan(gain_all) else
                                                           f"; all layers gained {gain_all:+.2f} dB")
    if EQUAL_TIME in rows:
        verdict += f"; at equal time {_mean(rows[first]['psnr']):.2f} vs {_mean(rows[EQUAL_TIME]['psnr']):.2f} dB"
    print(verdict)
    return {"rows": list(rows.values()), "base_psnr": base_psnr, "gain_all": gain_all, "gain_first": gain_first,
            "gain_pairs": gain_ref}


def report_gain(out: Case, design: str, seeds: list[int], share: float | None) -> dict:
    """K from the case's 2 pairs (calibrate.py on dark/ + two_pairs/), and what each 2pairs+sampled run used."""
    true_gain = TARGET_CAMERAS[CASES[out.case]].noise.gain
    gain, se, source = gain_from_two_pairs(out.data)
    runs = {}
    for seed in seeds:
        tag = run_tag(design, data_label("2pairs+sampled", share))
        synthetic = run_synthetic_noise(out.workdir / "runs" / f"{out.case}_{tag}_{seed}")
        if synthetic:
            runs[seed] = {k: synthetic["noise"].get(k) for k in ("gain", "gain_source")}
    se_text = "" if se is None else f" ± {se:.3f}"
    print(f"K from the 2 pairs (calibrate.py --pairs): {gain:.3f}{se_text} DN/e- ({source}) vs the true {true_gain:g}: "
          f"{100 * (gain / true_gain - 1):+.1f}%" + (f"; the 2pairs+sampled runs used {runs}" if runs else ""))
    return {"true": true_gain, "from_two_pairs": gain, "stderr": se, "source": source, "runs": runs}


def main() -> None:
    args = parse_args()
    t_start = time.perf_counter()
    settings = bench_settings(args.base_steps)
    workdir = Path(args.workdir)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"--cases: unknown {sorted(unknown)}; choose from {sorted(CASES)}")
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    for design in designs:
        design_options(design)
    variants = parse_variants(args.data)
    dirs = build_dataset(workdir / "datasets" / "demo", settings, progress=False, targets=TARGETS)
    t_base = time.perf_counter()
    base = base_model(workdir, dirs, settings, progress=False, report=lambda m: print(m, file=sys.stderr))
    t_base = time.perf_counter() - t_base
    seeds = [int(v) for v in args.seeds.split(",")]
    print(f"machine: CPU {cpu_name()}, {os.cpu_count()} cores; N = {args.steps}; patch {settings.finetune_patch}; "
          f"seeds {seeds} (PSNR/SSIM: mean, and min..max over the seeds); base {base} "
          f"({args.base_steps} steps; {t_base:.0f} s here); g_add runs trained in {args.precision}")
    report: dict = {"seeds": seeds, "steps": args.steps, "base_steps": args.base_steps, "data": variants,
                    "synthetic_share": args.synthetic_share, "precision": args.precision, "cases": {}}
    first = g_add_name(designs[0], data_label(variants[0], args.synthetic_share))
    for case in cases:
        out = run_case(case, args, base, dirs, settings, designs, variants, seeds)
        reference = g_add_name(designs[0], REFERENCE) if len(variants) > 1 else None
        report["cases"][case] = print_case(out, first, reference)
        if {"2pairs", "2pairs+sampled", "sampled", "parametric"} & set(variants):
            report["cases"][case]["gain_k"] = report_gain(out, designs[0], seeds, args.synthetic_share)
            for line in no_pairs_targets(report["cases"][case]):
                print(line)
        report["wall_s"] = time.perf_counter() - t_start
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wall time {report.get('wall_s', 0) / 60:.1f} min (base {t_base / 60:.1f} min)")


if __name__ == "__main__":
    main()
