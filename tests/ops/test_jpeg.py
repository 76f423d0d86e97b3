"""Tests of verity.ops.jpeg: transforms, tables, re-quantization, double-JPEG statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.fft import dctn

from tests.conftest import photo
from verity.core.io import decode
from verity.lab.edits import encode_jpeg, jpeg_roundtrip, textured_image
from verity.ops import jpeg as J


def _gray_jpeg(y: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(y), [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def test_zigzag_order():
    zz = J.zigzag_indices()
    assert sorted(zz.tolist()) == list(range(64))
    assert zz[:10].tolist() == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    assert zz[-1] == 63


@pytest.mark.parametrize("q", [20, 50, 60, 75, 92, 100])
def test_ijg_tables_match_pillow(q, rng):
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    s = decode(encode_jpeg(img, q))
    t = J.table_from_sample(s.quantization, 0)
    np.testing.assert_array_equal(t, J.ijg_table(q))
    np.testing.assert_array_equal(J.table_from_sample(s.quantization, 1), J.ijg_table(q, J.STD_CHROMA))
    est, mismatch = J.estimate_quality(t)
    assert mismatch == 0.0
    np.testing.assert_array_equal(J.ijg_table(est), t)


def test_estimate_quality_custom_table():
    t = J.ijg_table(85).astype(float)
    t[4:, 4:] += 3  # a camera-like table, not an IJG scaling
    q, mismatch = J.estimate_quality(t)
    assert 80 <= q <= 90
    assert mismatch > 0.02


def test_table_from_sample_bad_input():
    assert J.table_from_sample(None) is None
    assert J.table_from_sample({0: [1, 2, 3]}) is None
    assert J.table_from_sample({1: list(range(1, 65))}, 0) is None


def test_block_dct_matches_scipy_and_inverts(rng):
    y = rng.uniform(0, 255, (40, 56)).astype(np.float32)
    c = J.block_dct(y, offset=(3, 5))
    assert c.shape == (4, 6, 8, 8)
    ref = dctn(y[3 + 8 : 3 + 16, 5 + 16 : 5 + 24].astype(np.float64) - 128, norm="ortho")
    np.testing.assert_allclose(c[1, 2], ref, atol=1e-3)
    back = J.blocks_idct(c) + 128
    np.testing.assert_allclose(back[1, 2], y[11:19, 21:29], atol=1e-3)
    np.testing.assert_allclose(J.blocks_dct(back - 128), c, atol=1e-3)
    np.testing.assert_allclose(J.lowfreq_block_dct(y, (3, 5), 3), c[:, :, :3, :3], atol=1e-3)


def test_shifted_coefficients_match_block_dct(rng):
    y = rng.uniform(0, 255, (48, 40)).astype(np.float32)
    freqs = [(0, 0), (1, 2), (3, 1)]
    allpos = J.shifted_coefficients(y, freqs)
    for dy, dx in [(0, 0), (2, 7), (5, 3)]:
        c = J.block_dct(y, (dy, dx))
        for i, (u, v) in enumerate(freqs):
            got = allpos[i, dy::8, dx::8][: c.shape[0], : c.shape[1]]
            np.testing.assert_allclose(got, c[..., u, v], atol=1e-2)


def test_ghost_curves_equal_real_resave():
    y = np.clip(np.rint(decode(encode_jpeg(photo("astronaut"), 92)).gray), 0, 255).astype(np.uint8)
    y = y[:256, :256]
    c = J.block_dct(y.astype(np.float32))
    for q in (50, 80):
        z = _gray_jpeg(y, q).astype(np.float32)
        real = ((z - y) ** 2).reshape(32, 8, 32, 8).mean(axis=(1, 3))
        ours = J.ghost_curves(c, [q], n_freq=64)[0]
        assert np.corrcoef(real.ravel(), ours.ravel())[0, 1] > 0.98
        assert abs(ours.mean() - real.mean()) < 0.15 * real.mean() + 0.1  # output rounding adds ~1/12
    # fewer frequencies (the default 28): most of the block-to-block variation is kept
    part = J.ghost_curves(c, [50], n_freq=28)[0]
    assert np.corrcoef(part.ravel(), J.ghost_curves(c, [50], n_freq=64)[0].ravel())[0, 1] > 0.7


def test_requant_error_is_zero_on_the_lattice(rng):
    q = np.array([3, 7, 10], np.float32)
    c = rng.integers(-20, 20, (50, 3)).astype(np.float32) * q
    assert np.allclose(J.requant_error(c, q), 0)
    assert (J.requant_error(c + 1.0, q) > 0).all()


def test_dq_membership_and_hit_rate():
    q2, q1 = np.array([3.0]), np.array([13.0])
    # values a coarse-then-fine quantizer produces
    n = np.arange(-10, 11, dtype=np.float32)
    k = np.rint(n * 13 / 3)[:, None]
    assert J.dq_membership(k, q2, q1).all()
    # the gaps: k = 1, 2 (values 3, 6) cannot come from a multiple of 13
    assert not J.dq_membership(np.array([[1.0], [2.0]]), q2, q1).any()
    rho = J.dq_hit_rate(q2, q1)
    assert 0.2 < rho[0] < 0.5
    assert J.dq_hit_rate(np.array([3.0]), np.array([3.0]))[0] == 1.0  # same step: uninformative
    assert not J.dq_informative(np.array([1.0]), np.array([1.0]))[0]
    assert J.dq_informative(np.array([3.0]), np.array([1.0]))[0]


def _dq_image(q1: int | None, q2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = textured_image(rng, (256, 256))
    if q1 is not None:
        img = jpeg_roundtrip(img, q1)
    s = decode(encode_jpeg(img, q2))
    return s.gray, J.table_from_sample(s.quantization)


def test_dq_loglik_separates_double_from_single():
    y, t2 = _dq_image(60, 92)
    c = J.block_dct(y)
    llr = J.dq_loglik(c, t2, [J.ijg_table(60), J.ijg_table(40)])
    assert llr[0].sum() > 500
    assert llr[0].mean() > llr[1].mean()
    y1, t1 = _dq_image(None, 92)
    llr1 = J.dq_loglik(J.block_dct(y1), t1, [J.ijg_table(60)])
    assert llr1.sum() < -500
    # tile (histogram) form agrees with the per-block form
    tl = J.dq_tile_loglik(c, t2, [60, 40], kmax=512)
    per_block = llr.reshape(2, 8, 4, 8, 4).sum(axis=(2, 4)).transpose(1, 2, 0)
    np.testing.assert_allclose(tl, per_block, rtol=1e-3, atol=1e-2)
    assert [60, 40][int(np.argmax(tl.sum(axis=(0, 1))))] == 60


def test_dc_lattice_scan_finds_shifted_grid():
    rng = np.random.default_rng(5)
    img = jpeg_roundtrip(textured_image(rng, (296, 296)), 50)
    s = decode(encode_jpeg(np.ascontiguousarray(img[3:, 5:]), 95))  # crop 3 rows, 5 columns: grid at (5, 3)
    steps = J.dc_steps(list(range(35, 91)))
    fit, count = J.dc_lattice_scan(s.gray, steps)
    assert fit.shape[2:] == (len(steps), 8, 8) and count.shape[2:] == (8, 8)
    total = fit.sum(axis=(0, 1)) / np.sqrt(0.8 * count.sum(axis=(0, 1)))[None]
    si, dy, dx = np.unravel_index(np.argmax(total), total.shape)
    assert (dy, dx) == (5, 3)
    assert steps[si] == J.ijg_table(50)[0, 0]
    # the same with a quarter of the blocks
    fit4, count4 = J.dc_lattice_scan(s.gray, steps, cell=16)
    assert count4.sum() < 0.3 * count.sum()
    t4 = fit4.sum(axis=(0, 1)) / np.sqrt(0.8 * np.maximum(count4.sum(axis=(0, 1)), 1))[None]
    assert np.unravel_index(np.argmax(t4), t4.shape)[1:] == (5, 3)


def test_nonaligned_scan_localises_a_pasted_block():
    rng = np.random.default_rng(11)
    host = jpeg_roundtrip(textured_image(rng, (320, 384)), 92)
    donor = jpeg_roundtrip(textured_image(rng, (320, 384)), 55)
    out = host.copy()
    out[99:259, 131:291] = donor[0:160, 0:160]  # donor grid lands at (3, 3)
    s = decode(encode_jpeg(out, 92))
    z, z_tile, best, cands, maps = J.nonaligned_scan(s.gray, list(range(35, 91)), origin_step=int(J.ijg_table(92)[0, 0]))
    assert cands and cands[int(best[5, 6])][:2] == (3, 3)
    inside = z[4:7, 5:8]
    outside = np.concatenate([z[:2].ravel(), z[-1:].ravel(), z[:, :2].ravel()])
    assert inside.min() > 8 and outside.max() < 7
    assert z_tile.shape == z.shape and len(maps) == len(cands)
    k = int(best[5, 6])
    assert maps[k][4:7, 5:8].mean() > 3 > np.abs(maps[k][:2]).mean()


def test_box_sum_matches_brute_force(rng):
    a = rng.normal(size=(7, 9, 2)).astype(np.float32)
    for k in (1, 2, 3, 5):
        got = J.box_sum(a, k)
        lo, hi = k // 2, k - 1 - k // 2
        ref = np.zeros_like(a)
        for i in range(7):
            for j in range(9):
                ref[i, j] = a[max(0, i - lo) : i + hi + 1, max(0, j - lo) : j + hi + 1].sum(axis=(0, 1))
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_mosaic_preserves_blocks(rng):
    y = rng.uniform(0, 255, (200, 168)).astype(np.float32)  # 6 x 5 whole tiles
    m = J.mosaic(y, tile=32, stride=2)  # tile rows 0, 2, 4 and columns 0, 2, 4
    assert m.shape == (3 * 32, 3 * 32)
    assert J.tile_grid(y.shape, 32, 2) == (3, 3)
    np.testing.assert_array_equal(m[32:64, 64:96], y[64:96, 128:160])
    cm, cy = J.block_dct(m), J.block_dct(y)
    np.testing.assert_allclose(cm[4:8, 4:8], cy[8:12, 8:12], atol=1e-3)
    assert J.analysis_stride((1000, 1000)) == 1 and J.analysis_stride((3000, 4000)) == 2


def test_block_dct_cached_reuses_result(rng):
    y = rng.uniform(0, 255, (64, 64)).astype(np.float32)
    a = J.block_dct_cached(y)
    assert J.block_dct_cached(y) is a
    y2 = y.copy()
    y2[::61, ::53] += 1
    assert J.block_dct_cached(y2) is not a


def test_error_level(rng):
    img = textured_image(rng, (96, 128))
    once = _gray_jpeg(np.clip(np.rint(J.luma(img)), 0, 255).astype(np.uint8), 90)
    e_noise = J.error_level(img, 90)
    e_again = J.error_level(once, 90)
    assert e_noise.shape == (96, 128) and e_noise.dtype == np.uint8
    assert e_again.mean() < 0.5 * e_noise.mean()  # a q90 file re-saved at q90 barely changes
    np.testing.assert_array_equal(J.error_level(J.luma(img), 90), J.error_level(np.clip(np.rint(J.luma(img)), 0, 255).astype(np.uint8), 90))


def test_tile_means(rng):
    a = rng.integers(0, 256, (70, 100), dtype=np.uint8)
    got = J.tile_means(a, 32)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[1, 2], a[32:64, 64:96].mean())


def test_heat_from_tiles_shape():
    h = J.heat_from_tiles(np.ones((3, 4), np.float32), (100, 140), tile=32)
    assert h.shape == (4, 5)
    assert h[:3, :4].all() and not h[3].any()


def test_refine_maps_mark_the_region():
    rng = np.random.default_rng(2)
    host = jpeg_roundtrip(textured_image(rng, (256, 256)), 92)
    donor = jpeg_roundtrip(textured_image(rng, (256, 256)), 60)
    out = host.copy()
    out[64:192, 64:192] = donor[64:192, 64:192]  # aligned
    s = decode(encode_jpeg(out, 92))
    t2 = J.table_from_sample(s.quantization)
    r = J.refine_aligned(s.gray, (0, 0, 256, 256), t2, 60)
    assert r.shape == (32, 32)
    assert np.median(r[10:22, 10:22]) > 10 > np.median(r[:6, :6])
    out2 = host.copy()
    out2[61:189, 66:194] = donor[0:128, 0:128]  # grid at (61 % 8, 66 % 8) = (5, 2)
    s2 = decode(encode_jpeg(out2, 92))
    z = J.refine_shifted(s2.gray, (0, 0, 248, 248), (5, 2), 60, window=5)
    assert np.median(z[10:20, 10:20]) > 3 > np.median(z[:5, :5])


def test_strided_tile_view_matches_full_analysis(rng):
    y = rng.uniform(0, 255, (200, 230)).astype(np.float32)  # 6 x 7 tiles; stride 2 keeps 3 x 4
    steps = [5, 8, 13]
    f1, n1 = J.dc_lattice_scan(y, steps)
    f2, n2 = J.dc_lattice_scan(y, steps, stride=2)
    assert f2.shape[:2] == (3, 4)
    np.testing.assert_allclose(f2, f1[::2, ::2], atol=1e-3)
    np.testing.assert_array_equal(n2, n1[::2, ::2])
    g1, m1 = J.lattice_fit_tiles(y, (3, 6), [50, 70])
    g2, m2 = J.lattice_fit_tiles(y, (3, 6), [50, 70], stride=2)
    np.testing.assert_allclose(g2, g1[::2, ::2], atol=1e-3)
    np.testing.assert_array_equal(m2, m1[::2, ::2])
    # blocks running past the bottom edge are not counted: with 196 rows the last tile (rows
    # 160..191) loses its blocks anchored at row 191 (shift 7) but keeps those at row 184 (shift 0)
    _, n3 = J.dc_lattice_scan(y[:196], steps)
    assert n3[-1, :, 7, :].sum() == 0.75 * n3[0, :, 7, :].sum()
    assert n3[-1, :, 0, :].sum() == n3[0, :, 0, :].sum()
