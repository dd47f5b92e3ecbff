#!/usr/bin/env python
"""Calibrate your camera's noise from dark frames (and 2 pairs or flat fields for the gain K).

A thin wrapper around :mod:`sid_ft.cli.calibrate` (installed as ``sid-ft-calibrate``); see ``--help``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sid_ft.cli.calibrate import build_parser, main  # noqa: E402,F401 - build_parser: tests read the help from here

if __name__ == "__main__":
    sys.exit(main())
