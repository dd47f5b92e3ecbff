"""A run's training pairs: collected, checked against the cache budget, decoded, and the camera they need.

Pairs come from ``--dataset-dir`` (SID's layout) and/or ``--train-list`` (SID's list
format); problems with single files are reported and skipped.  Synthetic pairs come from
``--clean-dir`` with ``--dark-frames`` and/or ``--noise-profile``
(:func:`sid_ft.data.synthetic_data.prepare_synthetic_data`), with or without real pairs.  Before anything is
decoded, :mod:`sid_ft.training.cachesize` checks that the caches (of the pairs, the clean photos and
the dark frames) fit on disk (else the run stops, or trains without the feature cache).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sid_ft.data.pairs import Pair, find_pairs, read_pair_list
from sid_ft.data.sampling import CachedPair, CacheWriteError, DecodeCache
from sid_ft.data.synthetic_data import SyntheticData, prepare_synthetic_data
from sid_ft.errors import SidFtError
from sid_ft.nets.unet import CAMERAS
from sid_ft.runtime import preempt
from sid_ft.training import cachesize
from sid_ft.training.holdout import split_validation
from sid_ft.training.modes import TrainingMode
from sid_ft.training.options import TrainOptions
from sid_ft.training.start import ModelStart

__all__ = ["TrainingPairs", "collect_pairs", "load_training_pairs", "resolve_camera"]


@dataclass
class TrainingPairs:
    """The decoded pairs a run trains on."""

    loaded: list[CachedPair]  # packed short exposure, ground truth and ratio per usable pair (may be none
    # with synthetic pairs)
    skipped: list[str]  # one line per pair left out, and why
    camera: str  # 'sony' or 'fuji': the network variant the files need
    synthetic: SyntheticData | None = None  # the clean photos and noise of synthetic patches (--clean-dir)
    validation: list[CachedPair] = field(default_factory=list)  # the held-out pairs scored while training


def collect_pairs(opts: TrainOptions, report: Callable[[str], None]) -> tuple[list[Pair], list[str]]:
    """Pairs from ``--dataset-dir`` and/or ``--train-list``; problems are reported and skipped."""
    if not opts.dataset_dir and not opts.train_list:
        raise SidFtError(None, "give --dataset-dir DIR (SID layout: short/, long/) and/or --train-list FILE")
    split = None if opts.split == "all" else opts.split
    problems: list[SidFtError] = []
    pairs: list[Pair] = []
    if opts.dataset_dir:
        pairs += find_pairs(opts.dataset_dir, split=split, skipped=problems)
    if opts.train_list:
        pairs += read_pair_list(opts.train_list, split=split, skipped=problems)
    for p in problems:
        report(f"skipped: {p}")
    return pairs, [str(p) for p in problems]


def resolve_camera(loaded: Sequence[CachedPair], forced: str | None, model_camera: str | None,
                   model_path: str | None) -> str:
    """The network variant for these files: from their packing, checked against ``--camera`` and the model."""
    by_channels = {spec.in_channels: name for name, spec in CAMERAS.items()}
    kinds = {by_channels.get(int(cp.short.shape[-1])) for cp in loaded}
    if len(kinds) > 1:
        raise SidFtError(None, "the training files mix Bayer (sony) and X-Trans (fuji) sensors; train one at a time")
    data_camera = kinds.pop()
    if forced and forced != data_camera:
        raise SidFtError(loaded[0].pair.short_path, f"--camera {forced} but the file packs as {data_camera} "
                                                    f"({loaded[0].short.shape[-1]} channels)")
    if model_camera and model_camera != data_camera:
        raise SidFtError(model_path, f"a {model_camera} checkpoint cannot fine-tune on {data_camera} files "
                                     f"(e.g. {loaded[0].pair.short_path}); use the {data_camera} model")
    return data_camera


def _synthetic_camera(synthetic: SyntheticData, forced: str | None, model_camera: str | None,
                      model_path: str | None) -> str:
    """'sony' (synthetic pairs are Bayer), checked against ``--camera`` and the model."""
    first = synthetic.photos[0].path
    if forced and forced != "sony":
        raise SidFtError(first, f"--camera {forced} but clean photos are Bayer (sony, 4 channels)")
    if model_camera and model_camera != "sony":
        raise SidFtError(model_path, f"a {model_camera} checkpoint cannot fine-tune on Bayer clean photos "
                                     f"(e.g. {first}); use the Sony model")
    return "sony"


def _synthetic_data(opts: TrainOptions, cache_dir: Path, report: Callable[[str], None]) -> SyntheticData:
    """The clean photos and noise of ``--clean-dir`` (K measured on the pairs of ``--dataset-dir`` if any)."""
    return prepare_synthetic_data(opts.clean_dir, DecodeCache(cache_dir), report, dark_frames=opts.dark_frames,
                                  noise_profile=opts.noise_profile, gain=opts.gain, pairs_dir=opts.dataset_dir,
                                  ratios=opts.ratios, share=opts.synthetic_share if opts.has_pairs else 1.0)


def _decode_held_out(cache: DecodeCache, held: Sequence[Pair], ratio_cap: float,
                     report: Callable[[str], None]) -> list[CachedPair]:
    """The held-out pairs decoded; one that cannot be read is reported and left out (SidFtError if all are)."""
    good: list[CachedPair] = []
    for pair in held:
        preempt.check()
        try:
            good.append(cache.load_pair(pair, ratio_cap))
        except CacheWriteError:
            raise
        except SidFtError as err:
            report(f"skipped (held-out pair): {err}")
    if held and not good:
        raise SidFtError(None, f"none of the {len(held)} held-out pair(s) can be read; see the errors above")
    return good


def _fitted_mode(opts: TrainOptions, mode: TrainingMode, cache_dir: Path, pairs: Sequence[Pair],
                 report: Callable[[str], None]) -> TrainingMode:
    """Before anything is decoded or written: do the caches of ``pairs`` and of the synthetic pairs' clean
    photos and dark frames fit?  ``mode``, or the same without the feature cache; SidFtError when not even
    the decoded images fit."""
    estimate = cachesize.estimate_caches(pairs, cache_dir, mode.caches_features, opts.feature_dtype, opts.ratio_cap,
                                         clean_dir=opts.clean_dir, dark_frames=opts.dark_frames)
    if not cachesize.check_caches(estimate, cache_dir, opts.cache_max_gb, report):
        return mode.without_feature_cache()
    return mode


def _synthetic_only(opts: TrainOptions, mode: TrainingMode, cache_dir: Path, start: ModelStart,
                    report: Callable[[str], None]) -> tuple[TrainingPairs, TrainingMode]:
    """Synthetic pairs alone (``--clean-dir`` without real pairs); held-out real pairs only from ``--val-list``."""
    _, held = split_validation(opts, [], report)
    mode = _fitted_mode(opts, mode, cache_dir, held, report)
    synthetic = _synthetic_data(opts, cache_dir, report)
    camera = _synthetic_camera(synthetic, opts.camera, start.camera, start.checkpoint)
    validation = _decode_held_out(DecodeCache(cache_dir), held, opts.ratio_cap, report)
    if validation:
        resolve_camera(validation, camera, start.camera, start.checkpoint)
    return TrainingPairs([], [], camera, synthetic, validation), mode


def load_training_pairs(opts: TrainOptions, mode: TrainingMode, cache_dir: Path, start: ModelStart,
                        report: Callable[[str], None]) -> tuple[TrainingPairs, TrainingMode]:
    """Collect and decode the pairs (through the decode cache in ``cache_dir``), and the synthetic pairs'
    clean photos and noise (``--clean-dir``).

    Returns them and the training mode: ``mode``, or the same without the feature cache when that
    does not fit on disk.
    """
    if not opts.has_pairs and opts.clean_dir:
        return _synthetic_only(opts, mode, cache_dir, start, report)
    pairs, skipped = collect_pairs(opts, report)
    pairs, held = split_validation(opts, pairs, report)
    mode = _fitted_mode(opts, mode, cache_dir, pairs + held, report)

    def on_error(err: SidFtError) -> None:
        skipped.append(str(err))
        report(f"skipped: {err}")

    loaded = DecodeCache(cache_dir).load_pairs(pairs, opts.ratio_cap, on_error=on_error)
    validation = _decode_held_out(DecodeCache(cache_dir), held, opts.ratio_cap, report)
    camera = resolve_camera(loaded + validation, opts.camera, start.camera, start.checkpoint)
    synthetic = _synthetic_data(opts, cache_dir, report) if opts.clean_dir else None
    if synthetic is not None and camera != "sony":
        raise SidFtError(synthetic.photos[0].path, f"clean photos are Bayer (sony) but the real pairs pack as "
                                                   f"{camera}: train one sensor at a time")
    return TrainingPairs(loaded, skipped, camera, synthetic, validation), mode
