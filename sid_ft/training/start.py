"""Where a run's weights start: a checkpoint in the train dir, ``--pretrained``, or random (``--from-scratch``).

TF-Slim's rule: a checkpoint already in ``train_dir`` wins over ``--checkpoint_path``
(here ``--pretrained``), and the g_add design then comes from that checkpoint, not from
the options.  ``--from-scratch`` trains plain SID (the released layout, ready to be
fine-tuned with g_add later) from random weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.nets.checkpoint import resolve_checkpoint, restore_pretrained
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.model_spec import read_model_spec
from sid_ft.training.graph import TrainGraph
from sid_ft.training.modes import training_mode
from sid_ft.training.options import TrainOptions, parse_scopes

__all__ = ["ModelStart", "model_start", "restore_start"]


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


def model_start(opts: TrainOptions, train_dir: Path, trainable_scopes: Sequence[str],
                report: Callable[[str], None]) -> ModelStart:
    """Resume (a checkpoint in ``train_dir``), else ``--pretrained``, else random weights (``--from-scratch``)."""
    latest = tf1().train.latest_checkpoint(str(train_dir))
    g_add = None if opts.from_scratch else opts.g_add_design()
    if latest:
        return _resumed(opts, latest, g_add, trainable_scopes, report)
    if opts.from_scratch:
        return ModelStart(None, None, None, None)
    prefix = resolve_checkpoint(opts.pretrained)
    return ModelStart(None, prefix, read_model_spec(prefix).camera, g_add)


def restore_start(sess, tg: TrainGraph, opts: TrainOptions, start: ModelStart, report: Callable[[str], None]) -> int:
    """Load the starting weights into ``sess``; initialise the rest.  Returns the global step to start at."""
    tf = tf1()
    if start.latest:
        try:
            tg.saver.restore(sess, start.latest)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as exc:
            raise SidFtError(start.latest, f"cannot resume from this checkpoint: {exc.message.splitlines()[0]}") \
                from None
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
