"""Crash-safe writes: an interrupted write leaves the old file and no temporary file."""
import pytest

from sid_ft.io import atomic


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    atomic.write_bytes(target, b"new", fsync=True)
    assert target.read_text() == "new"
