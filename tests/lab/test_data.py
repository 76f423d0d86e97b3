from __future__ import annotations

import numpy as np
import pytest

from verity.lab.data import ImageSet, fingerprint, list_images, split_heldout, to_tensor, to_uint8


def test_list_fingerprint_split(image_dir):
    files = list_images(image_dir)
    assert len(files) == 6
    fp = fingerprint(files, image_dir)
    assert fp == fingerprint(list(reversed(files)), image_dir)
    with open(files[0], "ab") as fh:
        fh.write(b"\0")
    assert fingerprint(files, image_dir) != fp  # size changed
    tr, ho = split_heldout(files, image_dir, 0.1)
    assert len(ho) == 1 and len(tr) == 5 and not set(tr) & set(ho)
    assert split_heldout(files, image_dir, 0.1) == (tr, ho)  # deterministic


def test_crops_deterministic_and_sized(image_dir):
    s = ImageSet(list_images(image_dir), 32, max_side=96).load()
    assert max(max(im.shape[:2]) for im in s.images) <= 96
    a = s.batch(5, np.random.default_rng(1))
    b = s.batch(5, np.random.default_rng(1))
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, s.batch(5, np.random.default_rng(2)))


def test_tensor_roundtrip(rng):
    a = rng.integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    t = to_tensor(a)
    assert tuple(t.shape) == (2, 3, 7, 9) and float(t.min()) >= -1 and float(t.max()) <= 1
    np.testing.assert_array_equal(to_uint8(t), a)


def test_tiny_images_are_upscaled(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 12, 3), 100, np.uint8)).save(tmp_path / "t.png")
    s = ImageSet(list_images(tmp_path), 32).load()
    assert min(s.images[0].shape[:2]) >= 32
    assert s.crop(np.random.default_rng(0)).shape == (32, 32, 3)


def test_undecodable_only(tmp_path):
    from verity.lab.data import DataError

    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the images"):
        ImageSet(list_images(tmp_path), 32).load()


def test_center_crop_frames_the_same_region(tmp_path):
    """``crop_mode="center"`` takes the framed square (scale, vertical position) of every image;
    without jitter only the flip varies, and jitter moves the window only a little."""
    from PIL import Image

    h, w = 120, 100
    img = np.zeros((h, w, 3), np.uint8)
    img[:60] = (255, 0, 0)  # top half red, bottom half blue
    img[60:] = (0, 0, 255)
    Image.fromarray(img).save(tmp_path / "p.png")
    files = list_images(tmp_path)
    # a square of 0.5 * 100 = 50 px centred at y = 0.25 * 120 = 30 lies entirely in the red half
    s = ImageSet(files, 16, crop_mode="center", crop_scale=0.5, crop_y=0.25).load()
    c = s.batch(4, np.random.default_rng(0))
    assert (c[..., 0] > 200).all() and (c[..., 2] < 50).all()
    # centred at y = 0.75 * 120 = 90: entirely blue
    s = ImageSet(files, 16, crop_mode="center", crop_scale=0.5, crop_y=0.75).load()
    c = s.batch(4, np.random.default_rng(0))
    assert (c[..., 2] > 200).all() and (c[..., 0] < 50).all()
    # centred on the boundary: half and half, with jitter the boundary moves by a few pixels only
    s = ImageSet(files, 32, crop_mode="center", crop_scale=0.8, crop_y=0.5, jitter=0.05).load()
    c = s.batch(16, np.random.default_rng(0)).astype(float)
    red_rows = (c[..., 0] > 127).mean(axis=(2,))  # (n, 32): share of red pixels per row
    tops = (red_rows > 0.5).sum(axis=1)
    assert 12 <= tops.min() and tops.max() <= 20 and len(set(tops.tolist())) > 1
    # random crops (the default) are not confined to one half
    s = ImageSet(files, 16).load()
    c = s.batch(32, np.random.default_rng(0))
    assert (c[..., 0] > 200).mean() > 0.2 and (c[..., 2] > 200).mean() > 0.2


def test_crop_options_validated(tmp_path):
    from verity.lab.data import DataError

    with pytest.raises(DataError):
        ImageSet([], 32, crop_mode="middle")
    with pytest.raises(DataError):
        ImageSet([], 32, crop_mode="center", crop_scale=1.5)
