"""The best checkpoint of a train dir: ``TRAIN_DIR/best/``, and ``best.json``, the record that names it.

A run that scores held-out pairs while it trains (``--val-pairs``, :mod:`sid_ft.training.validation`)
keeps, beside the latest checkpoints in ``TRAIN_DIR``, the one with the highest held-out PSNR::

    TRAIN_DIR/best/model.ckpt-<step>.index, .data-00000-of-00001   a full checkpoint (as TRAIN_DIR's)
    TRAIN_DIR/best/sid_ft.json                                     which graph it belongs to
    TRAIN_DIR/best/best.json                                       {"checkpoint": "model.ckpt-<step>", "step",
                                                                    "val_psnr", "val_ssim", "pairs", ...}

``best.json`` also carries what a resumed run needs to go on as it was: ``evaluations_since_best``
(the steps of later scorings without a better PSNR) and, once ``--early-stop``'s first plateau moved the
rate's decay, ``lr_decay_moved_at`` (the step of that scoring: the rate is decayed for every step after it).

``best.json`` is the commit point: it is replaced atomically only once the checkpoint it names is
complete, and older checkpoints in ``best/`` are deleted only after that
(:func:`sid_ft.nets.checkpoint_save.save_best_checkpoint`), so a kill at any moment leaves a
``best.json`` naming a complete checkpoint, or none at all.  :func:`best_prefix` is what
:func:`sid_ft.nets.checkpoint.resolve_checkpoint` returns for a train dir that has one.
No TensorFlow here.
"""
from __future__ import annotations

import json
import os

from sid_ft.errors import SidFtError
from sid_ft.io import atomic

__all__ = ["BEST_DIR", "BEST_JSON", "best_folder", "best_prefix", "read_best", "write_best_record"]

BEST_DIR = "best"
"""The folder, inside a train dir, that holds its best checkpoint."""

BEST_JSON = "best.json"
"""The record, in :data:`BEST_DIR`, naming the best checkpoint and how it scored."""


def best_folder(path: str | os.PathLike) -> str | None:
    """The folder whose ``best.json`` speaks for ``path``: ``path`` itself (a ``best/`` folder) or
    ``path/best`` (a train dir); None when neither has one."""
    for folder in (os.fspath(path), os.path.join(path, BEST_DIR)):
        if os.path.isfile(os.path.join(folder, BEST_JSON)):
            return folder
    return None


def read_best(folder: str | os.PathLike) -> dict | None:
    """The record in ``folder/best.json``; None when there is none; SidFtError when it is unreadable."""
    path = os.path.join(folder, BEST_JSON)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SidFtError(path, f"unreadable record of the best checkpoint ({exc}); pass the checkpoint to use "
                               "as a prefix, or ask for the train dir's latest") from None
    if not isinstance(record, dict) or not isinstance(record.get("checkpoint"), str):
        raise SidFtError(path, 'not a record of the best checkpoint (no "checkpoint" name)')
    moved = record.get("lr_decay_moved_at")
    if moved is not None and (not isinstance(moved, int) or isinstance(moved, bool) or moved < 0):
        raise SidFtError(path, f'"lr_decay_moved_at" is {moved!r}, not a step number')
    return record


def best_prefix(path: str | os.PathLike) -> str | None:
    """The prefix of the best checkpoint of train dir (or ``best/`` folder) ``path``; None when it has no
    ``best.json``; SidFtError when ``best.json`` names a checkpoint that is not there."""
    folder = best_folder(path)
    if folder is None:
        return None
    record = read_best(folder)
    prefix = os.path.join(folder, os.path.basename(record["checkpoint"]))
    if not os.path.isfile(prefix + ".index"):
        raise SidFtError(os.path.join(folder, BEST_JSON),
                         f"names the best checkpoint {record['checkpoint']!r}, but {prefix}.index is not there; "
                         "pass the checkpoint to use as a prefix, or ask for the train dir's latest")
    return prefix


def write_best_record(folder: str | os.PathLike, record: dict) -> None:
    """Replace ``folder/best.json`` atomically (temp file, fsync, ``os.replace``)."""
    atomic.write_text(os.path.join(folder, BEST_JSON), json.dumps(record, indent=2), fsync=True)
