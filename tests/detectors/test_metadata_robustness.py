"""Enormous or broken metadata never makes a metadata/provenance detector raise."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from verity.core.io import load_sample
from verity.core.registry import create_detector
from verity.lab.edits import camera_exif, encode_jpeg
from verity.provenance.metadata import add_exif_thumbnail

NAMES = ["generator_metadata", "digital_source_type", "exif_camera", "edit_history", "exif_thumbnail", "jpeg_qtables", "c2pa"]


def _run_all(data: bytes):
    s = load_sample(data)
    out = {}
    for n in NAMES:
        det = create_detector(n)
        if not det.available() or not det.accepts(s):
            continue
        out[n] = det.run(s)  # must not raise
    return out


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


@pytest.fixture
def small(rng):
    return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_two_megabyte_text_chunk(small):
    info = PngInfo()
    info.add_text("parameters", "lorem ipsum " * 180_000)  # ~2 MB
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG", pnginfo=info)
    out = _run_all(buf.getvalue())
    assert out["generator_metadata"].score is None  # text, but no generator settings


def test_oversize_compressed_chunk_is_still_read(small):
    """Pillow drops a zTXt that inflates past its limit; the raw walker still reads its start."""
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG")
    data = buf.getvalue()
    text = b"a lighthouse\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x48\n" + b" " * (12 * 1024 * 1024)
    body = b"parameters\x00\x00" + zlib.compress(text, 9)
    i = data.rfind(b"IEND") - 4
    out = _run_all(data[:i] + _chunk(b"zTXt", body) + data[i:])
    f = out["generator_metadata"]
    assert f.score and f.score > 0.9 and "seed 5" in f.evidence[0]


def test_corrupt_exif(small, rng):
    good = add_exif_thumbnail(camera_exif(), encode_jpeg(small, 70))
    for k in range(25):
        d = bytearray(good)
        for i in rng.integers(6, len(d), 8):
            d[int(i)] = int(rng.integers(0, 256))
        try:
            data = encode_jpeg(small, 85, exif=bytes(d))
            load_sample(data)
        except Exception:  # Pillow or the loader may refuse the file: then there is nothing to run
            continue
        _run_all(data)
    _run_all(encode_jpeg(small, 85, exif=b"Exif\x00\x00" + bytes(rng.integers(0, 256, 300, dtype=np.uint8))))


def test_xmp_that_is_not_xml(small):
    for x in [b"<x:xmpmeta>" + b"<" * 50_000, b"\xff\xfe\x00garbage", b"<x:xmpmeta>DigitalSourceType>>>trainedAlgorithmicMedia"]:
        buf = io.BytesIO()
        Image.fromarray(small).save(buf, format="JPEG", xmp=x)
        out = _run_all(buf.getvalue())
        assert out["digital_source_type"].score is None or 0.0 <= out["digital_source_type"].score <= 1.0


def test_huge_json_and_deep_nesting(small):
    info = PngInfo()
    info.add_text("prompt", "[" * 100_000 + "]" * 100_000)  # recursion bomb for a naive JSON reader
    info.add_text("workflow", '{"nodes": [' + ",".join(['{"type": "KSampler"}'] * 20000) + "]}")
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG", pnginfo=info)
    out = _run_all(buf.getvalue())
    assert "ComfyUI" in out["generator_metadata"].evidence[0]


def test_fake_c2pa_marker(small):
    info = PngInfo()
    info.add_text("note", "jumb c2pa jumb c2pa")
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="PNG", pnginfo=info)
    out = _run_all(buf.getvalue())
    if "c2pa" in out:
        assert out["c2pa"].score in (None, 0.5)


def test_thumbnail_that_is_not_a_jpeg(small):
    bad = add_exif_thumbnail(camera_exif(), b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    out = _run_all(encode_jpeg(small, 85, exif=bad))
    assert out["exif_thumbnail"].score in (None, 0.5)
