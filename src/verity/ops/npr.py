"""Pure functions for the learned AI-image detectors: the neighbouring-pixel residual, the choice of
native-resolution crops, pooling of crop scores, and the coarse heatmap built from them.

Large images are never resized for the learned branches (resizing erases up-sampling traces):
they are scored as several crops at native resolution and the crop logits are pooled.
"""

from __future__ import annotations

import numpy as np


def rescale(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Scale an (H, W, C) uint8 image by ``factor``: area interpolation when shrinking, cubic when
    enlarging; sides are rounded and kept >= 1 (a copy when the size does not change)."""
    import cv2

    h, w = pixels.shape[:2]
    nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    if (nh, nw) == (h, w):
        return pixels.copy()
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(pixels), (nw, nh), interpolation=interp)


def npr_residual(img: np.ndarray) -> np.ndarray:
    """Neighbouring-pixel residual ``x - up(down(x))`` with nearest 2x resampling (Tan et al. 2024).

    Parameters
    ----------
    img : ndarray, shape (H, W) or (H, W, C)
        Any numeric image.

    Returns
    -------
    ndarray, shape (H', W') or (H', W', C), float32
        ``H' = H // 2 * 2`` and ``W' = W // 2 * 2``. Inside each 2x2 cell the top-left pixel is
        subtracted from all four, so the top-left entry of every cell is zero.
    """
    x = np.asarray(img, np.float32)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    up = np.repeat(np.repeat(x[0::2, 0::2], 2, axis=0), 2, axis=1)
    return x - up


def texture_energy(gray: np.ndarray) -> np.ndarray:
    """Per-pixel texture: absolute Laplacian of the luma, float32, same shape (H, W)."""
    import cv2

    g = np.asarray(gray, np.float32)
    return np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3))


def _positions(length: int, crop: int, n: int) -> list[int]:
    """``n`` evenly spread start offsets of a ``crop`` window in ``length`` (deduplicated)."""
    if length <= crop:
        return [0]
    return sorted({int(round(v)) for v in np.linspace(0, length - crop, n)})


def select_crops(gray: np.ndarray, crop: int, max_crops: int, grid: int = 5) -> list[tuple[int, int, int, int]]:
    """Choose up to ``max_crops`` native-resolution crop boxes, the most textured first.

    Candidates lie on an evenly spaced grid (up to ``grid`` x ``grid`` positions, fewer when the
    image is small); they are ranked by the mean absolute Laplacian inside the box (flat sky and
    walls carry little trace), measured on a copy reduced to at most 768 px a side, ties broken by
    position so the choice is deterministic.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Luma of the image.
    crop : int
        Crop side; images smaller than ``crop`` give one crop of the whole image (clipped sides).
    max_crops : int
        Most crops returned.
    grid : int
        Candidate positions per axis.

    Returns
    -------
    list of (x0, y0, x1, y1)
        Boxes in pixel coordinates, each ``min(crop, W)`` x ``min(crop, H)``.
    """
    h, w = gray.shape[:2]
    cw, ch = min(crop, w), min(crop, h)
    nx = min(grid, max(1, int(np.ceil(w / crop)) + 1)) if w > crop else 1
    ny = min(grid, max(1, int(np.ceil(h / crop)) + 1)) if h > crop else 1
    xs, ys = _positions(w, cw, nx), _positions(h, ch, ny)
    boxes = [(x, y, x + cw, y + ch) for y in ys for x in xs]
    if len(boxes) <= max_crops:
        return boxes
    # rank on a reduced map (texture ranking needs no full resolution; keeps 12 MP images cheap)
    f = max(1, int(np.ceil(max(h, w) / 768)))
    g = np.asarray(gray, np.float32)
    if f > 1:
        import cv2

        g = cv2.resize(g, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    energy = texture_energy(g)
    ii = np.pad(energy.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    gh, gw = energy.shape

    def box_sum(x0: int, y0: int, x1: int, y1: int) -> float:
        a0, b0 = min(gw, x0 // f), min(gh, y0 // f)
        a1, b1 = max(a0 + 1, min(gw, x1 // f)), max(b0 + 1, min(gh, y1 // f))
        return float(ii[b1, a1] - ii[b0, a1] - ii[b1, a0] + ii[b0, a0]) / ((a1 - a0) * (b1 - b0))

    scores = [box_sum(*b) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda i: (-round(scores[i], 4), i))
    return [boxes[i] for i in order[:max_crops]]


def extract_crops(pixels: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Stack crops into the network input: (N, 3, h, w) float32 RGB in [0, 1].

    All boxes must have the same size (as :func:`select_crops` returns).
    """
    arr = np.stack([pixels[y0:y1, x0:x1, :3] for x0, y0, x1, y1 in boxes])
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def pool_topk(logits: np.ndarray, k: int) -> float:
    """Mean of the ``k`` largest crop logits (``k`` clipped to the number of crops)."""
    z = np.sort(np.asarray(logits, np.float64).ravel())[::-1]
    if z.size == 0:
        raise ValueError("no logits to pool")
    return float(z[: max(1, min(int(k), z.size))].mean())


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (N, K) (numerically stable)."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    """Numerically stable logistic function."""
    z = np.asarray(z, np.float64)
    out = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
    return float(out) if out.ndim == 0 else out


def crop_heatmap(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]], scores: np.ndarray,
                 cell: int = 16) -> np.ndarray:
    """Coarse heatmap of crop scores, (ceil(H / cell), ceil(W / cell)) float32 in [0, 1].

    Each cell takes the largest score of the crops covering it; cells no crop covers are 0.

    Parameters
    ----------
    shape : (H, W)
        Image size in pixels.
    boxes : list of (x0, y0, x1, y1)
        Crop boxes.
    scores : ndarray, shape (N,)
        Per-crop probabilities in [0, 1].
    cell : int
        Pixels per heatmap cell (the map keeps the image's aspect ratio).
    """
    h, w = shape
    cell = max(1, int(cell))
    hm = np.zeros((int(np.ceil(h / cell)), int(np.ceil(w / cell))), np.float32)
    for (x0, y0, x1, y1), s in zip(boxes, np.asarray(scores, np.float32).ravel()):
        sl = (slice(y0 // cell, int(np.ceil(y1 / cell))), slice(x0 // cell, int(np.ceil(x1 / cell))))
        hm[sl] = np.maximum(hm[sl], s)
    return np.clip(hm, 0.0, 1.0)


def score_image(pixels: np.ndarray, logits_fn, crop: int, max_crops: int, top_k: int,
                gray: np.ndarray | None = None) -> dict:
    """Score an image as native-resolution crops and pool them (the patch-level protocol).

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
        Image, H and W at least 32.
    logits_fn : callable
        Maps a batch (N, 3, h, w) float32 in [0, 1] to logits (N,).
    crop, max_crops, top_k : int
        See :func:`select_crops` and :func:`pool_topk`. Crop sides are made even (the NPR residual
        works on 2x2 cells).
    gray : ndarray, shape (H, W), optional
        Luma of ``pixels`` when already computed (used only to rank crops by texture).

    Returns
    -------
    dict
        ``boxes`` (list of (x0, y0, x1, y1)), ``logits`` (ndarray (N,)), ``logit`` (pooled float),
        ``score`` (sigmoid of the pooled logit).
    """
    if gray is None:
        gray = 0.299 * pixels[..., 0].astype(np.float32) + 0.587 * pixels[..., 1] + 0.114 * pixels[..., 2]
    h, w = gray.shape
    he, we = h // 2 * 2, w // 2 * 2
    boxes = select_crops(gray[:he, :we], crop, max_crops)
    boxes = [(x0, y0, x0 + (x1 - x0) // 2 * 2, y0 + (y1 - y0) // 2 * 2) for x0, y0, x1, y1 in boxes]
    logits = np.asarray(logits_fn(extract_crops(pixels, boxes)), np.float64).reshape(-1)
    z = pool_topk(logits, top_k)
    return {"boxes": boxes, "logits": logits, "logit": z, "score": float(sigmoid(z))}
