"""The batch runner: run a released or fine-tuned SID model over RAW files, one photo to a cluster shard.

The method is SID's test script, step by step::

    packed = pack_raw(raw)                       # (h, w, 4) float32, black-subtracted, white-normalised
    x      = minimum(packed * ratio, 1)          # amplification, clamped like SID
    rgb    = clip(network(x), 0, 1)              # (2h, 2w, 3) sRGB
    write  <stem>_out.png                        # 16-bit by default

and, when the long exposure is known (``--test-list``), SID's two companions:
``<stem>_gt.png`` (LibRaw rendering of the long exposure, :func:`sid_ft.io.raw.render_reference`)
and ``<stem>_scale.png`` (the short exposure's own LibRaw rendering multiplied by
``mean(gt) / mean(rendering)``, i.e. brightness-matched to the ground truth, as
SID's ``test_Sony.py`` writes it).

:func:`run_inference` decodes the next files in background threads while the
current one runs through the network, writes PNGs (and computes PSNR/SSIM) in
background threads, reports bad files with one line each and carries on, and
records everything in ``summary.json`` / ``summary.csv``.  The pieces it uses
live in their own modules:

* :mod:`sid_ft.inference.predictor`: the restored network (:class:`Predictor`), tiling, SavedModel export;
* :mod:`sid_ft.inference.jobs`: inputs, SID pair lists, ratios, output names;
* :mod:`sid_ft.inference.shards`: SLURM / Kubernetes shards and merging their summaries;
* :mod:`sid_ft.inference.summary`: per-file records and summary.json / summary.csv.

Their public names are also importable from here, as they were when this was one module.

About SSIM in the summaries: :func:`sid_ft.eval.metrics.ssim` with ``gaussian=True``
(scikit-image, 11x11 Gaussian window of sigma 1.5, population covariances,
mean over the three RGB channels).  That is the window of MATLAB's ``ssim``,
which SID's published figures used; MATLAB's default is applied to the image as
given (SID evaluated its 8-bit PNGs), whereas we score the float output and
ground truth before quantisation, so figures agree with SID's to within the
8-bit rounding, not bit for bit.  PSNR is ``10 log10(1 / MSE)`` on [0, 1].
"""
from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from sid_ft.errors import SidFtError
from sid_ft.inference.jobs import (OUTPUT_SUFFIXES, Job, Report, check_outputs, collect_inputs,  # noqa: F401
                         make_jobs, output_paths, resolve_ratio, stderr_report)
from sid_ft.eval.metrics import (PROTOCOLS, SID_MISALIGNED_SCENES, psnr, score_8bit, sid_left_out, ssim,
                            to_uint8_sid)
from sid_ft.inference.predictor import (DEFAULT_OVERLAP, TILE_MULTIPLE, Predictor, amplify, blend_windows,  # noqa: F401
                              export_savedmodel, round_tile, tile_spans)
from sid_ft.inference.shards import (merge_shard_summaries, parse_shard, select_shard, shard_from_env,  # noqa: F401
                           shard_summary_name)
from sid_ft.inference.summary import (SID_PROTOCOL_NOTE, SSIM_NOTE, SSIM_NOTE_8BIT, FileRecord, RunSummary,  # noqa: F401
                            write_summary)

__all__ = [
    "InferOptions",
    "run_inference",
    # re-exported from the modules they live in, for code written against the single-module sid_ft.inference.run
    "DEFAULT_OVERLAP", "TILE_MULTIPLE", "OUTPUT_SUFFIXES", "parse_shard", "shard_from_env", "select_shard",
    "merge_shard_summaries", "collect_inputs", "Job", "make_jobs", "output_paths", "resolve_ratio", "amplify",
    "round_tile", "tile_spans", "blend_windows", "Predictor", "export_savedmodel", "FileRecord", "RunSummary",
    "write_summary",
]

ORIENTATIONS = ("sensor", "camera")


@dataclass
class InferOptions:
    """Everything scripts/test.py passes to :func:`run_inference` (see its --help for the meaning)."""

    checkpoint: str
    inputs: list[str] = field(default_factory=list)
    test_list: str | None = None
    out_dir: str | None = None
    bits: int | None = None  # PNG bit depth; None: 16, or 8 with protocol 'sid' (SID's PNGs)
    ratio: float | None = None
    target_exposure: float | None = None
    ratio_cap: float = 300.0
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    shard: tuple[int, int] | None = None
    skip_existing: bool = False
    device: str | None = None
    precision: str = "fp32"  # 'auto' | 'fp32' | 'bf16' | 'fp16' (sid_ft.nets.precision)
    export_savedmodel: str | None = None
    decode_workers: int = 2
    write_workers: int = 2
    metrics: bool = True
    progress: bool = True
    orientation: str | None = None  # 'sensor' | 'camera'; None: 'camera' for given files, 'sensor' for SID pairs
    protocol: str = "all"  # 'all': every pair, float scores; 'sid': SID's selection, 8-bit scores, exclusions
    compare: bool = False  # also write <stem>_compare.jpg: short x ratio | output | ground truth


@dataclass
class _Decoded:
    job: Job
    packed: np.ndarray  # amplified, (h, w, C)
    ratio: float
    exposure_s: float | None
    gt: np.ndarray | None
    scale_img: np.ndarray | None
    decode_s: float
    flip: int = 0  # LibRaw flip applied to every image written for this file (0: sensor orientation)
    brightened: np.ndarray | None = None  # the input rendered by LibRaw, brightened by the ratio (--compare)


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
    from sid_ft.io import raw as sid_raw

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
    brightened = None
    if opts.compare:
        h, w = packed.shape[:2]
        brightened = sid_raw.render_reference(job.input, brightness=ratio)
        if brightened.shape != (scale * h, scale * w, 3):
            raise SidFtError(job.input, f"LibRaw renders it to {brightened.shape[1]}x{brightened.shape[0]} pixels, "
                                        f"the output is {scale * w}x{scale * h}: no contact sheet can be made")
    flip = image.flip if job_orientation(job, opts) == "camera" else 0
    return _Decoded(job, x, ratio, image.exposure_s, gt, scale_img, time.perf_counter() - t0, flip, brightened)


def job_orientation(job: Job, opts: InferOptions) -> str:
    """``opts.orientation``, else the default: 'sensor' for SID pairs (a ground truth is known), 'camera' otherwise.

    SID's pairs are scored in sensor orientation, as SID trained and tested on them; a photographer's
    own file comes out the way the camera held it (LibRaw's flip, :func:`sid_ft.io.raw.orient`).
    """
    if opts.orientation is not None:
        return opts.orientation
    return "sensor" if job.ground_truth is not None else "camera"


def _write(d: _Decoded, rgb: np.ndarray, paths: dict[str, Path], opts: InferOptions,
           record: FileRecord) -> FileRecord:
    from sid_ft.io import png as pngio
    from sid_ft.io.raw import orient

    t0 = time.perf_counter()
    sid = opts.protocol == "sid"
    if sid and opts.bits == 8:  # the PNGs are exactly the images that are scored, as in SID's evaluation
        quantise: Callable[[np.ndarray], np.ndarray] = to_uint8_sid
    else:  # the image is not used after this: quantise in its own memory
        def quantise(image: np.ndarray) -> np.ndarray:
            return pngio.to_uint(image, opts.bits, in_place=True)
    if d.gt is not None and opts.metrics:  # on the network's output, before it is quantised in place
        record.psnr, record.ssim = _score(rgb, d.gt, sid)
    if opts.compare:
        _write_sheet(d, rgb, paths["compare"], opts, record)
        record.compare = str(paths["compare"])

    def save(kind: str, image: np.ndarray) -> None:
        pngio.write_png(paths[kind], orient(quantise(image), d.flip), in_place=True)

    save("out", rgb)
    if d.gt is not None:
        save("gt", d.gt)
        if d.scale_img is not None:
            save("scale", d.scale_img)
    record.write_s = time.perf_counter() - t0
    record.seconds = (record.decode_s or 0) + (record.network_s or 0) + record.write_s
    record.status = "ok"
    return record


def _score(output: np.ndarray, reference: np.ndarray, sid: bool) -> tuple[float, float]:
    """(PSNR, SSIM): on the float images, or with SID's protocol on their 8-bit versions."""
    if sid:
        return score_8bit(to_uint8_sid(output), to_uint8_sid(reference))
    return psnr(output, reference), ssim(output, reference, gaussian=True)


def _write_sheet(d: _Decoded, rgb: np.ndarray, path: Path, opts: InferOptions, record: FileRecord) -> None:
    """``<stem>_compare.jpg``: the input brightened by the ratio | the output | the ground truth, turned like the PNGs."""
    from sid_ft.eval.sheets import Panel, label, write_sheet
    from sid_ft.io.raw import orient

    bright_scores = (None, None)
    if d.gt is not None and opts.metrics:
        bright_scores = _score(d.brightened, d.gt, opts.protocol == "sid")
    row = [Panel(orient(d.brightened, d.flip), label(f"short x{d.ratio:g} (LibRaw)", *bright_scores)),
           Panel(orient(rgb, d.flip), label("output", record.psnr, record.ssim))]
    if d.gt is not None:
        row.append(Panel(orient(d.gt, d.flip), label("ground truth")))
    write_sheet(path, [row])


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
    if opts.protocol not in PROTOCOLS:
        raise SidFtError(None, f"--protocol {opts.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if opts.protocol == "sid" and (opts.test_list is None or opts.inputs):
        raise SidFtError(None, "--protocol sid scores SID's test pairs: give --test-list with a SID list file or a "
                               "SID-layout folder (short/, long/), and no other inputs")
    if opts.bits is None:
        opts = replace(opts, bits=8 if opts.protocol == "sid" else 16)
    if opts.bits not in (8, 16):
        raise SidFtError(None, f"--bits {opts.bits}: only 8 and 16 are supported")
    if opts.orientation not in (None, *ORIENTATIONS):
        raise SidFtError(None, f"--orientation {opts.orientation!r}: expected one of {', '.join(ORIENTATIONS)}")
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
            stderr_report(message)

    if has_inputs:
        jobs, problems = make_jobs(opts.inputs, opts.test_list, opts.ratio_cap, protocol=opts.protocol)
        jobs = select_shard(jobs, opts.shard, key=lambda j: str(j.input))
        for err in select_shard(problems, opts.shard, key=lambda e: str(e.path)):
            failures.append(FileRecord(input=err.path or "", status="failed", reason=err.reason))
            say(str(err))
        out_dir = Path(opts.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise SidFtError(out_dir, "exists and is not a folder")
        check_outputs(jobs, out_dir, opts.compare)
        out_dir.mkdir(parents=True, exist_ok=True)

    own = predictor is None
    if own:
        predictor = Predictor(opts.checkpoint, device=opts.device, tile=opts.tile, overlap=opts.overlap,
                              precision=opts.precision)
    if own and opts.tile is not None and predictor.tile != opts.tile:
        say(f"note: --tile {opts.tile} rounded up to {predictor.tile} (a multiple of {TILE_MULTIPLE})")
    if predictor.precision.requested != "fp32":
        say(f"precision {predictor.precision.name}: {predictor.precision.reason}")
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
    name = shard_summary_name(opts.shard)
    info = {"checkpoint": predictor.spec.prefix, "model": predictor.spec.description,
            "camera": predictor.spec.camera,
            "g_add": None if predictor.spec.g_add is None else predictor.spec.g_add.to_dict(),
            "shard": None if opts.shard is None else f"{opts.shard[0]}/{opts.shard[1]}",
            "orientation": opts.orientation or "camera for files given, sensor for SID pairs",
            "precision": predictor.precision.to_dict(),
            "bits": opts.bits, "tile": predictor.tile, "overlap": predictor.overlap if predictor.tile else None,
            "metrics_note": SSIM_NOTE_8BIT if opts.protocol == "sid" else SSIM_NOTE, "protocol": opts.protocol}
    if opts.protocol == "sid":
        info["protocol_note"] = SID_PROTOCOL_NOTE
        info["left_out_scenes"] = list(SID_MISALIGNED_SCENES)
    summary.summary_json, summary.summary_csv = write_summary(opts.out_dir, summary, info, name=name)
    return summary


def _run_jobs(predictor: Predictor, jobs: list[Job], opts: InferOptions, out_dir: Path, say: Report,
              bar_holder: list, tqdm) -> list[FileRecord]:
    """The pipelined loop: decode ahead in threads, run the network here, write in threads."""
    file_errors = _file_errors()
    records: list[FileRecord | None] = [None] * len(jobs)
    todo: list[int] = []
    for i, job in enumerate(jobs):
        paths = output_paths(job, out_dir, opts.compare)
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
                             orientation=job_orientation(jobs[i], opts), flip=d.flip,
                             left_out=sid_left_out(jobs[i].input) if opts.protocol == "sid" else None,
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
            paths = output_paths(jobs[i], out_dir, opts.compare)
            rec.output = str(paths["out"])
            d.packed = None  # free the input while the write is queued
            write_slots.acquire()
            wf = write_pool.submit(_write, d, rgb, paths, opts, rec)
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
