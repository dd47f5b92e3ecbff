"""What a checkpoint holds, for people: its tensors by group, which model it is, whether it fits and can be read.

:func:`inspect_checkpoint` returns a JSON-ready dict; :func:`format_inspection` turns it into
the text ``scripts/inspect_checkpoint.py`` prints.  The tensors are listed from the index even
when the data files are damaged; whether it fits needs them readable: their lengths are always
checked, every tensor's bytes with ``verify`` (``--verify``, :mod:`sid_ft.nets.verify`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from sid_ft.errors import SidFtError
from sid_ft.nets.checkpoint import expected_tensors, list_tensors, mismatches, resolve_checkpoint
from sid_ft.nets.model_spec import MODEL_JSON, classify_tensor, read_model_json, read_model_spec
from sid_ft.nets.verify import format_report, verify_released

__all__ = ["format_inspection", "inspect_checkpoint"]

GROUPS = ("base", "g_add", "optimizer", "other")
"""The groups of :func:`sid_ft.nets.model_spec.classify_tensor`, in the order they are shown."""


def inspect_checkpoint(path: str | os.PathLike, *, verify: bool = False) -> dict:
    """What the checkpoint at ``path`` holds, whether it fits a sid_ft network and (``verify``) can be read.

    Returns a dict:
      prefix: str; json: dict | None (sid_ft.json beside it)
      groups: {'base'|'g_add'|'optimizer'|'other': [(name, shape), ...]} sorted by name
      camera: 'sony' | 'fuji' | None; g_add: {'depth', 'width'} | None
      model: str, e.g. 'Sony SID (plain)' (None if not recognised)
      fits: bool -- every tensor the matching network needs is present with its shape, and the
        checkpoint can be read (data files as long as the index says; with ``verify``, every CRC32C)
      problems: [str] -- why it does not fit (empty when it fits)
      verify: None, or with ``verify`` {'readable': bool, 'checksums': bool, 'tensors_checked': int,
        'data_files': [{'path', 'expected_bytes', 'found_bytes'}], 'problems': ['<file>: <reason>'],
        'text': the report's lines} (:func:`sid_ft.nets.verify.verify_released`: a folder holding
        a released SID model is also compared with the released sizes)
    """
    prefix = resolve_checkpoint(path)
    tensors = list_tensors(prefix, verify=False)
    groups: dict[str, list[tuple[str, list[int]]]] = {group: [] for group in GROUPS}
    for name in sorted(tensors):
        groups[classify_tensor(name)].append((name, tensors[name]))
    result: dict[str, Any] = {"prefix": prefix, "json": None, "groups": groups, "camera": None,
                              "g_add": None, "model": None, "fits": False, "problems": [],
                              "verify": _verify(prefix) if verify else None}
    if verify and not result["verify"]["readable"]:
        result["problems"].extend(result["verify"]["problems"])
    try:
        result["json"] = read_model_json(os.path.dirname(prefix))
        spec = read_model_spec(prefix)
    except SidFtError as exc:
        if str(exc) not in result["problems"]:
            result["problems"].append(exc.reason if exc.path == prefix else str(exc))
        return result
    result["camera"] = spec.camera
    result["g_add"] = None if spec.g_add is None else spec.g_add.to_dict()
    result["model"] = spec.description
    result["problems"] += mismatches(prefix, expected_tensors(spec.camera, spec.g_add))
    result["fits"] = not result["problems"]
    return result


def _verify(prefix: str) -> dict:
    """The ``verify`` entry of :func:`inspect_checkpoint`: every tensor's bytes read and checked."""
    report = verify_released(prefix, checksums=True)
    return {"readable": report.ok, "checksums": report.checksums, "tensors_checked": report.tensors_checked,
            "data_files": [vars(shard) for shard in report.shards], "problems": report.problems,
            "text": format_report(report)}


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
    if info.get("verify") is not None:
        lines.append(info["verify"]["text"])
    if info["fits"]:
        lines.append(f"fits the network: yes ({info['model']})")
    else:
        lines.append("fits the network: no")
        unreadable = (info.get("verify") or {}).get("problems", [])
        if any(p in unreadable for p in info["problems"]):
            lines.append("  it cannot be read (above)")
        lines.extend(f"  {p}" for p in info["problems"] if p not in unreadable)
    return "\n".join(lines)
