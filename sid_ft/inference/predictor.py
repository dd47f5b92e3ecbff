"""The SID network restored once and run on packed RAW images, whole or in tiles; SavedModel export.

SID's test script, the network part::

    x   = minimum(packed * ratio, 1)     # :func:`amplify`
    rgb = clip(network(x), 0, 1)         # :meth:`Predictor.predict`

* :class:`Predictor` builds the graph from the checkpoint
  (:func:`sid_ft.nets.model_spec.read_model_spec`: a released checkpoint runs as plain
  SID, a fine-tuned one with its g_add head), restores it once and reuses the
  session for every image; optional tiling (:func:`tile_spans`) with
  raised-cosine blending (:func:`blend_windows`) bounds memory.
* :func:`export_savedmodel` writes a TF Serving / Beam RunInference SavedModel.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from sid_ft.errors import SidFtError

if TYPE_CHECKING:
    from sid_ft.nets.precision import Precision

__all__ = [
    "DEFAULT_OVERLAP",
    "TILE_MULTIPLE",
    "amplify",
    "round_tile",
    "tile_spans",
    "blend_windows",
    "Predictor",
    "SERVING_INPUT_KEY",
    "SERVING_OUTPUT_KEY",
    "export_savedmodel",
]

TILE_MULTIPLE = 16
"""Tiles start on multiples of 16 packed pixels (the U-Net pools four times), so inside a tile
every pooling window sits where it sits in the full image."""

DEFAULT_OVERLAP = 128
"""Default overlap between neighbouring tiles, in packed pixels (see benchmarks/bench_infer.py)."""


def amplify(packed: np.ndarray, ratio: float) -> np.ndarray:
    """SID's network input: ``minimum(packed * ratio, 1)`` as float32, same shape."""
    x = np.multiply(packed, np.float32(ratio), dtype=np.float32)
    return np.minimum(x, np.float32(1.0), out=x)


# --------------------------------------------------------------------------- tiling


def round_tile(tile: int) -> int:
    """``tile`` rounded up to a multiple of :data:`TILE_MULTIPLE` (at least 16)."""
    return max(TILE_MULTIPLE, -(-int(tile) // TILE_MULTIPLE) * TILE_MULTIPLE)


def tile_spans(length: int, tile: int, overlap: int = DEFAULT_OVERLAP) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into overlapping ``(start, end)`` spans for tiled inference.

    Starts are multiples of :data:`TILE_MULTIPLE` (so pooling windows line up with the full
    image's), every span is ``tile`` long except the last, which ends at ``length`` (between
    ``tile`` and ``tile + 15`` long: its far edge is the image edge, computed exactly as in
    the full image), and neighbours overlap by at least ``overlap``.  One span when
    ``length <= tile``.  ``tile`` must be a multiple of 16 and ``overlap <= tile / 2``.
    """
    if tile <= 0 or tile % TILE_MULTIPLE:
        raise SidFtError(None, f"tile size {tile} is not a positive multiple of {TILE_MULTIPLE}")
    if overlap < 0 or 2 * overlap > tile:
        raise SidFtError(None, f"--overlap {overlap} must be between 0 and half the tile size ({tile // 2}); "
                               f"use --tile {round_tile(2 * max(overlap, 0))} or more, or a smaller --overlap")
    if length <= tile:
        return [(0, length)]
    last = (length - tile) // TILE_MULTIPLE * TILE_MULTIPLE
    n = max(2, math.ceil((length - tile) / max(tile - overlap, 1)) + 1)
    while True:
        starts = sorted({int(round(i * last / (n - 1) / TILE_MULTIPLE)) * TILE_MULTIPLE for i in range(n)})
        spans = [(s, s + tile) for s in starts[:-1]] + [(starts[-1], length)]
        if all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:])):
            return spans
        n += 1


def blend_windows(spans: Sequence[tuple[int, int]], scale: int = 1) -> list[np.ndarray]:
    """Per-span blending weights along one axis, at ``scale`` times the span resolution.

    Across each overlap of two neighbouring spans the weight passes from one to the other
    with a raised cosine (``sin^2``) over the central half of the overlap; in the outer
    quarters each span's weight is 0 near its own cut edge (where zero padding makes its
    output differ from the full image's) and 1 near the other's.  So the output is smooth
    (no seam) and never uses pixels closer than a quarter of the overlap to a cut edge.
    Measured with random SID weights (benchmarks/bench_infer.py): ramping over the whole
    overlap instead costs about 7 dB of tiled-vs-full PSNR at the same overlap.

    Windows are normalised so that at every position the weights of the spans covering it
    sum to 1.  Returns float32 arrays of length ``scale * (end - start)``.
    """

    def ramp(n: int) -> np.ndarray:  # 0 -> 1 over the central half of n samples
        t = (np.arange(n) + 0.5) / n
        u = np.clip((t - 0.25) / 0.5, 0.0, 1.0)
        return np.sin(0.5 * np.pi * u) ** 2

    total_len = scale * max(e for _, e in spans)
    raw = []
    for i, (b, e) in enumerate(spans):
        w = np.ones(scale * (e - b), np.float64)
        if i > 0 and spans[i - 1][1] > b:  # ramp up over the overlap with the previous span
            n = scale * (spans[i - 1][1] - b)
            w[:n] *= ramp(n)
        if i + 1 < len(spans) and spans[i + 1][0] < e:  # ramp down over the overlap with the next span
            n = scale * (e - spans[i + 1][0])
            w[len(w) - n:] *= ramp(n)[::-1]
        raw.append(w)
    total = np.zeros(total_len, np.float64)
    for (b, _), w in zip(spans, raw):
        total[scale * b:scale * b + len(w)] += w
    if np.any(total <= 0):  # cannot happen with tile_spans' spans (overlap <= tile / 2)
        raise SidFtError(None, "tiles overlap too much for blending; use a larger --tile or a smaller --overlap")
    return [(w / total[scale * b:scale * b + len(w)]).astype(np.float32) for (b, _), w in zip(spans, raw)]


# --------------------------------------------------------------------------- the network


def _session_config(tf, device: str | None):
    """``(tf.device string or None, ConfigProto)`` for ``device``: None/'auto', 'cpu', 'gpu', 'gpu:K'."""
    config = tf.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    text = (device or "auto").strip().lower()
    if text == "auto":
        return None, config
    if text in ("cpu", "cpu:0", "/cpu:0"):
        config.device_count["GPU"] = 0
        return "/device:CPU:0", config
    if text == "gpu" or text.startswith("gpu:"):
        try:
            index = int(text.split(":", 1)[1]) if ":" in text else 0
        except ValueError:
            raise SidFtError(None, f"--device {device!r}: expected cpu, gpu or gpu:K") from None
        import tensorflow as tf2

        gpus = tf2.config.list_physical_devices("GPU")
        if index >= len(gpus):
            raise SidFtError(None, f"--device {device}: TensorFlow sees {len(gpus)} GPU(s)"
                                   + (" (tensorflow-cpu installed, or CUDA_VISIBLE_DEVICES empty?)" if not gpus else ""))
        return f"/device:GPU:{index}", config
    raise SidFtError(None, f"--device {device!r}: expected cpu, gpu or gpu:K")


class Predictor:
    """A restored SID network in its own graph and session, reused for every image.

    Args:
      checkpoint: train dir, checkpoint prefix or released SID checkpoint folder.
      device: None (TensorFlow's choice: a GPU if one is visible), 'cpu', 'gpu' or 'gpu:K'
        (the K-th GPU TensorFlow sees, after CUDA_VISIBLE_DEVICES).  GPU memory grows on demand.
      tile: None for whole images, else the tile size in packed pixels (rounded up to a
        multiple of 16, see :func:`round_tile`).
      overlap: tile overlap in packed pixels.
      fold: fold the g_add additions inside the network into its convolutions at load time
        (:func:`sid_ft.nets.g_add.fold.fold_g_add`; the same output within float32 rounding, at plain SID's
        cost); False runs them as separate layers, as in training.
      precision: 'fp32' (default), 'bf16', 'fp16' or 'auto' (:func:`sid_ft.nets.precision.resolve`: bf16 on a
        CPU with native bfloat16, fp16 on a CUDA GPU with tensor cores, else fp32), or a resolved
        :class:`sid_ft.nets.precision.Precision`.  Weights stay float32 and are cast where they are used;
        input and output are float32 whatever the precision; tiles are blended in float32.

    A checkpoint that cannot be read (a short, missing or damaged file, an index of another
    checkpoint) raises SidFtError naming the file, before the graph is built
    (:func:`sid_ft.nets.checkpoint.check_checkpoint`).

    Attributes: ``spec`` (:class:`sid_ft.nets.model_spec.ModelSpec`), ``precision`` (the resolved
    :class:`sid_ft.nets.precision.Precision`), ``in_channels``, ``scale``,
    ``graph``, ``sess``, ``input`` (placeholder ``(N, h, w, C)`` float32, packed and amplified),
    ``output`` (``(N, s*h, s*w, 3)`` float32 in [0, 1]: the network's output clipped; the input is
    clamped to at most 1 inside the graph, as SID does after amplifying).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None, tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, fold: bool = True, precision: str | Precision | None = None):
        from sid_ft._tf import tf1
        from sid_ft.nets import checkpoint as ckpt
        from sid_ft.nets.model_spec import read_model_spec
        from sid_ft.nets.network import sid_network
        from sid_ft.nets.unet import camera_spec
        from sid_ft.nets import precision as prec

        tf = tf1()
        self.spec = read_model_spec(checkpoint)  # a damaged index or data file of the wrong length: SidFtError
        ckpt.check_checkpoint(self.spec.prefix)  # every tensor's CRC32C too, when that takes under a second
        cam = camera_spec(self.spec.camera)
        self.in_channels, self.scale = cam.in_channels, cam.scale
        self.tile = None if tile is None else round_tile(tile)
        self.overlap = int(overlap)
        if self.tile is not None:
            tile_spans(self.tile + 1, self.tile, self.overlap)  # validates tile/overlap early
        self.device = device
        self.precision = precision if isinstance(precision, prec.Precision) else prec.resolve(precision, device)
        dev, config = _session_config(tf, device)
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.device(dev):
                self.input = tf.placeholder(tf.float32, [None, None, None, self.in_channels], name="packed")
                clamped = tf.minimum(self.input, 1.0, name="clamped_input")
                self.graph_g_add = self.spec.g_add.folded() if fold and self.spec.g_add is not None \
                    else self.spec.g_add
                with prec.compute_scope(self.precision):  # float32 weights, cast to the compute type at use
                    out, self.end_points = sid_network(prec.to_compute(clamped, self.precision),
                                                       camera=self.spec.camera, g_add=self.graph_g_add)
                self.output = tf.clip_by_value(prec.to_float32(out), 0.0, 1.0, name="rgb")
            self.sess = tf.Session(graph=self.graph, config=config)
            try:
                if fold:
                    ckpt.restore_folded(self.sess, self.spec)
                else:
                    ckpt.restore_model(self.sess, self.spec.prefix)
            except BaseException:
                self.sess.close()
                raise

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The bare network: ``(N, h, w, C)`` float32 packed, amplified -> ``(N, s*h, s*w, 3)`` in [0, 1]."""
        return self.sess.run(self.output, {self.input: batch})

    def predict(self, packed: np.ndarray) -> np.ndarray:
        """One image ``(h, w, C)`` (packed, amplified) -> ``(s*h, s*w, 3)`` float32 in [0, 1], tiled if set."""
        h, w = packed.shape[:2]
        if self.tile is None or (h <= self.tile and w <= self.tile):
            return self.forward(packed[None])[0]
        s = self.scale
        ys = tile_spans(h, self.tile, self.overlap)
        xs = tile_spans(w, self.tile, self.overlap)
        wy, wx = blend_windows(ys, s), blend_windows(xs, s)
        out = np.zeros((s * h, s * w, 3), np.float32)
        for (y0, y1), wyi in zip(ys, wy):
            for (x0, x1), wxj in zip(xs, wx):
                t = self.forward(packed[None, y0:y1, x0:x1])[0]
                t *= wyi[:, None, None]
                t *= wxj[None, :, None]
                out[s * y0:s * y1, s * x0:s * x1] += t
        return np.clip(out, 0.0, 1.0, out=out)

    def close(self) -> None:
        self.sess.close()

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SERVING_INPUT_KEY = "packed"
SERVING_OUTPUT_KEY = "rgb"


def export_savedmodel(predictor: Predictor, export_dir: str | os.PathLike) -> Path:
    """Write ``predictor``'s graph and weights as a SavedModel for TF Serving / Beam RunInference.

    Signature ``serving_default``: one input ``packed`` (``(N, h, w, C)`` float32, packed and
    amplified; values above 1 are clamped like SID), one output ``rgb`` (``(N, s*h, s*w, 3)``
    float32 in [0, 1]).  The network inside runs in ``predictor.precision`` (explicit casts in the
    graph, float32 variables), so a server runs it as ``test.py --precision`` did.  Tag ``serve``; device placements are cleared.  ``export_dir`` must not
    exist or be empty (SidFtError otherwise).
    """
    from sid_ft._tf import tf1

    tf = tf1()
    export_dir = Path(export_dir)
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        raise SidFtError(export_dir, "already exists and is not an empty folder; choose a new --export-savedmodel")
    if export_dir.is_dir():
        export_dir.rmdir()
    with predictor.graph.as_default():
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={SERVING_INPUT_KEY: predictor.input}, outputs={SERVING_OUTPUT_KEY: predictor.output})
        builder = tf.saved_model.Builder(os.fspath(export_dir))
        builder.add_meta_graph_and_variables(
            predictor.sess, [tf.saved_model.tag_constants.SERVING],
            signature_def_map={tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature},
            clear_devices=True, strip_default_attrs=True)
        builder.save()
    return export_dir

