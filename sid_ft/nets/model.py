"""The Learning-to-See-in-the-Dark U-Net and the g_add refinement head, slim style.

The base network is SID's (Chen et al., CVPR 2018) as published: a U-Net on
packed RAW at half (Sony, Bayer) or one third (Fuji, X-Trans) resolution,
ending in ``depth_to_space`` to full-resolution sRGB::

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

``g_add`` layers (:class:`GAddConfig`) are additions to the frozen network, every
variable under a name starting with ``g_add``, all zero-initialised so that an
untrained model reproduces the base output bit for bit:

* inside the network (``affine``, ``rank``): beside every convolution, a per-channel
  scale and shift and/or a rank-r delta (kxk conv to r channels, zero 1x1 back), in
  ``g_add/<conv scope>/`` (:func:`g_add_conv_additions`).  They reach the encoder, so
  they can adapt the network to a new sensor's noise; being linear in the conv's
  weights, :func:`fold_g_add` folds them into plain conv weights for inference;
* the head (``head``): a small residual network at packed resolution on the last
  decoder features and the base logits (colour, levels, tone).  It takes plain
  tensors, so a trainer can run the frozen base once, cache ``g_conv9_2`` and
  ``g_conv10`` and feed them to :func:`g_add_head` through placeholders.

Usage::

    from sid_ft._tf import tf1
    tf = tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, None, None, 4])
        out, end_points = sid_network(x, camera='sony', g_add=GAddConfig(depth=2, width=16))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1

tf = tf1()
slim = _slim_module()

__all__ = [
    "CameraSpec",
    "CAMERAS",
    "GAddConfig",
    "LEAKY_SLOPE",
    "UPSAMPLE_FILTER_NAMES",
    "camera_spec",
    "lrelu",
    "sid_arg_scope",
    "sid_unet",
    "g_add_head",
    "sid_network",
    "conv_layers",
    "addition_rank",
    "g_add_conv_additions",
    "fold_g_add",
    "parse_design",
    "G_ADD_SCOPE",
    "expected_variables",
]

LEAKY_SLOPE = 0.2
"""Slope of SID's leaky ReLU: ``max(0.2 x, x)``."""

G_ADD_SCOPE = "g_add"
"""Every g_add variable lives under a scope whose name starts with this string."""

UPSAMPLE_FILTER_NAMES = ("Variable", "Variable_1", "Variable_2", "Variable_3")
"""Checkpoint names of the transposed-convolution filters of up6, up7, up8, up9."""

_DOWN_WIDTHS = (32, 64, 128, 256, 512)  # levels 1..5
_UP_WIDTHS = (256, 128, 64, 32)  # levels 6..9

FEATURE_CHANNELS = _UP_WIDTHS[-1]
"""Channels of ``g_conv9_2``, the last decoder features (what the head and the feature cache see)."""


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


@dataclass
class GAddConfig:
    """A g_add design: the head after the network and/or additions beside its convolutions.

    head: the head exists (``g_add_conv*``, ``g_add_out``...); its shape is depth, width,
      packed_input and linear below.
    affine: a zero-initialised per-channel scale and shift after every convolution of the network.
    rank: rank r of a zero-initialised delta beside every convolution (0: none); each conv's
      rank is ``min(r, its output channels)``.
    depth: number of 3x3 conv + leaky ReLU layers (``g_add_conv1`` .. ``g_add_conv{depth}``), >= 0.
    width: channels of each of those layers, >= 1 (with depth 0 it is unused and set to the default).
    packed_input: the head also sees the network's packed, amplified input (the raw colour
      the frozen network was given), not only its last features and logits.
    linear: a zero-initialised 1x1 linear layer ``g_add_linear`` from the head's input straight
      to the correction, beside the conv path: a per-pixel colour matrix and gain on the logits
      (and the raw input), which a new camera's colour response needs first.
    """

    depth: int = 2
    width: int = 16
    packed_input: bool = False
    linear: bool = False
    head: bool = True
    affine: bool = False
    rank: int = 0

    def __post_init__(self) -> None:
        for name, low in (("depth", 0), ("width", 1), ("rank", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"g_add {name} must be an integer >= {low}, got {value!r}")
            setattr(self, name, int(value))
        for flag in ("packed_input", "linear", "head", "affine"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"g_add {flag} must be true or false, got {getattr(self, flag)!r}")
        if not self.head:  # no head: its shape means nothing, and checkpoints cannot show it
            self.depth, self.width = type(self).depth, type(self).width
            self.packed_input = self.linear = False
        if self.depth == 0:  # no conv layers: the width means nothing, and checkpoints cannot show it
            self.width = type(self).width
        if not (self.head or self.inside):
            raise ValueError("a g_add design needs the head or additions inside the network (affine and/or rank)")

    @property
    def inside(self) -> bool:
        """True when the design has additions beside the network's own convolutions."""
        return self.affine or self.rank > 0

    def folded(self) -> "GAddConfig | None":
        """The design left after :func:`fold_g_add`: the head alone, or None (plain SID) without one."""
        return GAddConfig(self.depth, self.width, self.packed_input, self.linear) if self.head else None

    def describe(self) -> str:
        """E.g. 'per-channel affine + rank-16 deltas in every conv; head depth 2, width 16'."""
        parts = []
        if self.inside:
            inside = " + ".join(what for what, on in (("per-channel affine", self.affine),
                                                     (f"rank-{self.rank} deltas", self.rank > 0)) if on)
            parts.append(inside + " in every conv")
        if self.head:
            shape = f"head depth {self.depth}" + (f", width {self.width}" if self.depth else "")
            parts.append(shape + "".join(f", {what}" for what, on in (("sees the packed input", self.packed_input),
                                                                    ("linear path", self.linear)) if on))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """``{'depth', 'width', 'packed_input', 'linear', 'head', 'affine', 'rank'}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GAddConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError (a typo must not pass silently).

        Missing keys take the values of the first head design (depth 2, width 16, features and
        logits only, no linear layer, no additions inside the network), so checkpoints written
        before a field existed still load.
        """
        legacy = {"depth": 2, "width": 16, "packed_input": False, "linear": False, "head": True,
                  "affine": False, "rank": 0}
        unknown = set(d) - set(legacy)
        if unknown:
            raise ValueError(f"unknown g_add setting(s): {sorted(unknown)}")
        return cls(**{k: d.get(k, legacy[k]) for k in legacy})

    def head_input_channels(self, camera: str) -> int:
        """Channels the head's first layer sees: g_conv9_2 (32) + g_conv10 logits (+ packed input)."""
        spec = camera_spec(camera)
        return _UP_WIDTHS[-1] + spec.out_channels + (spec.in_channels if self.packed_input else 0)


def parse_design(text: str, depth: int = GAddConfig.depth, width: int = GAddConfig.width) -> GAddConfig:
    """A g_add design from '+'-joined words: ``head`` (the head, of ``depth`` and ``width``),
    ``affine`` (per-channel affine after every conv), ``rankR`` (rank-R delta beside every conv);
    e.g. ``affine+rank16`` or ``head``.  ValueError for an unknown word."""
    kw = {"head": False, "affine": False, "rank": 0}
    for word in text.strip().split("+"):
        if word in ("head", "affine"):
            kw[word] = True
        elif word.startswith("rank") and word[4:].isdigit():
            kw["rank"] = int(word[4:])
        else:
            raise ValueError(f"unknown design word {word!r} in {text!r}; words: head, affine, rankR")
    return GAddConfig(depth=depth, width=width, **kw)


def lrelu(x: tf.Tensor) -> tf.Tensor:
    """SID's leaky ReLU, ``max(0.2 x, x)``."""
    return tf.maximum(x * LEAKY_SLOPE, x)


def sid_arg_scope(weights_initializer=None):
    """The arg_scope holding SID's layer defaults.

    conv2d: SAME padding, bias, leaky ReLU 0.2; max_pool2d: 2x2, stride 2, SAME.
    ``weights_initializer`` defaults to tf-slim's (Xavier); the released weights
    replace it anyway when a checkpoint is restored.
    """
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


def _require_root_scope(what: str) -> None:
    """The checkpoint names are root-level: refuse to build inside a variable scope (name scopes are fine)."""
    scope = tf.get_variable_scope().name
    if scope:
        raise ValueError(f"{what} must be built at the root variable scope so its variables keep the "
                         f"released checkpoint names; it was called inside variable scope {scope!r}")


def _upsample_concat(net: tf.Tensor, skip: tf.Tensor, filter_name: str, end_points: dict,
                     key: str) -> tf.Tensor:
    """SID's upsampling: 2x2 stride-2 transposed conv (no bias) to the skip's shape, then concat.

    net (N, h, w, C_in); skip (N, H, W, C_out) with h == ceil(H / 2).
    The filter, shape [2, 2, C_out, C_in], is the model variable ``filter_name``
    created at the current variable scope (root: the released names).
    Returns (N, H, W, 2 * C_out): ``concat([upsampled, skip], axis=3)``.
    """
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


def addition_rank(config: GAddConfig, out_channels: int) -> int:
    """Rank of the low-rank delta beside a conv of ``out_channels``: ``min(config.rank, out_channels)``."""
    return min(config.rank, out_channels)


def g_add_conv_additions(x: tf.Tensor, weights: tf.Tensor, biases: tf.Tensor, base_scope: str,
                         config: GAddConfig) -> tf.Tensor:
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
    at the cost of the plain conv), and :func:`fold_g_add` computes exactly those effective
    kernels once for inference.  Zero-initialised, ``W`` and ``b`` pass unchanged bit for bit.
    Returns ``conv2d(x, W) + b`` (N, h, w, C_out).
    """
    zero = tf.zeros_initializer()
    kh, kw, cin, cout = weights.shape.as_list()
    with tf.variable_scope(f"{G_ADD_SCOPE}/{base_scope}"):
        rank = addition_rank(config, cout)
        if rank:
            with tf.variable_scope("down"):
                down = slim.model_variable("weights", shape=[kh, kw, cin, rank],
                                           initializer=tf.glorot_uniform_initializer())
            with tf.variable_scope("up"):
                up = slim.model_variable("weights", shape=[1, 1, rank, cout], initializer=zero)
                up_b = slim.model_variable("biases", shape=[cout], initializer=zero)
            weights = weights + tf.tensordot(down, up[0, 0], axes=[[3], [0]])
            biases = biases + up_b
        if config.affine:
            scale = slim.model_variable("scale", shape=[cout], initializer=zero)
            shift = slim.model_variable("shift", shape=[cout], initializer=zero)
            weights = weights * (1.0 + scale)
            biases = biases * (1.0 + scale) + shift
    z = tf.nn.conv2d(x, weights, strides=[1, 1, 1, 1], padding="SAME")
    return tf.nn.bias_add(z, biases)


def _sid_conv(net: tf.Tensor, width: int, kernel: int, scope: str, additions: GAddConfig | None,
              activation: bool = True) -> tf.Tensor:
    """One SID convolution (slim, released names), with the g_add additions beside it when asked."""
    if additions is None or not additions.inside:
        return slim.conv2d(net, width, [kernel, kernel], scope=scope, **({} if activation else {"activation_fn": None}))
    with tf.variable_scope(scope):  # the same variables slim.conv2d makes: <scope>/weights, <scope>/biases
        weights = slim.model_variable("weights", shape=[kernel, kernel, int(net.shape[-1]), width],
                                      initializer=tf.glorot_uniform_initializer())
        biases = slim.model_variable("biases", shape=[width], initializer=tf.zeros_initializer())
    z = g_add_conv_additions(net, weights, biases, scope, additions)
    return lrelu(z) if activation else z


def fold_g_add(values: Mapping[str, Any], camera: str, config: GAddConfig | None):
    """Fold the additions inside the network into the convolutions they sit beside (for inference).

    values: ``{tensor name: array}`` of every model variable of ``sid_network(camera, config)``
    (e.g. read from a checkpoint).  Returns ``(folded values, folded config)``: the base
    convolutions' ``weights``/``biases`` with the additions folded in (float32, the same
    arithmetic as :func:`g_add_conv_additions` does in the graph), the head's tensors unchanged, no ``g_add/...`` tensors; the config is
    ``config.folded()`` (None: plain SID).  The folded network computes the same function as
    the unfolded one up to float32 rounding.  Without additions inside, values pass through.
    """
    import numpy as np

    if config is None or not config.inside:
        return dict(values), config
    prefix = G_ADD_SCOPE + "/"
    out = {name: value for name, value in values.items() if not name.startswith(prefix)}
    for scope, _, _, cout in conv_layers(camera):
        w = np.asarray(values[f"{scope}/weights"], np.float32)
        b = np.asarray(values[f"{scope}/biases"], np.float32)
        add = f"{prefix}{scope}/"
        if addition_rank(config, cout):  # the same float32 arithmetic, in the same order, as the graph
            down = np.asarray(values[add + "down/weights"], np.float32)  # (k, k, C_in, r)
            up = np.asarray(values[add + "up/weights"], np.float32)[0, 0]  # (r, C_out)
            w = w + np.tensordot(down, up, axes=([3], [0]))
            b = b + np.asarray(values[add + "up/biases"], np.float32)
        if config.affine:
            gain = np.float32(1.0) + np.asarray(values[add + "scale"], np.float32)
            w = w * gain
            b = b * gain + np.asarray(values[add + "shift"], np.float32)
        out[f"{scope}/weights"] = w.astype(np.float32)
        out[f"{scope}/biases"] = b.astype(np.float32)
    return out, config.folded()


def sid_unet(inputs: tf.Tensor, camera: str = "sony", reuse=None,
             additions: GAddConfig | None = None) -> tuple[tf.Tensor, dict]:
    """SID's U-Net.

    Args:
      inputs: (N, h, w, C) float32 packed RAW, C = ``CAMERAS[camera].in_channels``;
        h and w need not be multiples of 16.
      camera: 'sony' or 'fuji' (see :data:`CAMERAS`).
      reuse: variable reuse for the network's variables (None inherits, True, or
        ``tf.AUTO_REUSE``), e.g. to build a second tower sharing the weights.
      additions: a g_add design whose additions inside the network (``affine``, ``rank``)
        go beside every convolution (:func:`g_add_conv_additions`); None or a head-only
        design builds SID exactly as released.

    Returns:
      output: (N, scale*h, scale*w, 3) float32, linear sRGB (not clipped).
      end_points: dict with 'g_conv1_1' .. 'g_conv9_2', 'up6' .. 'up9',
        'g_conv10' (N, h, w, out_channels, before depth_to_space) and 'output'.

    Must be called at the root variable scope so the variables get the
    released checkpoints' names.
    """
    spec = camera_spec(camera)
    _require_root_scope("sid_unet")
    if inputs.shape.rank is not None and inputs.shape[-1] is not None \
            and int(inputs.shape[-1]) != spec.in_channels:
        raise ValueError(f"{camera} SID expects {spec.in_channels} input channels, "
                         f"got input shape {inputs.shape}")
    end_points: dict[str, tf.Tensor] = {}
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse, auxiliary_name_scope=False):
        with slim.arg_scope(sid_arg_scope()):
            net = inputs
            skips = []
            for level, width in enumerate(_DOWN_WIDTHS, start=1):
                for k in (1, 2):
                    name = f"g_conv{level}_{k}"
                    net = _sid_conv(net, width, 3, name, additions)
                    end_points[name] = net
                if level < 5:
                    skips.append(net)
                    net = slim.max_pool2d(net, scope=f"pool{level}")
                    end_points[f"pool{level}"] = net
            for i, (level, width) in enumerate(zip(range(6, 10), _UP_WIDTHS)):
                skip = skips[-1 - i]
                net = _upsample_concat(net, skip, UPSAMPLE_FILTER_NAMES[i], end_points, f"up{level}")
                for k in (1, 2):
                    name = f"g_conv{level}_{k}"
                    net = _sid_conv(net, width, 3, name, additions)
                    end_points[name] = net
            logits = _sid_conv(net, spec.out_channels, 1, "g_conv10", additions, activation=False)
            end_points["g_conv10"] = logits
            output = tf.nn.depth_to_space(logits, spec.scale, name="depth_to_space")
            end_points["output"] = output
    return output, end_points


def g_add_head(features: tf.Tensor, base_logits: tf.Tensor, config: GAddConfig | None = None,
               camera: str = "sony", reuse=None, packed: tf.Tensor | None = None) -> tuple[tf.Tensor, dict]:
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
    config = GAddConfig() if config is None else config
    spec = camera_spec(camera)
    _require_root_scope("g_add_head")
    checks = [(features, _UP_WIDTHS[-1], "features (g_conv9_2)"),
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
    end_points: dict[str, tf.Tensor] = {}
    zero = tf.zeros_initializer()
    with tf.variable_scope(tf.get_variable_scope(), reuse=reuse, auxiliary_name_scope=False):
        with slim.arg_scope(sid_arg_scope()):
            head_in = tf.concat([t for t, _, _ in checks], axis=3, name=G_ADD_SCOPE + "_input")
            net = head_in
            for i in range(1, config.depth + 1):
                name = f"{G_ADD_SCOPE}_conv{i}"
                net = slim.conv2d(net, config.width, [3, 3], scope=name)
                end_points[name] = net
            delta = slim.conv2d(net, spec.out_channels, [1, 1], activation_fn=None, weights_initializer=zero,
                                biases_initializer=zero, scope=f"{G_ADD_SCOPE}_out")
            if config.linear:
                linear = slim.conv2d(head_in, spec.out_channels, [1, 1], activation_fn=None, weights_initializer=zero,
                                     biases_initializer=None, scope=f"{G_ADD_SCOPE}_linear")
                end_points["g_add_linear"] = linear
                delta = tf.add(delta, linear, name=f"{G_ADD_SCOPE}_delta")
            end_points["g_add_delta"] = delta
            logits = tf.add(base_logits, delta, name=f"{G_ADD_SCOPE}_logits")
            end_points["g_add_logits"] = logits
            output = tf.nn.depth_to_space(logits, spec.scale, name=f"{G_ADD_SCOPE}_depth_to_space")
            end_points["output"] = output
    return output, end_points


def sid_network(inputs: tf.Tensor, camera: str = "sony", g_add: GAddConfig | None = None,
                reuse=None) -> tuple[tf.Tensor, dict]:
    """SID's U-Net, plus the g_add layers when ``g_add`` is given.

    Args:
      inputs: (N, h, w, C) float32 packed RAW.
      camera: 'sony' or 'fuji'.
      g_add: the g_add design (additions beside every conv and/or the head), or None for plain SID.
      reuse: variable reuse for all variables.

    Returns:
      output: (N, scale*h, scale*w, 3) float32 (the head's output when the design has one).
      end_points: everything :func:`sid_unet` returns, 'base_output' (the U-Net's output,
        with the additions inside it when the design has them), and with a head the head's
        end points; 'output' is the final output.
    """
    base_output, end_points = sid_unet(inputs, camera=camera, reuse=reuse, additions=g_add)
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

    Builds the network in a throwaway graph (no session, no weights).
    """
    spec = camera_spec(camera)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, None, None, spec.in_channels])
        sid_network(x, camera=camera, g_add=g_add)
        return {v.op.name: v.shape.as_list() for v in slim.get_model_variables()}
