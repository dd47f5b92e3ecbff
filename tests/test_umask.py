"""Files follow the umask: what sid_ft writes is as readable as what ``open()`` would create."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from sid_ft.io import atomic
from sid_ft.io.dng import write_dng

from tests.sid_reference import write_released_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        assert atomic.current_umask() == umask
        atomic.write_text(tmp_path / "a.json", "{}")
        with atomic.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.unlink()  # a writer that replaces the temporary file (tifffile, cv2 may)
            tmp.write_bytes(b"x")
        atomic.write_bytes(tmp_path / "a.json", b"[]")  # replacing an existing file
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a.json") == expected
    assert mode_of(tmp_path / "b.bin") == expected


def test_umask_read_without_proc_is_restored(tmp_path, monkeypatch):
    """The fallback (set and put back) leaves the umask as it was, also with threads reading it."""
    real_open = open

    def no_proc(path, *a, **k):
        if str(path) == "/proc/self/status":
            raise OSError("no /proc here")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", no_proc)
    old = os.umask(0o027)
    try:
        seen: list[int] = []
        threads = [threading.Thread(target=lambda: seen.extend(atomic.current_umask() for _ in range(200)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(seen) == {0o027}
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def released(released_checkpoint) -> str:
    return released_checkpoint("sony", 5)


def _run(script: str, *args: str, umask: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], env=env, umask=umask,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_scripts_outputs_follow_the_umask(tmp_path, released, umask, expected):
    src = tmp_path / "clean"
    src.mkdir()
    rng = np.random.default_rng(0)
    mosaic = (rng.uniform(0.3, 0.9, (64, 96)) * 15000 + 512).astype(np.uint16)
    write_dng(src / "scene.dng", mosaic, cfa="RGGB", black_level=512, white_level=16383, exposure_time=10.0)
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "out"

    _run("make_pairs.py", str(src), "--out-dir", str(data), "--ratios", "100", "--seed", "0", umask=umask)
    _run("train_finetune.py", "--dataset-dir", str(data), "--pretrained", released, "--train-dir", str(run),
         "--steps", "1", "--patch-size", "16", "--g-add-width", "8", "--no-progress", umask=umask)
    shorts = sorted((data / "short").glob("*.dng"))
    _run("test.py", "--checkpoint", str(run), "--out-dir", str(out), str(shorts[0]), "--ratio", "100", umask=umask)

    written = {
        "make_pairs.py": sorted(data.rglob("*.dng")) + [data / "make_pairs.json"],
        "train_finetune.py": [run / "config.json", run / "sid_ft.json", *sorted((run / "cache").glob("*.npy"))],
        "test.py": sorted(out.glob("*.png")) + [out / "summary.json", out / "summary.csv"],
    }
    assert len(written["make_pairs.py"]) == 3 and len(written["test.py"]) == 3
    # packed + gt (the default design trains additions inside the network: no feature cache)
    assert len(written["train_finetune.py"]) >= 2 + 2
    wrong = {str(p.relative_to(tmp_path)): oct(mode_of(p)) for files in written.values() for p in files
             if mode_of(p) != expected}
    assert not wrong, f"not {oct(expected)} under umask {oct(umask)}: {wrong}"
