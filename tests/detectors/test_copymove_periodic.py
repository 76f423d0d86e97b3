"""copy_move on periodic textures and repeated print (issue 13: a chain-link fence and a product box's
repeated letters were called "edited 99 %"). Seeded synthetic scenes: tiled patterns, a fence-like grid
and repeated words rendered with cv2.putText are no clones; a real clone on such a background still is."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from verity.core.io import decode  # noqa: E402
from verity.core.registry import create_detector  # noqa: E402
from verity.lab.edits import encode_jpeg, textured_image  # noqa: E402
from verity.ops import copymove as cm  # noqa: E402


def _noise(img, rng, s=2.5):
    return np.clip(img.astype(np.float32) + rng.normal(0, s, img.shape), 0, 255).astype(np.uint8)


def fence(rng, shape=(256, 320), period=22):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([150 + 60 * yy / h, 180 + 40 * yy / h, 235 - 10 * xx / w], -1).astype(np.uint8).copy()
    for k in range(-h, w + h, period):
        cv2.line(img, (k, 0), (k + h, h), (70, 70, 75), 2, cv2.LINE_AA)
        cv2.line(img, (k, 0), (k - h, h), (70, 70, 75), 2, cv2.LINE_AA)
    return _noise(img, rng)


def tiles(rng, shape=(256, 320), tile=32):
    t = cv2.GaussianBlur(rng.integers(0, 255, (tile, tile, 3)).astype(np.uint8), (0, 0), 1.2)
    return _noise(np.tile(t, (shape[0] // tile + 1, shape[1] // tile + 1, 1))[: shape[0], : shape[1]], rng)


def text(rng, shape=(384, 512)):
    """Lines of the same words, as on packaging: every glyph identical, the noise between them not."""
    img = np.full(shape + (3,), (40, 45, 120), np.uint8)
    for row, y in enumerate(range(40, shape[0] - 10, 44)):
        s = "ZOOM LENS KIT  ZOOM KIT" if row % 2 == 0 else "OLYMPUS PEN  OLYMPUS"
        cv2.putText(img, s, (10 + 7 * (row % 3), y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (230, 60, 40), 2, cv2.LINE_AA)
    return _noise(img, rng)


def clone_on(img, rng, size=72):
    """Put a textured object into the scene, then clone the square around it elsewhere."""
    out = img.copy()
    obj = textured_image(rng, (size, size))
    h, w = img.shape[:2]
    sx, sy = 40, 60
    m = np.zeros((size, size), np.uint8)
    cv2.circle(m, (size // 2, size // 2), size // 2 - 4, 1, -1)
    out[sy:sy + size, sx:sx + size][m > 0] = obj[m > 0]
    dx, dy = w - size - 30, h - size - 30
    out[dy:dy + size, dx:dx + size] = out[sy:sy + size, sx:sx + size]
    return out


@pytest.fixture(scope="module")
def det():
    return create_detector("copy_move")


def _score(det, img):
    return det.run(decode(encode_jpeg(img, 90))).score


@pytest.mark.parametrize("scene", [fence, tiles, text])
@pytest.mark.parametrize("seed", [0, 1])
def test_periodic_textures_and_repeated_print_are_not_clones(det, scene, seed):
    assert _score(det, scene(np.random.default_rng(seed))) < 0.5


@pytest.mark.parametrize("scene", [tiles, text])
def test_a_clone_on_a_periodic_background_is_still_found(det, scene):
    rng = np.random.default_rng(3)
    assert _score(det, clone_on(scene(rng), rng)) >= 0.8


def _lattice_and_clone():
    """The residual of a tiled texture (a lattice) and of a textured image with one clone."""
    rng = np.random.default_rng(5)
    g_tiles = cv2.cvtColor(tiles(rng), cv2.COLOR_RGB2GRAY).astype(np.float32)
    img = textured_image(rng)
    img[200:280, 300:380] = img[40:120, 60:140]
    g_clone = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return g_tiles, g_clone


def test_lattice_ratio_separates_a_lattice_from_a_clone():
    g_tiles, g_clone = _lattice_and_clone()
    M = np.array([[1.0, 0, 96], [0, 1.0, 64]])  # a lattice vector of the 32 px tiles
    mask = np.zeros(g_tiles.shape, bool)
    mask[100:180, 150:230] = True
    assert cm.lattice_ratio(cm.highpass(g_tiles), M, mask) > cm.LATTICE
    Mc = np.array([[1.0, 0, 240], [0, 1.0, 160]])
    cmask = np.zeros(g_clone.shape, bool)
    cmask[200:280, 300:380] = True
    assert cm.lattice_ratio(cm.highpass(g_clone), Mc, cmask) < 0.5


def test_flat_noise_agreement_of_clone_and_of_independent_noise():
    _, g_clone = _lattice_and_clone()
    Mc = np.array([[1.0, 0, 240], [0, 1.0, 160]])
    cmask = np.zeros(g_clone.shape, bool)
    cmask[200:280, 300:380] = True
    corr, std = cm.flat_noise_agreement(g_clone, cm.highpass(g_clone), Mc, cmask)
    assert corr > 0.9 and std > cm.NOISE_STD
    # the same flat content with fresh noise in the "copy": edges (none) agree, the noise does not
    rng = np.random.default_rng(1)
    g = np.full((200, 300), 120, np.float32) + rng.normal(0, 3, (200, 300)).astype(np.float32)
    M = np.array([[1.0, 0, 150], [0, 1.0, 0]])
    m = np.zeros(g.shape, bool)
    m[50:150, 170:270] = True
    corr, std = cm.flat_noise_agreement(g, cm.highpass(g), M, m)
    assert abs(corr) < cm.NOISE_CORR and std > cm.NOISE_STD


def test_separate_islands():
    m = np.zeros((200, 300), bool)
    m[20:60, 20:60] = True
    assert not cm.separate_islands(m)  # one region
    m[20:60, 200:240] = True
    assert cm.separate_islands(m)  # two look-alikes far apart
    m2 = np.zeros((200, 300), bool)
    m2[20:60, 20:60] = True
    m2[20:60, 64:100] = True  # a region split by a thin gap
    m2[150:153, 250:253] = True  # a speck
    assert not cm.separate_islands(m2)


@pytest.mark.parametrize("name", ["Canon_EOS_REBEL_T3i.jpg", "Olympus_PEN_E-P3.jpg"])
def test_the_fence_and_the_printed_box_are_not_clones(det, shared_data, name):
    """The two camera originals called "edited 99 %" (a chain-link fence; a box with repeated print)."""
    from verity.core.io import load_sample

    path = shared_data / "real_camera" / "camera_samples" / name
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared data")
    assert det.run(load_sample(path)).score < 0.5
