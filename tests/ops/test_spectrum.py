"""Tests of verity.ops.spectrum: up-sampling peaks versus JPEG grid peaks, azimuthal averages."""

from __future__ import annotations

import numpy as np
import pytest

from verity.ops.spectrum import (
    azimuthal_average,
    line_peak,
    periodicity_spectra,
    select_tiles,
    spectrum_features,
    upsampling_score,
)


def _gray(px):
    from verity.ops.noise import luma

    return luma(px)


def _tex(seed, shape):
    from verity.lab.edits import textured_image

    return textured_image(np.random.default_rng(seed), shape)


def _jpeg(px, q):
    from verity.lab.edits import jpeg_roundtrip

    return jpeg_roundtrip(px, q)


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
def test_2x_upsampling_gives_half_frequency_peak(interp):
    import cv2

    flag = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}[interp]
    up = cv2.resize(_tex(1, (256, 256)), (512, 512), interpolation=flag)
    f = spectrum_features(_gray(up))
    assert f.up2 > 100 and f.excess2 > 1.0
    assert upsampling_score(f) >= 0.85
    # still found after JPEG q90
    fj = spectrum_features(_gray(_jpeg(up, 90)))
    assert upsampling_score(fj) > 0.5


@pytest.mark.parametrize("q", [None, 95, 90, 75])
def test_camera_like_images_are_not_flagged(q):
    px = _tex(2, (512, 512))
    if q:
        px = _jpeg(px, q)
    f = spectrum_features(_gray(px))
    assert upsampling_score(f) == pytest.approx(0.47)
    if q and q <= 90:
        # JPEG's 8x8 grid peaks are present but recognised as such
        assert f.jpeg_odd > 10


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_photos_are_not_flagged(name):
    from tests.conftest import photo

    for q in (90, 75):
        f = spectrum_features(_gray(_jpeg(photo(name), q)))
        assert upsampling_score(f) < 0.55


def test_line_peak_on_synthetic_signal(rng):
    n = 512
    x = np.arange(n)
    sig = rng.normal(0, 1, n) + 3 * np.cos(np.pi * x)  # period 2
    p = np.abs(np.fft.rfft(sig * np.hanning(n))) ** 2
    assert line_peak(p, n, 0.5, 1) > 50
    assert line_peak(p, n, 0.25, 1) < 10


def test_periodicity_spectra_shapes():
    g = np.zeros((100, 140), np.float32)
    specs = periodicity_spectra(g)
    assert len(specs) == 3
    for px, py in specs:
        assert px.shape == (71,) and py.shape == (51,)


def test_azimuthal_average_of_white_noise_is_flat(rng):
    p = np.abs(np.fft.fft2(rng.normal(0, 1, (128, 128)))) ** 2
    az = azimuthal_average(p, 16)
    assert az.shape == (16,)
    assert np.ptp(az[2:]) < 0.3


def test_select_tiles_prefers_texture(rng):
    g = np.zeros((256, 512), np.float32)
    g[:, 256:] = rng.normal(128, 20, (256, 256))
    assert select_tiles(g, 256, 1) == [(0, 256)]
    assert select_tiles(g[:100], 256, 4) == []
    assert spectrum_features(g[:100]) is None
