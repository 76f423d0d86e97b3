"""Sampling, sample grids and full-resolution reconstruction through a trained autoencoder.

:func:`reconstruct_image` passes an image of any size through the autoencoder in overlapping tiles
that are blended with a linear ramp over the overlap, so the output has exactly the input's size and
no visible seams: content-matched synthetic counterparts of real photos for detector training.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from verity.lab.marks import write_png


def grid_image(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) grid."""
    n, h, w = images.shape[:3]
    cols = cols or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = images[i]
    return out


def save_grid(path: str | os.PathLike, x, family: str, run_id: str, cols: int | None = None) -> Path:
    """Write a marked PNG grid of a (N, 3, H, W) tensor in [-1, 1]."""
    from verity.lab.data import to_uint8

    return write_png(path, grid_image(to_uint8(x), cols), family, run_id, description="sample grid")


def sample_images(fam, n: int, seed: int = 0, batch: int = 32, progress: bool = False, **kw: Any) -> np.ndarray:
    """``n`` samples from a loaded family as (n, H, W, 3) uint8; the same seed gives the same images."""
    import torch

    from verity.lab.data import to_uint8

    g = torch.Generator().manual_seed(int(seed))
    out = []
    it = range(0, n, batch)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="sampling", unit="batch", leave=False)
    for i in it:
        out.append(to_uint8(fam.sample(min(batch, n - i), g, **kw)))
    return np.concatenate(out) if out else np.zeros((0, fam.cfg["size"], fam.cfg["size"], 3), np.uint8)


def sample_run(run_dir: str | os.PathLike, n: int, out_dir: str | os.PathLike, seed: int = 0,
               device: str | None = None, progress: bool = True, sign: bool = False, **kw: Any) -> list[Path]:
    """Write ``n`` marked PNG samples of a run to ``out_dir`` (``<run_id>_s<seed>_<i>.png``)."""
    from verity.lab.trainer import load_run

    fam, info = load_run(run_dir, device)
    imgs = sample_images(fam, n, seed, progress=progress, **kw)
    out = Path(out_dir)
    paths = []
    for i, im in enumerate(imgs):
        paths.append(write_png(out / f"{info['run_id']}_s{seed}_{i:05d}.png", im, info["family"], info["run_id"],
                               description=f"sample {i} of seed {seed}", sign=sign))
    return paths


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    s = list(range(0, length - tile, step))
    s.append(length - tile)
    return s


def _ramp(tile: int, overlap: int) -> np.ndarray:
    i = np.arange(tile, dtype=np.float32) + 0.5
    o = max(1, overlap)
    return np.clip(np.minimum(i / o, (tile - i) / o), 1e-3, 1.0)


def reconstruct_image(fam, pixels: np.ndarray, tile: int = 256, overlap: int = 32, batch: int = 4) -> np.ndarray:
    """Pass an (H, W, 3) uint8 image through an autoencoder family at full resolution.

    The image is reflect-padded to a multiple of the autoencoder's down-sampling factor (and at least
    one tile when it is small), cut into ``tile`` x ``tile`` tiles overlapping by ``overlap`` pixels,
    and the reconstructed tiles are blended with weights that ramp linearly over the overlap.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    import torch

    from verity.lab.data import to_tensor

    if not hasattr(fam, "reconstruct"):
        raise ValueError(f"{fam.name} runs cannot reconstruct images; use an autoencoder run")
    f = fam.nets["ae"].factor
    h, w = pixels.shape[:2]
    tile = max(f, (int(tile) // f) * f)
    overlap = min(int(overlap), tile // 2)
    ph = max(int(math.ceil(h / f)) * f, min(tile, int(math.ceil(h / f)) * f))
    pw = max(int(math.ceil(w / f)) * f, min(tile, int(math.ceil(w / f)) * f))
    mode = "reflect" if (ph - h < h and pw - w < w) else "edge"
    img = np.pad(pixels, ((0, ph - h), (0, pw - w), (0, 0)), mode=mode)
    th, tw = min(tile, ph), min(tile, pw)
    ys, xs = _starts(ph, th, th - overlap), _starts(pw, tw, tw - overlap)
    wgt = _ramp(th, overlap)[:, None] * _ramp(tw, overlap)[None, :]
    acc = np.zeros((ph, pw, 3), np.float32)
    wsum = np.zeros((ph, pw, 1), np.float32)
    coords = [(y, x) for y in ys for x in xs]
    for i in range(0, len(coords), batch):
        cs = coords[i:i + batch]
        x_in = to_tensor(np.stack([img[y:y + th, x:x + tw] for y, x in cs]))
        with torch.no_grad():
            rec = fam.reconstruct(x_in).cpu()
        rec = (rec.clamp(-1, 1).permute(0, 2, 3, 1).numpy() + 1.0) * 127.5
        for (y, x), r in zip(cs, rec):
            acc[y:y + th, x:x + tw] += r * wgt[..., None]
            wsum[y:y + th, x:x + tw] += wgt[..., None]
    out = acc / np.maximum(wsum, 1e-8)
    return np.clip(np.round(out[:h, :w]), 0, 255).astype(np.uint8)


def reconstruct_paths(run_dir: str | os.PathLike, inputs: list[str], out_dir: str | os.PathLike,
                      max_side: int | None = None, tile: int = 256, overlap: int = 32, device: str | None = None,
                      progress: bool = True, sign: bool = False) -> tuple[list[Path], list[str]]:
    """Reconstruct image files (folders are expanded) into marked PNGs named ``<stem>.png``.

    Returns the written paths and one-line messages for the inputs that could not be read.
    """
    from verity.core.io import iter_image_paths
    from verity.lab.data import read_rgb
    from verity.lab.trainer import load_run

    fam, info = load_run(run_dir, device)
    if info["family"] != "autoencoder":
        from verity.lab.trainer import RunError

        raise RunError(f"{run_dir} is a {info['family']} run; reconstruction needs an autoencoder run")
    paths = iter_image_paths(inputs)
    out = Path(out_dir)
    written, failed = [], []
    used: set[str] = set()
    it = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="reconstructing", unit="img")
    for p in it:
        try:
            px = read_rgb(p, max_side)
        except Exception as e:  # noqa: BLE001 - reported, the others go on
            failed.append(f"{p}: {e}")
            continue
        rec = reconstruct_image(fam, px, tile=tile, overlap=overlap)
        stem = Path(p).stem
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        written.append(write_png(out / f"{name}.png", rec, "autoencoder", info["run_id"],
                                 description=f"autoencoder reconstruction of {Path(p).name}", sign=sign))
    return written, failed
