"""The training graph: a mode's network, SID's L1 loss, Adam on the trainable scopes, the rate schedule.

:func:`build_train_graph` builds it in a new ``tf.Graph``; :func:`feed_for` turns a
:class:`sid_ft.data.sampling.Patch` (or a batch of them) into the feed of one step.  The rate's decay step
is an input with a default (:func:`decay_step_input`): the schedule's, unless a step's feed moves it
(``--early-stop``'s first plateau, :mod:`sid_ft.training.validation`); it is not a variable, so the
checkpoint does not hold it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import Patch
from sid_ft.data.synthetic import SyntheticNoise
from sid_ft.errors import SidFtError
from sid_ft.nets import precision as prec
from sid_ft.nets.checkpoint_save import make_saver
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.unet import CAMERAS
from sid_ft.training.modes import TrainingMode, mode_named
from sid_ft.training.options import in_scopes
from sid_ft.training.synthesis import add_synthesis, synthesis_feed

__all__ = ["TrainGraph", "build_train_graph", "decay_step_input", "feed_for", "learning_rate", "select_trainable"]


@dataclass
class TrainGraph:
    graph: object
    mode: TrainingMode
    inputs: dict  # name -> placeholder
    output: object
    loss: object
    lr: object
    train_op: object
    global_step: object
    base_features: object  # (g_conv9_2, g_conv10) on inputs['image'] (for the feature cache)
    trainable: list
    saver: object
    weights_finite: object  # scalar bool: trainable variables and their Adam slots are finite (checked before saves)
    lr_decay_step: object  # scalar int64 placeholder with the schedule's decay step as default (feed_for moves it)


def select_trainable(variables: Sequence, scopes: Sequence[str]) -> list:
    """The variables whose names start with one of ``scopes`` (all of them for ``all``)."""
    if not scopes or scopes == ["all"]:
        return list(variables)
    chosen = [v for v in variables if in_scopes(v.op.name, scopes)]
    if not chosen:
        raise SidFtError(None, f"--trainable-scopes {','.join(scopes)} matches no variable of the model")
    return chosen


def decay_step_input(lr_decay_step: int):
    """Scalar int64 placeholder ``lr_decay_step`` whose default is ``lr_decay_step``: the rate's decay step
    unless a feed moves it."""
    tf = tf1()
    return tf.placeholder_with_default(np.int64(lr_decay_step), [], name="lr_decay_step")


def learning_rate(global_step, lr: float, lr_decay_step, lr_decay_factor: float, lr_warmup_steps: int = 0):
    """The rate tensor: ``lr``, times ``(k + 1) / K`` at step k of the first K = ``lr_warmup_steps``, and
    times ``lr_decay_factor`` once ``global_step`` (the steps done before this one) is past ``lr_decay_step``
    (an int, or a scalar int64 tensor such as :func:`decay_step_input`)."""
    tf = tf1()
    boundary = lr_decay_step if tf.is_tensor(lr_decay_step) else np.int64(lr_decay_step)
    lr_t = tf.train.piecewise_constant(
        global_step, [boundary], [float(lr), float(lr) * lr_decay_factor],
        name="learning_rate" if lr_warmup_steps <= 0 else "base_learning_rate"
    )
    if lr_warmup_steps > 0:
        ramp = tf.cast(global_step + 1, tf.float32) / float(lr_warmup_steps)
        lr_t = tf.multiply(lr_t, tf.minimum(1.0, ramp), name="learning_rate")
    return lr_t


def _placeholders(camera: str) -> dict:
    """The inputs every mode has: ``flags`` (N, 3) bool, ``image`` (N, p, p, C) packed, ``gt`` (N, s*p, s*p, 3)."""
    tf = tf1()
    return {
        "flags": tf.placeholder(tf.bool, [None, 3], name="flags"),  # per patch of the batch
        "image": tf.placeholder(tf.float32, [None, None, None, CAMERAS[camera].in_channels], name="image"),
        "gt": tf.placeholder(tf.float32, [None, None, None, 3], name="gt"),
    }


def _all_finite(trainable: list, optimizer):
    """Scalar bool: the trainable variables and their Adam slots hold only finite values."""
    tf = tf1()
    state = trainable + [optimizer.get_slot(v, name) for v in trainable for name in optimizer.get_slot_names()]
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in state if v is not None]),
                         name="weights_finite")


def build_train_graph(
    camera: str,
    g_add: GAddConfig | None,
    mode: str | TrainingMode,
    trainable_scopes: Sequence[str],
    lr: float,
    lr_decay_step: int,
    lr_decay_factor: float,
    keep: int = 5,
    precision: prec.Precision | None = None,
    lr_warmup_steps: int = 0,
    synthesis: SyntheticNoise | None = None,
) -> TrainGraph:
    """Build the training graph for ``mode`` ('full', 'inside', 'frozen' or 'cached') in a new ``tf.Graph``.

    ``g_add`` None builds plain SID (only in 'full' mode: the other modes train g_add layers).
    The rate is ``lr`` — over the first ``lr_warmup_steps`` K steps ``lr * (k + 1) / K`` at step k — and
    ``lr * lr_decay_factor`` after ``lr_decay_step`` (the default of ``TrainGraph.lr_decay_step``; a feed moves it).
    ``precision`` (None: fp32): the arithmetic of the networks (:func:`sid_ft.nets.precision.compute_scope`:
    variables and Adam state stay float32); the loss is float32; fp16 scales it
    (:func:`sid_ft.nets.precision.loss_scaled`).
    ``synthesis`` (None: real pairs only): the noise of synthetic patches, built in the graph before the
    network (:func:`sid_ft.training.synthesis.add_synthesis`); not with the 'cached' mode.
    """
    tf = tf1()
    mode = mode_named(mode)
    mode.check_design(g_add)
    if synthesis is not None and mode.for_synthetic() is not mode:
        raise ValueError(f"training mode {mode.name!r} cannot train on synthetic patches; use {mode.for_synthetic()!r}")
    graph = tf.Graph()
    with graph.as_default():
        global_step = tf.train.get_or_create_global_step()
        inputs = _placeholders(camera)
        if synthesis is not None:
            add_synthesis(inputs, synthesis)
        built = mode.build(inputs, camera, g_add, precision)
        loss = tf.reduce_mean(tf.abs(built.output - built.target), name="l1_loss")
        decay_step = decay_step_input(lr_decay_step)
        lr_t = learning_rate(global_step, lr, decay_step, lr_decay_factor, lr_warmup_steps)
        trainable = select_trainable(tf.trainable_variables(), list(trainable_scopes))
        optimizer = tf.train.AdamOptimizer(lr_t)
        train_op = prec.loss_scaled(optimizer, precision).minimize(loss, global_step=global_step, var_list=trainable)
        saver = make_saver(max_to_keep=keep)
        weights_finite = _all_finite(trainable, optimizer)
    return TrainGraph(graph, mode, inputs, built.output, loss, lr_t, train_op, global_step, built.base_features,
                      trainable, saver, weights_finite, decay_step)


def feed_for(tg: TrainGraph, patch: Patch | Sequence[Patch], ratio: float | None = None,
             lr_decay_step: int | None = None) -> dict:
    """The feed dict of one step from a :class:`sid_ft.data.sampling.Patch` or a batch (a list of them).

    Each patch is amplified by ``ratio`` when given, else by its own ``ratio``; synthetic patches get their
    noise in the graph (:func:`sid_ft.training.synthesis.synthesis_feed`).  ``lr_decay_step`` (None: the
    schedule's) moves the rate's decay: the rate is decayed once ``global_step`` is past it.
    """
    batch = [patch] if isinstance(patch, Patch) else list(patch)
    ratios = [p.ratio if ratio is None else ratio for p in batch]
    feed = {tg.inputs["flags"]: np.stack([p.flags for p in batch]), tg.inputs["gt"]: np.stack([p.gt for p in batch])}
    feed.update(tg.mode.feed(tg.inputs, batch, ratios))
    if "synthetic" in tg.inputs:
        feed.update(synthesis_feed(tg.inputs, batch))
    if lr_decay_step is not None:
        feed[tg.lr_decay_step] = np.int64(lr_decay_step)
    return feed
