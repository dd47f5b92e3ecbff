"""What a batch run works on: input files, folders and globs, SID pair lists, ratios and output names."""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sid_ft.errors import SidFtError

__all__ = ["OUTPUT_SUFFIXES", "collect_inputs", "Job", "make_jobs", "output_paths", "check_outputs",
           "resolve_ratio", "Report", "stderr_report"]

OUTPUT_SUFFIXES = {"out": "_out.png", "gt": "_gt.png", "scale": "_scale.png", "compare": "_compare.jpg"}

Report = Callable[[str], None]


def stderr_report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def collect_inputs(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of files.

    * a file is taken as given, whatever its extension (a bad one fails later, with its name);
    * a folder contributes its files with a RAW extension (:data:`sid_ft.io.raw.RAW_EXTENSIONS`,
      any case), not recursively;
    * a pattern with ``*``, ``?`` or ``[`` is expanded (``**`` recurses) and keeps files
      with a RAW extension.

    SidFtError for a folder or pattern that yields no RAW file.  A named file that
    does not exist is kept: it is reported as failed like any other bad file.
    """
    from sid_ft.io.raw import RAW_EXTENSIONS

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
              ratio_cap: float = 300.0, report: Report = stderr_report,
              protocol: str = "all") -> tuple[list[Job], list[SidFtError]]:
    """Jobs for positional inputs and/or SID pairs (sorted by input path), and the pairs' problems.

    ``test_list`` is a SID pair list file or a SID-layout folder (``short/``, ``long/``).
    ``protocol='sid'`` keeps only the pairs SID's test scripts score
    (:func:`sid_ft.data.sid.sid_test_selection`: test scenes, burst 00, every exposure).

    Problems with the pairs (missing files, bad names) are returned, each naming its file or line,
    so that the run can count them as failures and go on with the good pairs.
    """
    jobs: dict[str, Job] = {}
    problems: list[SidFtError] = []
    if inputs:
        for p in collect_inputs(inputs):
            jobs.setdefault(os.path.abspath(p), Job(input=p))
    if test_list is not None:
        for pair in _pairs(test_list, protocol, problems):
            try:
                ratio = pair.ratio(ratio_cap)
            except SidFtError as err:
                problems.append(SidFtError(pair.short_path, err.reason))
                continue
            jobs[os.path.abspath(pair.short_path)] = Job(
                input=Path(pair.short_path), ground_truth=Path(pair.long_path), pair_ratio=ratio)
    return sorted(jobs.values(), key=lambda j: str(j.input)), problems


def _pairs(test_list: str | os.PathLike, protocol: str, problems: list[SidFtError]) -> list:
    """The pairs of a list file or SID-layout folder, for ``protocol`` ('all' or 'sid'); problems appended."""
    from sid_ft.data.pairs import find_pairs, read_pair_list
    from sid_ft.data.sid import sid_test_selection

    if protocol == "all":
        if os.path.isdir(test_list):
            return find_pairs(test_list, skipped=problems)
        return read_pair_list(test_list, skipped=problems)
    # SID's selection first, so that problems with pairs SID would not score are not reported
    if os.path.isdir(test_list):
        pairs = sid_test_selection(find_pairs(test_list, skipped=problems))
    else:
        pairs = sid_test_selection(read_pair_list(test_list, skipped=problems, check_exists=False))
    if not pairs:
        raise SidFtError(test_list, "holds no pair that SID's test protocol scores (a test scene, id 1xxxx, "
                                    "burst 00: <1xxxx>_00_<seconds>s.<ext>)")
    kept = []
    for pair in pairs:
        absent = [p for p in (pair.short_path, pair.long_path) if not os.path.isfile(p)]
        if absent:
            problems.append(SidFtError(pair.short_path, "file not found: " + ", ".join(absent)))
        else:
            kept.append(pair)
    return kept


def output_paths(job: Job, out_dir: str | os.PathLike, compare: bool = False) -> dict[str, Path]:
    """``{'out': DIR/<stem>_out.png}``, plus ``'gt'`` and ``'scale'`` when the job has a ground truth and
    ``'compare'`` (``<stem>_compare.jpg``, the contact sheet) with ``compare``."""
    kinds = ["out"] + (["gt", "scale"] if job.ground_truth is not None else []) + (["compare"] if compare else [])
    return {kind: Path(out_dir) / (job.stem + OUTPUT_SUFFIXES[kind]) for kind in kinds}


def check_outputs(jobs: Sequence[Job], out_dir: Path, compare: bool = False) -> None:
    """SidFtError when an output would overwrite an input, or two inputs would write the same file."""
    inputs = {}
    for job in jobs:
        for p in (job.input, job.ground_truth):
            if p is not None:
                inputs[os.path.realpath(p)] = p
    owners: dict[str, Path] = {}
    clashes = []
    for job in jobs:
        for target in output_paths(job, out_dir, compare).values():
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
