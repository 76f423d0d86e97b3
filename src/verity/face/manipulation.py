"""Run the face-manipulation network (trained on self-blended faces by ``verity train faces``).

The network sees one aligned face crop cut by :func:`manipulation_crop` (the same recipe in training
and inference: a 256 px similarity-aligned crop with zoom 0.8, reduced to 128 px by area averaging)
and returns a logit (blended vs real) and a 32 x 32 map of the suspected blending boundary. The ONNX
file carries its calibration in its metadata: ``score = sigmoid(slope * (logit - offset))``, where
``offset`` is the 99th percentile of real validation faces' logits, so a score above 0.5 means "more
blended-looking than 99 % of real faces the model was calibrated on".
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verity.face.align import CropRecipe, align_face

#: Where the shipped network lives.
MODEL_FILE = Path(__file__).resolve().parent.parent / "models" / "weights" / "face_sbi.onnx"
#: Crop recipe: cut at 256 px (zoom 0.8), then area-reduce to :data:`INPUT_SIZE`.
CUT = CropRecipe(size=256, zoom=0.8)
INPUT_SIZE = 128
BOUNDARY_SIZE = 32
TRAIN_COMMAND = "verity train faces --data ../shared/data --out src/verity/models/weights/face_sbi.onnx"


def manipulation_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's input crop for one face.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 RGB
    landmarks : ndarray, shape (5, 2)

    Returns
    -------
    crop : ndarray, shape (128, 128, 3), uint8
    matrix : ndarray, shape (2, 3)
        Image-to-crop transform of the 128 px crop.
    """
    big, m = align_face(image, landmarks, CUT)
    return reduce_crop(big), half_matrix(m)


def reduce_crop(big: np.ndarray) -> np.ndarray:
    """Area-reduce a 256 px crop to the 128 px network input."""
    import cv2

    return cv2.resize(big, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def half_matrix(m: np.ndarray) -> np.ndarray:
    """The transform of a crop reduced by 2 (pixel centres: x' = (x + 0.5) / 2 - 0.5)."""
    h = np.asarray(m, np.float64) * 0.5
    h[:, 2] -= 0.25
    return h


def boundary_matrix(m128: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Transform from a map of the image reduced by ``scale`` to the 32 x 32 boundary map.

    Parameters
    ----------
    m128 : ndarray, shape (2, 3)
        Image-to-crop transform of the 128 px network input.
    scale : float
        Size of the target map relative to the image (heatmaps are drawn at reduced size).
    """
    m = np.asarray(m128, np.float64)
    f = BOUNDARY_SIZE / INPUT_SIZE
    out = np.empty((2, 3))
    out[:, :2] = m[:, :2] * f / scale
    out[:, 2] = (m[:, 2] + 0.5) * f - 0.5
    return out


@dataclass
class Calibration:
    """Logit-to-score mapping and the numbers measured when the model was trained."""

    offset: float = 0.0
    slope: float = 1.0
    info: dict = field(default_factory=dict)

    def score(self, logits: np.ndarray) -> np.ndarray:
        z = np.clip(self.slope * (np.asarray(logits, np.float64) - self.offset), -40, 40)
        return 1.0 / (1.0 + np.exp(-z))


class ManipulationModel:
    """The ONNX network plus its calibration.

    Parameters
    ----------
    path : path, optional
        Default :data:`MODEL_FILE`.
    """

    def __init__(self, path: str | Path | None = None):
        from verity.face.facenet import make_session

        self.path = Path(path) if path else MODEL_FILE
        self.session = make_session(self.path)
        meta = self.session.get_modelmeta().custom_metadata_map
        info = json.loads(meta.get("verity", "{}"))
        self.calibration = Calibration(float(info.get("offset", 0.0)), float(info.get("slope", 1.0)), info)

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N,) and boundary maps (N, 32, 32) in [0, 1] for (N, 128, 128, 3) uint8 crops."""
        x = np.ascontiguousarray(np.asarray(crops, np.float32).transpose(0, 3, 1, 2) / 255.0)
        logit, boundary = self.session.run(["logit", "boundary"], {"image": x})
        return logit.reshape(-1).astype(np.float64), boundary.reshape(len(x), BOUNDARY_SIZE, BOUNDARY_SIZE)

    def score(self, logits: np.ndarray) -> np.ndarray:
        return self.calibration.score(logits)


_LOCK = threading.Lock()
_MODEL: ManipulationModel | None = None


def model_available() -> str | None:
    """``None`` when the shipped network exists, else a one-line reason."""
    if not MODEL_FILE.is_file():
        return f"the face-manipulation weights {MODEL_FILE.name} are not installed (reproduce with: {TRAIN_COMMAND})"
    return None


def get_model() -> ManipulationModel:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            _MODEL = ManipulationModel()
        return _MODEL
