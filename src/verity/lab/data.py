"""Image folders for the lab: listing, a fingerprint, a held-out split and random crops.

Images are decoded once, with EXIF orientation applied, downscaled so that the long side is at most
``max_side`` and kept in memory as uint8. Training batches are random square crops (side drawn
log-uniformly between ``size`` and the short side of the cached image, so both whole-picture
downscales and near-native detail appear) resized to ``size`` with area interpolation, with random
horizontal flips. ``crop_mode="center"`` instead takes one square per image, ``crop_scale`` of its short
side, centred horizontally and at ``crop_y`` (fraction of the height) vertically, shifted and scaled
by up to ``jitter`` (a fraction of the side) at random: for folders of similarly framed photos
(portraits), where the whole subject should appear in every crop. All randomness comes from one
``numpy.random.Generator`` so a run can be resumed exactly by restoring its state.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verity.core.errors import VerityError


class DataError(VerityError):
    """The data folder is missing, empty or unreadable."""

    code = "bad_data"
    exit_code = 2


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive, sorted), sniffed by suffix.

    Raises
    ------
    DataError
        When ``root`` is not a folder or holds no images.
    """
    from verity.core.io import IMAGE_SUFFIXES

    p = Path(root)
    if not p.is_dir():
        raise DataError(f"data folder not found: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no image files under {p}")
    return files


def fingerprint(files: list[Path], root: str | os.PathLike | None = None) -> str:
    """SHA-256 of the sorted list of (relative path, size in bytes): changes when files are added,
    removed, renamed or rewritten with a different size."""
    h = hashlib.sha256()
    for f in sorted(files):
        rel = os.path.relpath(f, root) if root is not None else str(f)
        h.update(f"{rel}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


def split_heldout(files: list[Path], root: str | os.PathLike, fraction: float = 0.1) -> tuple[list[Path], list[Path]]:
    """Deterministic train / held-out split by a hash of each file's relative path.

    At least one file is held out when there are 4 or more files; with fewer, the held-out list is
    empty (the Frechet distance is then skipped).
    """
    if len(files) < 4 or fraction <= 0:
        return list(files), []
    keyed = sorted(files, key=lambda f: hashlib.sha1(os.path.relpath(f, root).encode()).hexdigest())
    k = max(1, int(round(len(files) * fraction)))
    held = set(keyed[:k])
    return [f for f in files if f not in held], [f for f in files if f in held]


def read_rgb(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Decode an image to RGB uint8 (H, W, 3) in display orientation, long side at most ``max_side``.

    JPEGs are decoded at a reduced DCT scale when that is enough (fast for large camera files).
    """
    from PIL import Image, ImageOps

    from verity.core.io import read_bytes

    data = read_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            if max_side and max(im.size) > max_side:
                s = max_side / max(im.size)
                im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
        raise DataError(f"cannot decode {path}: {type(e).__name__}: {e}") from None


def resize_area(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


@dataclass
class ImageSet:
    """Decoded images of one folder (or a list of files) kept in memory.

    Parameters
    ----------
    files : list of Path
    size : int
        Side of the square crops :meth:`batch` returns.
    max_side : int
        Long side of the cached images.
    crop_mode : {"random", "center"}
        ``random``: squares of a log-uniform side anywhere in the image; ``center``: one framed square
        per image (see ``crop_scale``, ``crop_y``, ``jitter``).
    crop_scale : float
        ``center``: side of the square as a fraction of the image's short side (0 < s <= 1).
    crop_y : float
        ``center``: vertical centre of the square as a fraction of the image height.
    jitter : float
        ``center``: random shift (each axis) and scale change of up to this fraction of the side.
    """

    files: list[Path]
    size: int
    max_side: int = 384
    images: list[np.ndarray] = field(default_factory=list, repr=False)
    crop_mode: str = "random"
    crop_scale: float = 1.0
    crop_y: float = 0.5
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_mode not in ("random", "center"):
            raise DataError(f"crop mode must be 'random' or 'center', got {self.crop_mode!r}")
        if not 0 < self.crop_scale <= 1:
            raise DataError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        if not 0 <= self.jitter < 0.5:
            raise DataError(f"jitter must be in [0, 0.5), got {self.jitter}")

    def load(self, progress: bool = False) -> "ImageSet":
        import cv2

        cv2.setNumThreads(1)
        it = self.files
        if progress:
            from tqdm import tqdm

            it = tqdm(self.files, desc="loading images", unit="img", leave=False)
        imgs = []
        for f in it:
            try:
                im = read_rgb(f, self.max_side)
            except Exception:  # noqa: BLE001 - skip unreadable files, reported by count
                continue
            if min(im.shape[:2]) < 8:
                continue
            if min(im.shape[:2]) < self.size:  # upscale tiny images so a crop fits
                s = self.size / min(im.shape[:2])
                im = cv2.resize(im, (max(self.size, round(im.shape[1] * s)), max(self.size, round(im.shape[0] * s))),
                                interpolation=cv2.INTER_CUBIC)
            imgs.append(im)
        if not imgs:
            raise DataError("none of the images could be decoded")
        self.images = imgs
        return self

    def crop(self, rng: np.random.Generator, idx: int | None = None) -> np.ndarray:
        """One random square crop resized to ``size``: (size, size, 3) uint8."""
        if idx is None:
            idx = int(rng.integers(len(self.images)))
        im = self.images[idx]
        h, w = im.shape[:2]
        short = min(h, w)
        if self.crop_mode == "center":
            y, x, side = self._framed(h, w, rng)
        else:
            lo, hi = np.log(self.size), np.log(short)
            side = int(round(np.exp(rng.uniform(lo, hi)))) if hi > lo else short
            side = min(max(side, self.size), short)
            y = int(rng.integers(0, h - side + 1))
            x = int(rng.integers(0, w - side + 1))
        c = im[y:y + side, x:x + side]
        if side != self.size:
            c = resize_area(c, self.size)
        if rng.random() < 0.5:
            c = c[:, ::-1]
        return np.ascontiguousarray(c)

    def _framed(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int]:
        """(y, x, side) of the framed square, jittered, clipped into the image."""
        short = min(h, w)
        j = self.jitter
        u = rng.uniform(-1.0, 1.0, 3) if j > 0 else np.zeros(3)
        side = int(round(self.crop_scale * short * (1.0 + j * u[0])))
        side = min(max(side, min(self.size, short)), short)
        cy = self.crop_y * h + j * side * u[1]
        cx = 0.5 * w + j * side * u[2]
        y = int(round(min(max(cy - side / 2, 0), h - side)))
        x = int(round(min(max(cx - side / 2, 0), w - side)))
        return y, x, side

    def batch(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random crops: (n, size, size, 3) uint8."""
        return np.stack([self.crop(rng) for _ in range(n)])

    def fixed_crops(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` crops cycling through the images in order with a fixed seed (for evaluation)."""
        rng = np.random.default_rng(seed)
        return np.stack([self.crop(rng, i % len(self.images)) for i in range(n)])


def to_tensor(batch: np.ndarray):
    """(N, H, W, 3) uint8 -> float32 torch tensor (N, 3, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """Float tensor (N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 array."""
    a = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte()
    return a.permute(0, 2, 3, 1).cpu().numpy()
