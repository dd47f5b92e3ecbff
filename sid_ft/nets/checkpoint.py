"""Find, check and restore SID / sid_ft checkpoints.

Vocabulary and behaviour follow TF-Slim's ``train_image_classifier.py``:

* :func:`restore_pretrained` is ``--checkpoint_path`` with
  ``--checkpoint_exclude_scopes g_add``: it restores only the base network's
  *model variables* (never Adam slots, ``beta1_power``/``beta2_power`` or
  ``global_step``), after checking that every one of them is in the
  checkpoint with the right shape, then initialises every other variable.
* :func:`restore_model` restores every model variable (base and g_add) for
  inference; :func:`restore_folded` loads a checkpoint with additions inside the
  network into the folded network.

Every restore first checks that the checkpoint can be read
(:func:`check_checkpoint`, without TensorFlow: the index, the data files'
lengths, a released model's size, the CRC32Cs when that takes under a second),
and turns TensorFlow's own read errors into a :class:`SidFtError` naming the
damaged file (:func:`restore_error`); so does :func:`list_tensors`, for the
lengths, which every reader of a checkpoint calls first.

Saving lives in :mod:`sid_ft.nets.checkpoint_save`, which graph a checkpoint
belongs to (``sid_ft.json``) in :mod:`sid_ft.nets.model_spec`, and listing a
checkpoint's tensors for people in :mod:`sid_ft.nets.inspect`.
"""
from __future__ import annotations

import functools
import glob
import os
import re
from typing import Any, Iterable, Mapping, Sequence

from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.nets.best import best_prefix
from sid_ft.nets.g_add.config import G_ADD_SCOPE, GAddConfig
from sid_ft.nets.g_add.fold import fold_g_add
from sid_ft.nets.network import expected_variables
from sid_ft.nets.unet import CAMERAS
from sid_ft.nets.verify import verify_released

tf = tf1()
slim = _slim_module()

__all__ = [
    "STATE_FILE",
    "checkpoint_exists",
    "check_checkpoint",
    "check_compatible",
    "expected_tensors",
    "first_line",
    "infer_camera",
    "list_tensors",
    "mismatches",
    "resolve_checkpoint",
    "restore_error",
    "restore_folded",
    "restore_model",
    "restore_pretrained",
    "variables_to_restore",
]

STATE_FILE = "checkpoint"
"""The state file TensorFlow keeps beside checkpoints: the latest one and the ones kept, oldest first."""


# --------------------------------------------------------------------------- finding


def checkpoint_exists(prefix: str) -> bool:
    """True when ``<prefix>.index`` is a file (what TensorFlow needs to read a V2 checkpoint)."""
    return os.path.isfile(prefix + ".index")


def _from_state_file(path: str, looked: list[str]) -> str:
    """The checkpoint that the ``checkpoint`` state file in folder ``path`` names; SidFtError otherwise.

    A named path that does not exist (as in the released SID folders) is also tried
    relative to the folder.  Every place tried is appended to ``looked``.
    """
    state_file = os.path.join(path, STATE_FILE)
    try:
        state = tf.train.get_checkpoint_state(path)
    except Exception as exc:  # text_format.ParseError and friends
        raise SidFtError(state_file, f"unreadable checkpoint state file ({exc})") from None
    if state is None or not state.model_checkpoint_path:
        raise SidFtError(state_file, "checkpoint state file names no checkpoint")
    named = state.model_checkpoint_path
    candidates = [named if os.path.isabs(named) else os.path.join(path, named),
                  os.path.join(path, os.path.basename(named))]
    for cand in dict.fromkeys(os.path.normpath(c) for c in candidates):
        looked.append(cand + ".index")
        if checkpoint_exists(cand):
            return cand
    raise SidFtError(path, f"the checkpoint state file names {named!r} but no checkpoint "
                           f"is there; looked for: {', '.join(looked[1:])}")


def _from_folder(path: str) -> str:
    """The checkpoint in folder ``path``: the state file's, else the one ``*.index``; SidFtError otherwise."""
    state_file = os.path.join(path, STATE_FILE)
    looked = [state_file]
    if os.path.isfile(state_file):
        return _from_state_file(path, looked)
    indexes = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
    looked.append(os.path.join(path, "*.index"))
    if len(indexes) == 1:
        return indexes[0][: -len(".index")]
    if len(indexes) > 1:
        names = ", ".join(os.path.basename(i)[: -len(".index")] for i in indexes)
        raise SidFtError(path, f"no checkpoint state file and several checkpoints ({names}); "
                               "pass one prefix, e.g. " + indexes[-1][: -len(".index")])
    raise SidFtError(path, "no checkpoint found; looked for: " + ", ".join(looked))


def resolve_checkpoint(path: str | os.PathLike, latest: bool = False) -> str:
    """The checkpoint prefix that ``path`` designates.

    ``path`` may be: a train dir with a best checkpoint (``best/best.json``,
    :mod:`sid_ft.nets.best`: the best on its held-out pairs; with ``latest``, its
    latest instead); a folder with a ``checkpoint`` state file (its latest
    checkpoint; a path in it that does not exist, as in the released SID
    folders, is also tried relative to the folder); a folder without state file
    holding exactly one ``*.index``; a prefix (``.../model.ckpt``); or one of the
    checkpoint's files (``.index``, ``.data-*``, ``.meta``).

    Raises SidFtError listing every place looked when none holds a checkpoint.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return (None if latest else best_prefix(path)) or _from_folder(path)
    prefix = re.sub(r"\.(index|meta|data-\d{5}-of-\d{5})$", "", path)
    if checkpoint_exists(prefix):
        return prefix
    raise SidFtError(path, "no checkpoint found; looked for: " + prefix + ".index"
                     + " (a checkpoint folder, a prefix like .../model.ckpt, or one of its files)")


def list_tensors(prefix: str, *, verify: bool = True) -> dict[str, list[int]]:
    """``{name: shape}`` of every tensor stored under ``prefix`` (reads the .index file).

    With ``verify``, first :func:`check_checkpoint` without checksums (the
    index, the data files' lengths: milliseconds), so a damaged checkpoint is
    named before anything is built from it; ``verify=False`` lists a damaged
    one's tensors too (``inspect_checkpoint.py``).
    """
    if verify:
        check_checkpoint(prefix, checksums=False)
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError, IndexError) as exc:
        raise restore_error(prefix, exc) from None


_CHECKED: dict[tuple, bool] = {}
"""Checkpoints this process found readable: their files' (path, inode, size, mtime, ctime) -> CRC32Cs checked too."""


def _files_state(prefix: str) -> tuple | None:
    """What identifies the current contents of ``prefix``'s index and data files; None when one is missing."""
    paths = [prefix + ".index", *sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))]
    try:
        stats = [(path, os.stat(path)) for path in paths]
    except OSError:
        return None
    return tuple((p, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for p, s in stats)


def check_checkpoint(prefix: str, *, checksums: bool | None = None) -> None:
    """SidFtError(file, one-line reason) when the checkpoint ``prefix`` cannot be read; nothing when it can.

    Without TensorFlow (:func:`sid_ft.nets.verify.verify_released`): the index
    parses, every data file is there and as long as the index says; a released
    SID model (no ``sid_ft.json``, the released layout) shorter than released is
    "not downloaded completely"; with ``checksums`` every tensor's CRC32C too
    (None: when :func:`~sid_ft.nets.verify.checksums_affordable` says it takes
    under a second, e.g. the released Sony model's 88 MB).  A checkpoint found
    readable is not read again in this process while its files stay unchanged.
    """
    state = _files_state(prefix)
    done = _CHECKED.get(state)
    if done is not None and (done or checksums is False):
        return
    report = verify_released(prefix, checksums=checksums)
    report.raise_first()
    if state is not None:
        _CHECKED[state] = report.checksums


def restore_error(prefix: str, exc: BaseException) -> SidFtError:
    """A TensorFlow error while reading checkpoint ``prefix``, as a one-line SidFtError naming the damaged file.

    The last line of defence (e.g. a data file cut short after it was checked,
    or damage the skipped checksums would have found): every tensor is checked
    (:func:`sid_ft.nets.verify.verify_released` with checksums) to name the
    file, the tensor and the bytes; else TensorFlow's first line, for ``prefix``.
    """
    report = verify_released(prefix, checksums=True)
    if not report.ok:
        return report.errors[0]
    return SidFtError(prefix, f"could not restore ({first_line(exc)})")


def first_line(exc: BaseException) -> str:
    """The first line of a (TensorFlow) exception's message, for a one-line SidFtError reason."""
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def infer_camera(tensors: Mapping[str, list[int]], prefix: str) -> str:
    """'sony' or 'fuji' from the input channels of ``g_conv1_1/weights`` in ``{name: shape}``.

    SidFtError (about ``prefix``) when the tensor is missing or its channels match no SID model.
    """
    shape = tensors.get("g_conv1_1/weights")
    if shape is None:
        raise SidFtError(prefix, "not a SID checkpoint: it has no tensor g_conv1_1/weights")
    for name, spec in CAMERAS.items():
        if len(shape) == 4 and shape[2] == spec.in_channels:
            return name
    raise SidFtError(prefix, f"g_conv1_1/weights has shape {shape}: {shape[2] if len(shape) == 4 else '?'} "
                             "input channels match no SID model ("
                             + ", ".join(f"{n}: {s.in_channels}" for n, s in CAMERAS.items()) + ")")


# --------------------------------------------------------------------------- checking


@functools.lru_cache(maxsize=16)
def _expected_cached(camera: str, g_add: tuple | None) -> dict[str, list[int]]:
    return expected_variables(camera, None if g_add is None else GAddConfig(*g_add))


def expected_tensors(camera: str, g_add: GAddConfig | None) -> dict[str, list[int]]:
    """:func:`sid_ft.nets.network.expected_variables`, cached (building the throwaway graph takes a moment)."""
    return _expected_cached(str(camera).lower(), None if g_add is None else tuple(g_add.to_dict().values()))


def mismatches(prefix: str, expected: Mapping[str, Sequence[int]],
               dtypes: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of ``prefix`` against ``{name: shape}``: missing tensors, wrong shapes/dtypes."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        stored_dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError, IndexError) as exc:
        raise restore_error(prefix, exc) from None
    problems = []
    for name in sorted(expected):
        want = [int(d) for d in expected[name]]
        if name not in shapes:
            problems.append(f"missing {name} {want}")
            continue
        have = [int(d) for d in shapes[name]]
        if have != want:
            problems.append(f"{name}: checkpoint {have}, network {want}")
        elif dtypes is not None and name in dtypes and stored_dtypes[name].base_dtype != dtypes[name]:
            problems.append(f"{name}: checkpoint dtype {stored_dtypes[name].name}, "
                            f"network {dtypes[name].name}")
    return problems


def _var_name(v) -> str:
    return v.op.name


def check_compatible(prefix: str, var_list: Iterable | Mapping[str, Any]) -> None:
    """Raise SidFtError listing every tensor of ``var_list`` missing from ``prefix`` or of another shape.

    ``var_list``: variables (checked under ``v.op.name``) or ``{checkpoint_name: variable}``.
    Reads only the checkpoint's index; does nothing to the graph.
    """
    items = var_list.items() if isinstance(var_list, Mapping) else ((_var_name(v), v) for v in var_list)
    expected, dtypes = {}, {}
    for name, var in items:
        expected[name] = var.shape.as_list()
        dtypes[name] = var.dtype.base_dtype
    problems = mismatches(prefix, expected, dtypes)
    if problems:
        tensors = list_tensors(prefix)
        hint = ""
        try:
            found = infer_camera(tensors, prefix)
            hint = f" (the checkpoint looks like a {found} model)"
        except SidFtError:
            pass
        raise SidFtError(prefix, f"does not fit the network{hint}: {len(problems)} mismatch(es): "
                         + "; ".join(problems))


# --------------------------------------------------------------------------- restoring


def variables_to_restore(exclude_scopes: Sequence[str] = (G_ADD_SCOPE,)) -> list:
    """The current graph's model variables whose names start with none of ``exclude_scopes``.

    Like TF-Slim's ``_get_init_fn``: built from ``slim.get_model_variables()``,
    so optimizer slots, ``beta1_power``/``beta2_power`` and ``global_step`` are
    never among them.
    """
    if isinstance(exclude_scopes, str):
        exclude_scopes = [s.strip() for s in exclude_scopes.split(",") if s.strip()]
    return [v for v in slim.get_model_variables()
            if not any(_var_name(v).startswith(s) for s in exclude_scopes)]


def _initialize_others(sess, restored_names: set[str]) -> None:
    """Initialise every global variable not in ``restored_names``, and the local ones."""
    others = [v for v in tf.global_variables() if _var_name(v) not in restored_names]
    if others:
        sess.run(tf.variables_initializer(others))
    if tf.local_variables():
        sess.run(tf.local_variables_initializer())


def _restore(sess, prefix: str, var_list: list) -> list[str]:
    if not var_list:
        raise ValueError("no model variables to restore: build the network (sid_ft.nets.network) in this graph first")
    check_checkpoint(prefix)
    check_compatible(prefix, var_list)
    saver = tf.train.Saver(var_list=var_list, sharded=False)
    try:
        saver.restore(sess, prefix)
    except (tf.errors.OpError, ValueError, IndexError) as exc:  # e.g. a data file truncated after the check
        raise restore_error(prefix, exc) from None
    names = [_var_name(v) for v in var_list]
    _initialize_others(sess, set(names))
    return names


def restore_pretrained(sess, prefix: str | os.PathLike, exclude_scopes: Sequence[str] = (G_ADD_SCOPE,)) -> list[str]:
    """Restore the pretrained base network into ``sess``'s graph; initialise everything else.

    ``prefix``: anything :func:`resolve_checkpoint` accepts.  Restores
    :func:`variables_to_restore` (model variables not under
    ``exclude_scopes``) after :func:`check_compatible` -- so a Fuji checkpoint
    for the Sony network, or a missing tensor, fails before anything runs, with
    every mismatch listed.  Then initialises every other global variable
    (g_add, optimizer slots, beta powers, global_step) and the local ones.

    Returns the restored variable names.
    """
    prefix = resolve_checkpoint(prefix)
    return _restore(sess, prefix, variables_to_restore(exclude_scopes))


def restore_model(sess, prefix: str | os.PathLike) -> list[str]:
    """Restore every model variable of the current graph (base and g_add) for inference.

    Checks first like :func:`restore_pretrained`; other global variables
    (e.g. a ``global_step``) are initialised.  Returns the restored names.
    """
    prefix = resolve_checkpoint(prefix)
    return _restore(sess, prefix, list(slim.get_model_variables()))


def restore_folded(sess, spec) -> GAddConfig | None:
    """Restore the checkpoint of ``spec`` into a graph built for ``spec.g_add.folded()`` (inference).

    ``spec``: a :class:`sid_ft.nets.model_spec.ModelSpec` (camera, g_add, prefix).
    Reads every tensor of ``spec``'s full network from ``spec.prefix`` (checked first like
    :func:`restore_model`), folds the additions inside the network into the convolutions
    (:func:`sid_ft.nets.g_add.fold.fold_g_add`, in memory: the checkpoint is not changed) and
    loads the result into the current graph's model variables, which must be exactly the folded
    network's.  Returns the folded design (None: plain SID).
    """
    check_checkpoint(spec.prefix)
    expected = expected_tensors(spec.camera, spec.g_add)
    problems = mismatches(spec.prefix, expected)
    if problems:
        raise SidFtError(spec.prefix, "does not fit the network: " + "; ".join(problems))
    try:
        reader = tf.train.load_checkpoint(spec.prefix)
        values = {name: reader.get_tensor(name) for name in expected}
    except (tf.errors.OpError, ValueError, IndexError) as exc:
        raise restore_error(spec.prefix, exc) from None
    folded, config = fold_g_add(values, spec.camera, spec.g_add)
    variables = {_var_name(v): v for v in slim.get_model_variables()}
    if set(variables) != set(folded):
        raise ValueError("the graph is not the folded network of this checkpoint: build "
                         "sid_network(camera, g_add=spec.g_add.folded()) first")
    for name, var in variables.items():
        var.load(folded[name], sess)
    others = [v for v in tf.global_variables() if _var_name(v) not in folded]
    if others:
        sess.run(tf.variables_initializer(others))
    return config
