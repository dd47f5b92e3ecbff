"""A g_add design (:class:`GAddConfig`): what is added to the frozen SID network, and where.

``g_add`` layers are additions to the frozen network, every variable under a name starting
with :data:`G_ADD_SCOPE`, all zero-initialised so that an untrained model reproduces the
base output bit for bit:

* inside the network (``affine``, ``rank``): beside every convolution, a per-channel scale
  and shift and/or a rank-r delta, in ``g_add/<conv scope>/`` (:mod:`sid_ft.nets.g_add.layers`);
  they fold into plain conv weights for inference (:mod:`sid_ft.nets.g_add.fold`);
* the head (``head``): a small residual network at packed resolution on the last decoder
  features and the base logits (:mod:`sid_ft.nets.g_add.head`).

Imports without TensorFlow: option dataclasses and argument parsers build designs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from sid_ft.nets.unet import FEATURE_CHANNELS, camera_spec

__all__ = ["G_ADD_SCOPE", "GAddConfig", "addition_rank", "parse_design"]

G_ADD_SCOPE = "g_add"
"""Every g_add variable lives under a scope whose name starts with this string."""


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
        """The design left after :func:`sid_ft.nets.g_add.fold.fold_g_add`: the head alone, or None (plain SID)."""
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
        return FEATURE_CHANNELS + spec.out_channels + (spec.in_channels if self.packed_input else 0)


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


def addition_rank(config: GAddConfig, out_channels: int) -> int:
    """Rank of the low-rank delta beside a conv of ``out_channels``: ``min(config.rank, out_channels)``."""
    return min(config.rank, out_channels)
