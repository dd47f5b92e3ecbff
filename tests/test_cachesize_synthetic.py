"""Caches that fit, for synthetic pairs: clean photos (packed + ground truth) and dark frames (packed) count too.

Inputs are tiny real DNGs (tests/builders.py): clean photos of 64x96 photosites (packed 32x48x4),
dark frames of 32x64 (packed 16x32x4), and the SID-layout pair tree of the ``dataset`` fixture.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from sid_ft.data.pairs import find_pairs
from sid_ft.data.sampling import DecodeCache
from sid_ft.errors import SidFtError
from sid_ft.training import cachesize
from sid_ft.training.loop import train
from sid_ft.training.options import TrainOptions

from tests.builders import make_dng

NPY = cachesize.NPY_HEADER
CLEAN_PACKED = NPY + 32 * 48 * 4 * 2  # uint16
CLEAN_GT = NPY + 64 * 96 * 3 * 2  # (2h, 2w, 3) float16
DARK_PACKED = NPY + 16 * 32 * 4 * 2  # uint16


def _inputs(root: Path, photos: int = 2, darks: int = 3) -> tuple[Path, Path]:
    """``root/clean`` (smooth photos at about 30 % of full scale) and ``root/darks`` (black + read noise)."""
    (root / "clean").mkdir(parents=True)
    (root / "darks").mkdir(parents=True)
    for i in range(photos):
        make_dng(root / "clean" / f"photo_{i}.dng", 64, 96, seed=i, exposure=1.0, level=0.3)
    for i in range(darks):
        make_dng(root / "darks" / f"dark_{i}.dng", 32, 64, seed=10 + i, exposure=0.1, level=0.0)
    return root / "clean", root / "darks"


def _npy_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.npy"))


def test_clean_photos_and_dark_frames_are_counted_from_their_headers(tmp_path):
    clean, darks = _inputs(tmp_path)
    (clean / "notes.txt").write_text("not a RAW file: not listed")
    est = cachesize.estimate_caches([], tmp_path / "cache", feature_cache=True, clean_dir=clean, dark_frames=darks)
    assert (est.pairs, est.clean_photos, est.dark_frames) == (0, 2, 3) and not est.unreadable
    assert est.decoded == 2 * (CLEAN_PACKED + CLEAN_GT) + 3 * DARK_PACKED == 111_488
    assert est.features == 0 and est.cached_already == 0
    only_clean = cachesize.estimate_caches([], tmp_path / "cache", feature_cache=False, clean_dir=clean)
    assert (only_clean.clean_photos, only_clean.dark_frames) == (2, 0)
    assert only_clean.decoded == 2 * (CLEAN_PACKED + CLEAN_GT)
    assert not (tmp_path / "cache").exists()  # headers only: nothing decoded, nothing written


def test_a_clean_photo_that_is_also_a_long_exposure_is_counted_once(dataset, tmp_path):
    pairs = find_pairs(dataset)
    alone = cachesize.estimate_caches(pairs, tmp_path / "cache", feature_cache=False)
    both = cachesize.estimate_caches(pairs, tmp_path / "cache", feature_cache=False, clean_dir=dataset / "long")
    assert both.clean_photos == 2 and both.pairs == 2
    assert both.decoded == alone.decoded + 2 * CLEAN_PACKED  # their ground truths are the pairs' already


def test_the_message_counts_clean_photos_and_dark_frames(tmp_path):
    clean, darks = _inputs(tmp_path)
    est = cachesize.estimate_caches([], tmp_path / "cache", feature_cache=False, clean_dir=clean, dark_frames=darks)
    with pytest.raises(SidFtError) as err:
        cachesize.check_caches(est, tmp_path / "cache", est.decoded / 2 / 1e9, report=lambda m: None)
    assert "the caches of 2 clean photo(s) and 3 dark frame(s) need 0.111 MB more" in str(err.value)
    assert "--clean-dir / --dark-frames" in str(err.value)


def test_synthetic_only_run_that_does_not_fit_stops_before_anything_is_written(pretrained, tmp_path):
    clean, darks = _inputs(tmp_path / "inputs")
    run = tmp_path / "run"
    opts = TrainOptions(clean_dir=str(clean), dark_frames=str(darks), gain=3.0, pretrained=pretrained,
                        train_dir=str(run), steps=2, patch_size=16, progress=False, g_add_width=8, g_add_head=True,
                        g_add_rank=0, cache_max_gb=50_000 / 1e9)

    with pytest.raises(SidFtError) as err:
        train(opts, report=lambda m: None)
    assert err.value.path == str(run / "cache")
    assert "the caches of 2 clean photo(s) and 3 dark frame(s) need 0.111 MB more" in str(err.value)
    assert "Nothing was written" in str(err.value) and "--cache-max-gb 5e-05" in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == []  # no cache (not even a clean photo's figures), no config


def test_files_already_cached_count_as_there(tmp_path):
    clean, darks = _inputs(tmp_path)
    cache_dir = tmp_path / "cache"
    before = cachesize.estimate_caches([], cache_dir, feature_cache=False, clean_dir=clean, dark_frames=darks)
    cache = DecodeCache(cache_dir)
    cache.packed(str(clean / "photo_0.dng"))  # as the clean-photo loader decodes them
    cache.reference(str(clean / "photo_0.dng"))
    cache.packed(str(darks / "dark_1.dng"))  # as the dark crops are decoded
    partly = cachesize.estimate_caches([], cache_dir, feature_cache=False, clean_dir=clean, dark_frames=darks)
    assert partly.cached_already == CLEAN_PACKED + CLEAN_GT + DARK_PACKED == _npy_bytes(cache_dir)
    assert partly.decoded == before.decoded - partly.cached_already
    for i in range(2):
        cache.packed(str(clean / f"photo_{i}.dng"))
        cache.reference(str(clean / f"photo_{i}.dng"))
    for i in range(3):
        cache.packed(str(darks / f"dark_{i}.dng"))
    after = cachesize.estimate_caches([], cache_dir, feature_cache=False, clean_dir=clean, dark_frames=darks)
    assert _npy_bytes(cache_dir) == before.decoded == after.cached_already and after.total == 0
