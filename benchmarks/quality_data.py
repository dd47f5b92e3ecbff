"""The training data of a quality-benchmark run (``bench_quality.py --data``): real pairs, few pairs,
synthetic pairs from clean photos and dark frames, or both.

Each target camera of the benchmark's world (:mod:`sid_ft.data.demo_cameras`) has, beside its
SID-layout pairs, what a user without many pairs has: ``dark/`` (8 lens-capped frames),
``clean/`` (its training scenes' long exposures: photos already taken) and ``two_pairs/`` (2 of
its training pairs).  A variant names which of these a run trains on:

* ``pairs``          — every real training pair of the case (18 on ``outnoise``: 6 scenes x 3 ratios);
* ``2pairs``         — the 2 pairs of ``two_pairs/``;
* ``sampled``        — 0 pairs: ``--clean-dir clean/ --dark-frames dark/ --gain K`` with the true K
  (the noise of each synthetic patch: shot noise from K, plus a crop of a real dark frame);
* ``parametric``     — 0 pairs: ``--clean-dir clean/ --noise-profile`` a profile calibrated from
  ``dark/`` with ``--gain K`` (:func:`sid_ft.data.calibrate.calibrate`), no frames at training time;
* ``2pairs+sampled`` — ``two_pairs/`` + ``clean/`` + ``dark/``, no ``--gain``: the run estimates K
  from the 2 pairs (photon transfer), at the default real/synthetic share.
"""
from __future__ import annotations

import json
from pathlib import Path

from sid_ft.data.calibrate import calibrate
from sid_ft.data.noise_profile import save_noise_profile

DATA_VARIANTS = ("pairs", "2pairs", "sampled", "parametric", "2pairs+sampled")
REFERENCE = "pairs"
"""The variant the others' gains are compared with (``of pairs`` in the table)."""


def parse_variants(text: str) -> list[str]:
    """``--data``'s comma-separated variants, checked."""
    variants = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in variants if v not in DATA_VARIANTS]
    if unknown or not variants:
        raise SystemExit(f"--data: unknown {unknown}; choose from {', '.join(DATA_VARIANTS)}")
    return variants


def given_gain_profile(case_dir: Path, workdir: Path, true_gain: float) -> Path:
    """``calibrate.py --dark-frames <case>/dark --gain K``'s noise.json, written once under ``workdir/profiles``."""
    out = workdir / "profiles" / f"{case_dir.name}_given_gain.json"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        save_noise_profile(calibrate(case_dir / "dark", gain=true_gain), out)
    return out


def variant_options(variant: str, case_dir: Path, workdir: Path, true_gain: float,
                    synthetic_share: float | None = None) -> dict:
    """``TrainOptions`` fields of a variant: ``dataset_dir`` (None for 0 pairs) and the synthetic-pair options;
    ``synthetic_share`` (None: the training default) applies where real and synthetic patches mix."""
    clean, dark = str(case_dir / "clean"), str(case_dir / "dark")
    two = str(case_dir / "two_pairs")
    mixed = {"dataset_dir": two, "clean_dir": clean, "dark_frames": dark}
    if synthetic_share is not None:
        mixed["synthetic_share"] = synthetic_share
    return {
        "pairs": {"dataset_dir": str(case_dir)},
        "2pairs": {"dataset_dir": two},
        "sampled": {"dataset_dir": None, "clean_dir": clean, "dark_frames": dark, "gain": true_gain},
        "parametric": {"dataset_dir": None, "clean_dir": clean,
                       "noise_profile": str(given_gain_profile(case_dir, workdir, true_gain))},
        "2pairs+sampled": mixed,
    }[variant]


def mixes(variant: str) -> bool:
    """Whether real and synthetic patches mix in a variant (``--synthetic-share`` applies)."""
    return variant == "2pairs+sampled"


def gain_from_two_pairs(case_dir: Path) -> tuple[float, float | None, str]:
    """``calibrate.py --dark-frames <case>/dark --pairs <case>/two_pairs``: (K, its standard error, source)."""
    profile = calibrate(case_dir / "dark", pairs_dir=case_dir / "two_pairs")
    return profile.gain, profile.stderr.get("gain"), profile.gain_source


def run_synthetic_noise(train_dir: Path) -> dict | None:
    """The ``"synthetic"`` block of a run's ``config.json`` (K used, its source, mode...), None without one."""
    path = train_dir / "config.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("synthetic")


def _gain_of(rows: list[dict], base_psnr: float, variant: str) -> float | None:
    """Mean PSNR gain over the base of the row trained on ``variant`` (a data label starting with it), or None."""
    for row in rows:
        if row.get("data") and row["data"].split(" share ")[0] == variant:
            return sum(row["psnr"]) / len(row["psnr"]) - base_psnr
    return None


def no_pairs_targets(summary: dict) -> list[str]:
    """Issue #18's targets, checked on one case's summary (``print_case``'s, with ``gain_k``); a line each, for the
    targets whose rows the run has (the others need their rows: ``--data pairs,sampled,...``)."""
    rows, base = summary["rows"], summary["base_psnr"]
    gains = {v: _gain_of(rows, base, v) for v in ("pairs", "sampled", "parametric", "2pairs+sampled")}
    lines = []
    pairs = gains["pairs"]
    if pairs and gains["sampled"] is not None:
        share = gains["sampled"] / pairs
        lines.append(f"0 pairs (sampled darks, given K): {100 * share:.0f}% of 18 pairs' gain (target >= 90%): "
                     + ("met" if share >= 0.9 else "NOT met"))
    if pairs and gains["2pairs+sampled"] is not None:
        ok = gains["2pairs+sampled"] >= pairs
        lines.append(f"2 pairs + darks + clean: {gains['2pairs+sampled']:+.2f} vs 18 pairs' {pairs:+.2f} dB "
                     f"(target >=): " + ("met" if ok else "NOT met"))
    if gains["sampled"] is not None and gains["parametric"] is not None:
        ok = gains["sampled"] > gains["parametric"]
        lines.append(f"sampled darks {gains['sampled']:+.2f} vs parametric {gains['parametric']:+.2f} dB "
                     f"(target: sampled beats parametric): " + ("met" if ok else "NOT met"))
    k = summary.get("gain_k")
    if k:
        err = k["from_two_pairs"] / k["true"] - 1
        lines.append(f"K from 2 pairs: {100 * err:+.1f}% of the true K (target within 15%): "
                     + ("met" if abs(err) <= 0.15 else "NOT met"))
    return lines
