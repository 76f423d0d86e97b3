"""Self-blended images: masks, boundaries, determinism and where the image changes."""

from __future__ import annotations

import numpy as np
import pytest

from verity.face.sbi import deform_mask, elastic_warp, face_outline, hull_mask, light_augment, random_affine, self_blend

LM = np.array([[100, 110], [156, 110], [128, 140], [106, 170], [150, 170]], float)


def test_outline_surrounds_the_landmarks():
    pts = face_outline(LM)
    assert pts.shape == (10, 2)
    assert pts[:, 1].min() < LM[:, 1].min() - 20  # forehead above the eyes
    assert pts[:, 1].max() > LM[:, 1].max() + 20  # chin below the mouth
    assert pts[:, 0].min() < LM[:, 0].min() and pts[:, 0].max() > LM[:, 0].max()
    m = hull_mask(pts, (256, 256))
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
    assert all(m[int(y), int(x)] == 1 for x, y in LM)
    assert m[5, 5] == 0 and m[250, 250] == 0


def test_jitter_changes_the_outline(rng):
    a = face_outline(LM, rng, jitter=0.25)
    b = face_outline(LM, rng, jitter=0.25)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(face_outline(LM, rng, jitter=0.0), face_outline(LM))


def test_elastic_warp_is_smooth_and_bounded(rng):
    m = hull_mask(face_outline(LM), (256, 256))
    w = elastic_warp(m, rng, alpha=0.03)
    assert w.shape == m.shape
    # a 3 % warp moves the edge a few pixels, never the whole mask
    inter = ((w > 0.5) & (m > 0.5)).sum() / (m > 0.5).sum()
    assert 0.8 < inter < 1.0 + 1e-9


def test_deformed_mask_is_soft_and_inside_the_image(rng):
    soft = deform_mask(hull_mask(face_outline(LM), (256, 256)), rng)
    assert soft.min() >= 0 and soft.max() <= 1
    assert ((soft > 0.01) & (soft < 0.99)).sum() > 200  # a soft transition exists
    assert soft[128, 128] > 0.9 and soft[0, 0] == 0


def test_light_augment_and_affine_change_the_image(astronaut, rng):
    x = astronaut[:256, :256]
    a = light_augment(x, rng)
    assert a.shape == x.shape and a.dtype == np.uint8
    assert np.abs(a.astype(int) - x.astype(int)).mean() > 1
    b = random_affine(x, rng)
    assert b.shape == x.shape


def test_self_blend_changes_only_the_masked_region(astronaut):
    x = np.ascontiguousarray(astronaut[:256, 100:356])
    r = self_blend(x, LM, np.random.default_rng(3))
    assert r.image.shape == x.shape and r.mask.shape == x.shape[:2]
    diff = np.abs(r.image.astype(int) - x.astype(int)).sum(axis=2)
    outside = r.mask < 1e-3
    inside = r.mask > 0.2
    # where the mask is 0 the result is the (possibly augmented) target; where it is large it differs
    if np.abs(diff[outside]).mean() < 1:  # target kept: only the blended face moved
        assert diff[inside].mean() > 2
    assert 0 <= r.boundary.min() and r.boundary.max() <= 1
    assert r.boundary[outside].max() < 0.05  # the boundary lies where the mask changes


def test_self_blend_is_deterministic(astronaut):
    x = np.ascontiguousarray(astronaut[:256, 100:356])
    a = self_blend(x, LM, np.random.default_rng(11))
    b = self_blend(x, LM, np.random.default_rng(11))
    c = self_blend(x, LM, np.random.default_rng(12))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_grayscale_sources_stay_grayscale(astronaut):
    g = np.repeat(astronaut[:256, 100:356].mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    r = self_blend(g, LM, np.random.default_rng(0))
    assert np.ptp(r.image.astype(int), axis=2).max() == 0


@pytest.mark.parametrize("seed", range(4))
def test_blend_ratio_bounds_the_mask(astronaut, seed):
    x = np.ascontiguousarray(astronaut[:256, 100:356])
    r = self_blend(x, LM, np.random.default_rng(seed))
    assert r.mask.max() <= 1.0 and r.mask.max() >= 0.25 - 1e-6
