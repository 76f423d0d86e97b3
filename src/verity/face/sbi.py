"""Self-blended images (SBI, Shiohara & Yamasaki 2022): forged faces made from one real face.

From one real face image the generator makes a *source* and a *target* by independent light
augmentations (colour and contrast shifts, sharpening, blur or a down-up resize) and a small random
affine warp of the source, builds a mask over the inner face, deforms it (random hull extent,
elastic warp, erosion or dilation, blur), and blends the source into the target with the soft mask at
a random ratio. The result has the statistical fingerprints of a face swap (a blending boundary,
colour and sharpness mismatch, slightly misaligned features) without a second person, so a detector
trained on it needs only real faces. The Face X-ray boundary (Li et al. 2020) ``B = 4 M (1 - M)`` of
the mask is returned as the per-pixel target.

MTCNN gives only five landmarks, so the hull is built from points extrapolated from them (forehead,
temples, cheeks, jaw and chin, see :func:`face_outline`). Every function takes a
``numpy.random.Generator``; nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SelfBlend:
    """A self-blended face.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The blended face.
    mask : ndarray, shape (H, W), float32 in [0, 1]
        Soft blending mask times the blend ratio (the share of source in each pixel).
    boundary : ndarray, shape (H, W), float32 in [0, 1]
        ``4 M (1 - M)`` of the soft mask before the ratio: where the blending boundary lies.
    """

    image: np.ndarray
    mask: np.ndarray
    boundary: np.ndarray


def face_outline(landmarks: np.ndarray, rng: np.random.Generator | None = None, jitter: float = 0.0) -> np.ndarray:
    """Points around the inner face extrapolated from five MTCNN landmarks.

    Parameters
    ----------
    landmarks : ndarray, shape (5, 2)
        Left eye, right eye, nose, left and right mouth corner.
    rng : Generator, optional
        Needed when ``jitter > 0``.
    jitter : float
        Relative random change of each extrapolation coefficient (0 = the mean outline).

    Returns
    -------
    ndarray, shape (10, 2)
        Forehead, temples, cheeks, jaw and chin points (a polygon whose convex hull covers eyebrows
        to chin and cheek to cheek).
    """
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye_c = (p[0] + p[1]) / 2
    mouth_c = (p[3] + p[4]) / 2
    up = eye_c - mouth_c  # eye-mouth vector, pointing up
    right = p[1] - p[0]  # inter-ocular vector, pointing to image right

    def k(v: float) -> float:
        if jitter <= 0 or rng is None:
            return v
        return v * (1.0 + rng.uniform(-jitter, jitter))

    pts = [
        eye_c + up * k(0.75),  # forehead
        eye_c + up * k(0.55) - right * k(0.55),
        eye_c + up * k(0.55) + right * k(0.55),
        eye_c - right * k(0.9),  # temples
        eye_c + right * k(0.9),
        mouth_c + up * k(0.35) - right * k(0.85),  # cheeks
        mouth_c + up * k(0.35) + right * k(0.85),
        mouth_c - up * k(0.45) - right * k(0.55),  # jaw
        mouth_c - up * k(0.45) + right * k(0.55),
        mouth_c - up * k(0.75),  # chin
    ]
    return np.asarray(pts)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of ``points`` as a float32 (H, W) mask of 0 and 1."""
    import cv2

    hull = cv2.convexHull(np.round(np.asarray(points, np.float64) * 16).astype(np.int32))
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, hull, 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(np.float32)


def elastic_warp(mask: np.ndarray, rng: np.random.Generator, alpha: float = 0.04, sigma: float = 0.08) -> np.ndarray:
    """Deform a mask with a smooth random displacement field.

    Parameters
    ----------
    mask : ndarray, shape (H, W), float
    alpha : float
        Largest displacement as a fraction of the image side.
    sigma : float
        Smoothness of the field (Gaussian sigma as a fraction of the side).
    """
    import cv2

    h, w = mask.shape
    side = max(h, w)
    # the field is drawn on a grid 8 times coarser and upsampled: same smoothness, 64x cheaper
    gh, gw = max(2, h // 8), max(2, w // 8)
    s = max(0.5, sigma * side / 8)
    field = []
    for _ in range(2):
        d = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        d = cv2.GaussianBlur(d, (0, 0), s, borderType=cv2.BORDER_REFLECT)
        d /= max(float(np.abs(d).max()), 1e-6)
        field.append(cv2.resize(d, (w, h), interpolation=cv2.INTER_CUBIC) * alpha * side)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask.astype(np.float32), xs + field[0], ys + field[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def deform_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random elastic warp, erosion or dilation and blur of a hard mask; returns a soft mask in [0, 1]."""
    import cv2

    h, w = mask.shape
    side = max(h, w)
    m = elastic_warp(mask, rng, alpha=rng.uniform(0.01, 0.05)) > 0.5
    m = m.astype(np.uint8)
    r = int(rng.integers(1, max(2, side // 25)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = rng.integers(3)
    if op == 0:
        m = cv2.erode(m, kernel)
    elif op == 1:
        m = cv2.dilate(m, kernel)
    k = int(rng.integers(max(3, side // 40), max(5, side // 10))) | 1
    soft = cv2.GaussianBlur(m.astype(np.float32), (k, k), 0)
    if rng.random() < 0.5:  # a second blur keeps the inside at 1 but widens the transition
        soft = cv2.GaussianBlur(soft, (k, k), 0)
        soft = np.clip(soft * rng.uniform(1.0, 1.5), 0, 1)
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def light_augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour, contrast and sharpness changes of an (H, W, 3) uint8 image (SBI's source/target transform)."""
    import cv2

    x = img.astype(np.float32)
    # per-channel shift and gain (RGB shift + brightness/contrast)
    x = x * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20)
    x = x + rng.uniform(-12, 12, size=3)[None, None, :]
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.85, 1.15) + mean
    # saturation
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(0.8, 1.2)
    x = np.clip(x, 0, 255)
    r = rng.random()
    h, w = img.shape[:2]
    if r < 0.3:  # sharpen
        blur = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.8, 1.5))
        x = np.clip(x + rng.uniform(0.3, 1.0) * (x - blur), 0, 255)
    elif r < 0.6:  # blur
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.3))
    elif r < 0.85:  # down-up resize
        f = rng.uniform(0.5, 0.85)
        small = cv2.resize(x, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(x, 0, 255).astype(np.uint8)


def random_affine(img: np.ndarray, rng: np.random.Generator, shift: float = 0.03, scale: float = 0.05) -> np.ndarray:
    """Small random translation (fraction ``shift`` of the side) and scale (1 +- ``scale``) about the centre."""
    import cv2

    h, w = img.shape[:2]
    s = rng.uniform(1 - scale, 1 + scale)
    tx, ty = rng.uniform(-shift, shift, 2) * np.array([w, h])
    m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float64)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(img: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, gray: bool | None = None) -> SelfBlend:
    """Make one self-blended face.

    Parameters
    ----------
    img : ndarray, shape (H, W, 3), uint8
        A real face (typically an aligned crop with context).
    landmarks : ndarray, shape (5, 2)
        Its five landmarks in ``img`` pixels.
    rng : Generator
    gray : bool, optional
        Return a grayscale result (for grayscale sources, so colour mismatch does not leak through);
        default: detected from ``img``.

    Returns
    -------
    SelfBlend
    """
    img = np.ascontiguousarray(img[..., :3])
    if gray is None:
        gray = bool(np.ptp(img.astype(np.int16), axis=2).max() <= 2)
    source, target = img.copy(), img.copy()
    if rng.random() < 0.5:
        source = light_augment(source, rng)
    else:
        target = light_augment(target, rng)
    source = random_affine(source, rng)
    hull = hull_mask(face_outline(landmarks, rng, jitter=0.25), img.shape[:2])
    soft = deform_mask(hull, rng)
    ratio = float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
    m = soft * ratio
    out = source.astype(np.float32) * m[..., None] + target.astype(np.float32) * (1.0 - m[..., None])
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if gray:
        g = (0.299 * out[..., 0] + 0.587 * out[..., 1] + 0.114 * out[..., 2]).round().astype(np.uint8)
        out = np.repeat(g[..., None], 3, axis=2)
    return SelfBlend(image=out, mask=m.astype(np.float32), boundary=(4.0 * soft * (1.0 - soft)).astype(np.float32))
