"""sid_ft.nets.unet, network, g_add: the SID U-Net's variables, shapes and the g_add head's identity start."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.g_add.head import g_add_head
from sid_ft.nets.network import expected_variables, sid_network
from sid_ft.nets.unet import CAMERAS, UPSAMPLE_FILTER_NAMES, sid_unet
try:  # `python -m pytest` from the repo root
    from tests.samples import RELEASED_JSON
    from tests.sid_reference import builtin_layout
except ImportError:  # plain `pytest`: tests/ itself is on sys.path
    from samples import RELEASED_JSON
    from sid_reference import builtin_layout

tf = tf1()
# legacy Keras layers inside tf-slim warn on every call; sid_ft silences them for users, pytest resets filters
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:tensorflow.*")
slim = _slim_module()


def _session():
    return tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1))


@pytest.mark.slow
@pytest.mark.parametrize("camera,key", [("sony", "Sony"), ("fuji", "Fuji")])
def test_base_variables_equal_released_checkpoint_layout(camera, key):
    with open(RELEASED_JSON) as f:
        released = json.load(f)[key]["model"]
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, CAMERAS[camera].in_channels])
        sid_unet(x, camera=camera)
        ours = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
        model_vars = {v.op.name for v in slim.get_model_variables()}
    assert ours == released
    assert model_vars == set(released)  # every variable is a MODEL_VARIABLE (what restore uses)


@pytest.mark.parametrize("camera,key", [("sony", "Sony"), ("fuji", "Fuji")])
def test_builtin_layout_of_test_helper_equals_json(camera, key):
    with open(RELEASED_JSON) as f:
        released = json.load(f)[key]
    layout = builtin_layout(camera)
    assert layout["model"] == released["model"]
    assert layout["other"] == sorted(released["other"])


@pytest.mark.slow
@pytest.mark.parametrize("camera,shape", [("sony", (1, 40, 56, 4)), ("sony", (2, 37, 45, 4)),
                                          ("fuji", (1, 21, 27, 9))])
def test_output_shape_for_any_input_size(camera, shape):
    spec = CAMERAS[camera]
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, spec.in_channels])
        out, ep = sid_unet(x, camera=camera)
        with _session() as sess:
            sess.run(tf.global_variables_initializer())
            y, logits = sess.run([out, ep["g_conv10"]], {x: np.random.default_rng(0).random(shape, np.float32)})
    n, h, w, _ = shape
    assert y.shape == (n, spec.scale * h, spec.scale * w, 3)
    assert logits.shape == (n, h, w, spec.out_channels)
    assert np.isfinite(y).all()


def test_end_points_and_upsampling_filters():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        out, ep = sid_network(x, g_add=GAddConfig(depth=1, width=8))
        names = [v.op.name for v in tf.global_variables()]
        convs = [f"g_conv{lvl}_{k}" for lvl in range(1, 10) for k in (1, 2)] + ["g_conv10"]
        assert all(name in ep for name in convs + ["output", "base_output", "g_add_logits"])
        assert ep["output"] is out and ep["base_output"] is not out
        assert int(ep["g_conv9_2"].shape[-1]) == 32
        for name in UPSAMPLE_FILTER_NAMES:
            assert name in names
        # no auto-uniquified extra filters such as Variable_4
        assert not [n for n in names if n.startswith("Variable") and n not in UPSAMPLE_FILTER_NAMES]


def test_untrained_g_add_output_equals_base_output_exactly():
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        out, ep = sid_network(x, g_add=GAddConfig(depth=2, width=24))
        with _session() as sess:
            sess.run(tf.global_variables_initializer())
            y, base = sess.run([out, ep["base_output"]], {x: np.random.default_rng(1).random((1, 40, 56, 4),
                                                                                             np.float32)})
    assert np.abs(base).max() > 0  # a non-trivial base output
    assert np.array_equal(y, base)


def test_g_add_head_on_placeholders_is_residual_and_scoped():
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((2, 9, 11, 32)).astype(np.float32)
    logits = rng.standard_normal((2, 9, 11, 27)).astype(np.float32)
    with tf.Graph().as_default():
        f = tf.placeholder(tf.float32, [None, None, None, 32])
        b = tf.placeholder(tf.float32, [None, None, None, 27])
        out, ep = g_add_head(f, b, GAddConfig(depth=3, width=5), camera="fuji")
        names = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
        trainable = {v.op.name for v in tf.trainable_variables()}
        model_vars = {v.op.name for v in slim.get_model_variables()}
        with _session() as sess:
            sess.run(tf.global_variables_initializer())
            y0 = sess.run(out, {f: feats, b: logits})
            expected = sess.run(tf.nn.depth_to_space(logits, 3))
            # once the last layer is non-zero, the head changes the output
            out_w = [v for v in tf.global_variables() if v.op.name == "g_add_out/weights"][0]
            sess.run(out_w.assign(tf.fill(out_w.shape, 0.01)))
            y1 = sess.run(out, {f: feats, b: logits})
    assert all(n.startswith("g_add") for n in names)
    assert set(names) == trainable == model_vars
    assert names["g_add_conv1/weights"] == [3, 3, 32 + 27, 5]
    assert names["g_add_conv3/weights"] == [3, 3, 5, 5]
    assert names["g_add_out/weights"] == [1, 1, 5, 27]
    assert len(names) == 2 * (3 + 1)
    assert y0.shape == (2, 27, 33, 3)
    assert np.array_equal(y0, expected)
    assert not np.allclose(y1, expected)


def test_g_add_head_sees_packed_input_and_has_a_linear_path():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((1, 6, 7, 32)).astype(np.float32)
    logits = rng.standard_normal((1, 6, 7, 12)).astype(np.float32)
    packed = rng.uniform(0, 1, (1, 6, 7, 4)).astype(np.float32)
    cfg = GAddConfig(depth=1, width=6, packed_input=True, linear=True)
    with tf.Graph().as_default():
        f = tf.placeholder(tf.float32, [None, None, None, 32])
        b = tf.placeholder(tf.float32, [None, None, None, 12])
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        with pytest.raises(ValueError, match="packed"):
            g_add_head(f, b, cfg)  # the design needs the input
        out, ep = g_add_head(f, b, cfg, packed=x)
        names = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
        feed = {f: feats, b: logits, x: packed}
        with _session() as sess:
            sess.run(tf.global_variables_initializer())
            y0 = sess.run(out, feed)
            expected = sess.run(tf.nn.depth_to_space(logits, 2))
            lin = [v for v in tf.global_variables() if v.op.name == "g_add_linear/weights"][0]
            # only the linear path is non-zero: the correction is exactly that 1x1 map of the head's input
            w = rng.standard_normal(lin.shape.as_list()).astype(np.float32) * 0.1
            lin.load(w, sess)
            delta = sess.run(ep["g_add_delta"], feed)
    assert names["g_add_conv1/weights"] == [3, 3, 32 + 12 + 4, 6]
    assert names["g_add_linear/weights"] == [1, 1, 32 + 12 + 4, 12]
    assert "g_add_linear/biases" not in names  # g_add_out's bias already is the constant term
    assert cfg.head_input_channels("sony") == 48 and GAddConfig().head_input_channels("fuji") == 32 + 27
    assert np.array_equal(y0, expected)
    head_in = np.concatenate([feats, logits, packed], axis=3)
    np.testing.assert_allclose(delta, np.einsum("nhwc,cd->nhwd", head_in, w[0, 0]), rtol=1e-4, atol=1e-5)


def test_g_add_config_round_trip_and_legacy_dicts():
    cfg = GAddConfig(depth=3, width=7, packed_input=True, linear=True)
    assert GAddConfig.from_dict(cfg.to_dict()) == cfg
    # a head description written before packed_input/linear existed is the original design
    assert GAddConfig.from_dict({"depth": 2, "width": 24}) == GAddConfig(2, 24, packed_input=False, linear=False)
    with pytest.raises(ValueError, match="unknown"):
        GAddConfig.from_dict({"depth": 2, "widht": 3})
    with pytest.raises(ValueError, match="true or false"):
        GAddConfig(linear="yes")
    # without conv layers the width is meaningless (a checkpoint cannot show it): one canonical value
    assert GAddConfig(depth=0, width=8) == GAddConfig(depth=0, width=16)


def test_g_add_head_rejects_wrong_channels():
    with tf.Graph().as_default():
        f = tf.placeholder(tf.float32, [None, None, None, 32])
        b = tf.placeholder(tf.float32, [None, None, None, 12])
        with pytest.raises(ValueError, match="27 channels"):
            g_add_head(f, b, GAddConfig(), camera="fuji")


def test_sid_unet_rejects_wrong_input_channels():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 9])
        with pytest.raises(ValueError, match="4 input channels"):
            sid_unet(x, camera="sony")


def test_reuse_shares_every_variable():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        sid_network(x, g_add=GAddConfig(depth=1, width=4))
        n_before = len(tf.global_variables())
        sid_network(x, g_add=GAddConfig(depth=1, width=4), reuse=True)
        assert len(tf.global_variables()) == n_before


def test_gadd_config_validation_and_round_trip():
    cfg = GAddConfig(depth=3, width=16)
    assert GAddConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        GAddConfig(depth=-1)
    with pytest.raises(ValueError):
        GAddConfig(width=0)
    with pytest.raises(ValueError, match="unknown"):
        GAddConfig.from_dict({"depth": 2, "widht": 3})


def test_expected_variables_counts_head():
    base = expected_variables("sony")
    full = expected_variables("sony", GAddConfig(depth=2, width=24))
    assert len(base) == 42
    assert set(full) - set(base) == {f"g_add_{s}/{t}" for s in ("conv1", "conv2", "out")
                                     for t in ("weights", "biases")}


def test_building_inside_a_variable_scope_is_refused():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        with tf.variable_scope("tower"):
            with pytest.raises(ValueError, match="root variable scope"):
                sid_unet(x)
        with tf.name_scope("tower"):  # a name scope does not change variable names
            sid_unet(x)
        assert "g_conv1_1/weights" in {v.op.name for v in tf.global_variables()}
