"""Which pairs a run holds out to score while it trains (``--val-pairs N`` / ``--val-list FILE``); no TensorFlow.

Pairs are held out by whole scenes: every short exposure of a scene shares its long exposure, so
a pair of a held-out scene left in training would let the model see the very ground truth it is
scored on.  A scene is a scene id (SID's ``<scene>_<burst>_<seconds>s`` names) within the folder
of its long exposure.  ``--val-pairs N`` takes scenes in an order drawn with ``--seed`` until at
least N pairs are held out, always leaving one scene to train on; ``--val-list FILE`` names the
held-out pairs, and training pairs of the same scenes are left out of training.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Sequence

from sid_ft.data.pairs import Pair, read_pair_list
from sid_ft.errors import SidFtError
from sid_ft.training.options import TrainOptions

__all__ = ["choose_held_out", "scene_key", "split_validation"]


def scene_key(pair: Pair) -> tuple[str, str]:
    """(folder of the long exposure, scene id): the pairs of one scene share it."""
    return os.path.dirname(os.path.abspath(pair.long_path)), pair.scene_id


def _scenes(pairs: Sequence[Pair]) -> dict[tuple[str, str], list[Pair]]:
    """The pairs of each scene, scenes sorted (the order is then independent of how the pairs were listed)."""
    scenes: dict[tuple[str, str], list[Pair]] = {}
    for pair in pairs:
        scenes.setdefault(scene_key(pair), []).append(pair)
    return dict(sorted(scenes.items()))


def choose_held_out(pairs: Sequence[Pair], n: int, seed: int) -> list[Pair] | None:
    """At least ``n`` pairs of whole scenes drawn with ``seed`` (fewer when all but one scene would not reach
    ``n``: one scene always stays for training); None when there are fewer than 2 scenes."""
    scenes = _scenes(pairs)
    if len(scenes) < 2:
        return None
    order = list(scenes)
    random.Random(seed).shuffle(order)
    held: list[Pair] = []
    for key in order[:-1]:
        if len(held) >= n:
            break
        held += scenes[key]
    return held


def _describe(pairs: Sequence[Pair]) -> str:
    ids = sorted({p.scene_id for p in pairs})
    shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
    return f"{len(pairs)} pair(s) of {len(ids)} scene(s) ({shown})"


def _held_out_by_count(opts: TrainOptions, pairs: list[Pair], report: Callable[[str], None]
                       ) -> tuple[list[Pair], list[Pair]]:
    """``--val-pairs N``: (training pairs, held-out pairs); no held-out pairs when fewer than 2 scenes."""
    held = choose_held_out(pairs, opts.val_pairs, opts.seed)
    if held is None:
        what = (f"{len(pairs)} real pair(s) of {len(_scenes(pairs))} scene(s)" if pairs
                else "no real pairs (synthetic pairs only; --val-list FILE scores real pairs)")
        report(f"--val-pairs {opts.val_pairs}: too few pairs to hold one out, {what}: a held-out scene needs "
               "another one to train on. Training on all of them, without validation"
               + (" or early stopping" if opts.early_stop else ""))
        return pairs, []
    if len(held) < opts.val_pairs:
        report(f"--val-pairs {opts.val_pairs}: only {len(held)} can be held out (whole scenes, and one scene "
               "stays for training)")
    chosen = {id(p) for p in held}
    return [p for p in pairs if id(p) not in chosen], held


def _held_out_by_list(opts: TrainOptions, pairs: list[Pair], report: Callable[[str], None]
                      ) -> tuple[list[Pair], list[Pair]]:
    """``--val-list FILE``: its pairs are held out, with every training pair of the same scenes."""
    problems: list[SidFtError] = []
    held = read_pair_list(opts.val_list, split=None, skipped=problems)
    for problem in problems:
        report(f"skipped (--val-list): {problem}")
    scenes = {scene_key(p) for p in held}
    shorts = {os.path.realpath(p.short_path) for p in held}
    training = [p for p in pairs if scene_key(p) not in scenes and os.path.realpath(p.short_path) not in shorts]
    if pairs and not training and not opts.clean_dir:
        raise SidFtError(opts.val_list, "every training pair is in a scene of the validation list: nothing is "
                                        "left to train on")
    if len(training) < len(pairs):
        report(f"--val-list: {len(pairs) - len(training)} training pair(s) of the same scenes are left out of "
               "training")
    return training, held


def split_validation(opts: TrainOptions, pairs: list[Pair], report: Callable[[str], None]
                     ) -> tuple[list[Pair], list[Pair]]:
    """(training pairs, held-out pairs) as ``--val-pairs`` / ``--val-list`` ask; all pairs train without them."""
    if opts.val_list is not None:
        training, held = _held_out_by_list(opts, pairs, report)
    elif opts.val_pairs is not None:
        training, held = _held_out_by_count(opts, pairs, report)
    else:
        return pairs, []
    if held:
        report(f"validation: {_describe(held)} held out, scored on whole images every {opts.val_every} steps"
               + (f"; training stops after {opts.early_stop} scorings without a better PSNR" if opts.early_stop
                  else ""))
    return training, held
