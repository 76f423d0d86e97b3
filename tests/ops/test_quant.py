"""verity.ops.quant: IJG tables, quality estimation, zig-zag order."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from verity.ops.quant import IJG_CHROMA, IJG_LUMA, ZIGZAG, analyze_tables, estimate_quality, ijg_scale, ijg_table, zigzag_to_natural


def _jpeg(quality: int, rng: np.random.Generator, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def _dqt_tables(data: bytes) -> dict[int, list[int]]:
    """Tables read straight from the DQT segments (zig-zag order), independent of Pillow."""
    out, pos = {}, 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xDB:
            seg, p = data[pos + 4 : pos + 2 + length], 0
            while p < len(seg):
                pq, tq = seg[p] >> 4, seg[p] & 15
                n = 128 if pq else 64
                vals = seg[p + 1 : p + 1 + n]
                out[tq] = list(struct.unpack(">64H", vals)) if pq else list(vals)
                p += 1 + n
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def test_quality_50_is_the_annex_k_table():
    assert np.array_equal(ijg_table(50), IJG_LUMA)
    assert np.array_equal(ijg_table(50, chroma=True), IJG_CHROMA)
    assert ijg_scale(50) == 100 and ijg_scale(10) == 500 and ijg_scale(90) == 20


def test_known_tables():
    assert ijg_table(75)[:8].tolist() == [8, 6, 5, 8, 12, 20, 26, 31]
    assert np.all(ijg_table(100) == 1)
    assert ijg_table(1).max() == 255  # baseline clipping
    assert ijg_table(1, baseline=False).max() > 255


def test_zigzag_matches_the_dqt_segment(rng):
    """Pillow returns natural order; the raw DQT holds zig-zag order: the permutation links them."""
    data = _jpeg(83, rng)
    raw = _dqt_tables(data)
    with Image.open(io.BytesIO(data)) as im:
        natural = {k: list(v) for k, v in im.quantization.items()}
    for k in raw:
        assert zigzag_to_natural(raw[k]).tolist() == natural[k]
    assert sorted(ZIGZAG.tolist()) == list(range(64))


@pytest.mark.parametrize("q", list(range(5, 101, 7)) + [75, 90, 95, 100])
def test_pillow_tables_are_recognised_exactly(q, rng):
    with Image.open(io.BytesIO(_jpeg(q, rng))) as im:
        a = analyze_tables(im.quantization)
    assert a.standard and a.quality == q and a.max_abs_error == 0
    assert estimate_quality(im.quantization) == q


def test_custom_tables_are_not_standard(rng):
    luma = ijg_table(90).copy()
    luma[[3, 17, 40]] += 2  # a camera's own table: close to q90 but not equal
    a = analyze_tables({0: luma.tolist(), 1: ijg_table(90, chroma=True).tolist()})
    assert not a.standard
    assert abs(a.quality - 90) <= 1 and a.max_abs_error >= 1


def test_three_tables_and_grayscale(rng):
    t = {0: ijg_table(60).tolist(), 1: ijg_table(60, True).tolist(), 2: ijg_table(60, True).tolist()}
    assert analyze_tables(t).standard and analyze_tables(t).n_tables == 3
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(buf, format="JPEG", quality=70)
    with Image.open(buf) as im:
        a = analyze_tables(im.quantization)
    assert a.n_tables == 1 and a.quality == 70 and a.standard


def test_custom_pillow_qtables_round_trip(rng):
    flat = [[7] * 64, [9] * 64]
    with Image.open(io.BytesIO(_jpeg(90, rng, qtables=flat))) as im:
        a = analyze_tables(im.quantization)
    assert not a.standard and not a.all_ones


def test_bad_input():
    with pytest.raises(ValueError):
        analyze_tables({0: [1] * 63})
    with pytest.raises(ValueError):
        analyze_tables({})
