"""The whole network a checkpoint holds: SID's U-Net plus the g_add layers of a design.

Usage::

    from sid_ft._tf import tf1
    tf = tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        out, end_points = sid_network(x, camera='sony', g_add=GAddConfig(depth=2, width=16))
"""
from __future__ import annotations

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.g_add.head import g_add_head
from sid_ft.nets.g_add.layers import conv_with_additions
from sid_ft.nets.unet import camera_spec, sid_unet

__all__ = ["expected_variables", "sid_network"]


def sid_network(inputs, camera: str = "sony", g_add: GAddConfig | None = None,
                reuse=None) -> tuple:
    """SID's U-Net, plus the g_add layers when ``g_add`` is given.

    Args:
      inputs: (N, h, w, C) float32 packed RAW.
      camera: 'sony' or 'fuji'.
      g_add: the g_add design (additions beside every conv and/or the head), or None for plain SID.
      reuse: variable reuse for all variables.

    Returns:
      output: (N, scale*h, scale*w, 3) float32 (the head's output when the design has one).
      end_points: everything :func:`sid_ft.nets.unet.sid_unet` returns, 'base_output' (the
        U-Net's output, with the additions inside it when the design has them), and with a
        head the head's end points; 'output' is the final output.
    """
    base_output, end_points = sid_unet(inputs, camera=camera, reuse=reuse, conv=conv_with_additions(g_add))
    end_points = dict(end_points)
    end_points["base_output"] = base_output
    if g_add is None or not g_add.head:
        return base_output, end_points
    output, head_points = g_add_head(end_points["g_conv9_2"], end_points["g_conv10"], g_add,
                                     camera=camera, reuse=reuse, packed=inputs)
    end_points.update(head_points)
    return output, end_points


def expected_variables(camera: str = "sony", g_add: GAddConfig | None = None) -> dict[str, list[int]]:
    """Names and shapes of the model variables :func:`sid_network` creates, ``{name: shape}``.

    ``g_add=None`` gives plain SID's 42 (the released checkpoints' tensors).  Builds the
    network in a throwaway graph (no session, no weights).
    """
    tf, slim = tf1(), _slim_module()
    spec = camera_spec(camera)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, spec.in_channels])
        sid_network(x, camera=camera, g_add=g_add)
        return {v.op.name: v.shape.as_list() for v in slim.get_model_variables()}
