"""Fine-tuning: restore a pretrained SID model, train the ``g_add`` layers (or more), save full checkpoints.

The method, as in SID's training script: a random ``patch_size`` crop of the
packed short exposure, multiplied by the exposure ratio and clipped at 1, random
vertical/horizontal flips and a transpose, an L1 loss against SID's rendering of
the long exposure, Adam at 1e-4 and ten times lower for the second half.

:func:`train` reads as its steps: check the options (:mod:`~sid_ft.training.options`),
find the weights to start from (:mod:`~sid_ft.training.start`), choose the training mode
(:mod:`~sid_ft.training.modes`), load the pairs, real and synthetic (:mod:`~sid_ft.training.inputs`), plan the
schedule (:mod:`~sid_ft.training.schedule`), record ``config.json``, build the graph
(:mod:`~sid_ft.training.graph`), restore, train, save.  Every run writes ``config.json``
(its resolved options, the mode, the pairs, versions) and ``metrics.jsonl`` to its train dir.
With held-out pairs (``--val-pairs``, ``--val-list``) it scores them as it trains, keeps the best
checkpoint in ``TRAIN_DIR/best/`` and may stop early (:mod:`~sid_ft.training.validation`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sid_ft import __version__
from sid_ft._tf import tf1
from sid_ft.data.sampling import BackgroundLoader, PatchSampler
from sid_ft.data.synthetic import SyntheticSampler
from sid_ft.errors import SidFtError
from sid_ft.io import atomic
from sid_ft.nets import precision as prec
from sid_ft.nets.best import best_prefix
from sid_ft.nets.checkpoint_save import save_checkpoint
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.unet import CAMERAS
from sid_ft.runtime import lock as runlock
from sid_ft.runtime import preempt
from sid_ft.training.graph import TrainGraph, build_train_graph, feed_for
from sid_ft.training.inputs import TrainingPairs, load_training_pairs
from sid_ft.training.modes import TrainingMode, training_mode
from sid_ft.training.options import TrainOptions
from sid_ft.training.patches import patch_name, preview_source, training_sampler
from sid_ft.training.poisson import resolve_shot_sampler
from sid_ft.training.schedule import Schedule, plan_schedule, previous_config
from sid_ft.training.start import ModelStart, model_start, restore_start
from sid_ft.training.summaries import sample_images, tb_scalars
from sid_ft.training.validation import (ValGraph, Validator, best_so_far, build_validation, note_kept_best,
                                        set_aside_stale_best)

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    checkpoint: str
    global_step: int
    last_loss: float | None
    mode: str
    resumed: bool
    skipped: list[str] = field(default_factory=list)
    stopped_by: str | None = None  # 'SIGTERM' / 'SIGUSR1' when a signal stopped the run before its end
    stopped_early: str | None = None  # why --early-stop ended the run before its last step
    best: str | None = None  # the best checkpoint on the held-out pairs (TRAIN_DIR/best/), if there is one


def _append_record(train_dir: Path, record: dict) -> None:
    """One line of ``metrics.jsonl``."""
    with open(train_dir / "metrics.jsonl", "a") as metrics:
        metrics.write(json.dumps(record) + "\n")


def train(opts: TrainOptions, report: Callable[[str], None] = print) -> TrainResult:
    """Run (or resume) a fine-tuning job described by ``opts``; returns where the final checkpoint is.

    Holds the train dir's lock (:mod:`sid_ft.runtime.lock`) while it runs.  SIGTERM or SIGUSR1
    (:mod:`sid_ft.runtime.preempt`) end the run after the current step with a checkpoint and a record in
    ``metrics.jsonl``; the result's ``stopped_by`` then names the signal.
    """
    with runlock.TrainDirLock(opts.train_dir, force=opts.force_unlock, report=report), \
            preempt.stop_on_signals() as stop:
        try:
            return _train(opts, report, stop)
        except preempt.Stopped:  # while decoding or caching, before the first step: no new weights to save
            latest = tf1().train.latest_checkpoint(str(opts.train_dir))
            step = int(latest.rsplit("-", 1)[1].split(".")[0]) if latest else 0
            _append_record(Path(opts.train_dir), preempt.stop_record(step, stop, latest))
            report(f"stopped by {stop.signal_name} while preparing the run (files decoded or cached so far are "
                   "kept); run the same command again to continue")
            return TrainResult(str(latest), step, None, "", bool(latest), [], stop.signal_name)


def _train(opts: TrainOptions, report: Callable[[str], None], stop: preempt.StopRequest) -> TrainResult:
    """Plan the run, prepare the data, build the graph, restore, train, save."""
    opts.check()
    train_dir = Path(opts.train_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    scopes = opts.scopes_to_train()
    start = model_start(opts, train_dir, scopes, report)
    if not start.latest:
        set_aside_stale_best(train_dir, report)
    mode = _with_synthetic(training_mode(scopes, opts.feature_cache, start.g_add), opts, report)
    precision = prec.resolve(opts.precision)
    if precision.requested != "fp32":
        report(f"precision {precision.name}: {precision.reason}")
    cache_dir = Path(opts.cache_dir) if opts.cache_dir else train_dir / "cache"
    pairs, mode = load_training_pairs(opts, mode, cache_dir, start, report)
    clean = [p.path for p in pairs.synthetic.photos] if pairs.synthetic else []
    schedule = plan_schedule(opts, mode, pairs.loaded, previous_config(train_dir) if start.latest else None, report,
                             clean=clean)
    _write_config(train_dir, opts, mode, precision, start, pairs, schedule)
    tg = build_train_graph(pairs.camera, start.g_add, mode, scopes, schedule.lr, schedule.decay_step,
                           opts.lr_decay_factor, opts.keep, precision=precision, lr_warmup_steps=schedule.warmup,
                           synthesis=pairs.synthetic.noise if pairs.synthetic else None)
    vg = build_validation(tg, pairs.camera, start.g_add, precision) if pairs.validation else None
    tf = tf1()
    session_config = tf.ConfigProto()
    session_config.gpu_options.allow_growth = True
    with tg.graph.as_default(), tf.Session(graph=tg.graph, config=session_config) as sess:
        first_step = restore_start(sess, tg, opts, start, report)
        sampler = training_sampler(sess, tg, opts, start, pairs, cache_dir, schedule.batch_size, first_step, report)
        run = _Run(sess, tg, train_dir, sampler, pairs, start)
        _add_validator(run, vg, opts, first_step, schedule.decay_step, report)
        _train_steps(run, opts, first_step, schedule.total_steps, stop, report)
    early = run.validator.stopped_early if run.validator else None
    return TrainResult(str(run.last_saved), run.step, run.last_loss, mode.name, bool(start.latest), pairs.skipped,
                       stop.signal_name if run.step < schedule.total_steps and not early else None, early,
                       best_prefix(train_dir))


def _add_validator(run: "_Run", vg: ValGraph | None, opts: TrainOptions, first_step: int, decay_step: int,
                   report: Callable[[str], None]) -> None:
    """The run's :class:`~sid_ft.training.validation.Validator` when it has held-out pairs, with the best so far
    (and the rate's decay, if a plateau moved it before ``first_step``); ``decay_step``: the schedule's."""
    if vg is None:
        if first_step:
            note_kept_best(run.train_dir, report)
        return
    names = [cp.pair.short_path for cp in run.pairs.validation]
    best = best_so_far(run.train_dir, names, first_step, report)
    run.validator = Validator(run.sess, run.tg, vg, run.pairs.validation, opts, best, run.spec_info, run.writer,
                              report, decay_step)


def _with_synthetic(mode: TrainingMode, opts: TrainOptions, report: Callable[[str], None]) -> TrainingMode:
    """The mode for synthetic patches (``--clean-dir``): 'cached' runs as 'frozen', and says so."""
    if not opts.clean_dir:
        return mode
    synthetic = mode.for_synthetic()
    if synthetic is not mode:
        report(f"training mode {mode.name!r} cannot cache the frozen network's features of synthetic patches "
               f"(their noise is drawn afresh every step): it runs as {synthetic.name!r}, the frozen network "
               "on every patch")
    return synthetic


def _versions() -> dict:
    import rawpy

    tf = tf1()
    return {
        "sid_ft": __version__,
        "tensorflow": tf.version.VERSION,
        "rawpy": rawpy.__version__,
        "libraw": ".".join(map(str, rawpy.libraw_version)),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write_config(train_dir: Path, opts: TrainOptions, mode: TrainingMode, precision: prec.Precision,
                  start: ModelStart, pairs: TrainingPairs, schedule: Schedule) -> None:
    """``TRAIN_DIR/config.json``: the options as given (``--config`` replays them) and what they resolved to."""
    config = {
        "options": dataclasses.asdict(opts),
        "mode": mode.name,
        "precision": precision.to_dict(),
        "lr": schedule.lr,
        "camera": pairs.camera,
        "g_add": _design_dict(start.g_add),
        "steps": schedule.total_steps,
        "batch_size": schedule.batch_size,
        "lr_decay_step": schedule.decay_step,
        "lr_warmup_steps": schedule.warmup,
        "pairs": [dataclasses.asdict(cp.pair) | {"ratio": cp.ratio} for cp in pairs.loaded],
        "synthetic": pairs.synthetic.config() | {"shot_sampler": resolve_shot_sampler()} if pairs.synthetic else None,
        "skipped": pairs.skipped,
        "validation": _validation_dict(opts, pairs),
        "resumed_from": start.latest,
        "pretrained": start.pretrained,
        "versions": _versions(),
        "command": sys.argv,
    }
    atomic.write_text(train_dir / "config.json", json.dumps(config, indent=2, default=str))


def _validation_dict(opts: TrainOptions, pairs: TrainingPairs) -> dict | None:
    """``config.json``'s ``"validation"``: the held-out pairs and how they are scored; None without any."""
    if not pairs.validation:
        return None
    return {"pairs": [dataclasses.asdict(cp.pair) | {"ratio": cp.ratio} for cp in pairs.validation],
            "source": f"--val-list {opts.val_list}" if opts.val_list else f"--val-pairs {opts.val_pairs}",
            "seed": opts.seed, "every": opts.val_every, "early_stop": opts.early_stop}


class _Run:
    """A run in its session: the step it is at, its last loss and checkpoint, and how it saves."""

    def __init__(self, sess, tg: TrainGraph, train_dir: Path, sampler: PatchSampler | SyntheticSampler,
                 pairs: TrainingPairs, start: ModelStart):
        self.sess, self.tg, self.train_dir, self.sampler, self.pairs = sess, tg, train_dir, sampler, pairs
        self.preview = preview_source(sess, tg, sampler)  # before the first step: the same crop at every save
        self.spec_info = {"camera": pairs.camera, "g_add": _design_dict(start.g_add)}
        self.writer = tf1().summary.FileWriter(str(train_dir))
        self.step = 0
        self.last_loss: float | None = None
        self.last_saved: str | None = start.latest
        self.validator: Validator | None = None

    def save(self, step: int) -> str:
        """Checkpoint ``step`` (only finite weights), with a sample image; returns the checkpoint prefix."""
        if not self.sess.run(self.tg.weights_finite):
            raise SidFtError(str(self.train_dir), f"the weights became NaN or infinite by step {step}; training "
                                                  f"stopped without saving them, the last good checkpoint is kept: "
                                                  f"{self.last_saved}")
        path = save_checkpoint(self.sess, self.tg.saver, str(self.train_dir), step, self.spec_info)
        sample_images(self.sess, self.tg, self.preview, CAMERAS[self.pairs.camera].scale, self.writer,
                      self.train_dir, step)
        self.writer.flush()
        return path


def _design_dict(g_add: GAddConfig | None) -> dict | None:
    return None if g_add is None else g_add.to_dict()


def _one_step(run: _Run, loader: BackgroundLoader, metrics, opts: TrainOptions, total_steps: int, bar) -> None:
    """Train on one batch; log every ``--log-every`` steps, checkpoint every ``--save-every``."""
    t0 = time.perf_counter()
    batch = loader.get()  # --batch-size patches
    t1 = time.perf_counter()
    moved = run.validator.lr_decay_step() if run.validator else None  # --early-stop's plateau moves the decay
    _, loss, lr = run.sess.run([run.tg.train_op, run.tg.loss, run.tg.lr], feed_for(run.tg, batch, lr_decay_step=moved))
    run.step += 1  # minimize() adds one to global_step per run
    t2 = time.perf_counter()
    if not math.isfinite(loss):
        names = sorted({patch_name(run.pairs, p) for p in batch})
        raise SidFtError(str(run.train_dir), f"loss became {loss} at step {run.step} (pairs {names}); "
                                             f"training stopped, the last good checkpoint is kept: {run.last_saved}")
    run.last_loss = float(loss)
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.4f}", step_s=f"{t2 - t1:.3f}")
    if run.step % opts.log_every == 0 or run.step == total_steps:
        record = {"step": run.step, "loss": run.last_loss, "lr": float(lr), "step_time_s": t2 - t1,
                  "data_wait_s": t1 - t0}
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        tb_scalars(run.writer, run.step, {"loss": loss, "learning_rate": lr, "step_time_s": t2 - t1})
    if run.validator is not None and run.validator.due(run.step, total_steps):
        run.validator.evaluate(run.step, metrics)
    if run.step % opts.save_every == 0 and run.step < total_steps:
        run.last_saved = run.save(run.step)


def _finish(run: _Run, opts: TrainOptions, first_step: int, total_steps: int, stop: preempt.StopRequest,
            report: Callable[[str], None]) -> None:
    """The final checkpoint; after a signal or an early stop, a record of the stop in ``metrics.jsonl``."""
    early = run.validator.stopped_early if run.validator else None
    preempted = stop.requested and run.step < total_steps and not early  # a signal after the last step: nothing
    # the periodic save (every --save-every steps before the last) already wrote this step
    just_saved = run.step > first_step and run.step % opts.save_every == 0 and run.step < total_steps
    if (run.step > first_step or not run.last_saved) and not just_saved:  # a fresh run always leaves a checkpoint
        run.last_saved = run.save(run.step)
    if early and run.step > first_step:
        _record_early_stop(run, total_steps, early, report)
    if preempted:
        _append_record(run.train_dir, preempt.stop_record(run.step, stop, run.last_saved))
        report(f"stopped by {stop.signal_name} at step {run.step} of {total_steps}: saved {run.last_saved}; "
               "run the same command again to resume")


def _record_early_stop(run: _Run, total_steps: int, reason: str, report: Callable[[str], None]) -> None:
    """The ``metrics.jsonl`` record and the message of a run that ``--early-stop`` ended."""
    best = run.validator.best
    prefix = best_prefix(run.train_dir)
    _append_record(run.train_dir, {"step": run.step, "stopped": "early_stop", "reason": reason,
                                   "best_step": best.step, "best_val_psnr": best.psnr, "checkpoint": run.last_saved,
                                   "best_checkpoint": prefix})
    report(f"stopped early at step {run.step} of {total_steps}: {reason}. The best checkpoint, {prefix}, is what "
           f"{run.train_dir} means to test.py (--latest: {run.last_saved})")


def _stopping_early(run: _Run) -> bool:
    return run.validator is not None and run.validator.stopped_early is not None


def _spent_count(run: _Run, first_step: int, metrics, report: Callable[[str], None]) -> None:
    """A resumed run whose ``--early-stop`` count is already spent (e.g. a smaller P than before): the rate's
    decay moves now if it is still ahead, else the run stops with nothing to do."""
    if run.validator is None or not run.validator.exhausted():
        return
    run.validator.settle(first_step, metrics)
    if run.validator.stopped_early:
        report(f"{run.train_dir} stopped early at step {first_step}: {run.validator.stopped_early}; nothing to do "
               "(a larger --early-stop, or none, trains on)")


def _train_steps(run: _Run, opts: TrainOptions, first_step: int, total_steps: int, stop: preempt.StopRequest,
                 report: Callable[[str], None]) -> None:
    """Steps from ``first_step`` until ``total_steps`` or a signal, then the final save; Ctrl-C saves too."""
    from tqdm import tqdm

    run.step = first_step
    if first_step >= total_steps:
        report(f"{run.train_dir} is already at step {first_step} >= {total_steps} steps: nothing to do")
    bar = tqdm(total=total_steps, initial=first_step, desc=f"fine-tune ({run.tg.mode.name})", unit="step",
               disable=not opts.progress)
    loader = BackgroundLoader(run.sampler.sample, depth=8)
    try:
        with open(run.train_dir / "metrics.jsonl", "a") as metrics:
            if first_step < total_steps:
                _spent_count(run, first_step, metrics, report)
            while run.step < total_steps and not stop.requested and not _stopping_early(run):
                _one_step(run, loader, metrics, opts, total_steps, bar)
        _finish(run, opts, first_step, total_steps, stop, report)
    except KeyboardInterrupt:
        if run.step > first_step:
            run.last_saved = run.save(run.step)
            report(f"interrupted: saved {run.last_saved}")
        raise
    finally:
        loader.close()
        bar.close()
        run.writer.close()
