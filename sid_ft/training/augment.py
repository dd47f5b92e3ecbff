"""SID's augmentation in the graph: random vertical and horizontal flips and a transpose, per patch.

:func:`augment` flips a batch of square patches, as SID's training script does to the packed
input and the ground truth.  :func:`augment_blocks` flips a full-resolution image in the
packed domain: its ``scale x scale`` blocks move whole, so each output block stays with the
packed pixel (and the frozen network's features) that predict it.
"""
from __future__ import annotations

from sid_ft._tf import tf1

__all__ = ["augment", "augment_blocks"]


def augment(x, flags):
    """SID's augmentation of a ``(N, h, w, c)`` batch of square patches, each its own way.

    ``flags`` (N, 3) bool: flip rows, flip columns, transpose, per patch (``tf.compat.v1.where``
    with a vector condition picks whole patches).
    """
    tf = tf1()
    x = tf.where(flags[:, 0], tf.reverse(x, [1]), x)
    x = tf.where(flags[:, 1], tf.reverse(x, [2]), x)
    return tf.where(flags[:, 2], tf.transpose(x, [0, 2, 1, 3]), x)


def augment_blocks(image, flags, scale: int):
    """The packed-domain version of :func:`augment` for a full-resolution image: ``scale x scale`` blocks move whole."""
    tf = tf1()
    return tf.nn.depth_to_space(augment(tf.nn.space_to_depth(image, scale), flags), scale)
