"""The contract every registered detector must honour, run over the whole registry."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from verity.core.io import load_sample
from verity.core.registry import create_detector, get_detector_class, list_detectors
from verity.core.types import CLASSES, KINDS, Finding
from verity.lab.edits import camera_exif, encode_jpeg, sd_png, textured_image


def _samples():
    rng = np.random.default_rng(7)
    img = textured_image(rng, (240, 320))
    out = {
        "jpeg_exif": encode_jpeg(img, 90, exif=camera_exif()),
        "png_sd": sd_png(img),
    }
    buf = io.BytesIO()
    rgba = Image.fromarray(img).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(buf, format="PNG")
    out["png_rgba"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(img).convert("L").save(buf, format="JPEG", quality=80)
    out["jpeg_gray"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).save(buf, format="PNG")
    out["tiny"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, format="BMP")
    out["flat_bmp"] = buf.getvalue()
    return {k: load_sample(v, name=k) for k, v in out.items()}


SAMPLES = _samples()
DETECTORS = list_detectors()


def test_registry_is_not_empty():
    assert DETECTORS, "no detectors registered"


@pytest.mark.parametrize("name", DETECTORS)
def test_class_attributes(name):
    cls = get_detector_class(name)
    assert cls.name == name
    assert cls.kind in KINDS
    assert set(cls.labels) <= set(CLASSES) and cls.labels, "a detector must name the classes it speaks for"
    assert cls.weight >= 0
    assert (cls.__doc__ or "").strip(), "document the method and its weight"


@pytest.mark.parametrize("sample_name", sorted(SAMPLES))
@pytest.mark.parametrize("name", DETECTORS)
def test_contract(name, sample_name):
    cls = get_detector_class(name)
    if not cls.available():
        pytest.skip(f"{name}: optional dependency missing")
    det = create_detector(name)
    sample = SAMPLES[sample_name]
    ok = det.accepts(sample)
    assert isinstance(ok, bool)
    if not ok:
        return
    f1 = det.run(sample)
    f2 = create_detector(name).run(sample)
    for f in (f1, f2):
        assert isinstance(f, Finding)
        assert f.detector == name
        assert f.score is None or 0.0 <= f.score <= 1.0
        assert set(f.labels) <= set(CLASSES)
        assert all(isinstance(e, str) and e.strip() for e in f.evidence)
        json.dumps(f.details, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        if f.heatmap is not None:
            h, w = f.heatmap.shape
            assert h >= 1 and w >= 1
            # same aspect ratio as the stored pixels (within one heatmap cell)
            assert abs(h / w - sample.height / sample.width) <= 1.0 / min(h, w) + 0.05 * sample.height / sample.width
    # deterministic
    assert f1.score == f2.score
    assert f1.evidence == f2.evidence
    if f1.heatmap is not None:
        assert np.array_equal(f1.heatmap, f2.heatmap)
