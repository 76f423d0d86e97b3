"""verity.provenance.thumbnail: aligning an EXIF preview with the main image and finding changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from verity.lab.edits import jpeg_roundtrip, textured_image
from verity.ops.regions import heatmap_mask
from verity.provenance.thumbnail import compare_thumbnail, find_crop_in_thumbnail, strip_bars


def _thumb(img: np.ndarray, size=(160, 120)) -> np.ndarray:
    return jpeg_roundtrip(np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS)), 80)


@pytest.fixture
def photo_pair(rng):
    img = textured_image(rng, (480, 640))
    return img, _thumb(img)


def test_own_thumbnail_matches(photo_pair):
    img, th = photo_pair
    r = compare_thumbnail(img, th)
    assert r.correlation > 0.95
    assert r.largest_region_fraction < 0.005
    assert (r.rotation, r.mirrored) == (0, False)
    assert abs(r.diff_map.shape[0] / r.diff_map.shape[1] - 480 / 640) < 0.02


def test_tone_change_is_not_an_edit(photo_pair):
    img, th = photo_pair
    brighter = np.clip(255 * (img / 255.0) ** 0.7, 0, 255).astype(np.uint8)
    assert compare_thumbnail(brighter, th).largest_region_fraction < 0.005


def test_spliced_region_is_found_and_localised(photo_pair, rng):
    img, th = photo_pair
    donor = textured_image(np.random.default_rng(99), (480, 640))
    edited = img.copy()
    x0, y0, x1, y1 = 380, 60, 560, 220
    edited[y0:y1, x0:x1] = donor[y0:y1, x0:x1]
    r = compare_thumbnail(edited, th)
    assert r.largest_region_fraction >= 0.01
    mask = heatmap_mask(np.clip(r.diff_map / 2.0, 0, 1), (480, 640), 0.5)
    inside = mask[y0:y1, x0:x1].mean()
    outside = mask[:, :300].mean()
    assert inside > 0.3 and outside < 0.02


def test_letterboxed_thumbnail(rng):
    img = textured_image(rng, (400, 600))  # 3:2 photo in a 4:3 preview with black bars
    small = np.asarray(Image.fromarray(img).resize((160, 107), Image.LANCZOS))
    th = np.zeros((120, 160, 3), np.uint8)
    th[6:113] = small
    assert strip_bars(th.mean(axis=2)) == (0, 6, 160, 113)
    r = compare_thumbnail(img, th)
    assert r.letterboxed and r.correlation > 0.95 and r.largest_region_fraction < 0.005


def test_rotated_and_mirrored_main_image(photo_pair):
    img, th = photo_pair
    r = compare_thumbnail(np.rot90(img, 1).copy(), th)
    assert r.rotation in (1, 3) and r.correlation > 0.95
    m = compare_thumbnail(img[:, ::-1].copy(), th)
    assert m.mirrored and m.correlation > 0.95


def test_different_picture(photo_pair):
    img, _ = photo_pair
    other = _thumb(textured_image(np.random.default_rng(5), (480, 640)))
    assert compare_thumbnail(img, other).correlation < 0.85


def test_crop_is_located(photo_pair):
    img, th = photo_pair
    crop = img[100:340, 200:520]
    c = find_crop_in_thumbnail(crop, th)
    assert c is not None and c.correlation > 0.95
    x0, y0, x1, y1 = c.box  # 200/640*160 = 50, 100/480*120 = 25
    assert abs(x0 - 50) <= 3 and abs(y0 - 25) <= 3 and abs(x1 - 130) <= 3 and abs(y1 - 85) <= 3


def test_too_small():
    with pytest.raises(ValueError):
        compare_thumbnail(np.zeros((8, 8, 3), np.uint8), np.zeros((120, 160, 3), np.uint8))
