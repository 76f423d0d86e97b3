"""Local noise level estimation and noise inconsistency maps.

The noise standard deviation of a block is estimated from the finest diagonal Haar wavelet
sub-band (HH), where noise dominates (Donoho & Johnstone 1994 use ``median(|HH|) / 0.6745``; we use
the RMS of the smallest half of ``|HH|``, rescaled for the truncated Gaussian, which is about as
robust as the median and, unlike it, is not stuck on the 0.5-level steps of 8-bit data at low
noise). Texture and edges also put energy in HH, so
within each block only the coefficients whose horizontal and vertical detail (``|LH| + |HL|``) is
in the lowest ``keep`` fraction are used: the flattest part of the block, where HH is mostly noise.

Camera noise depends on brightness (shot noise), so the *expected* level of a block is taken from
blocks of similar brightness (a robust binned median), and the deviation map is the log ratio of
each block's level to that expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ``median(|x|) / MAD_SCALE`` estimates the standard deviation of Gaussian ``x``.
MAD_SCALE = 0.6745
#: RMS of a standard Gaussian truncated to its central 50 % (|x| < 0.6745).
TRIM50_SCALE = 0.3777


def haar_subbands(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One level of the orthonormal 2-D Haar transform.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Any numeric image (odd last rows/columns are dropped).

    Returns
    -------
    LL, LH, HL, HH : ndarray, shape (H // 2, W // 2), float32
        Approximation, horizontal-edge, vertical-edge and diagonal detail. White noise of standard
        deviation ``s`` in ``gray`` has standard deviation ``s`` in each detail band.
    """
    g = np.asarray(gray, np.float32)
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    a = g[0:h:2, 0:w:2]
    b = g[0:h:2, 1:w:2]
    c = g[1:h:2, 0:w:2]
    d = g[1:h:2, 1:w:2]
    ll = (a + b + c + d) * 0.5
    lh = (a + b - c - d) * 0.5
    hl = (a - b + c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    return ll, lh, hl, hh


def mad_sigma(x: np.ndarray) -> float:
    """Robust standard deviation ``median(|x|) / 0.6745`` of zero-mean samples (0 for empty input)."""
    x = np.asarray(x, np.float32).ravel()
    return float(np.median(np.abs(x)) / MAD_SCALE) if x.size else 0.0


@dataclass
class NoiseMap:
    """Per-block noise estimates.

    Attributes
    ----------
    sigma : ndarray, shape (by, bx), float32
        Estimated noise standard deviation (gray levels) per block.
    mean : ndarray, shape (by, bx), float32
        Mean brightness per block (0..255).
    valid : ndarray, shape (by, bx), bool
        Blocks that can be judged: not clipped (near black or white) and with measurable noise.
    block : int
        Block side in pixels; block ``(i, j)`` covers rows ``i*block .. (i+1)*block - 1``.
    texture : ndarray, shape (by, bx), float32 or None
        Edge energy of the block's flattest part over what noise alone gives (about 1 for pure noise).
    """

    sigma: np.ndarray
    mean: np.ndarray
    valid: np.ndarray
    block: int
    texture: np.ndarray | None = None


def block_noise_sigma(
    gray: np.ndarray,
    block: int = 32,
    keep: float = 0.5,
    clip_low: float = 12.0,
    clip_high: float = 243.0,
    min_sigma: float = 0.2,
    max_texture: float = 3.0,
) -> NoiseMap:
    """Noise standard deviation per ``block`` x ``block`` block, robust to texture.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Luma in [0, 255].
    block : int
        Even block side in pixels.
    keep : float
        Fraction of each block's HH coefficients used: those with the least edge energy.
    clip_low, clip_high : float
        Blocks whose mean is outside this range are invalid (clipping hides noise).
    min_sigma : float
        Blocks estimated below this are invalid (no measurable noise, e.g. flattened by JPEG).
    max_texture : float
        Blocks whose flattest part still has more than this times the edge energy that noise alone
        explains are invalid: texture, not noise, sets their estimate.

    Returns
    -------
    NoiseMap
        With ``H // block`` x ``W // block`` blocks.
    """
    import cv2

    if block % 2:
        raise ValueError("block must be even")
    ll, lh, hl, hh = haar_subbands(gray)
    bs = block // 2
    by, bx = ll.shape[0] // bs, ll.shape[1] // bs
    if by == 0 or bx == 0:
        z = np.zeros((max(by, 1), max(bx, 1)), np.float32)
        return NoiseMap(z, z.copy(), np.zeros(z.shape, bool), block)
    act = cv2.blur(np.abs(lh) + np.abs(hl), (3, 3))

    def tiles(x: np.ndarray) -> np.ndarray:
        x = x[: by * bs, : bx * bs]
        return x.reshape(by, bs, bx, bs).transpose(0, 2, 1, 3).reshape(by * bx, bs * bs)

    n = bs * bs
    k = max(1, min(n - 1, int(round(keep * n))))
    a = tiles(act)
    sel = np.argpartition(a, k - 1, axis=1)[:, :k]
    hsel = np.abs(np.take_along_axis(tiles(hh), sel, axis=1))
    # trimmed RMS: keep the smallest half of |HH| (as robust to texture and edges as the median),
    # rescale for the truncated Gaussian. Unlike median(|HH|) it is not stuck on the 0.5 steps of
    # 8-bit data at low noise levels, since it averages many values.
    kt = max(1, int(0.5 * k))
    low = np.partition(hsel, kt - 1, axis=1)[:, :kt]
    rms = np.sqrt((low * low).mean(axis=1))
    sigma = (rms / TRIM50_SCALE).reshape(by, bx).astype(np.float32)
    mean = (tiles(ll).mean(axis=1) * 0.5).reshape(by, bx).astype(np.float32)
    # texture: edge energy of the selected (flattest) coefficients relative to what pure noise of
    # the estimated level gives (E(|LH| + |HL|) = 1.6 sigma, a little less after the 3x3 blur)
    asel = np.take_along_axis(a, sel, axis=1)
    texture = (np.median(asel, axis=1).reshape(by, bx) / (1.6 * np.maximum(sigma, 1e-3))).astype(np.float32)
    valid = (mean > clip_low) & (mean < clip_high) & (sigma >= min_sigma) & (texture <= max_texture)
    return NoiseMap(sigma, mean, valid, block, texture)


def expected_log_sigma(log_sigma: np.ndarray, mean: np.ndarray, valid: np.ndarray, bins: int = 6) -> np.ndarray:
    """Expected log noise level of each block given its brightness.

    The valid blocks are split into ``bins`` brightness bins of equal count; the expectation is the
    median log level of the bin (the global median for bins with fewer than 4 blocks).

    Parameters
    ----------
    log_sigma, mean : ndarray, shape (by, bx)
    valid : ndarray, shape (by, bx), bool
    bins : int

    Returns
    -------
    ndarray, shape (by, bx), float32
    """
    out = np.zeros(log_sigma.shape, np.float32)
    if not valid.any():
        return out
    lv = log_sigma[valid]
    mv = mean[valid]
    glob = float(np.median(lv))
    out[:] = glob
    edges = np.quantile(mv, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, bins - 1)
    idv = idx[valid]
    for b in range(bins):
        sel = idv == b
        if sel.sum() >= 4:
            out[idx == b] = float(np.median(lv[sel]))
    return out


@dataclass
class NoiseInconsistency:
    """Result of :func:`noise_inconsistency`.

    Attributes
    ----------
    deviation : ndarray, shape (by, bx), float32
        ``log(sigma / expected)`` per block (0 for invalid blocks), median-filtered 3x3.
    noise : NoiseMap
    spread : float
        Robust standard deviation of the raw log deviation over valid blocks.
    region : ndarray, shape (by, bx), bool
        The largest connected group of anomalous blocks (may be empty).
    ratio : float
        Median ``sigma / expected`` inside ``region`` (1 when empty).
    typical_sigma : float
        Median noise level of the valid blocks.
    """

    deviation: np.ndarray
    noise: NoiseMap
    spread: float
    region: np.ndarray
    ratio: float
    typical_sigma: float


def noise_inconsistency(
    gray: np.ndarray,
    block: int = 32,
    min_log_ratio: float = float(np.log(1.8)),
    z: float = 3.0,
    max_region_frac: float = 0.45,
) -> NoiseInconsistency:
    """Blocks whose noise level departs from the image's typical level at that brightness.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Luma in [0, 255].
    block : int
    min_log_ratio : float
        A block is anomalous when ``|log(sigma / expected)|`` exceeds this and ``z`` spreads.
    z : float
    max_region_frac : float
        A "region" covering more of the valid blocks than this is the image's own variation, not an
        inserted part, and is ignored.

    Returns
    -------
    NoiseInconsistency
    """
    import cv2

    nm = block_noise_sigma(gray, block=block)
    v = nm.valid
    ls = np.log(np.maximum(nm.sigma, 1e-3))
    exp = expected_log_sigma(ls, nm.mean, v)
    dev = np.where(v, ls - exp, 0).astype(np.float32)
    if v.sum() < 8:
        return NoiseInconsistency(dev, nm, 0.0, np.zeros(v.shape, bool), 1.0, float(np.median(nm.sigma)))
    raw = dev[v]
    spread = float(1.4826 * np.median(np.abs(raw - np.median(raw))))
    sm = cv2.medianBlur(dev, 3) if min(dev.shape) >= 3 else dev
    sm = np.where(v, sm, 0).astype(np.float32)
    thr = max(min_log_ratio, z * spread)
    anom = (np.abs(sm) > thr) & v
    region = np.zeros(v.shape, bool)
    ratio = 1.0
    if anom.any():
        # high and low anomalies are separate regions
        for sign in (1, -1):
            m = (anom & (np.sign(sm) == sign)).astype(np.uint8)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            for i in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:
                a = stats[i, cv2.CC_STAT_AREA]
                if a > max_region_frac * v.sum():
                    continue
                if a > region.sum():
                    region = lab == i
                break
        if region.any():
            ratio = float(np.exp(np.median(sm[region])))
    return NoiseInconsistency(sm, nm, spread, region, ratio, float(np.median(nm.sigma[v])))


def subsample_cells(img: np.ndarray, stride: int) -> np.ndarray:
    """Keep one 2x2 pixel cell in every ``stride`` x ``stride`` group of cells.

    Noise statistics measured on 2x2 Haar cells are unchanged (each kept cell is intact), while the
    work drops by ``stride**2``; block ``(i, j)`` of the result covers ``stride`` times as many
    original pixels per side.

    Parameters
    ----------
    img : ndarray, shape (H, W) or (H, W, C)
    stride : int

    Returns
    -------
    ndarray, shape (2 * (H // (2 * stride)), 2 * (W // (2 * stride))[, C])
        A copy, same dtype.
    """
    x = np.asarray(img)
    if stride <= 1:
        return x
    c = 2 * stride
    h, w = x.shape[0] // c, x.shape[1] // c
    x = x[: h * c, : w * c]
    r = x.reshape(h, c, w, c, *x.shape[2:])[:, :2, :, :2]
    return np.ascontiguousarray(r).reshape(2 * h, 2 * w, *x.shape[2:])


def luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma, float32 in [0, 255], of an (H, W, 3) array (2-D input is returned as float32)."""
    p = np.asarray(pixels)
    if p.ndim == 2:
        return p.astype(np.float32)
    p = p.astype(np.float32)
    return 0.299 * p[..., 0] + 0.587 * p[..., 1] + 0.114 * p[..., 2]
