"""Size- and format-blind training data: the equalisation, the property classifier and the data check."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from verity.train import equalize as E


def _jpeg(px, q, exif=False):
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(px)
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "Camera"
        im.save(buf, "JPEG", quality=q, exif=ex.tobytes())
    else:
        im.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def test_output_size_and_format_do_not_depend_on_the_input(rng):
    cfg = E.EqualizeConfig()
    for shape in ((300, 260, 3), (512, 512, 3), (1500, 2000, 3)):
        px = rng.integers(0, 256, shape, dtype=np.uint8)
        for _ in range(3):
            data = E.equalize_training_image(px, rng, cfg)
            p = E.file_properties(data)
            assert cfg.crop_side[0] <= p["width"] <= cfg.crop_side[1]
            assert cfg.crop_side[0] <= p["height"] <= cfg.crop_side[1]
            assert p["is_jpeg"] == 1 and p["has_exif"] == 0
            assert cfg.quality[0] - 1 <= p["jpeg_quality"] <= cfg.quality[1] + 1


def test_file_properties_read_exif_and_quality(rng):
    px = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    for q in (40, 75, 95):
        p = E.file_properties(_jpeg(px, q))
        assert abs(p["jpeg_quality"] - q) <= 1 and p["has_exif"] == 0
    p = E.file_properties(_jpeg(px, 90, exif=True))
    assert p["has_exif"] == 1 and (p["width"], p["height"]) == (120, 80)


def test_balance_by_matches_histograms(rng):
    v = np.r_[rng.normal(0, 1, 400), rng.normal(1.5, 1, 400)]
    y = np.r_[np.zeros(400, int), np.ones(400, int)]
    keep = E.balance_by(v, y, bins=20)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, v) > 0.8
    assert abs(roc_auc_score(y[keep], v[keep]) - 0.5) < 0.08
    assert (y[keep] == 1).sum() == (y[keep] == 0).sum()


def test_property_auc_sees_a_leak_and_not_noise(rng):
    n = 200
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    groups = [f"g{i % 40}" for i in range(2 * n)]
    base = [{k: float(rng.normal()) for k in E.PROPERTY_NAMES} for _ in range(2 * n)]
    assert E.property_auc(base, y, groups)["max"] < 0.62
    leak = [dict(b, is_png=float(t)) for b, t in zip(base, y)]
    assert E.property_auc(leak, y, groups)["max"] > 0.95


def _dataset() -> Path | None:
    corpus = os.environ.get("VERITY_CORPUS")
    if corpus and (Path(corpus) / "manifest.csv").is_file():
        return Path(corpus)
    from tests.conftest import SHARED_DATA

    return SHARED_DATA if (SHARED_DATA / "manifest.csv").is_file() else None


@pytest.mark.skipif(_dataset() is None, reason="no training data: set VERITY_CORPUS to a built corpus or provide ../shared/data")
def test_training_data_is_size_and_format_blind():
    """Raw files give the class away by their properties; the equalised, texture-balanced training
    crops must not (AUC <= 0.6 for gradient boosting and logistic regression, group-aware CV)."""
    from verity.train.data import read_dataset

    res = E.audit(read_dataset(_dataset()), n_per_class=60, seed=0, crops_per_image=3)
    assert res["raw"]["max"] > 0.9, res["raw"]  # the check can fail: raw files are separable
    assert res["balanced"]["gbm"] <= 0.6 and res["balanced"]["logreg"] <= 0.6, res["balanced"]
    assert res["balanced"]["kept_share"] > 0.3, res["balanced"]
