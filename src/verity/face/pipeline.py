"""Detection, alignment and embedding in one call, for the detector, the index and ``verity identity``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verity.face.align import EMBEDDING, align_face
from verity.face.detect import FACE_MIN_SCORE, Detection, detect_faces


@dataclass
class FoundFace:
    """A detected face with its FaceNet embedding.

    Attributes
    ----------
    detection : Detection
        Box, score and landmarks in the pixels of the image searched.
    embedding : ndarray, shape (512,), float32, or None
        Unit-norm FaceNet embedding of the aligned crop (``None`` when not requested).
    """

    detection: Detection
    embedding: np.ndarray | None = None

    @property
    def area(self) -> float:
        return self.detection.width * self.detection.height


def find_faces(image: np.ndarray, embed: bool = True, max_faces: int = 20,
               min_score: float = FACE_MIN_SCORE) -> list[FoundFace]:
    """Detect faces (largest first) and optionally embed them.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 RGB
        Display orientation.
    embed : bool
        Compute FaceNet embeddings (about 50 ms per face on one core).
    max_faces : int
    min_score : float
        MTCNN O-Net probability a face needs (default: the calibrated :data:`~verity.face.detect.FACE_MIN_SCORE`).

    Returns
    -------
    list of FoundFace
    """
    dets = detect_faces(image, max_faces=max_faces, min_score=min_score)
    faces = sorted((FoundFace(d) for d in dets), key=lambda f: -f.area)
    if embed and faces:
        from verity.face.facenet import get_facenet

        crops = np.stack([align_face(image, f.detection.landmarks, EMBEDDING)[0] for f in faces])
        for f, e in zip(faces, get_facenet().embed(crops)):
            f.embedding = e
    return faces


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
