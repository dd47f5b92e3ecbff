#!/usr/bin/env python3
"""A fine-tune that knows when to stop (issue 20): early stopping on held-out pairs against a fixed-length run.

    python benchmarks/bench_early_stop.py --workdir /tmp/sid_quality --base-steps 10000 --seeds 0,1,2

In bench_quality.py's world (its cameras, scenes, base model and held-out test images; a workdir's
base model and datasets are reused as bench_quality.py reuses them), per seed, two fine-tunes of the
project's default g_add design (rank-32 deltas beside every conv, the training defaults) on one case
(``--case``, ``outnoise`` by default):

* fixed length — ``--steps`` N (the default, 1500, is the g_add modes' default step count) on all the
  case's training pairs;
* early stop   — the same, with ``--val-pairs V --val-every K --early-stop P``: V pairs (whole scenes,
  chosen by the seed) are held out of training and scored every K steps; the run ends after P scorings
  without a better held-out PSNR.  What is evaluated is the run's best checkpoint (``TRAIN_DIR/best/``,
  what test.py and the Predictor use for a train dir).

Both are scored on the case's held-out test images (bench_quality.py's evaluation: PSNR/SSIM against the
rendered long exposure, scenes never trained on).  The table gives, per seed and as the mean, each
run's wall-clock training time (graph, restore and data included; the early run's scorings included),
its steps, the early run's best step, PSNR/SSIM, the ratio of the times and the PSNR difference; then the
early runs' validation PSNR curves (metrics.jsonl's ``val_psnr``), and the verdict against the target:
within 0.1 dB of the fixed-length run's held-out PSNR in at most 0.6x of its wall-clock time (the means
over the seeds).  The two runs of a seed alternate which goes first (a fresh workdir decodes the pairs
once, in the first run).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.bench_quality import CASES, TARGETS, Case, bench_settings, finetune  # noqa: E402
from benchmarks.bench_train_step import cpu_name  # noqa: E402

from sid_ft.demo import DemoSettings, base_model, build_dataset  # noqa: E402
from sid_ft.nets.best import BEST_DIR, read_best  # noqa: E402
from sid_ft.training.options import DEFAULT_STEPS, DEFAULT_VAL_EVERY  # noqa: E402

TARGET_DB = 0.1
"""The early-stopped run's held-out PSNR may fall at most this far (dB) below the fixed-length run's ..."""
TARGET_TIME = 0.6
"""... in at most this share of its wall-clock time."""
FIXED, EARLY = "fixed @ N", "early stop"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="benchmarks/results/quality",
                    help="data, base model and runs go here (bench_quality.py's workdir reuses its base; "
                         "default: %(default)s)")
    ap.add_argument("--case", default="outnoise", choices=sorted(CASES),
                    help="the target camera (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS["inside"],
                    help="steps N of the fixed-length run, and the early run's most (default: %(default)s, the "
                         "g_add default)")
    ap.add_argument("--val-pairs", type=int, default=1, help="held-out pairs of the early run (default: %(default)s)")
    ap.add_argument("--val-every", type=int, default=DEFAULT_VAL_EVERY,
                    help="steps between two scorings (default: %(default)s, the training default)")
    ap.add_argument("--early-stop", type=int, default=3,
                    help="scorings without a better PSNR before the early run stops (default: %(default)s)")
    ap.add_argument("--seeds", default="0", help="comma-separated fine-tuning seeds (default: %(default)s)")
    ap.add_argument("--base-steps", type=int, default=10000,
                    help="from-scratch base training steps when there is no released checkpoint, as "
                         "bench_quality.py's (default: %(default)s)")
    ap.add_argument("--no-base", action="store_true", help="do not score the base model (its PSNR gives the gains)")
    ap.add_argument("--keep-runs", action="store_true",
                    help="resume (or reuse finished) runs that a stopped benchmark left in WORKDIR/runs")
    ap.add_argument("--json", help="also write every figure here")
    return ap.parse_args()


def read_metrics(train_dir: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def steps_run(records: list[dict]) -> int:
    """The last training step a run took (its step records carry ``step_time_s``)."""
    return max((int(r["step"]) for r in records if "step_time_s" in r), default=0)


def val_curve(records: list[dict]) -> list[list]:
    """``[[step, held-out PSNR dB], ...]`` of the run's scorings, in order."""
    return [[int(r["step"]), float(r["val_psnr"])] for r in records if "val_psnr" in r]


def held_out_pairs(train_dir: Path) -> list[str]:
    """The short exposures the run held out of training (``config.json``'s ``"validation"``)."""
    validation = json.loads((train_dir / "config.json").read_text()).get("validation") or {}
    return [Path(p["short_path"]).name for p in validation.get("pairs", [])]


def recorded_wall(train_dir: Path, wall: float) -> float:
    """The run's training wall clock: the one recorded in ``train_dir/bench_wall.json`` by the invocation that
    trained it (a run reused with ``--keep-runs`` takes seconds), else ``wall``, recorded now."""
    path = train_dir / "bench_wall.json"
    if path.exists():
        return float(json.loads(path.read_text())["wall_s"])
    path.write_text(json.dumps({"wall_s": wall}))
    return wall


def run_fixed(out: Case, args, base: str, settings: DemoSettings, seed: int) -> dict:
    """N steps on all the case's pairs; scored on the held-out test images."""
    name = f"{out.case}_early_fixed_{seed}"
    ck, wall, step_s, wait_s = finetune(name, out.workdir, base, out.data, settings, args.steps, "g_add", None,
                                        seed, args.keep_runs)
    wall = recorded_wall(out.workdir / "runs" / name, wall)
    out.add(FIXED, ck, args.steps, (wall, step_s, wait_s), seed)
    records = read_metrics(out.workdir / "runs" / name)
    return {"wall_s": wall, "step_s": step_s, "wait_s": wait_s, "steps": steps_run(records),
            "psnr": out.rows[FIXED]["psnr"][-1], "ssim": out.rows[FIXED]["ssim"][-1]}


def run_early(out: Case, args, base: str, settings: DemoSettings, seed: int) -> dict:
    """At most N steps with held-out pairs and early stopping; its best checkpoint scored on the test images."""
    name = f"{out.case}_early_stop_{seed}"
    train_dir = out.workdir / "runs" / name
    _, wall, step_s, wait_s = finetune(name, out.workdir, base, out.data, settings, args.steps, "g_add", None,
                                       seed, args.keep_runs, val_pairs=args.val_pairs, val_every=args.val_every,
                                       early_stop=args.early_stop)
    wall = recorded_wall(train_dir, wall)
    best = read_best(train_dir / BEST_DIR)
    if best is None:
        raise SystemExit(f"{train_dir}: no best checkpoint (too few scenes to hold one out?); see its config.json")
    out.add(EARLY, str(train_dir), args.steps, (wall, step_s, wait_s), seed)  # the train dir means its best
    records = read_metrics(train_dir)
    stop = next((r for r in records if r.get("stopped") == "early_stop"), None)
    return {"wall_s": wall, "step_s": step_s, "wait_s": wait_s, "steps": steps_run(records),
            "best_step": int(best["step"]), "best_val_psnr": best.get("val_psnr"),
            "stopped_early": stop["reason"] if stop else None, "held_out": held_out_pairs(train_dir),
            "val_curve": val_curve(records), "psnr": out.rows[EARLY]["psnr"][-1], "ssim": out.rows[EARLY]["ssim"][-1]}


def run_seed(out: Case, args, base: str, settings: DemoSettings, seed: int) -> dict:
    """Both runs of one seed (even seeds: the fixed run first; odd: the early run first)."""
    if seed % 2 == 0:
        fixed = run_fixed(out, args, base, settings, seed)
        early = run_early(out, args, base, settings, seed)
    else:
        early = run_early(out, args, base, settings, seed)
        fixed = run_fixed(out, args, base, settings, seed)
    return {"seed": seed, "fixed": fixed, "early": early, "time_ratio": early["wall_s"] / fixed["wall_s"],
            "psnr_diff": early["psnr"] - fixed["psnr"]}


def summarise(runs: list[dict]) -> dict:
    """Means over the seeds, and the verdict against the target."""
    mean: dict = {}
    for run in ("fixed", "early"):
        mean[run] = {key: float(np.mean([r[run][key] for r in runs])) for key in ("wall_s", "steps", "psnr", "ssim")}
    mean["early"]["best_step"] = float(np.mean([r["early"]["best_step"] for r in runs]))
    mean["time_ratio"] = float(np.mean([r["time_ratio"] for r in runs]))
    mean["psnr_diff"] = float(np.mean([r["psnr_diff"] for r in runs]))
    passed = [r["psnr_diff"] >= -TARGET_DB and r["time_ratio"] <= TARGET_TIME for r in runs]
    met = mean["psnr_diff"] >= -TARGET_DB and mean["time_ratio"] <= TARGET_TIME
    return {"mean": mean, "seeds_passing": int(sum(passed)), "target_met": bool(met)}


def _row(label: str, fixed: dict, early: dict, ratio: float, diff: float) -> str:
    best = early.get("best_step")
    return (f"{label:>6s} {fixed['wall_s']:8.0f} {early['wall_s']:8.0f} {ratio:6.2f} {fixed['steps']:7.0f} "
            f"{early['steps']:7.0f} {best:6.0f} {fixed['psnr']:8.2f} {early['psnr']:8.2f} {diff:+7.2f} "
            f"{fixed['ssim']:7.4f} {early['ssim']:7.4f}")


def print_table(runs: list[dict], summary: dict, base_psnr: float | None) -> None:
    """Per seed and mean: times, steps, best step, held-out PSNR/SSIM of each run, ratio and difference."""
    print(f"\n{'seed':>6s} {'fixed s':>8s} {'early s':>8s} {'ratio':>6s} {'fixed':>7s} {'early':>7s} {'best':>6s} "
          f"{'fixed dB':>8s} {'early dB':>8s} {'diff':>7s} {'SSIM fx':>7s} {'SSIM es':>7s}")
    print(f"{'':>6s} {'(wall)':>8s} {'(wall)':>8s} {'e/f':>6s} {'steps':>7s} {'steps':>7s} {'step':>6s}")
    for r in runs:
        print(_row(str(r["seed"]), r["fixed"], r["early"], r["time_ratio"], r["psnr_diff"]))
    mean = summary["mean"]
    print(_row("mean", mean["fixed"], mean["early"], mean["time_ratio"], mean["psnr_diff"]))
    if base_psnr is not None:
        gains = [mean[run]["psnr"] - base_psnr for run in ("fixed", "early")]
        print(f"base {base_psnr:.2f} dB: gain fixed {gains[0]:+.2f} dB, early {gains[1]:+.2f} dB")
    for r in runs:
        why = r["early"]["stopped_early"] or "ran every step (no early stop)"
        print(f"seed {r['seed']}: held out {', '.join(r['early']['held_out'])}; {why}")


def print_curves(runs: list[dict]) -> None:
    """Each early run's held-out PSNR at each scoring (step: dB), its best marked with ``*``."""
    for r in runs:
        best = r["early"]["best_step"]
        points = [f"{step}: {psnr:.2f}{'*' if step == best else ''}" for step, psnr in r["early"]["val_curve"]]
        print(f"validation PSNR, seed {r['seed']} (step: dB): " + ", ".join(points))


def print_verdict(summary: dict, n_seeds: int) -> None:
    mean = summary["mean"]
    verdict = "MET" if summary["target_met"] else "NOT MET"
    print(f"target (issue 20): within {TARGET_DB} dB of the fixed-length run's held-out PSNR in at most "
          f"{TARGET_TIME}x of its wall-clock time: {verdict} — mean {mean['psnr_diff']:+.2f} dB in "
          f"{mean['time_ratio']:.2f}x ({summary['seeds_passing']} of {n_seeds} seeds pass on their own)")


def main() -> None:
    args = parse_args()
    t_start = time.perf_counter()
    settings = bench_settings(args.base_steps)
    workdir = Path(args.workdir)
    seeds = [int(v) for v in args.seeds.split(",")]
    dirs = build_dataset(workdir / "datasets" / "demo", settings, progress=False, targets=TARGETS)
    base = base_model(workdir, dirs, settings, progress=False, report=lambda m: print(m, file=sys.stderr))
    print(f"machine: CPU {cpu_name()}, {os.cpu_count()} cores; case {args.case}; N = {args.steps}; "
          f"early: --val-pairs {args.val_pairs} --val-every {args.val_every} --early-stop {args.early_stop}; "
          f"seeds {seeds}; base {base} ({args.base_steps} steps)")
    out = Case(args.case, dirs[CASES[args.case]], workdir)
    base_psnr = None
    if not args.no_base:
        out.add("base", base, 0, None)
        base_psnr = out.rows["base"]["psnr"][0]
    runs = [run_seed(out, args, base, settings, seed) for seed in seeds]
    summary = summarise(runs)
    print_table(runs, summary, base_psnr)
    print_curves(runs)
    print_verdict(summary, len(seeds))
    wall = time.perf_counter() - t_start
    print(f"wall time {wall / 60:.1f} min")
    if args.json:
        report = {"machine": cpu_name(), "cores": os.cpu_count(), "case": args.case, "steps": args.steps,
                  "val_pairs": args.val_pairs, "val_every": args.val_every, "early_stop": args.early_stop,
                  "base_steps": args.base_steps, "base": base, "base_psnr": base_psnr, "seeds": seeds,
                  "target": {"psnr_db": TARGET_DB, "time_ratio": TARGET_TIME}, "runs": runs, **summary,
                  "wall_s": wall}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
