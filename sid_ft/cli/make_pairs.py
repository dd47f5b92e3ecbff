"""``make_pairs.py`` / ``sid-ft-make-pairs``: SID-layout synthetic low-light pairs from clean long exposures.

Parses the command line, estimates read and row noise from dark frames when given, and calls
:func:`sid_ft.data.make_pairs.make_pairs`.  Exit 0 with a one-line JSON summary on stdout; exit 1
with a one-line ``make_pairs.py: error: ...`` on stderr for anything the user can fix.
"""
from __future__ import annotations

import argparse
import json
import sys

from sid_ft.errors import SidFtError

EXAMPLE = """\
noise model, per pixel, in DN of the RAW file (see sid_ft/data/noise.py):
  short = clip(round(K * Poisson(signal / ratio / K) + read + row[y] + black), 0, white)
  --gain K is NOT estimated from dark frames (it needs flat fields at several light levels);
  --dark-frames replaces --read-noise and --row-noise with values measured from the frames.

examples:
  # clean, well-exposed tripod shots of your camera in my_raws/; 3 ratios, 2 noisy frames each,
  # noise measured from lens-capped dark frames at the ISO to simulate, gain from your own calibration
  python scripts/make_pairs.py my_raws/ --out-dir datasets/mycam --ratios 100 250 300 \\
      --bursts 2 --gain 0.8 --dark-frames my_darks/ --seed 0
  # writes datasets/mycam/long/00001_00_10s.dng, datasets/mycam/short/00001_00_0.1s.dng,
  # 00001_00_0.04s.dng, 00001_00_0.0333s.dng, 00001_01_..., and make_pairs.json (the settings)

  # no dark frames: illustrative read and row noise, heavy-tailed read noise, one ratio
  python scripts/make_pairs.py my_raws/ --out-dir datasets/mycam_quick --ratios 300 --gain 0.8 \\
      --read-noise 2.5 --row-noise 0.5 --heavy-tail tukey:-0.2
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``make_pairs.py`` / ``sid-ft-make-pairs`` argument parser (imports nothing heavy)."""
    p = argparse.ArgumentParser(
        prog="make_pairs.py",
        description="Synthesise short exposures from clean long exposures (any Bayer RAW that LibRaw reads) "
                    "with a physics-based noise model (shot noise with a system gain, read noise, row noise, "
                    "quantisation, black level, clipping) and write SID-layout DNG pairs: "
                    "OUT/long/<scene>_00_<t>s.dng and OUT/short/<scene>_<burst>_<t/ratio>s.dng.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="RAW_OR_FOLDER",
                   help="clean long exposures: RAW files or folders of them (not recursive)")
    p.add_argument("--out-dir", required=True, help="dataset folder to write (long/, short/, make_pairs.json)")
    p.add_argument("--ratios", type=float, nargs="+", default=[100.0, 250.0, 300.0],
                   help="exposure ratios long/short (default: 100 250 300)")
    p.add_argument("--bursts", type=int, default=1, help="noisy short frames per ratio and scene (default: 1)")
    p.add_argument("--gain", type=float, default=1.0,
                   help="system gain K in DN per electron at the ISO to simulate (default: 1.0)")
    p.add_argument("--read-noise", type=float, default=2.0, help="read noise standard deviation, DN (default: 2.0)")
    p.add_argument("--row-noise", type=float, default=0.5,
                   help="row noise standard deviation (one offset per row), DN (default: 0.5)")
    p.add_argument("--heavy-tail", default=None, metavar="DIST:SHAPE",
                   help="heavy-tailed read noise: 'tukey:LAMBDA' (Tukey lambda, e.g. tukey:-0.2; > -0.5) or "
                        "'student-t:NU' (NU > 2); the standard deviation stays --read-noise (default: Gaussian)")
    p.add_argument("--dark-frames", default=None, metavar="DIR",
                   help="folder of dark frames (lens capped, same ISO): read and row noise are estimated "
                        "from them and replace --read-noise/--row-noise")
    p.add_argument("--fit-heavy-tail", action="store_true",
                   help="with --dark-frames: also fit a Tukey-lambda shape to the dark frames (rough)")
    p.add_argument("--black-level", type=float, nargs="+", default=None, metavar="DN",
                   help="black level of the short files: 1 value or 4 per colour index R G B G2 "
                        "(default: the source's)")
    p.add_argument("--white-level", type=float, default=None, help="white level of the short files (default: source's)")
    p.add_argument("--long-exposure", type=float, default=None, metavar="SECONDS",
                   help="exposure time for sources whose name/metadata has none")
    p.add_argument("--first-scene-id", type=int, default=1,
                   help="id of the first scene (SID: 0xxxx train, 1xxxx test, 2xxxx validation; default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that make_pairs made with other settings")
    return p


def _noise_params(args: argparse.Namespace):
    """The :class:`sid_ft.data.noise.NoiseParams` the flags ask for (before any dark frames)."""
    from sid_ft.data.noise import NoiseParams, parse_heavy_tail

    dist, shape = parse_heavy_tail(args.heavy_tail)
    black = None
    if args.black_level is not None:
        if len(args.black_level) not in (1, 4):
            raise SidFtError(None, "--black-level takes 1 value or 4 (R G B G2)")
        black = args.black_level[0] if len(args.black_level) == 1 else tuple(args.black_level)
    return NoiseParams(gain=args.gain, read_noise=args.read_noise, row_noise=args.row_noise,
                       read_noise_dist=dist, read_noise_shape=shape, black_level=black,
                       white_level=args.white_level)


def _with_dark_frames(params, args: argparse.Namespace):
    """``params`` with read and row noise measured from ``--dark-frames`` (reported on stderr)."""
    from sid_ft.data.calibrate import estimate_from_dark_frames, load_dark_frames

    frames, meta_black, _ = load_dark_frames(args.dark_frames)
    est = estimate_from_dark_frames(frames, black=sum(meta_black) / 4, estimate_shape=args.fit_heavy_tail)
    print(f"dark frames ({est.n_frames} x {est.frame_shape[0]}x{est.frame_shape[1]}): "
          f"read noise {est.read_noise:.3f} DN, row noise {est.row_noise:.3f} DN, "
          f"black {est.black_level_mean:.2f} DN (metadata {sum(meta_black) / 4:.2f})"
          + (f", Tukey lambda {est.read_noise_shape:.3f}" if est.read_noise_shape is not None else ""),
          file=sys.stderr)
    return est.apply_to(params)


def main(argv: list[str] | None = None) -> int:
    """Run ``make_pairs.py`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        from tqdm import tqdm
        from sid_ft.data.make_pairs import make_pairs

        params = _noise_params(args)
        if args.dark_frames is not None:
            params = _with_dark_frames(params, args)
        pairs = make_pairs(args.inputs, args.out_dir, ratios=args.ratios, params=params, seed=args.seed,
                           bursts=args.bursts, first_scene_id=args.first_scene_id,
                           long_exposure=args.long_exposure, overwrite=args.overwrite,
                           progress=lambda it: tqdm(it, desc="scenes", unit="scene", file=sys.stderr))
    except SidFtError as err:
        print(f"make_pairs.py: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"out_dir": str(args.out_dir), "pairs": len(pairs),
                      "scenes": len({p.scene_id for p in pairs})}))
    return 0
