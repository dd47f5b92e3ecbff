"""Damaged checkpoints are named wherever they are used (issue #21).

Each damage has its own named test for each user of a checkpoint: ``inspect_checkpoint.py
--verify``, ``test.py``, training's resume and training's ``--pretrained``.  The damages: a
truncated data file, a truncated index, one flipped byte in the data file, a missing data file,
an index from another checkpoint.  A resume goes past a damaged latest checkpoint and ends with
exactly the weights of a run that was never interrupted.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sid_ft._tf import tf1
from sid_ft.cli import inspect as inspect_cli
from sid_ft.cli import test as test_cli
from sid_ft.cli import train as train_cli
from sid_ft.errors import SidFtError
from sid_ft.nets import checkpoint as ckpt
from sid_ft.training import loop
from sid_ft.training.loop import train

from tests.builders import train_opts

DATA = ".data-00000-of-00001"
DAMAGES = ("truncated_data", "truncated_index", "flipped_byte", "missing_data", "other_index")

# what each damage is called, and which of the checkpoint's files is named
SAID = {"truncated_data": ("truncated", DATA), "truncated_index": ("truncated or not a checkpoint index", ".index"),
        "flipped_byte": ("CRC32C", DATA), "missing_data": ("missing", DATA), "other_index": ("CRC32C", DATA)}


def damage(prefix: str, kind: str, other: str) -> str:
    """Damage the checkpoint ``prefix`` in place as ``kind`` says; returns the file that should be named.

    ``other``: a checkpoint of the same network with other values (for ``other_index``).
    """
    data, index = prefix + DATA, prefix + ".index"
    if kind == "truncated_data":
        _replace_with_copy(data, os.path.getsize(data) // 2)
    elif kind == "truncated_index":
        os.truncate(index, os.path.getsize(index) // 2)
    elif kind == "flipped_byte":
        _replace_with_copy(data, os.path.getsize(data))
        with open(data, "r+b") as f:
            f.seek(os.path.getsize(data) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x10]))
    elif kind == "missing_data":
        os.unlink(data)
    elif kind == "other_index":
        os.unlink(index)
        shutil.copyfile(other + ".index", index)
    return data if SAID[kind][1] == DATA else index


def _replace_with_copy(path: str, length: int) -> None:
    """Make ``path`` a file of its own holding its first ``length`` bytes (a symbolic link's target is kept)."""
    with open(path, "rb") as f:
        head = f.read(length)
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(head)


def _assert_named(text: str, kind: str, named: str) -> None:
    assert named in text and SAID[kind][0] in text, text
    assert "Traceback" not in text


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(dataset, pretrained, tmp_path_factory) -> Path:
    """A train dir of 8 steps, saved every 4: model.ckpt-4 and model.ckpt-8 (never changed by the tests)."""
    run = tmp_path_factory.mktemp("damaged") / "straight"
    result = train(train_opts(dataset, pretrained, run, steps=8, save_every=4), report=lambda m: None)
    assert result.global_step == 8 and result.checkpoint == str(run / "model.ckpt-8")
    return run


@pytest.fixture
def train_dir(trained, tmp_path) -> Path:
    """A copy of ``trained`` to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _released_copy(prefix: str, folder: Path) -> str:
    """A released model's folder (state file, index, data file linked: damage copies before writing)."""
    folder.mkdir(parents=True)
    shutil.copyfile(os.path.join(os.path.dirname(prefix), "checkpoint"), folder / "checkpoint")
    shutil.copyfile(prefix + ".index", folder / "model.ckpt.index")
    os.symlink(prefix + DATA, folder / ("model.ckpt" + DATA))
    return str(folder / "model.ckpt")


def _no_decoding(monkeypatch) -> None:
    """Fail the test if training starts to decode its pairs."""
    def decode(*args, **kwargs):
        raise AssertionError("pairs were decoded before the checkpoint was checked")
    monkeypatch.setattr(loop, "load_training_pairs", decode)


# --------------------------------------------------------------------------- inspect_checkpoint.py --verify


def test_verify_intact_checkpoint_is_readable(trained, capsys):
    assert inspect_cli.main([str(trained), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "readable: yes" in out and "fits the network: yes" in out
    checked = re.search(r"checksums: (\d+) of (\d+) tensors checked", out)
    assert checked and checked[1] == checked[2] and int(checked[1]) > 40


@pytest.mark.parametrize("kind", DAMAGES)
def test_verify_names_the_damage(train_dir, kind, capsys):
    named = damage(str(train_dir / "model.ckpt-8"), kind, str(train_dir / "model.ckpt-4"))
    assert inspect_cli.main([str(train_dir), "--verify"]) == 1
    out, err = capsys.readouterr()
    _assert_named(out + err, kind, named)
    if kind == "truncated_index":  # no tensor can be listed: one line on stderr
        assert err.startswith("error: ") and err.count("\n") == 1
        return
    assert "readable: no" in out and "fits the network: no" in out
    if kind in ("truncated_data", "flipped_byte", "other_index"):  # the first damaged tensor, expected and found
        assert re.search(r"(tensor|the first) '[^']+'", out), out
        assert re.search(r"truncated: \d+ of \d+ bytes|CRC32C 0x[0-9a-f]{8}, the index expects 0x[0-9a-f]{8}", out)


def test_verify_is_needed_for_checksums_but_not_for_lengths(train_dir, capsys):
    prefix = str(train_dir / "model.ckpt-8")
    damage(prefix, "flipped_byte", "")
    assert inspect_cli.main([prefix]) == 0  # the index alone cannot tell
    assert inspect_cli.main([prefix, "--verify"]) == 1
    assert "fits the network: no" in capsys.readouterr().out
    damage(prefix, "truncated_data", "")
    assert inspect_cli.main([prefix]) == 1  # a short data file is seen from its length, always
    assert "fits the network: no" in capsys.readouterr().out


def test_verify_released_folder_short_download(pretrained, tmp_path, capsys):
    folder = tmp_path / "Sony"
    prefix = _released_copy(pretrained, folder)
    damage(prefix, "truncated_data", "")
    assert inspect_cli.main([str(folder), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"{prefix + DATA}: not downloaded completely" in out and "of 87552664 bytes" in out


# --------------------------------------------------------------------------- test.py, Predictor, export


def _test_py(checkpoint: Path, out_dir: Path, dataset: Path, *extra: str) -> int:
    raw = dataset / "short" / "00001_00_0.1s.dng"
    return test_cli.main(["--checkpoint", str(checkpoint), "--out-dir", str(out_dir), str(raw), "--ratio", "100",
                          "--no-progress", *extra])


@pytest.mark.parametrize("kind", DAMAGES)
def test_test_py_names_the_damage(train_dir, dataset, kind, tmp_path, capsys):
    named = damage(str(train_dir / "model.ckpt-8"), kind, str(train_dir / "model.ckpt-4"))
    assert _test_py(train_dir, tmp_path / "out", dataset) == 2  # test.py: 2 for a problem with the checkpoint
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    _assert_named(err, kind, named)
    assert not list((tmp_path / "out").glob("*.png"))


def test_export_savedmodel_names_the_damage(train_dir, tmp_path, capsys):
    named = damage(str(train_dir / "model.ckpt-8"), "flipped_byte", "")
    assert test_cli.main(["--checkpoint", str(train_dir), "--export-savedmodel", str(tmp_path / "saved")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    _assert_named(err, "flipped_byte", named)
    assert not (tmp_path / "saved").exists()


def test_predictor_names_the_damage(train_dir):
    from sid_ft.inference.predictor import Predictor

    named = damage(str(train_dir / "model.ckpt-8"), "other_index", str(train_dir / "model.ckpt-4"))
    with pytest.raises(SidFtError) as caught:
        Predictor(str(train_dir))
    assert caught.value.path == named and "CRC32C" in caught.value.reason


def test_tensorflow_read_errors_still_name_the_file(train_dir, monkeypatch):
    """Damage the checks did not see (checksums skipped, or damaged since): TensorFlow's error is translated."""
    from sid_ft.inference.predictor import Predictor

    named = damage(str(train_dir / "model.ckpt-8"), "truncated_data", "")
    monkeypatch.setattr(ckpt, "check_checkpoint", lambda *args, **kwargs: None)
    for fold in (True, False):
        with pytest.raises(SidFtError) as caught:
            Predictor(str(train_dir), fold=fold)
        assert caught.value.path == named and "truncated" in caught.value.reason


def test_a_checkpoint_damaged_after_it_was_checked_is_checked_again(train_dir):
    prefix = str(train_dir / "model.ckpt-8")
    ckpt.check_checkpoint(prefix, checksums=True)
    damage(prefix, "flipped_byte", "")
    with pytest.raises(SidFtError, match="CRC32C"):
        ckpt.check_checkpoint(prefix, checksums=True)


# --------------------------------------------------------------------------- training: resume


def _g_add(prefix: str) -> dict[str, np.ndarray]:
    reader = tf1().train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("g_add")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", DAMAGES)
def test_resume_goes_past_the_damage(trained, train_dir, dataset, pretrained, kind):
    """The same command again: it names the damaged model.ckpt-8, sets it aside, continues from model.ckpt-4
    and ends at step 8 with bit for bit the weights of the run that was never interrupted (the default, cached
    mode: the patches of step i depend only on --seed and i)."""
    named = damage(str(train_dir / "model.ckpt-8"), kind, str(train_dir / "model.ckpt-4"))
    messages: list[str] = []
    result = train(train_opts(dataset, pretrained, train_dir, steps=8, save_every=4), report=messages.append)
    assert result.resumed and result.global_step == 8 and result.checkpoint == str(train_dir / "model.ckpt-8")
    said = "\n".join(messages)
    _assert_named(said, kind, named)
    assert "cannot resume from model.ckpt-8" in said and "continuing from model.ckpt-4" in said
    assert f"resuming from {train_dir / 'model.ckpt-4'} (step 4)" in said
    kept = sorted(p.name for p in train_dir.glob("model.ckpt-8.damaged.*"))
    assert kept and all(name.startswith("model.ckpt-8.damaged.") for name in kept)  # renamed, not deleted
    state = tf1().train.get_checkpoint_state(str(train_dir))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["model.ckpt-4", "model.ckpt-8"]
    straight, resumed = _g_add(str(trained / "model.ckpt-8")), _g_add(result.checkpoint)
    assert straight and straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_resume_when_no_checkpoint_can_be_read(train_dir, dataset, pretrained):
    damage(str(train_dir / "model.ckpt-8"), "truncated_data", "")
    damage(str(train_dir / "model.ckpt-4"), "missing_data", "")
    before = sorted(os.listdir(train_dir))
    with pytest.raises(SidFtError) as caught:
        train(train_opts(dataset, pretrained, train_dir, steps=8, save_every=4), report=lambda m: None)
    text = str(caught.value)
    assert "cannot resume: none of the 2 checkpoint(s)" in text
    assert f"model.ckpt-8{DATA}: truncated" in text and f"model.ckpt-4{DATA}: missing" in text
    assert sorted(os.listdir(train_dir)) == before  # nothing renamed


@pytest.mark.slow
def test_set_aside_checkpoints_are_never_rotated_away(train_dir, dataset, pretrained):
    damage(str(train_dir / "model.ckpt-8"), "truncated_data", "")
    opts = train_opts(dataset, pretrained, train_dir, steps=12, save_every=4, keep=1)
    assert train(opts, report=lambda m: None).global_step == 12
    names = set(os.listdir(train_dir))
    assert {"model.ckpt-8.damaged.index", f"model.ckpt-8.damaged{DATA}"} <= names
    assert "model.ckpt-4.index" not in names and "model.ckpt-8.index" not in names  # rotated by keep=1
    state = tf1().train.get_checkpoint_state(str(train_dir))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["model.ckpt-12"]


# --------------------------------------------------------------------------- training: --pretrained


@pytest.mark.parametrize("kind", DAMAGES)
def test_pretrained_damage_stops_before_decoding(released_checkpoint, pretrained, dataset, kind, tmp_path,
                                                 monkeypatch):
    prefix = _released_copy(pretrained, tmp_path / "pre")
    named = damage(prefix, kind, released_checkpoint("sony", 0))
    _no_decoding(monkeypatch)
    with pytest.raises(SidFtError) as caught:
        train(train_opts(dataset, str(tmp_path / "pre"), tmp_path / "run"), report=lambda m: None)
    if kind == "truncated_data":  # a released model cut short: an incomplete download
        assert caught.value.path == named and "not downloaded completely" in caught.value.reason
    else:
        _assert_named(str(caught.value), kind, named)
    assert not list((tmp_path / "run").glob("model.ckpt*"))


def test_released_folder_short_download_is_named_before_any_work(pretrained, dataset, tmp_path, monkeypatch,
                                                                 capsys):
    folder = tmp_path / "checkpoints" / "Sony"
    prefix = _released_copy(pretrained, folder)
    damage(prefix, "truncated_data", "")
    _no_decoding(monkeypatch)
    code = train_cli.main(["--dataset-dir", str(dataset), "--pretrained", str(folder), "--train-dir",
                           str(tmp_path / "run"), "--steps", "2", "--patch-size", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line == [f"error: {prefix + DATA}: not downloaded completely: model.ckpt{DATA} has 43776332 of "
                    f"87552664 bytes of the released Sony model; download it again"]
