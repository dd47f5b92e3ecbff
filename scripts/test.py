#!/usr/bin/env python3
"""Run a released or fine-tuned SID model on RAW files (one photo, a folder, or a cluster shard).

A thin wrapper around :mod:`sid_ft.cli.test` (installed as ``sid-ft-test``); see ``--help``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sid_ft.cli.test import build_parser, main  # noqa: E402,F401 - build_parser: tests read the help from here

if __name__ == "__main__":
    sys.exit(main())
