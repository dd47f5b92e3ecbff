"""RAW mosaics with the metadata a noise calibration compares: camera, ISO, exposure, CFA, size, levels.

Calibration reads dark frames, flat fields and short/long pairs of one camera;
:class:`RawFrame` holds one such file as its visible mosaic (uint16 DN, black
level included) and :class:`FrameMeta` what must agree between the files
(:func:`mismatch`).  Bayer sensors only: X-Trans files are refused with a
message (their 6x6 phase would need every per-position statistic per 36
positions; not built).

rawpy facts used here (rawpy 0.28 / LibRaw 0.22): ``raw.other.iso_speed`` is
the ISO (0 when the file has none: then ``iso`` is None); ``raw.other.shutter_speed``
the exposure (via :func:`sid_ft.io.raw.exposure_time`); the camera make and
model come from the TIFF header (:func:`sid_ft.io.raw.camera_name`; "" for
non-TIFF containers).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from sid_ft.errors import SidFtError
from sid_ft.io.cfa import sensor_tile, tile_to_layout
from sid_ft.io.raw import camera_name, exposure_time, open_raw


@dataclass(frozen=True)
class FrameMeta:
    """What a file says about how it was taken.

    Attributes:
        camera: "Make Model" ("" when the container does not say).
        iso: ISO speed, None when the file has none.
        exposure_s: exposure time in seconds, None when unknown.
        cfa: Bayer layout of the visible mosaic, 'RGGB' | 'BGGR' | 'GRBG' | 'GBRG'.
        size: (H, W) of the visible mosaic, pixels.
        black_level: metadata black level per 2x2 CFA position ((TL, TR), (BL, BR)), DN.
        white_level: metadata white (saturation) level, DN.
    """

    camera: str
    iso: float | None
    exposure_s: float | None
    cfa: str
    size: tuple[int, int]
    black_level: tuple[tuple[float, float], tuple[float, float]]
    white_level: float

    def black_tile(self) -> np.ndarray:
        """The metadata black level as a (2, 2) float64 array per CFA position."""
        return np.asarray(self.black_level, dtype=np.float64)


@dataclass
class RawFrame:
    """One RAW file: ``mosaic`` (H, W) uint16 DN, black level included (``raw.raw_image_visible``)."""

    path: str
    mosaic: np.ndarray
    meta: FrameMeta

    def signal(self) -> np.ndarray:
        """(H, W) float32 mosaic minus the metadata black level per position, DN (may be negative)."""
        h, w = self.mosaic.shape
        black = np.tile(self.meta.black_tile(), (h // 2, w // 2)).astype(np.float32)
        return self.mosaic.astype(np.float32) - black


def _bayer_layout(raw, path: str | os.PathLike) -> tuple[str, np.ndarray]:
    """(layout, (2, 2) colour indices); SidFtError for X-Trans and every non-Bayer sensor."""
    kind, tile = sensor_tile(raw, path)
    if kind == "fuji":
        raise SidFtError(path, "is an X-Trans sensor (6x6 colour filter array); noise calibration "
                               "takes 2x2 Bayer sensors only")
    return tile_to_layout(tile), tile


def _iso(raw) -> float | None:
    """``raw.other.iso_speed``, None when the file has none (LibRaw reports 0)."""
    iso = float(raw.other.iso_speed)
    return iso if math.isfinite(iso) and iso > 0 else None


def read_frame(path: str | os.PathLike) -> RawFrame:
    """Read one RAW file's visible mosaic and metadata; SidFtError naming ``path`` for every problem.

    The mosaic is cropped to even height and width so that the 2x2 CFA tile repeats
    over it (the dropped row/column is noted nowhere: it does not change any statistic).
    """
    with open_raw(path) as raw:
        layout, tile = _bayer_layout(raw, path)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
        blc = np.asarray(raw.black_level_per_channel, dtype=np.float64)
        meta_iso = _iso(raw)
        white = float(raw.white_level)
        seconds = exposure_time(path, raw)
    h, w = (mosaic.shape[0] // 2) * 2, (mosaic.shape[1] // 2) * 2
    if h < 2 or w < 2:
        raise SidFtError(path, f"visible image {mosaic.shape} is smaller than one 2x2 tile")
    black = blc[tile]
    meta = FrameMeta(camera=camera_name(path), iso=meta_iso, exposure_s=seconds, cfa=layout, size=(h, w),
                     black_level=((float(black[0, 0]), float(black[0, 1])),
                                  (float(black[1, 0]), float(black[1, 1]))),
                     white_level=white)
    return RawFrame(path=os.fspath(path), mosaic=mosaic[:h, :w], meta=meta)


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def mismatch(meta: FrameMeta, first: FrameMeta, first_path: str, what: str) -> str | None:
    """Why a file cannot be pooled with the first one (size, CFA, camera, ISO), or None when it can.

    ``what`` names the first file in the reason ('first dark frame', 'short exposure of its pair').
    """
    if meta.size != first.size:
        return f"is {_size_text(meta.size)}, the {what} ({first_path}) is {_size_text(first.size)}"
    if meta.cfa != first.cfa:
        return f"has CFA {meta.cfa}, the {what} ({first_path}) has {first.cfa}"
    if meta.camera != first.camera:
        return f"is from camera {meta.camera or '(unnamed)'!r}, the {what} ({first_path}) " \
               f"from {first.camera or '(unnamed)'!r}"
    if meta.iso != first.iso:
        return f"is ISO {iso_text(meta.iso)}, the {what} ({first_path}) is ISO {iso_text(first.iso)}"
    return None


def iso_text(iso: float | None) -> str:
    """'3200', '12.5' or 'unknown'."""
    if iso is None:
        return "unknown"
    return f"{iso:g}"


def read_matching_frames(paths, what: str, skipped: list[SidFtError]) -> list[RawFrame]:
    """Read ``paths``; a file that cannot be read or does not match the first readable one is appended to
    ``skipped`` (SidFtError naming it and the reason) and left out."""
    frames: list[RawFrame] = []
    for path in paths:
        try:
            frame = read_frame(path)
        except SidFtError as err:
            skipped.append(err)
            continue
        if frames:
            reason = mismatch(frame.meta, frames[0].meta, frames[0].path, f"first {what}")
            if reason is not None:
                skipped.append(SidFtError(path, reason))
                continue
        frames.append(frame)
    return frames
