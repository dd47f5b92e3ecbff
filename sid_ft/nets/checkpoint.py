"""Find, check, restore, save and inspect SID / sid_ft checkpoints.

Vocabulary and behaviour follow TF-Slim's ``train_image_classifier.py``:

* :func:`restore_pretrained` is ``--checkpoint_path`` with
  ``--checkpoint_exclude_scopes g_add``: it restores only the base network's
  *model variables* (never Adam slots, ``beta1_power``/``beta2_power`` or
  ``global_step``), after checking that every one of them is in the
  checkpoint with the right shape, then initialises every other variable.
* :func:`make_saver` is a full Saver over all global variables (base, g_add,
  optimizer state, ``global_step``); a fine-tuned checkpoint keeps the released
  tensor names, so it still loads into SID's own test code.
* ``sid_ft.json`` next to the checkpoint says which graph to build (camera,
  packing, g_add configuration, sid_ft version).  A released SID checkpoint
  has none and is recognised from its tensors as plain SID.

Crash safety of :func:`save_checkpoint` (kill -9 at any moment leaves the
previous checkpoint loadable).  How ``tf.compat.v1.train.Saver`` writes a V2
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
"""
from __future__ import annotations

import functools
import glob
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence


from sid_ft import __version__
from sid_ft._tf import slim as _slim_module
from sid_ft._tf import tf1
from sid_ft.io import atomic
from sid_ft.errors import SidFtError
from sid_ft.nets.model import CAMERAS, G_ADD_SCOPE, GAddConfig, camera_spec, expected_variables, fold_g_add

tf = tf1()
slim = _slim_module()

__all__ = [
    "MODEL_JSON",
    "CHECKPOINT_BASENAME",
    "ModelSpec",
    "resolve_checkpoint",
    "list_tensors",
    "read_model_spec",
    "check_compatible",
    "variables_to_restore",
    "restore_pretrained",
    "restore_model",
    "restore_folded",
    "make_saver",
    "save_checkpoint",
    "write_model_json",
    "read_model_json",
    "classify_tensor",
    "inspect_checkpoint",
    "format_inspection",
]

MODEL_JSON = "sid_ft.json"
"""Name of the file, beside the checkpoint, that says which graph the checkpoint belongs to."""

CHECKPOINT_BASENAME = "model.ckpt"
"""Checkpoint prefix basename, as in the released SID checkpoints (``model.ckpt-<step>`` when saved by us)."""

_STATE_FILE = "checkpoint"
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


# --------------------------------------------------------------------------- finding


def _prefix_exists(prefix: str) -> bool:
    return os.path.isfile(prefix + ".index")


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """The checkpoint prefix that ``path`` designates.

    ``path`` may be: a folder with a ``checkpoint`` state file (its latest
    checkpoint; a path in it that does not exist, as in the released SID
    folders, is also tried relative to the folder); a folder without state file
    holding exactly one ``*.index``; a prefix (``.../model.ckpt``); or one of the
    checkpoint's files (``.index``, ``.data-*``, ``.meta``).

    Raises SidFtError listing every place looked when none holds a checkpoint.
    """
    path = os.fspath(path)
    looked: list[str] = []
    if os.path.isdir(path):
        state_file = os.path.join(path, _STATE_FILE)
        looked.append(state_file)
        if os.path.isfile(state_file):
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
                if _prefix_exists(cand):
                    return cand
            raise SidFtError(path, f"the checkpoint state file names {named!r} but no checkpoint "
                                   f"is there; looked for: {', '.join(looked[1:])}")
        indexes = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
        looked.append(os.path.join(path, "*.index"))
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        if len(indexes) > 1:
            names = ", ".join(os.path.basename(i)[: -len(".index")] for i in indexes)
            raise SidFtError(path, f"no checkpoint state file and several checkpoints ({names}); "
                                   "pass one prefix, e.g. " + indexes[-1][: -len(".index")])
        raise SidFtError(path, "no checkpoint found; looked for: " + ", ".join(looked))
    prefix = re.sub(r"\.(index|meta|data-\d{5}-of-\d{5})$", "", path)
    looked.append(prefix + ".index")
    if _prefix_exists(prefix):
        return prefix
    raise SidFtError(path, "no checkpoint found; looked for: " + ", ".join(looked)
                     + " (a checkpoint folder, a prefix like .../model.ckpt, or one of its files)")


def list_tensors(prefix: str) -> dict[str, list[int]]:
    """``{name: shape}`` of every tensor stored under ``prefix`` (reads only the .index file)."""
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as exc:
        raise SidFtError(prefix, f"unreadable checkpoint ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


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
        "format": "sid_ft.nets.model/1",
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


def _infer_camera(tensors: Mapping[str, list[int]], prefix: str) -> str:
    shape = tensors.get("g_conv1_1/weights")
    if shape is None:
        raise SidFtError(prefix, "not a SID checkpoint: it has no tensor g_conv1_1/weights")
    for name, spec in CAMERAS.items():
        if len(shape) == 4 and shape[2] == spec.in_channels:
            return name
    raise SidFtError(prefix, f"g_conv1_1/weights has shape {shape}: {shape[2] if len(shape) == 4 else '?'} "
                             "input channels match no SID model ("
                             + ", ".join(f"{n}: {s.in_channels}" for n, s in CAMERAS.items()) + ")")


def _infer_g_add(tensors: Mapping[str, list[int]], prefix: str, camera: str) -> GAddConfig | None:
    """The g_add design from its tensors.

    The head: depth and width from ``g_add_conv*``, whether it sees the packed input from the
    first layer's input channels, ``linear`` from ``g_add_linear``; no ``g_add_out`` means no
    head.  Inside the network: ``affine`` from ``g_add/<conv>/scale``, the rank from the widest
    ``g_add/<conv>/down/weights`` (each conv's rank is ``min(rank, its output channels)``).
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
    camera = _infer_camera(tensors, prefix)
    g_add = _infer_g_add(tensors, prefix, camera)
    info = read_model_json(os.path.dirname(prefix))
    if info is not None:
        json_path = os.path.join(os.path.dirname(prefix), MODEL_JSON)
        try:
            json_camera = str(info["camera"]).lower()
            camera_spec(json_camera)
            json_g_add = None if info.get("g_add") is None else GAddConfig.from_dict(info["g_add"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SidFtError(json_path, f"invalid {MODEL_JSON} ({exc})") from None
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


_BASE_NAMES: frozenset[str] | None = None


def _base_names() -> frozenset[str]:
    global _BASE_NAMES
    if _BASE_NAMES is None:
        _BASE_NAMES = frozenset(_expected("sony", None))  # same names for every camera
    return _BASE_NAMES


# --------------------------------------------------------------------------- checking


@functools.lru_cache(maxsize=16)
def _expected_cached(camera: str, g_add: tuple | None) -> dict[str, list[int]]:
    return expected_variables(camera, None if g_add is None else GAddConfig(*g_add))


def _expected(camera: str, g_add: GAddConfig | None) -> dict[str, list[int]]:
    """:func:`sid_ft.nets.model.expected_variables`, cached (building the throwaway graph takes a moment)."""
    return _expected_cached(str(camera).lower(), None if g_add is None else tuple(g_add.to_dict().values()))


def _mismatches(prefix: str, expected: Mapping[str, Sequence[int]],
                dtypes: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of ``prefix`` against ``{name: shape}``: missing tensors, wrong shapes/dtypes."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        stored_dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as exc:
        raise SidFtError(prefix, f"unreadable checkpoint ({_first_line(exc)})") from None
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
    problems = _mismatches(prefix, expected, dtypes)
    if problems:
        tensors = list_tensors(prefix)
        hint = ""
        try:
            found = _infer_camera(tensors, prefix)
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


def _restore(sess, prefix: str, var_list: list) -> list[str]:
    if not var_list:
        raise ValueError("no model variables to restore: build the network (sid_ft.nets.model) in this graph first")
    check_compatible(prefix, var_list)
    restored = set(var_list)
    saver = tf.train.Saver(var_list=var_list, sharded=False)
    try:
        saver.restore(sess, prefix)
    except tf.errors.OpError as exc:  # e.g. a data file truncated after the index was checked
        raise SidFtError(prefix, f"could not restore ({_first_line(exc)})") from None
    others = [v for v in tf.global_variables() if v not in restored]
    if others:
        sess.run(tf.variables_initializer(others))
    if tf.local_variables():
        sess.run(tf.local_variables_initializer())
    return [_var_name(v) for v in var_list]


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


def restore_folded(sess, spec: "ModelSpec") -> GAddConfig | None:
    """Restore the checkpoint of ``spec`` into a graph built for ``spec.g_add.folded()`` (inference).

    Reads every tensor of ``spec``'s full network from ``spec.prefix`` (checked first like
    :func:`restore_model`), folds the additions inside the network into the convolutions
    (:func:`sid_ft.nets.model.fold_g_add`, in memory: the checkpoint is not changed) and loads the
    result into the current graph's model variables, which must be exactly the folded network's.
    Returns the folded design (None: plain SID).
    """
    expected = _expected(spec.camera, spec.g_add)
    problems = _mismatches(spec.prefix, expected)
    if problems:
        raise SidFtError(spec.prefix, "does not fit the network: " + "; ".join(problems))
    try:
        reader = tf.train.load_checkpoint(spec.prefix)
        values = {name: reader.get_tensor(name) for name in expected}
    except (tf.errors.OpError, ValueError) as exc:
        raise SidFtError(spec.prefix, f"could not restore ({_first_line(exc)})") from None
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


# --------------------------------------------------------------------------- saving


def make_saver(max_to_keep: int = 5):
    """A full ``tf.train.Saver`` over all global variables: base, g_add, optimizer state, global_step.

    Paths in the ``checkpoint`` state file are relative, so a train_dir can be moved.
    Never use the restore-only saver of :func:`restore_pretrained` to save:
    the g_add weights would be lost.
    """
    return tf.train.Saver(var_list=tf.global_variables(), max_to_keep=max_to_keep,
                          save_relative_paths=True)


def _step_prefix(train_dir: str, global_step: int) -> str:
    base = os.path.join(train_dir, f"{CHECKPOINT_BASENAME}-{int(global_step)}")
    prefix, n = base, 0
    while glob.glob(glob.escape(prefix) + ".*") or os.path.exists(prefix + "_temp"):
        n += 1
        prefix = f"{base}.{n}"
    return prefix


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
    paths = [p for p in paths if ours.match(os.path.basename(p)) and _prefix_exists(p)]
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
        names = {_var_name(v) for v in var_list if hasattr(v, "op")}
    missing = sorted(set(_expected(camera, g_add)) - names)
    if missing:
        raise ValueError(f"this saver would not save {len(missing)} model variable(s) of the {camera} network "
                         f"(e.g. {', '.join(missing[:4])}): build the whole network (sid_network, or sid_unet and "
                         "g_add_head) in the graph first and save with make_saver(), not a restore-only saver")


def save_checkpoint(sess, saver, train_dir: str | os.PathLike, global_step: int,
                    spec_info: Mapping[str, Any]) -> str:
    """Save a full checkpoint to ``train_dir`` crash-safely; returns its prefix.

    ``saver``: from :func:`make_saver`.  ``global_step``: int step number, used
    in the name ``model.ckpt-<step>`` (``.1``, ``.2``... appended rather than
    overwrite an existing checkpoint).  ``spec_info``: what :func:`write_model_json`
    needs: ``camera``, ``g_add`` (GAddConfig, dict or None), optional
    ``packing``; other entries are stored as extra keys in ``sid_ft.json``.

    Order: sid_ft.json (atomic), then the checkpoint files under the new prefix,
    then the ``checkpoint`` state file (atomic, by TensorFlow); see the module
    docstring for why a kill -9 at any point leaves the previous checkpoint
    loadable.  No ``.meta`` graph is written (sid_ft and SID's test code rebuild
    the graph in Python).
    """
    train_dir = os.fspath(train_dir)
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
    _check_saver_covers_network(saver, camera, g_add)
    os.makedirs(train_dir, exist_ok=True)
    write_model_json(train_dir, camera, g_add, packing=packing, extra=info)
    _remove_stale_temp_files(train_dir)
    _recover_saver_state(saver, train_dir)
    prefix = _step_prefix(train_dir, global_step)
    try:
        saved = saver.save(sess, prefix, global_step=None, write_meta_graph=False, write_state=True)
    except (tf.errors.OpError, ValueError, OSError) as exc:
        # e.g. ENOSPC: unless the state file already names the new checkpoint (the error came later, while
        # old checkpoints were deleted), it still names the previous one: remove what this save began
        state = tf.train.get_checkpoint_state(train_dir)
        named = state is not None and os.path.basename(state.model_checkpoint_path) == os.path.basename(prefix)
        if not named:
            for path in glob.glob(glob.escape(prefix) + ".*") + glob.glob(glob.escape(prefix) + "_temp"):
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink_quietly(path)
            _remove_stale_temp_files(train_dir)
        raise SidFtError(train_dir, f"could not save checkpoint {os.path.basename(prefix)} "
                                    f"({_first_line(exc)}); the previous checkpoint is kept") from None
    return saved


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --------------------------------------------------------------------------- inspecting


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
    groups: dict[str, list[tuple[str, list[int]]]] = {"base": [], "g_add": [], "optimizer": [], "other": []}
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
    result["problems"] = _mismatches(prefix, _expected(spec.camera, spec.g_add))
    result["fits"] = not result["problems"]
    return result


def format_inspection(info: Mapping[str, Any]) -> str:
    """Human-readable text of :func:`inspect_checkpoint`'s dict."""
    lines = [f"checkpoint: {info['prefix']}"]
    if info.get("json") is not None:
        lines.append(f"{MODEL_JSON}: " + json.dumps(info["json"], sort_keys=True))
    for group in ("base", "g_add", "optimizer", "other"):
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
