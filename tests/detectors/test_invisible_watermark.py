"""The invisible_watermark detector: ai_generated evidence for the SD marks, abstains otherwise."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import photo
from verity.core.io import load_sample
from verity.core.registry import create_detector
from verity.ops import watermark as wm
from verity.provenance import watermark as W


def _sample(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return load_sample(buf.getvalue(), name="x.png")


def test_fires_on_sdxl_mark():
    s = _sample(wm.dwtdct_embed(photo("coffee"), W.KNOWN_MARKS["Stable Diffusion XL"]))
    f = create_detector("invisible_watermark").run(s)
    assert f.score is not None and f.score > 0.9 and f.labels == ["ai_generated"]
    assert "Stable Diffusion XL" in f.evidence[0]


def test_abstains_on_unmarked_photo():
    f = create_detector("invisible_watermark").run(_sample(photo("astronaut")))
    assert f.score is None and f.evidence


def test_abstains_on_verity_mark():
    r = W.embed(photo("chelsea"), b"\x01\x02")
    f = create_detector("invisible_watermark").run(_sample(r.image))
    assert f.score is None
