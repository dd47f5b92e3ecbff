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

from sid_ft import atomic
from sid_ft.atomic import atomic_path

__all__ = ["FileRecord", "CSV_FIELDS", "RunSummary", "write_summary", "SSIM_NOTE"]

SSIM_NOTE = ("SSIM: scikit-image structural_similarity, 11x11 Gaussian window (sigma 1.5), population "
             "covariances, mean over RGB channels, on the float output vs the float ground truth: MATLAB ssim's "
             "window as in SID's evaluation, which scored 8-bit PNGs; PSNR: 10 log10(1/MSE) on [0, 1].")


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
