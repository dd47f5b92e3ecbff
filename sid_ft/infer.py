"""Run a released or fine-tuned SID model on RAW files: one photo, a folder, or a cluster shard.

The method is SID's test script, step by step::

    packed = pack_raw(raw)                       # (h, w, 4) float32, black-subtracted, white-normalised
    x      = minimum(packed * ratio, 1)          # amplification, clamped like SID
    rgb    = clip(network(x), 0, 1)              # (2h, 2w, 3) sRGB
    write  <stem>_out.png                        # 16-bit by default

and, when the long exposure is known (``--test-list``), SID's two companions:
``<stem>_gt.png`` (LibRaw rendering of the long exposure, :func:`sid_ft.raw.render_reference`)
and ``<stem>_scale.png`` (the short exposure's own LibRaw rendering multiplied by
``mean(gt) / mean(rendering)``, i.e. brightness-matched to the ground truth, as
SID's ``test_Sony.py`` writes it).

Around it, what a batch job needs:

* :class:`Predictor` builds the graph from the checkpoint
  (:func:`sid_ft.checkpoint.read_model_spec`: a released checkpoint runs as plain
  SID, a fine-tuned one with its g_add head), restores it once and reuses the
  session for every file; optional tiling (:func:`tile_spans`) with
  raised-cosine blending bounds memory.
* :func:`run_inference` decodes the next files in background threads while the
  current one runs, writes PNGs (and computes PSNR/SSIM) in background threads,
  reports bad files with one line each and carries on, and records everything in
  ``summary.json`` / ``summary.csv``.
* :func:`parse_shard` / :func:`shard_from_env` / :func:`select_shard` split a
  sorted input list across SLURM array tasks or Kubernetes indexed-job pods.
* :func:`export_savedmodel` writes a TF Serving / Beam RunInference SavedModel.

About SSIM in the summaries: :func:`sid_ft.metrics.ssim` with ``gaussian=True``
(scikit-image, 11x11 Gaussian window of sigma 1.5, population covariances,
mean over the three RGB channels).  That is the window of MATLAB's ``ssim``,
which SID's published figures used; MATLAB's default is applied to the image as
given (SID evaluated its 8-bit PNGs), whereas we score the float output and
ground truth before quantisation, so figures agree with SID's to within the
8-bit rounding, not bit for bit.  PSNR is ``10 log10(1 / MSE)`` on [0, 1].
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from sid_ft import atomic
from sid_ft.atomic import atomic_path
from sid_ft.errors import SidFtError

__all__ = [
    "DEFAULT_OVERLAP",
    "TILE_MULTIPLE",
    "OUTPUT_SUFFIXES",
    "parse_shard",
    "shard_from_env",
    "select_shard",
    "collect_inputs",
    "Job",
    "make_jobs",
    "output_paths",
    "resolve_ratio",
    "amplify",
    "round_tile",
    "tile_spans",
    "blend_windows",
    "Predictor",
    "export_savedmodel",
    "InferOptions",
    "FileRecord",
    "RunSummary",
    "run_inference",
    "write_summary",
]

TILE_MULTIPLE = 16
"""Tiles start on multiples of 16 packed pixels (the U-Net pools four times), so inside a tile
every pooling window sits where it sits in the full image."""

DEFAULT_OVERLAP = 128
"""Default overlap between neighbouring tiles, in packed pixels (see benchmarks/bench_infer.py)."""

OUTPUT_SUFFIXES = {"out": "_out.png", "gt": "_gt.png", "scale": "_scale.png"}

Report = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- shards


def parse_shard(text: str) -> tuple[int, int]:
    """``'K/N'`` (1-based, 1 <= K <= N) -> ``(K, N)``; SidFtError otherwise."""
    try:
        k_text, n_text = str(text).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise SidFtError(None, f"--shard {text!r}: expected K/N, e.g. 1/4 (1-based)") from None
    if n < 1 or not 1 <= k <= n:
        raise SidFtError(None, f"--shard {text!r}: need 1 <= K <= N (shards are numbered from 1)")
    return k, n


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SidFtError(None, f"environment variable {name}={value!r} is not an integer") from None


def shard_from_env(environ: Mapping[str, str] | None = None, count: int | None = None) -> tuple[int, int] | None:
    """The ``(K, N)`` shard (1-based) a cluster scheduler assigned to this process, or None.

    * SLURM job arrays: ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``.
      Task ids need not start at 1 (``--array=0-9``, ``--array=5-8``, ``--array=0-20:5``):
      K is the task's position, ``(ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP + 1``.
    * Kubernetes indexed Jobs: ``JOB_COMPLETION_INDEX`` (0-based, so K = index + 1).
      Kubernetes does not tell the pod how many completions there are: N comes
      from ``count`` (``--shard-count``) or the ``SID_FT_SHARD_COUNT`` variable;
      SidFtError when neither is set (running everything in every pod would
      silently repeat the work).

    ``count``, when given, must agree with SLURM's task count.
    """
    env = os.environ if environ is None else environ
    if count is None:
        count = _env_int(env, "SID_FT_SHARD_COUNT")
    task_id = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task_id is not None:
        n = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        if n is None:
            raise SidFtError(None, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard K/N")
        lo = _env_int(env, "SLURM_ARRAY_TASK_MIN")
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        if lo is None:
            raise SidFtError(None, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not; pass --shard K/N")
        offset = task_id - lo
        if offset < 0 or offset % step:
            raise SidFtError(None, f"SLURM array task {task_id} is not on the array's grid "
                                   f"(min {lo}, step {step}); pass --shard K/N")
        k = offset // step + 1
        if count is not None and count != n:
            raise SidFtError(None, f"--shard-count {count} disagrees with SLURM_ARRAY_TASK_COUNT={n}")
        if not 1 <= k <= n:
            raise SidFtError(None, f"SLURM array task {task_id} is outside an array of {n} tasks from {lo} "
                                   f"with step {step} (sparse arrays like --array=1,5,9 need --shard K/N)")
        return k, n
    index = _env_int(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        if count is None:
            raise SidFtError(None, f"JOB_COMPLETION_INDEX={index} is set (Kubernetes indexed Job) but the number "
                                   "of completions is unknown: pass --shard-count N or set SID_FT_SHARD_COUNT")
        if not 0 <= index < count:
            raise SidFtError(None, f"JOB_COMPLETION_INDEX={index} is outside 0..{count - 1}")
        return index + 1, count
    return None


def select_shard(items: Sequence, shard: tuple[int, int] | None, key: Callable = str) -> list:
    """Items of shard ``(K, N)``: sort by ``key``, then take every N-th starting at the K-th.

    Deterministic across machines; the N shards together hold every item exactly once.
    """
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    k, n = shard
    return ordered[k - 1::n]


# --------------------------------------------------------------------------- inputs


def collect_inputs(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of files.

    * a file is taken as given, whatever its extension (a bad one fails later, with its name);
    * a folder contributes its files with a RAW extension (:data:`sid_ft.raw.RAW_EXTENSIONS`,
      any case), not recursively;
    * a pattern with ``*``, ``?`` or ``[`` is expanded (``**`` recurses) and keeps files
      with a RAW extension.

    SidFtError for a folder or pattern that yields no RAW file.  A named file that
    does not exist is kept: it is reported as failed like any other bad file.
    """
    from sid_ft.raw import RAW_EXTENSIONS

    found: dict[str, Path] = {}

    def add(p: Path) -> None:
        found.setdefault(os.path.abspath(p), p)

    for item in items:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            files = [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in RAW_EXTENSIONS]
            if not files:
                raise SidFtError(text, "folder holds no RAW file (extensions: "
                                       + ", ".join(sorted(e.lstrip('.') for e in RAW_EXTENSIONS)) + ")")
            for f in files:
                add(f)
        elif any(ch in text for ch in "*?[") and not p.exists():
            files = [Path(f) for f in sorted(glob.glob(text, recursive=True))
                     if os.path.isfile(f) and Path(f).suffix.lower() in RAW_EXTENSIONS]
            if not files:
                raise SidFtError(text, "pattern matches no RAW file")
            for f in files:
                add(f)
        else:
            add(p)
    return sorted(found.values(), key=str)


@dataclass
class Job:
    """One file to run: its input, and for a SID pair the long exposure and the pair's ratio."""

    input: Path
    ground_truth: Path | None = None
    pair_ratio: float | None = None

    @property
    def stem(self) -> str:
        return self.input.stem


def make_jobs(inputs: Sequence[str | os.PathLike] = (), test_list: str | os.PathLike | None = None,
              ratio_cap: float = 300.0, report: Report = _stderr) -> tuple[list[Job], list[SidFtError]]:
    """Jobs for positional inputs and/or a SID pair list (sorted by input path), and the list's problems.

    Problems in the list (missing files, bad names) are returned, each naming its line, so that
    the run can count them as failures and go on with the good pairs.
    """
    jobs: dict[str, Job] = {}
    problems: list[SidFtError] = []
    if inputs:
        for p in collect_inputs(inputs):
            jobs.setdefault(os.path.abspath(p), Job(input=p))
    if test_list is not None:
        from sid_ft.dataset import read_pair_list

        for pair in read_pair_list(test_list, skipped=problems):
            try:
                ratio = pair.ratio(ratio_cap)
            except SidFtError as err:
                problems.append(SidFtError(pair.short_path, err.reason))
                continue
            jobs[os.path.abspath(pair.short_path)] = Job(
                input=Path(pair.short_path), ground_truth=Path(pair.long_path), pair_ratio=ratio)
    return sorted(jobs.values(), key=lambda j: str(j.input)), problems


def output_paths(job: Job, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``{'out': DIR/<stem>_out.png}`` plus ``'gt'`` and ``'scale'`` when the job has a ground truth."""
    out = {"out": Path(out_dir) / (job.stem + OUTPUT_SUFFIXES["out"])}
    if job.ground_truth is not None:
        for kind in ("gt", "scale"):
            out[kind] = Path(out_dir) / (job.stem + OUTPUT_SUFFIXES[kind])
    return out


def _check_outputs(jobs: Sequence[Job], out_dir: Path) -> None:
    """SidFtError when an output would overwrite an input, or two inputs would write the same file."""
    inputs = {}
    for job in jobs:
        for p in (job.input, job.ground_truth):
            if p is not None:
                inputs[os.path.realpath(p)] = p
    owners: dict[str, Path] = {}
    clashes = []
    for job in jobs:
        for target in output_paths(job, out_dir).values():
            real = os.path.realpath(target)
            if real in inputs:
                raise SidFtError(inputs[real], f"would be overwritten by the output of {job.input}; "
                                               "choose another --out-dir")
            if real in owners and owners[real] != job.input:
                clashes.append(f"{owners[real]} and {job.input} -> {target.name}")
            owners.setdefault(real, job.input)
    if clashes:
        raise SidFtError(out_dir, "inputs with the same file stem would write the same output: "
                                  + "; ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
                         + " (run them into separate --out-dir folders)")


# --------------------------------------------------------------------------- amplification


def resolve_ratio(path: str | os.PathLike, exposure_s: float | None, ratio: float | None = None,
                  target_exposure: float | None = None, pair_ratio: float | None = None) -> float:
    """The amplification ratio for one file.

    Precedence: an explicit ``ratio``; else ``target_exposure / exposure_s`` (exposure from
    the SID name or the file's metadata, not capped); else the SID pair rule ``pair_ratio``
    (``min(long / short, 300)``).  SidFtError when none applies.
    """
    if ratio is not None:
        return float(ratio)
    if target_exposure is not None:
        if exposure_s is None or not exposure_s > 0:
            raise SidFtError(path, "exposure time unknown (no SID file name, no exposure in the metadata); "
                                   "give --ratio instead of --target-exposure")
        return float(target_exposure) / float(exposure_s)
    if pair_ratio is not None:
        return float(pair_ratio)
    raise SidFtError(path, "no amplification ratio: give --ratio R, or --target-exposure SECONDS, "
                           "or --test-list with the long exposures")


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
        (:func:`sid_ft.model.fold_g_add`; the same output within float32 rounding, at plain SID's
        cost); False runs them as separate layers, as in training.

    Attributes: ``spec`` (:class:`sid_ft.checkpoint.ModelSpec`), ``in_channels``, ``scale``,
    ``graph``, ``sess``, ``input`` (placeholder ``(N, h, w, C)`` float32, packed and amplified),
    ``output`` (``(N, s*h, s*w, 3)`` float32 in [0, 1]: the network's output clipped; the input is
    clamped to at most 1 inside the graph, as SID does after amplifying).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | None = None, tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, fold: bool = True):
        from sid_ft._tf import tf1
        from sid_ft import checkpoint as ckpt
        from sid_ft import model

        tf = tf1()
        self.spec = ckpt.read_model_spec(checkpoint)
        cam = model.camera_spec(self.spec.camera)
        self.in_channels, self.scale = cam.in_channels, cam.scale
        self.tile = None if tile is None else round_tile(tile)
        self.overlap = int(overlap)
        if self.tile is not None:
            tile_spans(self.tile + 1, self.tile, self.overlap)  # validates tile/overlap early
        self.device = device
        dev, config = _session_config(tf, device)
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.device(dev):
                self.input = tf.placeholder(tf.float32, [None, None, None, self.in_channels], name="packed")
                clamped = tf.minimum(self.input, 1.0, name="clamped_input")
                self.graph_g_add = self.spec.g_add.folded() if fold and self.spec.g_add is not None \
                    else self.spec.g_add
                out, self.end_points = model.sid_network(clamped, camera=self.spec.camera, g_add=self.graph_g_add)
                self.output = tf.clip_by_value(out, 0.0, 1.0, name="rgb")
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
    float32 in [0, 1]).  Tag ``serve``; device placements are cleared.  ``export_dir`` must not
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


# --------------------------------------------------------------------------- a run


@dataclass
class InferOptions:
    """Everything scripts/test.py passes to :func:`run_inference` (see its --help for the meaning)."""

    checkpoint: str
    inputs: list[str] = field(default_factory=list)
    test_list: str | None = None
    out_dir: str | None = None
    bits: int = 16
    ratio: float | None = None
    target_exposure: float | None = None
    ratio_cap: float = 300.0
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    shard: tuple[int, int] | None = None
    skip_existing: bool = False
    device: str | None = None
    export_savedmodel: str | None = None
    decode_workers: int = 2
    write_workers: int = 2
    metrics: bool = True
    progress: bool = True


@dataclass
class FileRecord:
    """What happened to one input (a row of summary.csv)."""

    input: str
    status: str  # 'ok' | 'failed' | 'skipped'
    reason: str = ""
    ground_truth: str | None = None
    output: str | None = None
    ratio: float | None = None
    exposure_s: float | None = None
    seconds: float | None = None  # decode + network + write for this file (they overlap with other files')
    decode_s: float | None = None
    network_s: float | None = None
    write_s: float | None = None
    psnr: float | None = None
    ssim: float | None = None


CSV_FIELDS = [f for f in FileRecord.__dataclass_fields__]


@dataclass
class RunSummary:
    """The outcome of :func:`run_inference`."""

    records: list[FileRecord]
    wall_s: float
    summary_json: Path | None = None
    summary_csv: Path | None = None
    savedmodel: Path | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def mean(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.records if r.status == "ok" and getattr(r, name) is not None]
        values = [v for v in values if math.isfinite(v)]
        return float(np.mean(values)) if values else None

    def totals(self) -> dict:
        done = self.count("ok")
        return {"ok": done, "failed": self.failed, "skipped": self.count("skipped"),
                "mean_psnr": self.mean("psnr"), "mean_ssim": self.mean("ssim"),
                "wall_s": round(self.wall_s, 3),
                "files_per_s": round(done / self.wall_s, 4) if self.wall_s > 0 and done else None}

    def line(self) -> str:
        t = self.totals()
        text = f"{t['ok']} written, {t['failed']} failed, {t['skipped']} skipped in {t['wall_s']:.1f} s"
        if t["mean_psnr"] is not None:
            text += f"; mean PSNR {t['mean_psnr']:.2f} dB, mean SSIM {t['mean_ssim']:.4f}"
        return text


@dataclass
class _Decoded:
    job: Job
    packed: np.ndarray  # amplified, (h, w, C)
    ratio: float
    exposure_s: float | None
    gt: np.ndarray | None
    scale_img: np.ndarray | None
    decode_s: float


_FILE_ERRORS: tuple = (SidFtError, OSError)


def _file_errors() -> tuple:
    try:
        import rawpy

        return _FILE_ERRORS + (rawpy.LibRawError,)
    except ImportError:  # pragma: no cover
        return _FILE_ERRORS


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SidFtError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _decode(job: Job, opts: InferOptions, in_channels: int, scale: int) -> _Decoded:
    from sid_ft import raw as sid_raw

    t0 = time.perf_counter()
    image = sid_raw.load_raw(job.input)
    packed = image.packed
    if packed.ndim != 3 or packed.shape[2] != in_channels:
        raise SidFtError(job.input, f"unsupported sensor for this model: its {image.cfa} mosaic packs to "
                                    f"{packed.shape[-1]} channels but the checkpoint's network takes {in_channels}")
    ratio = resolve_ratio(job.input, image.exposure_s, opts.ratio, opts.target_exposure, job.pair_ratio)
    if not (math.isfinite(ratio) and ratio > 0):
        raise SidFtError(job.input, f"amplification ratio {ratio!r} is not a positive number")
    x = amplify(packed, ratio)
    gt = scale_img = None
    if job.ground_truth is not None:
        h, w = packed.shape[:2]
        gt = sid_raw.render_reference(job.ground_truth)
        if gt.shape != (scale * h, scale * w, 3):
            raise SidFtError(job.ground_truth, f"renders to {gt.shape[1]}x{gt.shape[0]} pixels but the output of "
                                               f"{job.input} is {scale * w}x{scale * h}")
        rendering = sid_raw.render_reference(job.input)
        if rendering.shape == gt.shape:
            m = float(np.mean(rendering))
            scale_img = rendering * np.float32(float(np.mean(gt)) / m) if m > 0 else rendering
    return _Decoded(job, x, ratio, image.exposure_s, gt, scale_img, time.perf_counter() - t0)


def _write(d: _Decoded, rgb: np.ndarray, paths: dict[str, Path], bits: int, metrics: bool,
           record: FileRecord) -> FileRecord:
    from sid_ft import pngio

    t0 = time.perf_counter()
    if d.gt is not None and metrics:  # on the network's float output, before it is quantised in place
        from sid_ft.metrics import psnr, ssim

        record.psnr = psnr(rgb, d.gt)
        record.ssim = ssim(rgb, d.gt, gaussian=True)
    # rgb, gt and the scaled input are not used after this: quantise and reorder them in their own memory
    pngio.write_png(paths["out"], pngio.to_uint(rgb, bits, in_place=True), in_place=True)
    if d.gt is not None:
        pngio.write_png(paths["gt"], pngio.to_uint(d.gt, bits, in_place=True), in_place=True)
        if d.scale_img is not None:
            pngio.write_png(paths["scale"], pngio.to_uint(d.scale_img, bits, in_place=True), in_place=True)
    record.write_s = time.perf_counter() - t0
    record.seconds = (record.decode_s or 0) + (record.network_s or 0) + record.write_s
    record.status = "ok"
    return record


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return os.fspath(value)
    return value


def write_summary(out_dir: str | os.PathLike, summary: RunSummary, info: Mapping | None = None,
                  name: str = "summary") -> tuple[Path, Path]:
    """Write ``<name>.json`` (records, totals, ``info``) and ``<name>.csv`` (one row per file) atomically."""
    out_dir = Path(out_dir)
    rows = [{k: _jsonable(v) for k, v in asdict(r).items()} for r in summary.records]
    doc = {**(info or {}), "totals": summary.totals(), "files": rows}
    json_path, csv_path = out_dir / f"{name}.json", out_dir / f"{name}.csv"
    atomic.write_text(json_path, json.dumps(doc, indent=1, default=str) + "\n")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
                             for k, v in row.items()})
    return json_path, csv_path


_SHARD_SUMMARY = re.compile(r"^summary\.shard-(\d+)-of-(\d+)\.json$")


def _record_from_row(row: Mapping) -> FileRecord:
    """A FileRecord from a summary row; keys this version does not know are ignored (other sid_ft versions)."""
    if not isinstance(row.get("input"), str) or not isinstance(row.get("status"), str):
        raise ValueError(f"a row without input/status: {row!r}")
    return FileRecord(**{k: v for k, v in row.items() if k in FileRecord.__dataclass_fields__})


def merge_shard_summaries(out_dir: str | os.PathLike) -> tuple[RunSummary, list[int]]:
    """Merge the ``summary.shard-K-of-N.json`` files of one sharded run into ``summary.json`` / ``.csv``.

    Every shard must come from the same N and the same model (else SidFtError naming the file);
    records are sorted by input; ``wall_s`` is the longest shard's (shards run side by side).
    Returns the merged summary and the shard numbers (1-based) that have no summary yet, which
    are also listed in the merged ``summary.json`` as ``missing_shards``.
    """
    out_dir = Path(out_dir)
    found: dict[int, tuple[Path, dict]] = {}
    count = None
    for path in sorted(out_dir.glob("summary.shard-*-of-*.json")):
        m = _SHARD_SUMMARY.match(path.name)
        if not m:
            continue
        k, n = int(m.group(1)), int(m.group(2))
        if count is not None and n != count:
            raise SidFtError(path, f"is a shard of {n}, but other summaries here are shards of {count}; "
                                   "move the summaries of the other run away first")
        count = n
        try:
            doc = json.loads(path.read_text())
            records = [_record_from_row(row) for row in doc["files"]]
            if not isinstance(doc.get("totals"), dict):
                raise ValueError("no totals")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SidFtError(path, f"not a readable shard summary ({exc})") from None
        found[k] = (path, doc | {"records": records})
    if not found:
        raise SidFtError(out_dir, "has no summary.shard-K-of-N.json files to merge")
    first = found[min(found)][1]
    for path, doc in found.values():
        if doc.get("checkpoint") != first.get("checkpoint"):
            raise SidFtError(path, f"was made with checkpoint {doc.get('checkpoint')}, the other shards with "
                                   f"{first.get('checkpoint')}")
    records = sorted((r for _, doc in found.values() for r in doc["records"]), key=lambda r: r.input)
    seen: set[str] = set()
    for r in records:
        if r.input in seen:
            raise SidFtError(r.input, "appears in more than one shard summary")
        seen.add(r.input)
    wall = max(float(doc.get("totals", {}).get("wall_s") or 0.0) for _, doc in found.values())
    missing = [k for k in range(1, count + 1) if k not in found]
    summary = RunSummary(records=records, wall_s=wall)
    info = {key: first.get(key) for key in ("checkpoint", "model", "camera", "g_add", "bits", "tile", "overlap",
                                            "metrics_note")}
    info.update(shard=None, merged_from=[found[k][0].name for k in sorted(found)], missing_shards=missing)
    summary.summary_json, summary.summary_csv = write_summary(out_dir, summary, info)
    return summary, missing


SSIM_NOTE = ("SSIM: scikit-image structural_similarity, 11x11 Gaussian window (sigma 1.5), population "
             "covariances, mean over RGB channels, on the float output vs the float ground truth: MATLAB ssim's "
             "window as in SID's evaluation, which scored 8-bit PNGs; PSNR: 10 log10(1/MSE) on [0, 1].")


def run_inference(opts: InferOptions, report: Report | None = None,
                  predictor: Predictor | None = None) -> RunSummary:
    """Run ``opts.checkpoint`` over the inputs; write PNGs, summary.json and summary.csv.

    ``predictor``: an already built :class:`Predictor` to use (and leave open) instead of
    building one from ``opts.checkpoint`` / ``device`` / ``tile`` (benchmarks, notebooks).

    Bad files are reported through ``report`` (one line: ``"<path>: <reason>"``), recorded
    as failed and skipped; the run goes on.  SidFtError for problems with the run itself
    (no inputs, no ratio, bad checkpoint, an output that would overwrite an input...).

    With a shard the summaries are named ``summary.shard-K-of-N.json`` / ``.csv`` so that
    shards sharing an out dir do not overwrite each other's.
    """
    from tqdm import tqdm

    t_start = time.perf_counter()
    has_inputs = bool(opts.inputs) or opts.test_list is not None
    if not has_inputs and not opts.export_savedmodel:
        raise SidFtError(None, "nothing to do: give RAW files, folders or globs, --test-list, or --export-savedmodel")
    if opts.bits not in (8, 16):
        raise SidFtError(None, f"--bits {opts.bits}: only 8 and 16 are supported")
    for name, value in (("--ratio", opts.ratio), ("--target-exposure", opts.target_exposure)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SidFtError(None, f"{name} {value!r} must be a positive number")
    if has_inputs and opts.ratio is None and opts.target_exposure is None and opts.test_list is None:
        raise SidFtError(None, "no amplification ratio: give --ratio R (e.g. 100 for a 1/100 s shot meant to look "
                               "like 1 s), or --target-exposure SECONDS (ratio = SECONDS / the input's exposure "
                               "time), or --test-list with the long exposures (SID's rule, min(long/short, 300))")
    if has_inputs and opts.out_dir is None:
        raise SidFtError(None, "--out-dir is required to write outputs")

    jobs: list[Job] = []
    failures: list[FileRecord] = []
    bar_holder: list = []

    def say(message: str) -> None:
        if report is not None:
            report(message)
        elif bar_holder:
            bar_holder[0].write(message, file=sys.stderr)
        else:
            _stderr(message)

    if has_inputs:
        jobs, problems = make_jobs(opts.inputs, opts.test_list, opts.ratio_cap)
        jobs = select_shard(jobs, opts.shard, key=lambda j: str(j.input))
        for err in select_shard(problems, opts.shard, key=lambda e: str(e.path)):
            failures.append(FileRecord(input=err.path or "", status="failed", reason=err.reason))
            say(str(err))
        out_dir = Path(opts.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise SidFtError(out_dir, "exists and is not a folder")
        _check_outputs(jobs, out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

    own = predictor is None
    if own:
        predictor = Predictor(opts.checkpoint, device=opts.device, tile=opts.tile, overlap=opts.overlap)
    if own and opts.tile is not None and predictor.tile != opts.tile:
        say(f"note: --tile {opts.tile} rounded up to {predictor.tile} (a multiple of {TILE_MULTIPLE})")
    summary = RunSummary(records=[], wall_s=0.0)
    try:
        if opts.export_savedmodel:
            summary.savedmodel = export_savedmodel(predictor, opts.export_savedmodel)
        if not has_inputs:
            summary.wall_s = time.perf_counter() - t_start
            return summary
        records = _run_jobs(predictor, jobs, opts, Path(opts.out_dir), say, bar_holder, tqdm)
    finally:
        if own:
            predictor.close()
    summary.records = failures + records
    summary.wall_s = time.perf_counter() - t_start
    name = "summary" if opts.shard is None else f"summary.shard-{opts.shard[0]}-of-{opts.shard[1]}"
    info = {"checkpoint": predictor.spec.prefix, "model": predictor.spec.description,
            "camera": predictor.spec.camera,
            "g_add": None if predictor.spec.g_add is None else predictor.spec.g_add.to_dict(),
            "shard": None if opts.shard is None else f"{opts.shard[0]}/{opts.shard[1]}",
            "bits": opts.bits, "tile": predictor.tile, "overlap": predictor.overlap if predictor.tile else None,
            "metrics_note": SSIM_NOTE}
    summary.summary_json, summary.summary_csv = write_summary(opts.out_dir, summary, info, name=name)
    return summary


def _run_jobs(predictor: Predictor, jobs: list[Job], opts: InferOptions, out_dir: Path, say: Report,
              bar_holder: list, tqdm) -> list[FileRecord]:
    """The pipelined loop: decode ahead in threads, run the network here, write in threads."""
    file_errors = _file_errors()
    records: list[FileRecord | None] = [None] * len(jobs)
    todo: list[int] = []
    for i, job in enumerate(jobs):
        paths = output_paths(job, out_dir)
        if opts.skip_existing and all(p.exists() for p in paths.values()):
            records[i] = FileRecord(input=str(job.input), status="skipped", reason="outputs exist (--skip-existing)",
                                    ground_truth=None if job.ground_truth is None else str(job.ground_truth),
                                    output=str(paths["out"]))
        else:
            todo.append(i)

    decode_pool = ThreadPoolExecutor(max(1, opts.decode_workers), thread_name_prefix="sid_ft-decode")
    write_pool = ThreadPoolExecutor(max(1, opts.write_workers), thread_name_prefix="sid_ft-write")
    write_slots = threading.BoundedSemaphore(2 * max(1, opts.write_workers))
    ahead = max(1, opts.decode_workers) + 1
    pending: deque[tuple[int, Future]] = deque()
    writes: list[tuple[int, Future]] = []
    started: dict[int, FileRecord] = {}
    bar = tqdm(total=len(jobs), unit="file", disable=not opts.progress, file=sys.stderr, dynamic_ncols=True,
               initial=len(jobs) - len(todo))
    bar_holder.append(bar)
    queue = deque(todo)

    def fail(i: int, exc: BaseException, record: FileRecord | None = None) -> None:
        rec = record or FileRecord(input=str(jobs[i].input), status="failed")
        rec.status, rec.reason = "failed", _reason(exc)
        if jobs[i].ground_truth is not None:
            rec.ground_truth = str(jobs[i].ground_truth)
        records[i] = rec
        where = exc.path if isinstance(exc, SidFtError) and exc.path else str(jobs[i].input)
        if isinstance(exc, file_errors):
            say(f"{where}: {rec.reason}")
        else:  # a bug, not a bad file: show where it happened, then carry on with the other files
            say(f"{where}: unexpected error, please report it: {rec.reason}\n"
                + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    def on_written(i: int, fut: Future) -> None:
        write_slots.release()
        bar.update(1)

    try:
        while queue and len(pending) < ahead:
            i = queue.popleft()
            pending.append((i, decode_pool.submit(_decode, jobs[i], opts, predictor.in_channels, predictor.scale)))
        while pending:
            i, fut = pending.popleft()
            if queue:
                j = queue.popleft()
                pending.append((j, decode_pool.submit(_decode, jobs[j], opts, predictor.in_channels,
                                                      predictor.scale)))
            try:
                d = fut.result()
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                fail(i, exc)
                bar.update(1)
                continue
            rec = FileRecord(input=str(jobs[i].input), status="running", ratio=d.ratio, exposure_s=d.exposure_s,
                             ground_truth=None if jobs[i].ground_truth is None else str(jobs[i].ground_truth),
                             decode_s=d.decode_s)
            t0 = time.perf_counter()
            try:
                rgb = predictor.predict(d.packed)
            except Exception as exc:  # noqa: BLE001
                from sid_ft._tf import tf1

                if isinstance(exc, tf1().errors.ResourceExhaustedError):
                    exc = SidFtError(jobs[i].input, "out of memory in the network; use --tile (e.g. --tile 512)")
                elif isinstance(exc, tf1().errors.OpError):
                    exc = SidFtError(jobs[i].input, f"the network failed: {_reason(exc)}")
                fail(i, exc, rec)
                bar.update(1)
                continue
            rec.network_s = time.perf_counter() - t0
            started[i] = rec
            paths = output_paths(jobs[i], out_dir)
            rec.output = str(paths["out"])
            d.packed = None  # free the input while the write is queued
            write_slots.acquire()
            wf = write_pool.submit(_write, d, rgb, paths, opts.bits, opts.metrics, rec)
            wf.add_done_callback(lambda f, i=i: on_written(i, f))
            writes.append((i, wf))
            del d, rgb
        for i, wf in writes:
            try:
                records[i] = wf.result()
            except Exception as exc:  # noqa: BLE001
                fail(i, exc, started.get(i))
        bar.set_postfix_str("done", refresh=True)
    finally:
        bar.close()
        bar_holder.clear()
        for _, fut in pending:
            fut.cancel()
        decode_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True)
    return [r for r in records if r is not None]
