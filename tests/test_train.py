"""Fine-tuning: end to end from a released-layout checkpoint, resume, kill -9, cache equivalence."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sid_ft._tf import tf1
from sid_ft.io.dng import write_dng
from sid_ft.errors import SidFtError
from sid_ft.training.graph import build_train_graph, feed_for
from sid_ft.training.loop import train
from sid_ft.training.options import TrainOptions
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.model_spec import classify_tensor, read_model_spec
from sid_ft.data.sampling import Patch
from sid_ft.nets import checkpoint as ckpt

from tests.builders import make_pairs_tree, train_opts as _opts
from tests.samples import RELEASED_JSON
from tests.sid_reference import write_released_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_end_to_end_keeps_base_and_adds_g_add(dataset, pretrained, tmp_path):
    result = train(_opts(dataset, pretrained, tmp_path / "run"), report=lambda m: None)
    assert result.mode == "cached" and result.global_step == 6
    tf = tf1()
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == result.checkpoint
    before = tf.train.load_checkpoint(pretrained)
    after = tf.train.load_checkpoint(result.checkpoint)
    shapes = after.get_variable_to_shape_map()
    released = json.loads(RELEASED_JSON.read_text())["Sony"]["model"]
    base_names = [n for n in before.get_variable_to_shape_map() if classify_tensor(n) == "base"]
    assert len(base_names) == 42
    assert sorted(base_names) == sorted(released)
    for name in base_names:
        np.testing.assert_array_equal(after.get_tensor(name), before.get_tensor(name), err_msg=name)
    g_add = [n for n in shapes if n.startswith("g_add") and "Adam" not in n]
    assert g_add, "the fine-tuned checkpoint has no g_add tensors"
    assert any(np.abs(after.get_tensor(n)).max() > 0 for n in g_add if n.startswith("g_add_out"))
    assert "global_step" in shapes and int(after.get_tensor("global_step")) == 6
    assert any(n.endswith("/Adam") for n in shapes if n.startswith("g_add"))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert all({"step", "loss", "lr", "step_time_s"} <= set(r) for r in lines)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["mode"] == "cached" and len(config["pairs"]) == 2
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_default_design_trains_additions_inside_at_its_rate(dataset, pretrained, tmp_path):
    result = train(TrainOptions(dataset_dir=str(dataset), pretrained=pretrained, train_dir=str(tmp_path / "run"),
                                steps=2, patch_size=16, progress=False), report=lambda m: None)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert result.mode == config["mode"] == "inside" and config["lr"] == pytest.approx(1e-3)
    assert config["g_add"] == GAddConfig(head=False, rank=32).to_dict()
    names = tf1().train.load_checkpoint(result.checkpoint).get_variable_to_shape_map()
    assert names["g_add/g_conv5_1/down/weights"] == [3, 3, 256, 32] and "g_add_out/weights" not in names


@pytest.mark.slow
def test_loss_goes_down(dataset, pretrained, tmp_path):
    train(_opts(dataset, pretrained, tmp_path / "run", steps=120, lr=3e-3, lr_decay_step=1000, log_every=1),
          report=lambda m: None)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:10])


@pytest.mark.slow
def test_resume_continues_step_count(dataset, pretrained, tmp_path):
    messages: list[str] = []
    train(_opts(dataset, pretrained, tmp_path / "run", steps=3), report=messages.append)
    result = train(_opts(dataset, "/nonexistent", tmp_path / "run", steps=5),
                   report=messages.append)
    assert result.resumed and result.global_step == 5
    assert any("resuming from" in m for m in messages)
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [GAddConfig(depth=2, width=8), GAddConfig(depth=1, width=8, packed_input=True,
                                                                            linear=True)])
def test_same_update_with_and_without_feature_cache(pretrained, cfg):
    """The cache is an optimisation: from the same patch, 'cached' and 'frozen' make the same updates."""
    tf = tf1()
    rng = np.random.default_rng(0)
    packed = rng.uniform(0, 0.01, size=(24, 24, 4)).astype(np.float32)
    gt = rng.uniform(0, 1, size=(48, 48, 3)).astype(np.float32)
    flags = np.array([True, False, True])
    ratio = 50.0
    results = {}
    for mode in ("frozen", "cached"):
        tg = build_train_graph("sony", cfg, mode, ["g_add"], 1e-3, 1000, 0.1)
        with tg.graph.as_default(), tf.Session(graph=tg.graph) as sess:
            tf.set_random_seed(0)
            ckpt.restore_pretrained(sess, pretrained)
            head_vars = [v for v in tf.global_variables() if v.op.name.startswith("g_add") and "Adam" not in v.op.name]
            # same starting head for both modes
            for i, v in enumerate(head_vars):
                v.load(np.random.default_rng(i).normal(0, 0.05, v.shape.as_list()).astype(np.float32), sess)
            if mode == "cached":
                feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: np.minimum(packed * ratio, 1)[None]})
                patch = Patch(0, [feats[0], logits[0], packed], gt, ratio, flags)
            else:
                patch = Patch(0, [packed], gt, ratio, flags)
            losses = [sess.run([tg.train_op, tg.loss], feed_for(tg, patch, ratio))[1] for _ in range(3)]
            results[mode] = (losses, {v.op.name: sess.run(v) for v in head_vars})
    np.testing.assert_allclose(results["frozen"][0], results["cached"][0], rtol=1e-5)
    for name, value in results["frozen"][1].items():
        np.testing.assert_allclose(results["cached"][1][name], value, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_only_g_add_changes_and_full_mode_changes_base(dataset, pretrained, tmp_path):
    result = train(_opts(dataset, pretrained, tmp_path / "all", steps=2, trainable_scopes="all"), report=lambda m: None)
    assert result.mode == "full"
    tf = tf1()
    before, after = tf.train.load_checkpoint(pretrained), tf.train.load_checkpoint(result.checkpoint)
    assert not np.array_equal(before.get_tensor("g_conv1_1/weights"), after.get_tensor("g_conv1_1/weights"))


@pytest.mark.slow
def test_patch_larger_than_image_is_a_clear_error(dataset, pretrained, tmp_path):
    from sid_ft.errors import SidFtError

    with pytest.raises(SidFtError, match="patch size 64 is larger"):
        train(_opts(dataset, pretrained, tmp_path / "run", patch_size=64), report=lambda m: None)


@pytest.mark.slow
def test_bad_files_are_skipped_and_named(dataset, pretrained, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / "short" / "00003_00_0.1s.dng").write_bytes(b"not a raw file at all" * 10)
    (data / "long" / "00003_00_10s.dng").write_bytes(b"")
    (data / "short" / "00004_00_0.1s.dng").write_bytes(b"x")  # no long partner
    messages: list[str] = []
    result = train(_opts(data, pretrained, tmp_path / "run", steps=1), report=messages.append)
    assert result.global_step == 1
    text = "\n".join(messages)
    assert "00003_00_0.1s.dng" in text and "00004_00_0.1s.dng" in text


def test_missing_pretrained_is_an_error_not_random_weights(dataset, tmp_path):
    from sid_ft.errors import SidFtError

    with pytest.raises(SidFtError, match="nowhere"):
        train(_opts(dataset, str(tmp_path / "nowhere"), tmp_path / "run"), report=lambda m: None)


@pytest.mark.slow
def test_kill_9_during_training_resumes(dataset, pretrained, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_finetune.py"), "--dataset-dir", str(dataset),
           "--pretrained", pretrained, "--train-dir", str(run), "--steps", "100000", "--patch-size", "16",
           "--save-every", "3", "--g-add-width", "8", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tf = tf1()
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(str(run))
            if latest and int(latest.rsplit("-", 1)[1]) >= 6:
                break
            if proc.poll() is not None:
                pytest.fail(f"trainer exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint written in time")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    latest = tf.train.latest_checkpoint(str(run))
    reached = int(latest.rsplit("-", 1)[1])
    result = train(_opts(dataset, pretrained, run, steps=reached + 2), report=lambda m: None)
    assert result.resumed and result.global_step == reached + 2


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(dataset, pretrained, tmp_path):
    from sid_ft.errors import SidFtError

    run = tmp_path / "run"
    good = train(_opts(dataset, pretrained, run, steps=2), report=lambda m: None).checkpoint
    # a learning rate of 1e30 drives the head's weights to ~1e30: the output overflows and the loss is inf/NaN
    with pytest.raises(SidFtError, match=r"loss became (inf|nan).*last good checkpoint is kept") as err:
        train(_opts(dataset, pretrained, run, steps=50, lr=1e30, lr_decay_step=1000), report=lambda m: None)
    assert good in str(err.value)
    tf = tf1()
    assert tf.train.latest_checkpoint(str(run)) == good
    reader = tf.train.load_checkpoint(good)
    for name in reader.get_variable_to_shape_map():
        assert np.all(np.isfinite(reader.get_tensor(name))), name


@pytest.mark.slow
def test_non_finite_weights_are_never_saved(dataset, pretrained, tmp_path):
    from sid_ft.errors import SidFtError

    run = tmp_path / "run"
    good = train(_opts(dataset, pretrained, run, steps=2), report=lambda m: None).checkpoint
    # an infinite learning rate: the first step's loss is still finite (computed before the update), but the
    # update leaves the head's weights inf/NaN and the checkpoint due right after it must not be written
    with pytest.raises(SidFtError, match=r"weights became NaN or infinite by step 3.*last good checkpoint is kept"):
        train(_opts(dataset, pretrained, run, steps=50, lr=float("inf"), lr_decay_step=1000, save_every=1),
              report=lambda m: None)
    tf = tf1()
    assert tf.train.latest_checkpoint(str(run)) == good
    reader = tf.train.load_checkpoint(good)
    for name in reader.get_variable_to_shape_map():
        assert np.all(np.isfinite(reader.get_tensor(name))), name


@pytest.mark.slow
def test_from_scratch_trains_plain_sid(dataset, tmp_path):
    from sid_ft.errors import SidFtError

    run = tmp_path / "scratch"
    result = train(_opts(dataset, "/nonexistent", run, steps=2, from_scratch=True, trainable_scopes="all"),
                   report=lambda m: None)
    spec = read_model_spec(result.checkpoint)
    assert spec.g_add is None and spec.camera == "sony"
    names = tf1().train.load_checkpoint(result.checkpoint).get_variable_to_shape_map()
    assert not [n for n in names if n.startswith("g_add")]
    # the plain model is a base for g_add fine-tuning ...
    tuned = train(_opts(dataset, result.checkpoint, tmp_path / "tuned", steps=2), report=lambda m: None)
    assert read_model_spec(tuned.checkpoint).g_add is not None
    # ... but its own train dir cannot be resumed as a g_add run
    with pytest.raises(SidFtError, match="plain SID model"):
        train(_opts(dataset, "/nonexistent", run, steps=4), report=lambda m: None)
    # and --from-scratch neither resumes a g_add model nor trains only some layers of a random network
    with pytest.raises(SidFtError, match="holds Sony SID fine-tuned with g_add"):
        train(_opts(dataset, "/nonexistent", tmp_path / "tuned", steps=4, from_scratch=True, trainable_scopes="all"),
              report=lambda m: None)
    with pytest.raises(SidFtError, match="needs --trainable-scopes all"):
        train(_opts(dataset, "/nonexistent", tmp_path / "x", steps=2, from_scratch=True,
                    trainable_scopes="g_conv10"), report=lambda m: None)


@pytest.mark.slow
def test_epochs_count_scenes_and_a_resume_keeps_the_length(tmp_path, pretrained):
    from sid_ft.errors import SidFtError

    data = make_pairs_tree(tmp_path / "data", scenes=("00001", "00002", "00003"))
    messages: list[str] = []
    result = train(_opts(data, pretrained, tmp_path / "run", epochs=2, save_every=3), report=messages.append)
    assert result.global_step == 2 * 3  # three scenes, as SID's train_Sony counts an epoch
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["steps"] == 6 and config["lr_decay_step"] == 3
    assert any("2 epoch(s) of 3 scene(s): 6 steps" in m for m in messages)
    # a file went bad since: a resumed run keeps its length (and decay step) instead of stopping early
    (data / "short" / "00003_00_0.1s.dng").write_bytes(b"junk")
    # another --epochs is a new length: 4 epochs of the 2 scenes left
    result = train(_opts(data, pretrained, tmp_path / "run", epochs=4), report=messages.append)
    assert result.global_step == 4 * 2
    again = train(_opts(data, pretrained, tmp_path / "run2", epochs=1, save_every=1), report=lambda m: None)
    assert again.global_step == 2  # two usable scenes now
    (data / "short" / "00002_00_0.1s.dng").write_bytes(b"junk")
    kept: list[str] = []
    resumed = train(_opts(data, pretrained, tmp_path / "run2", epochs=1), report=kept.append)
    assert resumed.global_step == 2 and any("keeping this run's length of 2 steps" in m for m in kept)
    with pytest.raises(SidFtError, match="at least 1"):
        train(_opts(data, pretrained, tmp_path / "bad", epochs=0), report=lambda m: None)


def test_steps_and_epochs_are_exclusive_on_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_finetune.py"), "--steps", "5",
                           "--epochs", "2", "--dataset-dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


@pytest.mark.slow
def test_lr_warmup_ramps_the_rate_then_decays(dataset, pretrained, tmp_path):
    train(_opts(dataset, pretrained, tmp_path / "run", steps=7, lr=1e-3, lr_warmup_steps=4, lr_decay_step=5),
          report=lambda m: None)
    rates = [json.loads(x)["lr"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # step k (1-based) is taken at global step k - 1: lr * k / 4 up to the full rate, a tenth after step 5
    assert rates == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-4])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr_warmup_steps"] == 4
    # a run stopped within its warm-up resumes on the same ramp without the flag
    train(_opts(dataset, pretrained, tmp_path / "resumed", steps=2, lr=1e-3, lr_warmup_steps=4, lr_decay_step=5),
          report=lambda m: None)
    train(_opts(dataset, pretrained, tmp_path / "resumed", steps=4, lr=1e-3, lr_decay_step=5), report=lambda m: None)
    resumed = [json.loads(x)["lr"] for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert resumed == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    with pytest.raises(SidFtError, match="--lr-warmup-steps -1"):
        train(_opts(dataset, pretrained, tmp_path / "bad", lr_warmup_steps=-1), report=lambda m: None)


@pytest.mark.slow
def test_gradient_down_init_sets_down_kernels_and_leaves_the_output(dataset, pretrained, tmp_path):
    """--g-add-down-init gradient (the default): the down kernels are orthogonal directions (scaled) taken from the loss
    gradient; up stays zero before training, so step 0's network is the base's."""
    messages: list[str] = []
    opts = dict(g_add_head=False, g_add_rank=8, steps=1, lr=1e-12)
    train(_opts(dataset, pretrained, tmp_path / "grad", g_add_down_init="gradient", **opts), report=messages.append)
    train(_opts(dataset, pretrained, tmp_path / "xav", g_add_down_init="xavier", **opts), report=lambda m: None)
    assert any("set from the loss gradient" in m for m in messages)
    grad = tf1().train.load_checkpoint(str(tmp_path / "grad" / "model.ckpt-1"))
    xav = tf1().train.load_checkpoint(str(tmp_path / "xav" / "model.ckpt-1"))
    d = grad.get_tensor("g_add/g_conv2_1/down/weights")  # [3, 3, 32, 8]
    assert not np.allclose(d, xav.get_tensor("g_add/g_conv2_1/down/weights"))
    m = d.reshape(-1, 8).astype(np.float64)
    gram = m.T @ m
    assert np.allclose(gram, gram[0, 0] * np.eye(8), atol=1e-4 * gram[0, 0])  # orthogonal columns, one scale
    assert np.isclose(np.sqrt(np.trace(gram)), np.sqrt(2 * 32 * 8 / (32 + 8)), rtol=1e-4)  # Xavier's norm
    assert grad.get_tensor("g_conv2_1/weights").tobytes() == xav.get_tensor("g_conv2_1/weights").tobytes()
    with pytest.raises(SidFtError, match="--g-add-down-init 'svd'"):
        train(_opts(dataset, pretrained, tmp_path / "bad", g_add_down_init="svd", **opts), report=lambda m: None)
