"""Heatmap and image rendering (PNG bytes) shared by the CLI, the HTML report and the API."""

from __future__ import annotations

import io

import numpy as np

from verity.core.io import apply_orientation


def colorize(heatmap: np.ndarray, shape: tuple[int, int], orientation: int = 1) -> np.ndarray:
    """Turn a heatmap into an RGBA overlay of the image's display size.

    Parameters
    ----------
    heatmap : ndarray, shape (h, w), float in [0, 1]
        In stored-pixel orientation, any resolution.
    shape : (H, W)
        Stored image size.
    orientation : int
        EXIF orientation to apply, so the overlay matches the displayed image.

    Returns
    -------
    ndarray, shape (H', W', 4), uint8
        Colour-mapped (inferno-like) with alpha rising with the value.
    """
    import cv2

    h = np.clip(np.nan_to_num(np.asarray(heatmap, np.float32)), 0, 1)
    h = cv2.resize(h, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR if h.shape[0] < shape[0] else cv2.INTER_AREA)
    u8 = (h * 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO)[..., ::-1]
    alpha = (np.clip(h * 1.6, 0.0, 1.0) * 220).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    return np.ascontiguousarray(apply_orientation(rgba, orientation))


def png_bytes(arr: np.ndarray) -> bytes:
    """Encode an (H, W), (H, W, 3) or (H, W, 4) uint8 array as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def jpeg_bytes(arr: np.ndarray, quality: int = 88) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def display_image(pixels: np.ndarray, orientation: int = 1, max_side: int = 1600) -> np.ndarray:
    """Oriented and, when large, down-scaled copy of the pixels for showing."""
    import cv2

    img = np.ascontiguousarray(apply_orientation(pixels, orientation))
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def heatmap_png(heatmap: np.ndarray, pixels_shape: tuple[int, int], orientation: int = 1, max_side: int = 1600) -> bytes:
    """PNG of a heatmap overlay at display size (capped at ``max_side``)."""
    h, w = pixels_shape
    s = min(1.0, max_side / max(h, w))
    shape = (max(1, round(h * s)), max(1, round(w * s)))
    return png_bytes(colorize(heatmap, shape, orientation))
