"""sid_ft.data.pairs: SID pairs from a folder tree and from SID list files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sid_ft.data.pairs import Pair, find_pairs, read_pair_list
from sid_ft.data.sid import split_of
from sid_ft.errors import SidFtError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from samples import SID_LISTS  # noqa: E402


def make_tree(root, shorts, longs):
    """SID layout with empty placeholder files (find_pairs reads names only)."""
    for sub, names in (("short", shorts), ("long", longs)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / sub / name).write_bytes(b"")
    return root


# --------------------------------------------------------------------------- folder layout

def test_find_pairs_in_sid_layout(tmp_path):
    root = make_tree(tmp_path / "Sony",
                     shorts=["00001_00_0.1s.ARW", "00001_01_0.04s.arw", "10003_00_0.033s.ARW",
                             "20005_00_0.1s.Dng", "notes.txt", ".00001_00_0.1s.ARW"],
                     longs=["00001_00_10s.ARW", "00001_01_30s.ARW", "10003_00_10s.ARW", "20005_00_10s.DNG"])
    pairs = find_pairs(root)
    assert [os.path.basename(p.short_path) for p in pairs] == [
        "00001_00_0.1s.ARW", "00001_01_0.04s.arw", "10003_00_0.033s.ARW", "20005_00_0.1s.Dng"]
    first = pairs[0]
    assert first == Pair(short_path=str(root / "short" / "00001_00_0.1s.ARW"),
                         long_path=str(root / "long" / "00001_00_10s.ARW"),
                         short_exposure=0.1, long_exposure=10.0, scene_id="00001")
    # several long files for a scene: the lowest burst index wins, for every short of that scene
    assert pairs[1].long_path == str(root / "long" / "00001_00_10s.ARW")
    assert pairs[1].short_exposure == 0.04
    assert pairs[2].ratio() == 300.0  # 10 / 0.033 = 303 capped like SID
    assert pairs[2].ratio(cap=1000) == pytest.approx(303.03, rel=1e-4)
    assert pairs[3].long_path.endswith("20005_00_10s.DNG")


def test_find_pairs_lowest_burst_is_numeric_and_first_by_name(tmp_path):
    root = make_tree(tmp_path / "d", shorts=["00007_00_0.1s.ARW"],
                     longs=["00007_10_30s.ARW", "00007_2_20s.ARW", "00007_02_10s.ARW"])
    (pair,) = find_pairs(root)
    assert os.path.basename(pair.long_path) == "00007_02_10s.ARW"
    assert pair.long_exposure == 10.0


@pytest.mark.parametrize("split,scenes", [("train", ["00001"]), ("test", ["10003"]), ("val", ["20005"])])
def test_find_pairs_split(tmp_path, split, scenes):
    root = make_tree(tmp_path / "d", shorts=["00001_00_0.1s.ARW", "10003_00_0.1s.ARW", "20005_00_0.1s.ARW"],
                     longs=["00001_00_10s.ARW", "10003_00_10s.ARW", "20005_00_10s.ARW"])
    assert [p.scene_id for p in find_pairs(root, split=split)] == scenes


def test_unpaired_shorts_are_listed_all_at_once(tmp_path):
    root = make_tree(tmp_path / "d", shorts=["00001_00_0.1s.ARW", "00002_00_0.1s.ARW", "00003_00_0.1s.ARW"],
                     longs=["00001_00_10s.ARW"])
    with pytest.raises(SidFtError) as info:
        find_pairs(root)
    message = str(info.value)
    assert str(root) in message
    assert "00002_00_0.1s.ARW" in message and "00003_00_0.1s.ARW" in message
    assert "00001_00_0.1s.ARW" not in message
    assert message.count("no long exposure") == 2


def test_unpaired_shorts_skipped_when_asked(tmp_path):
    root = make_tree(tmp_path / "d", shorts=["00001_00_0.1s.ARW", "00002_00_0.1s.ARW", "IMG_0001.ARW"],
                     longs=["00001_00_10s.ARW"])
    skipped = []
    pairs = find_pairs(root, skipped=skipped)
    assert [p.scene_id for p in pairs] == ["00001"]
    assert len(skipped) == 2 and all(isinstance(e, SidFtError) for e in skipped)
    assert {os.path.basename(e.path) for e in skipped} == {"00002_00_0.1s.ARW", "IMG_0001.ARW"}


def test_find_pairs_folder_errors(tmp_path):
    with pytest.raises(SidFtError, match="not found") as info:
        find_pairs(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SidFtError, match="is a file"):
        find_pairs(tmp_path / "file")
    (tmp_path / "only_short" / "short").mkdir(parents=True)
    with pytest.raises(SidFtError, match="no long/"):
        find_pairs(tmp_path / "only_short")
    (tmp_path / "bare").mkdir()
    with pytest.raises(SidFtError, match="no short/ and no long/"):
        find_pairs(tmp_path / "bare")


def test_find_pairs_empty_set_is_an_error(tmp_path):
    root = make_tree(tmp_path / "d", shorts=["readme.txt"], longs=[])
    with pytest.raises(SidFtError, match="no short/long pairs") as info:
        find_pairs(root)
    assert str(root) in str(info.value)
    root = make_tree(tmp_path / "e", shorts=["00001_00_0.1s.ARW"], longs=["00001_00_10s.ARW"])
    with pytest.raises(SidFtError, match="split 'val'"):
        find_pairs(root, split="val")
    with pytest.raises(ValueError):
        find_pairs(root, split="training")


def test_split_of():
    assert split_of("00001") == "train"
    assert split_of("10003_00_0.04s.ARW") == "test"
    assert split_of("/data/Sony/long/20005_00_10s.ARW") == "val"
    with pytest.raises(SidFtError, match="0 \\(train\\)"):
        split_of("30001_00_0.1s.ARW")
    with pytest.raises(SidFtError, match="scene id"):
        split_of("IMG_0001.CR2")


# --------------------------------------------------------------------------- list files

SID_LIST_COUNTS = {
    "Sony_train_list.txt": 1865, "Sony_val_list.txt": 234, "Sony_test_list.txt": 598,
    "Fuji_train_list.txt": 1655, "Fuji_val_list.txt": 218, "Fuji_test_list.txt": 524,
}


@pytest.mark.parametrize("name", sorted(SID_LIST_COUNTS))
def test_real_sid_lists_parse(name):
    list_file = SID_LISTS / name
    pairs = read_pair_list(list_file, check_exists=False)
    assert len(pairs) == SID_LIST_COUNTS[name]
    camera, split = name.split("_")[:2]
    base = str(list_file.parent)
    assert all(p.short_path.startswith(os.path.join(base, camera, "short") + os.sep) for p in pairs)
    assert all(p.long_path.startswith(os.path.join(base, camera, "long") + os.sep) for p in pairs)
    assert {split_of(p.scene_id) for p in pairs} == {split}
    assert all(p.long_exposure in (10.0, 30.0) and p.short_exposure in (0.1, 0.04, 0.033) for p in pairs)
    assert all(p.iso.startswith("ISO") and p.fnumber.startswith("F") for p in pairs)
    # the same split filter applied to the list keeps everything, another split keeps nothing
    assert len(read_pair_list(list_file, split=split, check_exists=False)) == len(pairs)
    other = "test" if split != "test" else "train"
    with pytest.raises(SidFtError, match="no pairs"):
        read_pair_list(list_file, split=other, check_exists=False)


def test_real_sony_list_first_line():
    list_file = SID_LISTS / "Sony_test_list.txt"
    first = read_pair_list(list_file, check_exists=False)[0]
    base = list_file.parent
    assert first == Pair(short_path=str(base / "Sony" / "short" / "10003_00_0.04s.ARW"),
                         long_path=str(base / "Sony" / "long" / "10003_00_10s.ARW"),
                         short_exposure=0.04, long_exposure=10.0, scene_id="10003", iso="ISO200", fnumber="F9")
    assert first.ratio() == pytest.approx(250.0)


def test_real_list_needs_the_files_by_default():
    list_file = SID_LISTS / "Sony_val_list.txt"
    with pytest.raises(SidFtError, match="234 problem") as info:
        read_pair_list(list_file)
    assert "file not found" in str(info.value) and str(list_file) in str(info.value)


def test_list_relative_to_its_folder_with_files(tmp_path):
    make_tree(tmp_path / "Sony", shorts=["00001_00_0.1s.ARW", "00001_01_0.1s.ARW"], longs=["00001_00_10s.ARW"])
    list_file = tmp_path / "my_list.txt"
    list_file.write_text("# my pairs\n\n"
                         "./Sony/short/00001_00_0.1s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8\n"
                         "Sony/short/00001_01_0.1s.ARW Sony/long/00001_00_10s.ARW\n")
    other_cwd = tmp_path / "elsewhere"
    other_cwd.mkdir()
    cwd = os.getcwd()
    os.chdir(other_cwd)  # paths must not depend on the working folder
    try:
        pairs = read_pair_list(list_file)
    finally:
        os.chdir(cwd)
    assert [p.short_path for p in pairs] == [str(tmp_path / "Sony" / "short" / "00001_00_0.1s.ARW"),
                                             str(tmp_path / "Sony" / "short" / "00001_01_0.1s.ARW")]
    assert pairs[0].iso == "ISO200" and pairs[0].fnumber == "F8"
    assert pairs[1].iso is None and pairs[1].fnumber is None


def test_list_problems_listed_with_line_numbers_or_skipped(tmp_path):
    make_tree(tmp_path / "Sony", shorts=["00001_00_0.1s.ARW"], longs=["00001_00_10s.ARW"])
    list_file = tmp_path / "list.txt"
    list_file.write_text("./Sony/short/00001_00_0.1s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8\n"
                         "./Sony/short/00002_00_0.1s.ARW ./Sony/long/00002_00_10s.ARW ISO200 F8\n"
                         "just_one_field.ARW\n"
                         "./Sony/short/IMG_1.ARW ./Sony/long/00001_00_10s.ARW\n")
    with pytest.raises(SidFtError) as info:
        read_pair_list(list_file)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert f"{list_file}:2" in message and "00002_00_0.1s.ARW" in message
    assert f"{list_file}:3" in message and f"{list_file}:4" in message and "IMG_1.ARW" in message
    skipped = []
    pairs = read_pair_list(list_file, skipped=skipped)
    assert [p.scene_id for p in pairs] == ["00001"]
    assert [e.path for e in skipped] == [f"{list_file}:{n}" for n in (2, 3, 4)]


def test_list_file_errors(tmp_path):
    with pytest.raises(SidFtError, match="not found"):
        read_pair_list(tmp_path / "missing.txt")
    with pytest.raises(SidFtError, match="folder"):
        read_pair_list(tmp_path)
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(SidFtError, match="no pairs") as info:
        read_pair_list(tmp_path / "empty.txt")
    assert str(tmp_path / "empty.txt") in str(info.value)
