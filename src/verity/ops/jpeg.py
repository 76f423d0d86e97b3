"""JPEG compression forensics: block DCT, quantization tables, re-quantization (ghosts), aligned
double-quantization likelihoods, lattice tests of shifted grids (non-aligned double JPEG) and
error levels.

Everything works on luma (ITU-R BT.601 ``Y``) as a float array of shape (H, W) in [0, 255], the
channel that JPEG encoders keep at full resolution. Block arrays have shape (nby, nbx, 8, 8) with
the last two axes the vertical and horizontal frequency (natural, row-major order, like the tables
Pillow returns). Decisions are made per tile of ``tile`` x ``tile`` pixels (32 by default, four by
four blocks). numpy and scipy.sparse; OpenCV for box filters, separable filters and JPEG coding.

The DCT is the orthonormal 8x8 DCT-II of ``Y - 128``, which is exactly the transform JPEG
quantizes: a block re-quantized in this domain equals the block an encoder with the same table
would produce (before the final rounding to integers), and by Parseval the squared error of the
coefficients equals the squared error of the pixels. That lets :func:`ghost_curves` compute
Farid's JPEG ghosts without encoding the image once per quality.
"""

from __future__ import annotations

import numpy as np

#: The IJG (Annex K) luminance table, natural order, quality 50.
STD_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int32,
)

#: The IJG (Annex K) chrominance table, natural order, quality 50.
STD_CHROMA = np.array(
    [[17, 18, 24, 47] + [99] * 4, [18, 21, 26, 66] + [99] * 4, [24, 26, 56] + [99] * 5, [47, 66] + [99] * 6]
    + [[99] * 8] * 4,
    dtype=np.int32,
)


def zigzag_indices() -> np.ndarray:
    """Flat natural-order indices (row * 8 + col) of the 64 coefficients in JPEG zig-zag order.

    Returns
    -------
    ndarray, shape (64,), int
    """
    order = sorted(((r, c) for r in range(8) for c in range(8)), key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]))
    return np.array([r * 8 + c for r, c in order], dtype=np.int64)


def ijg_table(quality: int, base: np.ndarray = STD_LUMA) -> np.ndarray:
    """The quantization table libjpeg (Pillow, OpenCV, GIMP...) uses at ``quality``.

    Parameters
    ----------
    quality : int
        1..100.
    base : ndarray, shape (8, 8)
        The quality-50 table (:data:`STD_LUMA` or :data:`STD_CHROMA`).

    Returns
    -------
    ndarray, shape (8, 8), int32
        Entries clipped to 1..255 (baseline).
    """
    q = int(min(100, max(1, quality)))
    if base is STD_LUMA:
        return _IJG_LUMA[q].copy()
    return _ijg(q, np.asarray(base, np.int64))


def _ijg(q: int, base: np.ndarray) -> np.ndarray:
    scale = 5000 // q if q < 50 else 200 - 2 * q
    t = (np.asarray(base, np.int64) * scale + 50) // 100
    return np.clip(t, 1, 255).astype(np.int32)


_IJG_LUMA = {q: _ijg(q, STD_LUMA) for q in range(1, 101)}


def table_from_sample(quantization: dict | None, table_id: int = 0) -> np.ndarray | None:
    """The (8, 8) natural-order table ``table_id`` of a :class:`~verity.core.types.Sample`'s
    ``quantization`` dict, or ``None`` when absent or malformed.

    Pillow (>= 8.3) returns tables in natural order; that is what this function assumes.
    """
    if not quantization or table_id not in quantization:
        return None
    t = np.asarray(quantization[table_id], dtype=np.int64).ravel()
    if t.size != 64 or t.min() < 1:
        return None
    return t.reshape(8, 8).astype(np.int32)


def estimate_quality(table: np.ndarray, base: np.ndarray = STD_LUMA) -> tuple[int, float]:
    """The IJG quality whose table is closest to ``table``.

    Parameters
    ----------
    table : ndarray, shape (8, 8)
        A natural-order quantization table.
    base : ndarray
        :data:`STD_LUMA` for table 0, :data:`STD_CHROMA` for table 1.

    Returns
    -------
    quality : int
        1..100.
    mismatch : float
        Mean absolute difference to that IJG table, relative to the table's mean (0 means the
        file was written with the standard IJG scaling, as most software does; cameras often use
        their own tables and give a mismatch of 0.05 or more).
    """
    t = np.asarray(table, np.float64).reshape(8, 8)
    best = (50, np.inf)
    for q in range(1, 101):
        d = float(np.abs(ijg_table(q, base) - t).mean())
        if d < best[1]:
            best = (q, d)
    return best[0], best[1] / max(float(t.mean()), 1e-9)


def luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (H, W, 3) uint8 image as float32 (H, W); 2-D input is passed through."""
    p = np.asarray(pixels)
    if p.ndim == 2:
        return p.astype(np.float32)
    p = p.astype(np.float32)
    return 0.299 * p[..., 0] + 0.587 * p[..., 1] + 0.114 * p[..., 2]


def dct_matrix(n: int = 8) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` (n, n): ``D @ x`` is the DCT of a column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


_D = dct_matrix().astype(np.float32)
_DT = np.ascontiguousarray(_D.T)


def block_dct(y: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """JPEG's forward transform of every 8x8 block of a luma image.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Luma in [0, 255].
    offset : (int, int)
        Grid origin (dy, dx) in 0..7; (0, 0) is the grid of the file's own compression.

    Returns
    -------
    ndarray, shape (nby, nbx, 8, 8), float32
        Orthonormal DCT-II of ``block - 128``; ``[..., u, v]`` is vertical frequency ``u`` and
        horizontal frequency ``v``. Incomplete blocks at the right and bottom are dropped.
    """
    dy, dx = offset
    a = np.asarray(y, np.float32)[dy:, dx:]
    nby, nbx = a.shape[0] // 8, a.shape[1] // 8
    a = a[: nby * 8, : nbx * 8] - np.float32(128.0)
    t = np.matmul(_D, a.reshape(nby, 8, nbx * 8))  # vertical transform, (nby, 8u, W)
    t = np.matmul(t.reshape(-1, 8), _DT)  # horizontal transform
    return np.ascontiguousarray(t.reshape(nby, 8, nbx, 8).transpose(0, 2, 1, 3))


def blocks_dct(b: np.ndarray) -> np.ndarray:
    """2-D orthonormal DCT of stacked blocks (..., 8, 8); see :func:`block_dct`."""
    return np.matmul(np.matmul(_D, np.asarray(b, np.float32)), _DT)


def blocks_idct(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`blocks_dct` (..., 8, 8)."""
    return np.matmul(np.matmul(_DT, np.asarray(c, np.float32)), _D)


def lowpass_mask(n: int) -> np.ndarray:
    """Boolean (8, 8) mask of the first ``n`` coefficients in zig-zag order (DC included)."""
    m = np.zeros(64, bool)
    m[zigzag_indices()[:n]] = True
    return m.reshape(8, 8)


def requant_error(coefs: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Squared error that re-quantizing with ``table`` causes, per block.

    Parameters
    ----------
    coefs : ndarray, shape (N, K)
        Coefficients of N blocks at K frequencies.
    table : ndarray, shape (K,)
        Quantization steps of the same frequencies.

    Returns
    -------
    ndarray, shape (N,), float32
        ``sum_k (c - q round(c / q))**2``; by Parseval this is the squared pixel error of a JPEG
        re-save with that table (before rounding the output to integers).
    """
    q = np.asarray(table, np.float32)
    r = coefs / q
    r -= np.rint(r)
    r *= q
    return np.einsum("nk,nk->n", r, r)


def ghost_curves(
    coefs: np.ndarray, qualities: np.ndarray | list[int], n_freq: int = 28, base: np.ndarray = STD_LUMA
) -> np.ndarray:
    """JPEG ghost difference curves (Farid 2009) computed in the DCT domain.

    Parameters
    ----------
    coefs : ndarray, shape (nby, nbx, 8, 8)
        Block DCT of the luma on the file's grid (:func:`block_dct`).
    qualities : sequence of int
        IJG qualities to re-save at.
    n_freq : int
        Number of zig-zag frequencies used (the rest carry mostly noise at these qualities).
    base : ndarray
        Base table (luma).

    Returns
    -------
    ndarray, shape (len(qualities), nby, nbx), float32
        Mean squared pixel difference per block between the image and its re-save at each quality.
    """
    nby, nbx = coefs.shape[:2]
    m = lowpass_mask(n_freq)
    c = coefs[:, :, m].reshape(-1, int(m.sum()))
    out = np.empty((len(qualities), nby, nbx), np.float32)
    for i, q in enumerate(qualities):
        out[i] = requant_error(c, ijg_table(int(q), base)[m]).reshape(nby, nbx) / 64.0
    return out


def dq_membership(k: np.ndarray, q2: np.ndarray, q1: np.ndarray, tol: float = 1.0) -> np.ndarray:
    """Whether each quantized coefficient could have passed through a coarser step ``q1`` first.

    A coefficient quantized with ``q1`` and then with ``q2 < q1`` can only take the values
    ``k = round(q1 * n / q2)``; a value ``k * q2`` farther than ``q2 / 2 + tol`` from every multiple
    of ``q1`` rules the double quantization out (the periodic gaps of the aligned double-JPEG
    histogram, Lin et al. 2009).

    Parameters
    ----------
    k : ndarray, shape (N, K), integer-valued
        Coefficients quantized with ``q2`` (``round(c / q2)``).
    q2, q1 : ndarray, shape (K,)
        Last and candidate first quantization steps per frequency.
    tol : float
        Allowance for rounding in decoding (DCT units).

    Returns
    -------
    ndarray, shape (N, K), bool
    """
    v = k * np.asarray(q2, np.float32)
    q1f = np.asarray(q1, np.float32)
    r = np.abs(v - q1f * np.rint(v / q1f))
    return r <= np.asarray(q2, np.float32) / 2.0 + tol


def dq_informative(k: np.ndarray, q2: np.ndarray, tol: float = 1.0) -> np.ndarray:
    """Whether a quantized coefficient can vote in the double-quantization test: its value
    ``|k * q2|`` lies beyond the window ``q2 / 2 + tol`` around zero that every lattice shares
    (with ``q2 = 1`` small values such as ``k = 1`` pass :func:`dq_membership` for any ``q1``)."""
    return np.abs(k * np.asarray(q2, np.float32)) > np.asarray(q2, np.float32) / 2.0 + tol


def dq_hit_rate(q2: np.ndarray, q1: np.ndarray, tol: float = 1.0, kmax: int = 64) -> np.ndarray:
    """Fraction of the informative integers ``k`` in ``[1, kmax]`` (:func:`dq_informative`) that
    :func:`dq_membership` accepts: the chance that a single-compressed coefficient passes the
    test, per frequency (K,)."""
    ks = np.arange(1, kmax + 1, dtype=np.float32)[:, None]
    q2 = np.broadcast_to(np.asarray(q2, np.float32), np.shape(q1))
    hit = dq_membership(ks, q2, np.asarray(q1, np.float32), tol)
    inf = dq_informative(ks, q2, tol)
    return (hit & inf).sum(axis=0) / np.maximum(inf.sum(axis=0), 1)


def dq_loglik(
    coefs: np.ndarray,
    q2_table: np.ndarray,
    q1_tables: list[np.ndarray],
    n_freq: int = 21,
    tol: float = 1.0,
    p_hit: float = 0.95,
    max_rate: float = 0.6,
) -> np.ndarray:
    """Per-block log-likelihood ratio of "quantized with a coarser table first" (aligned double
    JPEG) against single compression, for each candidate first table.

    Each nonzero coefficient among the first ``n_freq`` zig-zag AC frequencies votes with
    ``log(p_hit / rho)`` when :func:`dq_membership` accepts it and ``log((1 - p_hit) / (1 - rho))``
    when it does not, ``rho`` being the acceptance rate under single compression
    (:func:`dq_hit_rate`). Frequencies where ``rho > max_rate`` (first step not coarser than the
    last) are skipped. Values near zero (:func:`dq_informative`) carry no vote.

    Parameters
    ----------
    coefs : ndarray, shape (nby, nbx, 8, 8)
        Block DCT of the decoded luma on the file's grid.
    q2_table : ndarray, shape (8, 8)
        The file's luma table.
    q1_tables : list of ndarray, shape (8, 8)
        Candidate primary tables.

    Returns
    -------
    ndarray, shape (len(q1_tables), nby, nbx), float32
    """
    nby, nbx = coefs.shape[:2]
    zz = zigzag_indices()[1:n_freq]
    q2 = np.asarray(q2_table, np.float32).ravel()[zz]
    c = coefs.reshape(-1, 64)[:, zz]
    k = np.rint(c / q2)
    nz = dq_informative(k, q2, tol)
    out = np.zeros((len(q1_tables), nby * nbx), np.float32)
    for i, t1 in enumerate(q1_tables):
        q1 = np.asarray(t1, np.float32).ravel()[zz]
        rho = dq_hit_rate(q2, q1, tol)
        use = rho <= max_rate
        if not use.any():
            continue
        hit = dq_membership(k[:, use], q2[use], q1[use], tol)
        w_hit = np.log(p_hit / rho[use]).astype(np.float32)
        w_miss = np.log((1 - p_hit) / (1 - rho[use])).astype(np.float32)
        score = np.where(hit, w_hit, w_miss) * nz[:, use]
        out[i] = score.sum(axis=1)
    return out.reshape(len(q1_tables), nby, nbx)


def box_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sum of ``a`` (ny, nx, ...) over the k x k neighbourhood of each cell, same shape; cells
    outside the array count as zero."""
    a = np.asarray(a, np.float32)
    if k <= 1:
        return a.copy()
    lo, hi = k // 2, k - 1 - k // 2
    out = a.copy()
    for axis in (0, 1):
        src = out
        out = src.copy()
        n = src.shape[axis]
        for d in range(1, max(lo, hi) + 1):
            if d <= lo and d < n:  # neighbours before
                sl_dst = [slice(None)] * a.ndim
                sl_src = [slice(None)] * a.ndim
                sl_dst[axis] = slice(d, None)
                sl_src[axis] = slice(None, n - d)
                out[tuple(sl_dst)] += src[tuple(sl_src)]
            if d <= hi and d < n:  # neighbours after
                sl_dst = [slice(None)] * a.ndim
                sl_src = [slice(None)] * a.ndim
                sl_dst[axis] = slice(None, n - d)
                sl_src[axis] = slice(d, None)
                out[tuple(sl_dst)] += src[tuple(sl_src)]
    return out


def error_level(pixels: np.ndarray, quality: int = 92) -> np.ndarray:
    """Error level analysis: the absolute difference between an image and its JPEG re-save.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) uint8 RGB, or (H, W) luma
        The image (luma is rounded to uint8 first).
    quality : int
        Re-save quality (libjpeg via OpenCV, grayscale).

    Returns
    -------
    ndarray, shape (H, W), uint8
        Per-pixel absolute luma difference (0..255).
    """
    import cv2

    p = np.asarray(pixels)
    if p.ndim == 3:
        y = cv2.cvtColor(np.ascontiguousarray(p, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    elif p.dtype == np.uint8:
        y = np.ascontiguousarray(p)
    else:
        y = np.clip(np.rint(p), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", y, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.absdiff(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), y)


def tile_means(a: np.ndarray, tile: int) -> np.ndarray:
    """Mean of ``a`` (H, W) over whole ``tile`` x ``tile`` tiles, shape (H // tile, W // tile),
    float64 (through an integral image, so uint8 input stays cheap)."""
    import cv2

    h, w = a.shape
    nty, ntx = h // tile, w // tile
    s = cv2.integral(np.ascontiguousarray(a[: nty * tile, : ntx * tile]), sdepth=cv2.CV_64F)
    c = s[::tile, ::tile]
    return (c[1:, 1:] - c[:-1, 1:] - c[1:, :-1] + c[:-1, :-1]) / float(tile * tile)


def shifted_coefficients(y: np.ndarray, freqs: list[tuple[int, int]]) -> np.ndarray:
    """DCT coefficients of the 8x8 block anchored at *every* pixel, for a few frequencies.

    ``out[i, r, c]`` is coefficient ``freqs[i] = (u, v)`` of the block ``y[r:r+8, c:c+8] - 128``,
    so the coefficients of the grid with origin (dy, dx) are ``out[i, dy::8, dx::8]``. Computed as
    one separable correlation per frequency, which makes all 64 grid shifts cost about as much as
    one block DCT.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Luma.
    freqs : list of (int, int)
        (vertical, horizontal) frequencies.

    Returns
    -------
    ndarray, shape (len(freqs), H - 7, W - 7), float32
    """
    import cv2

    a = np.asarray(y, np.float32) - np.float32(128.0)
    h, w = a.shape
    out = np.empty((len(freqs), h - 7, w - 7), np.float32)
    for i, (u, v) in enumerate(freqs):
        r = cv2.sepFilter2D(a, cv2.CV_32F, _D[v], _D[u], anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        out[i] = r[: h - 7, : w - 7]
    return out


# --------------------------------------------------------------------------------------------
# Tiling helpers
# --------------------------------------------------------------------------------------------


def tile_grid(shape: tuple[int, int], tile: int = 32, stride: int = 1) -> tuple[int, int]:
    """Number of tile rows and columns analysed: whole ``tile`` x ``tile`` tiles, every
    ``stride``-th one in each direction (tiles start at multiples of ``tile * stride``)."""
    h, w = shape
    nty, ntx = h // tile, w // tile
    return (nty + stride - 1) // stride if nty else 0, (ntx + stride - 1) // stride if ntx else 0


def mosaic(y: np.ndarray, tile: int = 32, stride: int = 1) -> np.ndarray:
    """The tiles chosen by :func:`tile_grid` packed side by side into one smaller image.

    Tiles are multiples of 8 pixels and start on the 8x8 grid, so every JPEG block of the mosaic
    is a block of the original image: block-wise analyses (DCT, re-quantization) of the mosaic
    equal those of the selected tiles of the image.

    Returns
    -------
    ndarray, shape (nty * tile, ntx * tile)
    """
    h, w = y.shape
    nty, ntx = h // tile, w // tile
    a = np.asarray(y)[: nty * tile, : ntx * tile].reshape(nty, tile, ntx, tile)[::stride, :, ::stride, :]
    my, mx = a.shape[0], a.shape[2]
    return np.ascontiguousarray(a).reshape(my * tile, mx * tile)


# --------------------------------------------------------------------------------------------
# Aligned double JPEG, per tile (histogram form of dq_loglik)
# --------------------------------------------------------------------------------------------


def dq_tile_loglik(
    coefs: np.ndarray,
    q2_table: np.ndarray,
    qualities: list[int],
    tile_blocks: int = 4,
    n_freq: int = 21,
    tol: float = 1.0,
    p_hit: float = 0.95,
    max_rate: float = 0.6,
    kmax: int = 48,
) -> np.ndarray:
    """Aligned double-JPEG log-likelihood ratio per tile and candidate first quality.

    Same model as :func:`dq_loglik` (candidate first tables are the IJG tables at ``qualities``),
    computed from per-tile histograms of the quantized coefficients: one ``bincount`` per
    frequency and one small matrix product, instead of one pass over all blocks per candidate.

    Parameters
    ----------
    coefs : ndarray, shape (nby, nbx, 8, 8)
        Block DCT on the file's grid; ``nby`` and ``nbx`` multiples of ``tile_blocks``.
    q2_table : ndarray, shape (8, 8)
        The file's luma table.
    qualities : list of int
        Candidate IJG qualities of the first compression.
    tile_blocks : int
        Tile side in blocks.

    Returns
    -------
    ndarray, shape (nty, ntx, len(qualities)), float32
    """
    nby, nbx = coefs.shape[:2]
    nty, ntx = nby // tile_blocks, nbx // tile_blocks
    zz = zigzag_indices()[1:n_freq]
    q2 = np.asarray(q2_table, np.float32).ravel()[zz]
    c = coefs[: nty * tile_blocks, : ntx * tile_blocks].reshape(nty, tile_blocks, ntx, tile_blocks, 64)
    c = c.transpose(0, 2, 1, 3, 4).reshape(nty * ntx, tile_blocks * tile_blocks, 64)[:, :, zz]
    nbins = 2 * kmax + 1
    nf, nt = len(zz), nty * ntx
    k = np.clip(np.rint(c / q2), -kmax, kmax).astype(np.int64) + kmax  # (T, B, F)
    # each tile sums the votes of its (block, frequency) values: row f * nbins + k of the table,
    # i.e. its coefficient histogram times the table, as one sparse product
    k += np.arange(nf, dtype=np.int64)[None, None, :] * nbins
    lut = _dq_lut(tuple(float(v) for v in q2), tuple(int(q) for q in qualities), n_freq, tol, p_hit, max_rate, kmax)
    out = _csr_rows_times(k.reshape(nt, -1).astype(np.int32), lut)  # (T, Q)
    return out.reshape(nty, ntx, len(qualities))


_DQ_LUT_CACHE: dict = {}


def _dq_lut(
    q2: tuple[float, ...], qualities: tuple[int, ...], n_freq: int, tol: float, p_hit: float, max_rate: float, kmax: int
) -> np.ndarray:
    """Votes of :func:`dq_tile_loglik`: (F * (2 kmax + 1), Q) log-likelihood ratio of each
    quantized value of each frequency for each candidate first quality (cached per table)."""
    key = (q2, qualities, n_freq, tol, p_hit, max_rate, kmax)
    if key in _DQ_LUT_CACHE:
        return _DQ_LUT_CACHE[key]
    zz = zigzag_indices()[1:n_freq]
    q2a = np.asarray(q2, np.float32)
    q1s = np.stack([_IJG_LUMA[q].ravel()[zz] for q in qualities]).astype(np.float32)  # (Q, F)
    kv = np.arange(-kmax, kmax + 1, dtype=np.float32)
    blocks = []
    for fi in range(len(zz)):
        hit = dq_membership(kv[:, None], q2a[fi], q1s[:, fi][None, :], tol)  # (nbins, Q)
        rho = dq_hit_rate(np.full(len(qualities), q2a[fi]), q1s[:, fi], tol)  # (Q,)
        use = rho <= max_rate
        rho = np.clip(rho, 1e-3, 1 - 1e-3)
        lut = np.where(hit, np.log(p_hit / rho), np.log((1 - p_hit) / (1 - rho))).astype(np.float32)
        lut[:, ~use] = 0.0
        lut[~dq_informative(kv, q2a[fi], tol)] = 0.0  # values near zero fit every lattice: no vote
        lut[0] = lut[-1] = 0.0  # clipped magnitudes: unknown value
        blocks.append(lut)
    out = np.concatenate(blocks, axis=0)
    if len(_DQ_LUT_CACHE) > 8:
        _DQ_LUT_CACHE.clear()
    _DQ_LUT_CACHE[key] = out
    return out


# --------------------------------------------------------------------------------------------
# Non-aligned double JPEG: DC lattice at every grid shift
# --------------------------------------------------------------------------------------------


class TileView:
    """The tiles of :func:`tile_grid` (``tile``, ``stride``) with an 8-pixel margin, ready for
    analyses that cut 8x8 blocks at any offset inside each tile.

    With ``stride == 1`` the view is the image itself (``pitch == tile``); otherwise the chosen
    tiles plus the 8 pixels to their right and below are gathered into one smaller image whose
    cells are ``pitch = tile + 8`` pixels apart. ``row0`` and ``col0`` hold the tiles' origins in
    the image, to tell which blocks run past its edges.
    """

    def __init__(self, y: np.ndarray, tile: int = 32, stride: int = 1):
        y = np.asarray(y, np.float32)
        self.h, self.w = y.shape
        self.tile, self.stride = tile, stride
        self.nty, self.ntx = tile_grid(y.shape, tile, stride)
        self.row0 = np.arange(self.nty) * tile * stride
        self.col0 = np.arange(self.ntx) * tile * stride
        if stride == 1:
            self.pitch = tile
            self.data = y
        else:
            self.pitch = tile + 8
            ri = np.minimum((self.row0[:, None] + np.arange(self.pitch)[None]).ravel(), self.h - 1)
            ci = np.minimum((self.col0[:, None] + np.arange(self.pitch)[None]).ravel(), self.w - 1)
            self.data = np.ascontiguousarray(y[ri][:, ci])

    def valid(self, dy: int = 0, dx: int = 0, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Whether the 8x8 block anchored at ``offset + step * i`` inside each tile lies within
        the image: (nty, tile // step) rows and (ntx, tile // step) columns."""
        p = np.arange(0, self.tile, step)
        vr = self.row0[:, None] + dy + p[None] + 8 <= self.h
        vc = self.col0[:, None] + dx + p[None] + 8 <= self.w
        return vr, vc

    def cells(self, dy: int, dx: int) -> np.ndarray:
        """The image of every tile shifted by (dy, dx) (< 8), tiles side by side:
        shape (nty * tile, ntx * tile); pixels past the image edge are 0."""
        t = self.tile
        if self.stride == 1:
            out = np.zeros((self.nty * t, self.ntx * t), np.float32)
            part = self.data[dy : dy + self.nty * t, dx : dx + self.ntx * t]
            out[: part.shape[0], : part.shape[1]] = part
            return out
        d = self.data.reshape(self.nty, self.pitch, self.ntx, self.pitch)[:, dy : dy + t, :, dx : dx + t]
        return np.ascontiguousarray(d).reshape(self.nty * t, self.ntx * t)


def dc_steps(qualities: list[int]) -> list[int]:
    """Distinct DC quantization steps of the IJG luma tables at ``qualities``, ascending."""
    return sorted({int(ijg_table(q)[0, 0]) for q in qualities})


def dc_lattice_scan(
    y: np.ndarray,
    steps: list[int],
    tile: int = 32,
    stride: int = 1,
    cell: int = 8,
    min_std: float = 2.0,
    resolution: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit of the DC coefficients of every grid shift to the lattice of each candidate DC step,
    summed per tile (non-aligned double JPEG, after Bianchi & Piva 2012).

    The DC coefficient of the 8x8 block at (r, c) is ``8 * (mean - 128)``, so one box filter gives
    it for all 64 grid shifts at once. A region once JPEG-compressed on a grid shifted by
    (dy, dx) keeps DCs near multiples of its first DC step ``q`` on that grid, even after being
    re-saved on the file's own grid. The fit of a value ``v`` is ``1 - 12 * frac(v / q)**2``:
    about 1 on the lattice and 0 on average (variance 0.8) for values unrelated to it. Blocks
    flatter than ``min_std`` (whose DC sits on any lattice) are skipped.

    Parameters
    ----------
    y : ndarray, shape (H, W), or TileView
        Luma (or a prepared :class:`TileView`, whose tile and stride then apply).
    steps : list of int
        Candidate first DC steps.
    tile : int
        Tile side in pixels (multiple of ``cell``).
    stride : int
        Analyse every ``stride``-th tile in each direction (see :func:`tile_grid`).
    cell : int
        Use the blocks whose corner lies in the first 8 x 8 pixels of every ``cell`` x ``cell``
        cell: 8 uses all, 16 a quarter of the blocks of each shift (the cost is proportional).
    min_std : float
        Minimum pixel standard deviation of a block.
    resolution : int
        Sub-steps per DC unit of the lookup table.

    Returns
    -------
    fit : ndarray, shape (nty, ntx, len(steps), 8, 8), float32
        Sum of fits per tile, candidate step and grid shift (dy, dx).
    count : ndarray, shape (nty, ntx, 8, 8), float32
        Number of blocks summed per tile and shift.
    """
    import cv2

    view = y if isinstance(y, TileView) else TileView(y, tile, stride)
    tile, nty, ntx, pitch = view.tile, view.nty, view.ntx, view.pitch
    if nty == 0 or ntx == 0:
        return np.zeros((0, 0, len(steps), 8, 8), np.float32), np.zeros((0, 0, 8, 8), np.float32)
    yv = view.data
    s1 = cv2.boxFilter(yv, cv2.CV_32F, (8, 8), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    s2 = cv2.boxFilter(yv * yv, cv2.CV_32F, (8, 8), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    lut_n = 2048 * resolution + 2  # last row: sentinel for skipped blocks
    # lookup index of every block's DC (s1 / 8 = DC + 1024); flat blocks and blocks running past
    # the image get the sentinel
    idx_full = np.rint(s1 * np.float32(resolution / 8.0)).astype(np.int32)
    np.clip(idx_full, 0, lut_n - 2, out=idx_full)
    s1 *= s1
    s1 *= np.float32(1.0 / 64.0)
    s2 -= s1  # 64 * variance
    idx_full[s2 < 64.0 * min_std**2] = lut_n - 1
    a = idx_full[: nty * pitch, : ntx * pitch].reshape(nty, pitch, ntx, pitch)[:, :tile, :, :tile]
    vr, vc = view.valid()
    a = np.where(vr[:, :, None, None] & vc[None, None, :, :], a, lut_n - 1)
    nc = tile // cell
    a = a.reshape(nty, nc, cell, ntx, nc, cell)[:, :, :8, :, :, :8]
    idx = np.ascontiguousarray(a.transpose(0, 3, 2, 5, 1, 4)).reshape(nty * ntx * 64, nc * nc)
    count = (idx != lut_n - 1).sum(axis=1).astype(np.float32)
    lut = _dc_lut(tuple(int(q) for q in steps), resolution)
    g, m = idx.shape
    fit = _csr_rows_times(idx, lut)  # (groups, steps), group = (tile, dy, dx)
    fit = fit.reshape(nty, ntx, 8, 8, len(steps)).transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(fit), count.reshape(nty, ntx, 8, 8)


_LUT_CACHE: dict = {}
_ONES = np.ones(0, np.float32)


def _dc_lut(steps: tuple[int, ...], resolution: int) -> np.ndarray:
    """Lattice fit ``1 - 12 frac(v / q)**2`` of DC values ``v`` on a grid of ``1 / resolution``,
    one column per step, plus a zero sentinel row."""
    key = (steps, resolution)
    if key not in _LUT_CACHE:
        lut_n = 2048 * resolution + 2
        vals = np.arange(lut_n, dtype=np.float64) / resolution - 1024.0
        fr = vals[:, None] / np.asarray(steps, np.float64)[None, :]
        fr -= np.rint(fr)
        lut = (1.0 - 12.0 * fr * fr).astype(np.float32)
        lut[-1] = 0.0
        _LUT_CACHE.clear()
        _LUT_CACHE[key] = lut
    return _LUT_CACHE[key]


def _csr_rows_times(idx: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``out[g] = sum_j lut[idx[g, j]]`` for an (G, M) index array, as one sparse product."""
    import scipy.sparse as sparse

    global _ONES
    g, m = idx.shape
    if _ONES.size < g * m:
        _ONES = np.ones(g * m, np.float32)
    mat = sparse.csr_matrix(
        (_ONES[: g * m], idx.ravel(), np.arange(0, g * m + 1, m, dtype=np.int64)), shape=(g, lut.shape[0])
    )
    return np.asarray(mat @ lut, np.float32)


def lowfreq_block_dct(y: np.ndarray, offset: tuple[int, int] = (0, 0), n: int = 3) -> np.ndarray:
    """The ``n`` x ``n`` lowest-frequency DCT coefficients of every 8x8 block of the grid with
    origin ``offset`` = (dy, dx); cheaper than :func:`block_dct` when only a few are needed.

    Returns
    -------
    ndarray, shape (nby, nbx, n, n), float32
    """
    dy, dx = offset
    a = np.asarray(y, np.float32)[dy:, dx:]
    nby, nbx = a.shape[0] // 8, a.shape[1] // 8
    a = a[: nby * 8, : nbx * 8] - np.float32(128.0)
    dn = np.ascontiguousarray(_D[:n])
    t = np.matmul(dn, a.reshape(nby, 8, nbx * 8))  # (nby, n, W)
    t = np.matmul(t.reshape(-1, 8), np.ascontiguousarray(dn.T))  # (nby * n * nbx, n)
    return np.ascontiguousarray(t.reshape(nby, n, nbx, n).transpose(0, 2, 1, 3))


#: Low frequencies used by :func:`lattice_fit_tiles`: DC then the five lowest AC.
LATTICE_FREQS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0))


def lattice_fit_tiles(
    y: np.ndarray,
    offset: tuple[int, int],
    qualities: list[int],
    tile: int = 32,
    stride: int = 1,
    min_ac: float = 0.6,
    min_texture: float = 6.0,
    freqs: tuple[tuple[int, int], ...] = LATTICE_FREQS,
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice fit (see :func:`dc_lattice_scan`) of the blocks of one grid shift, using DC and low
    AC frequencies against the IJG tables at ``qualities``, summed per tile.

    AC coefficients smaller than ``min_ac`` steps (which fit any lattice) and the DC of blocks
    whose summed absolute low AC is below ``min_texture`` are not counted.

    Returns
    -------
    fit : ndarray, shape (nty, ntx, len(qualities)), float32
    count : ndarray, same shape, float32
        Tile grid as :func:`tile_grid` (``tile``, ``stride``).
    """
    view = y if isinstance(y, TileView) else TileView(y, tile, stride)
    tile, nty, ntx = view.tile, view.nty, view.ntx
    tb = tile // 8
    dy, dx = offset
    c = lowfreq_block_dct(view.cells(dy, dx), (0, 0), 3)  # (nty * tb, ntx * tb, 3, 3)
    cc = c.reshape(nty, tb, ntx, tb, 3, 3)
    vr, vc = view.valid(dy, dx, 8)
    present = vr[:, :, None, None] & vc[None, None, :, :]
    vals = np.stack([cc[..., u, v] for u, v in freqs], axis=-1)  # (nty, tb, ntx, tb, F)
    ac = [i for i, f in enumerate(freqs) if f != (0, 0)]
    tex = np.abs(vals[..., ac]).sum(-1)
    # (tile, tile, block, freq) contiguous, so each quality is a few passes and a last-axis sum
    vals = np.ascontiguousarray(vals.transpose(0, 2, 1, 3, 4)).reshape(nty, ntx, tb * tb, len(freqs))
    dc_ok = ((tex >= min_texture) & present).transpose(0, 2, 1, 3).reshape(nty, ntx, tb * tb)
    pres = np.ascontiguousarray(present.transpose(0, 2, 1, 3)).reshape(nty, ntx, tb * tb, 1)
    is_dc = np.array([f == (0, 0) for f in freqs])
    absv = np.abs(vals)
    fit = np.zeros((nty, ntx, len(qualities)), np.float32)
    count = np.zeros_like(fit)
    for qi, q in enumerate(qualities):
        t = _IJG_LUMA[int(q)]
        steps = np.array([t[u, v] for u, v in freqs], np.float32)
        r = vals / steps
        r -= np.rint(r)
        r *= r
        ok = (absv >= min_ac * steps) & pres
        ok[..., is_dc] = dc_ok[..., None]
        r *= np.float32(-12.0)
        r += np.float32(1.0)
        r *= ok
        fit[:, :, qi] = r.sum(axis=(2, 3))
        count[:, :, qi] = ok.sum(axis=(2, 3))
    return fit, count


def _zscore(fit: np.ndarray, count: np.ndarray, min_count: float) -> np.ndarray:
    """Sum of fits to a z-score (fits have mean 0 and variance 0.8 off the lattice)."""
    count = np.broadcast_to(count, fit.shape)
    z = fit / np.sqrt(0.8 * np.maximum(count, 1.0))
    z[count < min_count] = 0.0
    return z.astype(np.float32, copy=False)


def nonaligned_scan(
    y: np.ndarray,
    qualities: list[int],
    exclude_origin: bool = True,
    origin_step: int | None = None,
    tile: int = 32,
    stride: int = 1,
    n_candidates: int = 4,
    min_z: float = 3.5,
    window: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]], list[np.ndarray]]:
    """Search all 64 grid shifts for regions compressed on a shifted grid (non-aligned double
    JPEG) and score each tile.

    Stage 1 scores every (shift, DC step) pair over ``window`` x ``window`` tiles with
    :func:`dc_lattice_scan`; stage 2 re-scores the ``n_candidates`` best pairs with DC and low AC
    frequencies (:func:`lattice_fit_tiles`) at every IJG quality that has that DC step.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Luma.
    qualities : list of int
        Candidate qualities of the earlier compression.
    exclude_origin : bool
        Skip shift (0, 0), the file's own grid (JPEG input).
    origin_step : int, optional
        The file's own DC step; with it, shifts within one pixel of the origin are not tested
        with that step (their blocks overlap the file's own blocks by 7/8 or more and inherit
        their lattice).
    tile, stride : int
        Tile grid (see :func:`tile_grid`).

    Returns
    -------
    z : ndarray, shape (nty, ntx), float32
        Per tile, the best ``window`` x ``window`` z-score (about N(0, 1) where nothing sits on a
        shifted lattice; 8 and more is strong).
    z_tile : ndarray, shape (nty, ntx), float32
        The same candidate scored on the tile alone (sharper, noisier; for the heatmap).
    best : ndarray, shape (nty, ntx), int
        Index into ``candidates`` of the best pair per tile (-1 where none).
    candidates : list of (dy, dx, quality)
        The re-scored (shift, quality) pairs.
    maps : list of ndarray, shape (nty, ntx)
        For each candidate, the z-score of every tile alone (to tell a local trace from a weak
        trace all over the image).
    """
    steps = [s for s in dc_steps(qualities) if s >= 5]
    view = TileView(y, tile, stride)
    fit, count = dc_lattice_scan(view, steps)
    nty, ntx = count.shape[:2]
    zt = np.zeros((nty, ntx), np.float32)
    z1 = np.zeros((nty, ntx), np.float32)
    best = np.full((nty, ntx), -1)
    cands: list[tuple[int, int, int]] = []
    maps: list[np.ndarray] = []
    if nty == 0 or ntx == 0 or not steps:
        return zt, z1, best, cands, maps
    z = _zscore(box_sum(fit, window), box_sum(count, window)[:, :, None], 24.0)
    if exclude_origin:
        z[:, :, :, 0, 0] = -np.inf
    if origin_step is not None and origin_step in steps:
        si = steps.index(origin_step)
        for dy in (7, 0, 1):
            for dx in (7, 0, 1):
                z[:, :, si, dy, dx] = -np.inf
    zmax = z.reshape(nty * ntx, len(steps) * 64).max(axis=0)
    step_of_q = {q: int(ijg_table(q)[0, 0]) for q in qualities}
    for flat in np.argsort(zmax)[::-1][:n_candidates]:
        if zmax[flat] < min_z:
            break
        si, sh = divmod(int(flat), 64)
        dy, dx = divmod(sh, 8)
        qs = [q for q in qualities if step_of_q[q] == steps[si]]
        fq, nq = lattice_fit_tiles(view, (dy, dx), qs)
        zq = _zscore(box_sum(fq, window), box_sum(nq, window), 24.0)
        qi = zq.argmax(axis=-1)
        zc = np.take_along_axis(zq, qi[..., None], -1)[..., 0]
        zs = np.take_along_axis(_zscore(fq, nq, 8.0), qi[..., None], -1)[..., 0]
        upd = zc > zt
        if not upd.any():
            continue
        qb = int(np.bincount(qi[upd]).argmax())
        cands.append((dy, dx, qs[qb]))
        maps.append(_zscore(fq[..., qb], nq[..., qb], 8.0))
        zt[upd] = zc[upd]
        z1[upd] = zs[upd]
        best[upd] = len(cands) - 1
    return zt, z1, best, cands, maps


_DCT_CACHE: dict = {}


def block_dct_cached(y: np.ndarray, tile: int = 32, stride: int = 1) -> np.ndarray:
    """:func:`block_dct` of ``mosaic(y, tile, stride)``, memoised for the last array seen.

    Several detectors analyse the same luma array (``Sample.gray`` is computed once per sample);
    the cache holds one entry keyed by the array's identity, shape and a sample of its values.
    """
    key = (id(y), y.shape, tile, stride, hash(np.ascontiguousarray(y[::61, ::53]).tobytes()))
    hit = _DCT_CACHE.get("key")
    if hit == key:
        return _DCT_CACHE["value"]
    c = block_dct(mosaic(y, tile, stride))
    _DCT_CACHE["key"], _DCT_CACHE["value"] = key, c
    return c


def analysis_stride(shape: tuple[int, int], full_mp: float = 3.0) -> int:
    """Tile stride that keeps the analysed area near or under ``full_mp`` megapixels: 1 (every
    tile) up to that size, then 2 (a quarter of the tiles), 3, ..."""
    mp = shape[0] * shape[1] / 1e6
    s = 1
    while mp / (s * s) > full_mp:
        s += 1
    return s


def heat_from_tiles(tiles: np.ndarray, shape: tuple[int, int], tile: int = 32, stride: int = 1) -> np.ndarray:
    """Place a per-tile map (nty, ntx) on a grid that covers the whole image with the image's
    aspect: cells of ``tile * stride`` pixels, partial cells at the right and bottom set to 0."""
    pitch = tile * stride
    h, w = shape
    out = np.zeros((max(1, -(-h // pitch)), max(1, -(-w // pitch))), np.float32)
    ny, nx = min(tiles.shape[0], out.shape[0]), min(tiles.shape[1], out.shape[1])
    out[:ny, :nx] = tiles[:ny, :nx]
    return out


def refine_aligned(y: np.ndarray, box: tuple[int, int, int, int], q2_table: np.ndarray, quality: int) -> np.ndarray:
    """Per-block aligned double-JPEG evidence inside ``box`` for one first quality.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Luma.
    box : (x0, y0, x1, y1)
        Pixel box; ``x0`` and ``y0`` are rounded down to the 8x8 grid.
    q2_table : ndarray, shape (8, 8)
        The file's luma table.
    quality : int
        IJG quality of the first compression.

    Returns
    -------
    ndarray, shape ((y1 - y0') // 8, (x1 - x0') // 8), float32
        Log-likelihood ratio (:func:`dq_loglik`) summed over each block's 3x3 neighbourhood.
    """
    x0, y0, x1, y1 = box
    x0, y0 = x0 - x0 % 8, y0 - y0 % 8
    c = block_dct(np.asarray(y)[y0:y1, x0:x1])
    if c.size == 0:
        return np.zeros((0, 0), np.float32)
    llr = dq_loglik(c, q2_table, [ijg_table(quality)])[0]
    return box_sum(llr, 3)


def refine_shifted(
    y: np.ndarray, box: tuple[int, int, int, int], shift: tuple[int, int], quality: int, window: int = 3
) -> np.ndarray:
    """Per-block non-aligned double-JPEG evidence inside ``box`` for one grid shift and quality.

    Parameters
    ----------
    y : ndarray, shape (H, W)
        Luma.
    box : (x0, y0, x1, y1)
        Pixel box; ``x0`` and ``y0`` are rounded down to the 8x8 grid.
    shift : (dy, dx)
        Grid shift of the earlier compression.
    quality : int
        Its IJG quality.

    Returns
    -------
    ndarray, shape ((y1 - y0') // 8, (x1 - x0') // 8), float32
        Lattice z-score (see :func:`dc_lattice_scan`) of DC and low AC over each block's
        ``window`` x ``window`` neighbourhood; block ``(i, j)`` starts at pixel
        ``(y0' + dy + 8 i, x0' + dx + 8 j)``.
    """
    x0, y0, x1, y1 = box
    x0, y0 = x0 - x0 % 8, y0 - y0 % 8
    nby, nbx = (y1 - y0) // 8, (x1 - x0) // 8
    out_f = np.zeros((max(nby, 0), max(nbx, 0)), np.float32)
    out_n = np.zeros_like(out_f)
    c = lowfreq_block_dct(np.asarray(y)[y0 + shift[0] : y1 + shift[0], x0 + shift[1] : x1 + shift[1]], (0, 0), 3)
    my, mx = min(nby, c.shape[0]), min(nbx, c.shape[1])
    if my <= 0 or mx <= 0:
        return out_f
    c = c[:my, :mx]
    t = ijg_table(quality)
    vals = np.stack([c[..., u, v] for u, v in LATTICE_FREQS], -1)
    steps = np.array([t[u, v] for u, v in LATTICE_FREQS], np.float32)
    r = vals / steps
    r -= np.rint(r)
    f = 1.0 - 12.0 * r * r
    ok = np.abs(vals) >= 0.6 * steps
    ok[..., 0] = np.abs(vals[..., 1:]).sum(-1) >= 6.0
    out_f[:my, :mx] = np.where(ok, f, 0.0).sum(-1)
    out_n[:my, :mx] = ok.sum(-1)
    return _zscore(box_sum(out_f, window), box_sum(out_n, window), 6.0)


def single_threaded():
    """Context manager that limits BLAS to one thread while it is active (via ``threadpoolctl``
    when installed; a no-op otherwise). The matrix products here are small: on a busy machine a
    multi-threaded BLAS spends far longer waiting for its threads than computing."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def ghost_tile_scores(
    coefs: np.ndarray, qualities: list[int], tile_blocks: int = 4, min_diff: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JPEG ghost anomaly per tile (Farid 2009): how much lower a tile's re-save difference is at
    some quality than the image's typical tile, after normalising each tile's curve by its mean.

    Parameters
    ----------
    coefs : ndarray, shape (nby, nbx, 8, 8)
        Block DCT on the file's grid.
    qualities : list of int
        Re-save qualities (at least two).
    tile_blocks : int
        Tile side in blocks.
    min_diff : float
        Tiles whose mean squared difference over the qualities is below this (flat tiles) are
        not judged.

    Returns
    -------
    z : ndarray, shape (nty, ntx), float32
        Largest robust z-score over the qualities (0 for flat tiles); 6 and more is a ghost.
    quality : ndarray, shape (nty, ntx), int
        The quality at which it occurs.
    curves : ndarray, shape (len(qualities), nty, ntx), float32
        The per-tile difference curves (mean squared luma difference).
    """
    d = ghost_curves(coefs, qualities)
    nq, nby, nbx = d.shape
    nty, ntx = nby // tile_blocks, nbx // tile_blocks
    d = d[:, : nty * tile_blocks, : ntx * tile_blocks].reshape(nq, nty, tile_blocks, ntx, tile_blocks).mean(axis=(2, 4))
    mean = d.mean(axis=0)
    tex = mean >= min_diff
    z = np.zeros((nty, ntx), np.float32)
    qbest = np.full((nty, ntx), int(qualities[0]))
    if tex.sum() < 4 or nq < 2:
        return z, qbest, d
    r = d / np.maximum(mean, 1e-6)
    rt = r[:, tex]
    med = np.median(rt, axis=1)
    mad = np.median(np.abs(rt - med[:, None]), axis=1) * 1.4826 + 1e-3
    zz = (med[:, None, None] - r) / mad[:, None, None]
    zz[:, ~tex] = 0.0
    z = zz.max(axis=0).astype(np.float32)
    qbest = np.asarray(qualities)[zz.argmax(axis=0)]
    return z, qbest, d
