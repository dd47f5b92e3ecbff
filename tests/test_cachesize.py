"""Caches that fit: estimates before decoding, the limit, compact packed input, ENOSPC leaves nothing half-written."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sid_ft.training import cachesize
from sid_ft.data import sampling
from sid_ft.io import raw as sid_raw
from sid_ft.io.pack import pack_raw
from sid_ft._tf import tf1
from sid_ft.data.pairs import find_pairs
from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.training.loop import train

from tests.builders import make_pairs_tree, train_opts as _opts
from tests.test_xtrans import FUJI_BLACK, FUJI_WHITE, fuji_scene, phase


def _npy_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.npy"))


@pytest.mark.parametrize("cfa, black", [("GRBG", (256, 250, 260, 252)), ("xtrans", FUJI_BLACK)])
def test_packed_integers_give_pack_raw_bit_for_bit(tmp_path, cfa, black):
    path = tmp_path / "x.dng"
    if cfa == "xtrans":
        write_dng(path, fuji_scene(60, 72), cfa=phase(1, 2), black_level=black, white_level=FUJI_WHITE)
    else:
        mosaic = (np.random.default_rng(0).uniform(0, 1, (40, 62)) * 4000 + 100).astype(np.uint16)
        write_dng(path, mosaic, cfa=cfa, black_level=black, white_level=4095)
    with sid_raw.open_raw(path) as raw:
        reference = pack_raw(raw, path)
    cache = sampling.DecodeCache(tmp_path / "cache")
    packed, _ = cache.packed(str(path))
    assert packed.packed.values.dtype == np.uint16 and packed.shape == reference.shape
    np.testing.assert_array_equal(np.asarray(packed), reference)
    for y, x in ((0, 0), (1, 3), (5, 2)):  # crops at every phase of the level pattern
        np.testing.assert_array_equal(packed[y:y + 7, x:x + 5], reference[y:y + 7, x:x + 5])
    again, _ = cache.packed(str(path))  # from the cache files
    np.testing.assert_array_equal(np.asarray(again), reference)
    geometry = cachesize.raw_geometry(path)
    assert (geometry.h, geometry.w, geometry.channels) >= reference.shape  # an upper bound (exact for Bayer)
    if cfa != "xtrans":
        assert (geometry.h, geometry.w, geometry.channels) == reference.shape


@pytest.mark.slow
def test_estimate_is_the_bytes_written_and_counts_nothing_twice(dataset, pretrained, tmp_path):
    pairs = find_pairs(dataset)
    cache = tmp_path / "run" / "cache"
    before = cachesize.estimate_caches(pairs, cache, feature_cache=True)
    assert before.pairs == 2 and before.cached_already == 0 and not before.unreadable
    train(_opts(dataset, pretrained, tmp_path / "run", steps=1), report=lambda m: None)
    assert _npy_bytes(cache) == before.total
    decoded_only = cachesize.estimate_caches(pairs, tmp_path / "elsewhere", feature_cache=False)
    assert decoded_only.decoded == before.decoded and decoded_only.features == 0
    after = cachesize.estimate_caches(pairs, cache, feature_cache=True)
    assert after.total == 0 and after.cached_already == before.total


def test_sony_frame_pair_bytes():
    """The README's figures: one Sony-size pair (2848x4256 mosaic), float16 features."""
    g = cachesize.RawGeometry(1424, 2128, 4, 2)
    packed = g.h * g.w * 4 * 2
    gt = 2848 * 4256 * 3 * 2
    feats = g.h * g.w * 32 * 2 + g.h * g.w * 12 * 2
    assert (round(packed / 1e6, 1), round(gt / 1e6, 1), round(feats / 1e6, 1)) == (24.2, 72.7, 266.7)


def test_caches_that_do_not_fit_stop_before_anything_is_written(dataset, pretrained, tmp_path):
    run = tmp_path / "run"
    est = cachesize.estimate_caches(find_pairs(dataset), run / "cache", feature_cache=True)
    with pytest.raises(SidFtError) as err:
        train(_opts(dataset, pretrained, run, cache_max_gb=est.decoded / 2 / 1e9), report=lambda m: None)
    text = str(err.value)
    assert f"need {est.total / 1e6:.3f} MB more" in text and "free on" in text and "--cache-dir" in text
    assert "Nothing was written" in text
    assert sorted(p.name for p in run.iterdir()) == []  # no cache, no config.json, lock released


@pytest.mark.slow
def test_feature_cache_that_does_not_fit_falls_back_to_uncached_training(dataset, pretrained, tmp_path):
    run = tmp_path / "run"
    est = cachesize.estimate_caches(find_pairs(dataset), run / "cache", feature_cache=True)
    messages: list[str] = []
    limit = (est.decoded + est.features / 2) / 1e9
    result = train(_opts(dataset, pretrained, run, steps=2, cache_max_gb=limit), report=messages.append)
    assert result.mode == "frozen" and result.global_step == 2
    assert any("training without the feature cache" in m for m in messages)
    assert json.loads((run / "config.json").read_text())["mode"] == "frozen"
    assert not list((run / "cache").glob("*_feat.npy")) and _npy_bytes(run / "cache") == est.decoded


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_previous_checkpoint_intact(run: Path, step: int) -> None:
    tf = tf1()
    latest = tf.train.latest_checkpoint(str(run))
    assert latest is not None and latest.endswith(f"model.ckpt-{step}")
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
        assert np.all(np.isfinite(reader.get_tensor(name))), name
    leftovers = [p.name for p in run.rglob("*") if ".tmp" in p.name or "tempstate" in p.name
                 or p.name.endswith("_temp") or (p.name.startswith("model.ckpt-") and f"-{step}." not in p.name)]
    assert not leftovers, leftovers


@pytest.mark.slow
def test_enospc_while_writing_the_cache_leaves_no_half_file(dataset, pretrained, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(_opts(dataset, pretrained, run, steps=2), report=lambda m: None)
    real_save = np.save

    def half_then_full(f, array, *a, **k):  # writes part of the file, then the disk is full
        real_save(f, array[: max(1, len(array) // 2)], *a, **k)
        _enospc()

    monkeypatch.setattr(sampling.np, "save", half_then_full)
    with pytest.raises(SidFtError, match=r"cannot write the cache file: No space left on device.*--cache-dir"):
        train(_opts(dataset, pretrained, run, steps=4, cache_dir=str(tmp_path / "cache2")), report=lambda m: None)
    assert [p.name for p in (tmp_path / "cache2").iterdir() if p.suffix == ".npy" or ".tmp" in p.name] == []
    _assert_previous_checkpoint_intact(run, 2)


@pytest.mark.slow
def test_enospc_while_saving_a_checkpoint_keeps_the_previous_one(dataset, pretrained, tmp_path, monkeypatch):
    tf = tf1()
    run = tmp_path / "run"
    train(_opts(dataset, pretrained, run, steps=2), report=lambda m: None)
    real_save = tf.train.Saver.save

    def full_disk(self, sess, save_path, *a, **k):
        # the data file is complete, the index is half-written when the disk fills up (TensorFlow reports
        # ENOSPC as RESOURCE_EXHAUSTED)
        real_save(self, sess, save_path + "_scratch", write_meta_graph=False, write_state=False)
        os.replace(save_path + "_scratch.data-00000-of-00001", save_path + ".data-00000-of-00001")
        Path(save_path + ".index.tempstate123").write_bytes(Path(save_path + "_scratch.index").read_bytes()[:50])
        os.unlink(save_path + "_scratch.index")
        raise tf.errors.ResourceExhaustedError(None, None, f"{save_path}.index.tempstate123; No space left on device")

    monkeypatch.setattr(tf.train.Saver, "save", full_disk)
    with pytest.raises(SidFtError, match=r"could not save checkpoint model.ckpt-4 .*No space left on device.*"
                                         r"previous checkpoint is kept"):
        train(_opts(dataset, pretrained, run, steps=4), report=lambda m: None)
    _assert_previous_checkpoint_intact(run, 2)
    monkeypatch.undo()
    assert train(_opts(dataset, pretrained, run, steps=4), report=lambda m: None).global_step == 4
