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


def test_generator_family_only_for_ai_generated_verdicts():
    from verity.core.types import Finding, Verdict
    from verity.pipeline import generator_family

    fam = {"lineage": "gan", "probability": 0.8, "description": "a GAN", "probabilities": {"gan": 0.8}, "named": True}
    f = Finding(detector="learned_semantic", kind="learned", score=0.9, labels=("ai_generated",),
                details={"generator_family": fam})
    abstained = Finding(detector="learned_semantic", kind="learned", score=None, details={"generator_family": fam})
    assert generator_family("ai_generated", [f]) == fam
    assert generator_family("authentic", [f]) is None
    assert generator_family("ai_generated", [abstained]) is None
    unreliable = Finding(detector="learned_semantic", kind="learned", score=0.9, labels=("ai_generated",),
                         details={"generator_family": {**fam, "named": False}})
    assert generator_family("ai_generated", [unreliable]) is None
    probs = {"authentic": 0.1, "ai_generated": 0.9, "edited": 0.0, "face_manipulated": 0.0}
    v = Verdict(verdict="ai_generated", probabilities=probs, findings=[f], generator_family=fam)
    assert v.to_dict()["generator_family"] == fam
    assert v.family_sentence() == "Generator: looks like a GAN (80%; a resemblance of traces, not an attribution)."
    v2 = Verdict(verdict="authentic", probabilities=probs, findings=[f])
    assert v2.to_dict()["generator_family"] is None and v2.family_sentence() is None
