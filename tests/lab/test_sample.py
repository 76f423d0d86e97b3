from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.lab.conftest import TINY
from verity.lab.marks import DIGITAL_SOURCE_TYPE, read_marks
from verity.lab.models import create_family
from verity.lab.sample import grid_image, reconstruct_image, reconstruct_paths, sample_run
from verity.lab.trainer import RunError, train


class _Identity:
    """Stand-in autoencoder whose reconstruction is the input: the tiling must then be exact."""

    name = "autoencoder"

    class _Net:
        factor = 4

    nets = {"ae": _Net()}

    def reconstruct(self, x):
        return x


@pytest.mark.parametrize("shape", [(75, 61), (33, 257), (4, 5), (300, 300), (257, 129)])
def test_tiling_is_exact_for_identity(shape, rng):
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = reconstruct_image(_Identity(), img, tile=64, overlap=16)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_tiling_blends_tiles(rng):
    """Each tile's output is offset by a tile-specific constant; the blend must stay within the range
    of the offsets and vary smoothly (no hard seam bigger than one tile offset step)."""
    calls = []

    class Offset(_Identity):
        def reconstruct(self, x):
            calls.append(len(x))
            k = torch.arange(len(x), dtype=torch.float32).view(-1, 1, 1, 1) + len(calls) * 4
            return torch.zeros_like(x) + (k % 5) * 0.1 - 0.2

    out = reconstruct_image(Offset(), np.zeros((130, 150, 3), np.uint8), tile=64, overlap=32, batch=3)
    assert sum(calls) > 4  # several tiles
    diffs = np.abs(np.diff(out[..., 0].astype(int), axis=1))
    assert diffs.max() <= 6  # ramps, not seams (offsets differ by up to 51 grey levels)


def test_reconstruct_real_autoencoder_odd_size(rng):
    torch.manual_seed(0)
    fam = create_family("autoencoder", **TINY["autoencoder"])
    img = rng.integers(0, 256, (45, 71, 3), dtype=np.uint8)
    out = reconstruct_image(fam, img, tile=32, overlap=8)
    assert out.shape == (45, 71, 3) and out.dtype == np.uint8


def test_reconstruct_paths_and_sample_run(image_dir, tmp_path):
    run = tmp_path / "ae"
    train("autoencoder", image_dir, run, steps=2, every=2, fd_n=0, threads=1, max_side=128, progress=False,
          **TINY["autoencoder"])
    written, failed = reconstruct_paths(run, [str(image_dir)], tmp_path / "rec", tile=64, overlap=16,
                                        progress=False)
    assert len(written) == 6 and not failed
    from PIL import Image

    for p in written:
        src = next(image_dir.rglob(p.stem + ".*"))
        with Image.open(src) as a, Image.open(p) as b:
            assert a.size == b.size
        m = read_marks(p)
        assert m["digital_source_type"] == DIGITAL_SOURCE_TYPE
        assert m["software"].startswith("verity-lab autoencoder autoencoder-")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    _, failed = reconstruct_paths(run, [str(tmp_path / "bad.png")], tmp_path / "rec2", progress=False)
    assert len(failed) == 1
    paths = sample_run(run, 3, tmp_path / "s", seed=2, progress=False)
    assert len(paths) == 3 and all(read_marks(p)["digital_source_type"] == DIGITAL_SOURCE_TYPE for p in paths)


def test_reconstruct_needs_autoencoder(image_dir, tmp_path):
    train("gan", image_dir, tmp_path / "g", steps=1, every=1, fd_n=0, threads=1, max_side=128, progress=False,
          **TINY["gan"])
    with pytest.raises(RunError, match="autoencoder"):
        reconstruct_paths(tmp_path / "g", [str(image_dir)], tmp_path / "o", progress=False)
    with pytest.raises(RunError, match="not a lab run"):
        sample_run(tmp_path / "nothing", 1, tmp_path / "o")


def test_grid_image_layout():
    imgs = np.stack([np.full((4, 5, 3), i * 20, np.uint8) for i in range(5)])
    g = grid_image(imgs, cols=3, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert (g[1:5, 1:6] == 0).all() and (g[6:10, 7:12] == 80).all() and (g[6:10, 13:18] == 255).all()
