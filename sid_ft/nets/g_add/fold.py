"""Folding the g_add additions into the convolutions they sit beside (as PEFT's ``merge_and_unload``).

The additions inside the network change each conv's kernel linearly (see
:func:`sid_ft.nets.g_add.layers.g_add_conv_additions`), so inference can run plain SID
convolutions with the effective weights: :func:`fold_g_add` computes them once, with NumPy,
from the checkpoint's tensors.  No TensorFlow here.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig, addition_rank
from sid_ft.nets.unet import conv_layers

__all__ = ["fold_g_add"]


def _fold_conv(w: np.ndarray, b: np.ndarray, values: Mapping[str, Any], add: str, rank: int,
               affine: bool) -> tuple[np.ndarray, np.ndarray]:
    """One conv's effective ``(W, b)``: for the kernel-delta form the same float32 arithmetic, in the same
    order, as the graph; for the factored and branch forms (:mod:`sid_ft.nets.g_add.forms`) the same
    function up to float32 rounding.

    w ``[k, k, C_in, C_out]``, b ``[C_out]`` float32; ``add``: the additions' name prefix
    ``g_add/<scope>/``.
    """
    if rank:
        down = np.asarray(values[add + "down/weights"], np.float32)  # (k, k, C_in, r)
        up = np.asarray(values[add + "up/weights"], np.float32)[0, 0]  # (r, C_out)
        w = w + np.tensordot(down, up, axes=([3], [0]))
        b = b + np.asarray(values[add + "up/biases"], np.float32)
    if affine:
        gain = np.float32(1.0) + np.asarray(values[add + "scale"], np.float32)
        w = w * gain
        b = b * gain + np.asarray(values[add + "shift"], np.float32)
    return w.astype(np.float32), b.astype(np.float32)


def fold_g_add(values: Mapping[str, Any], camera: str, config: GAddConfig | None):
    """Fold the additions inside the network into the convolutions they sit beside (for inference).

    values: ``{tensor name: array}`` of every model variable of
    ``sid_ft.nets.network.sid_network(camera, config)`` (e.g. read from a checkpoint).
    Returns ``(folded values, folded config)``: the base convolutions' ``weights``/``biases``
    with the additions folded in (float32, the same arithmetic as
    :func:`sid_ft.nets.g_add.layers.g_add_conv_additions` does in the graph), the head's
    tensors unchanged, no ``g_add/...`` tensors; the config is ``config.folded()`` (None:
    plain SID).  The folded network computes the same function as the unfolded one up to
    float32 rounding.  Without additions inside, values pass through.
    """
    if config is None or not config.inside:
        return dict(values), config
    prefix = G_ADD_SCOPE + "/"
    out = {name: value for name, value in values.items() if not name.startswith(prefix)}
    for scope, _, _, cout in conv_layers(camera):
        w, b = _fold_conv(np.asarray(values[f"{scope}/weights"], np.float32),
                          np.asarray(values[f"{scope}/biases"], np.float32),
                          values, f"{prefix}{scope}/", addition_rank(config, cout), config.affine)
        out[f"{scope}/weights"] = w
        out[f"{scope}/biases"] = b
    return out, config.folded()
