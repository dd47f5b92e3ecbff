"""The one place where sid_ft imports TensorFlow and tf-slim, quietly.

TensorFlow 2.x prints C++ start-up chatter (oneDNN, CPU features) and tf-slim
triggers deprecation warnings from legacy Keras layers on every call.  They
bury the messages our users need, so every sid_ft module imports TF through
this module::

    from sid_ft._tf import tf1, slim
    tf = tf1()          # tensorflow.compat.v1
    slim_ = slim()      # tf_slim

Real errors are untouched: only log levels below ERROR and the
deprecation/user warnings emitted by TensorFlow, Keras and tf-slim are
silenced.  Set ``SID_FT_TF_VERBOSE=1`` to see everything again.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from types import ModuleType

_QUIET = os.environ.get("SID_FT_TF_VERBOSE", "") in ("", "0")
_done = False


def _silence() -> None:
    """Lower TensorFlow's verbosity once per process (before its first import if possible)."""
    global _done
    if _done or not _QUIET:
        _done = True
        return
    if "tensorflow" not in sys.modules:
        # Only honoured when set before TensorFlow loads its C++ runtime.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for module in ("tensorflow", "keras", "tf_keras", "tf_slim", "absl"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
    tf = _import_tensorflow_quietly()
    tf.get_logger().setLevel("ERROR")
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    try:  # absl logging is what tf.compat.v1.logging forwards to
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    _done = True


# C++ start-up lines TensorFlow 2.21 prints even with TF_CPP_MIN_LOG_LEVEL=3
# (tensorflow/tensorflow#100442): informational only.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} .*"
    r"|To enable the following instructions: .*"
    r"|\s*)$"
)


def _import_tensorflow_quietly() -> ModuleType:
    """Import tensorflow with file descriptor 2 captured; re-emit every line that is not start-up noise."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): import plainly
        import tensorflow as tf

        return tf
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf  # noqa: F401  (C++ logging happens here)
            import tensorflow.compat.v1  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if not _STARTUP_NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
    return tf


def tf1() -> ModuleType:
    """Return ``tensorflow.compat.v1`` with TensorFlow's warnings silenced."""
    _silence()
    import tensorflow.compat.v1 as tf

    return tf


def slim() -> ModuleType:
    """Return the ``tf_slim`` module with its deprecation warnings silenced."""
    _silence()
    import tf_slim

    return tf_slim
