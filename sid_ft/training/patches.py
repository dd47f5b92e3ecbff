"""Where a run's patches come from: real pairs, synthetic pairs, or both mixed; and the preview crop.

:func:`training_sampler` builds the sampler the background loader calls once per step
(:class:`sid_ft.data.sampling.PatchSampler` for real pairs,
:class:`sid_ft.data.synthetic.SyntheticSampler` when ``--clean-dir`` adds synthetic ones) and,
on fresh runs of the inside mode, sets the g_add ``down`` kernels from the loss gradient on
patches of the same kind, drawn with a seed of their own.  :func:`preview_source` is what the
sample images are cut from: the first real pair, or a synthetic short exposure made by the graph.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sid_ft.data.sampling import PatchSampler
from sid_ft.data.synthetic import PreviewSource, SyntheticSampler
from sid_ft.training.gradient_init import GRADIENT_INIT_PATCHES, init_down_from_gradient
from sid_ft.training.graph import TrainGraph, feed_for
from sid_ft.training.inputs import TrainingPairs
from sid_ft.training.options import TrainOptions
from sid_ft.training.start import ModelStart

__all__ = ["GRADIENT_INIT_SEED_OFFSET", "patch_name", "preview_source", "training_sampler"]

GRADIENT_INIT_SEED_OFFSET = 7919
"""The gradient init's patches are drawn with ``--seed`` plus this: the training order stays unchanged."""


def _sampler(sess, tg: TrainGraph, opts: TrainOptions, start: ModelStart, pairs: TrainingPairs, cache_dir: Path,
             batch_size: int, seed: int, first_step: int = 0) -> PatchSampler | SyntheticSampler:
    """Real patches from the mode's sources (e.g. cached features), synthetic ones, or both."""
    real = None
    if pairs.loaded:
        sources = tg.mode.training_sources(sess, tg, pairs.loaded, cache_dir, opts, start.g_add)
        real = PatchSampler(sources, [cp.gt for cp in pairs.loaded], [cp.ratio for cp in pairs.loaded],
                            opts.patch_size, seed=seed, first_step=first_step,
                            names=[cp.pair.short_path for cp in pairs.loaded], batch_size=batch_size)
    synthetic = pairs.synthetic
    if synthetic is None:
        return real
    return SyntheticSampler(synthetic.photos, synthetic.darks, synthetic.ratios, opts.patch_size, seed=seed,
                            first_step=first_step, batch_size=batch_size, real=real, share=synthetic.share)


def training_sampler(sess, tg: TrainGraph, opts: TrainOptions, start: ModelStart, pairs: TrainingPairs,
                     cache_dir: Path, batch_size: int, first_step: int, report: Callable[[str], None]
                     ) -> PatchSampler | SyntheticSampler:
    """The training patches, step ``first_step`` on; the gradient init of the ``down`` kernels (fresh runs of
    the inside mode) on patches of their own."""
    sampler = _sampler(sess, tg, opts, start, pairs, cache_dir, batch_size, opts.seed, first_step)
    if (tg.mode.down_init_from_gradient and opts.g_add_down_init == "gradient" and not start.latest
            and start.g_add.rank):
        init_sampler = _sampler(sess, tg, opts, start, pairs, cache_dir, batch_size,
                                opts.seed + GRADIENT_INIT_SEED_OFFSET)
        n = init_down_from_gradient(sess, tg, pairs.camera, start.g_add, init_sampler)
        report(f"g_add down kernels of {n} convolutions set from the loss gradient on "
               f"{GRADIENT_INIT_PATCHES} training patches")
    return sampler


def preview_source(sess, tg: TrainGraph, sampler: PatchSampler | SyntheticSampler
                   ) -> PatchSampler | PreviewSource:
    """What the sample images are cut from: the real pairs' sampler, or (synthetic pairs only) the first clean
    photo with the graph's noisy short exposure at its centre."""
    if isinstance(sampler, PatchSampler):
        return sampler
    if sampler.real is not None:
        return sampler.real
    patch = sampler.preview_patch()
    short = sess.run(tg.inputs["synthetic_short"], feed_for(tg, [patch]))[0]
    return sampler.preview(short)


def patch_name(pairs: TrainingPairs, patch) -> str:
    """The file a patch was cut from: the clean photo of a synthetic patch, else the pair's short exposure."""
    if patch.synthetic is not None:
        return patch.synthetic.clean_path
    return pairs.loaded[patch.index].pair.short_path
