#!/usr/bin/env python
"""Make SID-layout synthetic low-light pairs from clean long exposures of your camera.

A thin wrapper around :mod:`sid_ft.cli.make_pairs` (installed as ``sid-ft-make-pairs``); see ``--help``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sid_ft.cli.make_pairs import build_parser, main  # noqa: E402,F401 - build_parser: tests read the help from here

if __name__ == "__main__":
    sys.exit(main())
