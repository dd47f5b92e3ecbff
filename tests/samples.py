"""Where tests find real files: tests/data/ (in the repository), and ../shared as an extra when it is there.

* ``tests/data/raw/``: three real camera files (CC0, see its README.md and LICENSE-CC0-1.0.txt);
* ``tests/data/sid_lists/``: the six pair lists that ship with SID's dataset (MIT, LICENSE-SID.md);
* ``tests/data/sid_released_checkpoints.json``: every tensor name and shape of the released SID checkpoints.

A clean clone runs every test from these; ``../shared/samples/raw`` may hold more camera files,
which :func:`raw_sample_names` adds to the tests that take any sample.
"""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
RAW_DIR = DATA / "raw"
SID_LISTS = DATA / "sid_lists"
RELEASED_JSON = DATA / "sid_released_checkpoints.json"
SHARED_RAW = Path(__file__).resolve().parents[2] / "shared" / "samples" / "raw"


def raw_sample(name: str) -> Path:
    """The camera file ``name``: the repository's copy, else the one in ../shared/samples/raw."""
    bundled = RAW_DIR / name
    return bundled if bundled.is_file() else SHARED_RAW / name


def raw_sample_names(known: "dict | list") -> list[str]:
    """The names of ``known`` that are available: every bundled one, and those only ../shared has when it is there."""
    return sorted(n for n in known if (RAW_DIR / n).is_file() or (SHARED_RAW / n).is_file())
