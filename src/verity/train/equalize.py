"""Size- and format-blind training images, and a check that file properties alone cannot tell the classes.

A detector trained on raw files learns whatever separates the classes most cheaply: in our data the real
photos are large EXIF JPEGs and the generated images 512-1024 px PNGs, so "large camera JPEG = real"
is learnable without looking at a single pixel. :func:`equalize_training_image` applies the same
random treatment to every class so that none of the cheap properties survives:

1. decode to pixels (every piece of metadata is gone: EXIF, ICC, XMP, PNG text chunks);
2. draw the output size independently of the image: height and width each uniform in
   ``crop_side`` (so aspect ratio varies too);
3. resample the whole image so that its short side is drawn from one distribution for every class
   (``short_side``, log-uniform; area interpolation down, bicubic up; never below the crop), so a
   crop covers the same share of the scene whether the source was a 12 MP photo or a 512 px PNG;
4. crop position: of ``texture_candidates`` random positions, the one whose texture (mean absolute
   Laplacian) is closest to a level drawn from one distribution for every class, then a horizontal
   flip -- texture decides JPEG file size, and generated images carry more detail per pixel than
   camera photos, so without this the file size alone still told the classes apart (AUC 0.76 on
   the shared data) and "more texture = generated" stayed a shortcut;
5. encode as baseline JPEG at a quality uniform in ``quality`` (standard IJG tables, 4:2:0), no
   metadata.

Width, height, aspect, format, EXIF and JPEG quality of the output are therefore drawn from one
distribution for both classes; only the file size still depends on the content (texture compresses
worse), which the texture-matched crop choice flattens and :func:`property_auc` measures.

:func:`file_properties` reads what a lazy classifier could use from a file (width, height, aspect,
format, size in bytes, bytes per pixel, EXIF present, JPEG quality estimated from the quantisation
tables) and :func:`property_auc` gives the cross-validated (group-aware) ROC AUC of gradient boosting
and logistic regression on those properties alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: the IJG standard luminance quantisation table (quality 50), natural order
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)

PROPERTY_NAMES = ("width", "height", "aspect", "log_bytes", "bytes_per_pixel", "is_jpeg", "is_png",
                  "is_other", "has_exif", "jpeg_quality")


@dataclass(frozen=True)
class EqualizeConfig:
    """Parameters of :func:`equalize_training_image` (the same for every class).

    ``short_side``: the whole image is first resampled so that its short side is drawn log-uniformly
    from this range, whatever its native size (so a crop shows the same share of the scene for every
    class: camera photos are reduced, small generated images enlarged, both resampled).
    ``native_prob``: probability of skipping that resampling instead (native-resolution traces are
    kept, sensor noise and generator up-sampling alike); set it to 0 for fully size-blind data.
    """

    crop_side: tuple[int, int] = (256, 512)
    short_side: tuple[int, int] = (384, 1024)
    native_prob: float = 0.0
    quality: tuple[int, int] = (60, 95)
    flip_prob: float = 0.5
    texture_candidates: int = 8
    texture_range: tuple[float, float] = (2.0, 40.0)


def crop_texture(crop: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of the luma, grey levels (what JPEG file size follows)."""
    y = crop[..., 0] * 0.299 + crop[..., 1] * 0.587 + crop[..., 2] * 0.114 if crop.ndim == 3 else crop.astype(np.float64)
    y = np.asarray(y, dtype=np.float32)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.abs(lap).mean())


def equalize_training_image(pixels: np.ndarray, rng: np.random.Generator, cfg: EqualizeConfig = EqualizeConfig()) -> bytes:
    """One size- and format-blind training file from decoded RGB pixels (the file of
    :func:`equalize_with_texture`)."""
    return equalize_with_texture(pixels, rng, cfg)[0]


def equalize_with_texture(
    pixels: np.ndarray, rng: np.random.Generator, cfg: EqualizeConfig = EqualizeConfig()
) -> tuple[bytes, float]:
    """One size- and format-blind training file from decoded RGB pixels (see the module docstring).

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3), uint8
        Decoded pixels (for example :func:`verity.train.data.load_pixels`).
    rng : numpy.random.Generator
    cfg : EqualizeConfig

    Returns
    -------
    (bytes, float)
        A metadata-free baseline JPEG of exactly the drawn crop size, and the texture of the crop
        before encoding (:func:`crop_texture`), for :func:`balance_by`.
    """
    from verity.train.data import encode, resize

    ch = int(rng.integers(cfg.crop_side[0], cfg.crop_side[1] + 1))
    cw = int(rng.integers(cfg.crop_side[0], cfg.crop_side[1] + 1))
    h, w = pixels.shape[:2]
    lo, hi = np.log(cfg.short_side[0]), np.log(cfg.short_side[1])
    target = float(np.exp(rng.uniform(lo, hi)))
    scale = 1.0 if rng.random() < cfg.native_prob else target / min(h, w)
    scale = max(scale, ch / h, cw / w)  # never smaller than the crop
    img = resize(pixels, scale) if abs(scale - 1.0) > 1e-6 else pixels
    h, w = img.shape[:2]
    if h < ch or w < cw:  # rounding
        img = resize(img, max(ch / h, cw / w) * 1.001)
        h, w = img.shape[:2]
    # crop position: of a few random candidates, the one whose texture is closest to a texture level
    # drawn from one distribution for every class (texture drives file size; without this, "more
    # detail per pixel" -- a bigger file -- would still tell generated images from photos)
    target = float(np.exp(rng.uniform(np.log(cfg.texture_range[0]), np.log(cfg.texture_range[1]))))
    best, best_d = None, np.inf
    for _ in range(max(1, cfg.texture_candidates)):
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        cand = img[y0 : y0 + ch, x0 : x0 + cw]
        d = abs(np.log(crop_texture(cand[::2, ::2]) + 0.5) - np.log(target + 0.5)) if cfg.texture_candidates > 1 else 0.0
        if d < best_d:
            best, best_d = cand, d
    out = best
    if rng.random() < cfg.flip_prob:
        out = out[:, ::-1]
    q = int(rng.integers(cfg.quality[0], cfg.quality[1] + 1))
    out = np.ascontiguousarray(out)
    return encode(out, "jpeg", q), crop_texture(out)


def jpeg_quality_estimate(im) -> float:
    """IJG quality (1-100) that best explains a JPEG's luminance table; 0 for non-JPEG images."""
    q = getattr(im, "quantization", None)
    if not q:
        return 0.0
    t = np.asarray(q.get(0, next(iter(q.values()))), dtype=np.float64)
    if t.size != 64:
        return 0.0
    # Pillow returns the tables in natural (row-major) order, like _STD_LUMA
    s = float(np.median(t / _STD_LUMA) * 100.0)
    if s <= 0:
        return 100.0
    qual = (200.0 - s) / 2.0 if s <= 100 else 5000.0 / s
    return float(np.clip(qual, 1.0, 100.0))




def file_properties(data: bytes) -> dict[str, float]:
    """The properties a pixel-blind classifier could use, read from the file's header and size."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        fmt = (im.format or "").upper()
        try:
            exif = im.getexif()
            has_exif = 1.0 if len(exif) else 0.0
        except Exception:  # noqa: BLE001 -- a broken EXIF block still counts as "some EXIF"
            has_exif = 1.0
        if not has_exif and ("exif" in im.info or "xmp" in im.info):
            has_exif = 1.0
        quality = jpeg_quality_estimate(im) if fmt in ("JPEG", "MPO") else 0.0
    n = len(data)
    return {
        "width": float(w), "height": float(h), "aspect": float(w) / max(1.0, float(h)),
        "log_bytes": float(np.log(max(1, n))), "bytes_per_pixel": n / max(1.0, float(w * h)),
        "is_jpeg": float(fmt in ("JPEG", "MPO")), "is_png": float(fmt == "PNG"),
        "is_other": float(fmt not in ("JPEG", "MPO", "PNG")), "has_exif": has_exif, "jpeg_quality": quality,
    }


def balance_by(values: Sequence[float], labels: Sequence[int], bins: int = 12, seed: int = 0) -> np.ndarray:
    """Indices of a subset in which both classes have the same histogram of ``values``.

    The pooled values are cut into ``bins`` quantile bins; in each bin the larger class is randomly
    reduced to the size of the smaller one. Used on the bytes-per-pixel of equalised training crops:
    per-image equalisation makes size, aspect, format, metadata and JPEG quality class-independent,
    but file size follows texture, and generated images carry more detail per pixel than camera
    photos; matching the classes' texture over the training set removes that last file property
    (and the "more texture = generated" shortcut with it). Balance on the texture of the crops, not
    on bytes per pixel: at a known JPEG quality the file size reveals the texture, so matching file
    sizes alone leaves (size, quality) jointly informative.
    """
    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    rng = np.random.default_rng(seed)
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]) if len(v) else np.array([])
    b = np.searchsorted(edges, v, side="right")
    keep: list[int] = []
    for k in range(bins):
        pos = np.flatnonzero((b == k) & (y == 1))
        neg = np.flatnonzero((b == k) & (y == 0))
        n = min(len(pos), len(neg))
        if n:
            keep += rng.choice(pos, n, replace=False).tolist() + rng.choice(neg, n, replace=False).tolist()
    return np.array(sorted(keep), dtype=int)


def property_auc(
    props: Sequence[dict[str, float]], labels: Sequence[int], groups: Sequence[str], folds: int = 5, seed: int = 0,
    features: Sequence[str] = PROPERTY_NAMES,
) -> dict[str, float]:
    """Out-of-fold ROC AUC of classifiers that see only file properties.

    Folds keep each group on one side (``StratifiedGroupKFold``), so a classifier cannot win by
    recognising a camera or a generator seed family it saw in training. Two models: gradient boosting
    (sklearn ``GradientBoostingClassifier``, single-threaded) and a standardised logistic regression. The AUC is
    the mean of the per-fold AUCs: pooling out-of-fold scores would mix models whose intercepts
    follow each fold's class ratio, which on uninformative features gives AUCs well below 0.5 (and,
    flipped, spuriously high ones). Returns ``{"gbm": ..., "logreg": ..., "max": ..., "n": ..., "n_pos": ...}``.
    """
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.array([[p[f] for f in features] for p in props], dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    g = np.asarray(groups)
    n_groups = min(len(set(g[y == 0])), len(set(g[y == 1])))
    k = max(2, min(folds, n_groups))
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    models = {
        "gbm": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=seed),
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
    }
    out: dict[str, float] = {"n": float(len(y)), "n_pos": float(y.sum())}
    for name, make in models.items():
        aucs = []
        for tr, te in cv.split(X, y, g):
            if len(set(y[te].tolist())) < 2 or len(set(y[tr].tolist())) < 2:
                continue
            m = make()
            m.fit(X[tr], y[tr])
            aucs.append(float(roc_auc_score(y[te], m.predict_proba(X[te])[:, 1])))
        out[name] = float(np.mean(aucs)) if aucs else float("nan")
    out["max"] = max(out["gbm"], out["logreg"])
    return out


def audit(
    records, n_per_class: int | None = 150, seed: int = 0, cfg: EqualizeConfig = EqualizeConfig(),
    crops_per_image: int = 3, bins: int = 20, progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Property-only AUC of a dataset as stored (``raw``), after per-image equalisation
    (``equalized``: ``crops_per_image`` crops of every image) and after texture balancing of those
    crops (``balanced``, :func:`balance_by` on the crops' texture): the training set a size- and
    format-blind trainer would use.

    ``records`` are :class:`verity.train.data.Record` of labels ``authentic`` and ``ai_generated``
    (others are ignored); up to ``n_per_class`` of each (seeded) are used.
    """
    from verity.train.data import decode_pixels

    rng = np.random.default_rng(seed)
    pos = [r for r in records if r.label == "ai_generated"]
    neg = [r for r in records if r.label == "authentic"]

    def pick(rs):
        if n_per_class is None or len(rs) <= n_per_class:
            return list(rs)
        idx = rng.permutation(len(rs))[:n_per_class]
        return [rs[i] for i in sorted(idx)]

    chosen = [(r, 1) for r in pick(pos)] + [(r, 0) for r in pick(neg)]
    it = chosen
    if progress:
        from tqdm import tqdm

        it = tqdm(chosen, desc="auditing", unit="img")
    raw, ys, gs = [], [], []
    eq, eys, egs, texture = [], [], [], []
    for r, y in it:
        try:
            data = open(r.path, "rb").read()
            p = file_properties(data)
            px = decode_pixels(data)
        except Exception:  # noqa: BLE001 -- an unreadable file is left out of every measurement
            continue
        raw.append(p)
        ys.append(y)
        gs.append(r.group)
        for _ in range(crops_per_image):
            data, tex = equalize_with_texture(px, rng, cfg)
            eq.append(file_properties(data))
            texture.append(tex)
            eys.append(y)
            egs.append(r.group)
    keep = balance_by(np.log(np.asarray(texture) + 0.5), eys, bins=bins, seed=seed)
    out = {
        "raw": property_auc(raw, ys, gs, seed=seed),
        "equalized": property_auc(eq, eys, egs, seed=seed),
        "balanced": property_auc([eq[i] for i in keep], [eys[i] for i in keep], [egs[i] for i in keep], seed=seed),
    }
    out["balanced"]["kept_share"] = len(keep) / max(1, len(eq))
    return out
