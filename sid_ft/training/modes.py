"""The four ways to run a training step, as objects with one interface (:class:`TrainingMode`).

Chosen by :func:`training_mode` from ``--trainable-scopes`` and the g_add design:

* ``full`` (any scope outside ``g_add``, e.g. ``all``): SID's own training; the
  flips act on the packed input and the ground truth.
* ``inside`` (``g_add`` only, a design with additions beside the network's
  convolutions): the whole network runs forward and backward on the patch, as in
  ``full``, but gradients are computed for the g_add variables only (no weight
  gradients of the frozen convolutions), and only they are updated.
* ``frozen`` (``g_add`` only, feature cache off): the frozen network runs on the
  patch, then its features and base logits are flipped together with the ground
  truth and only the head is trained.  No gradient reaches the frozen layers.
* ``cached`` (``g_add`` only, a head-only design): the frozen network runs once per
  training image; its ``g_conv9_2`` features and ``g_conv10`` logits go to the
  on-disk cache (:mod:`sid_ft.training.features`) and every step trains the head on
  crops of them.  The flips are the same as in ``frozen``, so both compute the same
  update from the same patch.

With synthetic patches (``--clean-dir``, :mod:`sid_ft.training.synthesis`) the network's input is
built in the graph (``inputs['network_input']``: noise on clean crops, or the fed real input per
patch): ``full``, ``inside`` and ``frozen`` run their network on it.  ``cached`` cannot: the
features of noise drawn afresh every step cannot be cached, so :meth:`TrainingMode.for_synthetic`
makes it ``frozen``.

In the two head modes the flips act in the packed domain: the ground truth's
``scale x scale`` blocks move with the packed pixel that predicts them
(:func:`sid_ft.training.augment.augment_blocks`), so each output block keeps its own features.

A mode's :attr:`~TrainingMode.name` is what ``config.json``, ``metrics`` and
:class:`sid_ft.training.loop.TrainResult` record.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import CachedPair, Patch
from sid_ft.nets import precision as prec
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.g_add.head import g_add_head
from sid_ft.nets.network import sid_network
from sid_ft.nets.unet import CAMERAS, FEATURE_CHANNELS, sid_unet
from sid_ft.training.augment import augment, augment_blocks
from sid_ft.training.features import base_fingerprint, cached_features
from sid_ft.training.options import DEFAULT_LR, DEFAULT_STEPS, TrainOptions

__all__ = ["MODES", "ModeGraph", "TrainingMode", "mode_named", "network_input", "training_mode"]


class ModeGraph(NamedTuple):
    """What a mode adds to the training graph."""

    output: object  # (N, s*p, s*p, 3) float32, the model's output on the flipped patches
    target: object  # (N, s*p, s*p, 3) float32, the ground truth flipped the same way
    base_features: object  # (g_conv9_2, g_conv10) of the frozen network on inputs['image'], or None


def _stack(batch: Sequence[Patch], k: int, ratios: Sequence[float] | None = None) -> np.ndarray:
    """``(N, p, p, c)``: array ``k`` of each patch; amplified by its ratio and clipped at 1 when ``ratios`` are
    given.  Synthetic patches give zeros (the graph builds their input)."""
    if ratios is None:
        return np.stack([p.packed[k] for p in batch])
    return np.stack([np.zeros_like(p.packed[k]) if p.synthetic is not None else np.minimum(p.packed[k] * r, 1.0)
                     for p, r in zip(batch, ratios)])


def network_input(inputs: dict):
    """What the network runs on: the synthesised-or-real input when the graph synthesises, else ``image``."""
    return inputs.get("network_input", inputs["image"])


class TrainingMode:
    """One way to run a training step: what it builds, what it feeds, what it prepares before the first step."""

    name = ""
    trains_g_add_only = True  # False: layers outside g_add learn too
    caches_features = False  # the frozen network's features go to the on-disk cache
    down_init_from_gradient = False  # --g-add-down-init gradient applies (fresh runs)

    @property
    def default_lr(self) -> float:
        """``--lr`` when none is given (:data:`sid_ft.training.options.DEFAULT_LR`)."""
        return DEFAULT_LR[self.name]

    @property
    def default_steps(self) -> int:
        """``--steps`` when neither it nor ``--epochs`` is given (:data:`sid_ft.training.options.DEFAULT_STEPS`)."""
        return DEFAULT_STEPS[self.name]

    def __repr__(self) -> str:
        return f"<training mode {self.name}>"

    def check_design(self, g_add: GAddConfig | None) -> None:
        """ValueError when the g_add design cannot be trained this way."""
        if g_add is None and self.trains_g_add_only:
            raise ValueError(f"training mode {self.name!r} trains g_add layers: it needs a GAddConfig")

    def build(self, inputs: dict, camera: str, g_add: GAddConfig | None, precision) -> ModeGraph:
        """The network on ``inputs`` (``image`` (N, p, p, C) amplified packed RAW, ``gt``, ``flags``); may add
        placeholders to ``inputs``."""
        raise NotImplementedError

    def feed(self, inputs: dict, batch: Sequence[Patch], ratios: Sequence[float]) -> dict:
        """The feed of the mode's own placeholders for ``batch`` (``flags`` and ``gt`` are common)."""
        raise NotImplementedError

    def forward(self, image, camera: str, g_add: GAddConfig | None, precision):
        """The trained model on ``image`` ((N, h, w, C) amplified packed RAW, any h and w), without flips, in
        the run's precision, sharing the training graph's variables (built after :meth:`build`): (N, s*h, s*w,
        3) float32.  What the held-out pairs are scored with (:mod:`sid_ft.training.validation`)."""
        raise NotImplementedError

    def training_sources(self, sess, tg, loaded: Sequence[CachedPair], cache_dir: Path, opts: TrainOptions,
                         g_add: GAddConfig | None) -> list[list[np.ndarray]]:
        """The packed-resolution arrays the patches are cut from, per pair: the short exposure."""
        return [[cp.short] for cp in loaded]

    def without_feature_cache(self) -> "TrainingMode":
        """The mode to use when the feature cache does not fit on disk."""
        return self

    def for_synthetic(self) -> "TrainingMode":
        """The mode to use with synthetic patches, whose input the graph builds anew every step."""
        return self


class _WholeNetwork(TrainingMode):
    """The whole network runs forward and backward on each patch."""

    def build(self, inputs: dict, camera: str, g_add: GAddConfig | None, precision) -> ModeGraph:
        flags = inputs["flags"]
        with prec.compute_scope(precision):
            output, _ = sid_network(prec.to_compute(augment(network_input(inputs), flags), precision), camera=camera,
                                    g_add=g_add)
        return ModeGraph(prec.to_float32(output), augment(inputs["gt"], flags), None)

    def feed(self, inputs: dict, batch: Sequence[Patch], ratios: Sequence[float]) -> dict:
        return {inputs["image"]: _stack(batch, 0, ratios)}

    def forward(self, image, camera: str, g_add: GAddConfig | None, precision):
        with prec.compute_scope(precision):
            output, _ = sid_network(prec.to_compute(image, precision), camera=camera, g_add=g_add, reuse=True)
        return prec.to_float32(output)


class Full(_WholeNetwork):
    """SID's own training: layers outside g_add learn."""

    name = "full"
    trains_g_add_only = False


class Inside(_WholeNetwork):
    """Additions beside the network's convolutions learn; gradients for the g_add variables only."""

    name = "inside"
    down_init_from_gradient = True

    def check_design(self, g_add: GAddConfig | None) -> None:
        super().check_design(g_add)
        if not g_add.inside:
            raise ValueError("training mode 'inside' needs a design with additions inside the network")


class _HeadOnly(TrainingMode):
    """Only the g_add head learns, on the frozen network's features flipped in the packed domain."""

    base_in_float32 = False  # the frozen network runs in float32 whatever the run's precision

    def head_inputs(self, inputs: dict, base_features: tuple, camera: str, g_add: GAddConfig) -> tuple:
        """(features, base logits, packed input) for the head, before the flips."""
        raise NotImplementedError

    def build(self, inputs: dict, camera: str, g_add: GAddConfig | None, precision) -> ModeGraph:
        base_precision = None if self.base_in_float32 else precision
        with prec.compute_scope(base_precision):
            _, base_ep = sid_unet(prec.to_compute(network_input(inputs), base_precision), camera=camera)
        base_features = tuple(prec.to_float32(base_ep[k]) for k in ("g_conv9_2", "g_conv10"))
        features, logits, packed = self.head_inputs(inputs, base_features, camera, g_add)
        flags = inputs["flags"]
        with prec.compute_scope(precision):
            output, _ = g_add_head(*(prec.to_compute(augment(t, flags), precision) for t in (features, logits)),
                                   g_add, camera=camera, packed=prec.to_compute(augment(packed, flags), precision))
        target = augment_blocks(inputs["gt"], flags, CAMERAS[camera].scale)
        return ModeGraph(prec.to_float32(output), target, base_features)

    def forward(self, image, camera: str, g_add: GAddConfig | None, precision):
        base_precision = None if self.base_in_float32 else precision
        with prec.compute_scope(base_precision):
            _, base_ep = sid_unet(prec.to_compute(image, base_precision), camera=camera, reuse=True)
        features, logits = (prec.to_compute(prec.to_float32(base_ep[k]), precision) for k in ("g_conv9_2", "g_conv10"))
        with prec.compute_scope(precision):
            output, _ = g_add_head(features, logits, g_add, camera=camera, reuse=True,
                                   packed=prec.to_compute(image, precision))
        return prec.to_float32(output)


class Frozen(_HeadOnly):
    """The frozen network runs on every patch, in the run's precision; no gradient reaches it."""

    name = "frozen"

    def head_inputs(self, inputs: dict, base_features: tuple, camera: str, g_add: GAddConfig) -> tuple:
        features, logits = (tf1().stop_gradient(t) for t in base_features)
        return features, logits, network_input(inputs)

    def feed(self, inputs: dict, batch: Sequence[Patch], ratios: Sequence[float]) -> dict:
        return {inputs["image"]: _stack(batch, 0, ratios)}


class Cached(_HeadOnly):
    """The frozen network's features come from the on-disk cache, filled once per image by the float32 network
    (the same cache serves every run, whatever its precision)."""

    name = "cached"
    caches_features = True
    base_in_float32 = True

    def head_inputs(self, inputs: dict, base_features: tuple, camera: str, g_add: GAddConfig) -> tuple:
        tf = tf1()
        spec = CAMERAS[camera]
        features = tf.placeholder(tf.float32, [None, None, None, FEATURE_CHANNELS], name="features")
        logits = tf.placeholder(tf.float32, [None, None, None, spec.out_channels], name="base_logits")
        inputs.update(features=features, base_logits=logits)
        packed = inputs["image"]
        if g_add.packed_input:
            packed = tf.placeholder(tf.float32, [None, None, None, spec.in_channels], name="packed_input")
            inputs.update(packed_input=packed)
        return features, logits, packed

    def feed(self, inputs: dict, batch: Sequence[Patch], ratios: Sequence[float]) -> dict:
        feed = {inputs["features"]: _stack(batch, 0), inputs["base_logits"]: _stack(batch, 1)}
        if "packed_input" in inputs:
            feed[inputs["packed_input"]] = _stack(batch, 2, ratios)
        return feed

    def training_sources(self, sess, tg, loaded: Sequence[CachedPair], cache_dir: Path, opts: TrainOptions,
                         g_add: GAddConfig | None) -> list[list[np.ndarray]]:
        """The cached features and logits per pair (computed now where missing), and the short exposure when
        the head also sees the amplified input."""
        fingerprint = base_fingerprint(sess, tg)
        sources = cached_features(sess, tg, loaded, cache_dir, fingerprint, opts.feature_dtype, opts.progress)
        if g_add.packed_input:
            sources = [arrays + [cp.short] for arrays, cp in zip(sources, loaded)]
        return sources

    def without_feature_cache(self) -> TrainingMode:
        return MODES["frozen"]

    def for_synthetic(self) -> TrainingMode:
        """'frozen': noise drawn afresh every step has no features to cache."""
        return MODES["frozen"]


MODES: dict[str, TrainingMode] = {m.name: m for m in (Full(), Inside(), Frozen(), Cached())}
"""Every training mode by its recorded name."""


def mode_named(mode: str | TrainingMode) -> TrainingMode:
    """The training mode of this name ('full', 'inside', 'frozen' or 'cached'); a mode is returned as is."""
    if isinstance(mode, TrainingMode):
        return mode
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"unknown training mode {mode!r}") from None


def training_mode(trainable_scopes: Sequence[str], feature_cache: bool, g_add: GAddConfig | None = None
                  ) -> TrainingMode:
    """'full' when a layer outside g_add learns; else 'inside' for a design with additions inside the
    network, and 'cached' / 'frozen' (feature cache on / off) for a head-only design."""
    g_add_only = bool(trainable_scopes) and trainable_scopes != ["all"] and all(
        s.startswith("g_add") for s in trainable_scopes
    )
    if not g_add_only:
        return MODES["full"]
    if g_add is not None and g_add.inside:
        return MODES["inside"]
    return MODES["cached" if feature_cache else "frozen"]
