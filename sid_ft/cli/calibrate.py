"""``calibrate.py`` / ``sid-ft-calibrate``: a camera's noise profile from dark frames (and pairs or flats for K).

Parses the command line, calls :func:`sid_ft.data.calibrate.calibrate`, prints each
estimate with its standard error on stdout and writes the profile
(:func:`sid_ft.data.noise_profile.save_noise_profile`).  Each file left out is one
``calibrate.py: skipped PATH: REASON`` line on stderr, each warning one
``calibrate.py: warning: ...`` line; the rest is used.  Exit 0 when a profile was
written; exit 1 with one ``calibrate.py: error: ...`` line when nothing usable is left.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from sid_ft.errors import SidFtError

PROG = "calibrate.py"

EXAMPLE = """\
what it measures, per 2x2 CFA position where it differs (DN of the RAW file):
  from the dark frames: black level, read noise and its tail shape (Tukey lambda), row noise,
  column noise, the fixed pattern (mean dark minus black, with any corner glow), written beside
  the profile (noise.json -> noise.fixed_pattern.npz);
  the gain K (DN per electron): from --pairs (photon transfer on short/long pairs), else from
  --flat-fields (2+ frames at each of 2+ levels), else --gain, else guessed as 1 (said so).

examples:
  # 8 lens-capped frames at the ISO you shoot at, plus 2 tripod pairs (SID layout) for K
  python scripts/calibrate.py --dark-frames my_darks/ --pairs datasets/mycam --out noise.json
  # no pairs: K from flat fields at several levels, or give it
  python scripts/calibrate.py --dark-frames my_darks/ --flat-fields my_flats/ --out noise.json
  python scripts/calibrate.py --dark-frames my_darks/ --gain 2.8 --out noise.json
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``calibrate.py`` / ``sid-ft-calibrate`` argument parser (imports nothing heavy)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Measure a camera's noise at one ISO from lens-capped dark frames (any Bayer RAW "
                    "that LibRaw reads), and its gain K from short/long pairs or flat fields, and write "
                    "a noise profile (JSON plus the fixed pattern as .npz) for synthetic training pairs.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dark-frames", required=True, nargs="+", metavar="DIR_OR_FILE",
                   help="dark frames (lens capped, viewfinder covered, at the ISO to calibrate): RAW files "
                        "or folders of them; 2 at least, 8 recommended")
    p.add_argument("--pairs", default=None, metavar="DIR",
                   help="SID-layout folder (short/ and long/, files <scene>_<burst>_<seconds>s.<ext>) of "
                        "aligned tripod pairs: K by photon transfer (2 pairs suffice)")
    p.add_argument("--flat-fields", default=None, nargs="+", metavar="DIR_OR_FILE",
                   help="flat fields (uniform light, unclipped), 2+ frames at each of 2+ levels: K by "
                        "photon transfer when there are no --pairs")
    p.add_argument("--gain", type=float, default=None, metavar="K",
                   help="K in DN per electron at this ISO, when neither --pairs nor --flat-fields is given")
    p.add_argument("--out", required=True, metavar="JSON", help="noise profile to write, e.g. noise.json")
    return p


def _tile(values, fmt: str = "{:.2f}") -> str:
    """A (2, 2) per-position array as 'TL TR BL BR'."""
    return " ".join(fmt.format(v) for v in np.asarray(values, dtype=float).ravel())


def _pm(value: float, se: float | None, fmt: str = "{:.3f}") -> str:
    return fmt.format(value) + ("" if se is None else " ± " + fmt.format(se))


def _describe_files(profile) -> str:
    from sid_ft.data.raw_frames import iso_text

    h, w = profile.image_size
    exposure = "unknown exposure" if profile.exposure_s is None else f"{profile.exposure_s:g} s"
    return (f"camera {profile.camera or '(unnamed)'}, ISO {iso_text(profile.iso)}, {exposure}, "
            f"{profile.cfa}, {h}x{w}, white {profile.white_level:g}, "
            f"black (metadata, TL TR BL BR) {_tile(profile.black_level_metadata, '{:g}')}")


def _gain_line(profile) -> str:
    se, source, k = profile.stderr.get("gain"), profile.gain_source, profile.gain
    if source == "guessed":
        return (f"gain K: {k:g} DN/e- GUESSED, not measured (no --pairs, --flat-fields or --gain); "
                "1 is make_pairs' default, not this camera's: give --pairs with 2 short/long pairs to measure it")
    if source == "given":
        return f"gain K: {k:g} DN/e- (given)"
    details = profile.inputs.get("gain", {})
    if source == "pairs":
        pairs = details.get("pairs", [])
        per = " ".join(f"{v:.3f}" if v is not None else "-" for v in details.get("per_input", []))
        ratios = " ".join(f"{p['brightness_ratio']:.1f}" for p in pairs)
        return (f"gain K: {_pm(k, se)} DN/e- from {len(pairs)} pair(s) (per pair {per}; brightness "
                f"ratios {ratios}); per position {_tile(profile.gain_per_position, '{:.3f}')}")
    return (f"gain K: {_pm(k, se)} DN/e- from flat fields at {details.get('levels')} level(s); "
            f"per position {_tile(profile.gain_per_position, '{:.3f}')}")


def report_lines(profile, npz_name: str | None) -> list[str]:
    """The human-readable report of a :class:`sid_ft.data.noise_profile.NoiseProfile`, one estimate a line."""
    se = profile.stderr
    return [
        _describe_files(profile),
        f"dark frames: {profile.dark_frames} used"
        + (f", {len(profile.inputs.get('skipped', []))} file(s) skipped" if profile.inputs.get("skipped") else ""),
        f"black level (TL TR BL BR): {_tile(profile.black_level)} DN, ± {_tile(se['black_level'], '{:.3f}')}",
        f"read noise: {_pm(profile.read_noise, se['read_noise'])} DN (per position "
        f"{_tile(profile.read_noise_per_position, '{:.3f}')}; rounding's 1/12 DN^2 excluded)",
        f"read-noise tail: Tukey lambda {_pm(profile.read_noise_shape, se['read_noise_shape'])} "
        f"(about 0.14 is Gaussian, smaller is heavier-tailed), excess kurtosis "
        f"{profile.read_noise_excess_kurtosis:.2f}",
        f"row noise: {_pm(profile.row_noise, se['row_noise'])} DN (even, odd rows "
        f"{_tile(profile.row_noise_per_phase, '{:.3f}')})",
        f"column noise: {_pm(profile.column_noise, se['column_noise'])} DN (even, odd columns "
        f"{_tile(profile.column_noise_per_phase, '{:.3f}')})",
        f"fixed pattern: std {profile.fixed_pattern_std:.3f} DN, dark shading range "
        f"{profile.dark_shading_range:.2f} DN, ± {profile.fixed_pattern_stderr:.3f} DN per pixel "
        f"(temporal noise averaged over {profile.dark_frames} frames)"
        + (f" -> {npz_name}" if npz_name else ""),
        _gain_line(profile),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run ``calibrate.py`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    skipped, warnings = [], []
    try:
        from sid_ft.data.calibrate import calibrate
        from sid_ft.data.noise_profile import save_noise_profile

        try:
            profile = calibrate(args.dark_frames, pairs_dir=args.pairs, flat_fields=args.flat_fields,
                                gain=args.gain, skipped=skipped, warnings=warnings)
        finally:
            for err in skipped:
                print(f"{PROG}: skipped {err}", file=sys.stderr)
            for line in warnings:
                print(f"{PROG}: warning: {line}", file=sys.stderr)
        npz = save_noise_profile(profile, args.out)
    except SidFtError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    for line in report_lines(profile, npz.name if npz else None):
        print(line)
    print(f"wrote {args.out}" + (f" and {npz}" if npz else ""))
    return 0
