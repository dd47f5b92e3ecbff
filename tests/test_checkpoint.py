"""sid_ft.nets.checkpoint, checkpoint_save, model_spec, inspect: restoring released SID checkpoints, saving full
fine-tuned ones, reading which graph a checkpoint needs, inspecting."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft._tf import tf1
from sid_ft.nets.checkpoint import (check_compatible, resolve_checkpoint, restore_model, restore_pretrained,
                                    variables_to_restore)
from sid_ft.nets.checkpoint_save import make_saver, save_checkpoint
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.inspect import inspect_checkpoint
from sid_ft.nets.model_spec import MODEL_JSON, read_model_spec
from sid_ft.nets.network import sid_network
from sid_ft.nets.unet import CAMERAS
from sid_ft.errors import SidFtError

try:  # `python -m pytest` from the repo root
    from tests.sid_reference import reference_forward, released_layout, write_released_checkpoint
except ImportError:  # plain `pytest`: tests/ itself is on sys.path
    from sid_reference import reference_forward, released_layout, write_released_checkpoint

tf = tf1()
# legacy Keras layers inside tf-slim warn on every call; sid_ft silences them for users, pytest resets filters
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:tensorflow.*")
REPO = Path(__file__).resolve().parents[1]
G_ADD = GAddConfig(depth=2, width=8)


def _session():
    return tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1))


def _input(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.fixture(scope="module")
def sony_ckpt(released_checkpoint):
    return released_checkpoint("sony", 0)


@pytest.fixture(scope="module")
def fuji_ckpt(released_checkpoint):
    return released_checkpoint("fuji", 1)


def _train_g_add(sony_ckpt, train_dir, steps=3, x=None):
    """Restore the released checkpoint, train g_add only with Adam, save; return (prefix, output, g_add values)."""
    x = _input((1, 40, 56, 4), 5) if x is None else x
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        target = tf.placeholder(tf.float32, [None, None, None, 3])
        out, _ = sid_network(inp, g_add=G_ADD)
        global_step = tf.train.get_or_create_global_step()
        head_vars = [v for v in tf.trainable_variables() if v.op.name.startswith("g_add")]
        loss = tf.reduce_mean(tf.abs(out - target))
        train_op = tf.train.AdamOptimizer(1e-2).minimize(loss, global_step=global_step, var_list=head_vars)
        saver = make_saver()
        with _session() as sess:
            restore_pretrained(sess, os.path.dirname(sony_ckpt))
            y_target = np.zeros((1, 80, 112, 3), np.float32)
            for _ in range(steps):
                sess.run(train_op, {inp: x, target: y_target})
            prefix = save_checkpoint(sess, saver, train_dir, sess.run(global_step),
                                     {"camera": "sony", "g_add": G_ADD, "note": "test"})
            y = sess.run(out, {inp: x})
            head = {v.op.name: sess.run(v) for v in head_vars}
    return prefix, y, head


@pytest.fixture(scope="module")
def fine_tuned(sony_ckpt, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("train")
    x = _input((1, 40, 56, 4), 5)
    prefix, y, head = _train_g_add(sony_ckpt, train_dir, x=x)
    return {"dir": str(train_dir), "prefix": prefix, "x": x, "y": y, "head": head}


@pytest.mark.slow
@pytest.mark.parametrize("camera,shape", [("sony", (1, 40, 56, 4)), ("sony", (1, 37, 45, 4)),
                                          ("fuji", (1, 21, 27, 9))])
def test_released_checkpoint_restores_and_matches_independent_forward(sony_ckpt, fuji_ckpt, camera, shape):
    ckpt = sony_ckpt if camera == "sony" else fuji_ckpt
    x = _input(shape, 7)
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, CAMERAS[camera].in_channels])
        out, _ = sid_network(inp, camera=camera)
        with _session() as sess:
            restored = restore_pretrained(sess, ckpt)
            y = sess.run(out, {inp: x})
    ref = reference_forward(ckpt, x)
    assert set(restored) == set(released_layout(camera)["model"])
    assert y.shape == ref.shape
    assert np.abs(ref).max() > 1e-3  # the random weights give a non-trivial image
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


def test_restore_pretrained_restores_only_base_model_variables(sony_ckpt):
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        out, ep = sid_network(inp, g_add=G_ADD)
        global_step = tf.train.get_or_create_global_step()
        loss = tf.reduce_mean(tf.abs(out))
        # Adam over everything, so base variables get Adam slots too: they must not come from the checkpoint
        train_op = tf.train.AdamOptimizer(1e-3).minimize(loss, global_step=global_step)
        beta1 = [v for v in tf.global_variables() if v.op.name == "beta1_power"][0]
        slot = [v for v in tf.global_variables() if v.op.name == "g_conv1_1/weights/Adam"][0]
        with _session() as sess:
            restored = restore_pretrained(sess, sony_ckpt)
            assert sess.run(tf.report_uninitialized_variables()).size == 0
            beta1_value, slot_value, step = sess.run([beta1, slot, global_step])
            x = _input((1, 24, 24, 4))
            y, base = sess.run([out, ep["base_output"]], {inp: x})
            sess.run(train_op, {inp: x})  # no FailedPreconditionError anywhere
    assert set(restored) == set(released_layout("sony")["model"])
    assert beta1_value == pytest.approx(0.9)  # freshly initialised, not the stored 0.9**1000
    assert not slot_value.any() and step == 0
    assert np.array_equal(y, base)  # untrained g_add after a real restore


def test_variables_to_restore_excludes_g_add_and_optimizer_state():
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        out, _ = sid_network(inp, g_add=G_ADD)
        tf.train.AdamOptimizer().minimize(tf.reduce_mean(out), global_step=tf.train.get_or_create_global_step())
        names = {v.op.name for v in variables_to_restore(("g_add",))}
        names_str = {v.op.name for v in variables_to_restore("g_add")}
    assert names == names_str == set(released_layout("sony")["model"])


def test_fuji_checkpoint_into_sony_network_fails_before_any_work_listing_mismatches(fuji_ckpt):
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp, g_add=G_ADD)
        with _session() as sess:
            with pytest.raises(SidFtError) as err:
                restore_pretrained(sess, fuji_ckpt)
            uninitialised = sess.run(tf.report_uninitialized_variables()).size
            total = len(tf.global_variables())
    msg = str(err.value)
    assert "g_conv1_1/weights: checkpoint [3, 3, 9, 32], network [3, 3, 4, 32]" in msg
    assert "g_conv10/weights: checkpoint [1, 1, 32, 27], network [1, 1, 32, 12]" in msg
    assert "g_conv10/biases: checkpoint [27], network [12]" in msg
    assert "3 mismatch" in msg and "fuji model" in msg
    assert uninitialised == total  # nothing was restored or initialised


def test_missing_tensors_are_all_named(tmp_path):
    prefix = write_released_checkpoint(tmp_path, drop=("Variable_2", "g_conv5_1/biases"))
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp)
        with pytest.raises(SidFtError) as err:
            check_compatible(prefix, tf.global_variables())
    assert "missing Variable_2 [2, 2, 64, 128]" in str(err.value)
    assert "missing g_conv5_1/biases [512]" in str(err.value)
    assert err.value.path == prefix


def test_missing_checkpoint_says_where_it_looked(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SidFtError) as err:
        resolve_checkpoint(empty)
    assert str(empty / "checkpoint") in str(err.value) and str(empty / "*.index") in str(err.value)
    missing = tmp_path / "nowhere" / "model.ckpt"
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp)
        with _session() as sess:
            with pytest.raises(SidFtError) as err:
                restore_pretrained(sess, missing)
            assert sess.run(tf.report_uninitialized_variables()).size == len(tf.global_variables())
    assert str(missing) + ".index" in str(err.value)


def test_resolve_checkpoint_accepts_folder_prefix_files_and_foreign_state_paths(sony_ckpt, tmp_path):
    folder = os.path.dirname(sony_ckpt)
    assert resolve_checkpoint(folder) == sony_ckpt
    assert resolve_checkpoint(sony_ckpt) == sony_ckpt
    assert resolve_checkpoint(sony_ckpt + ".index") == sony_ckpt
    assert resolve_checkpoint(sony_ckpt + ".data-00000-of-00001") == sony_ckpt
    # released folders name a path on the authors' machine in their state file
    prefix = write_released_checkpoint(tmp_path / "rel", state_path="./result_Sony/model.ckpt")
    assert resolve_checkpoint(tmp_path / "rel") == prefix
    # no state file, one *.index
    os.remove(tmp_path / "rel" / "checkpoint")
    assert resolve_checkpoint(tmp_path / "rel") == prefix


def test_fine_tuned_checkpoint_keeps_released_base_and_trained_g_add(sony_ckpt, fine_tuned):
    reader = tf.train.load_checkpoint(fine_tuned["prefix"])
    shapes = reader.get_variable_to_shape_map()
    released = tf.train.load_checkpoint(sony_ckpt)
    layout = released_layout("sony")["model"]
    for name, shape in layout.items():  # released names and shapes, bit-identical values
        assert shapes[name] == shape
        assert np.array_equal(reader.get_tensor(name), released.get_tensor(name)), name
    # the full saver kept the head, its Adam slots and the step: the restore-only saver would not
    for name, value in fine_tuned["head"].items():
        assert np.array_equal(reader.get_tensor(name), value)
        assert name + "/Adam" in shapes
    assert np.abs(reader.get_tensor("g_add_out/weights")).max() > 0  # trained away from its zero init
    assert reader.get_tensor("global_step") == 3
    info = json.loads(Path(fine_tuned["dir"], MODEL_JSON).read_text())
    assert info["camera"] == "sony" and info["g_add"] == G_ADD.to_dict() and info["note"] == "test"
    assert info["packing"]["in_channels"] == 4 and "sid_ft_version" in info


def test_save_and_reload_keeps_g_add_tensors_and_output(fine_tuned):
    spec = read_model_spec(fine_tuned["dir"])
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        out, ep = sid_network(inp, camera=spec.camera, g_add=spec.g_add)
        with _session() as sess:
            restored = restore_model(sess, fine_tuned["dir"])
            head = {n: sess.run(v) for n, v in ((v.op.name, v) for v in tf.global_variables())
                    if n.startswith("g_add")}
            y, base = sess.run([out, ep["base_output"]], {inp: fine_tuned["x"]})
    assert "g_add_out/weights" in restored
    assert head.keys() == fine_tuned["head"].keys()
    for name, value in fine_tuned["head"].items():
        assert np.array_equal(head[name], value), name
    np.testing.assert_array_equal(y, fine_tuned["y"])
    assert not np.allclose(y, base)  # the trained head does change the image


@pytest.mark.slow
def test_fine_tuned_checkpoint_reproduces_output_in_fresh_process(fine_tuned, tmp_path):
    np.save(tmp_path / "x.npy", fine_tuned["x"])
    code = (
        "import sys, numpy as np\n"
        "from sid_ft._tf import tf1\n"
        "from sid_ft.nets.checkpoint import restore_model\n"
        "from sid_ft.nets.model_spec import read_model_spec\n"
        "from sid_ft.nets.network import sid_network\n"
        "tf = tf1()\n"
        "spec = read_model_spec(sys.argv[1])\n"
        "x = np.load(sys.argv[2])\n"
        "with tf.Graph().as_default():\n"
        "    inp = tf.placeholder(tf.float32, [None, None, None, 4])\n"
        "    out, _ = sid_network(inp, camera=spec.camera, g_add=spec.g_add)\n"
        "    with tf.Session() as sess:\n"
        "        restore_model(sess, spec.prefix)\n"
        "        np.save(sys.argv[3], sess.run(out, {inp: x}))\n"
    )
    subprocess.run([sys.executable, "-c", code, fine_tuned["dir"], str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, cwd=REPO, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), fine_tuned["y"], rtol=1e-5, atol=1e-6)


def test_restore_only_saver_mistake_would_lose_g_add(sony_ckpt, tmp_path):
    """Control for the test above: a Saver over variables_to_restore() drops the head."""
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp, g_add=G_ADD)
        with _session() as sess:
            restore_pretrained(sess, sony_ckpt)
            tf.train.Saver(variables_to_restore()).save(sess, str(tmp_path / "model.ckpt"))
    assert read_model_spec(tmp_path).g_add is None  # plain SID: the head is gone


def test_read_model_spec_released_vs_fine_tuned(sony_ckpt, fuji_ckpt, fine_tuned, tmp_path):
    sony = read_model_spec(os.path.dirname(sony_ckpt))
    assert (sony.camera, sony.g_add, sony.prefix) == ("sony", None, sony_ckpt)
    assert sony.description == "Sony SID (plain)"
    assert read_model_spec(fuji_ckpt).camera == "fuji"
    tuned = read_model_spec(fine_tuned["dir"])
    assert (tuned.camera, tuned.g_add) == ("sony", G_ADD)
    # without sid_ft.json the head's configuration is inferred from tensor shapes
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in Path(fine_tuned["prefix"]).parent.glob(Path(fine_tuned["prefix"]).name + ".*"):
        (copy / f.name).write_bytes(f.read_bytes())
    assert read_model_spec(copy).g_add == G_ADD
    # a sid_ft.json that contradicts the tensors is an error, not a silent choice
    (copy / MODEL_JSON).write_text(json.dumps({"camera": "sony", "g_add": None}))
    with pytest.raises(SidFtError, match="does not describe"):
        read_model_spec(copy)


@pytest.mark.slow
def test_save_never_overwrites_and_survives_leftovers_of_a_killed_save(sony_ckpt, tmp_path):
    train_dir = tmp_path / "train"
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp, g_add=GAddConfig(depth=1, width=4))
        saver = make_saver()
        spec = {"camera": "sony", "g_add": {"depth": 1, "width": 4}}
        with _session() as sess:
            restore_pretrained(sess, sony_ckpt)
            first = save_checkpoint(sess, saver, train_dir, 1, spec)
            # what a kill -9 during the next save (step 2) can leave behind
            (train_dir / "model.ckpt-2_temp").mkdir()
            (train_dir / "model.ckpt-2_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 10)
            (train_dir / "model.ckpt-2.data-00000-of-00001.tempstate123").write_bytes(b"\0" * 10)
            (train_dir / "model.ckpt-2.data-00000-of-00001").write_bytes(b"\0" * 100)
            (train_dir / "model.ckpt-2.index.tempstate456").write_bytes(b"half an index")
            assert resolve_checkpoint(train_dir) == first  # the state file still names the good one
            restore_model(sess, train_dir)
            second = save_checkpoint(sess, saver, train_dir, 2, spec)
            third = save_checkpoint(sess, saver, train_dir, 2, spec)  # same step again: no overwrite
    assert os.path.basename(first) == "model.ckpt-1"
    assert os.path.basename(second) == "model.ckpt-2.1" and os.path.basename(third) == "model.ckpt-2.2"
    assert resolve_checkpoint(train_dir) == third
    assert not (train_dir / "model.ckpt-2_temp").exists()
    assert not list(train_dir.glob("*.tempstate*"))
    assert read_model_spec(first).g_add == GAddConfig(1, 4)  # the earlier checkpoint is intact
    state = (train_dir / "checkpoint").read_text()
    assert str(tmp_path) not in state  # relative paths: the train_dir can be moved


def test_inspect_checkpoint_groups_and_fit(fine_tuned, fuji_ckpt, tmp_path):
    info = inspect_checkpoint(fine_tuned["dir"])
    groups = {k: [n for n, _ in v] for k, v in info["groups"].items()}
    assert len(groups["base"]) == 42 and "Variable_3" in groups["base"]
    assert set(groups["g_add"]) == set(fine_tuned["head"])
    assert "beta1_power" in groups["optimizer"] and "g_add_out/weights/Adam_1" in groups["optimizer"]
    assert groups["other"] == ["global_step"]
    assert info["fits"] and info["camera"] == "sony" and info["g_add"] == G_ADD.to_dict()
    fuji = inspect_checkpoint(fuji_ckpt)
    assert fuji["fits"] and fuji["model"] == "Fuji SID (plain)" and not fuji["groups"]["g_add"]
    broken = inspect_checkpoint(write_released_checkpoint(tmp_path, drop=("g_conv9_2/weights",)))
    assert not broken["fits"] and broken["problems"] == ["missing g_conv9_2/weights [3, 3, 32, 32]"]


@pytest.mark.slow
def test_inspect_script_output(fine_tuned):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "inspect_checkpoint.py"), fine_tuned["dir"]],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "base (42 tensors):" in out and "g_add (6 tensors):" in out
    assert "other (1 tensors):\n  global_step []" in out
    sections = out.split("g_add (6 tensors):")[1].split("optimizer (")[0]
    assert "g_add_conv1/weights [3, 3, 44, 8]" in sections and "/Adam" not in sections
    assert "model: Sony SID fine-tuned with g_add (head depth 2, width 8)" in out
    assert "fits the network: yes" in out
    assert "Warning" not in proc.stderr and "deprecat" not in proc.stderr.lower()


def test_inspect_script_error_is_one_line(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("inspect_checkpoint_script",
                                                  REPO / "scripts" / "inspect_checkpoint.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "nothing") in err


@pytest.mark.slow
def test_save_checkpoint_refuses_a_saver_that_would_drop_variables(sony_ckpt, tmp_path):
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp, g_add=G_ADD)
        restore_only = tf.train.Saver(variables_to_restore())
        with _session() as sess:
            restore_pretrained(sess, sony_ckpt)
            with pytest.raises(ValueError, match="g_add_conv1"):
                save_checkpoint(sess, restore_only, tmp_path, 1, {"camera": "sony", "g_add": G_ADD})
    assert not list(tmp_path.iterdir())  # nothing written, not even sid_ft.json


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [GAddConfig(depth=1, width=4, packed_input=True),
                                 GAddConfig(depth=2, width=5, linear=True),
                                 GAddConfig(depth=0, width=8, packed_input=True, linear=True)])
def test_head_design_is_read_back_with_and_without_json(sony_ckpt, tmp_path, cfg):
    train_dir = tmp_path / "train"
    with tf.Graph().as_default():
        inp = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(inp, g_add=cfg)
        with _session() as sess:
            restore_pretrained(sess, sony_ckpt)
            prefix = save_checkpoint(sess, make_saver(), train_dir, 1, {"camera": "sony", "g_add": cfg.to_dict()})
    assert read_model_spec(prefix).g_add == cfg
    (train_dir / "sid_ft.json").unlink()  # from the tensors alone
    spec = read_model_spec(prefix)
    assert spec.g_add == cfg
    assert ("sees the packed input" in spec.description) == cfg.packed_input
    assert ("linear path" in spec.description) == cfg.linear
