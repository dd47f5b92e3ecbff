"""g_add additions inside the network: zero start, training only them, folding for inference, checkpoints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft.nets import checkpoint as ckpt
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.g_add.fold import fold_g_add
from sid_ft.nets.inspect import inspect_checkpoint
from sid_ft.nets.model_spec import classify_tensor, read_model_spec
from sid_ft.nets.network import expected_variables, sid_network
from sid_ft.nets.unet import conv_layers
from sid_ft.inference.predictor import Predictor, amplify
from sid_ft.io import raw as sid_raw
from sid_ft._tf import slim as _slim
from sid_ft._tf import tf1
from sid_ft.training.graph import select_trainable
from sid_ft.training.loop import train
from sid_ft.training.modes import training_mode
from sid_ft.training.options import TrainOptions, parse_scopes

from tests.sid_reference import write_released_checkpoint
from tests.builders import make_dng, make_pairs_tree

tf = tf1()
slim = _slim()
ROOT = Path(__file__).resolve().parents[1]
LSB16 = 1.0 / 65535
INSIDE = GAddConfig(head=False, affine=True, rank=4)


@pytest.fixture(scope="module")
def pretrained(released_checkpoint) -> str:
    return released_checkpoint("sony", 5)


@pytest.fixture(scope="module")
def adapted(dataset, pretrained, tmp_path_factory) -> str:
    """A train dir fine-tuned with additions inside the network and the head."""
    train_dir = tmp_path_factory.mktemp("adapted")
    result = train(TrainOptions(dataset_dir=str(dataset), pretrained=pretrained, train_dir=str(train_dir), steps=5,
                                patch_size=16, lr=3e-2, save_every=1000, log_every=1, progress=False,
                                g_add_head=True, g_add_affine=True, g_add_rank=4, g_add_width=8), report=lambda m: None)
    assert result.mode == "inside"
    return str(train_dir)


def _input(shape=(1, 40, 56, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _random_values(camera: str, config: GAddConfig, seed: int) -> dict[str, np.ndarray]:
    """Every model variable of the network with random values: additions clearly non-zero."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in expected_variables(camera, config).items():
        scale = 0.2 if name.startswith("g_add/") else 0.1
        values[name] = rng.normal(0, scale, shape).astype(np.float32)
    return values


def _run(camera: str, config: GAddConfig | None, values: dict, x: np.ndarray) -> np.ndarray:
    with tf.Graph().as_default():
        ph = tf.placeholder(tf.float32, [None, None, None, x.shape[-1]])
        out, _ = sid_network(ph, camera=camera, g_add=config)
        with tf.Session() as sess:
            for v in slim.get_model_variables():
                v.load(values[v.op.name], sess)
            return sess.run(out, {ph: x})


@pytest.mark.slow
def test_untrained_additions_give_the_base_output_bit_for_bit(pretrained):
    x = _input()
    outputs = {}
    for label, config in (("plain", None), ("inside", INSIDE), ("both", GAddConfig(affine=True, rank=8))):
        with tf.Graph().as_default():
            ph = tf.placeholder(tf.float32, [None, None, None, 4])
            out, _ = sid_network(ph, g_add=config)
            with tf.Session() as sess:
                ckpt.restore_pretrained(sess, pretrained)
                outputs[label] = sess.run(out, {ph: x})
    assert np.abs(outputs["plain"]).max() > 0
    assert np.array_equal(outputs["inside"], outputs["plain"])
    assert np.array_equal(outputs["both"], outputs["plain"])


def test_additions_are_under_g_add_and_released_names_stay():
    plain = expected_variables("sony", None)
    names = expected_variables("sony", GAddConfig(affine=True, rank=16))
    added = set(names) - set(plain)
    assert set(plain) <= set(names) and all(names[n] == plain[n] for n in plain)
    assert added and all(n.startswith("g_add") for n in added)
    # one rank-r delta and one affine per conv: rank capped at the conv's output channels
    assert names["g_add/g_conv1_1/down/weights"] == [3, 3, 4, 16]
    assert names["g_add/g_conv1_1/up/weights"] == [1, 1, 16, 32]
    assert names["g_add/g_conv10/down/weights"] == [1, 1, 32, 12]
    assert names["g_add/g_conv5_2/scale"] == [512]
    assert len([n for n in added if n.endswith("/scale")]) == len(conv_layers("sony")) == 19


@pytest.mark.slow
@pytest.mark.parametrize("camera,config", [("sony", GAddConfig(head=False, affine=True, rank=4)),
                                           ("sony", GAddConfig(head=False, rank=40)),
                                           ("sony", GAddConfig(depth=1, width=8, affine=True)),
                                           ("fuji", GAddConfig(head=False, affine=True, rank=3))])
def test_folded_network_computes_the_unfolded_function(camera, config):
    values = _random_values(camera, config, seed=7)
    c = 4 if camera == "sony" else 9
    x = _input((1, 36, 48, c), seed=3) * 0.3
    unfolded = _run(camera, config, values, x)
    folded_values, folded_config = fold_g_add(values, camera, config)
    assert folded_config == config.folded()
    assert not any(n.startswith("g_add/") for n in folded_values)
    assert set(folded_values) == set(expected_variables(camera, folded_config))
    folded = _run(camera, folded_config, folded_values, x)
    assert np.abs(unfolded).max() > 0.05  # a non-trivial output
    plain = _run(camera, folded_config, {n: values[n] for n in folded_values}, x)
    assert np.abs(plain - unfolded).max() > 1e-3  # the additions do change the output
    np.testing.assert_allclose(folded, unfolded, rtol=0, atol=2e-5 * max(1.0, float(np.abs(unfolded).max())))


@pytest.mark.slow
def test_training_mode_and_scopes_keep_tf_slim_meaning():
    assert training_mode(["g_add"], True, INSIDE).name == "inside"
    assert training_mode(["g_add"], True, GAddConfig()).name == "cached"
    assert training_mode(["g_add"], False, GAddConfig()).name == "frozen"
    assert training_mode(["all"], True, INSIDE).name == "full"
    with tf.Graph().as_default():
        sid_network(tf.placeholder(tf.float32, [None, None, None, 4]), g_add=GAddConfig(affine=True, rank=2))
        variables = tf.trainable_variables()
        inside = select_trainable(variables, parse_scopes("g_add/"))
        head = select_trainable(variables, parse_scopes("g_add_"))
        both = select_trainable(variables, parse_scopes("g_add"))
        restored = ckpt.variables_to_restore(parse_scopes("g_add"))
    assert inside and all(v.op.name.startswith("g_add/") for v in inside)
    assert head and all(v.op.name.startswith("g_add_") for v in head)
    assert len(both) == len(inside) + len(head)
    assert {v.op.name for v in restored} == set(expected_variables("sony", None))


@pytest.mark.slow
def test_fine_tuning_trains_only_additions_and_keeps_base_bit_identical(adapted, pretrained):
    prefix = tf.train.latest_checkpoint(adapted)
    before, after = tf.train.load_checkpoint(pretrained), tf.train.load_checkpoint(prefix)
    stored = after.get_variable_to_shape_map()
    base = [n for n in stored if classify_tensor(n) == "base"]
    assert len(base) == 42
    for name in base:
        np.testing.assert_array_equal(after.get_tensor(name), before.get_tensor(name), err_msg=name)
    moved = [n for n in stored if n.startswith("g_add/") and n.endswith(("/scale", "/up/weights"))
             and np.abs(after.get_tensor(n)).max() > 0]
    assert len(moved) > 10  # the zero-initialised additions learned
    assert any(n.endswith("/Adam") and n.startswith("g_add/") for n in stored)  # optimizer state saved too
    info = json.loads((Path(adapted) / "sid_ft.json").read_text())
    assert info["g_add"]["affine"] is True and info["g_add"]["rank"] == 4 and info["g_add"]["head"] is True
    config = json.loads((Path(adapted) / "config.json").read_text())
    assert config["mode"] == "inside" and config["lr"] == pytest.approx(3e-2)


@pytest.mark.slow
def test_design_is_read_back_from_tensors_alone(adapted, tmp_path):
    spec = read_model_spec(adapted)
    assert spec.g_add == GAddConfig(depth=2, width=8, affine=True, rank=4)
    prefix = tf.train.latest_checkpoint(adapted)
    for f in Path(adapted).glob(Path(prefix).name + ".*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    assert read_model_spec(tmp_path / Path(prefix).name).g_add == spec.g_add  # no sid_ft.json there
    info = inspect_checkpoint(adapted)
    assert info["fits"] and "per-channel affine + rank-4 deltas in every conv" in info["model"]
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "inspect_checkpoint.py"), adapted],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "rank-4 deltas" in out.stdout, out.stderr


def test_legacy_head_only_settings_and_invalid_designs():
    legacy = GAddConfig.from_dict({"depth": 2, "width": 16})
    assert legacy == GAddConfig() and not legacy.inside and legacy.head
    with pytest.raises(ValueError):
        GAddConfig(head=False)  # neither head nor additions
    with pytest.raises(ValueError):
        GAddConfig.from_dict({"rank": 4, "ranks": 2})


@pytest.mark.slow
def test_predictor_folds_within_one_lsb16_of_unfolded(adapted, pretrained, tmp_path):
    dng = make_dng(tmp_path / "s.dng", 48, 64, seed=2)
    packed = amplify(sid_raw.load_raw(dng).packed, 40)
    with Predictor(adapted) as folded, Predictor(adapted, fold=False) as unfolded:
        assert folded.graph_g_add == GAddConfig(depth=2, width=8)  # only the head is left as layers
        with folded.graph.as_default():
            assert not any(v.op.name.startswith("g_add/") for v in slim.get_model_variables())
        a, b = folded.predict(packed), unfolded.predict(packed)
    with Predictor(pretrained) as base:
        plain = base.predict(packed)
    assert np.abs(a - b).max() <= LSB16
    assert np.abs(b - plain).max() > 10 * LSB16  # the trained additions change the output: folding them matters


@pytest.mark.slow
def test_savedmodel_of_adapted_model_reproduces_test_py(adapted, tmp_path):
    dng = make_dng(tmp_path / "s.dng", 48, 64, seed=4)
    export = tmp_path / "export" / "1"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "test.py"), "--checkpoint", adapted, "--out-dir",
                           str(tmp_path / "o"), "--ratio", "40", "--no-progress", "--export-savedmodel",
                           str(export), str(dng)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    packed = amplify(sid_raw.load_raw(dng).packed, 40)
    code = (f"import numpy as np, tensorflow as tf\n"
            f"f = tf.saved_model.load({str(export)!r}).signatures['serving_default']\n"
            f"names = [v.name for v in tf.saved_model.load({str(export)!r}).variables]\n"
            f"assert not any(n.startswith('g_add/') for n in names), names\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, f(packed=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))"
            f"['rgb'].numpy())\n")
    np.save(tmp_path / "x.npy", packed[None])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    from sid_ft.io import png as pngio

    written = pngio.read_png(tmp_path / "o" / "s_out.png") / 65535.0
    served = np.load(tmp_path / "y.npy")[0]
    assert served.shape == written.shape and np.abs(served - written).max() <= LSB16
