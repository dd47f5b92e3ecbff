#!/usr/bin/env python3
"""How far sid_ft's SSIM is from MATLAB's ``ssim`` defaults, on synthetic 8-bit RGB pairs.

SID's published SSIM comes from MATLAB on 8-bit PNGs; ``test.py --protocol sid`` reports
:func:`sid_ft.eval.metrics.score_8bit` (scikit-image, per channel, interior).  This script scores
the same pairs three ways and prints the table the README quotes:

* ours: :func:`sid_ft.eval.metrics.score_8bit`'s SSIM;
* MATLAB per channel: ``mean(ssim(A, ref, 'DataFormat', 'SSC'))`` (2-D Gaussian per colour
  plane, 'replicate' padding, full map);
* MATLAB default: ``ssim(A, ref)``, which treats an RGB image as a 3-D volume.

The MATLAB columns come from tests/matlab_ssim_reference.py, written from MATLAB's documented
defaults (no MATLAB here).  Pairs: a smooth coloured scene with edges against a tinted copy
with Gaussian noise of the given standard deviation (8-bit steps), or a blurred copy.

    python benchmarks/bench_ssim_matlab.py                  # 512x768, a few seconds
    python benchmarks/bench_ssim_matlab.py --size 1424x2128 # a Sony frame at half resolution
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def blurred_pair(h: int, w: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(output, ground truth): the ground truth of ``synthetic_pair`` and a Gaussian-blurred copy of it."""
    from scipy import ndimage

    from matlab_ssim_reference import synthetic_pair

    _, gt = synthetic_pair(h, w, 0.0)
    out = ndimage.gaussian_filter(gt.astype(np.float64), sigma=(sigma, sigma, 0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), gt


def main(argv: list[str] | None = None) -> None:
    from matlab_ssim_reference import matlab_ssim, synthetic_pair
    from sid_ft.eval.metrics import score_8bit

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python benchmarks/bench_ssim_matlab.py\n"
                                       "  python benchmarks/bench_ssim_matlab.py --size 1424x2128\n"
                                       "  python benchmarks/bench_ssim_matlab.py --noise 2 4 8 --blur 1 2\n")
    p.add_argument("--size", default="512x768", help="HxW of the synthetic images (default: %(default)s)")
    p.add_argument("--noise", type=float, nargs="*", default=[2.0, 4.0, 8.0, 16.0],
                   help="noise standard deviations in 8-bit steps (default: %(default)s)")
    p.add_argument("--blur", type=float, nargs="*", default=[1.0, 2.0], help="blur sigmas in pixels")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    cases = [(f"noise {n:g}", synthetic_pair(h, w, n)) for n in args.noise]
    cases += [(f"blur {b:g}", blurred_pair(h, w, b)) for b in args.blur]
    print(f"{h}x{w} uint8 RGB")
    print("| pair | PSNR dB | ours | MATLAB per channel ('SSC') | ours - per channel | MATLAB default (volume) "
          "| ours - default |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (out, gt) in cases:
        psnr, ours = score_8bit(out, gt)
        per_channel = matlab_ssim(out, gt, channels=True)
        volume = matlab_ssim(out, gt)
        print(f"| {name} | {psnr:.2f} | {ours:.4f} | {per_channel:.4f} | {ours - per_channel:+.4f} | "
              f"{volume:.4f} | {ours - volume:+.4f} |")


if __name__ == "__main__":
    main()
