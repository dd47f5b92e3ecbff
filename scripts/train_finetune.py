#!/usr/bin/env python3
"""Fine-tune a pretrained SID model on your own short/long RAW pairs (only the g_add layers by default)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sid_ft.errors import SidFtError  # noqa: E402

EXAMPLES = """\
first run: the released SID model goes in checkpoints/Sony/ (four files; checkpoints/README.md tells where to
get them), your pairs in a SID-layout folder or list; then run the result with scripts/test.py, e.g.
  python scripts/test.py --checkpoint checkpoints/mycam --out-dir results photo.ARW --ratio 100

exit codes: 0 done (global_step reached --steps), 1 error (message on stderr; also: another run holds
--train-dir), 2 bad arguments, 75 stopped by SIGTERM or SIGUSR1 after saving a checkpoint (EX_TEMPFAIL:
run the same command again to resume), 130 Ctrl-C (a checkpoint is saved too)

examples:
  # adapt the released Sony model to your camera: pairs in SID layout
  #   my_pairs/short/00001_00_0.1s.DNG   my_pairs/long/00001_00_10s.DNG  ...
  python scripts/train_finetune.py --dataset-dir my_pairs --pretrained checkpoints/Sony/ \\
      --train-dir checkpoints/mycam --steps 2000 --patch-size 512

  # the same from a SID list file, resuming automatically if checkpoints/mycam has a checkpoint
  python scripts/train_finetune.py --train-list my_pairs/train_list.txt --train-dir checkpoints/mycam --steps 4000

  # retrain every layer, as SID's own training does (slower)
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --checkpoint-exclude-scopes g_add

  # as a cluster job: SIGTERM/SIGUSR1 save a checkpoint and exit 75; the same command resumes
  #   (requeue the job when the exit code is 75: SLURM and Kubernetes examples in the README)
  python scripts/train_finetune.py --dataset-dir my_pairs --train-dir /shared/mycam --steps 4000
  # every layer on a CPU with native bfloat16 (or a GPU with tensor cores): 16-bit arithmetic, float32 weights
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --precision auto

  # the whole job on generated data, no downloads (demo)
  python scripts/train_finetune.py --demo

"""


def build_parser() -> argparse.ArgumentParser:
    from sid_ft.training.loop import DEFAULT_LR, DEFAULT_STEPS, TrainOptions

    d = TrainOptions()
    p = argparse.ArgumentParser(
        description=(
            "Fine-tune a pretrained Learning-to-See-in-the-Dark model. The pretrained weights are restored "
            "(everything except --checkpoint-exclude-scopes), only --trainable-scopes learn, and full checkpoints "
            "(base + g_add + optimizer state) are written to --train-dir. A checkpoint already in --train-dir "
            "is resumed and --pretrained is ignored."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
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

    model = p.add_argument_group("model and checkpoints")
    model.add_argument("--pretrained", default=d.pretrained,
                       help="released SID checkpoint folder or prefix (default: %(default)s)")
    model.add_argument("--train-dir", default=d.train_dir, help="where checkpoints and logs go (default: %(default)s)")
    model.add_argument("--trainable-scopes", default=d.trainable_scopes,
                       help="comma-separated scopes to train; 'all' retrains every layer (default: %(default)s)")
    model.add_argument("--checkpoint-exclude-scopes", default=d.checkpoint_exclude_scopes,
                       help="comma-separated scopes not restored from --pretrained (default: %(default)s)")
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
    model.add_argument("--g-add-down-init", default=d.g_add_down_init, choices=["xavier", "gradient"],
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

    opt = p.add_argument_group("optimisation")
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
    opt.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every K steps (default: %(default)s)")
    opt.add_argument("--keep", type=int, default=d.keep, help="checkpoints to keep (default: %(default)s)")
    opt.add_argument("--log-every", type=int, default=d.log_every, help="metrics.jsonl every K steps (default: %(default)s)")
    opt.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    opt.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                     help="g_add only: run the frozen network on every patch instead of caching its features")
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
    return p


def _early_lock(argv: list[str] | None):
    """The train dir's lock, taken before the full parser imports TensorFlow (seconds), so that a second run
    on a locked --train-dir stops at once.  Only for an explicit --train-dir; otherwise train() takes it."""
    from contextlib import nullcontext
    from sid_ft.runtime.lock import TrainDirLock

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--train-dir")
    early.add_argument("--force-unlock", action="store_true")
    early.add_argument("--demo", action="store_true")
    early.add_argument("-h", "--help", action="store_true")
    known, _ = early.parse_known_args(argv)
    if known.train_dir is None or known.demo or known.help:
        return nullcontext()
    return TrainDirLock(known.train_dir, force=known.force_unlock, report=lambda msg: print(msg, file=sys.stderr))


def main(argv: list[str] | None = None) -> int:
    from sid_ft.runtime.preempt import EXIT_PREEMPTED, stop_on_signals

    try:
        # SIGTERM/SIGUSR1 set a flag from here on (the trainer acts on it after its current step), and the
        # lock is held until the end: a signal even during start-up ends the run cleanly, lock released
        with stop_on_signals(), _early_lock(argv):
            args = build_parser().parse_args(argv)
            if args.demo:
                from sid_ft.demo import run_demo

                run_demo(progress=args.progress, precision=args.precision)
                return 0
            from sid_ft.training.preflight import check_training_inputs
            from sid_ft.training.loop import TrainOptions, train

            fields = TrainOptions.__dataclass_fields__
            options = {k: v for k, v in vars(args).items() if k in fields}
            if options["steps"] is None:  # neither --steps nor --epochs: the default length
                options.pop("steps")
            opts = TrainOptions(**options)
            check_training_inputs(opts)
            result = train(opts, report=lambda msg: print(msg, file=sys.stderr))
    except SidFtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result.stopped_by:
        print(f"stopped by {result.stopped_by} at step {result.global_step}: checkpoint {result.checkpoint}; "
              f"exit {EXIT_PREEMPTED}, run the same command again to resume")
        return EXIT_PREEMPTED
    print(f"done: step {result.global_step}, checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
