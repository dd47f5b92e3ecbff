"""SID's file names: ``<scene id>_<burst index>_<exposure seconds>s.<ext>``, e.g. ``00001_00_0.1s.ARW``.

Reading a RAW file's exposure time (:func:`sid_ft.io.raw.exposure_time`) looks
at the name first, so the parser lives here in ``io``; the rest of SID's
conventions (splits, the ratio rule, the test selection, writing exposure
times into names) are in :mod:`sid_ft.data.sid`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_SID_NAME = re.compile(r"^(?P<scene>\d+)_(?P<burst>\d+)_(?P<seconds>\d+(?:\.\d*)?|\.\d+)s"
                       r"(?:\.[A-Za-z][A-Za-z0-9]*)?$")


def sid_name_parts(path: str | os.PathLike) -> tuple[str, str, float] | None:
    """(scene id, burst index, exposure seconds) from a SID file name, or None.

    SID names are ``<scene>_<burst>_<seconds>s.<ext>``: ``00001_00_0.1s.ARW`` ->
    ('00001', '00', 0.1).  Any folder and extension; digits counts not enforced.
    """
    m = _SID_NAME.match(Path(os.fspath(path)).name)
    if m is None:
        return None
    seconds = float(m.group("seconds"))
    if not seconds > 0:
        return None
    return m.group("scene"), m.group("burst"), seconds


def exposure_from_name(path: str | os.PathLike) -> float | None:
    """Exposure time in seconds from a SID file name (``00001_00_0.1s.ARW`` -> 0.1), else None."""
    parts = sid_name_parts(path)
    return None if parts is None else parts[2]
