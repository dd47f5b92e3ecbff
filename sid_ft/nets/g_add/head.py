"""The g_add refinement head: a small residual network after SID, at packed resolution.

It sees the last decoder features (``g_conv9_2``), the base logits (``g_conv10``) and, when
the design says so, the packed input, and adds a zero-initialised correction to the logits
(colour, levels, tone).  It takes plain tensors, so a trainer can run the frozen base once,
cache ``g_conv9_2`` and ``g_conv10`` and feed them to :func:`g_add_head` through placeholders.
"""
from __future__ import annotations

from types import ModuleType

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig
from sid_ft.nets.unet import FEATURE_CHANNELS, camera_spec, require_root_scope, sid_arg_scope

__all__ = ["g_add_head"]


def _tf() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow.compat.v1, tf_slim)``, imported on first use."""
    return tf1(), _slim_module()


def _head_inputs(features, base_logits, config: GAddConfig, camera: str, packed) -> list:
    """The tensors the head concatenates, ``[features, base_logits(, packed)]``, their channels checked.

    ValueError when a channel count is unknown or wrong, or ``packed`` is missing for a
    design that sees the packed input.
    """
    spec = camera_spec(camera)
    checks = [(features, FEATURE_CHANNELS, "features (g_conv9_2)"),
              (base_logits, spec.out_channels, "base_logits (g_conv10)")]
    if config.packed_input:
        if packed is None:
            raise ValueError("this g_add head sees the packed input (packed_input=True): pass packed=")
        checks.append((packed, spec.in_channels, "packed input"))
    for tensor, channels, what in checks:
        if tensor.shape.rank is None or tensor.shape[-1] is None:
            raise ValueError(f"g_add_head needs the channel count of {what} known statically")
        if int(tensor.shape[-1]) != channels:
            raise ValueError(f"{what} for {camera} must have {channels} channels, got shape {tensor.shape}")
    return [tensor for tensor, _, _ in checks]


def _head_delta(head_in, config: GAddConfig, out_channels: int, end_points: dict):
    """The correction to the logits: the conv path (``g_add_conv*`` -> ``g_add_out``) plus,
    with ``config.linear``, the 1x1 ``g_add_linear`` from the head's input.  (N, h, w, out_channels)."""
    tf, slim = _tf()
    zero = tf.zeros_initializer()
    net = head_in
    for i in range(1, config.depth + 1):
        name = f"{G_ADD_SCOPE}_conv{i}"
        net = slim.conv2d(net, config.width, [3, 3], scope=name)
        end_points[name] = net
    delta = slim.conv2d(net, out_channels, [1, 1], activation_fn=None, weights_initializer=zero,
                        biases_initializer=zero, scope=f"{G_ADD_SCOPE}_out")
    if config.linear:
        linear = slim.conv2d(head_in, out_channels, [1, 1], activation_fn=None, weights_initializer=zero,
                             biases_initializer=None, scope=f"{G_ADD_SCOPE}_linear")
        end_points["g_add_linear"] = linear
        delta = tf.add(delta, linear, name=f"{G_ADD_SCOPE}_delta")
    return delta


def g_add_head(features, base_logits, config: GAddConfig | None = None,
               camera: str = "sony", reuse=None, packed=None) -> tuple:
    """The g_add refinement head: a residual on the base logits at packed resolution.

    Args:
      features: (N, h, w, 32) float32, the base network's ``end_points['g_conv9_2']``
        (or a placeholder fed with cached values).
      base_logits: (N, h, w, out_channels) float32, ``end_points['g_conv10']``.
      config: the head's design (default ``GAddConfig()``).
      camera: 'sony' or 'fuji'; sets channel counts and the depth_to_space scale.
      reuse: variable reuse for the head's variables.
      packed: (N, h, w, in_channels) float32, the packed amplified input the base network
        saw; required when ``config.packed_input``, ignored otherwise.

    Layers: x = concat([features, base_logits(, packed)]) -> ``g_add_conv1`` ..
    ``g_add_conv{depth}`` (3x3, ``width`` channels, leaky ReLU 0.2) -> ``g_add_out``
    (1x1 to out_channels, zero-initialised, no activation); with ``config.linear`` plus
    ``g_add_linear`` (1x1 from x to out_channels, zero-initialised, no activation).
    delta = the sum; logits = base_logits + delta; output = depth_to_space(logits, scale).
    Untrained, delta is exactly 0 and the output equals the base output bit for bit.

    Returns:
      output: (N, scale*h, scale*w, 3) float32.
      end_points: 'g_add_conv1' .., 'g_add_delta', 'g_add_logits', 'output'.
    """
    tf, slim = _tf()
    config = GAddConfig() if config is None else config
    spec = camera_spec(camera)
    require_root_scope("g_add_head")
    inputs = _head_inputs(features, base_logits, config, camera, packed)
    end_points: dict = {}
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse, auxiliary_name_scope=False):
        with slim.arg_scope(sid_arg_scope()):
            head_in = tf.concat(inputs, axis=3, name=G_ADD_SCOPE + "_input")
            delta = _head_delta(head_in, config, spec.out_channels, end_points)
            end_points["g_add_delta"] = delta
            logits = tf.add(base_logits, delta, name=f"{G_ADD_SCOPE}_logits")
            end_points["g_add_logits"] = logits
            output = tf.nn.depth_to_space(logits, spec.scale, name=f"{G_ADD_SCOPE}_depth_to_space")
            end_points["output"] = output
    return output, end_points
