"""Similarity alignment: transform estimation, crop recipes, mapping back to the image."""

from __future__ import annotations

import numpy as np
import pytest

from verity.face.align import (
    EMBEDDING,
    TEMPLATE,
    CropRecipe,
    align_face,
    crop_to_image,
    estimate_similarity,
    invert_affine,
    template_points,
)


def _similarity(scale, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_recovers_a_known_similarity(rng):
    src = rng.uniform(0, 100, (5, 2))
    m = _similarity(1.7, 0.4, 12.0, -30.0)
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(estimate_similarity(src, dst), m, atol=1e-9)


def test_least_squares_with_noise(rng):
    src = rng.uniform(0, 100, (50, 2))
    m = _similarity(0.5, -1.0, 3.0, 4.0)
    dst = src @ m[:, :2].T + m[:, 2] + rng.normal(0, 0.5, (50, 2))
    est = estimate_similarity(src, dst)
    assert np.abs(est - m).max() < 0.2


def test_never_reflects(rng):
    src = rng.uniform(0, 100, (5, 2))
    dst = src.copy()
    dst[:, 0] *= -1  # a mirror image cannot be matched by a similarity
    est = estimate_similarity(src, dst)
    assert np.linalg.det(est[:, :2]) > 0


def test_rejects_degenerate_input():
    with pytest.raises(ValueError):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        estimate_similarity(np.zeros((1, 2)), np.zeros((1, 2)))


def test_template_is_a_plausible_face():
    le, re, nose, ml, mr = TEMPLATE
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]
    assert le[1] < nose[1] < ml[1]
    np.testing.assert_allclose((le[0] + re[0]) / 2, 0.5, atol=1e-9)  # symmetric
    z = template_points(100, zoom=0.5)
    np.testing.assert_allclose(z.mean(0) - 50, (TEMPLATE.mean(0) - 0.5) * 50, atol=1e-9)


def test_align_face_puts_landmarks_on_the_template(astro_face):
    img, det = astro_face
    crop, m = align_face(img, det.landmarks, EMBEDDING)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    mapped = det.landmarks @ m[:, :2].T + m[:, 2]
    target = template_points(EMBEDDING.size, EMBEDDING.zoom)
    assert np.abs(mapped - target).max() < 6  # five real landmarks fit a rigid template within a few px


def test_rotated_face_aligns_to_the_same_crop(astro_face):
    import cv2

    img, det = astro_face
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    img_r = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    lm_r = det.landmarks @ rot[:, :2].T + rot[:, 2]
    a, _ = align_face(img, det.landmarks, EMBEDDING)
    b, _ = align_face(img_r, lm_r, EMBEDDING)
    diff = np.abs(a.astype(int) - b.astype(int))[20:-20, 20:-20].mean()
    assert diff < 8, diff


def test_crop_to_image_inverts_the_crop(rng):
    m = _similarity(0.5, 0.3, 10.0, 20.0)
    vals = np.zeros((64, 64), np.float32)
    vals[20:40, 20:40] = 1.0
    back = crop_to_image(vals, m, (200, 200))
    ys, xs = np.nonzero(back > 0.5)
    pts = np.stack([xs, ys], 1).astype(float)
    crop_pts = pts @ m[:, :2].T + m[:, 2]
    assert ((crop_pts >= 19) & (crop_pts <= 40)).all()
    np.testing.assert_allclose(invert_affine(invert_affine(m)), m, atol=1e-9)


def test_zoom_keeps_more_context(astro_face):
    img, det = astro_face
    tight, _ = align_face(img, det.landmarks, CropRecipe(128, 1.0))
    wide, mw = align_face(img, det.landmarks, CropRecipe(128, 0.8))
    lm_wide = det.landmarks @ mw[:, :2].T + mw[:, 2]
    eye_dist = np.linalg.norm(lm_wide[1] - lm_wide[0])
    assert eye_dist == pytest.approx((TEMPLATE[1, 0] - TEMPLATE[0, 0]) * 128 * 0.8, rel=0.1)
    assert tight.shape == wide.shape
