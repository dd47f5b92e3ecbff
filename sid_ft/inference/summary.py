"""What a batch run records: one :class:`FileRecord` per input, a :class:`RunSummary`, summary.json / .csv."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from sid_ft.io import atomic
from sid_ft.io.atomic import atomic_path

__all__ = ["FileRecord", "CSV_FIELDS", "RunSummary", "write_summary", "SSIM_NOTE", "SSIM_NOTE_8BIT",
           "SID_PROTOCOL_NOTE"]

SSIM_NOTE = ("SSIM: scikit-image structural_similarity, 11x11 Gaussian window (sigma 1.5), population "
             "covariances, mean over RGB channels, on the float output vs the float ground truth: MATLAB ssim's "
             "window as in SID's evaluation, which scored 8-bit PNGs; PSNR: 10 log10(1/MSE) on [0, 1].")
SSIM_NOTE_8BIT = ("SSIM: scikit-image structural_similarity, 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, "
                  "population covariances, mean over R, G, B, on the 8-bit output vs the 8-bit ground truth (L = 255); "
                  "PSNR: 10 log10(255^2/MSE) on the 8-bit images. MATLAB's default ssim treats an RGB image as a "
                  "3-D volume instead; see the README for the measured difference.")
SID_PROTOCOL_NOTE = ("SID's evaluation (test_Sony.py / test_Fuji.py): test scenes (ids 1xxxx), burst 00 of each, every "
                     "short exposure; ratio min(long/short, 300); 8-bit PNGs (clip, round half up) scored as above; "
                     "scenes 10034, 10045 and 10172 (misaligned ground truth) scored but left out of the means, as "
                     "SID's README asks.")


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
    orientation: str | None = None  # 'sensor' or 'camera': how the PNGs are turned
    flip: int | None = None  # LibRaw flip applied to the PNGs (raw.sizes.flip with 'camera', else 0)
    left_out: str | None = None  # why this file's scores are not in the means (SID's misaligned scenes), or None
    compare: str | None = None  # the contact sheet (--compare), or None


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
        """Mean of ``name`` over the files written whose scores count (not ``left_out``); None when none has one."""
        values = [getattr(r, name) for r in self.records
                  if r.status == "ok" and not r.left_out and getattr(r, name) is not None]
        values = [v for v in values if math.isfinite(v)]
        return float(np.mean(values)) if values else None

    def totals(self) -> dict:
        done = self.count("ok")
        return {"ok": done, "failed": self.failed, "skipped": self.count("skipped"),
                "mean_psnr": self.mean("psnr"), "mean_ssim": self.mean("ssim"),
                "scored_in_means": sum(r.status == "ok" and not r.left_out and r.psnr is not None
                                       for r in self.records),
                "left_out_of_means": [r.input for r in self.records if r.status == "ok" and r.left_out],
                "wall_s": round(self.wall_s, 3),
                "files_per_s": round(done / self.wall_s, 4) if self.wall_s > 0 and done else None}

    def line(self) -> str:
        t = self.totals()
        text = f"{t['ok']} written, {t['failed']} failed, {t['skipped']} skipped in {t['wall_s']:.1f} s"
        if t["mean_psnr"] is not None:
            text += f"; mean PSNR {t['mean_psnr']:.2f} dB, mean SSIM {t['mean_ssim']:.4f}"
            if t["left_out_of_means"]:
                text += f" over {t['scored_in_means']} files ({len(t['left_out_of_means'])} left out)"
        return text


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
