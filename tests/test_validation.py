"""Held-out pairs while training: whole scenes held out, scored into metrics.jsonl, the best checkpoint kept and
resolved, early stopping, and all of it across a stop and a resume (--val-pairs, --val-list, --val-every,
--early-stop)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sid_ft.data.pairs import Pair
from sid_ft.errors import SidFtError
from sid_ft.training.holdout import choose_held_out, split_validation
from sid_ft.training.options import TrainOptions

from tests.builders import fake_val_scores, make_pairs_tree, train_opts


def _pair(scene: str, k: int = 0, folder: str = "/d") -> Pair:
    return Pair(f"{folder}/short/{scene}_0{k}_0.1s.dng", f"{folder}/long/{scene}_00_10s.dng", 0.1, 10.0, scene)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]



@pytest.fixture(scope="module")
def scenes4(tmp_path_factory) -> Path:
    """Four scenes; scene 00002 has two short exposures (two pairs sharing one long exposure)."""
    root = make_pairs_tree(tmp_path_factory.mktemp("scenes4") / "data", scenes=("00001", "00002", "00003", "00004"))
    shutil.copy(root / "short" / "00002_00_0.1s.dng", root / "short" / "00002_01_0.1s.dng")
    return root


# --------------------------------------------------------------------------- choosing the held-out pairs


def test_held_out_pairs_are_whole_scenes_drawn_by_seed():
    pairs = [_pair("00001"), _pair("00002", 0), _pair("00002", 1), _pair("00002", 2), _pair("00003"), _pair("00004")]
    draws = {}
    for seed in range(12):
        held = choose_held_out(pairs, 1, seed)
        scenes = {p.scene_id for p in held}
        assert held == [p for p in pairs if p.scene_id in scenes]  # every pair of a held-out scene, no other
        assert len(scenes) == 1
        draws[seed] = scenes.pop()
    # the order the pairs were listed in does not change the draw
    assert {p.scene_id for p in choose_held_out(pairs[::-1], 1, 3)} == {draws[3]}
    assert len(set(draws.values())) > 1  # the seed chooses
    # at least N pairs, whole scenes, and one scene always stays for training
    held = choose_held_out(pairs, 100, 0)
    assert len({p.scene_id for p in held}) == 3 and len(held) < len(pairs)
    assert choose_held_out([_pair("00001", 0), _pair("00001", 1)], 1, 0) is None  # one scene: none to spare


def test_a_scene_is_an_id_within_the_long_exposures_folder():
    pairs = [_pair("00001", folder="/a"), _pair("00001", folder="/b")]
    held = choose_held_out(pairs, 1, 0)
    assert len(held) == 1  # two folders, two scenes with the same id


def test_too_few_pairs_says_so_and_trains_on_all():
    messages: list[str] = []
    pairs = [_pair("00001", 0), _pair("00001", 1)]
    opts = TrainOptions(val_pairs=1, early_stop=3)
    training, held = split_validation(opts, pairs, messages.append)
    assert training == pairs and held == []
    assert any("too few pairs to hold one out" in m and "without validation or early stopping" in m
               for m in messages)


def test_val_list_pairs_are_held_out_with_their_scenes(tmp_path):
    for sub in ("short", "long"):
        (tmp_path / sub).mkdir()
    for name in ("short/00002_00_0.1s.dng", "long/00002_00_10s.dng"):
        (tmp_path / name).write_bytes(b"")
    listing = tmp_path / "val.txt"
    listing.write_text("./short/00002_00_0.1s.dng ./long/00002_00_10s.dng ISO200 F8\n")
    pairs = [_pair("00001", folder=str(tmp_path)), _pair("00002", 0, str(tmp_path)), _pair("00002", 1, str(tmp_path))]
    messages: list[str] = []
    training, held = split_validation(TrainOptions(val_list=str(listing)), pairs, messages.append)
    assert [p.scene_id for p in training] == ["00001"]
    assert [os.path.basename(p.short_path) for p in held] == ["00002_00_0.1s.dng"]
    assert any("2 training pair(s) of the same scenes are left out" in m for m in messages)
    with pytest.raises(SidFtError, match="nothing is left to train on"):
        split_validation(TrainOptions(val_list=str(listing)), pairs[1:], messages.append)


@pytest.mark.parametrize("kw, text", [
    (dict(val_pairs=1, val_list="v.txt"), "give one"),
    (dict(val_pairs=0), "--val-pairs 0"),
    (dict(val_pairs=1, val_every=0), "--val-every 0"),
    (dict(val_pairs=1, early_stop=0), "--early-stop 0"),
    (dict(early_stop=3), "add --val-pairs N or --val-list FILE"),
])
def test_validation_options_are_checked(kw, text):
    with pytest.raises(SidFtError, match=text.replace("-", r"\-")):
        TrainOptions(**kw).check()


def test_config_replays_the_validation_options(tmp_path):
    from sid_ft.cli.train import options_from_args, parse_args

    recorded = TrainOptions(val_pairs=3, val_every=7, early_stop=4)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"options": dataclasses.asdict(recorded)}))
    replayed = options_from_args(parse_args(["--config", str(path)]))
    assert (replayed.val_pairs, replayed.val_list, replayed.val_every, replayed.early_stop) == (3, None, 7, 4)
    # --val-list on the command line replaces the recorded --val-pairs (one way excludes the other)
    other = options_from_args(parse_args(["--config", str(path), "--val-list", "v.txt"]))
    assert (other.val_pairs, other.val_list, other.early_stop) == (None, "v.txt", 4)
    with pytest.raises(SystemExit):
        parse_args(["--val-pairs", "2", "--val-list", "v.txt"])


# --------------------------------------------------------------------------- the best checkpoint, resolved


def _fake_train_dir(run: Path, best_step: int | None = 4, latest_step: int = 6) -> None:
    """A train dir's files as far as resolving goes (empty checkpoint files): latest, and a best."""
    run.mkdir(parents=True)
    (run / f"model.ckpt-{latest_step}.index").write_bytes(b"")
    (run / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{latest_step}"\n')
    if best_step is not None:
        (run / "best").mkdir()
        (run / "best" / f"model.ckpt-{best_step}.index").write_bytes(b"")
        (run / "best" / "best.json").write_text(json.dumps({"checkpoint": f"model.ckpt-{best_step}",
                                                            "step": best_step, "val_psnr": 30.0}))


def test_a_train_dir_means_its_best_and_gives_its_latest_on_request(tmp_path):
    from sid_ft.nets.checkpoint import resolve_checkpoint

    run = tmp_path / "run"
    _fake_train_dir(run)
    assert resolve_checkpoint(run) == str(run / "best" / "model.ckpt-4")
    assert resolve_checkpoint(run / "best") == str(run / "best" / "model.ckpt-4")
    assert resolve_checkpoint(run, latest=True) == str(run / "model.ckpt-6")
    assert resolve_checkpoint(run / "model.ckpt-6") == str(run / "model.ckpt-6")  # a prefix is a prefix
    plain = tmp_path / "plain"
    _fake_train_dir(plain, best_step=None)
    assert resolve_checkpoint(plain) == str(plain / "model.ckpt-6")


def test_a_broken_best_record_is_an_error_not_the_latest(tmp_path):
    from sid_ft.nets.checkpoint import resolve_checkpoint

    run = tmp_path / "run"
    _fake_train_dir(run)
    (run / "best" / "model.ckpt-4.index").unlink()
    with pytest.raises(SidFtError, match="is not there"):
        resolve_checkpoint(run)
    (run / "best" / "best.json").write_text("{not json")
    with pytest.raises(SidFtError, match="best.json"):
        resolve_checkpoint(run)
    assert resolve_checkpoint(run, latest=True) == str(run / "model.ckpt-6")


def test_test_py_latest_runs_the_latest(tmp_path, monkeypatch):
    from sid_ft.cli import test as test_cli

    run = tmp_path / "run"
    _fake_train_dir(run)
    seen = []

    def fake_run_inference(opts):
        seen.append(opts.checkpoint)
        raise SidFtError(None, "stop here")

    monkeypatch.setattr("sid_ft.inference.run.run_inference", fake_run_inference)
    argv = ["--checkpoint", str(run), "--out-dir", str(tmp_path / "out"), "x.dng", "--ratio", "100"]
    assert test_cli.main(argv + ["--latest"]) == 2
    assert test_cli.main(argv) == 2
    assert seen == [str(run / "model.ckpt-6"), str(run)]  # the plain train dir resolves to its best (above)


def test_resume_counts_only_the_scorings_it_resumes_after(tmp_path):
    from sid_ft.training.validation import best_so_far

    run = tmp_path / "run"
    _fake_train_dir(run)
    record = json.loads((run / "best" / "best.json").read_text())
    record.update(pairs=["a.dng"], evaluations_since_best=[5, 6, 7])
    (run / "best" / "best.json").write_text(json.dumps(record))
    messages: list[str] = []
    best = best_so_far(run, ["a.dng"], 6, messages.append)  # killed after the scoring at step 7, before a save
    assert (best.step, best.psnr, best.since) == (4, 30.0, [5, 6])
    assert best_so_far(run, ["b.dng"], 6, messages.append).psnr is None  # other pairs do not compare
    assert any("not those the best checkpoint so far" in m for m in messages)


def test_a_fresh_run_sets_an_old_best_aside(tmp_path):
    from sid_ft.training.validation import set_aside_stale_best

    run = tmp_path / "run"
    _fake_train_dir(run)
    messages: list[str] = []
    set_aside_stale_best(run, messages.append)
    assert not (run / "best").exists() and (run / "best.stale" / "best.json").is_file()
    assert messages and "best.stale" in messages[0]


# --------------------------------------------------------------------------- training with held-out pairs


@pytest.mark.slow
@pytest.mark.parametrize("design", [dict(), dict(feature_cache=False),
                                    dict(g_add_head=False, g_add_rank=4, g_add_down_init="xavier")],
                         ids=["cached", "frozen", "inside"])
def test_held_out_pairs_are_scored_and_the_best_is_what_the_train_dir_means(scenes4, pretrained, tmp_path, design):
    from sid_ft.inference.predictor import Predictor
    from sid_ft.eval.metrics import psnr
    from sid_ft.nets.checkpoint import resolve_checkpoint
    from sid_ft.data.sampling import DecodeCache
    from sid_ft.training.loop import train

    run = tmp_path / "run"
    result = train(train_opts(scenes4, pretrained, run, val_pairs=1, val_every=2, seed=1, **design),
                   report=lambda m: None)
    config = json.loads((run / "config.json").read_text())
    held = config["validation"]["pairs"]
    scenes = {p["scene_id"] for p in held}
    trained = {p["short_path"] for p in config["pairs"]}
    assert len(scenes) == 1 and not trained & {p["short_path"] for p in held}
    assert all(p["scene_id"] not in scenes for p in config["pairs"])  # whole scenes
    assert len(held) + len(config["pairs"]) == 5
    assert config["options"]["val_pairs"] == 1 and config["validation"]["every"] == 2
    records = [r for r in _metrics(run) if "val_psnr" in r]
    assert [r["step"] for r in records] == [2, 4, 6]
    best = json.loads((run / "best" / "best.json").read_text())
    top = max(records, key=lambda r: r["val_psnr"])
    assert (best["step"], best["val_psnr"]) == (top["step"], top["val_psnr"])
    assert resolve_checkpoint(run) == result.best == str(run / "best" / best["checkpoint"])
    assert resolve_checkpoint(run, latest=True) == result.checkpoint
    assert list(run.glob("events.out.tfevents.*"))
    # the recorded score is that of the best checkpoint on the whole images, as test.py's Predictor runs it
    cache = DecodeCache(run / "cache")
    scores = []
    with Predictor(run) as predictor:
        assert predictor.spec.prefix == result.best
        for recorded in held:
            cp = cache.load_pair(Pair(**{k: v for k, v in recorded.items() if k != "ratio"}))
            out = predictor.predict(np.minimum(np.asarray(cp.short) * cp.ratio, 1.0))
            scores.append(psnr(out, np.asarray(cp.gt, np.float32)))
    assert np.mean(scores) == pytest.approx(best["val_psnr"], abs=1e-3)


@pytest.mark.slow
def test_best_and_latest_differ_and_early_stop_ends_the_run(scenes4, pretrained, tmp_path, monkeypatch, capsys):
    from sid_ft.cli.train import main
    from sid_ft.nets.checkpoint import resolve_checkpoint

    fake_val_scores([10.0, 12.0, 11.0, 11.5, 9.0], monkeypatch)
    run = tmp_path / "run"
    argv = ["--dataset-dir", str(scenes4), "--pretrained", pretrained, "--train-dir", str(run), "--steps", "50",
            "--patch-size", "16", "--g-add-width", "8", "--g-add-head", "--g-add-rank", "0", "--no-progress",
            "--val-pairs", "1", "--val-every", "2", "--early-stop", "2", "--save-every", "1000",
            "--lr-decay-step", "1"]  # the rate decayed: a plateau stops the run
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "stopped early at step 8" in out.out and "best checkpoint" in out.out
    assert "no better held-out PSNR in 2 scorings (--early-stop 2) since step 4" in out.err
    records = _metrics(run)
    assert [r["step"] for r in records if "val_psnr" in r] == [2, 4, 6, 8]
    stop = [r for r in records if r.get("stopped") == "early_stop"]
    assert len(stop) == 1 and stop[0]["step"] == 8 and stop[0]["best_step"] == 4
    assert resolve_checkpoint(run) == str(run / "best" / "model.ckpt-4")
    assert resolve_checkpoint(run, latest=True) == str(run / "model.ckpt-8")
    assert sorted(p.name for p in (run / "best").glob("*.index")) == ["model.ckpt-4.index"]  # older bests gone
    best = json.loads((run / "best" / "best.json").read_text())
    assert (best["step"], best["val_psnr"], best["evaluations_since_best"]) == (4, 12.0, [6, 8])


@pytest.mark.slow
def test_a_stop_after_a_scoring_and_a_resume_keep_the_best_and_the_count(scenes4, pretrained, tmp_path,
                                                                         monkeypatch):
    from sid_ft.training.loop import train

    run = tmp_path / "run"
    opts = train_opts(scenes4, pretrained, run, steps=40, val_pairs=1, val_every=1, early_stop=3, lr_decay_step=1)
    fake_val_scores([10.0, 12.0, 11.0], monkeypatch, signal_at=3)  # SIGTERM while scoring step 3
    first = train(opts, report=lambda m: None)
    assert first.stopped_by == "SIGTERM" and first.global_step == 3 and first.stopped_early is None
    assert json.loads((run / "best" / "best.json").read_text())["evaluations_since_best"] == [3]
    messages: list[str] = []
    fake_val_scores([11.5, 11.9], monkeypatch)  # below the best so far: two more make three
    second = train(opts, report=messages.append)
    assert second.resumed and second.global_step == 5 and second.stopped_early
    assert any("best so far: step 2, 12.00 dB" in m and "then 1 scoring(s)" in m for m in messages)
    best = json.loads((run / "best" / "best.json").read_text())
    assert (best["step"], best["val_psnr"], best["evaluations_since_best"]) == (2, 12.0, [3, 4, 5])
    assert second.best == str(run / "best" / "model.ckpt-2")
    # and once more: the count is spent, nothing to do
    messages.clear()
    third = train(opts, report=messages.append)
    assert third.global_step == 5 and third.stopped_early and any("nothing to do" in m for m in messages)
    assert [r["step"] for r in _metrics(run) if "val_psnr" in r] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_too_few_pairs_trains_on_all_without_validation(dataset, pretrained, tmp_path):
    from sid_ft.training.loop import train

    listing = tmp_path / "one.txt"
    listing.write_text(f"{dataset}/short/00001_00_0.1s.dng {dataset}/long/00001_00_10s.dng\n")
    run = tmp_path / "run"
    messages: list[str] = []
    result = train(train_opts(dataset, pretrained, run, dataset_dir=None, train_list=str(listing), steps=2,
                              val_pairs=1, val_every=1), report=messages.append)
    assert any("too few pairs to hold one out" in m for m in messages)
    assert result.global_step == 2 and result.best is None and not (run / "best").exists()
    assert json.loads((run / "config.json").read_text())["validation"] is None
    assert not [r for r in _metrics(run) if "val_psnr" in r]


@pytest.mark.slow
def test_a_best_save_killed_before_its_record_leaves_the_previous_best(tmp_path, monkeypatch):
    from sid_ft._tf import tf1
    from sid_ft.nets import checkpoint_save
    from sid_ft.nets.checkpoint import resolve_checkpoint
    from sid_ft.nets.network import sid_network

    tf = tf1()
    run = tmp_path / "run"
    with tf.Graph().as_default(), tf.Session() as sess:
        sid_network(tf.placeholder(tf.float32, [1, None, None, 4]), "sony")
        saver = checkpoint_save.make_saver()
        sess.run(tf.global_variables_initializer())
        spec = {"camera": "sony", "g_add": None}
        checkpoint_save.save_best_checkpoint(sess, saver, run, 2, spec, {"val_psnr": 20.0})
        checkpoint_save.save_best_checkpoint(sess, saver, run, 4, spec, {"val_psnr": 21.0})
        assert resolve_checkpoint(run) == str(run / "best" / "model.ckpt-4")
        assert sorted(p.name for p in (run / "best").glob("*.index")) == ["model.ckpt-4.index"]

        def killed(folder, record):
            raise KeyboardInterrupt  # the process dies between the checkpoint's files and its record

        monkeypatch.setattr(checkpoint_save, "write_best_record", killed)
        with pytest.raises(KeyboardInterrupt):
            checkpoint_save.save_best_checkpoint(sess, saver, run, 6, spec, {"val_psnr": 22.0})
        assert resolve_checkpoint(run) == str(run / "best" / "model.ckpt-4")  # the previous best still counts
        assert json.loads((run / "best" / "best.json").read_text())["val_psnr"] == 21.0
        monkeypatch.undo()
        checkpoint_save.save_best_checkpoint(sess, saver, run, 8, spec, {"val_psnr": 23.0})
    assert sorted(p.name for p in (run / "best").glob("*.index")) == ["model.ckpt-8.index"]  # leftovers gone
    assert not (run / "checkpoint").exists()  # the train dir's state file is not touched
