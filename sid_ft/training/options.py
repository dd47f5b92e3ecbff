"""The options of a fine-tuning run (:class:`TrainOptions`), checked in one place; no TensorFlow.

A run's options are written to ``config.json`` in its train dir (``"options"``:
``dataclasses.asdict``), and ``--config`` starts the run again from them
(:mod:`sid_ft.cli.train`).  Argument parsers build their defaults from here, so this
module imports nothing that loads TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sid_ft.errors import SidFtError
from sid_ft.nets.g_add.config import GAddConfig  # no TensorFlow

__all__ = ["DEFAULT_LR", "DEFAULT_RATIOS", "DEFAULT_STEPS", "DEFAULT_SYNTHETIC_SHARE", "DEFAULT_VAL_EVERY",
           "DOWN_INITS", "TrainOptions", "in_scopes", "parse_scopes"]

DEFAULT_LR = {"full": 1e-4, "inside": 1e-3, "frozen": 1e-3, "cached": 1e-3}
"""Default ``--lr`` per training mode (:mod:`sid_ft.training.modes`): SID's 1e-4 for every layer; the rate
the quality benchmark found best for the g_add layers (benchmarks/bench_quality.py, README)."""

DEFAULT_STEPS = {"full": 4000, "inside": 1500, "frozen": 1500, "cached": 1500}
"""Default ``--steps`` per training mode: a few thousand for every layer; for the g_add layers about
LED's 1.5k iterations, which suits a handful of pairs."""

DEFAULT_RATIOS = (100.0, 250.0, 300.0)
"""``--ratios``: the exposure ratios of synthetic patches, SID's (its Sony set's x100, x250, x300)."""

DEFAULT_SYNTHETIC_SHARE = 0.8
"""``--synthetic-share``: the fraction of patches that are synthetic when real pairs are given too.  Four in
five: a user's few real pairs are a few scenes with one noise draw each, and at half the patches they were
overfitted; the synthetic patches bring every clean photo at every ratio with fresh noise, and the real ones
still bring the sensor's own noise at its own levels in one patch of five.  Measured on bench_quality.py's
out-of-model case (2 real pairs + 8 dark frames + 6 clean photos, 3 seeds): +1.21 dB at 0.5, +1.39 dB at 0.8,
against +1.29 dB from 18 real pairs.  With many real pairs, a lower share is the natural choice."""

DEFAULT_VAL_EVERY = 100
"""``--val-every``: steps between two scorings of the held-out pairs.  About 15 evaluations in a default
run of the g_add layers (1500 steps), enough for ``--early-stop`` to see a plateau, while one scoring (a
forward pass over each whole held-out image) costs a few steps' time."""

DOWN_INITS = ("xavier", "gradient")
"""How the rank-r ``down`` kernels of the g_add additions start (``--g-add-down-init``)."""


@dataclass
class TrainOptions:
    """Every option of a fine-tuning run; written to ``config.json`` in the train dir."""

    dataset_dir: str | None = None
    train_list: str | None = None
    split: str = "train"  # 'train' | 'test' | 'val' | 'all' (SID's scene-id rule)
    pretrained: str = "checkpoints/Sony/"
    train_dir: str = "checkpoints/finetune/"
    steps: int | None = None  # default: DEFAULT_STEPS[mode]
    epochs: int | None = None  # SID-style: steps = epochs x scenes of the usable pairs (replaces steps)
    patch_size: int = 512
    batch_size: int | None = None  # patches per step; None: 1, or what a resumed run's config.json recorded
    lr: float | None = None  # default: DEFAULT_LR[mode]
    lr_decay_step: int | None = None  # default: steps // 2
    lr_decay_factor: float = 0.1
    g_add_down_init: str = "gradient"  # or "xavier": the rank-R down kernels span the top R directions
    # of the loss gradient of each conv's kernel on a few training patches (fresh runs of the inside mode only)
    lr_warmup_steps: int | None = None  # the rate rises linearly to --lr over the first K steps; None: 0 (none),
    # or what a resumed run's config.json recorded
    save_every: int = 500
    keep: int = 5
    log_every: int = 10
    seed: int = 0
    g_add_depth: int = 2
    g_add_width: int = 16
    g_add_packed_input: bool = False
    g_add_linear: bool = False
    g_add_head: bool = False
    g_add_affine: bool = False
    g_add_rank: int = 32
    trainable_scopes: str = "g_add"
    checkpoint_exclude_scopes: str = "g_add"
    feature_cache: bool = True
    feature_dtype: str = "float16"
    cache_dir: str | None = None  # default: <train_dir>/cache
    cache_max_gb: float | None = None  # limit of the caches; default: 90% of the free space (sid_ft.training.cachesize)
    ratio_cap: float = 300.0
    camera: str | None = None  # 'sony' | 'fuji'; None: from the files' packing (4 or 9 channels)
    from_scratch: bool = False  # explicit: start from random weights instead of --pretrained
    precision: str = "fp32"  # 'auto' | 'fp32' | 'bf16' | 'fp16' (sid_ft.nets.precision.resolve)
    progress: bool = True
    force_unlock: bool = False  # take the train dir's lock even if another run seems to hold it
    clean_dir: str | None = None  # clean RAW photos of the camera: synthetic pairs (sid_ft.data.synthetic)
    dark_frames: str | None = None  # lens-capped frames at the ISO to adapt to: 'sampled' noise, and calibration
    noise_profile: str | None = None  # scripts/calibrate.py's noise.json: without dark frames, 'parametric' noise
    gain: float | None = None  # K, DN per electron, when neither the profile nor real pairs give it
    ratios: tuple[float, ...] = DEFAULT_RATIOS  # exposure ratios of the synthetic patches
    synthetic_share: float = DEFAULT_SYNTHETIC_SHARE  # fraction of synthetic patches when real pairs are given too
    val_pairs: int | None = None  # hold out N pairs (whole scenes, chosen by --seed) and score them while training
    val_list: str | None = None  # or score the pairs of this SID list (scenes in it are not trained on)
    val_every: int = DEFAULT_VAL_EVERY  # steps between two scorings of the held-out pairs
    early_stop: int | None = None  # stop after P scorings without a better PSNR; None: run every step

    def __post_init__(self) -> None:
        self.ratios = tuple(float(r) for r in self.ratios)  # a list from the command line or config.json

    def scopes_to_train(self) -> list[str]:
        """``trainable_scopes`` as a list; ``['all']`` for every model variable."""
        return parse_scopes(self.trainable_scopes) or ["all"]

    def g_add_design(self) -> GAddConfig:
        """The g_add design the ``--g-add-*`` options ask for."""
        try:
            return GAddConfig(depth=self.g_add_depth, width=self.g_add_width, packed_input=self.g_add_packed_input,
                              linear=self.g_add_linear, head=self.g_add_head, affine=self.g_add_affine,
                              rank=self.g_add_rank)
        except ValueError as exc:
            raise SidFtError(None, f"--g-add-*: {exc}") from None

    def check(self) -> None:
        """SidFtError for options that contradict each other or are out of range, before anything is decoded."""
        if self.epochs is not None and self.epochs < 1:
            raise SidFtError(None, f"--epochs {self.epochs}: must be at least 1")
        if self.lr_warmup_steps is not None and self.lr_warmup_steps < 0:
            raise SidFtError(None, f"--lr-warmup-steps {self.lr_warmup_steps}: must be 0 (none) or more")
        if self.g_add_down_init not in DOWN_INITS:
            raise SidFtError(None, f"--g-add-down-init {self.g_add_down_init!r}: choose xavier or gradient")
        self._check_synthetic()
        self._check_validation()
        if self.from_scratch and self.scopes_to_train() != ["all"]:
            raise SidFtError(None, "--from-scratch trains every layer of plain SID from random weights: it needs "
                                   "--trainable-scopes all (training some layers on a random base makes no sense)")

    def _check_synthetic(self) -> None:
        """SidFtError for synthetic-pair options that cannot work together."""
        if self.clean_dir is None:
            given = [f for f, v in (("--dark-frames", self.dark_frames), ("--noise-profile", self.noise_profile),
                                    ("--gain", self.gain)) if v is not None]
            if given:
                raise SidFtError(None, f"{', '.join(given)} give(s) the noise of synthetic pairs: add --clean-dir "
                                       "DIR with clean photos of the camera")
            return
        if self.dark_frames is None and self.noise_profile is None:
            raise SidFtError(None, "--clean-dir needs the camera's noise: --dark-frames DIR (lens-capped frames at "
                                   "the ISO you shoot at) and/or --noise-profile noise.json (scripts/calibrate.py)")
        if not self.ratios or not all(r >= 1.0 for r in self.ratios):
            raise SidFtError(None, f"--ratios {' '.join(f'{r:g}' for r in self.ratios)}: give one or more "
                                   "exposure ratios, each at least 1")
        if not 0.0 <= self.synthetic_share <= 1.0:
            raise SidFtError(None, f"--synthetic-share {self.synthetic_share:g}: must be between 0 and 1")
        if self.gain is not None and not self.gain > 0:
            raise SidFtError(None, f"--gain {self.gain:g}: must be a positive number of DN per electron")

    def _check_validation(self) -> None:
        """SidFtError for held-out-pair options that cannot work together or are out of range."""
        if self.val_pairs is not None and self.val_list is not None:
            raise SidFtError(None, "--val-pairs and --val-list both choose the held-out pairs: give one")
        if self.val_pairs is not None and self.val_pairs < 1:
            raise SidFtError(None, f"--val-pairs {self.val_pairs}: must be at least 1")
        if self.val_every < 1:
            raise SidFtError(None, f"--val-every {self.val_every}: must be at least 1")
        if self.early_stop is not None and self.early_stop < 1:
            raise SidFtError(None, f"--early-stop {self.early_stop}: must be at least 1 evaluation")
        if self.early_stop is not None and not self.validates:
            raise SidFtError(None, f"--early-stop {self.early_stop} counts evaluations of held-out pairs: add "
                                   "--val-pairs N or --val-list FILE")

    @property
    def validates(self) -> bool:
        """Held-out pairs are asked for (``--val-pairs`` or ``--val-list``)."""
        return self.val_pairs is not None or self.val_list is not None

    @property
    def has_pairs(self) -> bool:
        """Real pairs are given (``--dataset-dir`` and/or ``--train-list``)."""
        return bool(self.dataset_dir or self.train_list)


def parse_scopes(text: str | Sequence[str] | None) -> list[str]:
    """TF-Slim's comma-separated scope list; ``all`` (or empty) means every model variable."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return [s.strip() for s in items if s.strip()]


def in_scopes(name: str, scopes: Sequence[str]) -> bool:
    """TF-Slim's rule: a variable is in a scope when its name starts with the scope string."""
    return any(name.startswith(s) for s in scopes)
