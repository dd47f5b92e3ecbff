"""What a checkpoint holds, for people: its tensors by group, which model it is, whether it fits.

:func:`inspect_checkpoint` returns a JSON-ready dict; :func:`format_inspection` turns it into
the text ``scripts/inspect_checkpoint.py`` prints.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from sid_ft.errors import SidFtError
from sid_ft.nets.checkpoint import expected_tensors, list_tensors, mismatches, resolve_checkpoint
from sid_ft.nets.model_spec import MODEL_JSON, classify_tensor, read_model_json, read_model_spec

__all__ = ["format_inspection", "inspect_checkpoint"]

GROUPS = ("base", "g_add", "optimizer", "other")
"""The groups of :func:`sid_ft.nets.model_spec.classify_tensor`, in the order they are shown."""


def inspect_checkpoint(path: str | os.PathLike) -> dict:
    """What the checkpoint at ``path`` holds and whether it fits a sid_ft network.

    Returns a dict:
      prefix: str; json: dict | None (sid_ft.json beside it)
      groups: {'base'|'g_add'|'optimizer'|'other': [(name, shape), ...]} sorted by name
      camera: 'sony' | 'fuji' | None; g_add: {'depth', 'width'} | None
      model: str, e.g. 'Sony SID (plain)' (None if not recognised)
      fits: bool -- every tensor the matching network needs is present with its shape
      problems: [str] -- why it does not fit (empty when it fits)
    """
    prefix = resolve_checkpoint(path)
    tensors = list_tensors(prefix)
    groups: dict[str, list[tuple[str, list[int]]]] = {group: [] for group in GROUPS}
    for name in sorted(tensors):
        groups[classify_tensor(name)].append((name, tensors[name]))
    result: dict[str, Any] = {"prefix": prefix, "json": None, "groups": groups, "camera": None,
                              "g_add": None, "model": None, "fits": False, "problems": []}
    try:
        result["json"] = read_model_json(os.path.dirname(prefix))
        spec = read_model_spec(prefix)
    except SidFtError as exc:
        result["problems"].append(exc.reason)
        return result
    result["camera"] = spec.camera
    result["g_add"] = None if spec.g_add is None else spec.g_add.to_dict()
    result["model"] = spec.description
    result["problems"] = mismatches(prefix, expected_tensors(spec.camera, spec.g_add))
    result["fits"] = not result["problems"]
    return result


def format_inspection(info: Mapping[str, Any]) -> str:
    """Human-readable text of :func:`inspect_checkpoint`'s dict."""
    lines = [f"checkpoint: {info['prefix']}"]
    if info.get("json") is not None:
        lines.append(f"{MODEL_JSON}: " + json.dumps(info["json"], sort_keys=True))
    for group in GROUPS:
        items = info["groups"][group]
        lines.append(f"{group} ({len(items)} tensors):")
        for name, shape in items:
            lines.append(f"  {name} {list(shape)}")
    lines.append(f"model: {info['model'] or 'not recognised'}")
    if info["fits"]:
        lines.append(f"fits the network: yes ({info['model']})")
    else:
        lines.append("fits the network: no")
        lines.extend(f"  {p}" for p in info["problems"])
    return "\n".join(lines)
