"""Fine-tuning: restore a pretrained SID model, train the ``g_add`` layers (or more), save full checkpoints.

The method, as in SID's training script: a random ``patch_size`` crop of the
packed short exposure, multiplied by the exposure ratio and clipped at 1, random
vertical/horizontal flips and a transpose, an L1 loss against SID's rendering of
the long exposure, Adam at 1e-4 and ten times lower for the second half.

Four ways to run a step, chosen from ``trainable_scopes`` and the g_add design:

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
  on-disk cache and every step trains the head on crops of them.  The flips are
  the same as in ``frozen``, so both compute the same update from the same patch.

In the two g_add modes the flips act in the packed domain: the ground truth's
``scale x scale`` blocks move with the packed pixel that predicts them (block
flip), so each output block keeps its own features.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sid_ft import __version__
from sid_ft.io import atomic
from sid_ft.training import cachesize
from sid_ft.runtime import preempt
from sid_ft.runtime import lock as runlock
from sid_ft.errors import SidFtError
from sid_ft.data.pairs import Pair, find_pairs, read_pair_list
from sid_ft.data.sampling import (BackgroundLoader, CachedPair, DecodeCache, Patch, PatchSampler, load_npy,
                             save_npy_atomic)
from sid_ft.nets import checkpoint as ckpt
from sid_ft.nets import model as sid_model
from sid_ft.nets import precision as prec
from sid_ft.nets.model import CAMERAS, FEATURE_CHANNELS, GAddConfig
from sid_ft._tf import tf1


@dataclass
class TrainOptions:
    """Every option of a fine-tuning run; written to ``config.json`` in the train dir."""

    dataset_dir: str | None = None
    train_list: str | None = None
    split: str = "train"  # 'train' | 'test' | 'val' | 'all' (SID's scene-id rule)
    pretrained: str = "checkpoints/Sony/"
    train_dir: str = "checkpoints/finetune/"
    steps: int | None = None  # default: DEFAULT_STEPS[mode]
    epochs: int | None = None  # SID-style: steps = epochs x scenes of the usable pairs (replaces steps)
    patch_size: int = 512
    batch_size: int | None = None  # patches per step; None: 1, or what a resumed run's config.json recorded
    lr: float | None = None  # default: DEFAULT_LR[mode]
    lr_decay_step: int | None = None  # default: steps // 2
    lr_decay_factor: float = 0.1
    g_add_down_init: str = "gradient"  # or "xavier": the rank-R down kernels span the top R directions
    # of the loss gradient of each conv's kernel on a few training patches (fresh runs of the inside mode only)
    lr_warmup_steps: int | None = None  # the rate rises linearly to --lr over the first K steps; None: 0 (none),
    # or what a resumed run's config.json recorded
    save_every: int = 500
    keep: int = 5
    log_every: int = 10
    seed: int = 0
    g_add_depth: int = 2
    g_add_width: int = 16
    g_add_packed_input: bool = False
    g_add_linear: bool = False
    g_add_head: bool = False
    g_add_affine: bool = False
    g_add_rank: int = 32
    trainable_scopes: str = "g_add"
    checkpoint_exclude_scopes: str = "g_add"
    feature_cache: bool = True
    feature_dtype: str = "float16"
    cache_dir: str | None = None  # default: <train_dir>/cache
    cache_max_gb: float | None = None  # limit of the caches; default: 90% of the free space (sid_ft.training.cachesize)
    ratio_cap: float = 300.0
    camera: str | None = None  # 'sony' | 'fuji'; None: from the files' packing (4 or 9 channels)
    from_scratch: bool = False  # explicit: start from random weights instead of --pretrained
    precision: str = "fp32"  # 'auto' | 'fp32' | 'bf16' | 'fp16' (sid_ft.nets.precision.resolve)
    progress: bool = True
    force_unlock: bool = False  # take the train dir's lock even if another run seems to hold it


@dataclass
class TrainResult:
    checkpoint: str
    global_step: int
    last_loss: float | None
    mode: str
    resumed: bool
    skipped: list[str] = field(default_factory=list)
    stopped_by: str | None = None  # 'SIGTERM' / 'SIGUSR1' when a signal stopped the run before its end


# --------------------------------------------------------------------------- scopes

def parse_scopes(text: str | Sequence[str] | None) -> list[str]:
    """TF-Slim's comma-separated scope list; ``all`` (or empty) means every model variable."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return [s.strip() for s in items if s.strip()]


def in_scopes(name: str, scopes: Sequence[str]) -> bool:
    """TF-Slim's rule: a variable is in a scope when its name starts with the scope string."""
    return any(name.startswith(s) for s in scopes)


def select_trainable(variables: Sequence, scopes: Sequence[str]) -> list:
    """The variables whose names start with one of ``scopes`` (all of them for ``all``)."""
    if not scopes or scopes == ["all"]:
        return list(variables)
    chosen = [v for v in variables if in_scopes(v.op.name, scopes)]
    if not chosen:
        raise SidFtError(None, f"--trainable-scopes {','.join(scopes)} matches no variable of the model")
    return chosen


DEFAULT_LR = {"full": 1e-4, "inside": 1e-3, "frozen": 1e-3, "cached": 1e-3}
"""Default ``--lr`` per mode: SID's 1e-4 for every layer; the rate the quality benchmark found best
for the g_add layers (benchmarks/bench_quality.py, README)."""

DEFAULT_STEPS = {"full": 4000, "inside": 1500, "frozen": 1500, "cached": 1500}
"""Default ``--steps`` per mode: a few thousand for every layer; for the g_add layers about
LED's 1.5k iterations, which suits a handful of pairs."""


def training_mode(trainable_scopes: Sequence[str], feature_cache: bool, g_add: GAddConfig | None = None) -> str:
    """'full' when a layer outside g_add learns; else 'inside' for a design with additions inside the
    network, and 'cached' / 'frozen' (feature cache on / off) for a head-only design."""
    g_add_only = bool(trainable_scopes) and trainable_scopes != ["all"] and all(
        s.startswith("g_add") for s in trainable_scopes
    )
    if not g_add_only:
        return "full"
    if g_add is not None and g_add.inside:
        return "inside"
    return "cached" if feature_cache else "frozen"


def design_from_options(opts: TrainOptions) -> GAddConfig:
    """The g_add design the ``--g-add-*`` options ask for."""
    try:
        return GAddConfig(depth=opts.g_add_depth, width=opts.g_add_width, packed_input=opts.g_add_packed_input,
                          linear=opts.g_add_linear, head=opts.g_add_head, affine=opts.g_add_affine,
                          rank=opts.g_add_rank)
    except ValueError as exc:
        raise SidFtError(None, f"--g-add-*: {exc}") from None


# --------------------------------------------------------------------------- augmentation

def augment(x, flags):
    """SID's augmentation of a ``(N, h, w, c)`` batch of square patches, each its own way.

    ``flags`` (N, 3) bool: flip rows, flip columns, transpose, per patch (``tf.compat.v1.where``
    with a vector condition picks whole patches).
    """
    tf = tf1()
    x = tf.where(flags[:, 0], tf.reverse(x, [1]), x)
    x = tf.where(flags[:, 1], tf.reverse(x, [2]), x)
    return tf.where(flags[:, 2], tf.transpose(x, [0, 2, 1, 3]), x)


def augment_blocks(image, flags, scale: int):
    """The packed-domain version of :func:`augment` for a full-resolution image: ``scale x scale`` blocks move whole."""
    tf = tf1()
    return tf.nn.depth_to_space(augment(tf.nn.space_to_depth(image, scale), flags), scale)


# --------------------------------------------------------------------------- graph

@dataclass
class TrainGraph:
    graph: object
    mode: str
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


def build_train_graph(
    camera: str,
    g_add: GAddConfig | None,
    mode: str,
    trainable_scopes: Sequence[str],
    lr: float,
    lr_decay_step: int,
    lr_decay_factor: float,
    keep: int = 5,
    precision: prec.Precision | None = None,
    lr_warmup_steps: int = 0,
) -> TrainGraph:
    """Build the training graph for ``mode`` ('full', 'inside', 'frozen' or 'cached') in a new ``tf.Graph``.

    ``g_add`` None builds plain SID (only in 'full' mode: the other modes train g_add layers).
    The rate is ``lr`` — over the first ``lr_warmup_steps`` K steps ``lr * (k + 1) / K`` at step k — and
    ``lr * lr_decay_factor`` after ``lr_decay_step``.
    ``precision`` (None: fp32): the arithmetic of the networks (:func:`sid_ft.nets.precision.compute_scope`:
    variables and Adam state stay float32); the loss is float32; fp16 scales it (:func:`sid_ft.nets.precision.loss_scaled`).
    """
    tf = tf1()
    if g_add is None and mode != "full":
        raise ValueError(f"training mode {mode!r} trains g_add layers: it needs a GAddConfig")
    if mode == "inside" and not g_add.inside:
        raise ValueError("training mode 'inside' needs a design with additions inside the network")
    spec = CAMERAS[camera]
    graph = tf.Graph()
    with graph.as_default():
        global_step = tf.train.get_or_create_global_step()
        flags = tf.placeholder(tf.bool, [None, 3], name="flags")  # per patch of the batch
        image = tf.placeholder(tf.float32, [None, None, None, spec.in_channels], name="image")
        gt = tf.placeholder(tf.float32, [None, None, None, 3], name="gt")
        inputs = {"flags": flags, "image": image, "gt": gt}
        if mode in ("full", "inside"):
            with prec.compute_scope(precision):
                output, ep = sid_model.sid_network(prec.to_compute(augment(image, flags), precision), camera=camera,
                                                   g_add=g_add)
            output = prec.to_float32(output)
            target = augment(gt, flags)
            base_features = None
        else:
            # the cache is filled once per image by the float32 network, whatever the precision: the same
            # cache serves every run; 'frozen' runs the network on every patch, in the run's precision
            base_precision = None if mode == "cached" else precision
            with prec.compute_scope(base_precision):
                _, base_ep = sid_model.sid_unet(prec.to_compute(image, base_precision), camera=camera)
            base_features = tuple(prec.to_float32(base_ep[k]) for k in ("g_conv9_2", "g_conv10"))
            packed = image
            if mode == "cached":
                features = tf.placeholder(tf.float32, [None, None, None, FEATURE_CHANNELS], name="features")
                logits = tf.placeholder(tf.float32, [None, None, None, spec.out_channels], name="base_logits")
                inputs.update(features=features, base_logits=logits)
                if g_add.packed_input:
                    packed = tf.placeholder(tf.float32, [None, None, None, spec.in_channels], name="packed_input")
                    inputs.update(packed_input=packed)
            elif mode == "frozen":
                features, logits = (tf.stop_gradient(t) for t in base_features)
            else:
                raise ValueError(f"unknown training mode {mode!r}")
            with prec.compute_scope(precision):
                output, _ = sid_model.g_add_head(*(prec.to_compute(augment(t, flags), precision)
                                                   for t in (features, logits)), g_add, camera=camera,
                                                 packed=prec.to_compute(augment(packed, flags), precision))
            output = prec.to_float32(output)
            target = augment_blocks(gt, flags, spec.scale)
        loss = tf.reduce_mean(tf.abs(output - target), name="l1_loss")
        lr_t = tf.train.piecewise_constant(
            global_step, [np.int64(lr_decay_step)], [float(lr), float(lr) * lr_decay_factor],
            name="learning_rate" if lr_warmup_steps <= 0 else "base_learning_rate"
        )
        if lr_warmup_steps > 0:
            ramp = tf.cast(global_step + 1, tf.float32) / float(lr_warmup_steps)
            lr_t = tf.multiply(lr_t, tf.minimum(1.0, ramp), name="learning_rate")
        trainable = select_trainable(tf.trainable_variables(), list(trainable_scopes))
        optimizer = tf.train.AdamOptimizer(lr_t)
        train_op = prec.loss_scaled(optimizer, precision).minimize(loss, global_step=global_step, var_list=trainable)
        saver = ckpt.make_saver(max_to_keep=keep)
        state = trainable + [optimizer.get_slot(v, name) for v in trainable for name in optimizer.get_slot_names()]
        weights_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in state if v is not None]),
                                       name="weights_finite")
    return TrainGraph(graph, mode, inputs, output, loss, lr_t, train_op, global_step, base_features, trainable, saver,
                      weights_finite)


def feed_for(tg: TrainGraph, patch, ratio: float | None = None) -> dict:
    """The feed dict of one step from a :class:`sid_ft.data.sampling.Patch` or a batch (a list of them).

    Each patch is amplified by ``ratio`` when given, else by its own ``ratio``.
    """
    batch = [patch] if isinstance(patch, Patch) else list(patch)
    ratios = [p.ratio if ratio is None else ratio for p in batch]

    def stack(k: int, amplify: bool = False) -> np.ndarray:
        return np.stack([np.minimum(p.packed[k] * r, 1.0) if amplify else p.packed[k] for p, r in zip(batch, ratios)])

    feed = {tg.inputs["flags"]: np.stack([p.flags for p in batch]), tg.inputs["gt"]: np.stack([p.gt for p in batch])}
    if tg.mode == "cached":
        feed[tg.inputs["features"]] = stack(0)
        feed[tg.inputs["base_logits"]] = stack(1)
        if "packed_input" in tg.inputs:
            feed[tg.inputs["packed_input"]] = stack(2, amplify=True)
    else:
        feed[tg.inputs["image"]] = stack(0, amplify=True)
    return feed


# --------------------------------------------------------------------------- feature cache

def base_fingerprint(sess, tg: TrainGraph) -> str:
    """A hash of the frozen network's weights: cached features are valid only for these."""
    tf = tf1()
    with tg.graph.as_default():
        base_vars = [v for v in tf.global_variables() if ckpt.classify_tensor(v.op.name) == "base"]
    h = hashlib.sha1()
    for v, value in zip(base_vars, sess.run(base_vars)):
        h.update(v.op.name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


def cached_features(
    sess, tg: TrainGraph, pairs: Sequence[CachedPair], cache_dir: Path, fingerprint: str, dtype: str = "float16",
    progress: bool = True,
) -> list[list[np.ndarray]]:
    """Run the frozen network once per training image (amplified, full size) and cache ``g_conv9_2``/``g_conv10``."""
    from tqdm import tqdm

    out: list[list[np.ndarray]] = []
    for cp in tqdm(pairs, desc="frozen network (feature cache)", unit="image", disable=not progress, leave=False):
        stem = f"{cp.short_key}_{fingerprint}_r{cp.ratio:g}_{dtype}"
        paths = [cache_dir / f"{stem}_feat.npy", cache_dir / f"{stem}_logits.npy"]
        preempt.check()  # SIGTERM/SIGUSR1 while caching: stop between images
        if not all(p.exists() for p in paths):
            image = np.minimum(np.asarray(cp.short, np.float32) * cp.ratio, 1.0)[None]
            feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: image})
            save_npy_atomic(paths[0], feats[0].astype(dtype))
            save_npy_atomic(paths[1], logits[0].astype(dtype))
        out.append([load_npy(p) for p in paths])
    return out


# --------------------------------------------------------------------------- run

def resolve_camera(loaded: Sequence[CachedPair], forced: str | None, model_camera: str | None,
                   model_path: str | None) -> str:
    """The network variant for these files: from their packing, checked against ``--camera`` and the model."""
    by_channels = {spec.in_channels: name for name, spec in CAMERAS.items()}
    kinds = {by_channels.get(int(cp.short.shape[-1])) for cp in loaded}
    if len(kinds) > 1:
        raise SidFtError(None, "the training files mix Bayer (sony) and X-Trans (fuji) sensors; train one at a time")
    data_camera = kinds.pop()
    if forced and forced != data_camera:
        raise SidFtError(loaded[0].pair.short_path, f"--camera {forced} but the file packs as {data_camera} "
                                                    f"({loaded[0].short.shape[-1]} channels)")
    if model_camera and model_camera != data_camera:
        raise SidFtError(model_path, f"a {model_camera} checkpoint cannot fine-tune on {data_camera} files "
                                     f"(e.g. {loaded[0].pair.short_path}); use the {data_camera} model")
    return data_camera


def collect_pairs(opts: TrainOptions, report: Callable[[str], None]) -> tuple[list[Pair], list[str]]:
    """Pairs from ``--dataset-dir`` and/or ``--train-list``; problems are reported and skipped."""
    if not opts.dataset_dir and not opts.train_list:
        raise SidFtError(None, "give --dataset-dir DIR (SID layout: short/, long/) and/or --train-list FILE")
    split = None if opts.split == "all" else opts.split
    problems: list[SidFtError] = []
    pairs: list[Pair] = []
    if opts.dataset_dir:
        pairs += find_pairs(opts.dataset_dir, split=split, skipped=problems)
    if opts.train_list:
        pairs += read_pair_list(opts.train_list, split=split, skipped=problems)
    for p in problems:
        report(f"skipped: {p}")
    return pairs, [str(p) for p in problems]


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


def _png_bytes(rgb: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", (np.clip(np.nan_to_num(rgb), 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")


def _tb_scalars(writer, step: int, values: dict) -> None:
    tf = tf1()
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()]), step)


def _tb_image(writer, step: int, tag: str, rgb: np.ndarray) -> None:
    tf = tf1()
    img = tf.Summary.Image(height=rgb.shape[0], width=rgb.shape[1], colorspace=3, encoded_image_string=_png_bytes(rgb))
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, image=img)]), step)


def _previous_config(train_dir: Path) -> dict | None:
    try:
        return json.loads((train_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None


GRADIENT_INIT_PATCHES = 16
"""Training patches whose summed kernel gradients choose the ``down`` directions (``--g-add-down-init gradient``)."""


def init_down_from_gradient(sess, tg: TrainGraph, camera: str, g_add: GAddConfig, sampler: PatchSampler,
                            patches: int = GRADIENT_INIT_PATCHES) -> int:
    """Set each rank-r ``down`` kernel to the r leading left singular vectors of the loss gradient of the
    conv's kernel, summed over ``patches`` training patches (their own draws: the training order is
    unchanged), scaled to the norm a Xavier initialisation has.  ``up`` stays zero, so the network's
    output is unchanged; the first updates of ``down . up`` then follow the steepest directions instead
    of random ones.  Returns the number of kernels set."""
    tf = tf1()
    layers = [(scope, cout) for scope, _, _, cout in sid_model.conv_layers(camera)
              if sid_model.addition_rank(g_add, cout)]
    with tg.graph.as_default():
        variables = {v.op.name: v for v in tf.global_variables()}
        kernels = [variables[f"{scope}/weights"] for scope, _ in layers]
        downs = {name: v for name, v in variables.items() if name.endswith("/down/weights")}
        grads = tf.gradients(tg.loss, kernels)
    total = [np.zeros(k.shape.as_list(), np.float64) for k in kernels]
    for _ in range(max(1, patches // sampler.batch_size)):
        for acc, g in zip(total, sess.run(grads, feed_for(tg, sampler.sample()))):
            acc += g
    for (scope, cout), g in zip(layers, total):
        down = downs[f"{sid_model.G_ADD_SCOPE}/{scope}/down/weights"]
        kh, kw, cin, r = down.shape.as_list()
        u, _, _ = np.linalg.svd(g.reshape(kh * kw * cin, cout), full_matrices=False)
        xavier_norm = math.sqrt(2.0 * cin * r / (cin + r))  # expected Frobenius norm of the Xavier kernel
        d = u[:, :r] * (xavier_norm / math.sqrt(r))
        down.load(d.reshape(kh, kw, cin, r).astype(np.float32), sess)
    return len(layers)


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


def run_length(opts: TrainOptions, loaded: Sequence[CachedPair], previous: dict | None,
               report: Callable[[str], None], batch_size: int = 1,
               default_steps: int = DEFAULT_STEPS["full"]) -> tuple[int, int]:
    """(total steps, learning-rate decay step) of the run.

    ``--epochs E`` counts as SID's train_Sony does, one patch per scene per epoch: E x the distinct
    long exposures among the usable pairs, divided by the patches per step (rounded up).  A resumed run with the same ``--epochs`` keeps the
    length and decay step its ``config.json`` recorded, even if the usable pairs changed since,
    so that a resume neither ends early nor moves the decay.  The decay step defaults to half
    the total.
    """
    if opts.epochs is None:
        total = int(default_steps if opts.steps is None else opts.steps)
    else:
        scenes = len({cp.pair.long_path for cp in loaded})
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
            with open(Path(opts.train_dir) / "metrics.jsonl", "a") as metrics:
                metrics.write(json.dumps(preempt.stop_record(step, stop, latest)) + "\n")
            report(f"stopped by {stop.signal_name} while preparing the run (files decoded or cached so far are "
                   "kept); run the same command again to continue")
            return TrainResult(str(latest), step, None, "", bool(latest), [], stop.signal_name)


def _train(opts: TrainOptions, report: Callable[[str], None], stop: preempt.StopRequest) -> TrainResult:
    from tqdm import tqdm

    tf = tf1()
    train_dir = Path(opts.train_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    trainable_scopes = parse_scopes(opts.trainable_scopes) or ["all"]
    exclude_scopes = parse_scopes(opts.checkpoint_exclude_scopes)
    if opts.epochs is not None and opts.epochs < 1:
        raise SidFtError(None, f"--epochs {opts.epochs}: must be at least 1")
    if opts.lr_warmup_steps is not None and opts.lr_warmup_steps < 0:
        raise SidFtError(None, f"--lr-warmup-steps {opts.lr_warmup_steps}: must be 0 (none) or more")
    if opts.g_add_down_init not in ("xavier", "gradient"):  # before anything is decoded
        raise SidFtError(None, f"--g-add-down-init {opts.g_add_down_init!r}: choose xavier or gradient")
    if opts.from_scratch and trainable_scopes != ["all"]:
        raise SidFtError(None, "--from-scratch trains every layer of plain SID from random weights: it needs "
                               "--trainable-scopes all (training some layers on a random base makes no sense)")

    # Resume wins over --pretrained (TF-Slim's rule); the head's shape then comes from the train dir.
    # --from-scratch trains plain SID (the released layout, ready to be fine-tuned with g_add later).
    latest = tf.train.latest_checkpoint(str(train_dir))
    g_add: GAddConfig | None = None if opts.from_scratch else design_from_options(opts)
    model_camera = None
    pretrained_prefix = None
    if latest:
        spec = ckpt.read_model_spec(latest)
        model_camera = spec.camera
        if opts.from_scratch and spec.g_add is not None:
            raise SidFtError(latest, f"--from-scratch trains plain SID, but this train dir holds {spec.description}; "
                                     "use another --train-dir")
        if spec.g_add is None and training_mode(trainable_scopes, opts.feature_cache) != "full":
            raise SidFtError(latest, "this train dir holds a plain SID model (no g_add layers) and cannot be resumed "
                                     "as a g_add fine-tuning; pass it as --pretrained with a new --train-dir")
        if spec.g_add != g_add:
            report(f"resuming with the layers of {latest} ({spec.description}), not the options' "
                   f"({'plain SID' if g_add is None else g_add.describe()})")
            g_add = spec.g_add
    elif not opts.from_scratch:
        pretrained_prefix = ckpt.resolve_checkpoint(opts.pretrained)
        model_camera = ckpt.read_model_spec(pretrained_prefix).camera

    mode = training_mode(trainable_scopes, opts.feature_cache, g_add)
    precision = prec.resolve(opts.precision)
    if precision.requested != "fp32":
        report(f"precision {precision.name}: {precision.reason}")
    lr = DEFAULT_LR[mode] if opts.lr is None else float(opts.lr)
    pairs, skipped = collect_pairs(opts, report)
    cache_dir = Path(opts.cache_dir) if opts.cache_dir else train_dir / "cache"
    # before anything is decoded or written: do the caches fit? (else stop, or train without the feature cache)
    estimate = cachesize.estimate_caches(pairs, cache_dir, mode == "cached", opts.feature_dtype, opts.ratio_cap)
    if not cachesize.check_caches(estimate, cache_dir, opts.cache_max_gb, report):
        mode = "frozen"
    decode = DecodeCache(cache_dir)

    def on_error(err: SidFtError) -> None:
        skipped.append(str(err))
        report(f"skipped: {err}")

    loaded = decode.load_pairs(pairs, opts.ratio_cap, on_error=on_error)
    camera = resolve_camera(loaded, opts.camera, model_camera, latest or pretrained_prefix)
    previous = _previous_config(train_dir) if latest else None
    batch_size = resolve_batch_size(opts.batch_size, previous, report)
    warmup = opts.lr_warmup_steps
    if warmup is None:  # a resumed run keeps its warm-up (it only matters if it stopped within it)
        before = (previous or {}).get("lr_warmup_steps")
        warmup = before if isinstance(before, int) and before >= 0 else 0
    total_steps, decay_step = run_length(opts, loaded, previous, report, batch_size,
                                         default_steps=DEFAULT_STEPS[mode])
    scale = CAMERAS[camera].scale
    config = {
        "options": dataclasses.asdict(opts),
        "mode": mode,
        "precision": precision.to_dict(),
        "lr": lr,
        "camera": camera,
        "g_add": None if g_add is None else g_add.to_dict(),
        "steps": total_steps,
        "batch_size": batch_size,
        "lr_decay_step": decay_step,
        "lr_warmup_steps": warmup,
        "pairs": [dataclasses.asdict(cp.pair) | {"ratio": cp.ratio} for cp in loaded],
        "skipped": skipped,
        "resumed_from": latest,
        "pretrained": pretrained_prefix,
        "versions": _versions(),
        "command": sys.argv,
    }
    atomic.write_text(train_dir / "config.json", json.dumps(config, indent=2, default=str))

    tg = build_train_graph(camera, g_add, mode, trainable_scopes, lr, decay_step, opts.lr_decay_factor, opts.keep,
                           precision=precision, lr_warmup_steps=warmup)
    session_config = tf.ConfigProto()
    session_config.gpu_options.allow_growth = True
    with tg.graph.as_default(), tf.Session(graph=tg.graph, config=session_config) as sess:
        if latest:
            try:
                tg.saver.restore(sess, latest)
            except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as exc:
                raise SidFtError(latest, f"cannot resume from this checkpoint: {exc.message.splitlines()[0]}") from None
            report(f"resuming from {latest} (step {int(sess.run(tg.global_step))}); --pretrained is ignored")
        elif opts.from_scratch:
            sess.run(tf.global_variables_initializer())
            report("every layer of plain SID starts from random weights (--from-scratch)")
        else:
            restored = ckpt.restore_pretrained(sess, pretrained_prefix, exclude_scopes=tuple(exclude_scopes))
            report(f"restored {len(restored)} tensors from {pretrained_prefix}")
        sess.run(tf.local_variables_initializer())  # e.g. fp16's loss scale, which checkpoints do not keep
        start = int(sess.run(tg.global_step))

        if mode == "cached":
            fp = base_fingerprint(sess, tg)
            sources = cached_features(sess, tg, loaded, cache_dir, fp, opts.feature_dtype, opts.progress)
            if g_add.packed_input:  # the head also sees the amplified short exposure
                sources = [arrays + [cp.short] for arrays, cp in zip(sources, loaded)]
        else:
            sources = [[cp.short] for cp in loaded]
        sampler = PatchSampler(
            sources, [cp.gt for cp in loaded], [cp.ratio for cp in loaded], opts.patch_size,
            seed=opts.seed, first_step=start, names=[cp.pair.short_path for cp in loaded], batch_size=batch_size,
        )
        if opts.g_add_down_init == "gradient" and mode == "inside" and not latest and g_add.rank:
            init_sampler = PatchSampler(sources, [cp.gt for cp in loaded], [cp.ratio for cp in loaded],
                                        opts.patch_size, seed=opts.seed + 7919, batch_size=batch_size)
            n = init_down_from_gradient(sess, tg, camera, g_add, init_sampler)
            report(f"g_add down kernels of {n} convolutions set from the loss gradient on "
                   f"{GRADIENT_INIT_PATCHES} training patches")
        spec_info = {"camera": camera, "g_add": None if g_add is None else g_add.to_dict()}
        writer = tf.summary.FileWriter(str(train_dir))
        metrics_path = train_dir / "metrics.jsonl"
        last_saved = latest
        last_loss = None

        def save(step: int) -> str:
            if not sess.run(tg.weights_finite):
                raise SidFtError(str(train_dir), f"the weights became NaN or infinite by step {step}; training "
                                                 f"stopped without saving them, the last good checkpoint is kept: "
                                                 f"{last_saved}")
            path = ckpt.save_checkpoint(sess, tg.saver, str(train_dir), step, spec_info)
            sample_images(sess, tg, sampler, loaded, scale, writer, train_dir, step)
            writer.flush()
            return path

        step = start
        if start >= total_steps:
            report(f"{train_dir} is already at step {start} >= {total_steps} steps: nothing to do")
        bar = tqdm(total=total_steps, initial=start, desc=f"fine-tune ({mode})", unit="step", disable=not opts.progress)
        loader = BackgroundLoader(sampler.sample, depth=8)
        try:
            with open(metrics_path, "a") as metrics:
                while step < total_steps and not stop.requested:
                    t0 = time.perf_counter()
                    batch = loader.get()  # --batch-size patches
                    t1 = time.perf_counter()
                    _, loss, lr = sess.run([tg.train_op, tg.loss, tg.lr], feed_for(tg, batch))
                    step += 1  # minimize() adds one to global_step per run
                    t2 = time.perf_counter()
                    if not math.isfinite(loss):
                        raise SidFtError(
                            str(train_dir),
                            f"loss became {loss} at step {step} (pairs {sorted({loaded[p.index].pair.short_path for p in batch})}); "
                            f"training stopped, the last good checkpoint is kept: {last_saved}",
                        )
                    last_loss = float(loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", step_s=f"{t2 - t1:.3f}")
                    if step % opts.log_every == 0 or step == total_steps:
                        record = {"step": step, "loss": last_loss, "lr": float(lr), "step_time_s": t2 - t1,
                                  "data_wait_s": t1 - t0}
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                        _tb_scalars(writer, step, {"loss": loss, "learning_rate": lr, "step_time_s": t2 - t1})
                    if step % opts.save_every == 0 and step < total_steps:
                        last_saved = save(step)
            preempted = stop.requested and step < total_steps  # a signal after the last step changes nothing
            just_saved = preempted and step > start and step % opts.save_every == 0  # by the periodic save
            if (step > start or not latest) and not just_saved:
                last_saved = save(step)
            if preempted:
                with open(metrics_path, "a") as metrics:
                    metrics.write(json.dumps(preempt.stop_record(step, stop, last_saved)) + "\n")
                report(f"stopped by {stop.signal_name} at step {step} of {total_steps}: saved {last_saved}; "
                       "run the same command again to resume")
        except KeyboardInterrupt:
            if step > start:
                last_saved = save(step)
                report(f"interrupted: saved {last_saved}")
            raise
        finally:
            loader.close()
            bar.close()
            writer.close()
    return TrainResult(str(last_saved), step, last_loss, mode, bool(latest), skipped,
                       stop.signal_name if step < total_steps else None)


def sample_images(sess, tg: TrainGraph, sampler: PatchSampler, loaded, scale: int, writer, train_dir: Path,
                  step: int) -> None:
    """Write the model's output and the ground truth on a fixed crop of the first pair (TensorBoard + PNG)."""
    p = sampler.patch_size
    arrays, gt = sampler.sources[0], sampler.gts[0]
    h, w = arrays[0].shape[:2]
    y, x = (h - p) // 2, (w - p) // 2
    patch = Patch(0, [np.asarray(a[y:y + p, x:x + p], np.float32) for a in arrays],
                  np.asarray(gt[scale * y:scale * (y + p), scale * x:scale * (x + p)], np.float32),
                  sampler.ratios[0], np.zeros(3, bool))
    out = sess.run(tg.output, feed_for(tg, patch, patch.ratio))[0]
    pair_image = np.concatenate([np.clip(out, 0, 1), patch.gt], axis=1)
    _tb_image(writer, step, "sample/output_vs_ground_truth", pair_image)
    samples = train_dir / "samples"
    samples.mkdir(exist_ok=True)
    (samples / f"step_{step:07d}.png").write_bytes(_png_bytes(pair_image))
