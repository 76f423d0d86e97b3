"""PDQ hashes: hex round trip, Hamming distance, the +-1 inner-product identity, robustness."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from verity.index.pdq import BITS, distance_from_ip, from_hex, hamming, to_hex, to_signed

pytest.importorskip("pdqhash", reason="the [index] extra is not installed")


def _jpeg(img, q):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_hex_round_trip(rng):
    bits = rng.integers(0, 2, BITS).astype(np.uint8)
    h = to_hex(bits)
    assert len(h) == 64
    assert np.array_equal(from_hex(h), bits)
    with pytest.raises(ValueError):
        from_hex("abcd")


def test_inner_product_gives_hamming_distance(rng):
    for _ in range(20):
        a = rng.integers(0, 2, BITS).astype(np.uint8)
        b = rng.integers(0, 2, BITS).astype(np.uint8)
        ip = float(to_signed(a) @ to_signed(b))
        assert distance_from_ip(ip) == hamming(a, b)
    assert distance_from_ip(256.0) == 0 and distance_from_ip(-256.0) == 256


def test_reencoded_and_resized_copies_are_near(astronaut, coffee):
    import cv2

    from verity.index.pdq import NEAR_DUPLICATE, pdq_hash

    a, qa = pdq_hash(astronaut)
    assert a.shape == (256,) and qa >= 50
    assert hamming(a, pdq_hash(_jpeg(astronaut, 75))[0]) <= NEAR_DUPLICATE
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    assert hamming(a, pdq_hash(half)[0]) <= NEAR_DUPLICATE
    assert hamming(a, pdq_hash(coffee)[0]) > 2 * NEAR_DUPLICATE


def test_flat_images_have_low_quality():
    from verity.index.pdq import MIN_QUALITY, pdq_hash

    _, q = pdq_hash(np.full((64, 64, 3), 90, np.uint8))
    assert q < MIN_QUALITY


def test_large_and_gray_inputs(astronaut):
    import cv2

    from verity.index.pdq import pdq_hash

    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    assert hamming(pdq_hash(big)[0], pdq_hash(astronaut)[0]) <= 16
    gray = astronaut.mean(axis=2).astype(np.uint8)
    bits, q = pdq_hash(gray)
    assert bits.shape == (256,) and q > 0
