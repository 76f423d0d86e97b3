"""PDQ perceptual hashes (Meta, 2019) for near-duplicate search.

A PDQ hash is 256 bits; re-encoded or resized copies of an image typically differ in at most about
31 bits (Hamming distance), unrelated images in about 128. The quality (0-100) says how much
structure the hash rests on: below 50 (flat or nearly blank images) matches are unreliable.

Vector databases search float vectors, so the index stores each hash as a +-1 vector ``v``: for two
hashes ``v . w = 256 - 2 d`` where ``d`` is their Hamming distance, and an inner-product search
returns exact Hamming neighbours.
"""

from __future__ import annotations

import numpy as np

BITS = 256
#: Hamming distance at or below which two hashes are called near duplicates (the PDQ authors' value).
NEAR_DUPLICATE = 31
#: Below this quality a hash is unreliable.
MIN_QUALITY = 50


def pdq_hash(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """PDQ hash of an image.

    Parameters
    ----------
    pixels : ndarray, shape (H, W, 3) or (H, W), uint8
        Display orientation. Images larger than 512 px are first reduced by area averaging (PDQ
        reduces to 64 x 64 internally; this only saves time).

    Returns
    -------
    bits : ndarray, shape (256,), uint8 of 0/1
    quality : int
        0-100.
    """
    import cv2
    import pdqhash

    img = np.asarray(pixels)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    h, w = img.shape[:2]
    if max(h, w) > 512:
        s = 512.0 / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    bits, quality = pdqhash.compute(img)
    return np.asarray(bits, np.uint8), int(quality)


def to_hex(bits: np.ndarray) -> str:
    """64 hex characters for 256 bits (in pdqhash's bit order)."""
    return np.packbits(np.asarray(bits, np.uint8)).tobytes().hex()


def from_hex(text: str) -> np.ndarray:
    """Inverse of :func:`to_hex`."""
    raw = bytes.fromhex(text)
    if len(raw) != BITS // 8:
        raise ValueError(f"a PDQ hash has 64 hex characters, got {len(text)}")
    return np.unpackbits(np.frombuffer(raw, np.uint8))


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Number of differing bits."""
    return int(np.count_nonzero(np.asarray(a, np.uint8) != np.asarray(b, np.uint8)))


def to_signed(bits: np.ndarray) -> np.ndarray:
    """0/1 bits -> float32 +-1 vector (so that inner product = 256 - 2 * Hamming distance)."""
    return np.asarray(bits, np.float32) * 2.0 - 1.0


def distance_from_ip(ip: float) -> int:
    """Hamming distance from the inner product of two +-1 vectors."""
    return int(round((BITS - float(ip)) / 2.0))


def pack(bits: np.ndarray) -> np.ndarray:
    """(..., 256) 0/1 bits -> (..., 4) uint64 words (the layout :func:`hamming_many` scans)."""
    b = np.packbits(np.asarray(bits, np.uint8), axis=-1)
    return np.ascontiguousarray(b).view(np.uint64)


def pack_hex(texts: list[str]) -> np.ndarray:
    """Hex hashes (as stored in ``pdq_hex``) -> (n, 4) uint64 words."""
    if not texts:
        return np.zeros((0, BITS // 64), np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(texts)), np.uint8).reshape(len(texts), BITS // 8)
    return np.ascontiguousarray(raw).view(np.uint64)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def hamming_many(packed: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances (int32, shape (n,)) from one packed hash (4,) to many packed hashes (n, 4)."""
    x = np.bitwise_xor(packed, np.asarray(query, np.uint64).reshape(1, -1))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).sum(axis=1, dtype=np.int32)
    return _POPCOUNT8[x.view(np.uint8)].sum(axis=1, dtype=np.int32)
