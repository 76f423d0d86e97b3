from __future__ import annotations

import numpy as np

from verity.core.io import load_sample
from verity.lab.marks import DIGITAL_SOURCE_TYPE, XMP_KEY, png_bytes, read_marks, write_png


def test_marks_roundtrip(tmp_path, rng):
    px = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    p = write_png(tmp_path / "a" / "x.png", px, "gan", "gan-run-1", description="test")
    m = read_marks(p)
    assert m["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert m["software"] == "verity-lab gan gan-run-1"
    s = load_sample(p)
    assert s.format == "PNG"
    np.testing.assert_array_equal(s.pixels, px)  # lossless
    assert "trainedAlgorithmicMedia" in s.info[XMP_KEY]
    assert s.info["Software"] == "verity-lab gan gan-run-1"


def test_unmarked_png_has_no_marks(rng):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    assert read_marks(buf.getvalue()) == {"digital_source_type": None, "software": None}


def test_xmp_escapes_run_id():
    data = png_bytes(np.zeros((4, 4, 3), np.uint8), "autoencoder", "a<b&c")
    m = read_marks(data)
    assert m["software"] == "verity-lab autoencoder a<b&c"
    assert m["digital_source_type"] == DIGITAL_SOURCE_TYPE


def test_bad_pixels_rejected():
    import pytest

    with pytest.raises(ValueError):
        png_bytes(np.zeros((4, 4), np.uint8), "gan", "r")


def test_sign_adds_valid_c2pa_and_keeps_xmp(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("c2pa")
    c2pa_mod = pytest.importorskip("verity.provenance.c2pa")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # dev credentials go here
    p = write_png(tmp_path / "s.png", np.full((32, 32, 3), 120, np.uint8), "gan", "r1", sign=True)
    data = p.read_bytes()
    assert read_marks(data)["digital_source_type"] == DIGITAL_SOURCE_TYPE
    info = c2pa_mod.read(data)
    assert info.present and info.validation_state in ("Valid", "Trusted")
    assert "trainedAlgorithmicMedia" in info.digital_source_types
    assert info.claim_generator.startswith("verity-lab gan r1")
