"""Save full fine-tuned checkpoints, crash-safely.

:func:`make_saver` is a full Saver over all global variables (base, g_add,
optimizer state, ``global_step``); a fine-tuned checkpoint keeps the released
tensor names, so it still loads into SID's own test code.  :func:`save_checkpoint`
writes ``sid_ft.json`` (:mod:`sid_ft.nets.model_spec`) beside it.

Crash safety of :func:`save_checkpoint` (kill -9 at any moment leaves the
previous checkpoint loadable).  :func:`forget_checkpoints` rewrites the state
file, just as atomically, when a resume sets damaged checkpoints aside.  How ``tf.compat.v1.train.Saver`` writes a V2
checkpoint, read from TF 2.21's saver.py / checkpoint_management.py and
tensor_bundle.cc (BundleWriter::Finish, MergeBundles), and checked by
killing a saving process at random moments:

1. the tensors go to ``<prefix>.data-00000-of-00001.tempstate<random>``
   (a sharded Saver: ``<prefix>_temp/part-*``, merged afterwards);
2. the data file is renamed to ``<prefix>.data-00000-of-00001``, *then* the
   index is written (to ``<prefix>.index.tempstate<random>``, renamed to
   ``<prefix>.index``; MergeBundles writes it in place);
3. only after that, the ``checkpoint`` state file is replaced atomically
   (``file_io.atomic_write_string_to_file``: temp file + rename);
4. then checkpoints beyond ``max_to_keep``, already dropped from the state
   file, are deleted.

So a save to a *new* prefix never touches the files the state file points
to, and the state file flips to the new checkpoint only once it is complete.
The one unsafe case is saving over an existing prefix (e.g. saving again at
the same step after a resume): the new data file would replace the old one
before the new index does.  :func:`save_checkpoint` therefore never reuses a
prefix: it picks ``model.ckpt-<step>``, or ``model.ckpt-<step>.1``, ``.2``...
when files of that name exist.  ``sid_ft.json`` is written first, with temp
file + fsync + ``os.replace``.  Leftovers of a killed save (``*.tempstate*``
files, ``*_temp`` folders, an unreferenced ``model.ckpt-<step>.*``) are
harmless; the temporary ones are removed by the next save.  (This protects
against the process being killed, not against power loss: TensorFlow does
not fsync its checkpoint files.)

:func:`save_best_checkpoint` keeps a train dir's best checkpoint in ``TRAIN_DIR/best/``
(:mod:`sid_ft.nets.best`) the same way: a new prefix, written whole, then ``best.json``
replaced atomically to name it, and only then the older best deleted.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
from typing import Any, Mapping, Sequence

from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.nets.checkpoint import STATE_FILE, checkpoint_exists, expected_tensors, first_line
from sid_ft.io import atomic
from sid_ft.nets.best import BEST_DIR, write_best_record
from sid_ft.nets.g_add.config import GAddConfig
from sid_ft.nets.model_spec import write_model_json
from sid_ft.nets.verify import DAMAGED_TAG

tf = tf1()

__all__ = ["CHECKPOINT_BASENAME", "forget_checkpoints", "make_saver", "save_best_checkpoint", "save_checkpoint"]

CHECKPOINT_BASENAME = "model.ckpt"
"""Checkpoint prefix basename, as in the released SID checkpoints (``model.ckpt-<step>`` when saved by us)."""


def make_saver(max_to_keep: int = 5):
    """A full ``tf.train.Saver`` over all global variables: base, g_add, optimizer state, global_step.

    Paths in the ``checkpoint`` state file are relative, so a train_dir can be moved.
    Never use the restore-only saver of :func:`sid_ft.nets.checkpoint.restore_pretrained`
    to save: the g_add weights would be lost.
    """
    return tf.train.Saver(var_list=tf.global_variables(), max_to_keep=max_to_keep,
                          save_relative_paths=True)


def _step_prefix(train_dir: str, global_step: int) -> str:
    """``<train_dir>/model.ckpt-<step>``, or ``.1``, ``.2``... appended: a prefix no file uses yet.

    A checkpoint set aside as damaged (``model.ckpt-8.damaged.*``, see
    :func:`sid_ft.nets.verify.set_aside_damaged`) does not take its old name.
    """
    base = os.path.join(train_dir, f"{CHECKPOINT_BASENAME}-{int(global_step)}")
    prefix, n = base, 0
    while _prefix_taken(prefix):
        n += 1
        prefix = f"{base}.{n}"
    return prefix


def _prefix_taken(prefix: str) -> bool:
    """True when a file or temp folder that a save to ``prefix`` could write (or TF could mistake) exists."""
    set_aside = prefix + "." + DAMAGED_TAG
    return (any(not path.startswith(set_aside) for path in glob.glob(glob.escape(prefix) + ".*"))
            or os.path.exists(prefix + "_temp"))


def _state_path(path: str, train_dir: str) -> str:
    """``path`` as the state file writes it: relative when inside ``train_dir`` (a train dir can be moved)."""
    inside = os.path.commonpath([os.path.abspath(path), os.path.abspath(train_dir)]) == os.path.abspath(train_dir)
    return os.path.relpath(path, train_dir) if inside else path


def forget_checkpoints(train_dir: str | os.PathLike, dropped: Sequence[str], latest: str) -> None:
    """Rewrite ``<train_dir>/checkpoint`` without the checkpoints ``dropped``, with ``latest`` as the latest.

    Used when a resume sets damaged checkpoints aside: the state file then
    lists only the remaining checkpoints (oldest first, their timestamps kept),
    so neither a resume nor the Saver's ``max_to_keep`` rotation sees the
    others again.  Written as TensorFlow writes it (a text CheckpointState)
    and as atomically: temp file, fsync, ``os.replace``.
    """
    from google.protobuf import text_format  # comes with TensorFlow

    train_dir = os.fspath(train_dir)
    state = tf.train.get_checkpoint_state(train_dir)  # paths made absolute
    gone = {os.path.abspath(p) for p in dropped} | {os.path.abspath(latest)}
    paths = list(state.all_model_checkpoint_paths)
    stamps = list(state.all_model_checkpoint_timestamps)
    kept = [i for i, p in enumerate(paths) if os.path.abspath(p) not in gone]
    fresh = type(state)(model_checkpoint_path=_state_path(latest, train_dir),
                        last_preserved_timestamp=state.last_preserved_timestamp)
    fresh.all_model_checkpoint_paths.extend([_state_path(paths[i], train_dir) for i in kept]
                                            + [fresh.model_checkpoint_path])
    latest_stamps = [t for p, t in zip(paths, stamps) if os.path.abspath(p) == os.path.abspath(latest)]
    if len(stamps) == len(paths) and latest_stamps:  # one timestamp per path, or none at all
        fresh.all_model_checkpoint_timestamps.extend([stamps[i] for i in kept] + latest_stamps[-1:])
    atomic.write_text(os.path.join(train_dir, STATE_FILE), text_format.MessageToString(fresh), fsync=True)


def _recover_saver_state(saver, train_dir: str) -> None:
    """Let a fresh Saver know the checkpoints already in train_dir, so max_to_keep keeps rotating after a resume."""
    if saver.last_checkpoints:
        return
    state = tf.train.get_checkpoint_state(train_dir)
    if state is None:
        return
    paths = [p if os.path.isabs(p) else os.path.join(train_dir, p) for p in state.all_model_checkpoint_paths]
    ours = re.compile(re.escape(CHECKPOINT_BASENAME) + r"-\d+(\.\d+)?$")
    # Only our own step checkpoints: never rotate away a user's file that happens to be listed.
    paths = [p for p in paths if ours.match(os.path.basename(p)) and checkpoint_exists(p)]
    if paths:
        saver.recover_last_checkpoints(paths)


def _remove_stale_temp_files(train_dir: str) -> None:
    """Remove what killed saves left behind: ``model.ckpt-*.tempstate*`` files and ``model.ckpt-*_temp`` folders.

    Only called by :func:`save_checkpoint` before it writes, so no save of
    this process is in flight (one trainer per train_dir).
    """
    pattern = os.path.join(glob.escape(train_dir), CHECKPOINT_BASENAME + "-*")
    for path in glob.glob(pattern + "_temp"):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
    for path in glob.glob(pattern + ".tempstate*"):
        if os.path.isfile(path):
            _unlink_quietly(path)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _check_saver_covers_network(saver, camera: str, g_add: GAddConfig | None) -> None:
    """ValueError when ``saver`` would not save every model variable of the network described.

    Catches the restore-only-saver mistake and a graph holding only the head
    (the base network must be built in the same graph, e.g. to cache features).
    """
    var_list = getattr(saver, "_var_list", None)  # tf.compat.v1 Saver keeps what it was given
    if var_list is None:
        return
    if isinstance(var_list, Mapping):
        names = set(var_list)
    else:
        names = {v.op.name for v in var_list if hasattr(v, "op")}
    missing = sorted(set(expected_tensors(camera, g_add)) - names)
    if missing:
        raise ValueError(f"this saver would not save {len(missing)} model variable(s) of the {camera} network "
                         f"(e.g. {', '.join(missing[:4])}): build the whole network (sid_network, or sid_unet and "
                         "g_add_head) in the graph first and save with make_saver(), not a restore-only saver")


def _split_spec_info(spec_info: Mapping[str, Any]) -> tuple[str, GAddConfig | None, Any, dict]:
    """``(camera, g_add, packing, extra)`` from :func:`save_checkpoint`'s ``spec_info``.

    ``g_add`` may be a GAddConfig, its dict or None; sid_ft.json's own ``format`` and
    ``sid_ft_version`` are dropped from the extras (they are written fresh).
    """
    info = dict(spec_info)
    try:
        camera = info.pop("camera")
    except KeyError:
        raise ValueError("spec_info needs 'camera'") from None
    g_add = info.pop("g_add", None)
    if isinstance(g_add, Mapping):
        g_add = GAddConfig.from_dict(g_add)
    packing = info.pop("packing", None)
    for own in ("format", "sid_ft_version"):
        info.pop(own, None)
    return camera, g_add, packing, info


def _undo_failed_save(train_dir: str, prefix: str) -> None:
    """After a failed save: unless the state file already names ``prefix`` (the error came later, while
    old checkpoints were deleted), it still names the previous one, so remove what this save began."""
    state = tf.train.get_checkpoint_state(train_dir)
    named = state is not None and os.path.basename(state.model_checkpoint_path) == os.path.basename(prefix)
    if not named:
        for path in glob.glob(glob.escape(prefix) + ".*") + glob.glob(glob.escape(prefix) + "_temp"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink_quietly(path)
        _remove_stale_temp_files(train_dir)


def save_checkpoint(sess, saver, train_dir: str | os.PathLike, global_step: int,
                    spec_info: Mapping[str, Any]) -> str:
    """Save a full checkpoint to ``train_dir`` crash-safely; returns its prefix.

    ``saver``: from :func:`make_saver`.  ``global_step``: int step number, used
    in the name ``model.ckpt-<step>`` (``.1``, ``.2``... appended rather than
    overwrite an existing checkpoint).  ``spec_info``: what
    :func:`sid_ft.nets.model_spec.write_model_json` needs: ``camera``, ``g_add``
    (GAddConfig, dict or None), optional ``packing``; other entries are stored as
    extra keys in ``sid_ft.json``.

    Order: sid_ft.json (atomic), then the checkpoint files under the new prefix,
    then the ``checkpoint`` state file (atomic, by TensorFlow); see the module
    docstring for why a kill -9 at any point leaves the previous checkpoint
    loadable.  No ``.meta`` graph is written (sid_ft and SID's test code rebuild
    the graph in Python).
    """
    train_dir = os.fspath(train_dir)
    camera, g_add, packing, extra = _split_spec_info(spec_info)
    _check_saver_covers_network(saver, camera, g_add)
    os.makedirs(train_dir, exist_ok=True)
    write_model_json(train_dir, camera, g_add, packing=packing, extra=extra)
    _remove_stale_temp_files(train_dir)
    _recover_saver_state(saver, train_dir)
    prefix = _step_prefix(train_dir, global_step)
    try:
        return saver.save(sess, prefix, global_step=None, write_meta_graph=False, write_state=True)
    except (tf.errors.OpError, ValueError, OSError) as exc:  # e.g. ENOSPC
        _undo_failed_save(train_dir, prefix)
        raise SidFtError(train_dir, f"could not save checkpoint {os.path.basename(prefix)} "
                                    f"({first_line(exc)}); the previous checkpoint is kept") from None


def _checkpoint_prefix_of(path: str) -> str | None:
    """The checkpoint prefix a file belongs to (``<prefix>.index`` / ``<prefix>.data-*``); None for others."""
    match = re.match(r"(.*)\.(index|data-\d{5}-of-\d{5})$", path)
    return match.group(1) if match else None


def _remove_other_checkpoints(folder: str, keep: str) -> None:
    """Delete the files of every checkpoint in ``folder`` but ``keep`` (after ``best.json`` named ``keep``)."""
    for path in glob.glob(os.path.join(glob.escape(folder), CHECKPOINT_BASENAME + "-*")):
        prefix = _checkpoint_prefix_of(path)
        if prefix is not None and os.path.abspath(prefix) != os.path.abspath(keep):
            _unlink_quietly(path)


def save_best_checkpoint(sess, saver, train_dir: str | os.PathLike, global_step: int,
                         spec_info: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """Save the current weights as ``train_dir``'s best checkpoint, crash-safely; returns its prefix.

    Writes ``TRAIN_DIR/best/model.ckpt-<step>`` (never over an existing prefix) and ``sid_ft.json``
    beside it, then ``best.json`` (``record`` with ``checkpoint`` and ``step`` added), atomically: the
    moment the new best counts.  Only then are older checkpoints in ``best/`` deleted.  The state file
    and ``max_to_keep`` rotation of ``train_dir`` are not touched.  A failed save leaves the previous
    best as it was (SidFtError).
    """
    folder = os.path.join(os.fspath(train_dir), BEST_DIR)
    camera, g_add, packing, extra = _split_spec_info(spec_info)
    _check_saver_covers_network(saver, camera, g_add)
    os.makedirs(folder, exist_ok=True)
    write_model_json(folder, camera, g_add, packing=packing, extra=extra)
    _remove_stale_temp_files(folder)
    prefix = _step_prefix(folder, global_step)
    try:
        saver.save(sess, prefix, global_step=None, write_meta_graph=False, write_state=False)
    except (tf.errors.OpError, ValueError, OSError) as exc:  # e.g. ENOSPC
        for path in glob.glob(glob.escape(prefix) + ".*"):
            _unlink_quietly(path)
        raise SidFtError(folder, f"could not save the best checkpoint {os.path.basename(prefix)} "
                                 f"({first_line(exc)}); the previous best is kept") from None
    write_best_record(folder, {**record, "checkpoint": os.path.basename(prefix), "step": int(global_step)})
    _remove_other_checkpoints(folder, prefix)
    return prefix
