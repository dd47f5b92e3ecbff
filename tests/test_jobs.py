"""Training as a batch job: one run per train dir (lock), SIGTERM/SIGUSR1 preemption and resume."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sid_ft.runtime import lock as runlock
from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.runtime.preempt import EXIT_PREEMPTED
from sid_ft.training.loop import train

from tests.builders import train_opts as _opts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_finetune.py"


def _write_lock(train_dir: Path, **holder) -> Path:
    train_dir.mkdir(parents=True, exist_ok=True)
    info = dict(host=socket.gethostname(), pid=os.getpid(), started="2026-01-02T03:04:05Z") | holder
    path = train_dir / runlock.LOCK_NAME
    path.write_text(json.dumps(info))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


# --------------------------------------------------------------------------- lock


@pytest.mark.parametrize("host", ["this", "gpu-node-17"])
def test_second_run_on_a_locked_train_dir_stops_naming_the_holder(dataset, pretrained, tmp_path, host):
    """A live holder (this test process on this host), or any holder on another host: the script stops at once."""
    run = tmp_path / "run"
    lock = _write_lock(run, **({} if host == "this" else {"host": host, "pid": 1234}))
    before = lock.read_text()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dataset-dir", str(dataset), "--pretrained", pretrained,
                           "--train-dir", str(run), "--steps", "2", "--patch-size", "16", "--no-progress"],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    holder = socket.gethostname() if host == "this" else host
    pid = os.getpid() if host == "this" else 1234
    assert f"host {holder}, pid {pid}, started 2026-01-02T03:04:05Z" in proc.stderr
    assert "--force-unlock" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert lock.read_text() == before  # the holder's lock is untouched
    assert sorted(p.name for p in run.iterdir()) == [runlock.LOCK_NAME]  # nothing else written
    # the library refuses too
    with pytest.raises(SidFtError, match=f"another run is using this train dir: host {holder}"):
        train(_opts(dataset, pretrained, run), report=lambda m: None)


@pytest.mark.slow
def test_stale_lock_of_a_dead_process_on_this_host_is_taken_over(dataset, pretrained, tmp_path):
    run = tmp_path / "run"
    dead = _dead_pid()
    _write_lock(run, pid=dead)
    messages: list[str] = []
    result = train(_opts(dataset, pretrained, run, steps=2), report=messages.append)
    assert result.global_step == 2
    assert any(f"took over the lock" in m and f"pid {dead}" in m and f"no process {dead} runs" in m
               for m in messages), messages
    assert not (run / runlock.LOCK_NAME).exists()  # released at the end
    # a lock from before this host restarted (another boot id) is stale as well
    _write_lock(run, pid=os.getpid(), boot_id="another-boot")
    if runlock._boot_id():
        with runlock.TrainDirLock(run, report=messages.append):
            holder = runlock.LockHolder.parse((run / runlock.LOCK_NAME).read_text())
            assert holder.pid == os.getpid() and holder.boot_id == runlock._boot_id()
        assert "this host has restarted since" in messages[-1]


@pytest.mark.slow
def test_force_unlock_takes_a_lock_of_another_host(dataset, pretrained, tmp_path):
    run = tmp_path / "run"
    _write_lock(run, host="gpu-node-17", pid=99)
    messages: list[str] = []
    result = train(_opts(dataset, pretrained, run, steps=1, force_unlock=True), report=messages.append)
    assert result.global_step == 1
    assert any("took over the lock" in m and "host gpu-node-17, pid 99" in m and "--force-unlock" in m
               for m in messages)
    # an unreadable lock file is not guessed about either
    (run / runlock.LOCK_NAME).write_text("garbage")
    with pytest.raises(SidFtError, match="cannot be read"):
        train(_opts(dataset, pretrained, run, steps=2), report=lambda m: None)
    assert train(_opts(dataset, pretrained, run, steps=2, force_unlock=True), report=lambda m: None).global_step == 2


def test_lock_is_reentrant_in_a_process_and_released_once(tmp_path):
    run = tmp_path / "run"
    outer = runlock.TrainDirLock(run)
    with outer:
        with runlock.TrainDirLock(run):  # the script holds it, train() takes it again
            pass
        assert (run / runlock.LOCK_NAME).exists()
        holder = runlock.LockHolder.parse((run / runlock.LOCK_NAME).read_text())
        assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    assert not (run / runlock.LOCK_NAME).exists()
    assert [p.name for p in run.iterdir()] == []  # no temporary link files left


# --------------------------------------------------------------------------- preemption


def _latest_step(run: Path) -> int | None:
    latest = tf1().train.latest_checkpoint(str(run))
    return int(latest.rsplit("-", 1)[1]) if latest else None


def _records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_exits_75_and_the_same_command_resumes_to_steps(dataset, pretrained, tmp_path, sig):
    """The job is signalled mid-run; a rerun of the same command ends at exactly --steps, with the weights of a
    run that was never interrupted (the patches of step i depend only on --seed and i)."""
    steps = 400
    start = tmp_path / "start"
    # both runs continue from the same 2-step checkpoint: the g_add layers' random initial values are not seeded
    train(_opts(dataset, pretrained, start, steps=2), report=lambda m: None)
    run, straight = tmp_path / "run", tmp_path / "straight"
    shutil.copytree(start, run)
    shutil.copytree(start, straight)
    cmd = [sys.executable, str(SCRIPT), "--dataset-dir", str(dataset), "--pretrained", pretrained,
           "--train-dir", str(run), "--steps", str(steps), "--patch-size", "16", "--g-add-width", "8",
           "--lr", "1e-3", "--save-every", "1000", "--log-every", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while len(_records(run)) < 4:  # two steps of the previous run, two of this one
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"trainer exited or stalled before step 4: {proc.communicate()[1][-2000:]}")
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_PREEMPTED, err[-2000:]
    records = _records(run)
    stop = records[-1]
    reached = stop["step"]
    assert stop["stopped"] == signal.Signals(sig).name and stop["exit_code"] == EXIT_PREEMPTED
    assert 4 <= reached < steps, "the signal came too late to interrupt the run"
    assert [r["step"] for r in records[:-1]] == list(range(1, reached + 1))  # every step logged, none lost
    assert _latest_step(run) == reached and stop["checkpoint"].endswith(f"model.ckpt-{reached}")
    assert f"stopped by {signal.Signals(sig).name} at step {reached}" in out
    assert not (run / runlock.LOCK_NAME).exists()

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"done: step {steps}" in again.stdout and _latest_step(run) == steps
    assert [r["step"] for r in _records(run) if "loss" in r] == list(range(1, steps + 1))

    result = train(_opts(dataset, pretrained, straight, steps=steps), report=lambda m: None)
    assert result.global_step == steps
    tf = tf1()
    a = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run)))
    b = tf.train.load_checkpoint(result.checkpoint)
    names = [n for n in a.get_variable_to_shape_map() if n.startswith("g_add")]
    assert names
    for n in names:
        np.testing.assert_allclose(a.get_tensor(n), b.get_tensor(n), rtol=1e-5, atol=1e-7, err_msg=n)
    losses = {r["step"]: r["loss"] for r in _records(run) if "loss" in r}
    straight_losses = {r["step"]: r["loss"] for r in _records(straight) if "loss" in r}
    np.testing.assert_allclose([losses[s] for s in range(3, steps + 1)],
                               [straight_losses[s] for s in range(3, steps + 1)], rtol=1e-5)


@pytest.mark.slow
def test_signal_before_the_first_step_still_exits_75(dataset, pretrained, tmp_path):
    """SIGTERM while the job is still starting (TensorFlow loading): the run stops cleanly, lock released."""
    run = tmp_path / "run"
    cmd = [sys.executable, str(SCRIPT), "--dataset-dir", str(dataset), "--pretrained", pretrained,
           "--train-dir", str(run), "--steps", "50", "--patch-size", "16", "--g-add-width", "8", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / runlock.LOCK_NAME).exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, err[-2000:]
    assert _records(run)[-1]["stopped"] == "SIGTERM" and _records(run)[-1]["step"] == 0
    assert not (run / runlock.LOCK_NAME).exists()


@pytest.mark.slow
def test_signal_while_decoding_stops_between_files_and_the_rerun_continues(dataset, pretrained, tmp_path,
                                                                            monkeypatch):
    """A long preparation (decoding, feature caching) does not outlast a grace period: it stops between files."""
    from sid_ft.data import sampling

    run = tmp_path / "run"
    real = sampling.DecodeCache.load_pair
    calls: list[str] = []

    def load_then_signal(self, pair, ratio_cap=300.0):
        calls.append(pair.short_path)
        out = real(self, pair, ratio_cap)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the first of two pairs is decoded
        return out

    monkeypatch.setattr(sampling.DecodeCache, "load_pair", load_then_signal)
    messages: list[str] = []
    result = train(_opts(dataset, pretrained, run, steps=3), report=messages.append)
    assert result.stopped_by == "SIGTERM" and result.global_step == 0 and len(calls) == 1
    assert _records(run)[-1] == {"step": 0, "stopped": "SIGTERM", "checkpoint": None, "exit_code": EXIT_PREEMPTED,
                                 "resume": "run the same command again"}
    assert len(list((run / "cache").glob("*_packed_u16.npy"))) == 1  # the finished file is kept
    assert not (run / runlock.LOCK_NAME).exists() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.undo()
    assert train(_opts(dataset, pretrained, run, steps=3), report=lambda m: None).global_step == 3


def test_lock_without_hard_links_falls_back_to_exclusive_create(tmp_path, monkeypatch):
    def no_links(src, dst, *a, **k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(runlock.os, "link", no_links)
    run = tmp_path / "run"
    with runlock.TrainDirLock(run):
        holder = runlock.LockHolder.parse((run / runlock.LOCK_NAME).read_text())
        assert holder.pid == os.getpid()
        _write_lock(tmp_path / "other", host="gpu-node-17", pid=7)
        with pytest.raises(SidFtError, match="host gpu-node-17, pid 7"):
            runlock.TrainDirLock(tmp_path / "other").acquire()
    assert [p.name for p in run.iterdir()] == []
