"""Face alignment: a similarity transform (rotation, uniform scale, translation) that maps the five
MTCNN landmarks onto a canonical template, and the fixed crop recipes built on it.

The template is the Procrustes mean of MTCNN landmarks measured on 200 real faces of the training
data (40 from each face folder), expressed in a square crop of side 1.3 x the MTCNN box height
centred on the box, then made left/right symmetric. With ``zoom=1`` an aligned crop therefore frames
the face like FaceNet's usual "box plus margin" crop, without roll and with the natural aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Canonical landmark positions (left eye, right eye, nose, left and right mouth corner) in a unit
#: square crop, x right and y down.
TEMPLATE = np.array(
    [
        [59.5, 68.1],
        [100.5, 68.1],
        [80.0, 91.6],
        [61.8, 111.1],
        [98.2, 111.1],
    ],
    dtype=np.float64,
) / 160.0


@dataclass(frozen=True)
class CropRecipe:
    """A fixed way of cutting a face out of an image.

    Attributes
    ----------
    size : int
        Output side in pixels.
    zoom : float
        Scale of the template about the crop centre: 1 frames the face like the embedding crop,
        smaller values keep more context around the face.
    """

    size: int
    zoom: float


#: FaceNet input: 160 px, face slightly tighter than the template (zoom 1.1 gave the lowest
#: same-person equal error rate among 0.8-1.1 on the calibration pairs, see docs/faces.md).
EMBEDDING = CropRecipe(size=160, zoom=1.1)
#: Face-manipulation detector input: 128 px with more context (hair line, jaw, neck) so that a
#: blending boundary around the inner face stays inside the crop.
MANIPULATION = CropRecipe(size=128, zoom=0.8)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points to ``dst`` (Umeyama 1991).

    Parameters
    ----------
    src, dst : ndarray, shape (N, 2)
        Corresponding points, N >= 2.

    Returns
    -------
    ndarray, shape (2, 3)
        ``M`` such that ``dst ~= src @ M[:, :2].T + M[:, 2]``; reflections are excluded.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N, 2) arrays with N >= 2, got {src.shape} and {dst.shape}")
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    var = (a**2).sum()
    if var <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    cov = b.T @ a / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    r = u @ np.diag(d) @ vt
    scale = (s * d).sum() / (var / len(src))
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - m[:, :2] @ ms
    return m


def template_points(size: int, zoom: float = 1.0) -> np.ndarray:
    """The template in pixel coordinates of a ``size`` x ``size`` crop, scaled by ``zoom`` about its centre."""
    return ((TEMPLATE - 0.5) * zoom + 0.5) * size


def alignment_matrix(landmarks: np.ndarray, recipe: CropRecipe = EMBEDDING) -> np.ndarray:
    """The (2, 3) image-to-crop transform for five landmarks and a recipe."""
    return estimate_similarity(np.asarray(landmarks, np.float64).reshape(5, 2), template_points(recipe.size, recipe.zoom))


def align_face(image: np.ndarray, landmarks: np.ndarray, recipe: CropRecipe = EMBEDDING) -> tuple[np.ndarray, np.ndarray]:
    """Cut an aligned face crop.

    Parameters
    ----------
    image : ndarray, shape (H, W, C) or (H, W)
    landmarks : ndarray, shape (5, 2)
        MTCNN landmarks in ``image`` pixels.
    recipe : CropRecipe

    Returns
    -------
    crop : ndarray, shape (size, size, C)
        Same dtype as ``image``; pixels outside the image replicate the border.
    matrix : ndarray, shape (2, 3)
        The image-to-crop transform (invert it with :func:`invert_affine`).
    """
    import cv2

    m = alignment_matrix(landmarks, recipe)
    crop = cv2.warpAffine(
        np.ascontiguousarray(image), m, (recipe.size, recipe.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine transform."""
    a = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def crop_to_image(values: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Paste a crop-space map back into image space.

    Parameters
    ----------
    values : ndarray, shape (s, s), float
        A map over an aligned crop (for example a blending-boundary map).
    matrix : ndarray, shape (2, 3)
        The image-to-crop transform the crop was cut with.
    shape : (H, W)
        Output size.

    Returns
    -------
    ndarray, shape (H, W), float32
        ``values`` warped to image coordinates, 0 outside the crop.
    """
    import cv2

    return cv2.warpAffine(
        np.asarray(values, np.float32),
        np.asarray(matrix, np.float64),
        (int(shape[1]), int(shape[0])),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
