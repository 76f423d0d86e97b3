"""The ``index_match`` detector: known-fake near duplicates score high, everything else abstains."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from verity.core.io import load_sample
from verity.core.registry import create_detector, get_detector_class

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")


def _bytes(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_class_attributes():
    cls = get_detector_class("index_match")
    assert cls.kind == "index" and cls.weight > 0


def test_abstains_without_an_index(tmp_path, monkeypatch):
    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)
    f = create_detector("index_match").run(load_sample(_bytes(photo("coffee")), name="c.png"))
    assert f.score is None and "no similarity index" in f.evidence[0]


def test_known_fake_near_duplicate_scores_high(tmp_path, monkeypatch):
    from verity.detectors.provenance.index_match import close_cached, known_fake_score
    from verity.index import default_index_dir
    from verity.index.features import image_record
    from verity.index.store import IndexStore

    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)
    fake = photo("astronaut").copy()
    fake[300:400, 300:400] = photo("coffee")[100:200, 100:200]  # a pasted patch: "the known fake"
    with IndexStore(default_index_dir(), create=True) as st:
        st.add([image_record(load_sample(_bytes(fake), name="/refs/viral_fake.png"), label="known_fake",
                             source="fact-check desk", fake_class="edited", faces=False),
                image_record(load_sample(_bytes(photo("rocket")), name="/refs/rocket.png"), label="real", faces=False)])
    try:
        det = create_detector("index_match")
        small = np.asarray(Image.fromarray(fake).resize((256, 256), Image.LANCZOS))
        f = det.run(load_sample(_bytes(small, "JPEG", quality=75), name="q.jpg"))
        assert f.score is not None and f.score >= known_fake_score(31)
        assert f.labels == ["edited"]
        assert "viral_fake.png" in f.evidence[0] and "PDQ distance" in f.evidence[0]
        g = det.run(load_sample(_bytes(photo("chelsea")), name="cat.png"))
        assert g.score is None and g.evidence[-1].startswith("Closest reference images")
        r = det.run(load_sample(_bytes(photo("rocket"), "JPEG", quality=80), name="r.jpg"))
        assert r.score is None and "labelled real" in r.evidence[0]
    finally:
        close_cached()


def test_score_falls_with_distance():
    from verity.detectors.provenance.index_match import known_fake_score

    assert known_fake_score(0) == pytest.approx(0.99)
    assert known_fake_score(31) == pytest.approx(0.80)
    assert known_fake_score(0) > known_fake_score(10) > known_fake_score(31) == known_fake_score(60)
