"""Turning heatmaps into regions and sentences, and comparing masks."""

from __future__ import annotations

import numpy as np


def resize_map(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D map to ``shape`` (H, W) with bilinear interpolation (float32 out)."""
    import cv2

    m = np.asarray(m, np.float32)
    if m.shape == tuple(shape):
        return m
    return cv2.resize(m, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of the same shape (0 when both are empty)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def heatmap_mask(heatmap: np.ndarray, shape: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """Boolean mask of ``heatmap >= threshold`` at image size ``shape``."""
    return resize_map(heatmap, shape) >= threshold


def regions(mask: np.ndarray, min_area_frac: float = 0.002, max_regions: int = 3) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1), largest first, of the connected components of ``mask``."""
    import cv2

    m = np.asarray(mask, np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    min_area = max(1, int(min_area_frac * m.size))
    boxes = [
        (int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3]), int(s[4]))
        for s in stats[1:]
        if s[4] >= min_area
    ]
    boxes.sort(key=lambda b: -b[4])
    return [b[:4] for b in boxes[:max_regions]]


def describe_box(box: tuple[int, int, int, int]) -> str:
    """``"x=120..310, y=40..200"`` (inclusive pixel ranges)."""
    x0, y0, x1, y1 = box
    return f"x={x0}..{x1 - 1}, y={y0}..{y1 - 1}"


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the True pixels, or None."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
