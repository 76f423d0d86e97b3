"""Invisible watermarks as pure numpy/OpenCV functions.

Two families live here:

* verity's own spread-spectrum mark (``embed_chips`` / ``analyse``): a band-limited pseudo-random
  pattern of ``CHIPS x CHIPS`` chips per tile, tiled ``CANON // TILE`` times across a canonical
  ``CANON x CANON`` luma grid (the image is stretched to it, so rescaling does not move the tiles),
  added to the luma with a texture mask. Half the chips are a fixed pilot (synchronisation), half
  carry the coded message bits. Detection estimates the tile period from the autocorrelation of a
  whitened residual (which undoes crops, that stretch the tile on the canonical grid), folds every
  tile copy onto one, finds the tile's cyclic offset by FFT correlation with the pilot and reads
  soft chip values by the adjoint of the embedding's up-sampling. The pilot's correlation peak, in
  robust standard deviations of the whole correlation map, is the sync statistic; its p-value
  (Bonferroni over every offset and period tried) is the chance an unmarked image matches that well.
  The channel code (CRC and convolutional code) lives in :mod:`verity.provenance.watermark`.
* ``dwtdct_votes`` / ``dwtdct_embed``: the 'dwtDct' method of the ``invisible-watermark`` package
  that the Stable Diffusion reference scripts use, read without that package (and without PyWavelets).

Nothing here knows about files or payload formats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Canonical grid side: the luma is stretched to CANON x CANON for embedding and detection.
CANON = 512
#: Tile side on the canonical grid; the pattern repeats CANON // TILE times in each direction.
TILE = 128
#: Chips per tile side; each chip spans TILE // CHIPS canonical pixels.
CHIPS = 32
#: Lowest kept frequency, in cycles per tile: lower ones cost PSNR and drown in image content.
BAND_LO = 3.0
#: Tile periods (canonical pixels) searched: crops that keep 70 % .. 105 % of a side.
PERIOD_RANGE = (TILE * 0.95, TILE / 0.68)
#: Step (canonical px) of the exhaustive search over aspect-preserving tile periods.
ISO_STEP = 1.0
#: Images smaller than this (either side) are refused for embedding and reported as unreadable.
MIN_SIDE = 64


def _u(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32 in [0, 255], of an (H, W, 3) or (H, W) uint8/float array."""
    import cv2

    a = np.asarray(rgb)
    if a.ndim == 2:
        return a.astype(np.float32)
    return cv2.cvtColor(_u(a[..., :3]), cv2.COLOR_RGB2GRAY)


# --------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """The keyed secret of a mark: which chips are pilot, their signs, and which coded bit each
    message chip carries."""

    pilot_idx: np.ndarray  # flat chip indices of the pilot
    pilot_sign: np.ndarray  # +-1
    msg_idx: np.ndarray  # flat chip indices carrying message bits
    msg_sign: np.ndarray  # +-1 (chip's spreading sign)
    msg_bit: np.ndarray  # coded-bit index carried by each message chip
    n_coded: int

    @property
    def pilot_chips(self) -> np.ndarray:
        c = np.zeros(CHIPS * CHIPS, np.float32)
        c[self.pilot_idx] = self.pilot_sign
        return c.reshape(CHIPS, CHIPS)


def make_layout(seed: int, n_coded: int, pilot_fraction: float = 0.5) -> Layout:
    """Deterministic layout from an integer seed (derived from the key)."""
    rng = np.random.default_rng(seed)
    n = CHIPS * CHIPS
    perm = rng.permutation(n)
    n_pilot = int(round(n * pilot_fraction))
    pilot_idx, msg_idx = perm[:n_pilot], perm[n_pilot:]
    pilot_sign = rng.choice(np.array([-1.0, 1.0], np.float32), n_pilot)
    msg_sign = rng.choice(np.array([-1.0, 1.0], np.float32), len(msg_idx))
    # each coded bit gets floor/ceil(len/n_coded) chips, spread over the tile
    msg_bit = rng.permutation(np.arange(len(msg_idx)) % n_coded)
    return Layout(pilot_idx, pilot_sign, msg_idx, msg_sign, msg_bit, n_coded)


def _band() -> np.ndarray:
    k = np.fft.fftfreq(CHIPS, 1.0 / CHIPS)  # cycles per tile
    ky, kx = np.meshgrid(k, k, indexing="ij")
    r = np.hypot(kx, ky)
    return ((r >= BAND_LO) & (np.abs(kx) < CHIPS // 2) & (np.abs(ky) < CHIPS // 2)).astype(np.float32)


_BAND = _band()
_IDX = np.concatenate([np.arange(CHIPS // 2), np.arange(TILE - CHIPS // 2, TILE)])


def upsample(chips: np.ndarray) -> np.ndarray:
    """Band-limited periodic interpolation of a CHIPS x CHIPS chip grid to a TILE x TILE tile
    (frequencies below BAND_LO cycles/tile removed)."""
    f = np.fft.fft2(chips) * _BAND
    big = np.zeros((TILE, TILE), np.complex128)
    big[np.ix_(_IDX, _IDX)] = f
    return np.real(np.fft.ifft2(big)).astype(np.float32) * (TILE * TILE) / (CHIPS * CHIPS)


def chip_values(tile_fft: np.ndarray, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Adjoint of :func:`upsample` applied to a tile given by its FFT, after moving the tile by
    ``shift`` = (dy, dx) canonical pixels (fractional shifts are exact phase ramps)."""
    f = tile_fft[np.ix_(_IDX, _IDX)]
    k = np.fft.fftfreq(TILE, 1.0 / TILE)[_IDX]
    dy, dx = shift
    ramp = np.exp(2j * np.pi * (k[:, None] * dy + k[None, :] * dx) / TILE)
    return np.real(np.fft.ifft2(f * ramp * _BAND)).astype(np.float32)


def target_chips(layout: Layout, coded_bits: np.ndarray) -> np.ndarray:
    """The wanted sign (+-1) of every chip for these coded bits (0/1, length ``layout.n_coded``)."""
    c = np.zeros(CHIPS * CHIPS, np.float32)
    c[layout.pilot_idx] = layout.pilot_sign
    b = np.asarray(coded_bits, np.float32)[layout.msg_bit] * 2.0 - 1.0
    c[layout.msg_idx] = layout.msg_sign * b
    return c.reshape(CHIPS, CHIPS)


def tile_pattern(layout: Layout, coded_bits: np.ndarray) -> np.ndarray:
    """The plain (host-independent) TILE x TILE pattern, unit RMS."""
    t = upsample(target_chips(layout, coded_bits))
    return t / max(float(np.sqrt(np.mean(t * t))), 1e-9)


# ------------------------------------------------------------------------------------------ embedding


def texture_mask(y: np.ndarray, scale: float) -> np.ndarray:
    """Where a luma change hides: local mean absolute detail, floored so that flat areas still carry
    some mark, normalised to mean 1. ``scale`` = image pixels per canonical pixel."""
    import cv2

    h, w = y.shape
    small = y
    if scale > 1.5:  # the mask is smooth: work near canonical resolution and scale back
        small = cv2.resize(y, (max(round(w / scale), 8), max(round(h / scale), 8)), interpolation=cv2.INTER_AREA)
        scale = 1.0
    s = max(scale, 0.5)
    d = np.abs(small - cv2.GaussianBlur(small, (0, 0), 1.0 * s))
    act = cv2.GaussianBlur(d, (0, 0), 3.0 * s)
    if small is not y:
        act = cv2.resize(act, (w, h), interpolation=cv2.INTER_LINEAR)
    floor = max(float(np.median(act)) * 0.35, 0.6)
    m = np.sqrt(act + floor)
    m /= max(float(m.mean()), 1e-6)
    return np.clip(m, 0.3, 2.5).astype(np.float32)


def informed_chips(y: np.ndarray, mask: np.ndarray, target: np.ndarray, strength: float, iters: int = 6,
                   tau: float = 0.7, step: float = 0.6) -> np.ndarray:
    """Chip amplitudes that pre-cancel the host image's own projection on the chips.

    Spread-spectrum detection is limited by *host interference*: the unmarked image already has a
    random-looking value on every chip, often as large as the mark. Knowing the host, the embedder
    can spend part of its energy where the host pushes a chip the wrong way (in the spirit of
    Malvar and Florencio's improved spread spectrum). This works on the canonical grid with the
    detector linearised around the host: ``value = host + strength * L(chips)`` (``strength``: RMS
    luma change of the final mark). ``target`` is the wanted sign
    of every chip (CHIPS x CHIPS, +-1); the chips returned keep its signs' meaning but have
    amplitudes raised where the margin ``value * target`` falls below ``tau`` times its median.
    """
    import cv2

    h, w = y.shape
    interp = cv2.INTER_AREA if (h > CANON or w > CANON) else cv2.INTER_LINEAR
    yc = cv2.resize(_u(y), (CANON, CANON), interpolation=interp)
    mc = cv2.resize(_u(mask), (CANON, CANON), interpolation=interp)
    r, den = _residual_parts(yc)
    host = chip_values(np.fft.fft2(fold(r, TILE, TILE)))
    reps = CANON // TILE
    d = target.astype(np.float32)
    c = d.copy()
    for _ in range(iters):
        pat = np.tile(upsample(c), (reps, reps)) * mc
        pat /= max(float(np.sqrt(np.mean(pat * pat))), 1e-9)
        hp = (pat - cv2.GaussianBlur(pat, (0, 0), 4.0)) / den
        lin = chip_values(np.fft.fft2(fold(hp, TILE, TILE)))
        margin = (host + strength * lin) * d
        med = float(np.median(margin))
        need = np.clip((tau * med - margin) / max(med, 1e-9), 0.0, 2.0)
        need[margin < -1.5 * med] = 0.0  # hopeless chips are left to the error-correcting code
        if not need.any():
            break
        c = c + step * d * need
    return c


def embed_chips(rgb: np.ndarray, tile: np.ndarray | None = None, psnr: float = 40.0,
                chips: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Add the tiled pattern to the luma of ``rgb`` (uint8, H x W x 3) at the target PSNR.

    Give either a ready ``tile`` or the target ``chips`` (CHIPS x CHIPS, +-1), which are then
    adapted to the host by :func:`informed_chips`.
    Returns the marked uint8 image and the PSNR actually achieved (after rounding and clipping).
    """
    import cv2

    img = np.asarray(rgb)
    h, w = img.shape[:2]
    y = luma(img)
    scale = math.sqrt((h / CANON) * (w / CANON))
    mask = texture_mask(y, scale)
    target_rms = 255.0 / (10 ** (psnr / 20.0))
    # near black or white the mark would be clipped away on one side: spend its energy elsewhere
    r_, g_, b_ = img[..., 0], img[..., 1], img[..., 2]
    lo = cv2.min(cv2.min(r_, g_), b_)
    hi = cv2.max(cv2.max(r_, g_), b_)
    hr = cv2.min(lo, cv2.subtract(np.full_like(hi, 255), hi)).astype(np.float32)
    hr = cv2.erode(hr, np.ones((3, 3), np.uint8))  # a cheap, conservative local minimum
    mask = mask * np.clip(hr * (1.0 / (2.5 * target_rms)), 0.1, 1.0)
    if tile is None:
        tile = upsample(informed_chips(y, mask, chips, target_rms))
    reps = CANON // TILE
    canon = np.tile(tile, (reps, reps))
    pat = cv2.resize(canon, (w, h), interpolation=cv2.INTER_AREA if w < CANON or h < CANON else cv2.INTER_LINEAR)
    delta = cv2.multiply(pat, mask)
    base = img.astype(np.float32)
    gain = target_rms / max(math.sqrt(cv2.norm(delta, cv2.NORM_L2SQR) / delta.size), 1e-9)
    out = img
    got = float("inf")
    for _ in range(3):  # clipping at black/white removes some energy: top it up
        d = cv2.merge([delta * gain] * 3)
        out = np.clip(np.rint(cv2.add(base, d)), 0, 255).astype(np.uint8)
        mse = cv2.norm(out, img, cv2.NORM_L2SQR) / out.size
        got = 10 * math.log10(255.0**2 / max(mse, 1e-12))
        if got <= psnr + 0.15:
            break
        gain *= 10 ** ((got - psnr) / 20.0)
    return out, got


# ------------------------------------------------------------------------------------------ detection


def canonical_residual(y: np.ndarray) -> np.ndarray:
    """The luma stretched to CANON x CANON, high-passed and normalised by its local contrast, so that
    the mark (which the embedder scaled with texture) has roughly constant strength."""
    import cv2

    h, w = y.shape
    interp = cv2.INTER_AREA if (h > CANON or w > CANON) else cv2.INTER_LINEAR
    c = cv2.resize(_u(y), (CANON, CANON), interpolation=interp)
    r, _ = _residual_parts(c)
    return r


def _residual_parts(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    hp = c - cv2.GaussianBlur(c, (0, 0), 4.0)
    loc = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 6.0))
    den = loc + max(float(np.median(loc)) * 0.5, 0.5)
    return np.clip(hp / den, -3.0, 3.0).astype(np.float32), den.astype(np.float32)


def _axis_peaks(line: np.ndarray, lo: int, hi: int, k: int = 2) -> list[float]:
    """Sub-pixel positions of the k strongest local maxima of ``line`` in [lo, hi]."""
    seg = line[lo : hi + 1]
    base = np.median(seg)
    cand = [i for i in range(1, len(seg) - 1) if seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1]]
    cand.sort(key=lambda i: -seg[i])
    out = []
    for i in cand[:k]:
        a, b, c = seg[i - 1] - base, seg[i] - base, seg[i + 1] - base
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
        out.append(lo + i + float(np.clip(off, -0.5, 0.5)))
    return out


def period_candidates(r: np.ndarray, k: int = 3) -> tuple[list[float], list[float], list[float]]:
    """Candidate tile periods (canonical px) along x and y from the residual's autocorrelation:
    the k strongest peaks on each axis, plus the k strongest of the two axes summed (a crop that
    keeps the aspect ratio stretches both alike, and the sum is less noisy)."""
    n = r.shape[0]
    lo, hi = int(math.floor(PERIOD_RANGE[0])), int(math.ceil(PERIOD_RANGE[1]))
    m = 768 if n + hi + 2 <= 768 else 2 * n  # padding beyond the largest lag searched avoids wrap-around
    f = np.fft.rfft2(r, s=(m, m))
    ac = np.fft.irfft2(f * np.conj(f), s=(m, m))
    # sum a few rows/cols around the axis (tolerates a slight shear), weight by overlap
    xs = ac[[0, 1, -1], :].sum(0)[: hi + 2]
    ys = ac[:, [0, 1, -1]].sum(1)[: hi + 2]
    norm = n - np.arange(hi + 2)
    xs, ys = xs / norm, ys / norm
    iso = _axis_peaks(xs / np.std(xs[lo:]) + ys / np.std(ys[lo:]), lo, hi, k)
    return _axis_peaks(xs, lo, hi, 2), _axis_peaks(ys, lo, hi, 2), iso


def fold(r: np.ndarray, period_x: float, period_y: float) -> np.ndarray:
    """Resample so that one period is TILE pixels, then sum every tile copy onto one TILE x TILE tile."""
    import cv2

    h, w = r.shape
    nw = max(int(round(w * TILE / period_x)), 8)
    nh = max(int(round(h * TILE / period_y)), 8)
    s = cv2.resize(r, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = -(-nh // TILE) * TILE, -(-nw // TILE) * TILE
    pad = np.zeros((ph, pw), np.float32)
    pad[:nh, :nw] = s
    return pad.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))


@dataclass
class SyncResult:
    z: float  # pilot peak in robust standard deviations of the correlation map
    log10_p: float  # log10 of the Bonferroni p-value
    period: tuple[float, float]  # (x, y) canonical px
    offset: tuple[float, float]  # (dy, dx) of the tile, canonical px
    n_tests: int
    tile_fft: np.ndarray  # FFT of the folded tile


def log10_normal_sf(z: float) -> float:
    """log10 of the upper normal tail P(Z > z), accurate far into the tail."""
    if z < 5:
        return math.log10(max(0.5 * math.erfc(z / math.sqrt(2)), 1e-300))
    # asymptotic expansion of Mills' ratio
    return (-(z * z) / 2 - math.log(z * math.sqrt(2 * math.pi)) + math.log1p(-1 / (z * z) + 3 / z**4)) / math.log(10)


def synchronise(r: np.ndarray, pilot_tile: np.ndarray) -> SyncResult:
    """Find the tile period and offset that best match the pilot."""
    px, py, iso = period_candidates(r)
    nominal = float(TILE)
    # autocorrelation peaks can be drowned by periodic image content: also try a grid of
    # aspect-preserving crops (1 px steps of the period; the refinement below does the rest)
    grid = [(float(p), float(p)) for p in np.arange(math.ceil(PERIOD_RANGE[0]), PERIOD_RANGE[1], ISO_STEP)]
    combos = [(a, b) for a in px for b in py] + [(p, p) for p in iso] + [(nominal, nominal)] + grid
    combos = list(dict.fromkeys((round(a, 2), round(b, 2)) for a, b in combos))
    pf = np.conj(np.fft.fft2(pilot_tile))

    def score(a: float, b: float):
        tf = np.fft.fft2(fold(r, a, b))
        c = np.real(np.fft.ifft2(tf * pf))
        zmap = (c - c.mean()) / max(float(c.std()), 1e-12)
        i = int(np.argmax(zmap))
        return (float(zmap.flat[i]), a, b, i, zmap, tf)

    best = max((score(a, b) for a, b in combos), key=lambda t: t[0])
    # refine the period: over a few tiles, a fraction of a pixel per period adds up to a chip
    for step in (0.5, 0.25):
        a0, b0 = best[1], best[2]
        near = [(a0 + i * step, b0 + j * step) for i, j in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1))]
        combos += near
        best = max([best] + [score(a, b) for a, b in near], key=lambda t: t[0])
    z, a, b, i, zmap, tf = best
    iy, ix = divmod(i, TILE)

    def sub(v_m, v_0, v_p):
        den = v_m - 2 * v_0 + v_p
        return float(np.clip(0.5 * (v_m - v_p) / den, -0.5, 0.5)) if abs(den) > 1e-12 else 0.0

    dy = iy + sub(zmap[(iy - 1) % TILE, ix], zmap[iy, ix], zmap[(iy + 1) % TILE, ix])
    dx = ix + sub(zmap[iy, (ix - 1) % TILE], zmap[iy, ix], zmap[iy, (ix + 1) % TILE])
    n_tests = TILE * TILE * len(combos)
    lp = min(0.0, log10_normal_sf(z) + math.log10(n_tests))
    return SyncResult(z, lp, (a, b), (dy, dx), n_tests, tf)


def soft_bits(sync: SyncResult, layout: Layout) -> tuple[np.ndarray, float]:
    """Soft value of each coded bit (positive = 1) and the pilot chips' SNR (mean/std)."""
    # the pilot peak at (dy, dx) means the tile content is the pilot moved by (dy, dx): undo it
    ch = chip_values(sync.tile_fft, (sync.offset[0], sync.offset[1])).ravel()
    pil = ch[layout.pilot_idx] * layout.pilot_sign
    mu, sd = float(pil.mean()), float(pil.std()) + 1e-9
    m = ch[layout.msg_idx] * layout.msg_sign
    soft = np.bincount(layout.msg_bit, weights=m, minlength=layout.n_coded)
    # LLR scale for Gaussian chips: 2 mu / sd^2 per chip
    return (soft * (2 * mu / (sd * sd))).astype(np.float64), mu / sd


# --------------------------------------------------------------------- invisible-watermark 'dwtDct'

#: quantisation step of invisible-watermark's dwtDct method (its default for the U channel)
DWTDCT_SCALE = 36.0


def _yuv_u(rgb: np.ndarray, bgr_order: bool) -> np.ndarray:
    """The U channel as OpenCV's COLOR_BGR2YUV gives it for uint8 input (offset 128, rounded), which
    is what invisible-watermark sees when handed an 8-bit image.

    ``bgr_order`` False reads the array as invisible-watermark expects (the caller converted RGB to
    BGR first); True mimics pipelines that passed RGB arrays straight in.
    """
    import cv2

    a = np.ascontiguousarray(np.asarray(rgb)[..., :3], dtype=np.uint8)
    code = cv2.COLOR_BGR2YUV if bgr_order else cv2.COLOR_RGB2YUV
    return cv2.cvtColor(a, code)[..., 1].astype(np.float32)


def _ll_blocks(u: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = u.shape
    h4, w4 = h // 4 * 4, w // 4 * 4
    x = u[:h4, :w4]
    ll = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) / 2.0  # Haar LL, orthonormal
    bh, bw = ll.shape[0] // 4, ll.shape[1] // 4
    blocks = ll[: bh * 4, : bw * 4].reshape(bh, 4, bw, 4).transpose(0, 2, 1, 3).reshape(bh * bw, 16)
    return blocks, (bh, bw)


def dwtdct_votes(rgb: np.ndarray, bgr_order: bool = False) -> np.ndarray:
    """One bit vote per 4x4 block of the U channel's Haar LL band, in the package's block order
    (row-major; block ``n`` carries message bit ``n % len``)."""
    blocks, _ = _ll_blocks(_yuv_u(rgb, bgr_order))
    if len(blocks) == 0:
        return np.zeros(0, np.uint8)
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    val = np.abs(blocks[np.arange(len(blocks)), pos])
    return (np.mod(val, DWTDCT_SCALE) > 0.5 * DWTDCT_SCALE).astype(np.uint8)


def dwtdct_match(votes: np.ndarray, bits: np.ndarray) -> tuple[float, float, float, int]:
    """How well block votes fit a known message.

    Returns (t, log10_p, bit_accuracy, n_blocks). Each message bit's share of 1-votes is computed
    over its blocks; Welch's t-test compares the shares of the 1-bits with those of the 0-bits
    (one-sided). Testing per bit rather than per block keeps the test honest when image content is
    spatially structured (blocks of one bit share columns of the image, so block votes are not
    independent), and it is immune to the votes' own bias towards 0 in flat areas. Bit accuracy is
    of the per-bit majority vote.
    """
    from scipy import stats

    bits = np.asarray(bits, np.uint8)
    n, L = len(votes), len(bits)
    if n < 2 * L or bits.min() == bits.max():
        return 0.0, 0.0, 0.0, n
    idx = np.arange(n) % L
    share = np.bincount(idx, weights=votes, minlength=L) / np.maximum(np.bincount(idx, minlength=L), 1)
    a, b = share[bits == 1], share[bits == 0]
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    diff = float(a.mean() - b.mean())
    if se < 1e-12:
        t = math.copysign(1e6, diff) if diff else 0.0
        df = float(L - 2)
    else:
        t = diff / se
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1) + 1e-300)
    log10_p = float(stats.t.logsf(t, df)) / math.log(10)
    acc = float(np.mean((share > 0.5) == bits.astype(bool)))
    return float(t), log10_p, acc, n


def dwtdct_embed(rgb: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Embed ``bits`` the way invisible-watermark's dwtDct does (U channel, scale 36), for tests and
    benchmarks without that package. Only the LL band changes, so the result decodes the same."""
    import cv2

    a = np.asarray(rgb, np.uint8)
    bgr = a[..., ::-1].copy()
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV).astype(np.float32)
    u = yuv[..., 1]
    blocks, (bh, bw) = _ll_blocks(u)
    if len(blocks) == 0:
        return a.copy()
    bits = np.asarray(bits, np.float32)
    wm = bits[np.arange(len(blocks)) % len(bits)]
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    idx = np.arange(len(blocks))
    val = blocks[idx, pos]
    new = (np.abs(val) // DWTDCT_SCALE + 0.25 + 0.5 * wm) * DWTDCT_SCALE * np.where(val >= 0, 1, -1)
    delta_ll = np.zeros_like(blocks)
    delta_ll[idx, pos] = new - val
    d = delta_ll.reshape(bh, bw, 4, 4).transpose(0, 2, 1, 3).reshape(bh * 4, bw * 4)
    # LL coefficient = (sum of 2x2)/2, so adding delta/2 to each of the four pixels adds delta
    up = np.repeat(np.repeat(d / 2.0, 2, 0), 2, 1)
    u[: up.shape[0], : up.shape[1]] += up
    yuv[..., 1] = u
    out = cv2.cvtColor(np.clip(np.rint(yuv), 0, 255).astype(np.uint8), cv2.COLOR_YUV2BGR)
    return out[..., ::-1].copy()
