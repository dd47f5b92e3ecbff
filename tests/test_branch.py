"""The forms of a rank-r addition (kernel delta, factored gradient, parallel branch): the same function, the same
gradients, the same variables, the same folded kernel (sid_ft.nets.g_add.forms)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from sid_ft._tf import slim as _slim
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.g_add.fold import fold_g_add
from sid_ft.nets.g_add.forms import FORMS, addition_form, chosen_form, forced_addition_form
from sid_ft.nets.g_add.layers import g_add_conv_additions
from sid_ft.nets.network import expected_variables, sid_network
from sid_ft.nets.unet import conv_layers

tf = tf1()
slim = _slim()
WITH_AFFINE = GAddConfig(head=False, affine=True, rank=32)  # the default fine-tune's rank-32 additions, and affine


def _conv_values(rng, cin=6, cout=5, rank=3, zero_additions=False) -> dict:
    """Values of one conv and its additions (non-zero unless ``zero_additions``)."""
    scale = 0.0 if zero_additions else 1.0
    return {"x": rng.normal(0, 1, (2, 9, 11, cin)), "weights": rng.normal(0, 0.3, (3, 3, cin, cout)),
            "biases": rng.normal(0, 0.1, cout), "g_add/c/down/weights": rng.normal(0, 0.3, (3, 3, cin, rank)),
            "g_add/c/up/weights": scale * rng.normal(0, 0.3, (1, 1, rank, cout)),
            "g_add/c/up/biases": scale * rng.normal(0, 0.1, cout), "g_add/c/scale": scale * rng.normal(0, 0.2, cout),
            "g_add/c/shift": scale * rng.normal(0, 0.1, cout), "dz": rng.normal(0, 1, (2, 9, 11, cout))}


def _conv_run(values: dict, form: str | None, affine: bool) -> dict:
    """``{'z': output, name: gradient}`` of ``sum(z * dz)`` for one conv built in ``form`` (None: the rule)."""
    rank = values["g_add/c/down/weights"].shape[-1]
    with tf.Graph().as_default():
        x = tf.constant(values["x"], tf.float32)
        weights = tf.Variable(values["weights"].astype(np.float32), name="weights")
        biases = tf.Variable(values["biases"].astype(np.float32), name="biases")
        with forced_addition_form(form):
            z = g_add_conv_additions(x, weights, biases, "c", GAddConfig(head=False, affine=affine, rank=rank))
        model = slim.get_model_variables()
        wrt = {v.op.name: v for v in model}
        wrt.update(x=x, weights=weights)
        grads = tf.gradients(tf.reduce_sum(z * values["dz"].astype(np.float32)), list(wrt.values()))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            _load(sess, model, {n: values[n].astype(np.float32) for n in wrt if n.startswith("g_add/")})
            out = sess.run([z] + grads)
    return {"z": out[0], **dict(zip(wrt, out[1:]))}


@pytest.mark.parametrize("affine", [False, True])
def test_every_form_gives_the_same_output_and_gradients(affine):
    values = _conv_values(np.random.default_rng(0))
    runs = {form: _conv_run(values, form, affine) for form in FORMS}
    delta = runs["delta"]
    assert set(delta) == {"z", "x", "weights", "g_add/c/down/weights", "g_add/c/up/weights", "g_add/c/up/biases"} \
        | ({"g_add/c/scale", "g_add/c/shift"} if affine else set())
    assert all(np.abs(g).max() > 1e-2 for g in delta.values())  # every gradient is non-trivial
    for form in FORMS[1:]:
        for name, value in delta.items():
            np.testing.assert_allclose(runs[form][name], value, rtol=0, atol=2e-5 * max(1.0, np.abs(value).max()),
                                       err_msg=f"{form}: {name}")


def test_the_factored_forward_is_the_delta_forward_bit_for_bit():
    values = _conv_values(np.random.default_rng(1))
    assert np.array_equal(_conv_run(values, "factored", False)["z"], _conv_run(values, "delta", False)["z"])


@pytest.mark.parametrize("form", FORMS)
def test_untrained_additions_add_exactly_zero_to_one_conv(form):
    values = _conv_values(np.random.default_rng(2), zero_additions=True)
    with tf.Graph().as_default():
        plain = tf.nn.bias_add(tf.nn.conv2d(tf.constant(values["x"], tf.float32),
                                            values["weights"].astype(np.float32), [1, 1, 1, 1], "SAME"),
                               values["biases"].astype(np.float32))
        with tf.Session() as sess:
            base = sess.run(plain)
    assert np.array_equal(_conv_run(values, form, True)["z"], base)


def test_the_rule_trains_the_wide_convs_factored_at_rank_32():
    # SID's widths at rank 32 (C_in = C_out): the measured table in addition_form's docstring
    assert [addition_form(w, w, 32) for w in (32, 64, 128, 256, 512)] == ["delta"] * 2 + ["factored"] * 3
    assert addition_form(512, 512, 0) == "delta"
    assert {addition_form(cin, cout, min(32, cout), k) for _, k, cin, cout in conv_layers("sony")} \
        == {"delta", "factored"}
    assert "branch" not in {addition_form(c, c, r) for c in (4, 32, 512, 4096) for r in (1, 8, 32)}
    with forced_addition_form("branch"):
        assert chosen_form(32, 32, 32) == "branch"
    assert chosen_form(32, 32, 32) == "delta"
    with pytest.raises(ValueError):
        with forced_addition_form("lora"):
            pass


@pytest.mark.slow
@pytest.mark.parametrize("form", [None, "branch"])
def test_variable_names_and_shapes_are_the_delta_forms(form):
    with forced_addition_form("delta"):
        delta = expected_variables("sony", WITH_AFFINE)
    with forced_addition_form(form):
        assert expected_variables("sony", WITH_AFFINE) == delta
    assert delta["g_add/g_conv5_2/down/weights"] == [3, 3, 512, 32]
    assert delta["g_add/g_conv5_2/up/weights"] == [1, 1, 32, 512]


@functools.lru_cache(maxsize=None)
def _shapes(affine: bool) -> dict:
    return expected_variables("sony", GAddConfig(head=False, affine=affine, rank=32))


def _load(sess, variables: list, values: dict) -> None:
    """Set every variable to ``values[name]`` in one run (its initializer, fed)."""
    sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: values[v.op.name] for v in variables})


def _network_values(config: GAddConfig, seed: int, zero_additions: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in _shapes(config.affine).items():
        zero = zero_additions and name.startswith("g_add/") and "/down/" not in name
        values[name] = (np.zeros(shape) if zero else rng.normal(0, 0.2 if name.startswith("g_add/") else 0.1, shape)
                        ).astype(np.float32)
    return values


def _network_run(config: GAddConfig | None, values: dict, x: np.ndarray, form: str | None = None) -> tuple:
    """``(output, {variable name: gradient of mean(output)})`` of the network built in ``form`` (None: the rule)."""
    with tf.Graph().as_default():
        ph = tf.placeholder(tf.float32, [None, None, None, 4])
        with forced_addition_form(form):
            out, _ = sid_network(ph, g_add=config)
        model = slim.get_model_variables()
        grads = tf.gradients(tf.reduce_mean(out), model)
        with tf.Session() as sess:
            _load(sess, model, values)
            result, g = sess.run([out, grads], {ph: x})
    return result, {v.op.name: gv for v, gv in zip(model, g)}


@pytest.mark.slow
def test_network_with_the_rule_folds_and_trains_as_the_delta_network():
    values = _network_values(WITH_AFFINE, seed=5)
    x = np.random.default_rng(6).uniform(0, 0.3, (1, 36, 48, 4)).astype(np.float32)
    rule, rule_grads = _network_run(WITH_AFFINE, values, x)
    delta, delta_grads = _network_run(WITH_AFFINE, values, x, "delta")
    folded_values, folded_config = fold_g_add(values, "sony", WITH_AFFINE)
    folded, _ = _network_run(folded_config, folded_values, x)
    plain, _ = _network_run(None, {n: values[n] for n in folded_values}, x)
    assert np.abs(rule).max() > 0.05 and np.abs(plain - rule).max() > 1e-3  # the additions change the output
    atol = 2e-5 * max(1.0, float(np.abs(rule).max()))
    np.testing.assert_allclose(folded, rule, rtol=0, atol=atol)
    np.testing.assert_allclose(delta, rule, rtol=0, atol=atol)
    assert set(rule_grads) == set(delta_grads)
    for name, g in delta_grads.items():  # the frozen kernels' too: --g-add-down-init gradient reads them
        np.testing.assert_allclose(rule_grads[name], g, rtol=1e-3, atol=1e-4 * max(1e-3, np.abs(g).max()),
                                   err_msg=name)


@pytest.mark.slow
def test_untrained_network_gives_the_base_output_bit_for_bit():
    values = _network_values(WITH_AFFINE, seed=8, zero_additions=True)
    x = np.random.default_rng(9).uniform(0, 0.3, (1, 36, 48, 4)).astype(np.float32)
    base, _ = _network_run(None, {n: v for n, v in values.items() if not n.startswith("g_add/")}, x)
    assert np.abs(base).max() > 0
    for form in (None, "factored", "branch"):  # the rule: delta and factored
        assert np.array_equal(_network_run(WITH_AFFINE, values, x, form)[0], base), form
