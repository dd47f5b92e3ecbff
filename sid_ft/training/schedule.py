"""How long and how fast a run trains: rate, patches per step, warm-up, total steps and decay step.

A resumed run keeps what its ``config.json`` recorded where the options leave it open
(``--batch-size``, ``--lr-warmup-steps``, the length of an ``--epochs`` run), so that a
resume neither changes the batch, ends early nor moves the decay.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from sid_ft.data.sampling import CachedPair
from sid_ft.errors import SidFtError
from sid_ft.training.modes import TrainingMode
from sid_ft.training.options import DEFAULT_STEPS, TrainOptions

__all__ = ["Schedule", "plan_schedule", "previous_config", "resolve_batch_size", "resolve_warmup", "run_length"]


@dataclass
class Schedule:
    """The numbers of a run, as ``config.json`` records them."""

    lr: float  # before warm-up and decay
    batch_size: int  # patches per step
    warmup: int  # steps over which the rate rises linearly to lr (0: none)
    total_steps: int  # the run ends when global_step reaches it
    decay_step: int  # the rate is multiplied by --lr-decay-factor after this step


def previous_config(train_dir: Path) -> dict | None:
    """The ``config.json`` a run in ``train_dir`` wrote, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((train_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None


def resolve_batch_size(requested: int | None, previous: dict | None, report: Callable[[str], None]) -> int:
    """Patches per step: ``--batch-size``, else the resumed run's (its ``config.json``), else 1."""
    before = (previous or {}).get("batch_size")
    if requested is None:
        return before if isinstance(before, int) and before >= 1 else 1
    if requested < 1:
        raise SidFtError(None, f"--batch-size {requested}: must be at least 1")
    if isinstance(before, int) and before != requested:
        report(f"--batch-size {requested}: this run used {before} patches per step until now")
    return requested


def resolve_warmup(requested: int | None, previous: dict | None) -> int:
    """Warm-up steps: ``--lr-warmup-steps``, else the resumed run's (it only matters if it stopped within it),
    else 0."""
    if requested is not None:
        return requested
    before = (previous or {}).get("lr_warmup_steps")
    return before if isinstance(before, int) and before >= 0 else 0


def run_length(opts: TrainOptions, loaded: Sequence[CachedPair], previous: dict | None,
               report: Callable[[str], None], batch_size: int = 1,
               default_steps: int = DEFAULT_STEPS["full"], clean: Sequence[str] = ()) -> tuple[int, int]:
    """(total steps, learning-rate decay step) of the run.

    ``--epochs E`` counts as SID's train_Sony does, one patch per scene per epoch: E x the distinct
    long exposures among the usable pairs (and the ``clean`` photos of synthetic pairs, a file that is
    both counted once), divided by the patches per step (rounded up).  A resumed
    run with the same ``--epochs`` keeps the length and decay step its ``config.json`` recorded, even
    if the usable pairs changed since, so that a resume neither ends early nor moves the decay.  The
    decay step defaults to half the total.
    """
    if opts.epochs is None:
        total = int(default_steps if opts.steps is None else opts.steps)
    else:
        longs = {cp.pair.long_path for cp in loaded}
        scenes = len(longs) if not clean else len({os.path.realpath(p) for p in [*longs, *clean]})
        total = -(-opts.epochs * scenes // batch_size)
        before = previous or {}
        if before.get("options", {}).get("epochs") == opts.epochs and isinstance(before.get("steps"), int):
            if before["steps"] != total:
                report(f"--epochs {opts.epochs}: keeping this run's length of {before['steps']} steps from its "
                       f"config.json ({total} with the {scenes} scene(s) usable now)")
            total = before["steps"]
            if opts.lr_decay_step is None and isinstance(before.get("lr_decay_step"), int):
                return total, before["lr_decay_step"]
        else:
            report(f"{opts.epochs} epoch(s) of {scenes} scene(s): {total} steps in all")
    decay = opts.lr_decay_step if opts.lr_decay_step is not None else max(1, total // 2)
    return total, decay


def plan_schedule(opts: TrainOptions, mode: TrainingMode, loaded: Sequence[CachedPair], previous: dict | None,
                  report: Callable[[str], None], clean: Sequence[str] = ()) -> Schedule:
    """The run's schedule from the options, the mode's defaults and the resumed run's ``config.json``
    (``clean``: the clean photos of synthetic pairs, scenes for ``--epochs``)."""
    lr = mode.default_lr if opts.lr is None else float(opts.lr)
    batch_size = resolve_batch_size(opts.batch_size, previous, report)
    warmup = resolve_warmup(opts.lr_warmup_steps, previous)
    total, decay = run_length(opts, loaded, previous, report, batch_size, default_steps=mode.default_steps,
                              clean=clean)
    return Schedule(lr, batch_size, warmup, total, decay)
