"""Tests of verity.ops.noise: Haar sub-bands, block noise levels, inconsistency maps."""

from __future__ import annotations

import numpy as np
import pytest

from verity.ops.noise import (
    block_noise_sigma,
    haar_subbands,
    luma,
    mad_sigma,
    noise_inconsistency,
    subsample_cells,
)


def _texture(rng, shape=(256, 256), n=400):
    """Piecewise-flat discs with sharp edges: edges are what inflates a plain MAD of HH."""
    import cv2

    t = np.full(shape, 128, np.float32)
    for _ in range(n):
        c = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        cv2.circle(t, c, int(rng.integers(3, 20)), float(rng.uniform(40, 220)), -1)
    return t


def test_haar_shapes_and_energy(rng):
    g = rng.normal(0, 3, (64, 65))
    ll, lh, hl, hh = haar_subbands(g)
    assert ll.shape == lh.shape == hl.shape == hh.shape == (32, 32)
    # orthonormal: white noise keeps its standard deviation in every detail band
    for band in (lh, hl, hh):
        assert band.std() == pytest.approx(3.0, rel=0.1)


def test_haar_constant_and_ramp_have_no_diagonal_detail():
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    for g in (np.full((32, 32), 77.0), 2.0 * xx + 3.0 * yy):
        _, _, _, hh = haar_subbands(g)
        assert np.abs(hh).max() < 1e-4


@pytest.mark.parametrize("sigma", [1.0, 3.0, 8.0])
def test_block_sigma_on_white_noise(rng, sigma):
    g = 128 + rng.normal(0, sigma, (256, 256))
    nm = block_noise_sigma(g, block=32)
    assert nm.sigma.shape == (8, 8)
    assert np.median(nm.sigma) == pytest.approx(sigma, rel=0.1)
    assert nm.valid.all()


def test_block_sigma_is_robust_to_texture(rng):
    noisy = _texture(rng) + rng.normal(0, 2.0, (256, 256))
    nm = block_noise_sigma(noisy, block=32)
    hh = haar_subbands(noisy)[3]
    naive = np.array([[mad_sigma(hh[i : i + 16, j : j + 16]) for j in range(0, 128, 16)] for i in range(0, 128, 16)])
    assert np.median(nm.sigma) == pytest.approx(2.0, rel=0.1)
    # per block, the plain MAD of HH is biased upwards by the edges; the flattest-half estimate is not
    bias_naive = float(naive.mean()) - 2.0
    bias_ours = float(nm.sigma.mean()) - 2.0
    assert bias_naive > 0.15
    assert abs(bias_ours) < 0.5 * bias_naive


def test_clipped_blocks_are_invalid(rng):
    g = np.full((128, 128), 255.0)
    g[:, :64] = 128 + rng.normal(0, 2, (128, 64))
    nm = block_noise_sigma(g, block=32)
    assert nm.valid[:, :2].all() and not nm.valid[:, 2:].any()


def test_inconsistency_finds_noisier_region(rng):
    g = _texture(rng, (384, 384)) + rng.normal(0, 1.5, (384, 384))
    g[128:256, 192:320] += rng.normal(0, 6.0, (128, 128))
    res = noise_inconsistency(g, block=32)
    assert res.region.any()
    truth = np.zeros(res.region.shape, bool)
    truth[4:8, 6:10] = True
    assert (res.region & truth).sum() >= 0.6 * truth.sum()
    assert (res.region & ~truth).sum() <= 4
    assert res.ratio > 2.0


def test_inconsistency_quiet_on_uniform_noise(rng):
    g = _texture(rng, (384, 384)) + rng.normal(0, 2.0, (384, 384))
    res = noise_inconsistency(g, block=32)
    assert res.region.sum() <= 2


def test_subsample_cells_keeps_whole_cells():
    a = np.arange(8 * 8).reshape(8, 8)
    s = subsample_cells(a, 2)
    assert s.tolist() == [[0, 1, 4, 5], [8, 9, 12, 13], [32, 33, 36, 37], [40, 41, 44, 45]]
    assert subsample_cells(a, 1) is a
    rgb = np.zeros((12, 12, 3), np.uint8)
    assert subsample_cells(rgb, 3).shape == (4, 4, 3)


def test_luma_matches_bt601():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert luma(px).ravel() == pytest.approx([76.245, 149.685, 29.07], abs=1e-3)
