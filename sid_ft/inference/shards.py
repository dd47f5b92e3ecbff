"""Splitting a batch across cluster tasks: SLURM job arrays, Kubernetes indexed Jobs, ``--shard K/N``.

Every task sorts the same inputs and takes every N-th (:func:`select_shard`), so the N
shards together hold every file exactly once without talking to each other; each writes
``summary.shard-K-of-N.json`` and :func:`merge_shard_summaries` joins them afterwards.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

from sid_ft.errors import SidFtError
from sid_ft.inference.summary import FileRecord, RunSummary, write_summary

__all__ = ["parse_shard", "shard_from_env", "select_shard", "shard_summary_name", "merge_shard_summaries"]

def parse_shard(text: str) -> tuple[int, int]:
    """``'K/N'`` (1-based, 1 <= K <= N) -> ``(K, N)``; SidFtError otherwise."""
    try:
        k_text, n_text = str(text).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise SidFtError(None, f"--shard {text!r}: expected K/N, e.g. 1/4 (1-based)") from None
    if n < 1 or not 1 <= k <= n:
        raise SidFtError(None, f"--shard {text!r}: need 1 <= K <= N (shards are numbered from 1)")
    return k, n


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SidFtError(None, f"environment variable {name}={value!r} is not an integer") from None


def shard_from_env(environ: Mapping[str, str] | None = None, count: int | None = None) -> tuple[int, int] | None:
    """The ``(K, N)`` shard (1-based) a cluster scheduler assigned to this process, or None.

    * SLURM job arrays: ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``.
      Task ids need not start at 1 (``--array=0-9``, ``--array=5-8``, ``--array=0-20:5``):
      K is the task's position, ``(ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP + 1``.
    * Kubernetes indexed Jobs: ``JOB_COMPLETION_INDEX`` (0-based, so K = index + 1).
      Kubernetes does not tell the pod how many completions there are: N comes
      from ``count`` (``--shard-count``) or the ``SID_FT_SHARD_COUNT`` variable;
      SidFtError when neither is set (running everything in every pod would
      silently repeat the work).

    ``count``, when given, must agree with SLURM's task count.
    """
    env = os.environ if environ is None else environ
    if count is None:
        count = _env_int(env, "SID_FT_SHARD_COUNT")
    task_id = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task_id is not None:
        n = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        if n is None:
            raise SidFtError(None, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard K/N")
        lo = _env_int(env, "SLURM_ARRAY_TASK_MIN")
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        if lo is None:
            raise SidFtError(None, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not; pass --shard K/N")
        offset = task_id - lo
        if offset < 0 or offset % step:
            raise SidFtError(None, f"SLURM array task {task_id} is not on the array's grid "
                                   f"(min {lo}, step {step}); pass --shard K/N")
        k = offset // step + 1
        if count is not None and count != n:
            raise SidFtError(None, f"--shard-count {count} disagrees with SLURM_ARRAY_TASK_COUNT={n}")
        if not 1 <= k <= n:
            raise SidFtError(None, f"SLURM array task {task_id} is outside an array of {n} tasks from {lo} "
                                   f"with step {step} (sparse arrays like --array=1,5,9 need --shard K/N)")
        return k, n
    index = _env_int(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        if count is None:
            raise SidFtError(None, f"JOB_COMPLETION_INDEX={index} is set (Kubernetes indexed Job) but the number "
                                   "of completions is unknown: pass --shard-count N or set SID_FT_SHARD_COUNT")
        if not 0 <= index < count:
            raise SidFtError(None, f"JOB_COMPLETION_INDEX={index} is outside 0..{count - 1}")
        return index + 1, count
    return None


def select_shard(items: Sequence, shard: tuple[int, int] | None, key: Callable = str) -> list:
    """Items of shard ``(K, N)``: sort by ``key``, then take every N-th starting at the K-th.

    Deterministic across machines; the N shards together hold every item exactly once.
    """
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    k, n = shard
    return ordered[k - 1::n]


def shard_summary_name(shard: tuple[int, int] | None) -> str:
    """The summary's file stem: ``summary``, or ``summary.shard-K-of-N`` for shard ``(K, N)``."""
    return "summary" if shard is None else f"summary.shard-{shard[0]}-of-{shard[1]}"


_SHARD_SUMMARY = re.compile(r"^summary\.shard-(\d+)-of-(\d+)\.json$")


def _record_from_row(row: Mapping) -> FileRecord:
    """A FileRecord from a summary row; keys this version does not know are ignored (other sid_ft versions)."""
    if not isinstance(row.get("input"), str) or not isinstance(row.get("status"), str):
        raise ValueError(f"a row without input/status: {row!r}")
    return FileRecord(**{k: v for k, v in row.items() if k in FileRecord.__dataclass_fields__})


def merge_shard_summaries(out_dir: str | os.PathLike) -> tuple[RunSummary, list[int]]:
    """Merge the ``summary.shard-K-of-N.json`` files of one sharded run into ``summary.json`` / ``.csv``.

    Every shard must come from the same N and the same model (else SidFtError naming the file);
    records are sorted by input; ``wall_s`` is the longest shard's (shards run side by side).
    Returns the merged summary and the shard numbers (1-based) that have no summary yet, which
    are also listed in the merged ``summary.json`` as ``missing_shards``.
    """
    out_dir = Path(out_dir)
    found: dict[int, tuple[Path, dict]] = {}
    count = None
    for path in sorted(out_dir.glob("summary.shard-*-of-*.json")):
        m = _SHARD_SUMMARY.match(path.name)
        if not m:
            continue
        k, n = int(m.group(1)), int(m.group(2))
        if count is not None and n != count:
            raise SidFtError(path, f"is a shard of {n}, but other summaries here are shards of {count}; "
                                   "move the summaries of the other run away first")
        count = n
        try:
            doc = json.loads(path.read_text())
            records = [_record_from_row(row) for row in doc["files"]]
            if not isinstance(doc.get("totals"), dict):
                raise ValueError("no totals")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SidFtError(path, f"not a readable shard summary ({exc})") from None
        found[k] = (path, doc | {"records": records})
    if not found:
        raise SidFtError(out_dir, "has no summary.shard-K-of-N.json files to merge")
    first = found[min(found)][1]
    for path, doc in found.values():
        if doc.get("checkpoint") != first.get("checkpoint"):
            raise SidFtError(path, f"was made with checkpoint {doc.get('checkpoint')}, the other shards with "
                                   f"{first.get('checkpoint')}")
    records = sorted((r for _, doc in found.values() for r in doc["records"]), key=lambda r: r.input)
    seen: set[str] = set()
    for r in records:
        if r.input in seen:
            raise SidFtError(r.input, "appears in more than one shard summary")
        seen.add(r.input)
    wall = max(float(doc.get("totals", {}).get("wall_s") or 0.0) for _, doc in found.values())
    missing = [k for k in range(1, count + 1) if k not in found]
    summary = RunSummary(records=records, wall_s=wall)
    info = {key: first.get(key) for key in ("checkpoint", "model", "camera", "g_add", "bits", "tile", "overlap",
                                            "metrics_note", "protocol", "protocol_note", "orientation")}
    info.update(shard=None, merged_from=[found[k][0].name for k in sorted(found)], missing_shards=missing)
    summary.summary_json, summary.summary_csv = write_summary(out_dir, summary, info)
    return summary, missing
