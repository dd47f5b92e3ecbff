"""The pipelined job loop: decode ahead in threads, run the network in this thread, write in threads.

The network is the bottleneck and runs in the calling thread (one TensorFlow session);
``decode_workers`` threads read and pack the next files meanwhile (``decode_workers + 1``
files ahead), and ``write_workers`` threads score and write PNGs (at most
``2 * write_workers`` outputs queued, which bounds memory).  A file that fails is
recorded with its reason, reported in one line and skipped; the batch goes on.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sid_ft.data.sid import sid_left_out
from sid_ft.errors import SidFtError
from sid_ft.inference.decode import Decoded, decode_job
from sid_ft.inference.jobs import Job, Report, output_paths, stderr_report
from sid_ft.inference.options import InferOptions, job_orientation
from sid_ft.inference.outputs import write_outputs
from sid_ft.inference.predictor import Predictor
from sid_ft.inference.summary import FileRecord

__all__ = ["Messages", "run_jobs"]


class Messages:
    """Where one-line messages go: the caller's ``report``, else above the progress bar, else stderr."""

    def __init__(self, report: Report | None = None):
        self.report = report
        self.bar = None  # the tqdm bar while one is shown

    def __call__(self, message: str) -> None:
        if self.report is not None:
            self.report(message)
        elif self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            stderr_report(message)


def run_jobs(predictor: Predictor, jobs: list[Job], opts: InferOptions, out_dir: Path,
             say: Messages) -> list[FileRecord]:
    """Run every job; one record per job, in the order of ``jobs`` (skipped, failed or ok)."""
    return _JobLoop(predictor, jobs, opts, out_dir, say).run()


def _file_errors() -> tuple:
    """The exceptions that mean a bad file (reported in one line), not a bug (reported with a traceback)."""
    try:
        import rawpy

        return (SidFtError, OSError, rawpy.LibRawError)
    except ImportError:  # pragma: no cover
        return (SidFtError, OSError)


def _reason(exc: BaseException) -> str:
    """The one-line reason recorded for a failed file."""
    if isinstance(exc, SidFtError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _network_error(exc: Exception, path: Path) -> Exception:
    """A TensorFlow error of the network as a SidFtError for ``path`` (with advice when memory ran out)."""
    from sid_ft._tf import tf1

    if isinstance(exc, tf1().errors.ResourceExhaustedError):
        return SidFtError(path, "out of memory in the network; use --tile (e.g. --tile 512)")
    if isinstance(exc, tf1().errors.OpError):
        return SidFtError(path, f"the network failed: {_reason(exc)}")
    return exc


class _JobLoop:
    """The state of one :func:`run_jobs`: the pools, the queues and one record slot per job."""

    def __init__(self, predictor: Predictor, jobs: list[Job], opts: InferOptions, out_dir: Path, say: Messages):
        self.predictor, self.jobs, self.opts, self.out_dir, self.say = predictor, jobs, opts, out_dir, say
        self.file_errors = _file_errors()
        self.records: list[FileRecord | None] = [None] * len(jobs)
        self.queue: deque[int] = deque()  # jobs not yet submitted for decoding
        self.pending: deque[tuple[int, Future]] = deque()  # jobs being decoded, in order
        self.writes: list[tuple[int, Future]] = []
        self.started: dict[int, FileRecord] = {}  # records of jobs that went through the network

    def run(self) -> list[FileRecord]:
        self.queue.extend(self._skip_existing())
        self._open()
        try:
            self._decode_ahead()
            while self.pending:
                i, fut = self.pending.popleft()
                self._decode_ahead()
                self._run_one(i, fut)
            self._collect_writes()
            self.bar.set_postfix_str("done", refresh=True)
        finally:
            self._close()
        return [r for r in self.records if r is not None]

    def _skip_existing(self) -> list[int]:
        """Indices of the jobs to run; with --skip-existing, jobs whose outputs all exist are recorded as skipped."""
        todo = []
        for i, job in enumerate(self.jobs):
            paths = output_paths(job, self.out_dir, self.opts.compare)
            if self.opts.skip_existing and all(p.exists() for p in paths.values()):
                self.records[i] = FileRecord(
                    input=str(job.input), status="skipped", reason="outputs exist (--skip-existing)",
                    ground_truth=None if job.ground_truth is None else str(job.ground_truth),
                    output=str(paths["out"]))
            else:
                todo.append(i)
        return todo

    def _open(self) -> None:
        from tqdm import tqdm

        workers = max(1, self.opts.write_workers)
        self.decode_pool = ThreadPoolExecutor(max(1, self.opts.decode_workers), thread_name_prefix="sid_ft-decode")
        self.write_pool = ThreadPoolExecutor(workers, thread_name_prefix="sid_ft-write")
        self.write_slots = threading.BoundedSemaphore(2 * workers)
        self.ahead = max(1, self.opts.decode_workers) + 1
        self.bar = tqdm(total=len(self.jobs), unit="file", disable=not self.opts.progress, file=sys.stderr,
                        dynamic_ncols=True, initial=len(self.jobs) - len(self.queue))
        self.say.bar = self.bar

    def _decode_ahead(self) -> None:
        """Submit queued jobs for decoding until ``ahead`` are pending."""
        while self.queue and len(self.pending) < self.ahead:
            i = self.queue.popleft()
            fut = self.decode_pool.submit(decode_job, self.jobs[i], self.opts, self.predictor.in_channels,
                                          self.predictor.scale)
            self.pending.append((i, fut))

    def _run_one(self, i: int, fut: Future) -> None:
        """Wait for job ``i``'s decoding, run the network, queue the write (the images are freed on return)."""
        try:
            d = fut.result()
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            self._fail(i, exc)
            self.bar.update(1)
            return
        self._predict_and_write(i, d)

    def _predict_and_write(self, i: int, d: Decoded) -> None:
        """Run the network on ``d`` here, then queue its outputs for a write thread."""
        job = self.jobs[i]
        rec = FileRecord(input=str(job.input), status="running", ratio=d.ratio, exposure_s=d.exposure_s,
                         orientation=job_orientation(job, self.opts), flip=d.flip,
                         left_out=sid_left_out(job.input) if self.opts.protocol == "sid" else None,
                         ground_truth=None if job.ground_truth is None else str(job.ground_truth),
                         decode_s=d.decode_s)
        t0 = time.perf_counter()
        try:
            rgb = self.predictor.predict(d.packed)
        except Exception as exc:  # noqa: BLE001
            self._fail(i, _network_error(exc, job.input), rec)
            self.bar.update(1)
            return
        rec.network_s = time.perf_counter() - t0
        self.started[i] = rec
        paths = output_paths(job, self.out_dir, self.opts.compare)
        rec.output = str(paths["out"])
        d.packed = None  # free the input while the write is queued
        self._submit_write(i, d, rgb, paths, rec)

    def _submit_write(self, i: int, d: Decoded, rgb: np.ndarray, paths: dict[str, Path], rec: FileRecord) -> None:
        self.write_slots.acquire()
        wf = self.write_pool.submit(write_outputs, d, rgb, paths, self.opts, rec)
        wf.add_done_callback(self._on_written)
        self.writes.append((i, wf))

    def _on_written(self, fut: Future) -> None:
        self.write_slots.release()
        self.bar.update(1)

    def _collect_writes(self) -> None:
        for i, wf in self.writes:
            try:
                self.records[i] = wf.result()
            except Exception as exc:  # noqa: BLE001
                self._fail(i, exc, self.started.get(i))

    def _fail(self, i: int, exc: BaseException, record: FileRecord | None = None) -> None:
        """Record job ``i`` as failed and say why: one line for a bad file, a traceback for a bug."""
        job = self.jobs[i]
        rec = record or FileRecord(input=str(job.input), status="failed")
        rec.status, rec.reason = "failed", _reason(exc)
        if job.ground_truth is not None:
            rec.ground_truth = str(job.ground_truth)
        self.records[i] = rec
        where = exc.path if isinstance(exc, SidFtError) and exc.path else str(job.input)
        if isinstance(exc, self.file_errors):
            self.say(f"{where}: {rec.reason}")
        else:  # a bug, not a bad file: show where it happened, then carry on with the other files
            self.say(f"{where}: unexpected error, please report it: {rec.reason}\n"
                     + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())

    def _close(self) -> None:
        self.bar.close()
        self.say.bar = None
        for _, fut in self.pending:
            fut.cancel()
        self.decode_pool.shutdown(wait=True, cancel_futures=True)
        self.write_pool.shutdown(wait=True)
