"""Shared pytest settings: quiet TensorFlow, locate ../shared.

Real files the tests need are in tests/data (see tests/samples.py); ``shared_dir`` is for tests
that use ../shared as an extra.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder beside the checkout; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: real samples and references unavailable")
    return SHARED
