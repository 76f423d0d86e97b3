"""Tests of verity.ops.copymove on synthetic clones with known shifts."""

from __future__ import annotations

import numpy as np
import pytest

from verity.ops.copymove import (
    along_shift,
    block_shift_candidates,
    detect_copy_move,
    fit_transforms,
    g2nn_matches,
    highpass,
    refine_translation,
    to_analysis_gray,
    verify_transform,
)
from verity.ops.regions import mask_iou


def _clone(rng, shape=(256, 320), size=56, src=(30, 40), shift=(150, 110)):
    from verity.lab.edits import textured_image

    img = textured_image(rng, shape)
    sx, sy = src
    dx, dy = shift
    out = img.copy()
    out[sy + dy : sy + dy + size, sx + dx : sx + dx + size] = img[sy : sy + size, sx : sx + size]
    copy = np.zeros(shape, bool)
    copy[sy + dy : sy + dy + size, sx + dx : sx + dx + size] = True
    source = np.zeros(shape, bool)
    source[sy : sy + size, sx : sx + size] = True
    return img, out, copy, source


def test_analysis_gray_downscales():
    g, s = to_analysis_gray(np.zeros((300, 2000, 3), np.uint8), max_side=1000)
    assert g.shape == (150, 1000) and s == pytest.approx(0.5)
    g, s = to_analysis_gray(np.zeros((30, 40), np.uint8))
    assert g.shape == (30, 40) and s == 1.0 and g.dtype == np.float32


def test_g2nn_and_ransac_recover_shift(rng):
    _, out, _, _ = _clone(rng)
    g, _ = to_analysis_gray(out)
    p, q, n = g2nn_matches(g)
    assert n > 50 and len(p) >= 5
    models = fit_transforms(p, q, min_inliers=4)
    assert models
    M, idx = models[0]
    t = M[:, 2] if M[0, 2] > 0 else -M[:, 2]
    assert np.allclose(M[:, :2], np.eye(2), atol=0.03)
    assert np.allclose(t, [150, 110], atol=3)


def test_no_keypoint_pairs_in_unique_content(rng):
    from verity.lab.edits import textured_image

    g, _ = to_analysis_gray(textured_image(rng, (256, 320)))
    p, q, _ = g2nn_matches(g)
    assert len(fit_transforms(p, q, min_inliers=5)) == 0


def test_block_candidates_find_exact_shift(rng):
    _, out, _, _ = _clone(rng)
    g, _ = to_analysis_gray(out)
    c = block_shift_candidates(g)
    assert c and (c[0][0], c[0][1]) == (150.0, 110.0)
    x0, y0, x1, y1 = c[0][3]
    assert x0 <= 45 and y0 <= 45 and x1 >= 80 and y1 >= 80  # votes come from the source block


def test_refine_translation_snaps_to_true_shift(rng):
    _, out, _, _ = _clone(rng)
    g, _ = to_analysis_gray(out)
    r = highpass(g)
    assert refine_translation(r, (30, 40, 86, 96), 148.6, 111.7, radius=2) == (150.0, 110.0)


def test_verify_accepts_true_and_rejects_wrong_transform(rng):
    _, out, copy, _ = _clone(rng)
    g, _ = to_analysis_gray(out)
    r = highpass(g)
    M = np.array([[1.0, 0, 150], [0, 1.0, 110]])
    m, corr = verify_transform(r, M, gray=g)
    assert corr > 0.9
    assert mask_iou(m, copy) > 0.7
    wrong = np.array([[1.0, 0, 140], [0, 1.0, 110]])
    m2, _ = verify_transform(r, wrong, gray=g)
    assert m2.sum() == 0


def _straight_edge(direction=(31, -9), shape=(256, 320), width=0.6):
    """A sharp straight edge through the centre running along ``direction`` (not one of the eight
    fixed test directions), like a shoulder against a plain studio background."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    nx, ny = -direction[1], direction[0]
    n = np.hypot(nx, ny)
    dist = (xx - w / 2) * nx / n + (yy - h / 2) * ny / n
    return (200 + 40 / (1 + np.exp(-dist / width))).astype(np.float32)


def test_along_shift_offsets():
    M = np.array([[1.0, 0, 30.0], [0, 1.0, -40.0]])
    offs = along_shift(M, (0, 0, 100, 100))
    assert len(offs) == 6
    for (dx, dy), r in zip(offs[::2], (3, 6, 8)):
        assert np.isclose(np.hypot(dx, dy), r) and np.isclose(dx / r, 0.6) and np.isclose(dy / r, -0.8)
    assert along_shift(np.array([[1.0, 0, 0.2], [0, 1.0, 0.1]]), (0, 0, 10, 10)) == ()


@pytest.mark.parametrize("width", [0.5, 0.7])
def test_straight_edge_slid_along_itself_is_not_a_clone(width, monkeypatch):
    import verity.ops.copymove as cm

    g = _straight_edge(width=width)
    r = highpass(g)
    M = np.array([[1.0, 0, 31.0], [0, 1.0, -9.0]])  # the displacement runs along the edge
    m, _ = verify_transform(r, M, gray=g)
    assert m.sum() == 0
    # the eight fixed directions alone accept it (what the slide along the displacement fixes)
    monkeypatch.setattr(cm, "along_shift", lambda M, box, steps=(3, 6, 8): ())
    m0, corr0 = verify_transform(r, M, gray=g)
    assert m0.sum() > 1000 and corr0 > 0.95


def test_detect_copy_move_marks_both_regions(rng):
    _, out, copy, source = _clone(rng)
    res = detect_copy_move(out)
    assert res.duplicates
    assert mask_iou(res.mask > 0.5, copy | source) > 0.6


def test_detect_copy_move_quiet_on_original(rng):
    img, _, _, _ = _clone(rng)
    res = detect_copy_move(img)
    assert res.duplicates == [] and res.mask.max() == 0


def test_tiny_image_is_handled():
    res = detect_copy_move(np.zeros((20, 30, 3), np.uint8))
    assert res.duplicates == [] and res.mask.shape == (20, 30)
