"""sid_ft: fine-tune and run Learning-to-See-in-the-Dark models on your own RAW photos.

The public API::

    from sid_ft import train, TrainOptions, run_inference, InferOptions, Predictor, GAddConfig, SidFtError

    result = train(TrainOptions(dataset_dir="my_pairs", pretrained="checkpoints/Sony/", train_dir="checkpoints/mycam"))
    run_inference(InferOptions(checkpoint=result.checkpoint, inputs=["photo.ARW"], out_dir="results", ratio=100))

Importing ``sid_ft`` does not import TensorFlow: each name is loaded from its module on first use, and the
options dataclasses never need TensorFlow.  The data flow, lowest layer first: ``runtime`` -> ``io`` ->
``data`` -> ``nets`` -> ``eval`` -> ``training`` / ``inference`` -> ``cli`` (docs/architecture.md).
"""
from __future__ import annotations

import importlib

from sid_ft.errors import SidFtError

__version__ = "0.1.0"

_PUBLIC = {
    "train": "sid_ft.training.loop",
    "TrainOptions": "sid_ft.training.options",
    "run_inference": "sid_ft.inference.run",
    "InferOptions": "sid_ft.inference.options",
    "Predictor": "sid_ft.inference.predictor",
    "GAddConfig": "sid_ft.nets.g_add.config",
}
"""Public name -> the module it lives in."""

__all__ = ["SidFtError", "__version__", *_PUBLIC]


def __getattr__(name: str):
    """Load a public name from its module the first time it is asked for (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'sid_ft' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
