"""Checkpoint verification without TensorFlow (sid_ft.nets.bundle_index, sid_ft.nets.verify).

Each damage of issue #21 has its own test: a truncated data file, a truncated
index, one flipped byte in the data file, a missing data file, an index from
another checkpoint.  The checkpoints are real ones, written by a TF1 Saver.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sid_ft.errors import SidFtError
from sid_ft.nets.bundle_index import masked_crc32c, read_bundle_index, unmask_crc32c
from sid_ft.nets.verify import (
    check_readable, checksums_affordable, format_report, newest_readable, released_camera,
    released_expectation, set_aside_damaged, verify_checkpoint, verify_released,
)

DATA = "model.ckpt.data-00000-of-00001"
REFERENCE_JSON = Path(__file__).resolve().parent / "data" / "sid_released_checkpoints.json"


def _save(folder: Path, values: dict[str, np.ndarray]) -> str:
    """Save ``values`` (name -> array) with a tf.compat.v1 Saver as ``<folder>/model.ckpt``; return the prefix."""
    from sid_ft._tf import tf1

    tf = tf1()
    folder.mkdir(parents=True, exist_ok=True)
    prefix = str(folder / "model.ckpt")
    with tf.Graph().as_default():
        var_list = {name: tf.Variable(value, name=f"v{i}") for i, (name, value) in enumerate(values.items())}
        saver = tf.train.Saver(var_list=var_list)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False)
    return prefix


def _values(seed: int, wide: int = 8) -> dict[str, np.ndarray]:
    """A few tensors of the dtypes a sid_ft checkpoint holds (and one string, which has no fixed size)."""
    rng = np.random.default_rng(seed)
    return {
        "g_conv1_1/weights": rng.standard_normal((3, 3, 4, wide)).astype(np.float32),
        "g_conv1_1/biases": rng.standard_normal(wide).astype(np.float32),
        "g_conv10/weights": rng.standard_normal((1, 1, wide, 12)).astype(np.float32),
        "global_step": np.int64(seed + 4),
        "scale/value": np.float64(seed + 0.5),
        "flag": np.bool_(True),
        "note": np.array(b"sid_ft"),
    }


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> dict[str, str]:
    """Prefixes of three small real checkpoints: 'a', 'b' (same names and shapes, other values), 'c' (other shapes)."""
    root = tmp_path_factory.mktemp("verify")
    return {"a": _save(root / "a", _values(0)), "b": _save(root / "b", _values(1)),
            "c": _save(root / "c", _values(0, wide=16))}


def _copy(prefix: str, folder: Path) -> str:
    """Copy the checkpoint ``prefix`` (index and data) into ``folder``; return the new prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(prefix + suffix, str(folder / "model.ckpt") + suffix)
    return str(folder / "model.ckpt")


def _problem(prefix: str, **kwargs) -> SidFtError:
    """The SidFtError check_readable raises for ``prefix``; fails the test when there is none."""
    with pytest.raises(SidFtError) as caught:
        check_readable(prefix, **kwargs)
    return caught.value


# --------------------------------------------------------------------------- the index parser


def test_index_parser_matches_tensorflow(small):
    from sid_ft._tf import tf1

    tf = tf1()
    index = read_bundle_index(small["a"])
    reader = tf.train.load_checkpoint(small["a"])
    assert {n: list(e.shape) for n, e in index.entries.items()} == dict(tf.train.list_variables(small["a"]))
    assert {n: e.dtype for n, e in index.entries.items()} == \
        {n: d.name for n, d in reader.get_variable_to_dtype_map().items()}
    assert index.num_shards == 1 and index.little_endian
    assert index.data_path(0) == small["a"] + ".data-00000-of-00001"


def test_index_crc_is_masked_crc32c_of_the_tensor_bytes(small):
    index = read_bundle_index(small["a"])
    entry = index.entries["g_conv1_1/biases"]
    with open(index.data_path(0), "rb") as f:
        f.seek(entry.offset)
        raw = f.read(entry.size)
    assert np.array_equal(np.frombuffer(raw, "<f4"), _values(0)["g_conv1_1/biases"])
    assert masked_crc32c(raw) == entry.crc32c
    assert unmask_crc32c(masked_crc32c(b"abc")) == 0x364B3FB7  # CRC32C("abc")


def test_tensors_are_packed_back_to_back(small):
    index = read_bundle_index(small["a"])
    entries = sorted(index.entries.values(), key=lambda e: e.offset)
    assert entries[0].offset == 0
    assert all(a.end == b.offset for a, b in zip(entries, entries[1:]))
    assert os.path.getsize(index.data_path(0)) == entries[-1].end


# --------------------------------------------------------------------------- intact and damaged


def test_intact_checkpoint_verifies_ok(small):
    report = check_readable(small["a"])
    assert report.ok and report.problems == []
    assert report.tensors == 7 and report.tensors_checked == 6  # the string tensor has no plain CRC
    assert report.shards[0].expected_bytes == report.shards[0].found_bytes
    assert "readable: yes" in format_report(report)


def test_checksums_only_when_affordable(small, monkeypatch):
    from sid_ft.nets import verify

    assert verify_checkpoint(small["a"], checksums=None).tensors_checked == 6  # a few bytes: affordable
    monkeypatch.setattr(verify, "checksums_affordable", lambda nbytes, budget_s=1.0: False)
    report = verify_checkpoint(small["a"], checksums=None)
    assert report.ok and not report.checksums and report.tensors_checked == 0
    assert "checksums: not checked" in format_report(report)


def test_truncated_data_file(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    data = prefix + ".data-00000-of-00001"
    size = os.path.getsize(data)
    os.truncate(data, size // 2)
    err = _problem(prefix)
    assert err.path == data
    assert "truncated" in err.reason and f"{size // 2} of {size} bytes" in err.reason
    report = verify_checkpoint(prefix)
    assert (report.shards[0].found_bytes, report.shards[0].expected_bytes) == (size // 2, size)
    assert not report.ok and "readable: no" in format_report(report)


def test_truncated_index(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    os.truncate(prefix + ".index", os.path.getsize(prefix + ".index") - 20)
    err = _problem(prefix)
    assert err.path == prefix + ".index"
    assert "truncated" in err.reason
    with pytest.raises(SidFtError, match="truncated"):
        read_bundle_index(prefix)


def test_flipped_byte_in_index(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    _flip(prefix + ".index", 10)
    err = _problem(prefix)
    assert err.path == prefix + ".index" and "checksum mismatch" in err.reason


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


def test_flipped_byte_in_data_file(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    entry = read_bundle_index(prefix).entries["g_conv10/weights"]
    _flip(prefix + ".data-00000-of-00001", entry.offset + 7)
    err = _problem(prefix)
    assert err.path == prefix + ".data-00000-of-00001"
    assert "damaged" in err.reason and "'g_conv10/weights'" in err.reason
    assert f"the index expects 0x{unmask_crc32c(entry.crc32c):08x}" in err.reason
    assert "1 of 6 tensors differ" in err.reason
    assert check_readable(prefix, checksums=False).ok  # lengths alone cannot see it


def test_missing_data_file(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    os.unlink(prefix + ".data-00000-of-00001")
    err = _problem(prefix, checksums=False)
    assert err.path == prefix + ".data-00000-of-00001"
    assert "missing" in err.reason and str(os.path.getsize(small["a"] + ".data-00000-of-00001")) in err.reason


def test_missing_index(tmp_path):
    err = _problem(str(tmp_path / "model.ckpt-3"))
    assert err.path == str(tmp_path / "model.ckpt-3.index") and "missing" in err.reason


def test_index_from_another_checkpoint_same_shapes(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    shutil.copyfile(small["b"] + ".index", prefix + ".index")
    err = _problem(prefix)
    assert err.path == prefix + ".data-00000-of-00001"
    assert "damaged" in err.reason and "another checkpoint" in err.reason


def test_index_from_another_checkpoint_other_shapes(small, tmp_path):
    prefix = _copy(small["a"], tmp_path / "ckpt")
    shutil.copyfile(small["c"] + ".index", prefix + ".index")
    err = _problem(prefix, checksums=False)
    assert err.path == prefix + ".data-00000-of-00001"
    assert "truncated" in err.reason  # c's tensors are larger: a's data file is too short for its index
    shutil.copyfile(small["a"] + ".index", prefix + ".index")
    shutil.copyfile(small["c"] + ".data-00000-of-00001", prefix + ".data-00000-of-00001")
    err = _problem(prefix, checksums=False)
    assert "another checkpoint" in err.reason and err.path.endswith(".data-00000-of-00001")


# --------------------------------------------------------------------------- resuming past damage


def test_newest_readable_skips_damaged_and_set_aside_renames(small, tmp_path):
    old = _copy(small["a"], tmp_path / "train")
    new = str(tmp_path / "train" / "model.ckpt-8")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(old + suffix, new + suffix)
    shutil.copyfile(old + ".index", new + ".1.index")  # another checkpoint beside it: never renamed
    os.truncate(new + ".data-00000-of-00001", 10)
    found, skipped = newest_readable([new, old])
    assert found == old and [r.prefix for r in skipped] == [new]
    moved = set_aside_damaged(new)
    assert moved == new + ".damaged"
    assert sorted(os.listdir(tmp_path / "train")) == sorted([
        "model.ckpt.index", "model.ckpt.data-00000-of-00001", "model.ckpt-8.1.index",
        "model.ckpt-8.damaged.index", "model.ckpt-8.damaged.data-00000-of-00001"])
    assert "truncated" in verify_checkpoint(moved).problems[0]
    assert newest_readable([moved])[0] is None


# --------------------------------------------------------------------------- the released SID models


def test_released_expectation_matches_reference_json():
    with open(REFERENCE_JSON) as f:
        reference = json.load(f)
    for camera in ("sony", "fuji"):
        entry = reference[camera.capitalize()]
        tensors = released_expectation(camera).tensors
        assert set(tensors) == set(entry["model"]) | set(entry["other"])
        assert all(tensors[name] == tuple(shape) for name, shape in entry["model"].items())
    assert released_expectation("sony").data_bytes == 87_552_664


def test_released_data_file_size_is_the_sum_of_its_tensors(released_checkpoint):
    prefix = released_checkpoint("sony", 0)
    assert os.path.getsize(prefix + ".data-00000-of-00001") == released_expectation("sony").data_bytes
    assert released_camera(read_bundle_index(prefix)) == "sony"
    assert checksums_affordable(released_expectation("sony").data_bytes, budget_s=60.0)


def test_released_folder_intact_verifies_ok(released_checkpoint):
    report = verify_released(os.path.dirname(released_checkpoint("sony", 0)), checksums=True)
    assert report.ok and report.tensors_checked == 120


def test_released_folder_with_short_data_file_is_not_downloaded_completely(released_checkpoint, tmp_path):
    prefix = released_checkpoint("sony", 0)
    folder = tmp_path / "Sony"
    folder.mkdir()
    shutil.copyfile(prefix + ".index", folder / "model.ckpt.index")
    with open(prefix + ".data-00000-of-00001", "rb") as src, open(folder / DATA, "wb") as dst:
        dst.write(src.read(1_000_000))
    report = verify_released(folder)
    assert not report.ok
    err = report.errors[0]
    assert err.path == str(folder / DATA)
    assert "not downloaded completely" in err.reason
    assert f"has 1000000 of {released_expectation('sony').data_bytes} bytes" in err.reason
    os.unlink(folder / "model.ckpt.index")  # no index either: the folder's name says which model
    assert "not downloaded completely" in verify_released(folder).problems[0]


def test_folder_with_sid_ft_json_is_not_a_released_download(released_checkpoint, tmp_path):
    """sid_ft wrote it (a train dir): a short data file is truncated, not an incomplete download."""
    prefix = released_checkpoint("sony", 0)
    folder = tmp_path / "Sony"
    folder.mkdir()
    shutil.copyfile(prefix + ".index", folder / "model.ckpt.index")
    with open(prefix + ".data-00000-of-00001", "rb") as src, open(folder / DATA, "wb") as dst:
        dst.write(src.read(1_000_000))
    (folder / "sid_ft.json").write_text('{"camera": "sony", "g_add": null}')
    report = verify_released(folder)
    assert "truncated: 1000000 of 87552664 bytes" in report.problems[0]
    assert "downloaded" not in report.problems[0]
