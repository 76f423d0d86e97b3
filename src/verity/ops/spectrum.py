"""Frequency-domain traces of up-sampling: periodic spectral peaks of the high-pass residual and
the azimuthally averaged power spectrum.

Generators (GAN and diffusion decoders) up-sample their feature maps by 2, often several times;
nearest, bilinear and transposed-convolution up-sampling leave correlations that repeat every 2
(and 4, 8...) pixels, which show up as peaks at 1/2 (and 1/4, 1/8...) of the sampling frequency in
the spectrum of the high-pass residual, or of its magnitude (Durall et al. 2020; Frank et al.
2020). JPEG compression also leaves peaks, from its 8x8 block grid, at every multiple of 1/8,
including 1/4 and 1/2: so the 1/2 and 1/4 peaks are only counted above the level of the odd
multiples of 1/8 (1/8 and 3/8), which JPEG produces and 2x/4x up-sampling does not.

Frequencies are in cycles per pixel (0.5 is the Nyquist frequency, "1/2 of the sampling frequency").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Frequencies (cycles/pixel) of the JPEG-grid peaks that 2x and 4x up-sampling do not produce.
JPEG_ODD_FREQS = (0.125, 0.375)


def select_tiles(gray: np.ndarray, tile: int, max_tiles: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``max_tiles`` non-overlapping ``tile`` x ``tile`` tiles, the most
    textured first (mean absolute residual), from a regular grid over the image.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
    tile, max_tiles : int

    Returns
    -------
    list of (y, x)
        Empty when the image is smaller than one tile.
    """
    g = np.asarray(gray)
    h, w = g.shape
    if h < tile or w < tile:
        return []
    ny, nx = h // tile, w // tile
    oy, ox = (h - ny * tile) // 2, (w - nx * tile) // 2
    cands = []
    for i in range(ny):
        for j in range(nx):
            y, x = oy + i * tile, ox + j * tile
            t = g[y : y + tile : 4, x : x + tile : 4].astype(np.float32)
            e = float(np.abs(np.diff(t, axis=1)).mean() + np.abs(np.diff(t, axis=0)).mean())
            cands.append((e, y, x))
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(y, x) for _, y, x in cands[:max_tiles]]


def tile_power_spectrum(gray: np.ndarray, tiles: list[tuple[int, int]], tile: int) -> np.ndarray:
    """Mean power spectrum over tiles of the Hann-windowed, mean-removed image.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
    tiles : list of (y, x)
    tile : int

    Returns
    -------
    ndarray, shape (tile, tile), float64
        Unshifted (index ``k`` is frequency ``k / tile``).
    """
    win = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    p = np.zeros((tile, tile))
    for y, x in tiles:
        t = np.asarray(gray[y : y + tile, x : x + tile], np.float32)
        p += np.abs(np.fft.fft2((t - t.mean()) * win)) ** 2
    return p / max(len(tiles), 1)


def azimuthal_average(power: np.ndarray, bins: int = 32) -> np.ndarray:
    """Azimuthally averaged log10 power in ``bins`` radial bins from 0 to 0.5 cycles/pixel.

    Parameters
    ----------
    power : ndarray, shape (N, N)
        Unshifted power spectrum.
    bins : int

    Returns
    -------
    ndarray, shape (bins,), float64
        Mean ``log10(power)`` per ring (rings beyond 0.5, the corners, are ignored).
    """
    n0, n1 = power.shape
    fy = np.fft.fftfreq(n0)[:, None]
    fx = np.fft.fftfreq(n1)[None, :]
    r = np.sqrt(fy * fy + fx * fx)
    idx = np.minimum((r / 0.5 * bins).astype(int), bins)
    lp = np.log10(np.maximum(power, 1e-12))
    s = np.bincount(idx.ravel(), lp.ravel(), minlength=bins + 1)[:bins]
    c = np.bincount(idx.ravel(), minlength=bins + 1)[:bins]
    return s / np.maximum(c, 1)


def periodicity_spectra(gray: np.ndarray, max_lines: int = 512) -> list[tuple[np.ndarray, np.ndarray]]:
    """Power spectra of line-averaged difference magnitudes, along x and along y.

    Interpolation makes samples depend on their neighbours differently according to their position
    modulo the up-sampling factor. Which difference reveals it depends on the interpolator: the
    first difference ``|x[n+1] - x[n]|`` for nearest-neighbour (pixel pairs are equal), the second
    difference for interpolators that keep the original samples, the third for half-pixel
    bilinear (the second difference is equal within pairs). Averaging each magnitude over all rows
    (for x) or columns (for y) keeps only what is aligned across the image, such as a resampling or
    JPEG grid, and the DFT of that profile shows a peak at each of the grid's frequencies
    (Gallagher 2005).

    Parameters
    ----------
    gray : ndarray, shape (H, W)
    max_lines : int
        At most this many rows (columns), evenly spaced, are averaged.

    Returns
    -------
    list of (px, py)
        One pair per difference order (1, 2, 3). ``px`` is the one-sided power spectrum
        (``rfft``; index ``k`` is frequency ``k / W``) of the row-averaged profile, zero-padded to
        length ``W``; ``py`` the same along y with ``H``.
    """
    g = np.asarray(gray)
    out: list[list[np.ndarray]] = [[], [], []]
    for arr in (g, g.T):
        n = arr.shape[0]
        rows = arr[:: max(1, -(-n // max_lines))].astype(np.float32)
        d1 = rows[:, 1:] - rows[:, :-1]
        d2 = d1[:, 1:] - d1[:, :-1]
        d3 = d2[:, 1:] - d2[:, :-1]
        for i, d in enumerate((d1, d2, d3)):
            prof = np.abs(d).mean(axis=0)
            prof = (prof - prof.mean()) * np.hanning(len(prof))
            out[i].append(np.abs(np.fft.rfft(prof, n=arr.shape[1])) ** 2)
    return [(o[0], o[1]) for o in out]


def line_peak(power: np.ndarray, n: int, f: float, halfwidth: int = 0) -> float:
    """Peak ratio of a one-sided (``rfft``) power spectrum at frequency ``f``.

    Parameters
    ----------
    power : ndarray, shape (n // 2 + 1,)
    n : int
        Length of the transformed signal.
    f : float
        Cycles per sample, in (0, 0.5].
    halfwidth : int
        The peak is the maximum over ``k +- halfwidth`` bins around ``k = round(f n)``.

    Returns
    -------
    float
        Peak power over the median power of the bins from ``0.8 f`` to ``min(1.2 f, 0.5)`` outside
        ``+-2`` bins of the peak; about 1 (log-normal scatter) without a peak.
    """
    k = int(round(f * n))
    k = min(k, len(power) - 1)
    lo, hi = max(1, int(0.8 * f * n)), min(len(power), int(min(1.2 * f, 0.5) * n) + 1)
    idx = np.arange(lo, hi)
    bg = power[idx[np.abs(idx - k) > 2]]
    if bg.size < 4:
        return 1.0
    b = float(np.median(bg))
    pk = float(power[max(0, k - halfwidth) : k + halfwidth + 1].max())
    return pk / b if b > 0 else 1.0


@dataclass
class SpectrumFeatures:
    """Measurements of :func:`spectrum_features` (peak ratios are power over local background).

    Attributes
    ----------
    up2, up4 : float
        Peak ratio at 1/2 and 1/4 cycles/pixel (max of the residual and residual-magnitude spectra).
    jpeg_odd : float
        Peak ratio at 1/8 and 3/8 (the larger), the JPEG-grid level.
    excess2, excess4 : float
        ``log10(up / max(jpeg_odd, 1))``: the part of each peak that the JPEG grid does not explain.
    hf_slope : float
        Slope of the azimuthal log10 power of the image between 0.25 and 0.5 cycles/pixel per unit
        frequency (steeper negative: less fine detail).
    hf_ratio : float
        Mean log10 power at 0.35 to 0.5 minus at 0.1 to 0.2 cycles/pixel.
    azimuthal : ndarray, shape (32,)
        The azimuthal average itself.
    tiles : int
        Tiles analysed.
    """

    up2: float
    up4: float
    jpeg_odd: float
    excess2: float
    excess4: float
    hf_slope: float
    hf_ratio: float
    azimuthal: np.ndarray = field(repr=False)
    tiles: int = 0


def spectrum_features(gray: np.ndarray, tile: int = 256, max_tiles: int = 12) -> SpectrumFeatures | None:
    """Up-sampling peaks and azimuthal spectrum of an image.

    Parameters
    ----------
    gray : ndarray, shape (H, W)
        Luma in [0, 255].
    tile : int
        Tile side (use 128 for images smaller than 256 px).
    max_tiles : int
        The most textured tiles are analysed, up to this many.

    Returns
    -------
    SpectrumFeatures or None
        ``None`` when the image is smaller than one tile.
    """
    tiles = select_tiles(gray, tile, max_tiles)
    if not tiles:
        return None
    g = np.asarray(gray)
    spectra = periodicity_spectra(g)
    nx, ny = g.shape[1], g.shape[0]

    def both(fr: float) -> float:
        # a global up-sampling acts on both axes: the weaker of the two, best difference order
        return max(min(line_peak(px, nx, fr, 1), line_peak(py, ny, fr, 1)) for px, py in spectra)

    up2, up4 = both(0.5), both(0.25)
    jodd = max(both(fr) for fr in JPEG_ODD_FREQS)
    ref = max(jodd, 1.0)
    p_img = tile_power_spectrum(g, tiles, tile)
    az = azimuthal_average(p_img, 32)
    f = (np.arange(32) + 0.5) / 64
    hi = f >= 0.25
    slope = float(np.polyfit(f[hi], az[hi], 1)[0])
    hf = float(az[(f >= 0.35)].mean() - az[(f >= 0.1) & (f < 0.2)].mean())
    return SpectrumFeatures(
        up2=up2,
        up4=up4,
        jpeg_odd=jodd,
        excess2=float(np.log10(max(up2, 1e-6) / ref)),
        excess4=float(np.log10(max(up4, 1e-6) / ref)),
        hf_slope=slope,
        hf_ratio=hf,
        azimuthal=az,
        tiles=len(tiles),
    )


def upsampling_score(f: SpectrumFeatures) -> float:
    """Score in [0.47, 0.9] for 2x up-sampling traces.

    The 1/2 peak must be strong in absolute terms (``up2 >= 10``) and above the JPEG-grid level
    (``excess2 >= 0.05``); confidence grows with both, reaching 0.9 at ``up2 >= 10**2.5`` and
    ``excess2 >= 0.6``. Without such a peak the score is 0.47 (absence of traces says little:
    many generators leave none after re-compression).
    """
    if f.up2 < 10 or f.excess2 < 0.05:
        return 0.47
    conf = min((np.log10(f.up2) - 1.0) / 1.5, f.excess2 / 0.6)
    return float(0.5 + 0.4 * np.clip(conf, 0.0, 1.0))
