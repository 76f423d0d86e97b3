"""Nearest training image of each generated sample, by cosine similarity of MobileNetV2 features.

A generator trained on a few hundred images can memorise some of them. Each training image is
embedded in many views (the whole image squashed to a square, and square windows of 100 %, 75 % and
50 % of its short side slid by half a window, roughly the range of crops the trainer feeds the
models), each downscaled to the samples' resolution first so that both sides are equally blurred;
each sample is compared with every view and the best match is reported. A sample whose best cosine
similarity reaches ``threshold`` is flagged as a near copy. The default threshold
(:data:`DEFAULT_THRESHOLD`) was set from measurements described in ``docs/lab.md``.
"""

from __future__ import annotations

import os

import numpy as np

#: cosine similarity at or above which a sample is called a near copy (see docs/lab.md for how it was set)
DEFAULT_THRESHOLD = 0.90
#: square window sides, as fractions of the image's short side, of the sliding views
SCALES = (1.0, 0.75, 0.5)


def views(img: np.ndarray, size: int | None = 64) -> tuple[list[np.ndarray], list[str]]:
    """Views of an (H, W, 3) training image and their names.

    The whole image (squashed to a square), then square windows of each side in :data:`SCALES`
    (times the short side) slid with a stride of half the window, each resized (area) to
    ``size`` x ``size`` so that they are compared with samples at the samples' resolution
    (``size=None`` keeps the crops as they are).
    """
    from verity.lab.data import resize_area

    h, w = img.shape[:2]
    s = min(h, w)
    out, names = [img], ["whole"]
    for f in SCALES:
        side = max(1, int(round(s * f)))
        step = max(1, side // 2)
        ys = sorted(set(list(range(0, h - side + 1, step)) + [h - side]))
        xs = sorted(set(list(range(0, w - side + 1, step)) + [w - side]))
        for y in ys:
            for x in xs:
                out.append(img[y:y + side, x:x + side])
                names.append(f"{int(f * 100)}% window at x={x}, y={y}")
    if size:
        out = [resize_area(np.ascontiguousarray(v), size) if v.shape[0] == v.shape[1] else
               _squash(v, size) for v in out]
    return out, names


def _squash(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def l2n(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def embed_training(dirs: list[str | os.PathLike], max_side: int = 384, size: int = 64, progress: bool = False):
    """Unit-norm features (N_views, 1280) of the training views and, per row, (file, view name)."""
    from verity.lab.data import list_images, read_rgb
    from verity.lab.fd import FeatureExtractor

    fe = FeatureExtractor.shared()
    files = sorted({f for d in dirs for f in list_images(d)})
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc="embedding training images", unit="img", leave=False)
    feats, keys = [], []
    for f in it:
        try:
            im = read_rgb(f, max_side)
        except Exception:  # noqa: BLE001 - unreadable training files are skipped
            continue
        vs, names = views(im, size)
        feats.append(fe.features(vs))
        keys += [(str(f), v) for v in names]
    return l2n(np.concatenate(feats)), keys


def nearest(samples: str | os.PathLike, train: list[str | os.PathLike], threshold: float = DEFAULT_THRESHOLD,
            size: int | None = None, progress: bool = False) -> list[dict]:
    """For each image under ``samples``: its nearest training image and view, the cosine similarity
    and whether it is a near copy (cosine >= ``threshold``)."""
    from verity.lab.data import list_images, read_rgb
    from verity.lab.fd import FeatureExtractor

    if isinstance(train, (str, os.PathLike)):
        train = [train]
    sfiles = list_images(samples)
    simgs = [read_rgb(f, 384) for f in sfiles]
    # compare at the samples' resolution (their median side) unless told otherwise
    size = size or int(np.median([min(im.shape[:2]) for im in simgs]))
    tf, keys = embed_training(train, size=size, progress=progress)
    fe = FeatureExtractor.shared()
    sf = l2n(fe.features(simgs))
    sims = sf @ tf.T
    rows = []
    for i, f in enumerate(sfiles):
        j = int(np.argmax(sims[i]))
        c = float(sims[i, j])
        rows.append({"sample": str(f), "nearest": keys[j][0], "view": keys[j][1], "cosine": round(c, 4),
                     "near_copy": bool(c >= threshold)})
    return rows


def training_similarity(sample_feats: np.ndarray, train_feats: np.ndarray) -> np.ndarray:
    """Best cosine similarity of each (unit-norm) sample feature to any training feature: (N,)."""
    return (l2n(sample_feats) @ l2n(train_feats).T).max(axis=1)


