"""The Learning-to-See-in-the-Dark U-Net, slim style, with the released checkpoints' names.

The network is SID's (Chen et al., CVPR 2018) as published: a U-Net on packed RAW
at half (Sony, Bayer) or one third (Fuji, X-Trans) resolution, ending in
``depth_to_space`` to full-resolution sRGB::

    level 1..4   g_convL_1, g_convL_2   3x3 SAME conv + bias, leaky ReLU 0.2   32, 64, 128, 256 channels
                 max pool 2x2 stride 2 SAME
    level 5      g_conv5_1, g_conv5_2   512 channels
    up 6..9      Variable, Variable_1, Variable_2, Variable_3: conv2d_transpose 2x2 stride 2, no bias,
                 output shape taken from the skip tensor, concat([upsampled, skip])
                 g_convL_1, g_convL_2   256, 128, 64, 32 channels
    g_conv10     1x1 conv to 12 (Sony) / 27 (Fuji) channels, no activation
    output       depth_to_space(2) (Sony) / depth_to_space(3) (Fuji)  ->  3 channels

Variables carry exactly the names of the released checkpoints
(``g_conv1_1/weights`` ... and the four unscoped transposed-convolution
filters ``Variable`` .. ``Variable_3``), so the network must be built at the
root variable scope.  All variables are TF-Slim MODEL_VARIABLES.

Like TF-Slim's ``nets/vgg.py``, :func:`sid_unet` returns ``(output, end_points)``
and keeps its layer defaults in one :func:`sid_arg_scope`.  Each convolution is
built by a ``conv`` callable (default :func:`sid_conv`), the hook through which
:mod:`sid_ft.nets.g_add.layers` puts its additions beside every convolution.

This module imports without TensorFlow (TF loads on the first graph built), so
:data:`CAMERAS` and the layer list are usable from option parsing.

Usage::

    from sid_ft._tf import tf1
    tf = tf1()
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        out, end_points = sid_unet(x, camera='sony')
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Callable

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1

__all__ = [
    "CameraSpec",
    "CAMERAS",
    "ConvBuilder",
    "FEATURE_CHANNELS",
    "LEAKY_SLOPE",
    "UPSAMPLE_FILTER_NAMES",
    "camera_spec",
    "conv_layers",
    "lrelu",
    "require_root_scope",
    "sid_arg_scope",
    "sid_conv",
    "sid_unet",
]

LEAKY_SLOPE = 0.2
"""Slope of SID's leaky ReLU: ``max(0.2 x, x)``."""

UPSAMPLE_FILTER_NAMES = ("Variable", "Variable_1", "Variable_2", "Variable_3")
"""Checkpoint names of the transposed-convolution filters of up6, up7, up8, up9."""

_DOWN_WIDTHS = (32, 64, 128, 256, 512)  # levels 1..5
_UP_WIDTHS = (256, 128, 64, 32)  # levels 6..9

FEATURE_CHANNELS = _UP_WIDTHS[-1]
"""Channels of ``g_conv9_2``, the last decoder features (what the head and the feature cache see)."""


def _tf() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow.compat.v1, tf_slim)``, imported on first use."""
    return tf1(), _slim_module()


@dataclass(frozen=True)
class CameraSpec:
    """How one SID model packs its RAW input and unpacks its output.

    in_channels: channels of the packed input (4 for 2x2 Bayer, 9 for 6x6 X-Trans).
    out_channels: channels of ``g_conv10`` (3 * scale**2).
    scale: ``depth_to_space`` block size; output is ``scale`` times the packed size.
    packing: name of the packing that produces the input.
    """

    in_channels: int
    out_channels: int
    scale: int
    packing: str = ""

    def to_dict(self) -> dict:
        """JSON-ready dict of the fields."""
        return asdict(self)


CAMERAS: dict[str, CameraSpec] = {
    "sony": CameraSpec(4, 12, 2, "bayer_2x2"),
    "fuji": CameraSpec(9, 27, 3, "xtrans_6x6"),
}
"""The two released SID models, by lowercase camera name."""


def camera_spec(camera: str) -> CameraSpec:
    """The :class:`CameraSpec` for ``camera`` ('sony' or 'fuji', any case); ValueError otherwise."""
    try:
        return CAMERAS[str(camera).lower()]
    except KeyError:
        raise ValueError(f"unknown camera {camera!r}; expected one of {sorted(CAMERAS)}") from None


def conv_layers(camera: str = "sony") -> list[tuple[str, int, int, int]]:
    """SID's convolutions in order, ``[(scope, kernel, in_channels, out_channels), ...]``.

    ``g_conv1_1`` .. ``g_conv9_2`` (3x3) and ``g_conv10`` (1x1); the transposed
    upsampling filters are not listed (they carry no additions).
    """
    spec = camera_spec(camera)
    layers = []
    cin = spec.in_channels
    for level, width in enumerate(_DOWN_WIDTHS, start=1):
        for k in (1, 2):
            layers.append((f"g_conv{level}_{k}", 3, cin, width))
            cin = width
    for level, width in zip(range(6, 10), _UP_WIDTHS):
        cin = 2 * width  # upsampled + skip
        for k in (1, 2):
            layers.append((f"g_conv{level}_{k}", 3, cin, width))
            cin = width
    layers.append(("g_conv10", 1, cin, spec.out_channels))
    return layers


def lrelu(x: "tf.Tensor") -> "tf.Tensor":
    """SID's leaky ReLU, ``max(0.2 x, x)``."""
    tf, _ = _tf()
    return tf.maximum(x * LEAKY_SLOPE, x)


def sid_arg_scope(weights_initializer=None):
    """The arg_scope holding SID's layer defaults.

    conv2d: SAME padding, bias, leaky ReLU 0.2; max_pool2d: 2x2, stride 2, SAME.
    ``weights_initializer`` defaults to tf-slim's (Xavier); the released weights
    replace it anyway when a checkpoint is restored.
    """
    tf, slim = _tf()
    kwargs = {}
    if weights_initializer is not None:
        kwargs["weights_initializer"] = weights_initializer
    with slim.arg_scope(
        [slim.conv2d],
        padding="SAME",
        activation_fn=lrelu,
        biases_initializer=tf.zeros_initializer(),
        **kwargs,
    ):
        with slim.arg_scope([slim.max_pool2d], kernel_size=[2, 2], stride=2, padding="SAME") as sc:
            return sc


def require_root_scope(what: str) -> None:
    """The checkpoint names are root-level: refuse to build inside a variable scope (name scopes are fine)."""
    tf, _ = _tf()
    scope = tf.get_variable_scope().name
    if scope:
        raise ValueError(f"{what} must be built at the root variable scope so its variables keep the "
                         f"released checkpoint names; it was called inside variable scope {scope!r}")


ConvBuilder = Callable[..., "tf.Tensor"]
"""``conv(net, width, kernel, scope, activation=True) -> tensor``: builds one SID convolution
(variables ``<scope>/weights`` ``[kernel, kernel, C_in, width]`` and ``<scope>/biases`` ``[width]``),
followed by the leaky ReLU when ``activation``."""


def sid_conv(net: "tf.Tensor", width: int, kernel: int, scope: str, activation: bool = True) -> "tf.Tensor":
    """One plain SID convolution under the released names (slim.conv2d in :func:`sid_arg_scope`)."""
    _, slim = _tf()
    return slim.conv2d(net, width, [kernel, kernel], scope=scope, **({} if activation else {"activation_fn": None}))


def _upsample_concat(net: "tf.Tensor", skip: "tf.Tensor", filter_name: str, end_points: dict,
                     key: str) -> "tf.Tensor":
    """SID's upsampling: 2x2 stride-2 transposed conv (no bias) to the skip's shape, then concat.

    net (N, h, w, C_in); skip (N, H, W, C_out) with h == ceil(H / 2).
    The filter, shape [2, 2, C_out, C_in], is the model variable ``filter_name``
    created at the current variable scope (root: the released names).
    Returns (N, H, W, 2 * C_out): ``concat([upsampled, skip], axis=3)``.
    """
    tf, slim = _tf()
    in_ch = int(net.shape[-1])
    out_ch = int(skip.shape[-1])
    filt = slim.model_variable(
        filter_name,
        shape=[2, 2, out_ch, in_ch],
        initializer=tf.truncated_normal_initializer(stddev=0.02),
    )
    skip_shape = tf.shape(skip)
    output_shape = tf.stack([skip_shape[0], skip_shape[1], skip_shape[2], out_ch])
    up = tf.nn.conv2d_transpose(net, filt, output_shape, strides=[1, 2, 2, 1], padding="SAME",
                                name=key)
    up.set_shape(skip.shape)
    end_points[key] = up
    return tf.concat([up, skip], axis=3, name=key + "_concat")


def _check_input(inputs: "tf.Tensor", camera: str) -> None:
    """ValueError when ``inputs`` has a known channel count other than the camera's packing gives."""
    spec = camera_spec(camera)
    if inputs.shape.rank is not None and inputs.shape[-1] is not None \
            and int(inputs.shape[-1]) != spec.in_channels:
        raise ValueError(f"{camera} SID expects {spec.in_channels} input channels, "
                         f"got input shape {inputs.shape}")


def _encoder(net: "tf.Tensor", conv: ConvBuilder, end_points: dict) -> tuple["tf.Tensor", list]:
    """Levels 1..5: two convs each, a 2x2 max pool after levels 1..4.  Returns (g_conv5_2, skips)."""
    _, slim = _tf()
    skips = []
    for level, width in enumerate(_DOWN_WIDTHS, start=1):
        for k in (1, 2):
            name = f"g_conv{level}_{k}"
            net = conv(net, width, 3, name)
            end_points[name] = net
        if level < 5:
            skips.append(net)
            net = slim.max_pool2d(net, scope=f"pool{level}")
            end_points[f"pool{level}"] = net
    return net, skips


def _decoder(net: "tf.Tensor", skips: list, conv: ConvBuilder, end_points: dict) -> "tf.Tensor":
    """Levels 6..9: upsample + concat with the skip of the same size, two convs.  Returns g_conv9_2."""
    for i, (level, width) in enumerate(zip(range(6, 10), _UP_WIDTHS)):
        net = _upsample_concat(net, skips[-1 - i], UPSAMPLE_FILTER_NAMES[i], end_points, f"up{level}")
        for k in (1, 2):
            name = f"g_conv{level}_{k}"
            net = conv(net, width, 3, name)
            end_points[name] = net
    return net


def sid_unet(inputs: "tf.Tensor", camera: str = "sony", reuse=None,
             conv: ConvBuilder | None = None) -> tuple["tf.Tensor", dict]:
    """SID's U-Net.

    Args:
      inputs: (N, h, w, C) float32 packed RAW, C = ``CAMERAS[camera].in_channels``;
        h and w need not be multiples of 16.
      camera: 'sony' or 'fuji' (see :data:`CAMERAS`).
      reuse: variable reuse for the network's variables (None inherits, True, or
        ``tf.AUTO_REUSE``), e.g. to build a second tower sharing the weights.
      conv: builds each convolution (:data:`ConvBuilder`); None is :func:`sid_conv`, SID
        exactly as released.  :func:`sid_ft.nets.g_add.layers.conv_with_additions` gives
        one with the g_add additions beside every convolution.

    Returns:
      output: (N, scale*h, scale*w, 3) float32, linear sRGB (not clipped).
      end_points: dict with 'g_conv1_1' .. 'g_conv9_2', 'pool1' .. 'pool4', 'up6' .. 'up9',
        'g_conv10' (N, h, w, out_channels, before depth_to_space) and 'output'.

    Must be called at the root variable scope so the variables get the
    released checkpoints' names.
    """
    tf, slim = _tf()
    spec = camera_spec(camera)
    require_root_scope("sid_unet")
    _check_input(inputs, camera)
    conv = sid_conv if conv is None else conv
    end_points: dict[str, tf.Tensor] = {}
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse, auxiliary_name_scope=False):
        with slim.arg_scope(sid_arg_scope()):
            net, skips = _encoder(inputs, conv, end_points)
            net = _decoder(net, skips, conv, end_points)
            logits = conv(net, spec.out_channels, 1, "g_conv10", activation=False)
            end_points["g_conv10"] = logits
            output = tf.nn.depth_to_space(logits, spec.scale, name="depth_to_space")
            end_points["output"] = output
    return output, end_points
