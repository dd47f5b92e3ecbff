"""List a SID / sid_ft checkpoint's tensors and say which model it is and whether it fits the network.

``scripts/inspect_checkpoint.py`` and ``sid-ft-inspect`` call :func:`main`.  ``--verify`` also reads
every tensor's bytes and checks them against the index (sizes, CRC32C).  Exit status: 0 when the
checkpoint fits a sid_ft network (and, with --verify, can be read), 1 otherwise or on error (one
line on stderr).
"""
from __future__ import annotations

import argparse
import json
import sys

from sid_ft.errors import SidFtError

DESCRIPTION = ("List a SID / sid_ft checkpoint's tensors and say which model it is and whether it fits "
               "the network.")

EPILOG = (
    "Tensors are grouped as base (the released SID network: g_conv*, Variable..Variable_3), "
    "g_add (sid_ft's refinement head), optimizer (Adam slots, beta1_power/beta2_power) and "
    "other (global_step, anything else).\n\n"
    "--verify reads every tensor and checks its bytes against the index (size, CRC32C) and each data "
    "file's length; it names the file, the first damaged tensor, the expected and found bytes. A folder "
    "holding a released SID model (no sid_ft.json) is also compared with the released sizes: a short data "
    "file is reported as not downloaded completely.\n\n"
    "exit status: 0 when the checkpoint fits a sid_ft network (with --verify: and can be read), "
    "1 otherwise or on error.\n\n"
    "examples:\n"
    "  # the released SID Sony model (a folder with its 'checkpoint' file)\n"
    "  python scripts/inspect_checkpoint.py checkpoints/Sony\n"
    "  # one checkpoint by its prefix\n"
    "  python scripts/inspect_checkpoint.py checkpoints/Sony/model.ckpt\n"
    "  # was the download complete, is every tensor intact?\n"
    "  python scripts/inspect_checkpoint.py checkpoints/Sony --verify\n"
    "  # a fine-tuning run's latest checkpoint, as JSON for scripts\n"
    "  python scripts/inspect_checkpoint.py checkpoints/mycam --json"
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of scripts/inspect_checkpoint.py (``sid-ft-inspect``); imports no TensorFlow."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="checkpoint folder (with a 'checkpoint' state file or one *.index), "
                             "prefix such as .../model.ckpt, or one of its files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    parser.add_argument("--verify", action="store_true",
                        help="read every tensor and check its size and CRC32C against the index, and each data "
                             "file's length (a released SID folder: also against the released sizes)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Inspect the checkpoint named in ``argv``; print text (or JSON) to stdout.

    Returns 0 when it fits a sid_ft network (with ``--verify``: and every tensor is intact),
    1 when it does not or cannot be read (a SidFtError, printed as one line on stderr).
    """
    args = build_parser().parse_args(argv)
    from sid_ft.nets.inspect import format_inspection, inspect_checkpoint  # TensorFlow loads here

    try:
        info = inspect_checkpoint(args.checkpoint, verify=args.verify)
    except SidFtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2) if args.json else format_inspection(info))
    return 0 if info["fits"] else 1
