"""Which graph a checkpoint belongs to: ``sid_ft.json`` beside it, or its tensors.

``sid_ft.json`` next to the checkpoint says which graph to build (camera,
packing, g_add configuration, sid_ft version).  A released SID checkpoint
has none and is recognised from its tensors as plain SID; with one, the file
and the tensors must agree (:func:`read_model_spec`).  :func:`classify_tensor`
sorts a checkpoint's tensor names into base, g_add, optimizer and other.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from sid_ft import __version__
from sid_ft.errors import SidFtError
from sid_ft.io import atomic
from sid_ft.nets.checkpoint import expected_tensors, infer_camera, list_tensors, resolve_checkpoint
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig
from sid_ft.nets.unet import camera_spec

__all__ = [
    "MODEL_JSON",
    "ModelSpec",
    "classify_tensor",
    "read_model_json",
    "read_model_spec",
    "write_model_json",
]

MODEL_JSON = "sid_ft.json"
"""Name of the file, beside the checkpoint, that says which graph the checkpoint belongs to."""

_OPTIMIZER_SLOT = re.compile(r"/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|ExponentialMovingAverage)$")
_OPTIMIZER_NAMES = re.compile(r"^(beta1_power|beta2_power)(_\d+)?$")


@dataclass
class ModelSpec:
    """Which graph a checkpoint belongs to.

    camera: 'sony' or 'fuji'.
    g_add: the head's configuration, or None for plain SID.
    prefix: the checkpoint prefix (path without .index / .data-*).
    """

    camera: str
    g_add: GAddConfig | None
    prefix: str

    @property
    def description(self) -> str:
        """E.g. 'Sony SID (plain)' or 'Fuji SID fine-tuned with g_add (head depth 2, width 16)'."""
        cam = self.camera.capitalize()
        if self.g_add is None:
            return f"{cam} SID (plain)"
        return f"{cam} SID fine-tuned with g_add ({self.g_add.describe()})"


# --------------------------------------------------------------------------- sid_ft.json


def write_model_json(train_dir: str | os.PathLike, camera: str, g_add: GAddConfig | None,
                     packing: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """Write ``<train_dir>/sid_ft.json`` atomically and return its path.

    Contents: ``format``, ``sid_ft_version``, ``camera``, ``packing`` (defaults
    to the camera's CameraSpec: name, in/out channels, scale), ``g_add``
    (``{'depth', 'width'}`` or null), plus ``extra`` entries (which may not
    override those keys).
    """
    camera = str(camera).lower()
    spec = camera_spec(camera)
    info: dict[str, Any] = {
        "format": "sid_ft.nets.model/1",  # the file format's name: it stays when modules move
        "sid_ft_version": __version__,
        "camera": camera,
        "packing": dict(packing) if packing is not None else spec.to_dict(),
        "g_add": None if g_add is None else g_add.to_dict(),
    }
    for key, value in (extra or {}).items():
        if key in info:
            raise ValueError(f"extra key {key!r} would override sid_ft.json's own {key!r}")
        info[key] = value
    os.makedirs(train_dir, exist_ok=True)
    path = os.path.join(os.fspath(train_dir), MODEL_JSON)
    atomic.write_text(path, json.dumps(info, indent=2, sort_keys=True) + "\n", fsync=True)
    return path


def read_model_json(directory: str | os.PathLike) -> dict | None:
    """``<directory>/sid_ft.json`` as a dict, None when there is none; SidFtError when unreadable."""
    path = os.path.join(os.fspath(directory), MODEL_JSON)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise SidFtError(path, f"unreadable {MODEL_JSON} ({exc})") from None
    if not isinstance(info, dict):
        raise SidFtError(path, f"{MODEL_JSON} must hold a JSON object")
    return info


# --------------------------------------------------------------------------- what a checkpoint is


def _infer_head(head: Mapping[str, list[int]], prefix: str, camera: str, affine: bool, rank: int) -> GAddConfig:
    """The design of a checkpoint with a head: depth and width from ``g_add_conv*``, whether it
    sees the packed input from the first layer's input channels, ``linear`` from ``g_add_linear``."""
    depth = 0
    while f"{G_ADD_SCOPE}_conv{depth + 1}/weights" in head:
        depth += 1
    if f"{G_ADD_SCOPE}_out/weights" not in head:
        raise SidFtError(prefix, f"has g_add head tensors but no {G_ADD_SCOPE}_out/weights: "
                                 + ", ".join(sorted(head)))
    first = head[f"{G_ADD_SCOPE}_conv1/weights" if depth else f"{G_ADD_SCOPE}_out/weights"]
    width = first[-1] if depth else GAddConfig().width
    plain = GAddConfig(packed_input=False).head_input_channels(camera)
    return GAddConfig(depth=depth, width=int(width), packed_input=len(first) == 4 and int(first[2]) != plain,
                      linear=f"{G_ADD_SCOPE}_linear/weights" in head, affine=affine, rank=rank)


def _infer_g_add(tensors: Mapping[str, list[int]], prefix: str, camera: str) -> GAddConfig | None:
    """The g_add design from its tensors.

    The head: see :func:`_infer_head`; no ``g_add_out`` means no head.  Inside the network:
    ``affine`` from ``g_add/<conv>/scale``, the rank from the widest ``g_add/<conv>/down/weights``
    (each conv's rank is ``min(rank, its output channels)``).
    """
    g_add = {n: s for n, s in tensors.items()
             if n.startswith(G_ADD_SCOPE) and not _OPTIMIZER_SLOT.search(n)}
    if not g_add:
        return None
    inside_prefix = G_ADD_SCOPE + "/"
    inside = {n: s for n, s in g_add.items() if n.startswith(inside_prefix)}
    head = {n: s for n, s in g_add.items() if n not in inside}
    rank = max((int(s[-1]) for n, s in inside.items() if n.endswith("/down/weights")), default=0)
    affine = any(n.endswith("/scale") for n in inside)
    if inside and not (rank or affine):
        raise SidFtError(prefix, "has g_add tensors inside the network that match no design: "
                                 + ", ".join(sorted(inside)))
    if not head:
        return GAddConfig(head=False, affine=affine, rank=rank)
    return _infer_head(head, prefix, camera, affine, rank)


def _json_design(info: Mapping[str, Any], json_path: str) -> tuple[str, GAddConfig | None]:
    """(camera, g_add design) that ``sid_ft.json``'s dict says; SidFtError when invalid."""
    try:
        json_camera = str(info["camera"]).lower()
        camera_spec(json_camera)
        json_g_add = None if info.get("g_add") is None else GAddConfig.from_dict(info["g_add"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SidFtError(json_path, f"invalid {MODEL_JSON} ({exc})") from None
    return json_camera, json_g_add


def read_model_spec(path: str | os.PathLike) -> ModelSpec:
    """Which graph the checkpoint at ``path`` needs.

    With ``sid_ft.json`` beside the checkpoint, camera and g_add come from it
    and are cross-checked against the tensors; without it, they are inferred
    from tensor shapes (camera from ``g_conv1_1/weights`` input channels, g_add
    depth/width from the ``g_add_conv*`` tensors): a released SID checkpoint is
    plain SID.  SidFtError when the JSON and the tensors disagree.
    """
    prefix = resolve_checkpoint(path)
    tensors = list_tensors(prefix)
    camera = infer_camera(tensors, prefix)
    g_add = _infer_g_add(tensors, prefix, camera)
    info = read_model_json(os.path.dirname(prefix))
    if info is not None:
        json_path = os.path.join(os.path.dirname(prefix), MODEL_JSON)
        json_camera, json_g_add = _json_design(info, json_path)
        problems = []
        if json_camera != camera:
            problems.append(f"camera {json_camera!r} but the tensors are a {camera} model")
        if json_g_add != g_add:
            problems.append(f"g_add {None if json_g_add is None else json_g_add.to_dict()} but the tensors "
                            f"say {None if g_add is None else g_add.to_dict()}")
        if problems:
            raise SidFtError(json_path, f"does not describe checkpoint {prefix}: " + "; ".join(problems))
    return ModelSpec(camera=camera, g_add=g_add, prefix=prefix)


def classify_tensor(name: str) -> str:
    """'optimizer', 'g_add', 'base' or 'other' for a checkpoint tensor name.

    optimizer: optimizer slots (``.../Adam``, ``.../Adam_1``...) and
    ``beta1_power``/``beta2_power``; g_add: names starting with 'g_add';
    base: the tensors of a released SID model; other: anything else
    (``global_step``, unknown tensors).
    """
    if _OPTIMIZER_SLOT.search(name) or _OPTIMIZER_NAMES.match(name):
        return "optimizer"
    if name.startswith(G_ADD_SCOPE):
        return "g_add"
    if name in _base_names():
        return "base"
    return "other"


@functools.lru_cache(maxsize=None)
def _base_names() -> frozenset[str]:
    """The released SID model's tensor names (the same for every camera)."""
    return frozenset(expected_tensors("sony", None))
