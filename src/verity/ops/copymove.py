"""Copy-move (cloning) detection: keypoint matching inside one image, block matching, and dense
verification of each candidate transform.

The pipeline (Amerini et al. 2011 for the keypoint part; Fridrich et al. 2003 for the block part):

1. **Keypoints.** ORB keypoints of a down-scaled copy (longest side at most ``max_side``) are matched
   against the same image with the generalised 2-nearest-neighbour test (g2NN): the i-th neighbour
   is accepted while ``d_i / d_{i+1} < ratio``. Pairs closer than ``min_shift`` are dropped.
2. **Clustering.** Affine transforms are fitted to the matched pairs with RANSAC, one after another
   (the inliers of each model are removed before fitting the next).
3. **Blocks.** For regions without corners, overlapping blocks are described by a 4x4 grid of
   sub-block means, sorted lexicographically, and neighbours in the sorted order vote for their
   shift vector; frequent shifts become translation candidates.
4. **Verification.** Each candidate transform is checked densely: the high-pass residual of the
   image is warped by the transform and correlated with itself in small windows. A clone carries
   the same noise and fine texture as its source, so its residual correlates almost perfectly,
   whereas similar-looking natural regions (sky, repeated bricks) carry independent noise.

All functions take and return numpy arrays; coordinates are (x, y) in the analysed image unless
stated otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Offsets (pixels) added to a candidate transform in the sharpness test: a clone correlates at one
#: exact offset only, while stripes, edges and periodic patterns (JPEG's 8x8 grid in flat areas,
#: screen moire, fences) also correlate at neighbouring offsets or one period away.
_D = 0.7071
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (_D, _D), (_D, -_D), (-_D, _D), (-_D, -_D))
PERTURBATIONS = tuple((int(round(r * c)), int(round(r * s))) for r in (3, 6, 8) for c, s in _DIRECTIONS)

#: Largest :func:`lattice_ratio` of a clone: the chain-link fence of a camera photo gives 0.97-1.07,
#: the 72 benchmark clones at most 0.72 (docs/benchmarks/classical.md).
LATTICE = 0.85

#: :func:`flat_noise_agreement`: with at least ``NOISE_STD`` gray levels of noise in the flat half of
#: the copy, a clone's noise correlates with its source's (the 72 benchmark clones: 0.40 or more);
#: repeated print does not (about 0.1).
NOISE_STD = 0.8
NOISE_CORR = 0.25

#: How far (times the square root of the verified core's area) a clone's mask may grow into
#: pixels that match the source exactly but carry too little texture to correlate.
GROW = 1.0


@dataclass
class Duplicate:
    """One detected duplicated region pair, in the coordinates of the *analysed* image.

    Attributes
    ----------
    transform : ndarray, shape (2, 3)
        Affine map from source to copy: ``copy = transform @ [x, y, 1]``.
    source_box, copy_box : (x0, y0, x1, y1)
        Bounding boxes of the verified source and copy regions.
    area : int
        Verified pixels of the copy.
    keypoints : int
        Matched keypoint pairs supporting the transform (0 for block-only candidates).
    blocks : int
        Block pairs voting for the shift (0 for keypoint candidates).
    correlation : float
        Median residual correlation inside the verified copy.
    method : str
        ``"keypoints"`` or ``"blocks"``.
    """

    transform: np.ndarray
    source_box: tuple[int, int, int, int]
    copy_box: tuple[int, int, int, int]
    area: int
    keypoints: int
    blocks: int
    correlation: float
    method: str

    @property
    def shift(self) -> tuple[float, float]:
        """Translation part of the transform (dx, dy)."""
        return float(self.transform[0, 2]), float(self.transform[1, 2])


@dataclass
class CopyMoveResult:
    """Output of :func:`detect_copy_move`.

    Attributes
    ----------
    mask : ndarray, shape (h, w), float32 in [0, 1]
        Source and copy regions of every verified duplicate, at the analysed resolution.
    scale : float
        Analysed size divided by the original size (<= 1).
    duplicates : list of Duplicate
        Strongest first.
    n_keypoints : int
        Keypoints found in the analysed image.
    n_matches : int
        Pairs that passed the g2NN test.
    """

    mask: np.ndarray
    scale: float
    duplicates: list[Duplicate] = field(default_factory=list)
    n_keypoints: int = 0
    n_matches: int = 0


def to_analysis_gray(pixels: np.ndarray, max_side: int = 1024) -> tuple[np.ndarray, float]:
    """Grayscale float32 copy of an image, down-scaled (area averaging) so its longest side is at
    most ``max_side``.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) or (H, W), uint8
    max_side : int

    Returns
    -------
    gray : ndarray, shape (h, w), float32 in [0, 255]
    scale : float
        ``h / H`` (1.0 when no down-scaling was needed).
    """
    import cv2

    p = np.asarray(pixels)
    if p.ndim == 3:
        g = cv2.cvtColor(np.ascontiguousarray(p[..., :3]), cv2.COLOR_RGB2GRAY)
    else:
        g = p
    g = g.astype(np.float32)
    h, w = g.shape
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        g = cv2.resize(g, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return g, s


def g2nn_matches(
    gray: np.ndarray,
    max_keypoints: int = 2000,
    ratio: float = 0.5,
    k: int = 4,
    min_shift: float = 16.0,
    max_distance: int = 64,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Match ORB keypoints of an image against themselves with the g2NN test.

    Parameters
    ----------
    gray : ndarray, shape (h, w), float32 or uint8
    max_keypoints : int
        ORB feature cap.
    ratio : float
        g2NN threshold on successive Hamming distances ``d_i / d_{i+1}``.
    k : int
        Neighbours examined per keypoint (the first is the keypoint itself).
    min_shift : float
        Pairs whose keypoints are closer than this (pixels) are ignored.
    max_distance : int
        Hamming distance above which a match is never accepted (of 256 bits).

    Returns
    -------
    p, q : ndarray, shape (n, 2), float32
        Matched keypoint positions (each unordered pair once).
    n_keypoints : int
    """
    import cv2

    g8 = np.clip(gray, 0, 255).astype(np.uint8)
    orb = cv2.ORB_create(nfeatures=max_keypoints, fastThreshold=8, edgeThreshold=15, patchSize=15)
    kps, des = orb.detectAndCompute(g8, None)
    empty = np.zeros((0, 2), np.float32)
    if des is None or len(kps) < 3:
        return empty, empty, len(kps)
    pts = np.array([kp.pt for kp in kps], np.float32)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = bf.knnMatch(des, des, k=min(k, len(kps)))
    pairs = set()
    for i, ms in enumerate(knn):
        ds = [m for m in ms if m.trainIdx != i]
        for a in range(len(ds)):
            d = ds[a].distance
            nxt = ds[a + 1].distance if a + 1 < len(ds) else 256.0
            if d > max_distance or d >= ratio * max(nxt, 1.0):
                break
            j = ds[a].trainIdx
            if np.hypot(*(pts[i] - pts[j])) >= min_shift:
                pairs.add((min(i, j), max(i, j)))
    if not pairs:
        return empty, empty, len(kps)
    arr = np.array(sorted(pairs))
    return pts[arr[:, 0]], pts[arr[:, 1]], len(kps)


def fit_transforms(
    p: np.ndarray,
    q: np.ndarray,
    min_inliers: int = 4,
    max_models: int = 4,
    reproj: float = 3.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit source-to-copy similarity transforms (rotation, uniform scale, translation) to matched
    pairs with sequential RANSAC.

    Each pair is tried in both directions, since which keypoint of a pair lies in the source is not
    known; a model's inliers (in either direction) are removed before the next model is fitted.
    Similarities rather than general affine maps are fitted because a point-symmetric pair set
    (both directions at once) is fitted exactly by a reflection, which no clone needs.

    Parameters
    ----------
    p, q : ndarray, shape (n, 2)
        Matched positions.
    min_inliers : int
        Models with fewer inlier pairs are discarded (and fitting stops).
    max_models : int
    reproj : float
        RANSAC reprojection threshold in pixels.

    Returns
    -------
    list of (M, idx)
        ``M`` (2, 3) maps source points to copy points; ``idx`` are the indices of the supporting
        pairs (for each, either ``M p ~ q`` or ``M q ~ p``).
    """
    import cv2

    out: list[tuple[np.ndarray, np.ndarray]] = []
    n = len(p)
    alive = np.ones(n, bool)
    for _ in range(max_models):
        idx = np.flatnonzero(alive)
        if len(idx) < max(min_inliers, 3):
            break
        src = np.concatenate([p[idx], q[idx]]).astype(np.float32)
        dst = np.concatenate([q[idx], p[idx]]).astype(np.float32)
        M, inl = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=reproj, maxIters=2000, confidence=0.995,
            refineIters=10,
        )
        if M is None or inl is None:
            break
        inl = inl.ravel().astype(bool)
        fwd = inl[: len(idx)]
        bwd = inl[len(idx) :]
        used = idx[fwd | bwd]
        if len(used) < min_inliers:
            break
        # a degenerate map (near identity or collapsing) is not a copy
        lin = M[:, :2]
        det = float(np.linalg.det(lin))
        if not (0.5 < abs(det) < 2.0):
            alive[used] = False
            continue
        out.append((M.astype(np.float64), used))
        alive[used] = False
    return out


def highpass(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Residual ``gray - GaussianBlur(gray, sigma)``, float32, same shape."""
    import cv2

    g = np.asarray(gray, np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), sigma)


def _warp(img: np.ndarray, M: np.ndarray, box: tuple[int, int, int, int], interp: int) -> np.ndarray:
    """``out[v, u] = img(M^-1 [u + x0, v + y0])`` for the crop ``box`` of the destination."""
    import cv2

    x0, y0, x1, y1 = box
    Mc = np.asarray(M, np.float64).copy()
    Mc[0, 2] -= x0
    Mc[1, 2] -= y0
    return cv2.warpAffine(img, Mc, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def local_correlation(a: np.ndarray, b: np.ndarray, window: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean normalised correlation of two same-shape maps in ``window`` x ``window`` windows.

    Returns
    -------
    corr : ndarray, float32
        In [-1, 1] (0 where either window is constant).
    energy : ndarray, float32
        ``min(std_a, std_b)`` per window.
    """
    import cv2

    k = (window, window)
    m1 = cv2.blur(a, k)
    m2 = cv2.blur(b, k)
    v1 = np.maximum(cv2.blur(a * a, k) - m1 * m1, 0)
    v2 = np.maximum(cv2.blur(b * b, k) - m2 * m2, 0)
    cv = cv2.blur(a * b, k) - m1 * m2
    den = np.sqrt(v1 * v2)
    corr = np.where(den > 1e-6, cv / np.maximum(den, 1e-6), 0).astype(np.float32)
    return corr, np.sqrt(np.minimum(v1, v2)).astype(np.float32)


def along_shift(M: np.ndarray, box: tuple[int, int, int, int], steps: tuple[float, ...] = (3, 6, 8)) -> tuple:
    """Offsets of ``steps`` pixels along (and against) the displacement of ``M`` at the centre of ``box``.

    A straight edge that crosses both regions can only line up with itself when the displacement
    runs along it, so sliding it a few pixels further along the same direction keeps it matched; a
    clone does not survive that slide. The fixed :data:`PERTURBATIONS` only cover eight directions,
    which misses edges at other angles.

    Returns
    -------
    tuple of (dx, dy) float pairs (empty when the displacement is shorter than 1 px)
    """
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    dx = M[0, 0] * cx + M[0, 1] * cy + M[0, 2] - cx
    dy = M[1, 0] * cx + M[1, 1] * cy + M[1, 2] - cy
    n = float(np.hypot(dx, dy))
    if n < 1.0:
        return ()
    ux, uy = dx / n, dy / n
    return tuple((sg * r * ux, sg * r * uy) for r in steps for sg in (1.0, -1.0))


def verify_transform(
    residual: np.ndarray,
    M: np.ndarray,
    roi: tuple[int, int, int, int] | None = None,
    gray: np.ndarray | None = None,
    window: int = 9,
    min_corr: float = 0.8,
    min_energy: float = 0.6,
    sharpness: float = 0.3,
    max_diff: float = 4.0,
) -> tuple[np.ndarray, float]:
    """Pixels of the copy whose residual matches the source under ``M``.

    A pixel is a *core* pixel when the residual correlation at ``M`` is at least ``min_corr`` and
    exceeds by ``sharpness`` the best correlation at ``M`` shifted by any of :data:`PERTURBATIONS`
    (3, 6 and 8 pixels in eight directions) or by 3, 6 and 8 pixels along the displacement itself
    (:func:`along_shift`): a clone matches at one exact offset, while edges and stripes also match
    when slid along themselves, and periodic patterns one period away. Each
    core component is then completed to its convex hull where the plain gray difference is below
    ``max_diff`` (to include flat parts of the clone), and grown by up to :data:`GROW` times the
    square root of the core's area into pixels that still match, staying connected to the core.

    Parameters
    ----------
    residual : ndarray, shape (h, w), float32
        High-pass residual of the image (:func:`highpass`).
    M : ndarray, shape (2, 3)
        Source-to-copy affine map.
    roi : (x0, y0, x1, y1), optional
        Only pixels of the copy inside this box are considered.
    gray : ndarray, shape (h, w), float32, optional
        The image, for the completion step (skipped when ``None``).
    window : int
        Side of the square correlation window.
    min_corr, sharpness : float
    min_energy : float
        Local residual standard deviation (gray levels) needed on both sides.
    max_diff : float
        Largest mean absolute gray difference (in a 5x5 window) of completed pixels.

    Returns
    -------
    copy_mask : ndarray, shape (h, w), bool
    median_corr : float
        Median correlation of the core pixels (0 when empty).
    """
    import cv2

    r = np.asarray(residual, np.float32)
    h, w = r.shape
    M = np.asarray(M, np.float64)
    out = np.zeros((h, w), bool)
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, w, h)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < window or y1 - y0 < window:
        return out, 0.0
    box = (x0, y0, x1, y1)
    rc = r[y0:y1, x0:x1]
    rw = _warp(r, M, box, cv2.INTER_LINEAR)
    valid = _warp(np.ones((h, w), np.uint8), M, box, cv2.INTER_NEAREST) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    corr, energy = local_correlation(rc, rw, window)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    dxm = M[0, 0] * xs + M[0, 1] * ys + M[0, 2] - xs
    dym = M[1, 0] * xs + M[1, 1] * ys + M[1, 2] - ys
    core = valid & (energy >= min_energy) & (corr >= min_corr) & ((dxm * dxm + dym * dym) > (2 * window) ** 2)
    if core.sum() < window * window:
        return out, 0.0
    best_other = np.full_like(corr, -1.0)
    for ox, oy in PERTURBATIONS + along_shift(M, box):
        Mp = M.copy()
        Mp[0, 2] += ox
        Mp[1, 2] += oy
        c2, _ = local_correlation(rc, _warp(r, Mp, box, cv2.INTER_LINEAR), window)
        np.maximum(best_other, c2, out=best_other)
    core &= (corr - best_other) >= sharpness
    c8 = cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    c8 = cv2.morphologyEx(c8, cv2.MORPH_CLOSE, np.ones((window, window), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(c8, connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= window * window)
    keep = keep[keep > 0]
    if len(keep) == 0:
        return out, 0.0
    coremask = np.isin(lab, keep)
    med = float(np.median(corr[coremask & core])) if (coremask & core).any() else 0.0
    region = coremask.astype(np.uint8)
    if gray is not None:
        g = np.asarray(gray, np.float32)
        diff = cv2.blur(np.abs(g[y0:y1, x0:x1] - _warp(g, M, box, cv2.INTER_LINEAR)), (5, 5))
        similar = (diff <= max_diff) & valid
        hull = np.zeros_like(region)
        for i in keep:
            pts = cv2.findNonZero((lab == i).astype(np.uint8))
            cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
        region = ((hull > 0) & similar) | coremask
        # grow into similar pixels (flat parts of the clone carry no residual to correlate), at most
        # about a third of the core's size away, keeping only what stays connected to the core
        grow = int(max(window, GROW * np.sqrt(coremask.sum())))
        ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        grown = ((cv2.dilate(region.astype(np.uint8), ker) > 0) & similar) | region
        nl, gl = cv2.connectedComponents(grown.astype(np.uint8), connectivity=8)
        touch = np.unique(gl[region > 0])
        region = np.isin(gl, touch[touch > 0]).astype(np.uint8)
        region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    out[y0:y1, x0:x1] = region > 0
    return out, med


def periodic_correlation(residual: np.ndarray, M: np.ndarray, copy_mask: np.ndarray, window: int = 9) -> float:
    """Median residual correlation of a copy with the content one more step of ``M`` away.

    A clone resembles its source only; a periodic structure (fence, tiles, windows) also resembles
    what lies one more period away (before the source, or after the copy), so a high value here
    means "pattern", not "clone".

    Parameters
    ----------
    residual : ndarray, shape (h, w), float32
    M : ndarray, shape (2, 3)
        Source-to-copy map.
    copy_mask : ndarray, shape (h, w), bool
    window : int

    Returns
    -------
    float
        The larger median correlation of the two directions, over copy pixels whose mapped
        position lies in the image (a direction with fewer than ``window**2`` such pixels is
        skipped; 0 when both are).
    """
    import cv2

    if not copy_mask.any():
        return 0.0
    A = np.vstack([np.asarray(M, np.float64), [0.0, 0.0, 1.0]])
    h, w = residual.shape
    x0, y0, x1, y1 = _box(copy_mask)
    mg = window
    box = (max(0, x0 - mg), max(0, y0 - mg), min(w, x1 + mg), min(h, y1 + mg))
    bx0, by0, bx1, by1 = box
    r = np.asarray(residual, np.float32)
    best = 0.0
    # the copy against what lies one step before its source (M^2), and one step after itself (M^-1)
    for T in ((A @ A)[:2], np.linalg.inv(A)[:2]):
        rw = _warp(r, T, box, cv2.INTER_LINEAR)
        valid = _warp(np.ones((h, w), np.uint8), T, box, cv2.INTER_NEAREST) > 0
        corr, energy = local_correlation(r[by0:by1, bx0:bx1], rw, window)
        sel = copy_mask[by0:by1, bx0:bx1] & valid & (energy > 0.6)
        if sel.sum() >= window * window:
            best = max(best, float(np.median(corr[sel])))
    return best


def lattice_ratio(residual: np.ndarray, M: np.ndarray, copy_mask: np.ndarray, radius: int = 40,
                  exclude: int = 4) -> float:
    """How well the copy also matches the source at other small offsets: a lattice, not one region.

    The copy's residual (inside ``copy_mask``) is correlated (masked normalised cross-correlation)
    with the source-aligned residual at every offset within ``radius`` pixels. A clone gives one
    sharp peak at offset 0; a periodic texture (chain-link fence, tiles, a grid, rows of
    identical windows) gives a lattice of peaks, one per period, as high as the one at 0, because
    the displacement found is just one of its lattice vectors. The radius is capped at 0.6 x the
    displacement, so that no offset lines the copy up with itself.

    Returns
    -------
    float
        Highest peak farther than ``exclude`` pixels from 0, divided by the peak at 0 (0 when the
        copy is too small or the displacement too short to test).
    """
    import cv2

    if not copy_mask.any():
        return 0.0
    h, w = residual.shape
    x0, y0, x1, y1 = _box(copy_mask)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    d = float(np.hypot(M[0, 0] * cx + M[0, 1] * cy + M[0, 2] - cx, M[1, 0] * cx + M[1, 1] * cy + M[1, 2] - cy))
    R = int(min(radius, 0.6 * d))
    if R <= exclude + 1 or min(x1 - x0, y1 - y0) < 8:
        return 0.0
    r = np.asarray(residual, np.float32)
    box = (x0 - R, y0 - R, x1 + R, y1 + R)
    aligned = _warp(r, np.asarray(M, np.float64), box, cv2.INTER_LINEAR)  # aligned(x) = residual(M^-1 x)
    templ = np.ascontiguousarray(r[y0:y1, x0:x1])
    mask = copy_mask[y0:y1, x0:x1].astype(np.float32)
    res = np.nan_to_num(cv2.matchTemplate(aligned, templ, cv2.TM_CCORR_NORMED, mask=mask), nan=0.0, posinf=0.0,
                        neginf=0.0)
    main = float(res[R, R])
    if main <= 0.05:
        return 0.0
    yy, xx = np.mgrid[: res.shape[0], : res.shape[1]]
    far = (yy - R) ** 2 + (xx - R) ** 2 > exclude * exclude
    return float(res[far].max()) / main if far.any() else 0.0


def flat_noise_agreement(gray: np.ndarray, residual: np.ndarray, M: np.ndarray, copy_mask: np.ndarray,
                         percentile: float = 50.0) -> tuple[float, float]:
    """Correlation of the fine noise of copy and source away from edges.

    A clone copies the sensor noise of its source along with the content, so even the flattest
    half of its pixels (lowest gray gradient on either side) correlates with the source. Repeated
    print or rendered text has identical edges but its own, independent noise in between: its edges
    match and its flat pixels do not.

    Returns
    -------
    (corr, std)
        Correlation of the residuals at the copy's pixels whose gradient (Gaussian sigma 1.5, Sobel)
        is at most the ``percentile`` of the copy, on both sides; and the smaller residual standard
        deviation there (gray levels). When ``std`` is small (JPEG and smooth content remove the
        noise) the correlation says nothing.
    """
    import cv2

    if copy_mask.sum() < 64:
        return 0.0, 0.0
    x0, y0, x1, y1 = _box(copy_mask)
    box = (x0, y0, x1, y1)
    g = np.asarray(gray, np.float32)
    gs = cv2.GaussianBlur(g, (0, 0), 1.5)
    gm = np.hypot(cv2.Sobel(gs, cv2.CV_32F, 1, 0), cv2.Sobel(gs, cv2.CV_32F, 0, 1))
    Mf = np.asarray(M, np.float64)
    grad = np.maximum(gm[y0:y1, x0:x1], _warp(gm, Mf, box, cv2.INTER_LINEAR))
    a_all = np.asarray(residual, np.float32)[y0:y1, x0:x1]
    b_all = _warp(np.asarray(residual, np.float32), Mf, box, cv2.INTER_LINEAR)
    sel = copy_mask[y0:y1, x0:x1]
    sel = sel & (grad <= np.percentile(grad[sel], percentile))
    if sel.sum() < 64:
        return 0.0, 0.0
    a = a_all[sel] - a_all[sel].mean()
    b = b_all[sel] - b_all[sel].mean()
    std = float(min(a.std(), b.std()))
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return (float((a * b).sum()) / den if den > 1e-6 else 0.0), std


def separate_islands(copy_mask: np.ndarray, min_share: float = 0.2) -> bool:
    """True when the copy is two or more separate islands, each at least ``min_share`` of it, farther
    apart than the smaller one is wide: repeated elements (printed letters, a row of identical
    signs) that line up under one transform, not one pasted region."""
    import cv2

    n, lab, st, _ = cv2.connectedComponentsWithStats(copy_mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return False
    area = st[1:, cv2.CC_STAT_AREA].astype(float)
    big = [i + 1 for i in np.flatnonzero(area >= min_share * area.sum())]
    for a in range(len(big)):
        for b in range(a + 1, len(big)):
            ax, ay, aw, ah = st[big[a], :4]
            bx, by, bw, bh = st[big[b], :4]
            gap = max(bx - (ax + aw), ax - (bx + bw), by - (ay + ah), ay - (by + bh), 0)
            if gap > min(max(aw, ah), max(bw, bh)):
                return True
    return False


def source_mask(copy_mask: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Map a copy mask back to its source through the inverse of ``M`` (bool, same shape)."""
    import cv2

    h, w = copy_mask.shape
    m = cv2.warpAffine(
        copy_mask.astype(np.uint8), np.asarray(M, np.float64), (w, h),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0,
    )
    return m > 0


def block_shift_candidates(
    gray: np.ndarray,
    block: int = 16,
    step: int = 1,
    min_std: float = 4.0,
    tol: float = 3.0,
    min_shift: float = 24.0,
    neighbours: int = 3,
    min_votes: int = 40,
    max_candidates: int = 3,
) -> list[tuple[float, float, int]]:
    """Translation candidates from matching overlapping blocks.

    Each ``block`` x ``block`` block (every ``step`` pixels) is described by the means of its 4x4
    grid of sub-blocks (16 numbers). Descriptors are quantised (bins of ``2 * tol``) and sorted by a
    hash of the quantised vector, which puts identical quantised vectors next to each other (the
    lexicographic sort of Fridrich et al., done with one key); this is repeated on a grid offset by
    half a bin so that pairs split by a bin edge are found too. Each block is compared with its
    next ``neighbours`` in sorted order, and pairs within ``tol`` (max absolute difference, gray
    levels) and at least ``min_shift`` apart vote for their shift vector.

    Parameters
    ----------
    gray : ndarray, shape (h, w), float32
    block, step : int
        ``step`` should stay 1: with larger steps, clones moved by an odd offset are missed.
    min_std : float
        Blocks flatter than this standard deviation are skipped (they match everything).
    tol : float
    min_shift : float
    neighbours : int
    min_votes : int
        Shifts with fewer votes are dropped.
    max_candidates : int

    Returns
    -------
    list of (dx, dy, votes)
        Strongest first; ``(dx, dy)`` moves a block to its twin (``dx > 0``, or ``dx == 0`` and
        ``dy > 0``).
    """
    import cv2

    g = np.asarray(gray, np.float32)
    h, w = g.shape
    if h < block + step or w < block + step:
        return []
    sub = block // 4
    # box means with the window anchored at its top-left corner: means[y, x] = mean(g[y:y+sub, x:x+sub])
    ii = cv2.integral(g, sdepth=cv2.CV_64F)
    means = ((ii[sub:, sub:] - ii[:-sub, sub:] - ii[sub:, :-sub] + ii[:-sub, :-sub]) / (sub * sub)).astype(np.float32)
    ii2 = cv2.integral(g * g, sdepth=cv2.CV_64F)
    n2 = block * block
    s1 = ii[block:, block:] - ii[:-block, block:] - ii[block:, :-block] + ii[:-block, :-block]
    s2 = ii2[block:, block:] - ii2[:-block, block:] - ii2[block:, :-block] + ii2[:-block, :-block]
    std = np.sqrt(np.maximum(s2 / n2 - (s1 / n2) ** 2, 0))[: h - block + 1 : step, : w - block + 1 : step]
    H, W = std.shape
    valid = std >= min_std
    if valid.sum() < 2:
        return []
    # the 16 sub-block means of every valid block, one row per block
    vy, vx = np.nonzero(valid)
    # a (H, W, 4, 4) strided view: view[y, x, a, b] = means[y*step + a*sub, x*step + b*sub]
    rs, cs = means.strides
    view = np.lib.stride_tricks.as_strided(
        means, shape=(H, W, 4, 4), strides=(rs * step, cs * step, rs * sub, cs * sub), writeable=False
    )
    feats = view[vy, vx].reshape(len(vy), 16)
    # one integer sort key per quantised descriptor (a multiplicative hash, exact integer
    # arithmetic: equal quantised vectors give equal keys; unequal ones practically never do)
    mult = (np.arange(16, dtype=np.int64) * 2654435761 + 97531) | 1
    shifts = []
    for offset in (0.0, tol):
        q = np.floor((feats + offset) * (1.0 / (2 * tol))).astype(np.int64)
        kv = q @ mult
        order = np.argsort(kv, kind="stable")
        k = kv[order]
        py = vy[order]
        px = vx[order]
        for d in range(1, neighbours + 1):
            idx = np.flatnonzero(k[d:] == k[:-d])
            if len(idx) == 0:
                continue
            ia, ib = order[idx], order[idx + d]
            dx = (px[idx + d] - px[idx]) * step
            dy = (py[idx + d] - py[idx]) * step
            far = dx * dx + dy * dy >= min_shift * min_shift
            ia, ib, dx, dy = ia[far], ib[far], dx[far], dy[far]
            ok = np.abs(feats[ia] - feats[ib]).max(axis=1) <= tol
            ia, ib, dx, dy = ia[ok], ib[ok], dx[ok], dy[ok]
            flip = (dx < 0) | ((dx == 0) & (dy < 0))
            fi = np.where(flip, ib, ia)
            shifts.append(np.stack([np.where(flip, -dx, dx), np.where(flip, -dy, dy), vx[fi] * step, vy[fi] * step], 1))
    if not shifts:
        return []
    allv = np.concatenate(shifts)
    if len(allv) == 0:
        return []
    code = (allv[:, 0].astype(np.int64) + 65536) * 131072 + (allv[:, 1].astype(np.int64) + 65536)
    ucode, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
    uniq = np.stack([ucode // 131072 - 65536, ucode % 131072 - 65536], 1)
    inv = inv.ravel()
    # merge votes of neighbouring shifts (off by one pixel) so rounding does not split a clone
    out = []
    used = np.zeros(len(uniq), bool)
    for i in np.argsort(-counts):
        if used[i]:
            continue
        near = (np.abs(uniq - uniq[i]).max(axis=1) <= 1) & ~used
        votes = int(counts[near].sum())
        used |= near
        if votes < min_votes:
            break
        members = allv[near[inv]]
        # keep the largest spatial cluster of voting blocks (stray look-alikes vote for any shift)
        occ = np.zeros((h, w), np.uint8)
        occ[members[:, 3], members[:, 2]] = 1
        occ = cv2.dilate(occ, np.ones((block // 2 + 1, block // 2 + 1), np.uint8))
        _, lab = cv2.connectedComponents(occ, connectivity=8)
        ml = lab[members[:, 3], members[:, 2]]
        members = members[ml == np.bincount(ml).argmax()]
        x0, y0 = members[:, 2].min(), members[:, 3].min()
        x1, y1 = members[:, 2].max() + block, members[:, 3].max() + block
        out.append((float(uniq[i][0]), float(uniq[i][1]), votes, (int(x0), int(y0), int(x1), int(y1))))
        if len(out) >= max_candidates:
            break
    return out


def refine_translation(
    residual: np.ndarray, box: tuple[int, int, int, int], dx: float, dy: float, radius: int = 2
) -> tuple[float, float]:
    """Integer shift near ``(dx, dy)`` that best aligns the residual in ``box`` with its twin.

    Parameters
    ----------
    residual : ndarray, shape (h, w), float32
    box : (x0, y0, x1, y1)
        Source region.
    dx, dy : float
        Approximate shift (e.g. from block matching at a lower resolution).
    radius : int
        Integer offsets up to this far from the rounded shift are tried.

    Returns
    -------
    (dx, dy) : floats
        The offset with the highest normalised correlation (the rounded input when nothing fits).
    """
    r = np.asarray(residual, np.float32)
    h, w = r.shape
    bx, by = int(round(dx)), int(round(dy))
    # keep the box and all its shifted versions inside the image
    x0 = max(0, int(box[0]), -(bx - radius))
    y0 = max(0, int(box[1]), -(by - radius))
    x1 = min(w, int(box[2]), w - (bx + radius))
    y1 = min(h, int(box[3]), h - (by + radius))
    best = (-2.0, float(bx), float(by))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return best[1], best[2]
    a = r[y0:y1, x0:x1]
    a = a - a.mean()
    na = float(np.sqrt((a * a).sum())) + 1e-6
    for oy in range(by - radius, by + radius + 1):
        for ox in range(bx - radius, bx + radius + 1):
            if x0 + ox < 0 or y0 + oy < 0 or x1 + ox > w or y1 + oy > h:
                continue
            b = r[y0 + oy : y1 + oy, x0 + ox : x1 + ox]
            b = b - b.mean()
            c = float((a * b).sum()) / (na * (float(np.sqrt((b * b).sum())) + 1e-6))
            if c > best[0]:
                best = (c, float(ox), float(oy))
    return best[1], best[2]


def _roi(pts: np.ndarray, frac: float = 0.75, px: int = 16) -> tuple[int, int, int, int]:
    """Box around keypoints, grown so that a clone only partly covered by keypoints fits inside."""
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    mg = frac * max(x1 - x0, y1 - y0, 32.0) + px
    return int(x0 - mg), int(y0 - mg), int(x1 + mg) + 1, int(y1 + mg) + 1


def _grow(box: tuple[int, int, int, int], frac: float = 0.5, px: int = 16) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mg = int(frac * max(x1 - x0, y1 - y0) + px)
    return x0 - mg, y0 - mg, x1 + mg, y1 + mg


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def detect_copy_move(
    pixels: np.ndarray,
    max_side: int = 1024,
    block_max_side: int = 512,
    max_keypoints: int = 1500,
    ratio: float = 0.5,
    min_inliers: int = 5,
    min_area_frac: float = 0.0015,
) -> CopyMoveResult:
    """Find duplicated regions in one image.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) or (H, W), uint8
    max_side : int
        Keypoint matching and verification run on a copy whose longest side is at most this.
    block_max_side : int
        Block matching runs on a further down-scaled copy (longest side at most this).
    max_keypoints : int
    ratio : float
        g2NN threshold.
    min_inliers : int
        Keypoint pairs needed to consider a transform.
    min_area_frac : float
        Smallest verified copy, as a fraction of the image area.

    Returns
    -------
    CopyMoveResult
        ``mask`` is at the analysed resolution (``scale`` times the input size).
    """
    import cv2

    gray, scale = to_analysis_gray(pixels, max_side)
    h, w = gray.shape
    res = CopyMoveResult(mask=np.zeros((h, w), np.float32), scale=scale)
    if min(h, w) < 48:
        return res
    resid = highpass(gray)
    min_area = max(12 * 12, int(min_area_frac * h * w))
    min_shift = max(16.0, 0.02 * max(h, w))

    # candidates: (M, roi, keypoints, blocks, method)
    cands: list[tuple[np.ndarray, tuple | None, int, int, str]] = []
    p, q, nk = g2nn_matches(gray, max_keypoints=max_keypoints, ratio=ratio, min_shift=min_shift)
    res.n_keypoints, res.n_matches = nk, len(p)
    for M, idx in fit_transforms(p, q, min_inliers=min_inliers):
        a, b = p[idx], q[idx]
        ef = np.hypot(*(a @ M[:, :2].T + M[:, 2] - b).T)
        eb = np.hypot(*(b @ M[:, :2].T + M[:, 2] - a).T)
        fwd = (ef <= eb)[:, None]
        src = np.where(fwd, a, b)
        dst = np.where(fwd, b, a)
        if np.abs(M[:, :2] - np.eye(2)).max() < 0.05:
            # nearly a plain translation (the usual clone): try the integer shift that best aligns
            # the residuals too; the better-verified of the two is kept
            t = np.median(dst - src, axis=0)
            dx, dy = refine_translation(resid, _roi(src, 0.0, 8), t[0], t[1], radius=2)
            cands.append((np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (_roi(src), _roi(dst)), len(idx), 0, "keypoints"))
        cands.append((M, (_roi(src), _roi(dst)), len(idx), 0, "keypoints"))

    # the block stage's copy is made from the already reduced gray image (cheaper on large inputs)
    bg, bs = to_analysis_gray(gray, block_max_side)
    f = 1.0 / bs  # analysed pixels per block-stage pixel
    for dx, dy, votes, (bx0, by0, bx1, by1) in block_shift_candidates(
        bg, block=16, min_shift=max(24.0, min_shift / f)
    ):
        src_box = (int(bx0 * f) - 2, int(by0 * f) - 2, int(np.ceil(bx1 * f)) + 2, int(np.ceil(by1 * f)) + 2)
        dx, dy = refine_translation(resid, src_box, dx * f, dy * f, radius=int(np.ceil(f)) + 1)
        M = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        # skip shifts already explained by a keypoint transform
        if any(np.hypot(c[0][0, 2] - dx, c[0][1, 2] - dy) < 4 * f + 3 and abs(c[0][0, 0] - 1) < 0.05 for c in cands):
            continue
        dst_box = (src_box[0] + int(dx), src_box[1] + int(dy), src_box[2] + int(dx) + 1, src_box[3] + int(dy) + 1)
        cands.append((M, (_grow(src_box), _grow(dst_box)), 0, votes, "blocks"))

    total = np.zeros((h, w), bool)
    for M, rois, nkp, nbl, method in cands:
        best = None
        # the clone can go either way: check both directions, keep the better-supported one
        Minv = cv2.invertAffineTransform(M)
        for MM, r in ((M, rois[1]), (Minv, rois[0])):
            cm, corr = verify_transform(resid, MM, roi=r, gray=gray)
            area = int(cm.sum())
            if best is None or area > best[1]:
                best = (MM, area, cm, corr)
        MM, area, cm, corr = best
        if area < min_area:
            continue
        sm = source_mask(cm, MM)
        if sm.sum() < min_area // 2:
            continue
        if (cm & sm).sum() > 0.2 * area:
            continue  # the "copy" overlaps its own source: a symmetric object, not a clone
        if periodic_correlation(resid, MM, cm) > 0.12:
            continue  # it also matches one more step away: a periodic pattern (fence, tiles)
        if lattice_ratio(resid, MM, cm) > LATTICE:
            continue  # it matches as well at other small offsets: a lattice (chain-link fence, grid)
        if separate_islands(cm):
            continue  # separate look-alike elements under one transform (repeated print), not a region
        nc, ns = flat_noise_agreement(gray, resid, MM, cm)
        if ns >= NOISE_STD and nc < NOISE_CORR:
            continue  # same edges, independent noise: repeated print or rendered text, not a copy
        overlap = (cm | sm) & total
        if overlap.sum() > 0.5 * area:
            continue
        total |= cm | sm
        res.duplicates.append(
            Duplicate(
                transform=MM, source_box=_box(sm), copy_box=_box(cm), area=area, keypoints=nkp,
                blocks=nbl, correlation=corr, method=method,
            )
        )
    res.duplicates.sort(key=lambda d: -d.area)
    res.mask = total.astype(np.float32)
    return res
