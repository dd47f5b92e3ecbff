#!/usr/bin/env python
"""List a SID / sid_ft checkpoint's tensors and say which model it is and whether it fits the network."""
from __future__ import annotations

import argparse
import json
import os
import sys

try:
    import sid_ft  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sid_ft.errors import SidFtError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Tensors are grouped as base (the released SID network: g_conv*, Variable..Variable_3), "
            "g_add (sid_ft's refinement head), optimizer (Adam slots, beta1_power/beta2_power) and "
            "other (global_step, anything else).\n\n"
            "exit status: 0 when the checkpoint fits a sid_ft network, 1 otherwise or on error.\n\n"
            "examples:\n"
            "  # the released SID Sony model (a folder with its 'checkpoint' file)\n"
            "  python scripts/inspect_checkpoint.py checkpoints/Sony\n"
            "  # one checkpoint by its prefix\n"
            "  python scripts/inspect_checkpoint.py checkpoints/Sony/model.ckpt\n"
            "  # a fine-tuning run's latest checkpoint, as JSON for scripts\n"
            "  python scripts/inspect_checkpoint.py checkpoints/mycam --json"
        ),
    )
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="checkpoint folder (with a 'checkpoint' state file or one *.index), "
                             "prefix such as .../model.ckpt, or one of its files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sid_ft.nets.checkpoint import format_inspection, inspect_checkpoint

    try:
        info = inspect_checkpoint(args.checkpoint)
    except SidFtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_inspection(info))
    return 0 if info["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
