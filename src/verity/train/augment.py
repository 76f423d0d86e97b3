"""Training augmentation for the learned AI-image detectors (numpy / OpenCV / Pillow, no torch).

Every image, real or fake, goes through the same chain on decoded, metadata-free pixels, so neither
the container nor the compression history nor the size can be learned:

random scale 0.5-1.5 (half of the time), or instead, with ``fit_prob`` (0 by default; 0.35 in
the trainer's recipe v3), a whole-image reduction to a web size (long side log-uniform in
``fit_side``, 256-1024 px by default, 512-1024 in recipe v3; images already smaller are left alone)
-> random crop -> horizontal flip -> Gaussian blur (sigma 0.3-2, p 0.2) or else unsharp masking
(amount 0.3-1.5, p 0.1; the trainer's recipe v1 sets it to 0) -> Gaussian noise (sigma 1-4 grey
levels, p 0.15) -> grayscale (p 0.1) -> JPEG at quality 50-100 (p 0.9; otherwise left lossless).

The web-size reduction exists because a detector trained on native-resolution crops of
multi-megapixel camera photos and on 512 px generated images learns "a crop shows whole objects" as
a sign of generation: with recipe v1, the held-out real camera photos reduced to 512 px were
flagged three times as often as at full size (0.24 against 0.07, semantic branch; see "Round 4" in
docs/benchmarks/learned.md).

(Wang et al. 2020 show blur + JPEG augmentation is what makes a CNN detector generalise; Tan et al.
2024 note that NPR is fragile to resizing and JPEG unless it is trained with both.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verity.train.data import encode, resize


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of :func:`augment_crop` (defaults as in the module docstring)."""

    scale_prob: float = 0.5
    scale_range: tuple[float, float] = (0.5, 1.5)
    fit_prob: float = 0.0
    fit_side: tuple[int, int] = (256, 1024)
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 2.0)
    sharpen_prob: float = 0.1
    sharpen_amount: tuple[float, float] = (0.3, 1.5)
    noise_prob: float = 0.15
    noise_sigma: tuple[float, float] = (1.0, 4.0)
    gray_prob: float = 0.1
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (50, 100)


#: No augmentation except the crop (the NPR paper's own recipe: crops and flips only).
CROP_ONLY = AugmentConfig(scale_prob=0.0, blur_prob=0.0, sharpen_prob=0.0, noise_prob=0.0, gray_prob=0.0, jpeg_prob=0.0)


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Encode (H, W, 3) uint8 pixels as a metadata-free JPEG at ``quality`` and decode them again."""
    import cv2

    data = encode(pixels, "jpeg", int(quality))
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out[..., ::-1])


def unsharp(pixels: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """Unsharp masking: ``x + amount * (x - blur(x))``, clipped to uint8."""
    import cv2

    x = pixels.astype(np.float32)
    out = x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def random_crop_scaled(pixels: np.ndarray, side: int, rng: np.random.Generator,
                       scale: float = 1.0) -> np.ndarray:
    """A ``side`` x ``side`` crop of ``pixels`` scaled by ``scale``.

    The source window (``side / scale`` pixels) is cut first and then resized, which is the same as
    resizing the whole image and cropping, at a fraction of the cost. When the image is too small
    for the window, the scale is raised until it fits (small images are up-scaled, never padded).

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
    side : int
    rng : numpy.random.Generator
    scale : float

    Returns
    -------
    ndarray, shape (side, side, 3), uint8
    """
    h, w = pixels.shape[:2]
    scale = max(float(scale), side / min(h, w))
    win = min(min(h, w), max(1, int(round(side / scale))))
    y0 = int(rng.integers(0, h - win + 1))
    x0 = int(rng.integers(0, w - win + 1))
    out = np.ascontiguousarray(pixels[y0:y0 + win, x0:x0 + win])
    if win != side:
        out = resize(out, side / win)
        out = out[:side, :side]
        if out.shape[0] < side or out.shape[1] < side:  # rounding: pad by edge replication
            out = np.pad(out, ((0, side - out.shape[0]), (0, side - out.shape[1]), (0, 0)), mode="edge")
    return out


def augment_crop(pixels: np.ndarray, side: int, rng: np.random.Generator,
                 cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One augmented ``side`` x ``side`` training crop (uint8 RGB) following ``cfg``.

    Deterministic given the state of ``rng``.
    """
    import cv2

    if cfg.fit_prob > 0 and rng.random() < cfg.fit_prob:
        target = float(np.exp(rng.uniform(np.log(cfg.fit_side[0]), np.log(cfg.fit_side[1]))))
        scale = min(1.0, target / max(pixels.shape[:2]))
    else:
        scale = float(np.exp(rng.uniform(np.log(cfg.scale_range[0]), np.log(cfg.scale_range[1])))) \
            if rng.random() < cfg.scale_prob else 1.0
    out = random_crop_scaled(pixels, side, rng, scale)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*cfg.blur_sigma)))
    elif cfg.sharpen_prob > 0 and rng.random() < cfg.sharpen_prob:
        out = unsharp(out, float(rng.uniform(*cfg.sharpen_amount)))
    if rng.random() < cfg.noise_prob:
        n = rng.normal(0.0, float(rng.uniform(*cfg.noise_sigma)), out.shape)
        out = np.clip(out.astype(np.float32) + n, 0, 255).astype(np.uint8)
    if rng.random() < cfg.gray_prob:
        g = (0.299 * out[..., 0] + 0.587 * out[..., 1] + 0.114 * out[..., 2]).round().astype(np.uint8)
        out = np.repeat(g[..., None], 3, axis=2)
    if rng.random() < cfg.jpeg_prob:
        out = jpeg_roundtrip(out, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return out
