"""The learned AI-image detectors: contract details, abstention, crops and heatmap."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import verity.models as vm
from verity.core.io import load_sample
from verity.core.registry import create_detector, get_detector_class

NAMES = ["learned_semantic", "learned_npr"]


def _sample(img: np.ndarray, fmt: str = "PNG"):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return load_sample(buf.getvalue(), name=f"t.{fmt.lower()}")


def _need_weights(name):
    vm.verify_weights.cache_clear()
    if vm.verify_weights(name):
        pytest.skip(f"{name}: weights not installed")


@pytest.mark.parametrize("name", NAMES)
def test_registered(name):
    cls = get_detector_class(name)
    assert cls.kind == "learned" and cls.labels == ("ai_generated",)
    assert 0 < cls.weight <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_scores_photo_with_crops_and_heatmap(name, astronaut):
    _need_weights(name)
    big = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # 512 x 1024
    s = _sample(big, "JPEG")
    f = create_detector(name).run(s)
    assert f.score is not None and 0 <= f.score <= 1
    cfg = vm.get_config(name)
    boxes = f.details["boxes"]
    assert 1 < len(boxes) <= cfg.max_crops
    assert all((x1 - x0, y1 - y0) == (cfg.crop, cfg.crop) for x0, y0, x1, y1 in boxes)  # native resolution
    assert len(f.details["crop_scores"]) == len(boxes)
    assert f.heatmap is not None
    h, w = f.heatmap.shape
    assert abs(w / h - 2.0) < 0.1
    assert f.heatmap.max() == pytest.approx(max(f.details["crop_scores"]), abs=1e-4)
    assert "crops" in f.evidence[0] and "x=" in f.evidence[0]


@pytest.mark.parametrize("name", NAMES)
def test_small_image_single_crop(name, coffee):
    _need_weights(name)
    f = create_detector(name).run(_sample(coffee[:160, :200]))
    assert f.score is not None
    if not f.details["resampled_short_side"]:  # native pixels: an image smaller than a crop is scored whole
        assert f.details["boxes"] == [[0, 0, 200, 160]]


@pytest.mark.parametrize("name", NAMES)
def test_resampled_scoring_maps_boxes_back(name, coffee, monkeypatch):
    """A config (or file metadata) with ``resize_short`` scores the resampled image; boxes stay in the
    image's own pixels."""
    import dataclasses

    _need_weights(name)
    side = 512
    monkeypatch.setitem(vm._CONFIGS, name, dataclasses.replace(vm._CONFIGS[name], extra={"resize_short": side}))
    f = create_detector(name).run(_sample(coffee[:160, :200]))
    assert f.score is not None
    scale = side / 160
    crop = vm.get_config(name).crop
    assert f.details["resampled_short_side"] == side and "resampled to a" in f.evidence[0]
    assert len(f.details["boxes"]) > 1
    for x0, y0, x1, y1 in f.details["boxes"]:
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 160
        assert abs((x1 - x0) - crop / scale) <= 1 and abs((y1 - y0) - crop / scale) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_tiny_image_abstains(name):
    f = create_detector(name).run(_sample(np.zeros((20, 40, 3), np.uint8)))
    assert f.score is None and f.evidence


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail_below_min_side_abstains(name, coffee):
    from verity.detectors.learned._base import MIN_SIDE

    f = create_detector(name).run(_sample(coffee[:MIN_SIDE - 1, :300]))
    assert f.score is None
    assert f"{MIN_SIDE} px" in f.evidence[0]
    assert create_detector(name).run(_sample(coffee[:MIN_SIDE, :300])).score is not None


@pytest.mark.parametrize("name", NAMES)
def test_missing_weights_abstain_with_reason(name, monkeypatch, tmp_path, coffee):
    monkeypatch.setattr(vm, "WEIGHTS_DIR", tmp_path)
    vm.verify_weights.cache_clear()
    try:
        f = create_detector(name).run(_sample(coffee))
        assert f.score is None
        assert "not installed" in f.evidence[0] and vm.get_config(name).command in f.evidence[0]
        assert vm.get_config(name).command.startswith("verity train ")
    finally:
        vm.verify_weights.cache_clear()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_format_blind(name, coffee):
    """Same pixels in a PNG and in a lossless re-save must score the same (no metadata is read)."""
    _need_weights(name)
    a = _sample(coffee, "PNG")
    buf = io.BytesIO()
    Image.fromarray(coffee).save(buf, format="PNG", pnginfo=_sd_info())
    b = load_sample(buf.getvalue())
    fa, fb = create_detector(name).run(a), create_detector(name).run(b)
    assert fa.score == fb.score


def _sd_info():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a photo of a cat, Steps: 20, Sampler: Euler a, Seed: 1")
    return info


@pytest.mark.data
def test_heldout_sd_scores_above_heldout_camera_photos(shared_data):
    """On groups never seen in training (seed-0 split), after JPEG q90 re-encoding without metadata,
    SD 1.x images must score higher on average than camera photos (semantic AUC 0.88 measured)."""
    _need_weights("learned_semantic")
    from verity.train.data import encode
    from verity.train.detector import select_records

    chosen, val = select_records(shared_data, seed=0)
    held = [r for r in chosen if r.path in val]
    sd = [r for r in held if r.source == "ai_generated/sd1"][:8]
    cam = [r for r in held if r.source == "real_camera/camera_samples"][:8]
    assert len(sd) == 8 and len(cam) == 8
    assert not ({r.group for r in sd} & {r.group for r in chosen if r.path not in val})
    det = create_detector("learned_semantic")

    def score(r):
        px = load_sample(r.path).pixels
        return det.run(load_sample(encode(px, "jpeg", 90))).score

    s_sd, s_cam = np.mean([score(r) for r in sd]), np.mean([score(r) for r in cam])
    assert s_sd > s_cam + 0.2, (s_sd, s_cam)
