"""Pure functions of verity.ops.npr: residual, crop choice, pooling, crop heatmap."""

from __future__ import annotations

import numpy as np
import pytest

from verity.ops.npr import crop_heatmap, extract_crops, npr_residual, pool_topk, score_image, select_crops, sigmoid


def test_residual_zero_on_upsampled_and_shape(rng):
    small = rng.integers(0, 256, (20, 30, 3)).astype(np.float32)
    up = np.repeat(np.repeat(small, 2, 0), 2, 1)
    assert np.abs(npr_residual(up)).max() == 0
    r = npr_residual(rng.integers(0, 256, (41, 33)))
    assert r.shape == (40, 32) and r.dtype == np.float32
    assert np.all(r[0::2, 0::2] == 0) and np.abs(r).mean() > 10


def test_select_crops_native_resolution_and_texture(rng):
    gray = np.zeros((600, 900), np.float32)
    gray[300:556, 600:856] = rng.random((256, 256)) * 255  # one textured patch
    boxes = select_crops(gray, 256, 3)
    assert len(boxes) == 3
    assert all((x1 - x0, y1 - y0) == (256, 256) for x0, y0, x1, y1 in boxes)
    x0, y0, x1, y1 = boxes[0]
    assert x0 >= 500 and y0 >= 200  # most textured crop first
    assert select_crops(gray, 256, 3) == boxes  # deterministic


def test_select_crops_small_image():
    boxes = select_crops(np.ones((100, 60)), 256, 9)
    assert boxes == [(0, 0, 60, 100)]


def test_select_crops_covers_when_few(rng):
    boxes = select_crops(rng.random((300, 500)), 256, 9)
    assert len(boxes) <= 9 and len(set(boxes)) == len(boxes)
    assert min(b[0] for b in boxes) == 0 and max(b[2] for b in boxes) == 500


def test_pool_topk():
    assert pool_topk([1.0, 5.0, 3.0], 2) == pytest.approx(4.0)
    assert pool_topk([1.0], 3) == 1.0
    with pytest.raises(ValueError):
        pool_topk([], 2)


def test_sigmoid_stable():
    v = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(v, [0, 0.5, 1])
    assert sigmoid(0.0) == 0.5


def test_crop_heatmap():
    hm = crop_heatmap((100, 200), [(0, 0, 50, 50), (100, 50, 200, 100)], np.array([0.2, 0.9]), cell=10)
    assert hm.shape == (10, 20)
    assert hm[0, 0] == pytest.approx(0.2) and hm[9, 19] == pytest.approx(0.9) and hm[9, 0] == 0


def test_extract_and_score_image(rng):
    px = rng.integers(0, 256, (300, 401, 3), dtype=np.uint8)
    batch = extract_crops(px, [(0, 0, 64, 32)])
    assert batch.shape == (1, 3, 32, 64) and batch.dtype == np.float32 and batch.max() <= 1
    # a "network" whose logit is the mean brightness: pooling picks the brightest crops
    px[:, 300:] = 255
    res = score_image(px, lambda b: b.mean(axis=(1, 2, 3)) * 10 - 5, 128, 25, 1)
    assert len(res["boxes"]) == 20 and all((b[2] - b[0]) % 2 == 0 for b in res["boxes"])  # 5 x 4 grid
    assert res["logit"] == pytest.approx(res["logits"].max())
    best = res["boxes"][int(np.argmax(res["logits"]))]
    assert best[2] > 300
    assert 0 <= res["score"] <= 1
