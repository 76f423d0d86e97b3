"""Synthetic folders for the scan tests; no user index is ever seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verity.lab.edits import camera_exif, encode_jpeg, make_splice, sd_png, textured_image

#: cheap detectors for the tests that check bookkeeping rather than verdicts
FAST = "jpeg_qtables,exif_camera,generator_metadata,jpeg_ela"


@pytest.fixture(autouse=True)
def _no_user_index(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path_factory.mktemp("verity_data")))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)


def make_images(folder: Path, n: int, seed: int = 0, size=(160, 200), broken: bool = True) -> list[Path]:
    """``n`` camera-like JPEGs, splices and SD-like PNGs (cycling), plus a truncated and an empty file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        a = textured_image(rng, size)
        kind = i % 3
        if kind == 0:
            p, data = folder / f"photo_{i:03d}.jpg", encode_jpeg(a, 90, exif=camera_exif())
        elif kind == 1:
            p, data = folder / f"splice_{i:03d}.jpg", make_splice(a, textured_image(rng, size), rng).data
        else:
            p, data = folder / f"gen_{i:03d}.png", sd_png(a)
        p.write_bytes(data)
        out.append(p)
    if broken:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
        (folder / "empty.png").write_bytes(b"")
        out += [folder / "broken.jpg", folder / "empty.png"]
    return out


@pytest.fixture
def images(tmp_path) -> Path:
    make_images(tmp_path / "imgs", 6)
    return tmp_path / "imgs"
