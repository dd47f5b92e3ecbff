"""How a conv's rank-r addition is trained: which graph computes it (:func:`addition_form`).

Every form computes the same function with the same variables (``down/weights`` ``[k, k, C_in, r]``,
``up/weights`` ``[1, 1, r, C_out]``, ``up/biases`` ``[C_out]``) and folds to the same kernel
``W + down . up`` (:func:`sid_ft.nets.g_add.fold.fold_g_add`); only a training step's cost differs.
Per pixel, beyond what every form shares (the forward conv and its input gradient, ``k*k*C_in*C_out``
multiply-adds each):

* ``delta``: one conv with ``W + down . up``; ``down`` and ``up`` are reached through the full kernel
  gradient (``k*k*C_in*C_out``), as an all-layer step computes it.
* ``factored``: the same forward conv; the gradients of ``down`` and ``up`` are taken through the
  factors (:func:`factored_delta_conv`: ``down(x)``, ``dz . up^T`` and the two filter gradients,
  ``2 * r * (k*k*C_in + C_out)``).  The frozen kernel's gradient is only computed where asked for.
* ``branch``: ``conv(x, W) + up(down(x))``, a parallel low-rank branch (:func:`low_rank_branch`):
  forward, input and filter gradients of its two convs (``3 * r * (k*k*C_in + C_out)``).  It does
  the factored form's work plus the input gradient through the branch, so it is never the cheaper.

Imports without TensorFlow (it loads on the first graph built).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sid_ft._tf import tf1

__all__ = ["FORMS", "addition_form", "chosen_form", "factored_delta_conv", "forced_addition_form",
           "low_rank_branch", "low_rank_kernel"]

FORMS = ("delta", "factored", "branch")
"""The forms of a rank-r addition: kernel delta (full kernel gradient), kernel delta with gradients
through the factors, parallel low-rank branch."""

FACTORED_COST_LIMIT = 0.6
"""The factored form is chosen where its extra multiply-adds are at most this fraction of the kernel
gradient's (see :func:`addition_form`)."""

_STRIDES = [1, 1, 1, 1]
_forced: str | None = None  # set by forced_addition_form (benchmarks and tests)


def addition_form(cin: int, cout: int, rank: int, kernel: int = 3) -> str:
    """``'delta'`` or ``'factored'``: the cheaper form to train a rank-``rank`` addition of a
    ``kernel x kernel`` conv from ``cin`` to ``cout`` channels.

    The factored form replaces the kernel gradient (``k*k*cin*cout`` multiply-adds per pixel) by
    ``2 * r * (k*k*cin + cout)`` in convs to and from r channels, which run at a lower rate than the
    wide one; it is chosen where its count is at most :data:`FACTORED_COST_LIMIT` of the kernel
    gradient's.  At rank 32 that is the convs of levels 3 to 7 but ``g_conv3_1`` (64 -> 128): 128 to
    512 channels in and out (ratio 0.56 at 128, 0.28 at 256, 0.14 at 512; 1.11 at 64).  ``branch`` is
    never chosen (see the module docstring).

    Measured (``benchmarks/bench_train_step.py --layers --modes none --steps 5 --warmup 1``): one 3x3
    conv, C_in = C_out = width, rank 32, fp32, forward + backward with the gradients ``inside``
    computes (down, up, up/biases, the input), median ms, interleaved; 2-core AMD EPYC (AVX2, no
    AVX-512), TensorFlow 2.21, shared (load average 6-7)::

        patch  width  pixels   delta  factored  branch   factored/delta  branch/delta
          256     32   256^2   260.0     279.2   400.9             1.07          1.54
          256     64   128^2   112.6     128.1   152.9             1.14          1.36
          256    128    64^2    80.3      74.7    72.4             0.93          0.90
          256    256    32^2    56.0      41.3    48.2             0.74          0.86
          256    512    16^2    80.6      55.0    52.6             0.68          0.65
          512     32   512^2  1007.2    1211.2  1620.5             1.20          1.61
          512     64   256^2   571.4     601.8   692.9             1.05          1.21
          512    128   128^2   347.8     330.5   454.3             0.95          1.31
          512    256    64^2   218.3     155.6   207.0             0.71          0.95
          512    512    32^2   213.9     139.1   140.9             0.65          0.66

    The counts predict 1.04 (64), 0.85 (128), 0.76 (256), 0.71 (512) for factored/delta; the narrow
    convs fall short of it, hence the margin.  The choice is the same at both patch sizes.
    """
    if rank <= 0:
        return "delta"
    factored = 2 * rank * (kernel * kernel * cin + cout)
    kernel_gradient = kernel * kernel * cin * cout
    return "factored" if factored <= FACTORED_COST_LIMIT * kernel_gradient else "delta"


def chosen_form(cin: int, cout: int, rank: int, kernel: int = 3) -> str:
    """The form the graph builds: the one :func:`forced_addition_form` set, else :func:`addition_form`'s."""
    return _forced or addition_form(cin, cout, rank, kernel)


@contextmanager
def forced_addition_form(form: str | None) -> Iterator[None]:
    """Build every rank-r addition in ``form`` (one of :data:`FORMS`; None: the rule) while inside, e.g.
    to time one form against another.  Graphs built inside keep their form afterwards."""
    global _forced
    if form is not None and form not in FORMS:
        raise ValueError(f"unknown addition form {form!r}; expected one of {FORMS}")
    before, _forced = _forced, form
    try:
        yield
    finally:
        _forced = before


def low_rank_kernel(down, up):
    """``down . up`` ``[k, k, C_in, C_out]``: down ``[k, k, C_in, r]``, up ``[1, 1, r, C_out]``."""
    return tf1().tensordot(down, up[0, 0], axes=[[3], [0]])


def low_rank_branch(x, down, up):
    """``up(down(x))`` (N, h, w, C_out): a ``k x k`` SAME conv to r channels, then a 1x1 conv.
    ``conv(x, W) + up(down(x)) == conv(x, W + down . up)`` (SAME zero padding is linear)."""
    tf = tf1()
    hidden = tf.nn.conv2d(x, down, strides=_STRIDES, padding="SAME")
    return tf.nn.conv2d(hidden, up, strides=_STRIDES, padding="VALID")


def factored_delta_conv(x, weights, down, up):
    """``conv2d(x, W + down . up)`` (SAME), the delta form's forward to the bit, whose gradient reaches
    ``down`` and ``up`` through the factors instead of the full kernel gradient.

    With ``dz`` the output's gradient (N, h, w, C_out), ``h = down(x)`` (N, h, w, r) and ``g = dz . up^T``
    (N, h, w, r): ``d down = filter gradient of (x, g)`` and ``d up = filter gradient of (h, dz)`` (1x1),
    the kernel gradient times ``up^T`` and ``down^T``, never formed.  The input's and ``W``'s gradients
    are the plain conv's; each runs only where something asks for it (``W``'s: gradient init, ``full``).
    """
    tf = tf1()

    @tf.custom_gradient
    def conv(x, weights, down, up):
        kernel = weights + low_rank_kernel(down, up)

        def grad(dz):
            dx = tf.nn.conv2d_backprop_input(tf.shape(x), kernel, dz, _STRIDES, "SAME")
            dw = tf.nn.conv2d_backprop_filter(x, tf.shape(weights), dz, _STRIDES, "SAME")
            hidden = tf.nn.conv2d(x, down, strides=_STRIDES, padding="SAME")
            g = tf.nn.conv2d(dz, tf.transpose(up, [0, 1, 3, 2]), strides=_STRIDES, padding="VALID")
            d_down = tf.nn.conv2d_backprop_filter(x, tf.shape(down), g, _STRIDES, "SAME")
            d_up = tf.nn.conv2d_backprop_filter(hidden, tf.shape(up), dz, _STRIDES, "VALID")
            return dx, dw, d_down, d_up

        return tf.nn.conv2d(x, kernel, strides=_STRIDES, padding="SAME"), grad

    return conv(x, weights, down, up)
