"""Numeric precision of the network: ``--precision auto|fp32|bf16|fp16``.

The weights stay float32 everywhere (checkpoints, restores, folding, the optimizer's
state); a 16-bit run casts them to the compute type where they are used, and casts the
network's input from and its output back to float32.  So one graph serves inference,
training and ``--export-savedmodel`` alike, and a SavedModel holds the precision it was
exported in (a grappler rewrite, by contrast, is a session setting that a SavedModel does
not carry).

* ``bf16`` — bfloat16: float32's range, 8 bits of mantissa.  Fast on CPUs with native
  bfloat16 instructions (``avx512_bf16``, or Intel AMX ``amx_bf16``), through oneDNN.
* ``fp16`` — IEEE half: fast on CUDA GPUs with tensor cores (compute capability 7.0 or
  more); training multiplies the loss by a dynamic scale so that small gradients do not
  vanish (:func:`loss_scaled`).
* ``fp32`` — float32 throughout.  On Ampere and newer GPUs TensorFlow computes float32
  convolutions in TF32 by default; ``NVIDIA_TF32_OVERRIDE=0`` makes them strict float32.
* ``auto`` — bf16 on a CPU with native bfloat16, fp16 on a CUDA GPU with tensor cores,
  fp32 otherwise; :func:`resolve` says what it picked and why.

The capability probe reads facts, never guesses from a vendor name: the CPU's feature
flags from ``/proc/cpuinfo`` (Linux; elsewhere the CPU counts as without bfloat16) and each
GPU's compute capability from ``tf.config.experimental.get_device_details``.

Usage::

    choice = resolve('auto', device='cpu')            # Precision('bf16', reason=...)
    with compute_scope(choice):                       # float32 variables, cast at use
        out, _ = sid_network(to_compute(x, choice))
    y = to_float32(out)

:func:`configure_session` sets TensorFlow's own grappler rewrite instead
(``auto_mixed_precision_onednn_bfloat16`` / ``auto_mixed_precision``) for graphs built in
float32; sid_ft's benchmarks use it to compare the two ways.
"""
from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from sid_ft.errors import SidFtError

__all__ = ["PRECISIONS", "Capabilities", "GpuInfo", "Precision", "cpu_flags", "onednn_enabled", "probe", "resolve",
           "compute_scope", "to_compute", "to_float32", "configure_session", "loss_scaled", "uses_gpu",
           "cpu_name", "describe_machine"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""The values of ``--precision``."""

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags that mean native bfloat16 arithmetic (AVX512-BF16 dot products, AMX tiles)."""

TENSOR_CORE_CAPABILITY = (7, 0)
"""The first CUDA compute capability with tensor cores (Volta)."""

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class GpuInfo:
    """One GPU TensorFlow sees: its name and CUDA compute capability (None when unknown)."""

    name: str
    compute_capability: tuple[int, int] | None

    @property
    def tensor_cores(self) -> bool:
        return self.compute_capability is not None and tuple(self.compute_capability) >= TENSOR_CORE_CAPABILITY


@dataclass(frozen=True)
class Capabilities:
    """What the machine offers for 16-bit arithmetic.

    cpu_bf16: the CPU has native bfloat16 instructions.
    cpu_note: where that came from, e.g. '/proc/cpuinfo flags avx512_bf16 amx_bf16'.
    gpus: the GPUs TensorFlow sees, in its order (``gpu:K`` is ``gpus[K]``).
    """

    cpu_bf16: bool
    cpu_note: str
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` is 'fp32', 'bf16' or 'fp16'; ``reason`` says why (for users and logs)."""

    name: str
    requested: str
    reason: str

    @property
    def dtype_name(self) -> str:
        """'float32', 'bfloat16' or 'float16'."""
        return _DTYPES[self.name]

    @property
    def is_16bit(self) -> bool:
        return self.name != "fp32"

    def to_dict(self) -> dict:
        """``{'precision', 'requested', 'dtype', 'reason'}`` for config.json / summary.json."""
        return {"precision": self.name, "requested": self.requested, "dtype": self.dtype_name, "reason": self.reason}


# --------------------------------------------------------------------------- the probe


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags in ``/proc/cpuinfo`` text (x86 ``flags``, ARM ``Features`` lines), lower case."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.lower().split())
    return flags


def onednn_enabled(environ: dict | None = None) -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on: ``TF_ENABLE_ONEDNN_OPTS`` unset (on by default on
    x86 Linux since TF 2.9) or true.  Without them TensorFlow has no fast bfloat16 convolution, and its
    grappler bfloat16 rewrite is not even registered (measured: the output stays float32)."""
    value = (os.environ if environ is None else environ).get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    return value not in ("0", "false", "off", "no")


def _cpu_bf16(system: str | None = None, cpuinfo_path: str | os.PathLike = "/proc/cpuinfo",
              environ: dict | None = None) -> tuple[bool, str]:
    system = platform.system() if system is None else system
    if system != "Linux":
        return False, f"CPU flags are read from /proc/cpuinfo on Linux only ({system}): counted as without bfloat16"
    try:
        flags = cpu_flags(Path(cpuinfo_path).read_text(errors="replace"))
    except OSError as exc:
        return False, f"cannot read {cpuinfo_path} ({exc.strerror or exc}): counted as without bfloat16"
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    if found and not onednn_enabled(environ):
        return False, (f"{cpuinfo_path} flags {' '.join(found)}, but TF_ENABLE_ONEDNN_OPTS=0 turns off the oneDNN "
                       "kernels that use them")
    if found:
        return True, f"{cpuinfo_path} flags {' '.join(found)}"
    return False, f"{cpuinfo_path} has neither {' nor '.join(CPU_BF16_FLAGS)}"


def _gpus() -> tuple[GpuInfo, ...]:
    """The GPUs TensorFlow sees, with their compute capability (tensorflow-cpu: none)."""
    import tensorflow as tf2
    from sid_ft._tf import tf1

    tf1()  # quiet TensorFlow's start-up first
    out = []
    for dev in tf2.config.list_physical_devices("GPU"):
        try:
            details = tf2.config.experimental.get_device_details(dev)
        except (ValueError, RuntimeError):  # pragma: no cover - depends on the build
            details = {}
        cc = details.get("compute_capability")
        out.append(GpuInfo(str(details.get("device_name", dev.name)), None if cc is None else tuple(int(v) for v in cc)))
    return tuple(out)


def probe(system: str | None = None, cpuinfo_path: str | os.PathLike = "/proc/cpuinfo",
          gpus: Sequence[GpuInfo] | None = None, environ: dict | None = None) -> Capabilities:
    """The machine's :class:`Capabilities` (arguments replace the real sources, for tests): native
    bfloat16 needs the CPU flag and TensorFlow's oneDNN kernels (:func:`onednn_enabled`)."""
    bf16, note = _cpu_bf16(system, cpuinfo_path, environ)
    return Capabilities(bf16, note, tuple(_gpus() if gpus is None else gpus))


def uses_gpu(device: str | None, caps: Capabilities) -> GpuInfo | None:
    """The GPU a run on ``device`` (None/'auto', 'cpu', 'gpu', 'gpu:K') uses, or None for the CPU."""
    text = (device or "auto").strip().lower()
    if text in ("cpu", "cpu:0", "/cpu:0"):
        return None
    if text == "auto":
        return caps.gpus[0] if caps.gpus else None
    if text == "gpu" or text.startswith("gpu:"):
        try:
            index = int(text.split(":", 1)[1]) if ":" in text else 0
        except ValueError:
            raise SidFtError(None, f"--device {device!r}: expected cpu, gpu or gpu:K") from None
        if index >= len(caps.gpus):
            raise SidFtError(None, f"--device {device}: TensorFlow sees {len(caps.gpus)} GPU(s)")
        return caps.gpus[index]
    raise SidFtError(None, f"--device {device!r}: expected cpu, gpu or gpu:K")


def resolve(precision: str | None, device: str | None = None, caps: Capabilities | None = None) -> Precision:
    """The precision to run ``precision`` ('auto', 'fp32', 'bf16', 'fp16'; None = 'fp32') in on ``device``.

    ``auto``: bf16 on a CPU with native bfloat16, fp16 on a CUDA GPU with tensor cores, else fp32.
    An explicit 16-bit choice is honoured where it cannot be fast, with the reason saying so.
    ``caps`` defaults to :func:`probe` (the probe is only run when the answer depends on it).
    SidFtError for an unknown value.
    """
    requested = "fp32" if precision is None else str(precision).strip().lower()
    if requested not in PRECISIONS:
        raise SidFtError(None, f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return Precision("fp32", requested, "float32 as asked")
    caps = probe() if caps is None else caps
    gpu = uses_gpu(device, caps)
    if gpu is not None:
        where = f"GPU {gpu.name} (compute capability " + (
            "unknown" if gpu.compute_capability is None else "%d.%d" % tuple(gpu.compute_capability)) + ")"
        fast16 = "fp16" if gpu.tensor_cores else None
    else:
        where = f"CPU ({caps.cpu_note})"
        fast16 = "bf16" if caps.cpu_bf16 else None
    if requested == "auto":
        if fast16 is None:
            return Precision("fp32", requested, f"auto: float32, no fast 16-bit arithmetic on the {where}")
        kind = "bfloat16" if fast16 == "bf16" else "float16 on tensor cores"
        return Precision(fast16, requested, f"auto: {kind} on the {where}")
    if requested == fast16:
        return Precision(requested, requested, f"{_DTYPES[requested]} as asked, native on the {where}")
    return Precision(requested, requested, f"{_DTYPES[requested]} as asked, but the {where} has no fast "
                                           f"{_DTYPES[requested]} arithmetic: expect it no faster than float32")


# --------------------------------------------------------------------------- building graphs


def _dtype(precision: Precision):
    from sid_ft._tf import tf1

    return tf1().as_dtype(precision.dtype_name)


@contextlib.contextmanager
def compute_scope(precision: Precision | None) -> Iterator[None]:
    """Variables created inside are float32 (checkpoints, restores and optimizers see float32) and
    are read cast to the compute type of ``precision``; a no-op for fp32 or None.

    Re-enters the current variable scope (the root, for SID's released names) with a custom
    getter, so every model variable — TF-Slim's and plain ``get_variable`` ones — is covered.
    Non-float variables (e.g. ``global_step``) are left alone.
    """
    if precision is None or not precision.is_16bit:
        yield
        return
    from sid_ft._tf import tf1

    tf = tf1()
    compute = _dtype(precision)

    def float32_storage(getter, name, *args, **kwargs):
        dtype = kwargs.get("dtype")
        if dtype is not None and not tf.as_dtype(dtype).is_floating:
            return getter(name, *args, **kwargs)
        kwargs["dtype"] = tf.float32
        variable = getter(name, *args, **kwargs)
        return tf.cast(variable, compute, name=f"{variable.op.name}/read_{precision.name}")

    with tf.variable_scope(tf.get_variable_scope(), custom_getter=float32_storage, auxiliary_name_scope=False):
        yield


def to_compute(tensor, precision: Precision | None):
    """``tensor`` (float32) cast to the compute type (unchanged for fp32)."""
    if precision is None or not precision.is_16bit:
        return tensor
    from sid_ft._tf import tf1

    return tf1().cast(tensor, _dtype(precision), name=f"to_{precision.name}")


def to_float32(tensor):
    """``tensor`` cast back to float32 (unchanged when it is float32)."""
    from sid_ft._tf import tf1

    tf = tf1()
    return tensor if tensor.dtype.base_dtype == tf.float32 else tf.cast(tensor, tf.float32, name="to_fp32")


def configure_session(config, precision: Precision | None, device_is_gpu: bool = False):
    """Switch on TensorFlow's grappler mixed-precision rewrite in ``config`` (a ``ConfigProto``) for a
    graph built in float32: ``auto_mixed_precision_onednn_bfloat16`` for bf16 (CPU, needs oneDNN,
    i.e. ``TF_ENABLE_ONEDNN_OPTS`` not 0), ``auto_mixed_precision`` for fp16 on a CUDA GPU.
    Both toggles are off by default and must be set to ``RewriterConfig.ON``.  Returns ``config``.

    The rewrite happens when the session runs the graph: a SavedModel exported from such a
    session is still float32.  sid_ft's own graphs use explicit casts (:func:`compute_scope`);
    this is the comparison the benchmarks make.
    """
    if precision is None or not precision.is_16bit:
        return config
    from tensorflow.core.protobuf import rewriter_config_pb2

    options = config.graph_options.rewrite_options
    if precision.name == "bf16":
        options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    elif device_is_gpu:
        options.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    else:
        raise SidFtError(None, "grappler's float16 rewrite only acts on CUDA GPUs; use bf16 on a CPU")
    return config


def loss_scaled(optimizer, precision: Precision | None):
    """``optimizer`` wrapped for fp16 training with a dynamic loss scale (TensorFlow's
    ``MixedPrecisionLossScaleOptimizer``: the loss is multiplied by a scale, the gradients divided
    by it; a step with non-finite gradients is skipped and the scale halved; after 2000 finite
    steps it doubles).  bf16 has float32's range and needs no scaling; fp32 neither.

    The scale's two variables are moved from the global to the local variables, so checkpoints
    stay the same whatever the precision (a run can resume in another precision); the scale
    starts again from 2^15 after a resume and finds its level within a few steps.
    """
    if precision is None or precision.name != "fp16":
        return optimizer
    from sid_ft._tf import tf1

    tf = tf1()
    graph = tf.get_default_graph()
    before = set(id(v) for v in tf.global_variables())
    wrapped = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, "dynamic")
    global_list = graph.get_collection_ref(tf.GraphKeys.GLOBAL_VARIABLES)
    moved = [v for v in global_list if id(v) not in before]
    for v in moved:
        global_list.remove(v)
        graph.add_to_collection(tf.GraphKeys.LOCAL_VARIABLES, v)
    return wrapped


# --------------------------------------------------------------------------- reporting


def cpu_name() -> str:
    """The CPU's model name ('model name' in /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine(caps: Capabilities | None = None) -> str:
    """One line for benchmark output: CPU model, usable cores, bfloat16, GPUs, load, TensorFlow version."""
    import tensorflow as tf2

    caps = probe() if caps is None else caps
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = ", ".join(f"{g.name} (cc {'%d.%d' % g.compute_capability if g.compute_capability else '?'})"
                     for g in caps.gpus) or "no GPU"
    load = " load average %.2f %.2f %.2f;" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"{cpu_name()}, {cores} cores ({'bfloat16: ' + caps.cpu_note if caps.cpu_bf16 else 'no native bfloat16'}); "
            f"{gpus};{load} TensorFlow {tf2.__version__}, oneDNN opts "
            f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)')}")
