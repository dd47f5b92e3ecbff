"""Held-out pairs scored while training: the best checkpoint kept, and early stopping.

Every ``--val-every`` steps (and at the last step) :class:`Validator` runs the model on each
held-out pair's whole image (:func:`score_pairs`: the packed short exposure times its ratio,
clipped at 1, through the training graph's weights in the run's precision:
:meth:`sid_ft.training.modes.TrainingMode.forward`) and scores it against the long exposure's
rendering with :mod:`sid_ft.eval.metrics` (PSNR in dB, SSIM; the mean over the pairs).  Each
scoring is a record in ``metrics.jsonl`` (``step``, ``val_psnr``, ``val_ssim``) and TensorBoard
scalars (``val/psnr``, ``val/ssim``).

A scoring with a higher PSNR than every one before saves the weights as the train dir's best
checkpoint (``TRAIN_DIR/best/``, :func:`sid_ft.nets.checkpoint_save.save_best_checkpoint`), which
is what the train dir means to ``test.py``, :class:`~sid_ft.inference.predictor.Predictor` and
:func:`~sid_ft.nets.checkpoint.resolve_checkpoint` from then on.  ``best.json`` also lists the
steps of later scorings that did not beat it.

``--early-stop P`` decays the rate at the first plateau and stops at the second (as Keras'
ReduceLROnPlateau and EarlyStopping do together): while the rate is still high (the next step would run
before the schedule's decay step), P scorings in a row without a better PSNR move the decay to now (the
rate is ``lr * --lr-decay-factor`` from the next step on: the loop feeds the moved step to
:attr:`sid_ft.training.graph.TrainGraph.lr_decay_step`), and the count starts again; once the rate is
decayed (moved or by the schedule), P scorings without a better PSNR end the run.  ``best.json`` records
the step whose scoring moved the decay (``lr_decay_moved_at``), so a resumed run keeps the decayed rate;
it counts on from the scorings and the move at or before the step it resumes from (a scoring after that
step is done again).  Training itself always resumes from the latest checkpoint.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import CachedPair
from sid_ft.errors import SidFtError
from sid_ft.eval import metrics
from sid_ft.nets.best import BEST_DIR, read_best, write_best_record
from sid_ft.nets.checkpoint_save import save_best_checkpoint
from sid_ft.nets.unet import CAMERAS
from sid_ft.training.graph import TrainGraph
from sid_ft.training.options import TrainOptions
from sid_ft.training.summaries import tb_scalars

__all__ = ["BestSoFar", "ValGraph", "Validator", "best_so_far", "build_validation", "note_kept_best",
           "score_pairs", "set_aside_stale_best"]


@dataclass
class ValGraph:
    """The whole-image path of the training graph: same variables, no flips, any size."""

    image: object  # (1, h, w, C) float32 placeholder: packed short exposure x ratio, clipped at 1
    output: object  # (1, s*h, s*w, 3) float32


def build_validation(tg: TrainGraph, camera: str, g_add, precision) -> ValGraph:
    """Add the whole-image path to ``tg.graph`` (before its session starts); it creates no variable."""
    tf = tf1()
    with tg.graph.as_default():
        before = len(tf.global_variables())
        image = tf.placeholder(tf.float32, [1, None, None, CAMERAS[camera].in_channels], name="val_image")
        with tf.name_scope("validation"):
            output = tg.mode.forward(image, camera, g_add, precision)
        if len(tf.global_variables()) != before:
            raise ValueError("the validation path created variables instead of sharing the training graph's")
    return ValGraph(image, output)


def score_pairs(sess, vg: ValGraph, pairs: Sequence[CachedPair]) -> tuple[float, float]:
    """(mean PSNR in dB, mean SSIM) of the model's output on the whole image of each pair, clipped to [0, 1],
    against its ground truth."""
    psnrs, ssims = [], []
    for cp in pairs:
        amplified = np.minimum(np.asarray(cp.short, np.float32) * np.float32(cp.ratio), 1.0)[None]
        output = np.clip(sess.run(vg.output, {vg.image: amplified})[0], 0.0, 1.0)
        gt = np.asarray(cp.gt, np.float32)
        psnrs.append(metrics.psnr(output, gt))
        ssims.append(metrics.ssim(output, gt))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@dataclass
class BestSoFar:
    """The best scoring of a run so far, as ``best.json`` records it."""

    pairs: list[str]  # the held-out pairs' short exposures: scorings of other pairs do not compare
    step: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    since: list[int] = field(default_factory=list)  # steps of later scorings that did not beat it
    decay_moved_at: int | None = None  # a plateau's scoring step: the rate is decayed for every step after it

    def plateau(self) -> list[int]:
        """The scorings that count towards ``--early-stop``: those without a better PSNR since the best and
        since the rate's decay was moved."""
        moved = self.decay_moved_at
        return [s for s in self.since if moved is None or s > moved]

    def describe(self) -> str:
        """The best so far in words: ``step 200 (15.23 dB)``."""
        if self.step is None:
            return "none finite yet"
        return f"step {self.step} ({self.psnr:.2f} dB)"

    def improved_by(self, psnr: float) -> bool:
        """A finite ``psnr`` above the best (any finite one when there is none yet)."""
        return math.isfinite(psnr) and (self.psnr is None or psnr > self.psnr)

    def record(self) -> dict:
        """What ``best.json`` holds besides the checkpoint's name and step."""
        record = {"val_psnr": self.psnr, "val_ssim": self.ssim, "pairs": self.pairs,
                  "evaluations_since_best": self.since}
        if self.decay_moved_at is not None:
            record["lr_decay_moved_at"] = self.decay_moved_at
        return record


def set_aside_stale_best(train_dir: Path, report: Callable[[str], None]) -> None:
    """A fresh run (no checkpoint to resume) in a train dir with a ``best/`` of an earlier run: rename it to
    ``best.stale`` (``.1``, ``.2``...), so that the train dir does not mean that model; nothing is deleted."""
    folder = train_dir / BEST_DIR
    if not folder.exists():
        return
    target, n = train_dir / f"{BEST_DIR}.stale", 0
    while target.exists():
        n += 1
        target = train_dir / f"{BEST_DIR}.stale.{n}"
    os.replace(folder, target)
    report(f"{folder} held the best checkpoint of an earlier run, but there is no checkpoint to resume here: "
           f"kept as {target.name}, this run starts without a best")


def best_so_far(train_dir: Path, names: list[str], first_step: int, report: Callable[[str], None]) -> BestSoFar:
    """The best so far from ``best.json`` (a resumed run), counting the scorings without improvement and the
    rate's moved decay up to ``first_step``; a fresh best when there is none or it was scored on other pairs
    than ``names`` (the moved decay is kept then: it is the rate the weights trained with)."""
    record = read_best(train_dir / BEST_DIR)
    if record is None:
        return BestSoFar(names)
    moved = record.get("lr_decay_moved_at")
    moved = int(moved) if moved is not None and int(moved) <= first_step else None
    if moved is not None:
        report(f"the rate's decay was moved to step {moved} by a plateau of the held-out PSNR: it stays there")
    if record.get("pairs") != names:
        report(f"the held-out pairs are not those the best checkpoint so far (step {record.get('step')}) was "
               "scored on: the next scoring starts the comparison again")
        return BestSoFar(names, decay_moved_at=moved)
    since = [int(s) for s in record.get("evaluations_since_best", []) if int(s) <= first_step]
    best = BestSoFar(names, int(record["step"]), float(record["val_psnr"]), record.get("val_ssim"), since, moved)
    report(f"best so far: step {best.step}, {best.psnr:.2f} dB on the held-out pairs, then {len(since)} "
           "scoring(s) without a better one")
    return best


class Validator:
    """Scores the held-out pairs every ``--val-every`` steps, keeps the best checkpoint, moves the rate's decay
    at the first plateau and says when to stop (``--early-stop``)."""

    def __init__(self, sess, tg: TrainGraph, vg: ValGraph, pairs: Sequence[CachedPair], opts: TrainOptions,
                 best: BestSoFar, spec_info: dict, writer, report: Callable[[str], None],
                 decay_step: int | None = None):
        self.sess, self.tg, self.vg, self.pairs, self.best = sess, tg, vg, list(pairs), best
        self.train_dir, self.every, self.patience = Path(opts.train_dir), opts.val_every, opts.early_stop
        self.decay_factor = opts.lr_decay_factor
        self.decay_step = decay_step  # the schedule's: the rate is decayed once global_step is past it
        self.spec_info, self.writer, self.report = spec_info, writer, report
        self.stopped_early: str | None = None  # why the run stops early, once it does

    def due(self, step: int, total_steps: int) -> bool:
        """A scoring is due after ``step``: every ``--val-every`` steps and after the last."""
        return step % self.every == 0 or step == total_steps

    def exhausted(self) -> bool:
        """``--early-stop P`` scorings in a row did not beat the best (since the rate's decay was moved)."""
        return self.patience is not None and len(self.best.plateau()) >= self.patience

    def lr_decay_step(self) -> int | None:
        """The decay step each training step feeds (:func:`sid_ft.training.graph.feed_for`): None (the
        schedule's) until a plateau moved it; then the step before the move's, so that the step after the
        scoring (its ``global_step`` is the scoring's step) runs at the decayed rate."""
        moved = self.best.decay_moved_at
        return None if moved is None else moved - 1

    def stop_reason(self) -> str:
        best, moved = self.best, self.best.decay_moved_at
        if moved is not None and (best.step is None or moved > best.step):
            since = f"since the rate's decay at step {moved} (best: {best.describe()})"
        else:
            since = f"since {best.describe()}" if best.step is not None else "(no finite one yet)"
        return f"no better held-out PSNR in {len(best.plateau())} scorings (--early-stop {self.patience}) {since}"

    def evaluate(self, step: int, metrics_file) -> None:
        """Score the held-out pairs after ``step``; record it; keep the best; at a plateau, move the rate's
        decay or decide to stop early."""
        psnr, ssim = score_pairs(self.sess, self.vg, self.pairs)
        improved = self.best.improved_by(psnr)
        if improved:
            self._save_best(step, psnr, ssim)
        else:
            self.best.since.append(step)
        record = {"step": step, "val_psnr": psnr, "val_ssim": ssim, "best_step": self.best.step,
                  "best_val_psnr": self.best.psnr, "evaluations_since_best": len(self.best.since)}
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        tb_scalars(self.writer, step, {"val/psnr": psnr, "val/ssim": ssim})
        self.report(f"step {step}: held-out PSNR {psnr:.2f} dB, SSIM {ssim:.4f}"
                    + (" (best so far: saved)" if improved else f" (best: step {self.best.step})"))
        if not improved:
            self.settle(step, metrics_file)

    def settle(self, step: int, metrics_file) -> None:
        """After a scoring without a better PSNR at ``step`` (or a resume at ``step``): at a plateau, move the
        rate's decay while it is still high, else stop; ``best.json`` records the count and the move."""
        if self.exhausted():
            if self._decay_ahead(step):
                self._move_decay(step, metrics_file)
            else:
                self.stopped_early = self.stop_reason()
        if self.best.step is not None:  # best.json exists: record the count (a resume goes on from it)
            write_best_record(self.train_dir / BEST_DIR, self._best_json())

    def _decay_ahead(self, step: int) -> bool:
        """The step after ``step`` would still run at the high rate: the decay was not moved, and the
        schedule's decay step is not passed (the next step's ``global_step`` is ``step``)."""
        return self.best.decay_moved_at is None and self.decay_step is not None and step <= self.decay_step

    def _move_decay(self, step: int, metrics_file) -> None:
        """The first plateau: the rate is decayed from the next step on; the count starts again."""
        reason = self.stop_reason()
        self.best.decay_moved_at = step
        record = {"step": step, "lr_decay": "plateau", "reason": reason, "lr_decay_factor": self.decay_factor,
                  "scheduled_lr_decay_step": self.decay_step}
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        self.report(f"step {step}: {reason}, while the rate is high: it decays now (x{self.decay_factor:g} from "
                    f"step {step + 1} on; the schedule had it after step {self.decay_step}); {self.patience} more "
                    "scoring(s) without a better PSNR stop the run")

    def _best_json(self) -> dict:
        record = read_best(self.train_dir / BEST_DIR) or {}
        record.pop("lr_decay_moved_at", None)  # a move after the step this run resumed from is not this run's
        return {**record, **self.best.record()}

    def _save_best(self, step: int, psnr: float, ssim: float) -> None:
        """Save the weights as the best checkpoint (only finite ones); then they are the best so far."""
        if not self.sess.run(self.tg.weights_finite):
            raise SidFtError(str(self.train_dir), f"the weights became NaN or infinite by step {step}; training "
                                                  "stopped without saving them")
        best = BestSoFar(self.best.pairs, step, psnr, ssim, decay_moved_at=self.best.decay_moved_at)
        save_best_checkpoint(self.sess, self.tg.saver, self.train_dir, step, self.spec_info, best.record())
        self.best = best


def note_kept_best(train_dir: Path, report: Callable[[str], None]) -> None:
    """A resumed run without held-out pairs, in a train dir with a best checkpoint: say that it stays the
    train dir's model."""
    record = read_best(train_dir / BEST_DIR)
    if record is not None:
        report(f"{train_dir / BEST_DIR} keeps the best checkpoint of earlier scorings (step {record.get('step')}): "
               "it stays what this train dir means to test.py (test.py --latest runs the latest); this run "
               "scores no held-out pairs")
