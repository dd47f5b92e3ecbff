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


@pytest.fixture(scope="session")
def released_checkpoint(tmp_path_factory):
    """``released_checkpoint(camera, seed)``: the prefix of a released-layout SID checkpoint with random values
    (tests/sid_reference.py), written once per session for each (camera, seed)."""
    from tests.sid_reference import write_released_checkpoint

    made: dict[tuple[str, int], str] = {}

    def get(camera: str = "sony", seed: int = 0) -> str:
        if (camera, seed) not in made:
            folder = tmp_path_factory.mktemp(f"released_{camera}_{seed}")
            made[camera, seed] = write_released_checkpoint(folder, camera=camera, seed=seed)
        return made[camera, seed]

    return get


@pytest.fixture(scope="session")
def pretrained(released_checkpoint) -> str:
    """The released-layout Sony checkpoint that the training tests fine-tune (seed 3)."""
    return released_checkpoint("sony", 3)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A tiny SID-layout pair tree of real DNG files (tests/builders.py); read-only for the tests."""
    from tests.builders import make_pairs_tree

    return make_pairs_tree(tmp_path_factory.mktemp("pairs") / "data")
