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
examples:
  # adapt the released Sony model to your camera: pairs in SID layout
  #   my_pairs/short/00001_00_0.1s.DNG   my_pairs/long/00001_00_10s.DNG  ...
  python scripts/train_finetune.py --dataset-dir my_pairs --pretrained checkpoints/Sony/ \\
      --train-dir checkpoints/mycam --steps 2000 --patch-size 512

  # the same from a SID list file, resuming automatically if checkpoints/mycam has a checkpoint
  python scripts/train_finetune.py --train-list my_pairs/train_list.txt --train-dir checkpoints/mycam --steps 4000

  # retrain every layer, as SID's own training does (slower)
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --checkpoint-exclude-scopes g_add

  # every layer on a CPU with native bfloat16 (or a GPU with tensor cores): 16-bit arithmetic, float32 weights
  python scripts/train_finetune.py --dataset-dir my_pairs --trainable-scopes all --precision auto

  # the whole job on generated data, no downloads (demo)
  python scripts/train_finetune.py --demo

then run the result:  python scripts/test.py --checkpoint checkpoints/mycam photo.ARW --ratio 100
"""


def build_parser() -> argparse.ArgumentParser:
    from sid_ft.train import DEFAULT_LR, DEFAULT_STEPS, TrainOptions

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
                        help="SID-style length instead of --steps: one step per scene per epoch, i.e. E x the "
                             "scenes (long exposures) of the usable pairs; each step takes a random patch of a "
                             "random pair. A resumed run keeps the length it started with")
    opt.add_argument("--patch-size", type=int, default=d.patch_size,
                     help="patch size on the packed image (default: %(default)s)")
    opt.add_argument("--lr", type=float, default=None,
                     help="learning rate (default: " + ", ".join(f"{r:g} for mode {m}" for m, r in DEFAULT_LR.items())
                          + "; the mode: full when a layer outside g_add trains, inside for additions inside the "
                            "network, cached/frozen for the head alone)")
    opt.add_argument("--lr-decay-step", type=int, default=None,
                     help="step number after which the rate is multiplied by --lr-decay-factor "
                          "(default: half of the total steps, also with --epochs)")
    opt.add_argument("--lr-decay-factor", type=float, default=d.lr_decay_factor, help="(default: %(default)s)")
    opt.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint every K steps (default: %(default)s)")
    opt.add_argument("--keep", type=int, default=d.keep, help="checkpoints to keep (default: %(default)s)")
    opt.add_argument("--log-every", type=int, default=d.log_every, help="metrics.jsonl every K steps (default: %(default)s)")
    opt.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    opt.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                     help="g_add only: run the frozen network on every patch instead of caching its features")
    opt.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16", "fp16"],
                     help="arithmetic of the network's forward and backward passes (weights, Adam state and "
                          "checkpoints stay float32; fp16 scales the loss dynamically): auto = bf16 on a CPU with "
                          "native bfloat16, fp16 on a CUDA GPU with tensor cores, else fp32. The feature cache is "
                          "always filled by the float32 network (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--demo", action="store_true",
                   help="build a demo dataset from bundled photographs, fine-tune and compare (no downloads)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.demo:
            from sid_ft.demo import run_demo

            run_demo(progress=args.progress, precision=args.precision)
            return 0
        from sid_ft.train import TrainOptions, train

        fields = TrainOptions.__dataclass_fields__
        options = {k: v for k, v in vars(args).items() if k in fields}
        if options["steps"] is None:  # neither --steps nor --epochs: the default length
            options.pop("steps")
        opts = TrainOptions(**options)
        result = train(opts, report=lambda msg: print(msg, file=sys.stderr))
    except SidFtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"done: step {result.global_step}, checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
