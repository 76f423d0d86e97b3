"""Fixtures for the lab tests: a tiny image folder and tiny model configurations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.conftest import photo  # noqa: E402

#: options that make each family small enough to train a few steps in well under a second
TINY = {
    "autoencoder": {"size": 32, "batch": 4, "ch": 8, "mults": [1, 2]},
    "gan": {"size": 32, "batch": 4, "ngf": 8, "ndf": 8, "nz": 16},
    "diffusion": {"size": 32, "batch": 4, "ch": 8, "mults": [1, 2], "T": 100, "ddim_steps": 4, "patch": 1},
}


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A folder of 6 small real photos (crops of scikit-image's photos) as PNG and JPEG."""
    from PIL import Image

    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    k = 0
    for name in ("astronaut", "coffee", "chelsea"):
        img = photo(name)
        for _ in range(2):
            h, w = img.shape[:2]
            y, x = rng.integers(0, h - 120), rng.integers(0, w - 160)
            crop = img[y:y + 120, x:x + 160]
            target = d / ("sub" if k % 2 else "") / f"im{k}.{'png' if k % 3 else 'jpg'}"
            Image.fromarray(crop).save(target)
            k += 1
    return d
