"""The g_add additions beside every convolution of the SID network (``affine``, ``rank``).

Each SID convolution keeps its own frozen ``<scope>/weights`` and ``<scope>/biases``; its
additions live in ``g_add/<scope>/`` and change the kernel it runs with
(:func:`g_add_conv_additions`).  Being linear in the conv's weights, they fold into plain
conv weights for inference (:func:`sid_ft.nets.g_add.fold.fold_g_add`).  They reach the
encoder, so they can adapt the network to a new sensor's noise.

:func:`conv_with_additions` is the ``conv`` hook :func:`sid_ft.nets.unet.sid_unet` takes.
"""
from __future__ import annotations

from types import ModuleType

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig, addition_rank
from sid_ft.nets.unet import ConvBuilder, lrelu, sid_conv

__all__ = ["conv_with_additions", "g_add_conv_additions"]


def _tf() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow.compat.v1, tf_slim)``, imported on first use."""
    return tf1(), _slim_module()


def _low_rank_delta(weights, biases, rank: int):
    """``W + down . up`` and ``b + up/biases`` with the rank-r variables at the current scope.

    ``down/weights`` ``[k, k, C_in, r]`` (Xavier initialised; training may start it from the
    loss gradient), ``up/weights`` ``[1, 1, r, C_out]`` and ``up/biases`` ``[C_out]`` (zero).
    """
    tf, slim = _tf()
    zero = tf.zeros_initializer()
    kh, kw, cin, cout = weights.shape.as_list()
    with tf.variable_scope("down"):
        down = slim.model_variable("weights", shape=[kh, kw, cin, rank],
                                   initializer=tf.glorot_uniform_initializer())
    with tf.variable_scope("up"):
        up = slim.model_variable("weights", shape=[1, 1, rank, cout], initializer=zero)
        up_b = slim.model_variable("biases", shape=[cout], initializer=zero)
    return weights + tf.tensordot(down, up[0, 0], axes=[[3], [0]]), biases + up_b


def _affine(weights, biases):
    """``W * (1 + scale)`` and ``b * (1 + scale) + shift`` with ``scale``, ``shift`` ``[C_out]`` (zero)."""
    tf, slim = _tf()
    zero = tf.zeros_initializer()
    cout = weights.shape.as_list()[-1]
    scale = slim.model_variable("scale", shape=[cout], initializer=zero)
    shift = slim.model_variable("shift", shape=[cout], initializer=zero)
    return weights * (1.0 + scale), biases * (1.0 + scale) + shift


def g_add_conv_additions(x, weights, biases, base_scope: str, config: GAddConfig):
    """One SID convolution with the g_add additions beside it, before its activation.

    x: the conv's input (N, h, w, C_in); weights ``[k, k, C_in, C_out]`` and biases ``[C_out]``:
    the conv's own (frozen) variables.  The additions' variables live in ``g_add/<base_scope>/``:

    * rank r > 0 (``config.rank``, at most C_out): ``down/weights`` ``[k, k, C_in, r]`` (Xavier
      initialised) and ``up/weights`` ``[1, 1, r, C_out]`` + ``up/biases`` ``[C_out]`` (zero):
      ``W += down . up`` (a rank-r change of the kernel), ``b += up/biases``;
    * affine: ``scale`` and ``shift`` ``[C_out]`` (zero): ``W *= 1 + scale``,
      ``b = b * (1 + scale) + shift`` (a per-channel scale and shift of the conv's output).

    They act on the kernel, not on the activations: the graph runs one convolution per layer
    with the effective ``W``/``b`` (the same function as a separate branch beside the conv,
    at the cost of the plain conv), and :func:`sid_ft.nets.g_add.fold.fold_g_add` computes
    exactly those effective kernels once for inference.  Zero-initialised, ``W`` and ``b``
    pass unchanged bit for bit.  Returns ``conv2d(x, W) + b`` (N, h, w, C_out).
    """
    tf, _ = _tf()
    cout = weights.shape.as_list()[-1]
    with tf.variable_scope(f"{G_ADD_SCOPE}/{base_scope}"):
        rank = addition_rank(config, cout)
        if rank:
            weights, biases = _low_rank_delta(weights, biases, rank)
        if config.affine:
            weights, biases = _affine(weights, biases)
    z = tf.nn.conv2d(x, weights, strides=[1, 1, 1, 1], padding="SAME")
    return tf.nn.bias_add(z, biases)


def conv_with_additions(config: GAddConfig | None) -> ConvBuilder:
    """The ``conv`` builder for :func:`sid_ft.nets.unet.sid_unet` that puts ``config``'s additions
    beside every convolution; plain :func:`sid_ft.nets.unet.sid_conv` when the design has none inside.
    """
    if config is None or not config.inside:
        return sid_conv

    def conv(net, width: int, kernel: int, scope: str, activation: bool = True):
        tf, slim = _tf()
        with tf.variable_scope(scope):  # the same variables slim.conv2d makes: <scope>/weights, <scope>/biases
            weights = slim.model_variable("weights", shape=[kernel, kernel, int(net.shape[-1]), width],
                                          initializer=tf.glorot_uniform_initializer())
            biases = slim.model_variable("biases", shape=[width], initializer=tf.zeros_initializer())
        z = g_add_conv_additions(net, weights, biases, scope, config)
        return lrelu(z) if activation else z

    return conv
