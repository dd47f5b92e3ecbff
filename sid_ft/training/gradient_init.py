"""``--g-add-down-init gradient``: the rank-r ``down`` kernels start from the loss gradient's leading directions.

A gradient-based start, in the spirit of LoRA-GA (PEFT's ``loraga``): the kernel gradient of
each convolution, summed over a few training patches, is decomposed by SVD, and its r leading
left singular vectors become the addition's ``down`` kernel.  ``up`` stays zero, so the output still starts
as the base network's.
"""
from __future__ import annotations

import math

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import PatchSampler
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig, addition_rank
from sid_ft.nets.unet import conv_layers
from sid_ft.training.graph import TrainGraph, feed_for

__all__ = ["GRADIENT_INIT_PATCHES", "init_down_from_gradient"]

GRADIENT_INIT_PATCHES = 16
"""Training patches whose summed kernel gradients choose the ``down`` directions (``--g-add-down-init gradient``)."""


def _summed_kernel_gradients(sess, tg: TrainGraph, kernels: list, sampler: PatchSampler,
                             patches: int) -> list[np.ndarray]:
    """The loss gradient of each kernel, summed over ``patches`` patches (``sampler``'s batches), float64."""
    with tg.graph.as_default():
        grads = tf1().gradients(tg.loss, kernels)
    total = [np.zeros(k.shape.as_list(), np.float64) for k in kernels]
    for _ in range(max(1, patches // sampler.batch_size)):
        for acc, g in zip(total, sess.run(grads, feed_for(tg, sampler.sample()))):
            acc += g
    return total


def init_down_from_gradient(sess, tg: TrainGraph, camera: str, g_add: GAddConfig, sampler: PatchSampler,
                            patches: int = GRADIENT_INIT_PATCHES) -> int:
    """Set each rank-r ``down`` kernel to the r leading left singular vectors of the loss gradient of the
    conv's kernel, summed over ``patches`` training patches (their own draws: the training order is
    unchanged), scaled to the norm a Xavier initialisation has.  ``up`` stays zero, so the network's
    output is unchanged; the first updates of ``down . up`` then follow the steepest directions instead
    of random ones.  Returns the number of kernels set."""
    layers = [(scope, cout) for scope, _, _, cout in conv_layers(camera)
              if addition_rank(g_add, cout)]
    with tg.graph.as_default():
        variables = {v.op.name: v for v in tf1().global_variables()}
    kernels = [variables[f"{scope}/weights"] for scope, _ in layers]
    for (scope, cout), g in zip(layers, _summed_kernel_gradients(sess, tg, kernels, sampler, patches)):
        down = variables[f"{G_ADD_SCOPE}/{scope}/down/weights"]
        kh, kw, cin, r = down.shape.as_list()
        u, _, _ = np.linalg.svd(g.reshape(kh * kw * cin, cout), full_matrices=False)
        xavier_norm = math.sqrt(2.0 * cin * r / (cin + r))  # expected Frobenius norm of the Xavier kernel
        d = u[:, :r] * (xavier_norm / math.sqrt(r))
        down.load(d.reshape(kh, kw, cin, r).astype(np.float32), sess)
    return len(layers)
