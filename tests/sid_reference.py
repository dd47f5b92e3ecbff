"""Independent references for tests: released-layout SID checkpoints and a plain tf.nn forward pass.

Nothing here imports sid_ft.nets' network modules: the point is to check sid_ft against a
second, separately written description of SID.

    prefix = write_released_checkpoint(tmp_path, camera='sony', seed=0)
    y = reference_forward(prefix, x)          # x (N, h, w, 4) float32 -> (N, 2h, 2w, 3)

The layout (tensor names and shapes) comes from
tests/data/sid_released_checkpoints.json (a copy of ../shared/reference's), or from
:func:`builtin_layout` when it is missing; a test compares the two.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

REFERENCE_JSON = Path(__file__).resolve().parent / "data" / "sid_released_checkpoints.json"

_JSON_KEYS = {"sony": "Sony", "fuji": "Fuji"}
_IO = {"sony": (4, 12), "fuji": (9, 27)}  # packed input channels, g_conv10 channels
_UP_FILTERS = ("Variable", "Variable_1", "Variable_2", "Variable_3")


def builtin_layout(camera: str = "sony") -> dict:
    """``{'model': {name: shape}, 'other': [names]}`` of a released SID checkpoint, from the paper's widths."""
    cin, cout = _IO[camera]
    model: dict[str, list[int]] = {}
    widths = {1: 32, 2: 64, 3: 128, 4: 256, 5: 512, 6: 256, 7: 128, 8: 64, 9: 32}
    prev = cin
    for level in range(1, 10):
        w = widths[level]
        first_in = prev if level <= 5 else 2 * w  # decoder input: concat(upsampled, skip)
        model[f"g_conv{level}_1/weights"] = [3, 3, first_in, w]
        model[f"g_conv{level}_1/biases"] = [w]
        model[f"g_conv{level}_2/weights"] = [3, 3, w, w]
        model[f"g_conv{level}_2/biases"] = [w]
        prev = w
    model["g_conv10/weights"] = [1, 1, 32, cout]
    model["g_conv10/biases"] = [cout]
    for i, level in enumerate(range(6, 10)):
        model[_UP_FILTERS[i]] = [2, 2, widths[level], widths[level - 1]]
    other = ["beta1_power", "beta2_power"]
    other += [f"{n}/{slot}" for n in model if n.startswith("g_") for slot in ("Adam", "Adam_1")]
    return {"model": dict(sorted(model.items())), "other": sorted(other)}


def released_layout(camera: str = "sony") -> dict:
    """The layout from the reference JSON in tests/data, else :func:`builtin_layout`."""
    if REFERENCE_JSON.is_file():
        with open(REFERENCE_JSON) as f:
            entry = json.load(f)[_JSON_KEYS[camera]]
        return {"model": {k: list(v) for k, v in entry["model"].items()}, "other": list(entry["other"])}
    return builtin_layout(camera)


def _tf():
    from sid_ft._tf import tf1  # import plumbing only (quiet TensorFlow); no sid_ft.nets network here

    return tf1()


def released_values(camera: str = "sony", seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Random float32 values for every tensor of a released checkpoint (model and optimizer state).

    Convolution weights are He-like (std sqrt(2 / fan_in) * scale) so a
    forward pass stays finite and non-trivial; biases std 0.01; transposed
    filters std sqrt(1 / in_channels) (each output pixel sees one tap).
    """
    rng = np.random.default_rng(seed)
    layout = released_layout(camera)
    values: dict[str, np.ndarray] = {}
    for name, shape in layout["model"].items():
        if name.endswith("/biases"):
            std = 0.01
        elif name in _UP_FILTERS:
            std = np.sqrt(1.0 / shape[3]) * scale
        else:
            std = np.sqrt(2.0 / (shape[0] * shape[1] * shape[2])) * scale
        values[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    for name in layout["other"]:
        if name in ("beta1_power", "beta2_power"):
            values[name] = np.float32(0.9 if name == "beta1_power" else 0.999) ** 1000
        else:
            base = name.rsplit("/", 1)[0]
            values[name] = (rng.standard_normal(layout["model"][base]) * 1e-4).astype(np.float32)
    return values


def write_released_checkpoint(dirpath, camera: str = "sony", seed: int = 0, scale: float = 1.0,
                              drop: tuple[str, ...] = (), state_path: str | None = None) -> str:
    """Write a checkpoint in the released SID layout to ``dirpath``; return its prefix ``<dirpath>/model.ckpt``.

    Holds every model tensor of the reference JSON with random values, the
    ``g_*/Adam`` and ``/Adam_1`` slots and ``beta1_power``/``beta2_power``, saved
    by a TF1 Saver (V2 format) with a ``checkpoint`` state file.
    ``drop``: tensor names to leave out (to make a broken checkpoint).
    ``state_path``: write this path into the state file instead of 'model.ckpt'
    (the released folders name a path of the authors' machine).
    """
    tf = _tf()
    dirpath = os.fspath(dirpath)
    os.makedirs(dirpath, exist_ok=True)
    values = {k: v for k, v in released_values(camera, seed, scale).items() if k not in drop}
    prefix = os.path.join(dirpath, "model.ckpt")
    with tf.Graph().as_default():
        var_list, feed = {}, {}
        for i, (name, value) in enumerate(sorted(values.items())):
            # values are fed at initialisation: embedding 30 MB of constants in the graph is slow
            init = tf.placeholder(tf.float32, value.shape, name=f"init{i}")
            var_list[name] = tf.Variable(init, name=f"t{i}")
            feed[init] = value
        saver = tf.train.Saver(var_list=var_list, save_relative_paths=True)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer(), feed)
            saver.save(sess, prefix, write_meta_graph=False)
    if state_path is not None:
        with open(os.path.join(dirpath, "checkpoint"), "w") as f:
            f.write(f'model_checkpoint_path: "{state_path}"\nall_model_checkpoint_paths: "{state_path}"\n')
    return prefix


def reference_forward(prefix: str, packed_input: np.ndarray) -> np.ndarray:
    """SID's forward pass written with plain tf.nn ops from the tensors stored under ``prefix``.

    packed_input (N, h, w, C) float32 -> (N, s*h, s*w, 3) float32; C and s
    (4/2 Sony, 9/3 Fuji) follow from the checkpoint's g_conv1_1 and g_conv10.
    """
    tf = _tf()
    reader = tf.train.load_checkpoint(prefix)

    feed = {}

    def w(name):  # checkpoint tensor, fed at run time (faster than embedding it as a constant)
        value = reader.get_tensor(name)
        ph = tf.placeholder(tf.float32, value.shape)
        feed[ph] = value
        return ph

    def conv(x, scope, act=True):
        y = tf.nn.conv2d(x, w(scope + "/weights"), strides=[1, 1, 1, 1], padding="SAME")
        y = tf.nn.bias_add(y, w(scope + "/biases"))
        return tf.maximum(0.2 * y, y) if act else y

    out_ch = reader.get_variable_to_shape_map()["g_conv10/weights"][3]
    block = int(round((out_ch / 3) ** 0.5))
    with tf.Graph().as_default():
        x = tf.constant(np.asarray(packed_input, np.float32))
        skips = []
        for level in range(1, 6):
            x = conv(conv(x, f"g_conv{level}_1"), f"g_conv{level}_2")
            if level < 5:
                skips.append(x)
                x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="SAME")
        for i, level in enumerate(range(6, 10)):
            skip = skips[3 - i]
            filt = w(_UP_FILTERS[i])
            up = tf.nn.conv2d_transpose(x, filt, output_shape=tf.shape(skip), strides=[1, 2, 2, 1],
                                        padding="SAME")
            x = tf.concat([up, skip], axis=3)
            x = conv(conv(x, f"g_conv{level}_1"), f"g_conv{level}_2")
        logits = conv(x, "g_conv10", act=False)
        out = tf.nn.depth_to_space(logits, block)
        with tf.Session() as sess:
            return sess.run(out, feed)
