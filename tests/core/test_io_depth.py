"""Bit depth is read from the container: Pillow reduces 16-bit RGB(A) PNG/TIFF to 8-bit ``RGB``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from verity.core.io import load_sample


def _rgb16(rng, fmt: str, channels: int = 3) -> tuple[bytes, np.ndarray]:
    import cv2

    arr = rng.integers(0, 65536, (20, 30, channels)).astype(np.uint16)
    ok, buf = cv2.imencode(".tif" if fmt == "TIFF" else ".png", arr[..., ::-1] if channels == 3 else arr)
    assert ok
    return buf.tobytes(), arr


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_sixteen_bit_rgb_is_reported_as_16_bit(rng, fmt):
    data, arr = _rgb16(rng, fmt)
    assert Image.open(io.BytesIO(data)).mode == "RGB"  # what Pillow says: the defect's cause
    s = load_sample(data)
    assert s.format == fmt and s.bit_depth == 16
    assert s.pixels.dtype == np.uint8 and s.pixels.shape == (20, 30, 3)
    # the 8-bit pixels are the high bytes of the stored 16-bit samples
    assert np.abs(s.pixels.astype(int) - (arr >> 8).astype(int)).max() <= 1


def test_sixteen_bit_rgba_png(rng):
    data, _ = _rgb16(rng, "PNG", channels=4)
    s = load_sample(data)
    assert s.bit_depth == 16 and s.alpha is not None


@pytest.mark.parametrize("fmt", ["TIFF", "PNG", "JPEG"])
def test_eight_bit_rgb_stays_8_bit(rng, fmt):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(buf, format=fmt)
    assert load_sample(buf.getvalue()).bit_depth == 8


def test_palette_png_is_8_bit(rng):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert("P").save(buf, format="PNG")
    assert load_sample(buf.getvalue()).bit_depth == 8


def test_cli_json_reports_16_bit(rng, tmp_path, capsys):
    import json

    from verity.cli.main import main

    data, _ = _rgb16(rng, "TIFF")
    f = tmp_path / "deep.tif"
    f.write_bytes(data)
    assert main(["analyze", str(f), "--json", "--detectors", "exif_camera"]) == 0
    assert json.loads(capsys.readouterr().out)["image"]["bit_depth"] == 16
