"""The g_add additions beside every convolution of the SID network (``affine``, ``rank``).

Each SID convolution keeps its own frozen ``<scope>/weights`` and ``<scope>/biases``; its
additions live in ``g_add/<scope>/`` (:func:`g_add_conv_additions`).  Being linear in the conv's
weights, they fold into plain conv weights for inference (:func:`sid_ft.nets.g_add.fold.fold_g_add`).
They reach the encoder, so they can adapt the network to a new sensor's noise.

A rank-r addition is built in one of the forms of :mod:`sid_ft.nets.g_add.forms`, which compute the
same function with the same variables: a delta of the kernel the conv runs with (its gradient taken
through the whole kernel or through the factors), or a parallel low-rank branch beside the conv;
:func:`sid_ft.nets.g_add.forms.addition_form` picks the one that trains faster at the conv's width.

:func:`conv_with_additions` is the ``conv`` hook :func:`sid_ft.nets.unet.sid_unet` takes.
"""
from __future__ import annotations

from types import ModuleType

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig, addition_rank
from sid_ft.nets.g_add.forms import chosen_form, factored_delta_conv, low_rank_branch, low_rank_kernel
from sid_ft.nets.unet import ConvBuilder, lrelu, sid_conv

__all__ = ["conv_with_additions", "g_add_conv_additions"]


def _tf() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow.compat.v1, tf_slim)``, imported on first use."""
    return tf1(), _slim_module()


def _low_rank_variables(kh: int, kw: int, cin: int, cout: int, rank: int) -> tuple:
    """``(down, up, up_b)`` at the current scope: ``down/weights`` ``[kh, kw, C_in, r]`` (Xavier initialised;
    training may start it from the loss gradient), ``up/weights`` ``[1, 1, r, C_out]`` and ``up/biases``
    ``[C_out]`` (zero)."""
    tf, slim = _tf()
    zero = tf.zeros_initializer()
    with tf.variable_scope("down"):
        down = slim.model_variable("weights", shape=[kh, kw, cin, rank],
                                   initializer=tf.glorot_uniform_initializer())
    with tf.variable_scope("up"):
        up = slim.model_variable("weights", shape=[1, 1, rank, cout], initializer=zero)
        up_b = slim.model_variable("biases", shape=[cout], initializer=zero)
    return down, up, up_b


def _affine_variables(cout: int) -> tuple:
    """``(scale, shift)`` ``[C_out]`` (zero) at the current scope."""
    tf, slim = _tf()
    zero = tf.zeros_initializer()
    return (slim.model_variable("scale", shape=[cout], initializer=zero),
            slim.model_variable("shift", shape=[cout], initializer=zero))


def g_add_conv_additions(x, weights, biases, base_scope: str, config: GAddConfig):
    """One SID convolution with the g_add additions beside it, before its activation.

    x: the conv's input (N, h, w, C_in); weights ``[k, k, C_in, C_out]`` and biases ``[C_out]``:
    the conv's own (frozen) variables.  The additions' variables live in ``g_add/<base_scope>/``:

    * rank r > 0 (``config.rank``, at most C_out): ``down/weights`` ``[k, k, C_in, r]`` (Xavier
      initialised) and ``up/weights`` ``[1, 1, r, C_out]`` + ``up/biases`` ``[C_out]`` (zero):
      ``W += down . up`` (a rank-r change of the kernel), ``b += up/biases``;
    * affine: ``scale`` and ``shift`` ``[C_out]`` (zero): ``W *= 1 + scale``,
      ``b = b * (1 + scale) + shift`` (a per-channel scale and shift of the conv's output).

    The form (:func:`sid_ft.nets.g_add.forms.addition_form`, per conv):

    * ``delta``: one convolution with the effective ``W``/``b`` (what
      :func:`sid_ft.nets.g_add.fold.fold_g_add` computes once for inference);
    * ``factored``: ``conv(x, W + down . up) + b + up/biases``, the same forward, with the
      gradients of ``down`` and ``up`` taken through the factors; then the affine on the output;
    * ``branch``: ``conv(x, W) + b + up/biases + up(down(x))``, then the affine on the output.

    In the last two the affine acts on the output (``z * (1 + scale) + shift``, the same function up
    to float rounding), so that no form needs the full kernel gradient.  Zero-initialised, every form
    returns the base conv's output bit for bit.  Returns (N, h, w, C_out).
    """
    tf, _ = _tf()
    kh, kw, cin, cout = weights.shape.as_list()
    with tf.variable_scope(f"{G_ADD_SCOPE}/{base_scope}"):
        rank = addition_rank(config, cout)
        low_rank = _low_rank_variables(kh, kw, cin, cout, rank) if rank else None
        affine = _affine_variables(cout) if config.affine else None
    form = chosen_form(cin, cout, rank, kh) if rank else "delta"
    if form != "delta":
        return _output_form(x, weights, biases, low_rank, affine, form)
    if low_rank is not None:
        weights, biases = weights + low_rank_kernel(*low_rank[:2]), biases + low_rank[2]
    if affine is not None:
        gain = 1.0 + affine[0]
        weights, biases = weights * gain, biases * gain + affine[1]
    return _conv(x, weights, biases)


def _conv(x, weights, biases):
    """``conv2d(x, W) + b`` (SAME), as the plain SID conv (slim.conv2d) runs it."""
    tf, _ = _tf()
    return tf.nn.bias_add(tf.nn.conv2d(x, weights, strides=[1, 1, 1, 1], padding="SAME"), biases)


def _output_form(x, weights, biases, low_rank: tuple, affine: tuple | None, form: str):
    """The ``factored`` and ``branch`` forms of :func:`g_add_conv_additions`: the conv and its bias with
    the same ops as the plain SID conv (so zero-initialised additions leave it bit for bit), the
    branch's ``up(down(x))`` added after it, then the affine on the output."""
    tf, _ = _tf()
    down, up, up_b = low_rank
    if form == "factored":
        z = tf.nn.bias_add(factored_delta_conv(x, weights, down, up), biases + up_b)
    else:
        z = _conv(x, weights, biases + up_b) + low_rank_branch(x, down, up)
    if affine is not None:
        z = z * (1.0 + affine[0]) + affine[1]
    return z


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
