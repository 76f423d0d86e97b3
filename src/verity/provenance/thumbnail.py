"""Comparing an EXIF thumbnail with the main image it is supposed to show.

A camera writes a small preview (typically 160x120) of the picture into EXIF IFD1. Many editors
change the main image but copy the EXIF block unchanged, so the old preview survives: a
thumbnail that shows a *different* picture (or the same picture with a region changed) is direct
evidence that the pixels were altered after capture. Editors that rewrite the thumbnail leave
nothing to see, so a match is only weak evidence of an untouched file.

The comparison is done on luma at thumbnail resolution: the main image is reduced with area
averaging, both are lightly blurred, the thumbnail's tones are mapped onto the main image's by
histogram matching (cameras render previews with their own tone curve), and the per-pixel
difference in units of the main image's contrast gives a map of what changed. Letterboxed
thumbnails (a 3:2 photo in a 4:3 preview with black bars) and rotations by 90 degrees are tried.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ThumbComparison:
    """Result of :func:`compare_thumbnail`.

    Attributes
    ----------
    correlation : float
        Pearson correlation of the two luma images in the best alignment (1 = same picture).
    changed_fraction : float
        Fraction of the compared area whose difference exceeds ``threshold``.
    largest_region_fraction : float
        Area of the largest connected changed region, as a fraction of the compared area.
    diff_map : ndarray, shape (h, w), float32
        Per-pixel difference (in units of the main image's luma standard deviation) at
        thumbnail resolution, in the main image's *stored* orientation.
    rotation : int
        Quarter turns (``np.rot90`` k) applied to the main image to match the thumbnail.
    mirrored : bool
        Whether the main image had to be mirrored (left-right, before rotating) to match.
    letterboxed : bool
        Whether only a centred part of the thumbnail (bars removed) was compared.
    thumb_shape : (int, int)
        Height and width of the thumbnail.
    """

    correlation: float
    changed_fraction: float
    largest_region_fraction: float
    diff_map: np.ndarray
    rotation: int
    mirrored: bool
    letterboxed: bool
    thumb_shape: tuple[int, int]


def _luma(img: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32, shape (H, W)."""
    a = np.asarray(img)
    if a.ndim == 2:
        return a.astype(np.float32)
    if a.dtype == np.uint8 and a.shape[2] == 3:
        import cv2

        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY).astype(np.float32)
    a = a.astype(np.float32)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def reduce_to(gray: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-average ``gray`` (H, W) down to ``shape`` (h, w) quickly (strided pre-decimation).

    Parameters
    ----------
    gray : ndarray, shape (H, W), float32
    shape : (int, int)

    Returns
    -------
    ndarray, shape (h, w), float32
    """
    import cv2

    h, w = int(shape[0]), int(shape[1])
    H, W = gray.shape
    k = max(1, min(H // (4 * h), W // (4 * w)))
    g = gray[::k, ::k] if k > 1 else gray
    return cv2.resize(np.ascontiguousarray(g, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)


def match_histogram(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Monotonic tone mapping of ``src`` so its value distribution matches ``ref`` (same shape not
    required). Returns float32 with ``src``'s shape."""
    s = src.ravel()
    order = np.argsort(s, kind="stable")
    ref_sorted = np.sort(ref.ravel())
    q = (np.arange(s.size) + 0.5) / s.size
    mapped = np.interp(q, (np.arange(ref_sorted.size) + 0.5) / ref_sorted.size, ref_sorted)
    out = np.empty_like(s, dtype=np.float32)
    out[order] = mapped
    return out.reshape(src.shape)


def strip_bars(gray: np.ndarray, tol: float = 4.0, max_frac: float = 0.3) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) of a thumbnail without uniform letterbox/pillarbox bars.

    A border row (column) is a bar when its standard deviation is below ``tol`` and its mean is
    within ``tol`` of the first bar row's mean; at most ``max_frac`` of the side is removed.
    """
    h, w = gray.shape

    def side(lines: np.ndarray, limit: int) -> int:
        n = 0
        ref = None
        for line in lines[:limit]:
            if float(line.std()) >= tol:
                break
            m = float(line.mean())
            if ref is None:
                ref = m
            elif abs(m - ref) > tol:
                break
            n += 1
        return n

    lh, lw = int(h * max_frac), int(w * max_frac)
    top = side(gray, lh)
    bottom = side(gray[::-1], lh)
    left = side(gray.T, lw)
    right = side(gray.T[::-1], lw)
    return left, top, w - right, h - bottom


def _candidate_sizes(cw: int, ch: int, aspect: float) -> list[tuple[int, int]]:
    """Sizes (w, h) to resize the main image to before matching a (ch, cw) thumbnail region;
    the plain stretch to the thumbnail's own size comes first."""
    out = [(cw, ch)]
    for f in (1.0, 0.93, 1.07, 1.15, 1.25):
        out.append((cw * f, ch * f))  # stretched to the thumbnail's shape
        out.append((cw * f, cw * f / aspect))  # width fit, main aspect kept
        out.append((ch * f * aspect, ch * f))  # height fit
    sizes: list[tuple[int, int]] = []
    for w, h in out:
        s = (int(round(w)), int(round(h)))
        if s not in sizes:
            sizes.append(s)
    return sizes


#: The eight orientations tried, as (quarter turns, mirrored); the identity first.
_TRANSFORMS = [(0, False), (1, False), (3, False), (2, False), (0, True), (1, True), (3, True), (2, True)]


def _apply(a: np.ndarray, rot: int, flip: bool) -> np.ndarray:
    if flip:
        a = a[:, ::-1]
    return np.rot90(a, rot) if rot else a


def _undo(a: np.ndarray, rot: int, flip: bool) -> np.ndarray:
    if rot:
        a = np.rot90(a, -rot)
    return a[:, ::-1] if flip else a


def compare_thumbnail(
    main: np.ndarray, thumb: np.ndarray, threshold: float = 1.0, margin: float = 0.08, max_side: int = 160
) -> ThumbComparison:
    """Compare a thumbnail with the main image, allowing for bars, small crops, rotation and mirroring.

    Parameters
    ----------
    main : ndarray, shape (H, W, 3) or (H, W), uint8
        The main image in stored orientation.
    thumb : ndarray, shape (h, w, 3) or (h, w), uint8
        The decoded thumbnail.
    threshold : float
        Difference (in main-image luma standard deviations, after blurring) above which a pixel
        counts as changed.
    margin : float
        Fraction of the thumbnail cut from each side before matching, so that previews framed a
        little differently from the main image (common in cameras) still align.
    max_side : int
        Larger thumbnails are reduced to this long side first (speed).

    Returns
    -------
    ThumbComparison
        ``diff_map`` covers the whole main image (zeros where nothing was compared).

    Raises
    ------
    ValueError
        When either image is smaller than 16 pixels on a side.

    Notes
    -----
    The central part of the thumbnail (letterbox bars removed when their geometry fits the main
    image's aspect, ``margin`` cut) is located in the main image, reduced to thumbnail scale at
    several sizes (stretched, width-fit and height-fit, 0.93x to 1.25x), by normalised
    cross-correlation (``cv2.matchTemplate``). Quarter-turn rotations and mirror images of the
    main image are tried only when the plain match is poor.
    """
    import cv2

    g_thumb = _luma(thumb)
    th, tw = g_thumb.shape
    H, W = np.asarray(main).shape[:2]
    if min(th, tw) < 16 or min(H, W) < 16:
        raise ValueError("images too small to compare")
    if max(th, tw) > max_side:
        f = max_side / max(th, tw)
        g_thumb = cv2.resize(g_thumb, (max(16, int(round(tw * f))), max(16, int(round(th * f)))), interpolation=cv2.INTER_AREA)
        th, tw = g_thumb.shape
    # decimate the main image before any float work: at most ~4x the thumbnail's size
    k = max(1, min(H, W) // (4 * max(th, tw)))
    g_main = _luma(np.asarray(main)[::k, ::k])

    x0, y0, x1, y1 = strip_bars(g_thumb)
    ar_main = W / H
    if (x0, y0, x1, y1) != (0, 0, tw, th):
        ar_c = (x1 - x0) / max(1, y1 - y0)
        fits = min(abs(ar_c / ar_main - 1), abs(ar_c * ar_main - 1)) < 0.06
        one_axis = (x0, x1) == (0, tw) or (y0, y1) == (0, th)
        if not (fits and one_axis) or x1 - x0 < 16 or y1 - y0 < 16:
            x0, y0, x1, y1 = 0, 0, tw, th  # uniform borders that are part of the picture
    content = cv2.GaussianBlur(g_thumb[y0:y1, x0:x1], (0, 0), 0.8)
    ch, cw = content.shape
    my, mx = int(round(ch * margin)), int(round(cw * margin))
    tmpl = np.ascontiguousarray(content[my : ch - my, mx : cw - mx])

    best = None  # (ncc, (rot, flip), size, (px, py), resized)
    cache: dict[tuple[int, bool], np.ndarray] = {}
    for t_i, (rot, flip) in enumerate(_TRANSFORMS):
        m = cache.setdefault((rot, flip), np.ascontiguousarray(_apply(g_main, rot, flip)))
        aspect = m.shape[1] / m.shape[0]
        for s_i, (w_, h_) in enumerate(_candidate_sizes(cw, ch, aspect)):
            if w_ < tmpl.shape[1] or h_ < tmpl.shape[0] or w_ > 4 * cw or h_ > 4 * ch:
                continue
            r = cv2.GaussianBlur(reduce_to(m, (h_, w_)), (0, 0), 0.8)
            res = cv2.matchTemplate(r, tmpl, cv2.TM_CCOEFF_NORMED)
            _, v, _, loc = cv2.minMaxLoc(res)
            if np.isfinite(v) and (best is None or v > best[0]):
                best = (float(v), (rot, flip), (w_, h_), loc, r)
            if s_i == 0 and t_i == 0 and best is not None and best[0] > 0.97:
                break  # the common case: the thumbnail is the whole image, same orientation
        if best is not None and best[0] > 0.9:
            break
    if best is None:
        raise ValueError("thumbnail could not be aligned")
    ncc, (rot, flip), (w_, h_), (px, py), r = best
    region = r[py : py + tmpl.shape[0], px : px + tmpl.shape[1]]
    tm = match_histogram(tmpl, region)
    sd = max(float(region.std()), 4.0)
    diff = cv2.GaussianBlur((np.abs(tm - region) / sd).astype(np.float32), (0, 0), 1.0)
    changed = diff > threshold
    largest = 0.0
    if changed.any():
        n, _, stats, _ = cv2.connectedComponentsWithStats(changed.astype(np.uint8), connectivity=8)
        largest = float(stats[1:, 4].max()) / changed.size if n > 1 else 0.0
    full = np.zeros((h_, w_), np.float32)
    full[py : py + diff.shape[0], px : px + diff.shape[1]] = diff
    full = _undo(full, rot, flip)
    # resample to the main image's aspect ratio (stretched candidates do not keep it)
    out_w = max(16, int(full.shape[1]))
    out_h = max(1, int(round(out_w * H / W)))
    full = cv2.resize(np.ascontiguousarray(full), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    return ThumbComparison(
        correlation=ncc,
        changed_fraction=float(changed.mean()),
        largest_region_fraction=largest,
        diff_map=full.astype(np.float32),
        rotation=int(rot),
        mirrored=bool(flip),
        letterboxed=(x0, y0, x1, y1) != (0, 0, tw, th),
        thumb_shape=(int(th), int(tw)),
    )


@dataclass
class CropMatch:
    """Where the main image sits inside its thumbnail (see :func:`find_crop_in_thumbnail`).

    Attributes
    ----------
    correlation : float
        Normalised cross-correlation of the best placement.
    box : (int, int, int, int)
        x0, y0, x1, y1 of the main image's content in thumbnail pixels.
    area_fraction : float
        Share of the thumbnail's area that the main image covers.
    rotation : int
        Quarter turns applied to the main image.
    """

    correlation: float
    box: tuple[int, int, int, int]
    area_fraction: float
    rotation: int


def find_crop_in_thumbnail(
    main: np.ndarray, thumb: np.ndarray, min_side: int = 20, max_side: int = 160, min_area: float = 0.05
) -> CropMatch | None:
    """Look for the main image as a sub-region of its thumbnail (a crop made after capture).

    Parameters
    ----------
    main : ndarray, shape (H, W, 3) or (H, W), uint8
    thumb : ndarray, shape (h, w, 3) or (h, w), uint8
    min_side : int
        Smallest size, in (reduced) thumbnail pixels, the main image is tried at.
    max_side : int
        Larger thumbnails are reduced to this long side first; ``box`` is in reduced pixels.
    min_area : float
        Smallest share of the thumbnail's area the main image is tried at (tiny templates
        correlate with anything).

    Returns
    -------
    CropMatch or None
        The best placement over 12 sizes from the smallest allowed to 95% of the thumbnail and
        the four quarter-turn rotations (others only when the unrotated one is poor); ``None``
        when no size fits.
    """
    import cv2

    g_thumb = _luma(thumb)
    if max(g_thumb.shape) > max_side:
        f = max_side / max(g_thumb.shape)
        g_thumb = cv2.resize(g_thumb, (max(1, int(round(g_thumb.shape[1] * f))), max(1, int(round(g_thumb.shape[0] * f)))),
                             interpolation=cv2.INTER_AREA)
    g_thumb = cv2.GaussianBlur(g_thumb, (0, 0), 0.8)
    th, tw = g_thumb.shape
    H, W = np.asarray(main).shape[:2]
    k = max(1, min(H, W) // (4 * max(th, tw)))
    g_main = _luma(np.asarray(main)[::k, ::k])
    best: CropMatch | None = None
    for rot in (0, 1, 3, 2):
        m = np.ascontiguousarray(np.rot90(g_main, rot)) if rot else g_main
        mh, mw = m.shape
        fmax = 0.95 * min(tw / mw, th / mh)
        fmin = max(min_side / min(mh, mw), float(np.sqrt(min_area * tw * th / (mw * mh))))
        if fmax <= fmin:
            continue
        for f in np.geomspace(fmin, fmax, 12):
            w_, h_ = max(min_side, int(round(mw * f))), max(min_side, int(round(mh * f)))
            if w_ > tw or h_ > th:
                continue
            small = cv2.GaussianBlur(reduce_to(m, (h_, w_)), (0, 0), 0.8)
            if float(small.std()) < 1.0:
                continue
            res = cv2.matchTemplate(g_thumb, small, cv2.TM_CCOEFF_NORMED)
            _, v, _, (px, py) = cv2.minMaxLoc(res)
            if np.isfinite(v) and (best is None or v > best.correlation):
                best = CropMatch(float(v), (int(px), int(py), int(px + w_), int(py + h_)), w_ * h_ / (tw * th), rot)
        if best is not None and best.correlation > 0.9:
            break
    return best
