"""The batch runner: run a released or fine-tuned SID model over RAW files, one photo to a cluster shard.

The method is SID's test script, step by step::

    packed = pack_raw(raw)                       # (h, w, 4) float32, black-subtracted, white-normalised
    x      = minimum(packed * ratio, 1)          # amplification, clamped like SID
    rgb    = clip(network(x), 0, 1)              # (2h, 2w, 3) sRGB
    write  <stem>_out.png                        # 16-bit by default

and, when the long exposure is known (``--test-list``), SID's two companions:
``<stem>_gt.png`` (LibRaw rendering of the long exposure, :func:`sid_ft.io.render.render_reference`)
and ``<stem>_scale.png`` (the short exposure's own LibRaw rendering multiplied by
``mean(gt) / mean(rendering)``, i.e. brightness-matched to the ground truth, as
SID's ``test_Sony.py`` writes it).

:func:`run_inference` checks the options, plans the jobs, restores the network once,
runs the jobs through the pipelined loop (bad files are reported with one line each
and skipped) and records everything in ``summary.json`` / ``summary.csv``.  Each step
lives in its own module:

* :mod:`sid_ft.inference.options`: :class:`InferOptions` and their checks (no TensorFlow);
* :mod:`sid_ft.inference.jobs`: inputs, SID pair lists, ratios, output names;
* :mod:`sid_ft.inference.shards`: SLURM / Kubernetes shards and merging their summaries;
* :mod:`sid_ft.inference.predictor`: the restored network (``Predictor``), tiling, SavedModel export;
* :mod:`sid_ft.inference.decode` / :mod:`sid_ft.inference.outputs`: one file read, one file's outputs written;
* :mod:`sid_ft.inference.pipeline`: decoding ahead and writing behind the network, in threads;
* :mod:`sid_ft.inference.summary`: per-file records and summary.json / summary.csv.

About SSIM in the summaries: :func:`sid_ft.eval.metrics.ssim` with ``gaussian=True``
(scikit-image, 11x11 Gaussian window of sigma 1.5, population covariances,
mean over the three RGB channels).  That is the window of MATLAB's ``ssim``,
which SID's published figures used; MATLAB's default is applied to the image as
given (SID evaluated its 8-bit PNGs), whereas we score the float output and
ground truth before quantisation, so figures agree with SID's to within the
8-bit rounding, not bit for bit.  PSNR is ``10 log10(1 / MSE)`` on [0, 1].
"""
from __future__ import annotations

import time
from pathlib import Path

from sid_ft.errors import SidFtError
from sid_ft.data.sid import SID_MISALIGNED_SCENES
from sid_ft.inference.jobs import Job, Report, check_outputs, make_jobs
from sid_ft.inference.options import InferOptions
from sid_ft.inference.pipeline import Messages, run_jobs
from sid_ft.inference.predictor import TILE_MULTIPLE, Predictor, export_savedmodel
from sid_ft.inference.shards import select_shard, shard_summary_name
from sid_ft.inference.summary import SID_PROTOCOL_NOTE, SSIM_NOTE, SSIM_NOTE_8BIT, FileRecord, RunSummary, write_summary

__all__ = ["run_inference"]


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
    t_start = time.perf_counter()
    opts = opts.checked()
    say = Messages(report)
    jobs, failures = _plan_jobs(opts, say) if opts.has_inputs else ([], [])
    own = predictor is None
    if own:
        predictor = _open_predictor(opts, say)
    if predictor.precision.requested != "fp32":
        say(f"precision {predictor.precision.name}: {predictor.precision.reason}")
    summary = RunSummary(records=[], wall_s=0.0)
    try:
        if opts.export_savedmodel:
            summary.savedmodel = export_savedmodel(predictor, opts.export_savedmodel)
        if not opts.has_inputs:
            summary.wall_s = time.perf_counter() - t_start
            return summary
        records = run_jobs(predictor, jobs, opts, Path(opts.out_dir), say)
    finally:
        if own:
            predictor.close()
    summary.records = failures + records
    summary.wall_s = time.perf_counter() - t_start
    summary.summary_json, summary.summary_csv = write_summary(opts.out_dir, summary, _run_info(opts, predictor),
                                                              name=shard_summary_name(opts.shard))
    return summary


def _plan_jobs(opts: InferOptions, say: Report) -> tuple[list[Job], list[FileRecord]]:
    """This shard's jobs, and a failed record for each of its inputs that cannot become a job; makes the out dir.

    SidFtError when the out dir is not a folder or an output would overwrite an input.
    """
    jobs, problems = make_jobs(opts.inputs, opts.test_list, opts.ratio_cap, protocol=opts.protocol)
    jobs = select_shard(jobs, opts.shard, key=lambda j: str(j.input))
    failures = []
    for err in select_shard(problems, opts.shard, key=lambda e: str(e.path)):
        failures.append(FileRecord(input=err.path or "", status="failed", reason=err.reason))
        say(str(err))
    out_dir = Path(opts.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SidFtError(out_dir, "exists and is not a folder")
    check_outputs(jobs, out_dir, opts.compare)
    out_dir.mkdir(parents=True, exist_ok=True)
    return jobs, failures


def _open_predictor(opts: InferOptions, say: Report) -> Predictor:
    """The network of ``opts.checkpoint``, restored; says when --tile was rounded up."""
    predictor = Predictor(opts.checkpoint, device=opts.device, tile=opts.tile, overlap=opts.overlap,
                          precision=opts.precision)
    if opts.tile is not None and predictor.tile != opts.tile:
        say(f"note: --tile {opts.tile} rounded up to {predictor.tile} (a multiple of {TILE_MULTIPLE})")
    return predictor


def _run_info(opts: InferOptions, predictor: Predictor) -> dict:
    """What summary.json records about the run besides the files: model, shard, orientation, precision, notes."""
    spec = predictor.spec
    info = {"checkpoint": spec.prefix, "model": spec.description, "camera": spec.camera,
            "g_add": None if spec.g_add is None else spec.g_add.to_dict(),
            "shard": None if opts.shard is None else f"{opts.shard[0]}/{opts.shard[1]}",
            "orientation": opts.orientation or "camera for files given, sensor for SID pairs",
            "precision": predictor.precision.to_dict(),
            "bits": opts.bits, "tile": predictor.tile, "overlap": predictor.overlap if predictor.tile else None,
            "metrics_note": SSIM_NOTE_8BIT if opts.protocol == "sid" else SSIM_NOTE, "protocol": opts.protocol}
    if opts.protocol == "sid":
        info["protocol_note"] = SID_PROTOCOL_NOTE
        info["left_out_scenes"] = list(SID_MISALIGNED_SCENES)
    return info
