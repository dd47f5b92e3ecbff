#!/usr/bin/env python
"""List a SID / sid_ft checkpoint's tensors and say which model it is and whether it fits the network.

A thin wrapper around :mod:`sid_ft.cli.inspect` (installed as ``sid-ft-inspect``); see ``--help``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sid_ft.cli.inspect import build_parser, main  # noqa: E402,F401 - build_parser: tests read the help from here

if __name__ == "__main__":
    sys.exit(main())
