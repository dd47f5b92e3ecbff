"""SID's conventions: file names, scene ids and splits, the ratio rule, the test selection, the misaligned scenes.

From SID's dataset, ``train_Sony.py`` / ``test_Sony.py`` and README:

* file names ``<scene>_<burst>_<seconds>s.<ext>`` (parsed by
  :func:`sid_ft.io.sid_names.sid_name_parts`, which ``io`` needs to read a file's
  exposure time; :func:`format_exposure` writes the seconds as SID does);
* :data:`SPLITS` / :func:`split_of`: the first digit of a scene id is the split,
  0 train, 1 test, 2 val;
* :func:`exposure_ratio`: the amplification ratio ``min(long / short, 300)``;
* :func:`sid_test_selection`: the test scenes, and of each only the first image of its
  sequence, burst ``00``, with every short exposure of it;
* :data:`SID_MISALIGNED_SCENES` / :func:`sid_left_out`: scenes whose ground truth is
  misaligned, which SID's README asks to leave out of quantitative results (they are
  still scored and written).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from sid_ft.errors import SidFtError
from sid_ft.io.sid_names import sid_name_parts

SPLITS = {"0": "train", "1": "test", "2": "val"}
"""First digit of a SID scene id -> split."""

SID_MISALIGNED_SCENES: tuple[str, ...] = ("10034", "10045", "10172")
"""Scene ids whose ground truth SID's README (Aug 2018) calls misaligned: "please remove those images for
quantitative results"."""


def split_of(path_or_scene_id: str | os.PathLike) -> str:
    """'train' | 'test' | 'val' from a SID scene id or file name (first digit 0, 1, 2).

    Raises :class:`SidFtError` when the name has no scene id or its first digit is not 0, 1 or 2.
    """
    text = os.fspath(path_or_scene_id)
    name = Path(text).name
    parts = sid_name_parts(name)
    scene = parts[0] if parts else name
    if not scene.isdigit():
        raise SidFtError(text, "no SID scene id (expected '<scene>_<burst>_<seconds>s.<ext>' or a numeric scene id)")
    split = SPLITS.get(scene[0])
    if split is None:
        raise SidFtError(text, f"scene id {scene} starts with {scene[0]}; SID splits use 0 (train), "
                               "1 (test) and 2 (val)")
    return split


def exposure_ratio(short_s: float | None, long_s: float | None, cap: float = 300.0) -> float:
    """SID's amplification ratio ``min(long / short, cap)``.

    Raises :class:`SidFtError` when an exposure is unknown (None), not positive,
    or the cap is not positive.
    """
    for name, value in (("short", short_s), ("long", long_s), ("cap", cap)):
        if value is None or not (isinstance(value, (int, float, np.floating, np.integer))
                                 and math.isfinite(float(value)) and value > 0):
            raise SidFtError(None, f"{name} exposure {value!r} is not a positive number of seconds"
                             if name != "cap" else f"ratio cap {value!r} is not a positive number")
    return min(float(long_s) / float(short_s), float(cap))


def format_exposure(seconds: float, rel_tol: float = 0.005) -> str:
    """Exposure time as SID writes it in file names, without the 's': 10 -> '10', 0.1 -> '0.1'.

    The shortest positional decimal within ``rel_tol`` (0.5 %) of the value:
    1/25 -> '0.04', 1/30 -> '0.0333', 1/60 -> '0.0167'.  Never scientific notation.
    """
    if not (seconds > 0 and math.isfinite(seconds)):
        raise SidFtError(None, f"exposure time must be positive, got {seconds}")
    for digits in range(1, 16):
        rounded = float(f"{seconds:.{digits}g}")
        if abs(rounded - seconds) <= rel_tol * seconds:
            break
    return np.format_float_positional(rounded, trim="-")


def sid_burst_and_scene(path: str | os.PathLike) -> tuple[str, int] | None:
    """(scene id, burst index) from a SID file name (``10003_00_0.1s.ARW`` -> ('10003', 0)), else None."""
    parts = sid_name_parts(path)
    return None if parts is None else (parts[0], int(parts[1]))


def sid_test_selection(pairs: Sequence) -> list:
    """The pairs SID's test scripts score: test scenes (id starting with 1), burst 00 of each, every exposure.

    SID's ``test_Sony.py`` takes the scene ids of the long exposures ``1*`` and, for each, the short
    files ``<scene>_00*``: the first image of each test sequence at each of its exposure times
    (0.1 s, 0.04 s, 0.033 s on the Sony set).  ``pairs`` are :class:`sid_ft.data.pairs.Pair`; their order is kept.
    """
    chosen = []
    for pair in pairs:
        parsed = sid_burst_and_scene(pair.short_path)
        if parsed is not None and parsed[0].startswith("1") and parsed[1] == 0:
            chosen.append(pair)
    return chosen


def sid_left_out(path: str | os.PathLike) -> str | None:
    """Why SID's protocol leaves this short exposure out of the means (a misaligned scene), or None."""
    parsed = sid_burst_and_scene(path)
    if parsed is not None and parsed[0] in SID_MISALIGNED_SCENES:
        return f"scene {parsed[0]}: misaligned ground truth, left out of SID's means (SID README)"
    return None
