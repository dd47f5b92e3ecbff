"""Fine-tune a pretrained SID model on your own short/long RAW pairs (only the g_add layers by default).

``scripts/train_finetune.py`` and ``sid-ft-train`` call :func:`main`.  Exit status: 0 done, 1 an error
the user can fix (one line on stderr; also: another run holds --train-dir), 2 bad arguments, 75 stopped
by SIGTERM or SIGUSR1 after saving a checkpoint (run the same command again to resume), 130 Ctrl-C.

``--config RUN/config.json`` starts a recorded run again: the ``"options"`` a training run wrote to
its ``config.json`` become the parser's defaults, and the flags on the command line override them.
Nothing here imports TensorFlow: the parser and the options come first, TensorFlow loads with the run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from sid_ft.errors import SidFtError
from sid_ft.runtime.lock import TrainDirLock
from sid_ft.runtime.preempt import EXIT_PREEMPTED, stop_on_signals
from sid_ft.training.options import (DEFAULT_LR, DEFAULT_RATIOS, DEFAULT_STEPS, DEFAULT_SYNTHETIC_SHARE, DOWN_INITS,
                                    TrainOptions)

__all__ = ["build_parser", "main", "options_from_args", "parse_args", "recorded_options"]

EXAMPLES = """\
first run: the released SID model goes in checkpoints/Sony/ (four files; checkpoints/README.md tells where to
get them), your pairs in a SID-layout folder or list; then run the result with scripts/test.py, e.g.
  python scripts/test.py --checkpoint checkpoints/mycam --out-dir results photo.ARW --ratio 100

exit codes: 0 done (global_step reached --steps, or --early-stop ended the run), 1 error (message on stderr;
also: another run holds --train-dir), 2 bad arguments, 75 stopped by SIGTERM or SIGUSR1 after saving a checkpoint
(EX_TEMPFAIL: run the same command again to resume), 130 Ctrl-C (a checkpoint is saved too)

examples:
  # adapt the released Sony model to your camera: pairs in SID layout
  #   my_pairs/short/00001_00_0.1s.DNG   my_pairs/long/00001_00_10s.DNG  ...
  python scripts/train_finetune.py --dataset-dir my_pairs --pretrained checkpoints/Sony/ \\
      --train-dir checkpoints/mycam --steps 2000 --patch-size 512

  # hold out 2 pairs (whole scenes), score them every 100 steps, keep the best checkpoint in
  # checkpoints/mycam/best/ (what test.py runs for checkpoints/mycam; --latest for the latest) and stop
  # after 4 scorings without a better PSNR
  python scripts/train_finetune.py --dataset-dir my_pairs --train-dir checkpoints/mycam --val-pairs 2 --early-stop 4

  # the same from a SID list file, resuming automatically if checkpoints/mycam has a checkpoint
  python scripts/train_finetune.py --train-list my_pairs/train_list.txt --train-dir checkpoints/mycam --steps 4000

  # retrain every layer, as SID's own training does (slower)
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --checkpoint-exclude-scopes g_add

  # as a cluster job: SIGTERM/SIGUSR1 save a checkpoint and exit 75; the same command resumes
  #   (requeue the job when the exit code is 75: SLURM and Kubernetes examples in the README)
  python scripts/train_finetune.py --dataset-dir my_pairs --train-dir /shared/mycam --steps 4000
  # every layer on a CPU with native bfloat16 (or a GPU with tensor cores): 16-bit arithmetic, float32 weights
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --precision auto

  # no pairs: clean photos of the camera (any names) + 8 lens-capped dark frames at the ISO you shoot at;
  # each patch gets fresh noise: shot noise (K) + a crop of a real dark frame. K: give --gain, or add
  # --dataset-dir with 2 real pairs to measure it (then real and synthetic patches mix, --synthetic-share)
  python scripts/train_finetune.py --clean-dir my_photos --dark-frames my_darks --gain 3 \\
      --train-dir checkpoints/mycam

  # the whole job on generated data, no downloads (demo)
  python scripts/train_finetune.py --demo

"""

DESCRIPTION = (
    "Fine-tune a pretrained Learning-to-See-in-the-Dark model. The pretrained weights are restored "
    "(everything except --checkpoint-exclude-scopes), only --trainable-scopes learn, and full checkpoints "
    "(base + g_add + optimizer state) are written to --train-dir. A checkpoint already in --train-dir "
    "is resumed and --pretrained is ignored."
)

NOT_REPLAYED = ("force_unlock",)
"""Recorded options that ``--config`` does not start again with: taking another run's lock is decided anew."""


def _add_data(data: argparse._ArgumentGroup, d: TrainOptions) -> None:
    data.add_argument("--dataset-dir", help="folder in SID layout: short/ and long/ with SID file names")
    data.add_argument("--train-list", help="SID list file: 'short long ISO F' per line, paths relative to the list")
    data.add_argument("--split", default=d.split, choices=["train", "test", "val", "all"],
                      help="SID scene-id split to use (first digit 0 train, 1 test, 2 val) (default: %(default)s)")
    data.add_argument("--ratio-cap", type=float, default=d.ratio_cap,
                      help="amplification ratio = min(long/short exposure, cap) (default: %(default)s)")
    data.add_argument("--cache-dir", help="decoded-image and feature cache (default: TRAIN_DIR/cache)")
    data.add_argument("--cache-max-gb", type=float, default=None,
                      help="most disk the caches may take, GB (1e9 bytes), those already there included; checked "
                           "before anything is decoded: if the decoded images do not fit the run stops, if only "
                           "the feature cache does not it trains without it (default: 90%% of the free space)")


def _add_synthetic(syn: argparse._ArgumentGroup, d: TrainOptions) -> None:
    syn.add_argument("--clean-dir", help="clean RAW photos of the camera (any names; SID's long/ works): each patch "
                                         "of them gets fresh noise at a ratio from --ratios while training. Prefer "
                                         "base-ISO, unclipped exposures: their own noise rides along in the ground "
                                         "truth (clipped, very dark or high-ISO photos are warned about or left out)")
    syn.add_argument("--dark-frames", help="folder of lens-capped dark frames at the ISO to adapt to (8 recommended): "
                                           "a crop of a real dark frame is each synthetic patch's read noise, row and "
                                           "column noise and fixed pattern ('sampled'); without --noise-profile the "
                                           "run calibrates from them")
    syn.add_argument("--noise-profile", metavar="noise.json",
                     help="scripts/calibrate.py's profile; without --dark-frames its fitted noise (Tukey-lambda "
                          "read noise, row and column noise, fixed pattern) is used ('parametric')")
    syn.add_argument("--gain", type=float, default=None, metavar="K",
                     help="gain K in DN per electron (sets the shot noise), as scripts/calibrate.py takes it: "
                          "used when neither the profile nor the real pairs of --dataset-dir measure it; "
                          "without any, K = 1 is guessed (said so)")
    syn.add_argument("--ratios", type=float, nargs="+", default=list(d.ratios), metavar="R",
                     help="exposure ratios of the synthetic patches, one drawn per patch (default: "
                          + " ".join(f"{r:g}" for r in DEFAULT_RATIOS) + ", SID's)")
    syn.add_argument("--synthetic-share", type=float, default=d.synthetic_share, metavar="F",
                     help="with --dataset-dir/--train-list too: the fraction of patches that are synthetic "
                          f"(default: {DEFAULT_SYNTHETIC_SHARE:g}: a few real pairs, with the sensor's own noise, in one "
                          "patch of five; the synthetic ones add scenes, ratios and fresh noise. Lower it when "
                          "you have many real pairs)")


def _add_checkpoints(model: argparse._ArgumentGroup, d: TrainOptions) -> None:
    model.add_argument("--pretrained", default=d.pretrained,
                       help="released SID checkpoint folder or prefix (default: %(default)s)")
    model.add_argument("--train-dir", default=d.train_dir, help="where checkpoints and logs go (default: %(default)s)")
    model.add_argument("--trainable-scopes", default=d.trainable_scopes,
                       help="comma-separated scopes to train; 'all' retrains every layer (default: %(default)s)")
    model.add_argument("--checkpoint-exclude-scopes", default=d.checkpoint_exclude_scopes,
                       help="comma-separated scopes not restored from --pretrained (default: %(default)s)")


def _add_design(model: argparse._ArgumentGroup, d: TrainOptions) -> None:
    model.add_argument("--g-add-depth", type=int, default=d.g_add_depth,
                       help="number of 3x3 conv layers in the g_add head (default: %(default)s)")
    model.add_argument("--g-add-width", type=int, default=d.g_add_width,
                       help="channels of the g_add layers (default: %(default)s)")
    model.add_argument("--g-add-packed-input", action=argparse.BooleanOptionalAction, default=d.g_add_packed_input,
                       help="the g_add head also sees the packed, amplified RAW input (default: %(default)s)")
    model.add_argument("--g-add-linear", action=argparse.BooleanOptionalAction, default=d.g_add_linear,
                       help="add a linear 1x1 path (per-pixel colour matrix and gain) beside the g_add convs "
                            "(default: %(default)s)")
    model.add_argument("--g-add-head", action=argparse.BooleanOptionalAction, default=d.g_add_head,
                       help="the g_add head after the network (colour, levels, tone) (default: %(default)s)")
    model.add_argument("--g-add-affine", action=argparse.BooleanOptionalAction, default=d.g_add_affine,
                       help="a zero-initialised per-channel scale and shift after every conv of the network, "
                            "folded into the conv for inference (default: %(default)s)")
    model.add_argument("--g-add-rank", type=int, default=d.g_add_rank,
                       help="rank r of a zero-initialised low-rank delta beside every conv of the network (kxk conv "
                            "to r channels, 1x1 back), folded into the conv for inference; 0: none "
                            "(default: %(default)s)")
    model.add_argument("--g-add-down-init", default=d.g_add_down_init, choices=list(DOWN_INITS),
                       help="how the rank-r deltas' kxk 'down' kernels start: gradient (the r leading directions of "
                            "each kernel's loss gradient on 16 training patches, when a run starts; the output still "
                            "starts as the base's) or xavier (random) (default: %(default)s)")
    model.add_argument("--camera", default=None, choices=["sony", "fuji"],
                       help="network variant: sony (Bayer, 4-channel) or fuji (X-Trans, 9-channel); "
                            "default: from the files, checked against the checkpoint")
    model.add_argument("--from-scratch", action="store_true",
                       help="train plain SID (the released layout, no g_add layers) from random weights instead of "
                            "--pretrained (needs --trainable-scopes all); the result can then be fine-tuned "
                            "with g_add as --pretrained. Without it a missing --pretrained is an error")


def _add_length_and_rate(opt: argparse._ArgumentGroup, d: TrainOptions) -> None:
    length = opt.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None,
                        help="total steps; a resumed run continues until global_step reaches it (default: "
                             + ", ".join(f"{n} for mode {m}" for m, n in DEFAULT_STEPS.items()) + ")")
    length.add_argument("--epochs", type=int, default=None,
                        help="SID-style length instead of --steps: one patch per scene per epoch, i.e. E x the "
                             "scenes (long exposures) of the usable pairs, divided by --batch-size (rounded up); "
                             "each patch is a random crop of a random pair. A resumed run keeps the length it "
                             "started with")
    opt.add_argument("--patch-size", type=int, default=d.patch_size,
                     help="patch size on the packed image (default: %(default)s)")
    opt.add_argument("--batch-size", type=int, default=None,
                     help="random patches per step (each its own pair, crop and flips); the loss is their mean. "
                          "Recorded in config.json; a resumed run keeps it unless given (default: 1, SID's)")
    opt.add_argument("--lr", type=float, default=None,
                     help="learning rate (default: " + ", ".join(f"{r:g} for mode {m}" for m, r in DEFAULT_LR.items())
                          + "; the mode: full when a layer outside g_add trains, inside for additions inside the "
                            "network, cached/frozen for the head alone)")
    opt.add_argument("--lr-decay-step", type=int, default=None,
                     help="step number after which the rate is multiplied by --lr-decay-factor "
                          "(default: half of the total steps, also with --epochs)")
    opt.add_argument("--lr-decay-factor", type=float, default=d.lr_decay_factor, help="(default: %(default)s)")
    opt.add_argument("--lr-warmup-steps", type=int, default=None,
                     help="raise the rate linearly to --lr over the first K steps, for a higher --lr or "
                          "--batch-size than usual. Recorded in config.json; a resumed run keeps it unless given "
                          "(default: 0, none)")


def _add_saving(opt: argparse._ArgumentGroup, d: TrainOptions) -> None:
    opt.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every K steps (default: %(default)s)")
    opt.add_argument("--keep", type=int, default=d.keep, help="checkpoints to keep (default: %(default)s)")
    opt.add_argument("--log-every", type=int, default=d.log_every, help="metrics.jsonl every K steps (default: %(default)s)")
    opt.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    opt.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                     help="g_add only: run the frozen network on every patch instead of caching its features")


def _add_validation(val: argparse._ArgumentGroup, d: TrainOptions) -> None:
    held = val.add_mutually_exclusive_group()
    held.add_argument("--val-pairs", type=int, default=None, metavar="N",
                      help="hold out at least N pairs, whole scenes (every pair of a scene goes together), drawn "
                           "with --seed and recorded in config.json, and score them while training; with fewer "
                           "than 2 scenes the run says so and trains on all pairs without validation")
    held.add_argument("--val-list", metavar="FILE",
                      help="score the pairs of this SID list instead (training pairs of the same scenes are left "
                           "out of training)")
    val.add_argument("--val-every", type=int, default=d.val_every, metavar="K",
                     help="score the held-out pairs every K steps and after the last, on whole images in the "
                          "run's --precision: PSNR and SSIM to metrics.jsonl (val_psnr, val_ssim) and TensorBoard. "
                          "The best scoring's weights go to TRAIN_DIR/best/ (best.json: step, PSNR); that is what "
                          "TRAIN_DIR means to test.py and Predictor (test.py --latest: the latest); training "
                          "resumes from the latest (default: %(default)s)")
    val.add_argument("--early-stop", type=int, default=None, metavar="P",
                     help="decay the rate at the first plateau, stop at the second: while the rate is still high "
                          "(before --lr-decay-step), P scorings in a row without a better held-out PSNR move the "
                          "rate's decay to then and the count starts again; once it is decayed, P such scorings "
                          "stop the run (exit 0). A resumed run keeps the moved decay and counts on (default: "
                          "none, every step runs)")


def _add_running(p: argparse.ArgumentParser, model: argparse._ArgumentGroup, opt: argparse._ArgumentGroup,
                 d: TrainOptions) -> None:
    """The options added last (their order is the help's): lock, precision, progress, demo, --config."""
    model.add_argument("--force-unlock", action="store_true",
                       help="take TRAIN_DIR/train.lock even if another run holds it (only when you know that run "
                            "is gone, e.g. its node crashed; a lock of a dead process on this host is taken over "
                            "without it)")
    opt.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16", "fp16"],
                     help="arithmetic of the network's forward and backward passes (weights, Adam state and "
                          "checkpoints stay float32; fp16 scales the loss dynamically): auto = bf16 on a CPU with "
                          "native bfloat16, fp16 on a CUDA GPU with tensor cores, else fp32. The feature cache is "
                          "always filled by the float32 network (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--demo", action="store_true",
                   help="build a demo dataset from bundled photographs, fine-tune and compare (no downloads)")
    p.add_argument("--config", metavar="RUN/config.json",
                   help="start a recorded run again: the options in a train dir's config.json are the defaults, "
                        "the flags given here override them (e.g. --train-dir NEW to train again beside it, "
                        "--steps N to go on longer); --force-unlock is never taken from the file")


def build_parser() -> argparse.ArgumentParser:
    """The command line of scripts/train_finetune.py (``sid-ft-train``); imports no TensorFlow."""
    d = TrainOptions()
    p = argparse.ArgumentParser(description=DESCRIPTION, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data(p.add_argument_group("data"), d)
    _add_synthetic(p.add_argument_group("synthetic pairs (no pairs needed: clean photos + dark frames)"), d)
    model = p.add_argument_group("model and checkpoints")
    _add_checkpoints(model, d)
    _add_design(model, d)
    opt = p.add_argument_group("optimisation")
    _add_length_and_rate(opt, d)
    _add_saving(opt, d)
    _add_validation(p.add_argument_group("held-out pairs (validation while training)"), d)
    _add_running(p, model, opt, d)
    return p


# --------------------------------------------------------------------------- --config

def _check_recorded_value(parser: argparse.ArgumentParser, key: str, value, path: str) -> None:
    """SidFtError when a recorded value is of a type or outside the choices its flag accepts."""
    for action in parser._actions:  # argparse has no public list of its arguments
        if action.dest != key or value is None:
            continue
        if action.nargs in ("+", "*"):  # a list: each item as the flag takes it
            if not isinstance(value, list) or not value:
                raise SidFtError(path, f'"options": {key} = {value!r} is not a list of values')
            for item in value:
                _check_recorded_item(action, key, item, path)
            continue
        _check_recorded_item(action, key, value, path)


def _check_recorded_item(action: argparse.Action, key: str, value, path: str) -> None:
    """SidFtError when one recorded value is of another type than ``action`` takes or outside its choices."""
    if action.type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SidFtError(path, f'"options": {key} = {value!r} is not an integer')
    if action.type is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SidFtError(path, f'"options": {key} = {value!r} is not a number')
    if action.choices is not None and value not in action.choices:
        raise SidFtError(path, f'"options": {key} = {value!r} is not one of '
                               f'{", ".join(map(str, action.choices))}')


def recorded_options(path: str, parser: argparse.ArgumentParser | None = None) -> dict:
    """The ``"options"`` a training run wrote to its ``config.json`` (:class:`TrainOptions` fields), checked:
    SidFtError naming the file for one that is missing, unreadable, not JSON, or has unknown keys."""
    try:
        config = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SidFtError(path, f"cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SidFtError(path, f"not valid JSON ({exc})") from None
    options = config.get("options") if isinstance(config, dict) else None
    if not isinstance(options, dict):
        raise SidFtError(path, 'no "options" object: not the config.json of a training run')
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SidFtError(path, f'unknown option(s) in "options": {", ".join(unknown)} (written by another '
                               "version of sid_ft?)")
    parser = parser or build_parser()
    for key, value in options.items():
        _check_recorded_value(parser, key, value, path)
    return {k: v for k, v in options.items() if k not in NOT_REPLAYED}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; with ``--config``, the recorded options are the defaults that the flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        return args
    recorded = recorded_options(args.config, parser)
    if args.steps is not None or args.epochs is not None:  # a length on the command line replaces the recorded one
        recorded.pop("steps", None)
        recorded.pop("epochs", None)
    if args.val_pairs is not None or args.val_list is not None:  # so do held-out pairs (one way excludes the other)
        recorded.pop("val_pairs", None)
        recorded.pop("val_list", None)
    parser.set_defaults(**recorded)
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The :class:`TrainOptions` of parsed arguments (``--demo``, ``--config`` and the like are not options)."""
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in vars(args).items() if k in fields})


# --------------------------------------------------------------------------- run

def _report(msg: str) -> None:
    print(msg, file=sys.stderr)


def _early_lock(args: argparse.Namespace):
    """The train dir's lock, taken before TensorFlow loads (seconds), so that a second run on a locked
    --train-dir stops at once.  Only for a --train-dir other than the default (given, or from --config), so
    that a first run without arguments writes nothing; otherwise train() takes it."""
    if args.demo or args.train_dir == TrainOptions.train_dir:
        return nullcontext()
    return TrainDirLock(args.train_dir, force=args.force_unlock, report=_report)


def _run(args: argparse.Namespace):
    """The demo (returns None), or the training run the arguments describe (returns its TrainResult)."""
    if args.demo:
        from sid_ft.demo import run_demo

        run_demo(progress=args.progress, precision=args.precision)
        return None
    from sid_ft.training.loop import train
    from sid_ft.training.preflight import check_training_inputs

    opts = options_from_args(args)
    check_training_inputs(opts)
    return train(opts, report=_report)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), train, and return the exit status."""
    try:
        # SIGTERM/SIGUSR1 set a flag from here on (the trainer acts on it after its current step), and the
        # lock is held until the end: a signal even during start-up ends the run cleanly, lock released
        with stop_on_signals():
            args = parse_args(argv)
            with _early_lock(args):
                result = _run(args)
    except SidFtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is None:
        return 0
    if result.stopped_by:
        print(f"stopped by {result.stopped_by} at step {result.global_step}: checkpoint {result.checkpoint}; "
              f"exit {EXIT_PREEMPTED}, run the same command again to resume")
        return EXIT_PREEMPTED
    if result.stopped_early:
        print(f"done: stopped early at step {result.global_step} ({result.stopped_early}); best checkpoint "
              f"{result.best}, latest {result.checkpoint}")
    elif result.best:
        print(f"done: step {result.global_step}, checkpoint {result.checkpoint}; best checkpoint {result.best}")
    else:
        print(f"done: step {result.global_step}, checkpoint {result.checkpoint}")
    return 0
