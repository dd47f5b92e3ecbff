"""--batch-size: N patches per step, each augmented its own way, the loss their mean, in every training mode."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sid_ft._tf import tf1
from sid_ft.nets import checkpoint as ckpt
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.data.sampling import Patch, PatchSampler
from sid_ft.training.augment import augment
from sid_ft.training.graph import build_train_graph, feed_for
from sid_ft.training.loop import train

from tests.builders import train_opts as _opts


def test_augment_flips_each_patch_by_its_own_flags():
    tf = tf1()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 5, 2)).astype(np.float32)
    flags = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0], [1, 1, 1]], bool)
    with tf.Graph().as_default(), tf.Session() as sess:
        out = sess.run(augment(tf.constant(x), tf.constant(flags)))
    for i, (rows, cols, transpose) in enumerate(flags):
        want = x[i]
        want = want[::-1] if rows else want
        want = want[:, ::-1] if cols else want
        want = want.transpose(1, 0, 2) if transpose else want
        np.testing.assert_array_equal(out[i], want, err_msg=f"patch {i}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "frozen", "cached"])
def test_batch_loss_and_gradient_are_the_means_of_the_patches(pretrained, mode):
    tf = tf1()
    rng = np.random.default_rng(1)
    cfg = GAddConfig(depth=1, width=8)
    tg = build_train_graph("sony", cfg, mode, ["all"] if mode == "full" else ["g_add"], 1e-3, 1000, 0.1)
    with tg.graph.as_default(), tf.Session(graph=tg.graph) as sess:
        ckpt.restore_pretrained(sess, pretrained)
        head = [v for v in tg.trainable if v.op.name.startswith("g_add")]
        for i, v in enumerate(head):  # a head that is not zero, so every gradient is
            v.load(np.random.default_rng(i).normal(0, 0.05, v.shape.as_list()).astype(np.float32), sess)
        grads = tf.gradients(tg.loss, tg.trainable)
        patches = []
        for k, flags in enumerate(([0, 0, 0], [1, 0, 1], [0, 1, 1])):
            packed = rng.uniform(0, 0.01, size=(16, 16, 4)).astype(np.float32)
            gt = rng.uniform(0, 1, size=(32, 32, 3)).astype(np.float32)
            ratio = (50.0, 100.0, 250.0)[k]
            if mode == "cached":
                feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: np.minimum(packed * ratio, 1)[None]})
                arrays = [feats[0], logits[0]]
            else:
                arrays = [packed]
            patches.append(Patch(k, arrays, gt, ratio, np.array(flags, bool)))
        batch_loss, batch_grads = sess.run([tg.loss, grads], feed_for(tg, patches))
        singles = [sess.run([tg.loss, grads], feed_for(tg, p)) for p in patches]
    assert len({round(float(s[0]), 6) for s in singles}) == 3  # the patches differ
    np.testing.assert_allclose(batch_loss, np.mean([s[0] for s in singles]), rtol=1e-5)
    for j, v in enumerate(tg.trainable):
        mean = np.mean([s[1][j] for s in singles], axis=0)
        np.testing.assert_allclose(batch_grads[j], mean, rtol=2e-3, atol=1e-6 * np.abs(mean).max(),
                                   err_msg=v.op.name)


def test_sampler_draws_batches_that_depend_on_the_step_only():
    rng = np.random.default_rng(2)
    sources = [[rng.uniform(size=(20, 24, 4)).astype(np.float32)] for _ in range(3)]
    gts = [rng.uniform(size=(40, 48, 3)).astype(np.float16) for _ in range(3)]
    a = PatchSampler(sources, gts, [100.0, 200.0, 300.0], 8, seed=5, batch_size=4)
    steps = [a.sample() for _ in range(3)]
    assert all(len(b) == 4 for b in steps)
    resumed = PatchSampler(sources, gts, [100.0, 200.0, 300.0], 8, seed=5, batch_size=4, first_step=2)
    again = resumed.sample()
    for p, q in zip(steps[2], again):
        assert p.index == q.index and np.array_equal(p.flags, q.flags) and np.array_equal(p.gt, q.gt)
    assert not all(np.array_equal(p.gt, q.gt) for p, q in zip(steps[0], steps[1]))
    single = PatchSampler(sources, gts, [100.0, 200.0, 300.0], 8, seed=5).sample()
    assert len(single) == 1 and np.array_equal(single[0].gt, steps[0][0].gt)  # batch 1: the first of the step


@pytest.mark.slow
@pytest.mark.parametrize("mode_kw", [{}, {"feature_cache": False}, {"trainable_scopes": "all"}])
def test_batch_size_trains_in_every_mode_and_a_resume_keeps_it(dataset, pretrained, tmp_path, mode_kw):
    run = tmp_path / "run"
    result = train(_opts(dataset, pretrained, run, steps=2, batch_size=3, **mode_kw), report=lambda m: None)
    assert result.global_step == 2
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 3 and config["mode"] == result.mode
    if mode_kw:
        return
    messages: list[str] = []
    resumed = train(_opts(dataset, pretrained, run, steps=3), report=messages.append)  # no --batch-size
    assert resumed.global_step == 3 and json.loads((run / "config.json").read_text())["batch_size"] == 3
    train(_opts(dataset, pretrained, run, steps=4, batch_size=2), report=messages.append)
    assert json.loads((run / "config.json").read_text())["batch_size"] == 2
    assert any("--batch-size 2: this run used 3 patches per step" in m for m in messages)


@pytest.mark.slow
def test_epochs_count_patches_with_batches(dataset, pretrained, tmp_path):
    result = train(_opts(dataset, pretrained, tmp_path / "run", epochs=3, batch_size=4, steps=None),
                   report=lambda m: None)
    assert result.global_step == 2  # 3 epochs x 2 scenes = 6 patches, in steps of 4
