"""Short/long exposure pairs in the Learning-to-See-in-the-Dark layout.

Two ways to name the pairs:

* a SID-layout folder: ``<dataset_dir>/short/`` and ``<dataset_dir>/long/``
  holding files named ``<scene>_<burst>_<seconds>s.<ext>`` (any extension in
  :data:`sid_ft.io.raw.RAW_EXTENSIONS`, case-insensitive).  Each short file is
  paired with the long file of the same scene id; when a scene has several long
  files, the one with the lowest burst index (then the first by name) is used,
  as in SID's lists.  :func:`find_pairs`.
* a SID list file (``Sony_train_list.txt`` format): one pair per line,
  ``./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9``,
  paths relative to the list file's folder.  :func:`read_pair_list`.

Exposure times come from the file names.  Splits follow SID's scene ids: first
digit 0 train, 1 test, 2 val (:func:`sid_ft.data.sid.split_of`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sid_ft.data.sid import SPLITS, exposure_ratio, split_of
from sid_ft.errors import SidFtError
from sid_ft.io.raw import RAW_EXTENSIONS
from sid_ft.io.sid_names import sid_name_parts

_NOT_A_SID_NAME = "not a SID file name '<scene>_<burst>_<seconds>s.<ext>'"


@dataclass(frozen=True)
class Pair:
    """One training/evaluation pair: a short exposure and its long-exposure reference.

    Exposures are in seconds.  ``iso`` / ``fnumber`` are the list file's tokens
    as written (e.g. ``'ISO200'``, ``'F9'``), None when unknown.
    """
    short_path: str
    long_path: str
    short_exposure: float
    long_exposure: float
    scene_id: str
    iso: str | None = None
    fnumber: str | None = None

    def ratio(self, cap: float = 300.0) -> float:
        """SID's amplification ratio ``min(long_exposure / short_exposure, cap)``."""
        return exposure_ratio(self.short_exposure, self.long_exposure, cap)


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS.values():
        raise ValueError(f"split must be None, 'train', 'test' or 'val', got {split!r}")


def _in_split(scene: str, split: str | None, where: str | os.PathLike, problems: list[SidFtError]) -> bool:
    """Whether ``scene`` belongs to ``split`` (always, for None); a scene without a split is noted as a problem."""
    if split is None:
        return True
    try:
        return split_of(scene) == split
    except SidFtError as err:
        problems.append(SidFtError(where, err.reason))
        return False


def _report(problems: list[SidFtError], skipped: list | None, where: str | os.PathLike, what: str) -> None:
    """Raise one SidFtError listing all problems, or append them to ``skipped``."""
    if not problems:
        return
    if skipped is not None:
        skipped.extend(problems)
        return
    listing = "; ".join(p.reason if p.path is None else f"{p.path}: {p.reason}" for p in problems)
    raise SidFtError(where, f"{len(problems)} {what}: {listing}")


def _raw_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in RAW_EXTENSIONS)


def _check_dataset_dir(dataset_dir: str | os.PathLike) -> Path:
    """The dataset folder as a Path once it holds ``short/`` and ``long/``; SidFtError otherwise."""
    root = Path(dataset_dir)
    if not root.exists():
        raise SidFtError(dataset_dir, "dataset folder not found")
    if not root.is_dir():
        raise SidFtError(dataset_dir, "is a file; expected a dataset folder holding short/ and long/")
    missing = [name for name in ("short", "long") if not (root / name).is_dir()]
    if missing:
        raise SidFtError(dataset_dir, "not a SID-layout dataset: no " + " and no ".join(f"{m}/" for m in missing)
                         + " folder (expected short/ and long/ with files named "
                           "<scene>_<burst>_<seconds>s.<ext>)")
    return root


def _long_files_by_scene(folder: Path, problems: list[SidFtError]) -> dict[str, tuple[Path, float]]:
    """Scene id -> (long file, exposure seconds): the lowest burst index, then the first by name."""
    longs: dict[str, list[tuple[str, str, Path, float]]] = {}
    for path in _raw_files(folder):
        parts = sid_name_parts(path.name)
        if parts is None:
            problems.append(SidFtError(path, _NOT_A_SID_NAME))
            continue
        scene, burst, seconds = parts
        longs.setdefault(scene, []).append((burst, path.name, path, seconds))
    chosen = {}
    for scene, candidates in longs.items():
        _, _, long_path, long_seconds = min(candidates, key=lambda c: (int(c[0]), c[1]))
        chosen[scene] = (long_path, long_seconds)
    return chosen


def _pair_short_files(root: Path, longs: dict[str, tuple[Path, float]], split: str | None,
                      problems: list[SidFtError]) -> list[Pair]:
    """A Pair for each short file in ``root/short`` of ``split`` whose scene has a long file."""
    pairs: list[Pair] = []
    for path in _raw_files(root / "short"):
        parts = sid_name_parts(path.name)
        if parts is None:
            problems.append(SidFtError(path, _NOT_A_SID_NAME))
            continue
        scene, _, seconds = parts
        if not _in_split(scene, split, path, problems):
            continue
        if scene not in longs:
            problems.append(SidFtError(path, f"no long exposure of scene {scene} in {root / 'long'}"))
            continue
        long_path, long_seconds = longs[scene]
        pairs.append(Pair(short_path=str(path), long_path=str(long_path), short_exposure=seconds,
                          long_exposure=long_seconds, scene_id=scene))
    return pairs


def find_pairs(dataset_dir: str | os.PathLike, split: str | None = None,
               skipped: list | None = None) -> list[Pair]:
    """Pairs in a SID-layout folder (``short/`` and ``long/``), sorted by short file name.

    Args:
        dataset_dir: folder holding ``short/`` and ``long/``.
        split: None for every scene, or 'train' / 'test' / 'val' (SID scene-id rule).
        skipped: None: problems (short files without a long partner, RAW files
            whose names are not SID names) raise one :class:`SidFtError` listing
            them all.  A list: each problem is appended to it as a
            :class:`SidFtError` and that file is skipped.

    Raises :class:`SidFtError` for a missing folder, a missing ``short/`` or
    ``long/``, listed problems (see ``skipped``) and an empty result.
    Files whose extension is not a RAW extension are ignored.
    """
    _check_split(split)
    root = _check_dataset_dir(dataset_dir)
    problems: list[SidFtError] = []
    longs = _long_files_by_scene(root / "long", problems)
    pairs = _pair_short_files(root, longs, split, problems)
    _report(problems, skipped, dataset_dir, "problem(s) with the dataset files")
    if not pairs:
        which = f" for split '{split}'" if split else ""
        raise SidFtError(dataset_dir, f"no short/long pairs found{which} (short files in "
                                      f"short/ need a long file of the same scene id in long/)")
    return pairs


def _read_list_text(list_file: str | os.PathLike) -> str:
    """The text of a pair list; SidFtError for a missing, folder or unreadable list."""
    lf = Path(list_file)
    if not lf.exists():
        raise SidFtError(list_file, "pair list not found")
    if lf.is_dir():
        raise SidFtError(list_file, "is a folder; expected a SID pair list file")
    try:
        return lf.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SidFtError(list_file, f"cannot read the pair list: {err}") from err


def _pair_of_line(fields: list[str], line: str, where: str, base: Path, split: str | None,
                  check_exists: bool, problems: list[SidFtError]) -> Pair | None:
    """The Pair one list line names (``<short> <long> [ISO] [F-number]``), or None with its problem noted."""
    if len(fields) < 2:
        problems.append(SidFtError(where, f"expected '<short> <long> [ISO] [F-number]', got {line.strip()!r}"))
        return None
    short_path, long_path = (os.path.normpath(base / f) for f in fields[:2])
    short_parts, long_parts = sid_name_parts(fields[0]), sid_name_parts(fields[1])
    bad = [f for f, p in ((fields[0], short_parts), (fields[1], long_parts)) if p is None]
    if bad:
        problems.append(SidFtError(where, _NOT_A_SID_NAME + ": " + ", ".join(bad)))
        return None
    scene = short_parts[0]
    if not _in_split(scene, split, where, problems):
        return None
    if check_exists:
        absent = [p for p in (short_path, long_path) if not os.path.isfile(p)]
        if absent:
            problems.append(SidFtError(where, "file not found: " + ", ".join(absent)))
            return None
    return Pair(short_path=short_path, long_path=long_path, short_exposure=short_parts[2],
                long_exposure=long_parts[2], scene_id=scene,
                iso=fields[2] if len(fields) > 2 else None,
                fnumber=fields[3] if len(fields) > 3 else None)


def read_pair_list(list_file: str | os.PathLike, split: str | None = None,
                   skipped: list | None = None, check_exists: bool = True) -> list[Pair]:
    """Pairs from a SID list file, in file order.

    Each non-blank line (``#`` starts a comment line) is ``<short> <long> [ISO] [F-number]``;
    relative paths are taken from the list file's folder.  Exposures come from
    the SID file names.

    Args:
        list_file: the list (e.g. ``Sony_train_list.txt`` in the dataset root).
        split: None, or 'train' / 'test' / 'val' to keep only those scenes.
        skipped: None: problems raise one :class:`SidFtError` listing them all
            (with line numbers); a list: each problem is appended and the line skipped.
        check_exists: True (the default, for training and evaluation): a pair
            whose short or long file does not exist is a problem.  False: parse
            only (e.g. to inspect the lists without the images).

    Raises :class:`SidFtError` for a missing or unreadable list, listed problems and an empty result.
    """
    _check_split(split)
    text = _read_list_text(list_file)
    base = Path(list_file).parent
    problems: list[SidFtError] = []
    pairs: list[Pair] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        pair = _pair_of_line(fields, line, f"{list_file}:{number}", base, split, check_exists, problems)
        if pair is not None:
            pairs.append(pair)
    _report(problems, skipped, list_file, "problem(s) in the pair list")
    if not pairs:
        which = f" for split '{split}'" if split else ""
        raise SidFtError(list_file, f"no pairs in the list{which}")
    return pairs
