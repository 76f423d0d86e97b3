"""Shared fixtures: seeded RNG, test photos from scikit-image (or generated), shared data path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("VERITY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def photo(name: str = "astronaut") -> np.ndarray:
    """A real photo shipped inside scikit-image (RGB uint8)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


@pytest.fixture
def astronaut() -> np.ndarray:
    return photo("astronaut")


@pytest.fixture
def coffee() -> np.ndarray:
    return photo("coffee")


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "manifest.csv").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set VERITY_SHARED_DATA)")
    return SHARED_DATA
