"""Where a run's weights start: a checkpoint in the train dir, ``--pretrained``, or random (``--from-scratch``).

TF-Slim's rule: a checkpoint already in ``train_dir`` wins over ``--checkpoint_path``
(here ``--pretrained``), and the g_add design then comes from that checkpoint, not from
the options.  ``--from-scratch`` trains plain SID (the released layout, ready to be
fine-tuned with g_add later) from random weights.

Every checkpoint is checked before any pair is decoded (:func:`sid_ft.nets.checkpoint.check_checkpoint`:
sizes always, CRC32Cs when that takes under a second).  A resume goes past a damaged latest
checkpoint to the newest readable one (:func:`resume_checkpoint`); a damaged ``--pretrained``
stops the run, a released model's short data file as "not downloaded completely".
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.nets.checkpoint import (STATE_FILE, check_checkpoint, first_line, resolve_checkpoint, restore_error,
                                    restore_pretrained)
from sid_ft.nets.checkpoint_save import forget_checkpoints
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.model_spec import read_model_spec
from sid_ft.nets.verify import VerifyReport, newest_readable, set_aside_damaged
from sid_ft.training.graph import TrainGraph
from sid_ft.training.modes import training_mode
from sid_ft.training.options import TrainOptions, parse_scopes

__all__ = ["ModelStart", "model_start", "restore_start", "resume_checkpoint"]


@dataclass
class ModelStart:
    """The weights a run starts from, and the model they make."""

    latest: str | None  # the train dir's latest checkpoint: the run resumes from it
    pretrained: str | None  # else the checkpoint prefix the base network is restored from (None: --from-scratch)
    camera: str | None  # the model's camera; None with --from-scratch (the files decide)
    g_add: GAddConfig | None  # the g_add design trained; None: plain SID

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint the weights come from, if any."""
        return self.latest or self.pretrained


def _resumed(opts: TrainOptions, latest: str, g_add: GAddConfig | None, trainable_scopes: Sequence[str],
             report: Callable[[str], None]) -> ModelStart:
    """Resume from ``latest``, with the layers it holds."""
    spec = read_model_spec(latest)
    if opts.from_scratch and spec.g_add is not None:
        raise SidFtError(latest, f"--from-scratch trains plain SID, but this train dir holds {spec.description}; "
                                 "use another --train-dir")
    if spec.g_add is None and training_mode(trainable_scopes, opts.feature_cache).trains_g_add_only:
        raise SidFtError(latest, "this train dir holds a plain SID model (no g_add layers) and cannot be resumed "
                                 "as a g_add fine-tuning; pass it as --pretrained with a new --train-dir")
    if spec.g_add != g_add:
        report(f"resuming with the layers of {latest} ({spec.description}), not the options' "
               f"({'plain SID' if g_add is None else g_add.describe()})")
    return ModelStart(latest, None, spec.camera, spec.g_add)


def _listed_checkpoints(train_dir: Path) -> list[str]:
    """The checkpoints ``train_dir``'s state file lists, newest first (the latest first of all); [] without one.

    A listed path that does not exist is also tried in ``train_dir`` (a train dir moved
    with absolute paths in its state file), as :func:`sid_ft.nets.checkpoint.resolve_checkpoint` does.
    """
    try:
        state = tf1().train.get_checkpoint_state(str(train_dir))
    except Exception as exc:  # text_format.ParseError and friends
        raise SidFtError(train_dir / STATE_FILE, f"unreadable checkpoint state file ({exc})") from None
    if state is None or not state.model_checkpoint_path:
        return []
    listed = []
    for path in [state.model_checkpoint_path, *reversed(state.all_model_checkpoint_paths)]:
        moved = os.path.join(train_dir, os.path.basename(path))
        listed.append(moved if not os.path.exists(path + ".index") and os.path.exists(moved + ".index") else path)
    return list(dict.fromkeys(os.path.normpath(p) for p in listed))


def _set_aside(train_dir: Path, skipped: list[VerifyReport], found: str, report: Callable[[str], None]) -> None:
    """Rename the damaged checkpoints newer than ``found`` (never delete them) and list only the others.

    Only checkpoints inside ``train_dir`` are renamed; one listed elsewhere is only dropped from the list.
    """
    for damaged in skipped:
        name = os.path.basename(damaged.prefix)
        folder = os.path.dirname(damaged.prefix)
        if os.path.isdir(folder) and os.path.samefile(folder, train_dir):
            name = os.path.basename(set_aside_damaged(damaged.prefix)) + ".*"
        report(f"cannot resume from {os.path.basename(damaged.prefix)}: {damaged.errors[0]}; kept as {name} "
               "(nothing is deleted)")
    forget_checkpoints(train_dir, [damaged.prefix for damaged in skipped], found)
    report(f"continuing from {os.path.basename(found)}, the newest readable checkpoint in {train_dir}")


def resume_checkpoint(train_dir: Path, report: Callable[[str], None]) -> str | None:
    """The checkpoint a run in ``train_dir`` resumes from; None when its state file lists none.

    The newest readable one that the state file lists (the latest first; each checked by
    :func:`sid_ft.nets.verify.newest_readable`: sizes, and CRC32Cs when that takes under a
    second).  Damaged ones newer than it are reported, set aside under a name that no longer
    looks like a checkpoint (``model.ckpt-8.damaged.*``) and dropped from the state file,
    rewritten atomically.  SidFtError listing them all when none can be read (then nothing is
    renamed).
    """
    listed = _listed_checkpoints(train_dir)
    if not listed:
        return None
    found, skipped = newest_readable(listed, checksums=None)
    if found is None:
        raise SidFtError(train_dir, f"cannot resume: none of the {len(listed)} checkpoint(s) its state file lists "
                                    "can be read: " + "; ".join(str(r.errors[0]) for r in skipped)
                         + ". Nothing was changed; move them away to start again from --pretrained")
    if skipped:
        _set_aside(train_dir, skipped, found, report)
    return found


def model_start(opts: TrainOptions, train_dir: Path, trainable_scopes: Sequence[str],
                report: Callable[[str], None]) -> ModelStart:
    """Resume (a checkpoint in ``train_dir``), else ``--pretrained``, else random weights (``--from-scratch``).

    Every checkpoint is checked here, before any pair is decoded (see the module docstring).
    """
    latest = resume_checkpoint(train_dir, report)
    g_add = None if opts.from_scratch else opts.g_add_design()
    if latest:
        return _resumed(opts, latest, g_add, trainable_scopes, report)
    if opts.from_scratch:
        return ModelStart(None, None, None, None)
    prefix = resolve_checkpoint(opts.pretrained)
    check_checkpoint(prefix)  # a released model: its size always, its CRC32Cs when under a second
    return ModelStart(None, prefix, read_model_spec(prefix).camera, g_add)


def _resume_error(prefix: str, exc: BaseException) -> SidFtError:
    """A TensorFlow error while resuming from ``prefix``: the damaged file when a full check finds one
    (damaged since it was checked), else TensorFlow's reason (e.g. a checkpoint of another graph)."""
    problem = restore_error(prefix, exc)
    if problem.path != prefix:
        return problem
    return SidFtError(prefix, f"cannot resume from this checkpoint: {first_line(exc)}")


def restore_start(sess, tg: TrainGraph, opts: TrainOptions, start: ModelStart, report: Callable[[str], None]) -> int:
    """Load the starting weights into ``sess``; initialise the rest.  Returns the global step to start at."""
    tf = tf1()
    if start.latest:
        try:
            tg.saver.restore(sess, start.latest)
        except (tf.errors.OpError, ValueError, IndexError) as exc:
            raise _resume_error(start.latest, exc) from None
        report(f"resuming from {start.latest} (step {int(sess.run(tg.global_step))}); --pretrained is ignored")
    elif opts.from_scratch:
        sess.run(tf.global_variables_initializer())
        report("every layer of plain SID starts from random weights (--from-scratch)")
    else:
        exclude_scopes = tuple(parse_scopes(opts.checkpoint_exclude_scopes))
        restored = restore_pretrained(sess, start.pretrained, exclude_scopes=exclude_scopes)
        report(f"restored {len(restored)} tensors from {start.pretrained}")
    sess.run(tf.local_variables_initializer())  # e.g. fp16's loss scale, which checkpoints do not keep
    return int(sess.run(tg.global_step))
