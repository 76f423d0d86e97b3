"""verity's invisible watermark: payload format, channel code and the embed/detect API.

Payload: 1 to 8 bytes (2 to 16 hex digits). The frame is 3 bits of length (bytes - 1), 64 bits of
data (zero-padded), a CRC-16/CCITT over both, and 6 zero tail bits; a rate-1/2 constraint-length-7
convolutional code (generators 133 and 171 octal, the one used by 802.11 and DVB) turns its 89 bits
into 178 coded bits, decoded by a soft-decision Viterbi decoder. The signal processing is in
:mod:`verity.ops.watermark`; docs/watermark.md describes the scheme and what it survives.

Detection confidence: the p-value of the pilot (synchronisation) match, i.e. the probability that
an unmarked image gives a pilot correlation peak at least this high anywhere in the search. A mark
is reported only when that p-value is below ``P_THRESHOLD`` *and* the CRC checks; a strong pilot
with a failing CRC is reported as a damaged mark (present, payload unreadable).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verity.ops import watermark as wm

#: Largest payload, in bytes.
MAX_BYTES = 8
#: Length field, data field, CRC and tail, in bits.
LEN_BITS, DATA_BITS, CRC_BITS, K = 3, 64, 16, 7
INFO_BITS = LEN_BITS + DATA_BITS + CRC_BITS
N_CODED = 2 * (INFO_BITS + K - 1)
#: Report a mark when the sync p-value is below this (validated on unmarked photos: docs/watermark.md).
P_THRESHOLD = 1e-6
#: Default key: marks made with another key are invisible to this one.
DEFAULT_KEY = "verity"
#: Default embedding strength (PSNR of the marked image, dB).
DEFAULT_PSNR = 38.5

_G = (0o133, 0o171)


class WatermarkError(ValueError):
    """Bad message, key or image for the watermark functions (one-line message)."""


# ------------------------------------------------------------------------------------- bits and CRC


def bytes_to_bits(b: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(b, np.uint8)).astype(np.uint8)


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (poly 0x1021, init 0xFFFF) of a bit sequence, as 16 bits (MSB first)."""
    reg = 0xFFFF
    for b in np.asarray(bits, np.uint8).tolist():
        top = ((reg >> 15) & 1) ^ b
        reg = ((reg << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return np.array([(reg >> (15 - i)) & 1 for i in range(16)], np.uint8)


def parse_message(hexstr: str) -> bytes:
    s = (hexstr or "").strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    if not s or len(s) % 2 or any(c not in "0123456789abcdef" for c in s):
        raise WatermarkError(f"message must be 2 to {2 * MAX_BYTES} hex digits (an even number), got {hexstr!r}")
    b = bytes.fromhex(s)
    if len(b) > MAX_BYTES:
        raise WatermarkError(f"message is {len(b)} bytes; at most {MAX_BYTES} bytes ({2 * MAX_BYTES} hex digits) fit")
    return b


def frame(message: bytes) -> np.ndarray:
    """The INFO_BITS frame: length, zero-padded data, CRC."""
    n = len(message)
    if not 1 <= n <= MAX_BYTES:
        raise WatermarkError(f"message must be 1 to {MAX_BYTES} bytes")
    length = np.array([((n - 1) >> (LEN_BITS - 1 - i)) & 1 for i in range(LEN_BITS)], np.uint8)
    data = bytes_to_bits(message.ljust(MAX_BYTES, b"\0"))
    head = np.concatenate([length, data])
    return np.concatenate([head, crc16(head)])


def unframe(bits: np.ndarray) -> tuple[bytes, bool]:
    """(message, crc_ok) of a decoded frame."""
    bits = np.asarray(bits, np.uint8)
    head, crc = bits[: LEN_BITS + DATA_BITS], bits[LEN_BITS + DATA_BITS : INFO_BITS]
    n = int("".join(map(str, head[:LEN_BITS].tolist())), 2) + 1
    data = np.packbits(head[LEN_BITS:]).tobytes()[:n]
    return data, bool(np.array_equal(crc16(head), crc))


# ---------------------------------------------------------------------------- convolutional code


def _trellis():
    s = np.arange(64)
    out = np.zeros((64, 2, 2), np.int8)
    for u in (0, 1):
        reg = (u << 6) | s
        for j, g in enumerate(_G):
            out[:, u, j] = np.array([bin(int(v) & g).count("1") & 1 for v in reg])
    return out


_OUT = _trellis()  # _OUT[state, input, j]: coded bit j; next state = (input << 5) | (state >> 1)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 code with a zero tail (returns 2 * (len + 6) bits)."""
    u = np.concatenate([np.asarray(bits, np.uint8), np.zeros(K - 1, np.uint8)])
    out = np.zeros(2 * len(u), np.uint8)
    s = 0
    for t, b in enumerate(u.tolist()):
        out[2 * t], out[2 * t + 1] = _OUT[s, b]
        s = (b << 5) | (s >> 1)
    return out


def viterbi(soft: np.ndarray, n_info: int) -> np.ndarray:
    """Soft-decision Viterbi decoding (``soft`` > 0 means coded bit 1; magnitude = confidence)."""
    soft = np.asarray(soft, np.float64).reshape(-1, 2)
    steps = len(soft)
    sign = _OUT.astype(np.float64) * 2 - 1  # (64, 2, 2)
    ns = np.arange(64)
    u_of_ns = ns >> 5
    p0 = (ns & 31) << 1
    p1 = p0 | 1
    pm = np.full(64, -np.inf)
    pm[0] = 0.0
    dec = np.zeros((steps, 64), np.uint8)
    for t in range(steps):
        bm = sign @ soft[t]  # (64, 2): metric of (state, input)
        a = pm[p0] + bm[p0, u_of_ns]
        b = pm[p1] + bm[p1, u_of_ns]
        dec[t] = b > a
        pm = np.where(b > a, b, a)
    s = 0  # the tail returns the encoder to state 0
    bits = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = s >> 5
        s = ((s & 31) << 1) | int(dec[t, s])
    return bits[:n_info]


# ------------------------------------------------------------------------------------------------ API


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(("verity-wm1:" + key).encode()).digest()[:8], "big")


_LAYOUTS: dict[str, wm.Layout] = {}
#: Share of the chips given to the synchronisation pilot.
PILOT_FRACTION = 0.4


def layout(key: str = DEFAULT_KEY) -> wm.Layout:
    if key not in _LAYOUTS:
        _LAYOUTS[key] = wm.make_layout(_seed(key), N_CODED, PILOT_FRACTION)
    return _LAYOUTS[key]


def _check_image(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3:
        raise WatermarkError(f"expected an RGB image, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype != np.uint8:
        raise WatermarkError(f"expected 8-bit pixels, got {a.dtype}")
    if min(a.shape[:2]) < wm.MIN_SIDE:
        raise WatermarkError(f"image is {a.shape[1]}x{a.shape[0]}; a watermark needs at least {wm.MIN_SIDE} px a side")
    return a


@dataclass
class EmbedResult:
    image: np.ndarray
    psnr: float
    message: bytes
    seconds: float


def embed(rgb: np.ndarray, message: bytes, key: str = DEFAULT_KEY, psnr: float = DEFAULT_PSNR) -> EmbedResult:
    """Mark an RGB uint8 image with a 1-8 byte message at the given PSNR (dB)."""
    t0 = time.perf_counter()
    a = _check_image(rgb)
    if not 20.0 <= psnr <= 60.0:
        raise WatermarkError(f"PSNR must be between 20 and 60 dB, got {psnr}")
    coded = conv_encode(frame(message))
    chips = wm.target_chips(layout(key), coded)
    out, got = wm.embed_chips(a, psnr=psnr, chips=chips)
    return EmbedResult(out, got, message, time.perf_counter() - t0)


@dataclass
class DetectResult:
    """What :func:`detect` found. ``status``: ``marked`` (sync and CRC good), ``damaged`` (the
    pilot is there but the payload does not check), ``unmarked``."""

    status: str
    p_value: float
    log10_p: float
    z: float
    message: bytes | None
    crc_ok: bool
    bits: np.ndarray  # the 64 decoded data bits (best guess even when unmarked)
    length: int
    pilot_snr: float
    period: tuple[float, float]
    offset: tuple[float, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def marked(self) -> bool:
        return self.status == "marked"

    def to_dict(self) -> dict[str, Any]:
        # scale of the image relative to the marked one (crop), from the tile period
        return {
            "status": self.status,
            "marked": self.marked,
            "message": self.message.hex() if self.message is not None else None,
            "p_value": self.p_value,
            "log10_p": round(self.log10_p, 2),
            "sync_z": round(self.z, 2),
            "crc_ok": self.crc_ok,
            "pilot_snr": round(self.pilot_snr, 3),
            "tile_period": [round(v, 2) for v in self.period],
            "tile_offset": [round(v, 2) for v in self.offset],
            "threshold": P_THRESHOLD,
            "seconds": round(self.seconds, 3),
        }


def detect(rgb: np.ndarray, key: str = DEFAULT_KEY, threshold: float = P_THRESHOLD) -> DetectResult:
    """Look for a verity mark made with ``key``; never raises on a valid RGB uint8 image of >= 64 px."""
    t0 = time.perf_counter()
    a = _check_image(rgb)
    lay = layout(key)
    r = wm.canonical_residual(wm.luma(a))
    sync = wm.synchronise(r, wm.upsample(lay.pilot_chips))
    soft, snr = wm.soft_bits(sync, lay)
    info = viterbi(soft, INFO_BITS)
    msg, ok = unframe(info)
    lp = sync.log10_p
    p = 10.0**lp
    if lp < math.log10(threshold) and ok:
        status = "marked"
    elif lp < math.log10(threshold):
        status = "damaged"
    else:
        status = "unmarked"
    n = int("".join(map(str, info[:LEN_BITS].tolist())), 2) + 1
    return DetectResult(
        status=status,
        p_value=p,
        log10_p=lp,
        z=sync.z,
        message=msg if status == "marked" else None,
        crc_ok=ok,
        bits=info[LEN_BITS : LEN_BITS + DATA_BITS].copy(),
        length=n,
        pilot_snr=snr,
        period=sync.period,
        offset=sync.offset,
        seconds=time.perf_counter() - t0,
    )


# ------------------------------------------------------------ known marks of generator pipelines

#: Messages that public diffusion pipelines embed with invisible-watermark's 'dwtDct' method.
#: Sources (public code): the CompVis/runwayml Stable Diffusion v1 scripts (txt2img: the bytes of
#: "StableDiffusionV1"; the inpainting script: "StableDiffusionV1-Inpainting"), the Stability-AI
#: stablediffusion v2 scripts ("SDV2"), and Stability-AI generative-models / diffusers SDXL
#: (the 48-bit pattern 0b101100111110110010010000011110111011000110011110).
KNOWN_MARKS: dict[str, np.ndarray] = {
    "Stable Diffusion 1.x (txt2img/img2img)": bytes_to_bits(b"StableDiffusionV1"),
    "Stable Diffusion 1.x inpainting": bytes_to_bits(b"StableDiffusionV1-Inpainting"),
    "Stable Diffusion 2.x": bytes_to_bits(b"SDV2"),
    "Stable Diffusion XL": np.array([int(c) for c in bin(0b101100111110110010010000011110111011000110011110)[2:]], np.uint8),
}
#: Report a known mark when its Bonferroni p-value (over marks and colour orders) is below this.
KNOWN_P_THRESHOLD = 1e-8


@dataclass
class KnownMark:
    name: str | None
    log10_p: float
    z: float
    bit_accuracy: float
    channel_order: str
    scores: list[dict[str, Any]]


def detect_known(rgb: np.ndarray) -> KnownMark:
    """Best match among :data:`KNOWN_MARKS` (both colour orders), with a Bonferroni p-value."""
    a = np.asarray(rgb)
    n_tests = 2 * len(KNOWN_MARKS)
    scores = []
    for order in (False, True):
        votes = wm.dwtdct_votes(a, bgr_order=order)
        for name, bits in KNOWN_MARKS.items():
            t, lp1, acc, n = wm.dwtdct_match(votes, bits)
            lp = min(0.0, lp1 + math.log10(n_tests)) if n else 0.0
            scores.append({"mark": name, "order": "RGB-as-BGR" if order else "BGR", "z": round(t, 2),
                           "log10_p": round(lp, 2), "bit_accuracy": round(acc, 3), "blocks": n})  # fmt: skip
    best = min(scores, key=lambda s: s["log10_p"])
    hit = best["log10_p"] < math.log10(KNOWN_P_THRESHOLD)
    return KnownMark(best["mark"] if hit else None, best["log10_p"], best["z"], best["bit_accuracy"], best["order"], scores)
