"""Tests for verity.core.types: derived properties of Sample."""

import numpy as np
import pytest

from verity.core.types import Sample


@pytest.mark.parametrize("shape", [(7, 5, 3), (64, 33, 3), (1, 1, 3)])
def test_gray_is_bt601_luma(shape):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    s = Sample(data=b"", pixels=pixels, format="PNG")
    p = pixels.astype(np.float64)
    ref = 0.299 * p[..., 0] + 0.587 * p[..., 1] + 0.114 * p[..., 2]
    assert s.gray.dtype == np.float32
    assert s.gray.shape == shape[:2]
    np.testing.assert_allclose(s.gray, ref, atol=1e-3)


def test_gray_extremes():
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0] = 255
    s = Sample(data=b"", pixels=pixels, format="PNG")
    np.testing.assert_allclose(s.gray[0], 255.0, atol=1e-3)
    np.testing.assert_allclose(s.gray[1], 0.0, atol=1e-6)
