#!/usr/bin/env python3
"""Fine-tune a pretrained SID model on your own short/long RAW pairs (only the g_add layers by default).

A thin wrapper around :mod:`sid_ft.cli.train` (installed as ``sid-ft-train``); see ``--help``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sid_ft.cli.train import build_parser, main  # noqa: E402,F401 - build_parser: tests read the help from here

if __name__ == "__main__":
    sys.exit(main())
