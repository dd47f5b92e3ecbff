"""Before a training run starts: every missing piece named at once, with where to get it.

A first run with no arguments lacks two things, the pairs and the pretrained model;
:func:`check_training_inputs` says both in one :class:`SidFtError` instead of stopping at the
first, and for the released SID weights says which files ``checkpoints/Sony/`` must hold
and that ``checkpoints/README.md`` tells how to get them (by hand, once: sid_ft downloads
nothing).  It only looks (folders, files, a checkpoint's ``.index``); the run itself still
checks everything in depth.
"""
from __future__ import annotations

import os
from pathlib import Path

from sid_ft.errors import SidFtError

__all__ = ["RELEASED_FILES", "missing_training_inputs", "check_training_inputs"]

RELEASED_FILES = ("checkpoint", "model.ckpt.index", "model.ckpt.data-00000-of-00001", "model.ckpt.meta")
"""The four files of a released SID model folder (checkpoints/Sony/, checkpoints/Fuji/), as SID publishes them."""


def _has_checkpoint(path: str | os.PathLike) -> bool:
    from sid_ft.nets.checkpoint import resolve_checkpoint

    try:
        resolve_checkpoint(path, latest=True)  # a train dir resumes from its latest, not its best
    except SidFtError:
        return False
    return True


def missing_training_inputs(opts) -> list[str]:
    """What ``opts`` (a :class:`sid_ft.training.options.TrainOptions`) lacks to start, one sentence each;
    [] when nothing.

    * pairs: neither ``dataset_dir`` nor ``train_list`` nor ``clean_dir`` (synthetic pairs), or one that does not exist;
    * a model to start from: no checkpoint in ``train_dir`` to resume, no ``from_scratch``, and
      no checkpoint at ``pretrained``.
    """
    missing = []
    if opts.dataset_dir is None and opts.train_list is None and opts.clean_dir is None:
        missing.append("no pairs given: --dataset-dir DIR (a folder in SID's layout, short/ and long/, files named "
                       "<scene>_<burst>_<seconds>s.<ext>) or --train-list FILE (a SID pair list); with none yet, "
                       "scripts/make_pairs.py makes them from your own clean exposures")
    if opts.dataset_dir is not None and not Path(opts.dataset_dir).is_dir():
        missing.append(f"--dataset-dir {opts.dataset_dir}: folder not found")
    if opts.train_list is not None and not Path(opts.train_list).is_file():
        missing.append(f"--train-list {opts.train_list}: file not found")
    if getattr(opts, "val_list", None) is not None and not Path(opts.val_list).is_file():
        missing.append(f"--val-list {opts.val_list}: file not found")
    if not opts.from_scratch and not _has_checkpoint(opts.train_dir) and not _has_checkpoint(opts.pretrained):
        where = Path(opts.pretrained)
        present = [f for f in RELEASED_FILES if (where / f).is_file()] if where.is_dir() else []
        text = (f"no pretrained model: --pretrained {opts.pretrained} holds no checkpoint"
                + (f" (it has {', '.join(present)} only)" if present else "")
                + f". The released SID Sony model is four files, {', '.join(RELEASED_FILES)}, to put in "
                  "checkpoints/Sony/ (the Fuji model in checkpoints/Fuji/); checkpoints/README.md tells where to get "
                  "them - by hand, once: sid_ft downloads nothing. Or resume from a --train-dir that holds a "
                  "checkpoint, or train a base with --from-scratch --trainable-scopes all, or try --demo")
        missing.append(text)
    return missing


def check_training_inputs(opts) -> None:
    """SidFtError naming every missing piece (:func:`missing_training_inputs`) in one message; nothing when complete."""
    missing = missing_training_inputs(opts)
    if len(missing) == 1:
        raise SidFtError(None, missing[0])
    if missing:
        raise SidFtError(None, f"{len(missing)} things are missing: "
                               + " ".join(f"({i}) {m};" for i, m in enumerate(missing, 1))[:-1])
