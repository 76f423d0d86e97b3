"""Zero-shot "coding surprise" of an image (in the spirit of ZED, Cozzolino et al., ECCV 2024).

A small lossless predictive coder trained on real photos only (:class:`verity.models.nets.ZedNet`,
run as ONNX) gives, for every pixel of the 8-bit luma, a discretised Laplace distribution predicted
from the pixels above and to the left. Two numbers summarise how the image codes:

* the **coding cost** ``NLL``: the mean negative log-likelihood of the actual pixels (bits/pixel);
* the **expected cost** ``H``: the mean entropy of the predicted distributions (bits/pixel), i.e. what
  the model itself expects to pay.

Their difference ``D = NLL - H`` is the surprise. The ZED hypothesis: a generator's images are
*more predictable than the model expects* (``D`` lower than on real photos), because the model
learned the statistics of real photos, whose fine detail (sensor noise, optics) is less regular.
The statistics are computed at several resolutions: the luma and its 2x and 4x reductions (2x2 mean,
rounded back to integers), each scored on a few native-resolution crops.

Pure numpy (OpenCV only through :func:`verity.ops.npr.select_crops`); the network is passed in as a
function so this module never imports onnxruntime.
"""

from __future__ import annotations

import numpy as np

LN2 = float(np.log(2.0))


def luma8(pixels: np.ndarray) -> np.ndarray:
    """8-bit luma (ITU-R BT.601 weights, :func:`verity.ops.jpeg.luma` rounded) of an (H, W, 3) or (H, W)
    image, uint8 (H, W)."""
    from verity.ops.jpeg import luma

    return np.clip(np.rint(luma(pixels)), 0, 255).astype(np.uint8)


def reduce2(y: np.ndarray) -> np.ndarray:
    """2x reduction of an integer image: mean of each 2x2 cell, rounded (odd edges dropped), uint8."""
    y = np.asarray(y, np.float32)
    h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
    y = y[:h, :w]
    m = 0.25 * (y[0::2, 0::2] + y[1::2, 0::2] + y[0::2, 1::2] + y[1::2, 1::2])
    return np.clip(np.floor(m + 0.5), 0, 255).astype(np.uint8)


def pyramid(y: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """``[y, reduce2(y), reduce2(reduce2(y)), ...]`` with ``levels`` entries (stops under 8 px)."""
    out = [np.asarray(y, np.uint8)]
    while len(out) < levels and min(out[-1].shape) >= 16:
        out.append(reduce2(out[-1]))
    return out


def laplace_nll(x: np.ndarray, mu: np.ndarray, log_b: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats) of integers ``x`` under Laplace(``mu``, exp(``log_b``)) in unit bins.

    Bins are ``[k - 0.5, k + 0.5)``; the range is not clipped to [0, 255] (callers skip saturated
    pixels). Same formula as :func:`verity.models.nets.discretized_laplace_logp` (torch).
    """
    x = np.asarray(x, np.float64)
    mu = np.asarray(mu, np.float64)
    b = np.exp(np.asarray(log_b, np.float64))
    lo = (x - 0.5 - mu) / b
    hi = (x + 0.5 - mu) / b
    log_edge = np.log(-np.expm1(-1.0 / b)) + np.log(0.5)
    right = log_edge - np.maximum(lo, 0.0)
    left = log_edge + np.minimum(hi, 0.0)
    centre = np.log(np.maximum(0.5 * -np.expm1(np.minimum(lo, 0.0)) + 0.5 * -np.expm1(-np.maximum(hi, 0.0)), 1e-300))
    return -np.where(lo >= 0, right, np.where(hi <= 0, left, centre))


def laplace_entropy(mu: np.ndarray, log_b: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the discretised Laplace of :func:`laplace_nll`, in closed form.

    With ``m`` the bin holding ``mu``, the bins to either side carry geometric masses (ratio
    ``r = exp(-1/b)``), so the sum over all integers reduces to the central bin plus two geometric
    series.
    """
    mu = np.asarray(mu, np.float64)
    b = np.exp(np.asarray(log_b, np.float64))
    d = mu - np.floor(mu + 0.5)  # offset of mu inside its bin, [-0.5, 0.5)
    u = (0.5 - d) / b  # distance (in scales) from mu to the right edge of its bin
    v = (0.5 + d) / b
    q = -np.expm1(-1.0 / b)  # 1 - r
    r = 1.0 - q
    p0 = 0.5 * -np.expm1(-u) + 0.5 * -np.expm1(-v)
    h = -p0 * np.log(np.maximum(p0, 1e-300))
    tail = r / (q * b)
    for w in (u, v):
        s = 0.5 * np.exp(-w)  # mass of that side
        log_a = np.log(0.5) - w + np.log(q)  # log of the first bin's mass on that side
        h = h + s * (tail - log_a)
    return h


def coding_stats(y: np.ndarray, params: np.ndarray, margin: int = 2) -> dict:
    """Coding cost and expected cost of one integer image under the predicted distributions.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Integer grey levels (the coded image).
    params : ndarray, shape (2, H, W)
        Predicted mean and natural-log scale per pixel (the network's output).
    margin : int
        Pixels skipped at the top, left and right borders (their causal context is partly padding).

    Returns
    -------
    dict
        ``nll`` and ``entropy`` in bits per pixel, ``d`` = nll - entropy, ``ratio`` = nll / entropy,
        ``n`` pixels used (saturated pixels, 0 or 255, are skipped: the model does not clip).
    """
    y = np.asarray(y, np.float64)
    mu, lb = np.asarray(params[0], np.float64), np.asarray(params[1], np.float64)
    h, w = y.shape
    keep = np.zeros((h, w), bool)
    keep[margin:, margin:max(margin, w - margin)] = True
    keep &= (y > 0) & (y < 255)
    n = int(keep.sum())
    if n == 0:
        return {"nll": float("nan"), "entropy": float("nan"), "d": float("nan"), "ratio": float("nan"), "n": 0}
    nll = float(laplace_nll(y[keep], mu[keep], lb[keep]).mean() / LN2)
    ent = float(laplace_entropy(mu[keep], lb[keep]).mean() / LN2)
    return {"nll": nll, "entropy": ent, "d": nll - ent, "ratio": nll / max(ent, 1e-9), "n": n}


def image_stats(pixels: np.ndarray, predict, crop: int = 128, max_crops: int = 4, levels: int = 3,
                margin: int = 2) -> dict:
    """Coding statistics of an image at ``levels`` resolutions, each on up to ``max_crops`` crops.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) or (H, W), uint8
    predict : callable
        Maps a batch (N, 1, h, w) float32 of integer grey levels to (N, 2, h, w) parameters.
    crop, max_crops, levels, margin
        Crop side at every level, most crops per level, pyramid levels, border skipped.

    Returns
    -------
    dict
        ``levels``: one dict per level with ``boxes`` (in that level's pixels), ``boxes_full`` (the
        same boxes in full-resolution pixels), ``crops`` (per-crop :func:`coding_stats`) and the
        pixel-weighted means ``nll``, ``entropy``, ``d``; ``d`` / ``nll`` / ``entropy``: the mean of
        the levels' values (every level weighs the same).
    """
    from verity.ops.npr import select_crops

    pyr = pyramid(luma8(pixels), levels)
    out_levels = []
    for li, y in enumerate(pyr):
        if min(y.shape) < 16:
            break
        boxes = [(x0, y0, x0 + (x1 - x0) // 2 * 2, y0 + (y1 - y0) // 2 * 2) for x0, y0, x1, y1 in
                 select_crops(y.astype(np.float32), crop, max_crops)]  # the most textured; even sides (the coarse-to-fine coder pairs pixels)
        batch = np.stack([y[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]).astype(np.float32)[:, None]
        params = np.asarray(predict(batch), np.float32)
        crops = [coding_stats(batch[i, 0], params[i], margin) for i in range(len(boxes))]
        n = np.array([c["n"] for c in crops], np.float64)
        if n.sum() == 0:
            continue
        f = 2 ** li
        lv = {"level": li, "scale": 1.0 / f, "boxes": [tuple(map(int, b)) for b in boxes],
              "boxes_full": [(x0 * f, y0 * f, x1 * f, y1 * f) for x0, y0, x1, y1 in boxes], "crops": crops}
        for k in ("nll", "entropy", "d"):
            vals = np.array([c[k] if c["n"] else 0.0 for c in crops], np.float64)
            lv[k] = float((vals * n).sum() / n.sum())
        out_levels.append(lv)
    res: dict = {"levels": out_levels}
    for k in ("nll", "entropy", "d"):
        res[k] = float(np.mean([lv[k] for lv in out_levels])) if out_levels else float("nan")
    return res


def feature_vector(stats: dict, levels: int = 3) -> np.ndarray:
    """(3 * levels,) features ``[nll_l, entropy_l, d_l for each level]`` (NaN for missing levels)."""
    f = np.full(3 * levels, np.nan)
    for lv in stats["levels"][:levels]:
        i = lv["level"]
        f[3 * i: 3 * i + 3] = (lv["nll"], lv["entropy"], lv["d"])
    return f
