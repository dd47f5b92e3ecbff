"""Run a released or fine-tuned SID model on RAW files (one photo, a folder, or a cluster shard).

``scripts/test.py`` and ``sid-ft-test`` call :func:`main`.  Exit status: 0 when every file
was written, 1 when any file failed (or, with --merge-summaries, a shard's summary is
missing), 2 for a problem with the command itself, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys

from sid_ft.errors import SidFtError
from sid_ft.eval.metrics import PROTOCOLS
from sid_ft.inference.options import ORIENTATIONS, InferOptions
from sid_ft.inference.predictor import DEFAULT_OVERLAP
from sid_ft.inference.shards import merge_shard_summaries, parse_shard, shard_from_env
from sid_ft.inference.summary import RunSummary

EXAMPLES = """\
exit status: 0 when every file was written, 1 when any file failed (each is named on stderr and in
summary.json) or, with --merge-summaries, a shard's summary is missing, 2 for a problem with the
command itself (options, checkpoint, out dir).

examples:
  # one dark photo shot at 1/10 s, brightened as if exposed 100x longer
  python scripts/test.py --checkpoint checkpoints/Sony/ --out-dir results photo.ARW --ratio 100

  # a folder, with the ratio from each file's exposure time (SID name or metadata): as if shot at 10 s;
  # --compare adds results/<stem>_compare.jpg: short x ratio | output, side by side
  python scripts/test.py --checkpoint checkpoints/mycam --out-dir results shots/ --target-exposure 10 --compare

  # a train dir that scored held-out pairs (train_finetune.py --val-pairs) runs its best checkpoint,
  # TRAIN_DIR/best/; --latest runs its latest checkpoint instead
  python scripts/test.py --checkpoint checkpoints/mycam --latest --out-dir results photo.ARW --ratio 100

  # every pair of a list: the long exposures are the ground truth, ratio min(long/short, 300);
  # writes <stem>_out.png, _gt.png, _scale.png and PSNR/SSIM in results/summary.json
  python scripts/test.py --checkpoint checkpoints/Sony/ --test-list datasets/Sony_test_list.txt --out-dir results

  # SID's published evaluation: burst 00 of each test scene, 8-bit, three misaligned scenes left out of the means
  python scripts/test.py --checkpoint checkpoints/Sony/ --test-list datasets/Sony --protocol sid --out-dir sid_sony
  # about twice as fast on a CPU with native bfloat16 (or a GPU with tensor cores): 16-bit arithmetic
  python scripts/test.py --checkpoint checkpoints/Sony/ --out-dir results photo.ARW --ratio 100 --precision auto

  # little memory (or a big sensor): 512x512 packed-pixel tiles, blended over the default overlap
  python scripts/test.py --checkpoint checkpoints/Sony/ --out-dir results big.ARW --ratio 100 --tile 512

  # SLURM job array: each task takes every N-th file of the sorted list (shard from the environment)
  #   sbatch --array=1-8 --gres=gpu:1 --wrap "python scripts/test.py --checkpoint ckpt --out-dir out \\
  #       '/data/raw/**/*.ARW' --ratio 100 --skip-existing --device gpu:0"
  # Kubernetes indexed Job with 8 completions: JOB_COMPLETION_INDEX is read, N must be given
  python scripts/test.py --checkpoint ckpt --out-dir out /data/raw --ratio 100 --shard-count 8
  # once every shard has finished: one summary.json / .csv for the whole run (names missing shards)
  python scripts/test.py --merge-summaries out

  # a SavedModel for TF Serving / Apache Beam RunInference (packed, amplified batch in, RGB out)
  python scripts/test.py --checkpoint checkpoints/mycam --export-savedmodel export/sid/1

"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of scripts/test.py (``sid-ft-test``); imports nothing heavy."""
    p = argparse.ArgumentParser(
        description=(
            "Run a Learning-to-See-in-the-Dark model on RAW files: output = network(min(packed RAW * ratio, 1)), "
            "clipped to [0, 1], written as DIR/<stem>_out.png (16-bit by default). The graph is rebuilt from "
            "the checkpoint: a released SID checkpoint runs as plain SID, a fine-tuned one with its g_add head."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(p)
    _add_amplification(p.add_argument_group("amplification (one of these, or --test-list)"))
    _add_output(p.add_argument_group("output"))
    _add_running(p.add_argument_group("running"))
    return p


def _add_inputs(p: argparse.ArgumentParser) -> None:
    """What to run and on what: inputs, checkpoint, --merge-summaries, out dir, pair list, protocol."""
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="RAW files, folders (their RAW files, any case of extension) or glob patterns ('**' recurses)")
    p.add_argument("--checkpoint",
                   help="train dir, checkpoint prefix, or released SID checkpoint folder (e.g. checkpoints/Sony/); "
                        "a train dir that scored held-out pairs (--val-pairs) means its best checkpoint "
                        "(TRAIN_DIR/best/); required except with --merge-summaries")
    p.add_argument("--latest", action="store_true",
                   help="with a train dir as --checkpoint: its latest checkpoint, not its best on the held-out pairs")
    p.add_argument("--merge-summaries", metavar="DIR",
                   help="only merge DIR's summary.shard-K-of-N.json files (a finished sharded run) into "
                        "DIR/summary.json and .csv, then exit")
    p.add_argument("--out-dir", help="where outputs, summary.json and summary.csv go (created if needed)")
    p.add_argument("--test-list", metavar="LIST|DIR",
                   help="SID pair list ('short long ISO F' per line, paths relative to the list) or SID-layout folder "
                        "(short/, long/): the long exposures are the ground truth")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="all",
                   help="all: score every pair of --test-list on the float images (default); sid: SID's published "
                        "evaluation - test scenes, burst 00, every exposure, 8-bit PNGs scored as 8-bit, scenes "
                        "10034/10045/10172 scored but left out of the means (README: reproducing SID's tables)")


def _add_amplification(amp: argparse._ArgumentGroup) -> None:
    amp.add_argument("--ratio", type=float, help="amplification ratio, e.g. 100 (wins over the other two)")
    amp.add_argument("--target-exposure", type=float, metavar="SECONDS",
                     help="ratio = SECONDS / the input's exposure time (from its SID name, else its metadata)")
    amp.add_argument("--ratio-cap", type=float, default=300.0,
                     help="cap of SID's list rule min(long/short, cap) (default: %(default)s)")


def _add_output(out: argparse._ArgumentGroup) -> None:
    out.add_argument("--bits", type=int, choices=[8, 16], default=None,
                     help="PNG bit depth (default: 16; 8 with --protocol sid, as SID wrote its PNGs)")
    out.add_argument("--compare", action="store_true",
                     help="also write <stem>_compare.jpg beside each output: the short exposure brightened by the "
                          "ratio (LibRaw's rendering, i.e. without the network) | the output | the ground truth "
                          "(when known), labelled with PSNR/SSIM where known, 640 pixels a panel")
    out.add_argument("--orientation", choices=list(ORIENTATIONS), default=None,
                     help="camera: turn every PNG (output, ground truth, brightened input) the way the camera was "
                          "held, from the file's orientation flag (LibRaw's flip); sensor: leave it as the sensor "
                          "recorded it, as SID does. Default: camera for files and folders you give, sensor with "
                          "--test-list (SID's pairs)")
    out.add_argument("--skip-existing", action="store_true",
                     help="skip inputs whose outputs already exist (outputs are written atomically)")
    out.add_argument("--no-metrics", action="store_true", help="do not compute PSNR/SSIM against the ground truth")
    out.add_argument("--export-savedmodel", metavar="DIR",
                     help="also (or only) write a SavedModel: serving_default takes 'packed' (N, h, w, C) float32, "
                          "packed and amplified, and returns 'rgb' (N, s*h, s*w, 3) in [0, 1]")


def _add_running(run: argparse._ArgumentGroup) -> None:
    run.add_argument("--tile", type=int, metavar="N",
                     help="run in N x N tiles of packed pixels (rounded up to a multiple of 16) to bound memory")
    run.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, metavar="M",
                     help="tile overlap in packed pixels, blended with a raised cosine (default: %(default)s)")
    run.add_argument("--device", default=None,
                     help="cpu, gpu or gpu:K (default: TensorFlow's choice, a GPU when one is visible); "
                          "GPU memory grows on demand")
    run.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
                     help="arithmetic of the network (weights stay float32; input and output are float32): "
                          "auto = bf16 on a CPU with native bfloat16 (avx512_bf16/amx_bf16), fp16 on a CUDA GPU "
                          "with tensor cores, else fp32; recorded in summary.json and used by --export-savedmodel "
                          "(default: %(default)s)")
    run.add_argument("--shard", metavar="K/N",
                     help="process shard K of N (1-based) of the sorted input list; default from "
                          "SLURM_ARRAY_TASK_ID/_MIN/_STEP/_COUNT or Kubernetes JOB_COMPLETION_INDEX")
    run.add_argument("--shard-count", type=int, metavar="N",
                     help="number of shards for Kubernetes indexed Jobs (JOB_COMPLETION_INDEX); "
                          "or set SID_FT_SHARD_COUNT")
    run.add_argument("--decode-workers", type=int, default=2, help="threads decoding ahead (default: %(default)s)")
    run.add_argument("--write-workers", type=int, default=2,
                     help="threads writing PNGs and computing metrics (default: %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run or merge, print the outcome to stderr; the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.merge_summaries:
        return merge(args.merge_summaries)
    if not args.checkpoint:
        parser.error("--checkpoint is required (a train dir, checkpoint prefix or released SID folder)")
    try:
        from sid_ft.inference.run import run_inference

        shard = parse_shard(args.shard) if args.shard else shard_from_env(count=args.shard_count)
        if args.latest:
            from sid_ft.nets.checkpoint import resolve_checkpoint

            args.checkpoint = resolve_checkpoint(args.checkpoint, latest=True)
        opts = options_from_args(args, shard)
        if shard is not None:
            print(f"shard {shard[0]}/{shard[1]}", file=sys.stderr)
        summary = run_inference(opts)
    except SidFtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return report(summary)


def options_from_args(args: argparse.Namespace, shard: tuple[int, int] | None) -> InferOptions:
    """The parsed command line as :class:`InferOptions` (a progress bar only on a terminal)."""
    return InferOptions(
        checkpoint=args.checkpoint, inputs=list(args.inputs), test_list=args.test_list, out_dir=args.out_dir,
        bits=args.bits, ratio=args.ratio, target_exposure=args.target_exposure, ratio_cap=args.ratio_cap,
        tile=args.tile, overlap=args.overlap, shard=shard, skip_existing=args.skip_existing,
        device=args.device, precision=args.precision, export_savedmodel=args.export_savedmodel,
        decode_workers=args.decode_workers, write_workers=args.write_workers, metrics=not args.no_metrics,
        orientation=args.orientation, protocol=args.protocol, compare=args.compare,
        progress=not args.no_progress and sys.stderr.isatty())


def report(summary: RunSummary) -> int:
    """Print what the run wrote and which files failed; 1 when any failed, else 0."""
    if summary.savedmodel is not None:
        print(f"SavedModel written to {summary.savedmodel}", file=sys.stderr)
    if summary.records:
        print(summary.line(), file=sys.stderr)
        print(f"summary: {summary.summary_json}", file=sys.stderr)
    if summary.failed:
        print(f"{summary.failed} file(s) failed:", file=sys.stderr)
        for r in summary.records:
            if r.status == "failed":
                print(f"  {r.input}: {r.reason}", file=sys.stderr)
        return 1
    return 0


def merge(out_dir: str) -> int:
    """--merge-summaries: one summary.json / .csv from a sharded run's; 1 when a shard is missing or a file failed."""
    try:
        summary, missing = merge_shard_summaries(out_dir)
    except SidFtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary.line(), file=sys.stderr)
    print(f"summary: {summary.summary_json}", file=sys.stderr)
    if missing:
        print(f"no summary yet from shard(s) {', '.join(map(str, missing))}: not finished, or failed before writing "
              "one", file=sys.stderr)
    for r in summary.records:
        if r.status == "failed":
            print(f"  failed: {r.input}: {r.reason}", file=sys.stderr)
    return 1 if missing or summary.failed else 0
