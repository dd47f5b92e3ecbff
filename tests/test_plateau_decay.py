"""--early-stop decays the rate at the first plateau and stops at the second: the decay step as a graph input
with the schedule's default, the move recorded in metrics.jsonl and best.json, and kept across a stop and a
resume (issue 20)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.builders import fake_val_scores, make_pairs_tree, train_opts

LR, FACTOR = 1e-3, 0.1


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _rates(run: Path) -> dict[int, float]:
    """step -> the rate that step trained with, from metrics.jsonl."""
    return {r["step"]: r["lr"] for r in _metrics(run) if "loss" in r}



@pytest.fixture(scope="module")
def scenes3(tmp_path_factory) -> Path:
    return make_pairs_tree(tmp_path_factory.mktemp("scenes3") / "data", scenes=("00001", "00002", "00003"))


# --------------------------------------------------------------------------- the rate's decay step, fed


def test_the_decay_step_is_an_input_whose_default_is_the_schedule():
    from sid_ft._tf import tf1
    from sid_ft.training.graph import decay_step_input, learning_rate

    tf = tf1()
    with tf.Graph().as_default(), tf.Session() as sess:
        step = tf.placeholder(tf.int64, [], name="global_step")
        boundary = decay_step_input(10)
        fed = learning_rate(step, LR, boundary, FACTOR)
        today = learning_rate(step, LR, 10, FACTOR)  # a python int, as before
        warm = learning_rate(step, LR, boundary, FACTOR, lr_warmup_steps=20)
        assert boundary.op.name == "lr_decay_step"
        assert not tf.global_variables()  # nothing new in a checkpoint

        def rate(tensor, k, moved=None):
            return sess.run(tensor, {step: k} if moved is None else {step: k, boundary: moved})

        for k in (0, 9, 10, 11, 500):  # unfed: today's rate at every step
            assert rate(fed, k) == pytest.approx(rate(today, k))
        assert rate(fed, 10) == pytest.approx(LR) and rate(fed, 11) == pytest.approx(LR * FACTOR)
        assert rate(fed, 4, moved=4) == pytest.approx(LR)  # fed: decayed once global_step is past it
        assert rate(fed, 5, moved=4) == pytest.approx(LR * FACTOR)
        assert rate(warm, 5, moved=4) == pytest.approx(LR * FACTOR * 6 / 20)  # the warm-up still applies
        assert rate(warm, 3, moved=4) == pytest.approx(LR * 4 / 20)


# --------------------------------------------------------------------------- the count and best.json


def test_the_count_starts_again_after_the_move_and_best_json_keeps_the_move(tmp_path):
    from sid_ft.training.validation import BestSoFar, best_so_far

    best = BestSoFar(["a.dng"], 2, 12.0, 0.12, [4, 6, 8], decay_moved_at=6)
    assert best.plateau() == [8]
    assert best.record()["lr_decay_moved_at"] == 6
    assert "lr_decay_moved_at" not in BestSoFar(["a.dng"], 2, 12.0).record()  # today's record when none moved
    folder = tmp_path / "run" / "best"
    folder.mkdir(parents=True)
    (folder / "best.json").write_text(json.dumps({"checkpoint": "model.ckpt-2", "step": 2, **best.record()}))
    messages: list[str] = []
    resumed = best_so_far(tmp_path / "run", ["a.dng"], 8, messages.append)
    assert (resumed.since, resumed.decay_moved_at, resumed.plateau()) == ([4, 6, 8], 6, [8])
    assert any("moved to step 6" in m for m in messages)
    earlier = best_so_far(tmp_path / "run", ["a.dng"], 5, messages.append)  # resumed before the move's scoring
    assert (earlier.since, earlier.decay_moved_at) == ([4], None)
    other = best_so_far(tmp_path / "run", ["b.dng"], 8, messages.append)  # other pairs: the rate stays decayed
    assert (other.step, other.decay_moved_at) == (None, 6)


def test_a_broken_moved_decay_in_best_json_is_an_error(tmp_path):
    from sid_ft.errors import SidFtError
    from sid_ft.nets.best import read_best

    (tmp_path / "best.json").write_text(json.dumps({"checkpoint": "model.ckpt-2", "lr_decay_moved_at": "six"}))
    with pytest.raises(SidFtError, match="lr_decay_moved_at"):
        read_best(tmp_path)


# --------------------------------------------------------------------------- training


@pytest.mark.slow
def test_the_first_plateau_decays_the_rate_and_the_second_stops(scenes3, pretrained, tmp_path, monkeypatch):
    from sid_ft.training.loop import train

    run = tmp_path / "run"
    fake_val_scores([10.0, 9.0, 8.0, 7.0, 6.0], monkeypatch)  # never better after step 2
    messages: list[str] = []
    result = train(train_opts(scenes3, pretrained, run, steps=20, val_pairs=1, val_every=2, early_stop=2),
                   report=messages.append)  # the schedule decays after step 10
    assert result.global_step == 10 and result.stopped_early and result.stopped_by is None
    assert "since the rate's decay at step 6" in result.stopped_early
    moved = [r for r in _metrics(run) if r.get("lr_decay") == "plateau"]
    assert len(moved) == 1 and moved[0]["step"] == 6 and moved[0]["scheduled_lr_decay_step"] == 10
    assert any("it decays now" in m for m in messages)
    rates = _rates(run)
    assert [rates[s] for s in range(1, 7)] == pytest.approx([LR] * 6)
    assert [rates[s] for s in range(7, 11)] == pytest.approx([LR * FACTOR] * 4)  # from the next step on
    best = json.loads((run / "best" / "best.json").read_text())
    assert (best["step"], best["evaluations_since_best"], best["lr_decay_moved_at"]) == (2, [4, 6, 8, 10], 6)
    stop = [r for r in _metrics(run) if r.get("stopped") == "early_stop"]
    assert len(stop) == 1 and stop[0]["step"] == 10


@pytest.mark.slow
def test_a_plateau_after_the_scheduled_decay_stops_the_run(scenes3, pretrained, tmp_path, monkeypatch):
    from sid_ft.training.loop import train

    run = tmp_path / "run"
    fake_val_scores([10.0, 9.0, 8.0], monkeypatch)
    result = train(train_opts(scenes3, pretrained, run, steps=20, val_pairs=1, val_every=2, early_stop=2,
                              lr_decay_step=3), report=lambda m: None)
    assert result.global_step == 6 and "since step 2 (10.00 dB)" in result.stopped_early
    assert not [r for r in _metrics(run) if "lr_decay" in r]
    rates = _rates(run)
    assert rates[4] == pytest.approx(LR) and rates[5] == pytest.approx(LR * FACTOR)  # the schedule's, unmoved


@pytest.mark.slow
def test_a_stop_and_a_resume_keep_the_moved_decay(scenes3, pretrained, tmp_path, monkeypatch):
    from sid_ft.training.loop import train

    run = tmp_path / "run"
    opts = train_opts(scenes3, pretrained, run, steps=20, val_pairs=1, val_every=2, early_stop=2)
    fake_val_scores([10.0, 9.0, 8.0], monkeypatch, signal_at=3)  # SIGTERM while scoring step 6, the one that moves the decay
    first = train(opts, report=lambda m: None)
    assert first.stopped_by == "SIGTERM" and first.global_step == 6 and first.stopped_early is None
    assert json.loads((run / "best" / "best.json").read_text())["lr_decay_moved_at"] == 6
    messages: list[str] = []
    fake_val_scores([7.0, 6.0], monkeypatch)
    second = train(opts, report=messages.append)
    assert second.resumed and second.global_step == 10 and "since the rate's decay at step 6" in second.stopped_early
    assert any("moved to step 6" in m for m in messages)
    rates = _rates(run)
    assert [rates[s] for s in range(7, 11)] == pytest.approx([LR * FACTOR] * 4)  # the decayed rate after the resume
    assert len([r for r in _metrics(run) if r.get("lr_decay") == "plateau"]) == 1
    assert np.isclose(rates[6], LR)
