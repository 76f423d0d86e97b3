"""Temporal measurements on consecutive video frames (pure numpy/OpenCV).

* :func:`flicker_energies`: temporal high-frequency energy (second difference over three consecutive
  frames, after registering the outer frames to the middle one by phase correlation) inside a face
  box and in a ring around it. A face synthesised frame by frame flickers where the untouched
  surroundings do not; smooth motion cancels in the second difference.
* :func:`landmark_jitter`: second difference of the five landmarks over three consecutive frames,
  with translation removed and scaled by the inter-ocular distance.
* :func:`eye_openness`: an eye-region contrast proxy (five landmarks give eye centres, not eyelids):
  an open eye shows the dark iris against the sclera and lids; a closed lid is smoother.
"""

from __future__ import annotations

import numpy as np


def _clip_box(box, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))


def _shift(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``a`` translated onto ``ref`` (phase correlation, sub-pixel), same shape."""
    import cv2

    win = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(ref, a, win)
    if not np.isfinite(dx) or not np.isfinite(dy) or abs(dx) > a.shape[1] / 3 or abs(dy) > a.shape[0] / 3:
        return a
    m = np.float32([[1, 0, -dx], [0, 1, -dy]])
    return cv2.warpAffine(a, m, (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _d2(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    p = _shift(prev, cur)
    n = _shift(nxt, cur)
    return np.abs(p + n - 2.0 * cur)


def flicker_energies(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, box, margin: float = 0.35) -> tuple[float, float] | None:
    """Mean temporal second difference inside the face and in a ring around it.

    Parameters
    ----------
    prev, cur, nxt : ndarray, shape (H, W), uint8
        Luma of three consecutive frames.
    box : (x0, y0, x1, y1)
        Face box in ``cur``.
    margin : float
        Ring width as a fraction of the box size.

    Returns
    -------
    (face, ring) : floats in grey levels, or ``None`` when the box is too small or at the border.
    """
    h, w = cur.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < 16 or bh < 16:
        return None
    ox0, oy0, ox1, oy1 = _clip_box((x0 - margin * bw, y0 - margin * bh, x1 + margin * bw, y1 + margin * bh), w, h)
    if ox1 - ox0 < 24 or oy1 - oy0 < 24:
        return None
    crop = [np.asarray(f[oy0:oy1, ox0:ox1], np.float32) for f in (prev, cur, nxt)]
    d = _d2(*crop)
    # inner face: the central 60 % of the box (skin, eyes, mouth; no hair or background)
    ix0, iy0 = int(x0 + 0.2 * bw) - ox0, int(y0 + 0.2 * bh) - oy0
    ix1, iy1 = int(x1 - 0.2 * bw) - ox0, int(y1 - 0.1 * bh) - oy0
    inner = np.zeros(d.shape, bool)
    inner[max(0, iy0) : max(0, iy1), max(0, ix0) : max(0, ix1)] = True
    face = np.zeros(d.shape, bool)
    face[max(0, int(y0) - oy0) : int(y1) - oy0, max(0, int(x0) - ox0) : int(x1) - ox0] = True
    ring = ~face
    # leave out the outer 3 px (shift borders)
    ring[:3] = ring[-3:] = False
    ring[:, :3] = ring[:, -3:] = False
    if inner.sum() < 64 or ring.sum() < 64:
        return None
    return float(d[inner].mean()), float(d[ring].mean())


def _shape(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(p[1] - p[0]))
    return p - p.mean(axis=0), max(iod, 1e-6)


def landmark_jitter(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray) -> float:
    """Mean length of the landmarks' second difference, translation removed, in inter-ocular distances.

    Parameters
    ----------
    prev, cur, nxt : ndarray, shape (5, 2)
        Landmarks of one face in three consecutive frames.
    """
    sp, _ = _shape(prev)
    sc, iod = _shape(cur)
    sn, _ = _shape(nxt)
    return float(np.linalg.norm(sp + sn - 2.0 * sc, axis=1).mean() / iod)


def eye_openness(luma: np.ndarray, landmarks: np.ndarray) -> float | None:
    """Contrast of the two eye regions (std over mean of luma), ``None`` when the eyes are too small.

    Parameters
    ----------
    luma : ndarray, shape (H, W), uint8
    landmarks : ndarray, shape (5, 2)
    """
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(p[1] - p[0]))
    r = int(round(0.22 * iod))
    if r < 5:
        return None
    h, w = luma.shape
    vals = []
    for x, y in p[:2]:
        x0, y0, x1, y1 = int(x) - r, int(y) - r // 2 - 1, int(x) + r + 1, int(y) + r // 2 + 2
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return None
        patch = np.asarray(luma[y0:y1, x0:x1], np.float32)
        vals.append(float(patch.std() / (patch.mean() + 8.0)))
    return float(np.mean(vals))


def count_dips(values: np.ndarray, z: float = 3.0, min_drop: float = 0.15) -> list[int]:
    """Indices where a series dips well below its running level (candidate blinks).

    A dip is a sample below ``median - z * 1.4826 * MAD`` and at least ``min_drop`` (relative) under
    the median; consecutive dip samples count once (the first index is returned).
    """
    v = np.asarray(values, np.float64)
    if len(v) < 5:
        return []
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    thr = min(med - z * max(mad, 1e-6), med * (1.0 - min_drop))
    low = v < thr
    return [i for i in range(len(v)) if low[i] and (i == 0 or not low[i - 1])]
