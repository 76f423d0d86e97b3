"""Safe loading: every bad input gives an InputError with a stable code; odd modes load as RGB uint8."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from verity.core.errors import InputError
from verity.core.io import Limits, apply_orientation, iter_image_paths, load_sample, sniff_format


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rgb(rng, h=40, w=60) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_formats_load_as_rgb8(rng, fmt):
    s = load_sample(_save(_rgb(rng), fmt), name=f"x.{fmt.lower()}")
    assert s.format == fmt
    assert s.pixels.shape == (40, 60, 3) and s.pixels.dtype == np.uint8


@pytest.mark.parametrize(
    "mode,fmt",
    [("I;16", "PNG"), ("I;16", "TIFF"), ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("P", "PNG"), ("RGBA", "PNG"),
     ("LA", "PNG"), ("L", "JPEG"), ("1", "PNG"), ("RGBA", "WEBP"), ("F", "TIFF")],
)
def test_odd_modes(rng, mode, fmt):
    base = _rgb(rng)
    if mode == "I;16":
        img = Image.fromarray((rng.integers(0, 65536, (40, 60))).astype(np.uint16))
    elif mode == "F":
        img = Image.fromarray(rng.normal(0, 1, (40, 60)).astype(np.float32))
    else:
        img = base.convert(mode)
        if mode in ("RGBA", "LA"):
            img.putalpha(Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8)))
    s = load_sample(_save(img, fmt))
    assert s.pixels.shape == (40, 60, 3) and s.pixels.dtype == np.uint8
    if mode == "I;16":
        assert s.bit_depth == 16
    if mode in ("RGBA", "LA"):
        assert s.alpha is not None and s.alpha.shape == (40, 60)
    if mode == "CMYK" and fmt == "JPEG":
        assert s.mode == "CMYK"


def test_palette_with_transparency_keeps_alpha(rng):
    img = _rgb(rng).convert("P")
    s = load_sample(_save(img, "PNG", transparency=0))
    assert s.alpha is not None


def test_sixteen_bit_scaling_preserves_order():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (4, 1))
    s = load_sample(_save(Image.fromarray(ramp), "PNG"))
    row = s.pixels[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InputError) as e:
        load_sample(p)
    assert e.value.code == "empty"


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, this is text")
    with pytest.raises(InputError) as e:
        load_sample(p)
    assert e.value.code == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF"])
def test_truncated(rng, fmt):
    data = _save(Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)), fmt)
    with pytest.raises(InputError) as e:
        load_sample(data[: len(data) // 2])
    assert e.value.code in ("truncated", "corrupt")
    assert "\n" not in str(e.value)


def test_wrong_extension_is_sniffed(tmp_path, rng):
    p = tmp_path / "really_png.jpg"
    p.write_bytes(_save(_rgb(rng), "PNG"))
    assert load_sample(p).format == "PNG"


def test_too_large_file_is_refused_before_reading(tmp_path, rng):
    p = tmp_path / "big.png"
    p.write_bytes(_save(_rgb(rng, 200, 200), "PNG"))
    with pytest.raises(InputError) as e:
        load_sample(p, limits=Limits(max_bytes=1000))
    assert e.value.code == "too_large"


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG claiming w x h pixels with a tiny, highly compressed body (a decompression bomb)."""

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * w
    body = comp.compress(row * 64) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_decompression_bomb():
    with pytest.raises(InputError) as e:
        load_sample(_png_header_only(30000, 30000))
    assert e.value.code == "decompression_bomb"


def test_pixel_limit_is_configurable(rng):
    data = _save(_rgb(rng, 100, 100), "PNG")
    with pytest.raises(InputError):
        load_sample(data, limits=Limits(max_pixels=5000))
    assert load_sample(data, limits=Limits(max_pixels=10000)).width == 100


def test_enormous_text_chunk_is_dropped_not_fatal(rng):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", "x" * 300_000)
    s = load_sample(_save(_rgb(rng), "PNG", pnginfo=info), limits=Limits(max_metadata_bytes=100_000))
    assert "comment" not in s.info and s.info["_dropped"]


def test_huge_compressed_text_chunk_is_refused_cleanly(rng):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", "a" * 20_000_000, zip=True)  # zTXt bomb: tiny on disk, 20 MB inflated
    data = _save(_rgb(rng), "PNG", pnginfo=info)
    assert len(data) < 200_000
    s = load_sample(data)  # pixels still analysed, the oversize chunk dropped with a note
    assert "comment" not in s.info and s.info["_dropped"]
    assert s.pixels.shape == (40, 60, 3)


def test_directory_and_missing(tmp_path):
    with pytest.raises(InputError) as e:
        load_sample(tmp_path)
    assert e.value.code == "not_a_file"
    with pytest.raises(InputError) as e:
        load_sample(tmp_path / "nope.jpg")
    assert e.value.code == "not_found"


def test_exif_orientation_kept_for_forensics_applied_for_display(rng):
    img = _rgb(rng, 30, 50)
    ex = Image.Exif()
    ex[0x0112] = 6
    s = load_sample(_save(img, "JPEG", exif=ex.tobytes()))
    assert s.orientation == 6
    assert s.pixels.shape[:2] == (30, 50)
    assert s.display_pixels().shape[:2] == (50, 30)


@pytest.mark.parametrize("o", range(1, 9))
def test_apply_orientation_matches_pillow(rng, o):
    from PIL import ImageOps

    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    ex = img.getexif()
    ex[0x0112] = o
    img.info["exif"] = ex.tobytes()
    ref = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(_save(img, "PNG", exif=ex.tobytes())))))
    assert np.array_equal(apply_orientation(arr, o), ref)


def test_sniff():
    assert sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"<html>") is None


def test_gif_first_frame(rng):
    frames = [_rgb(rng) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    s = load_sample(buf.getvalue())
    assert s.frames == 3 and s.pixels.shape == (40, 60, 3)


def test_iter_image_paths(tmp_path, rng):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(_save(_rgb(rng), "PNG"))
    (tmp_path / "b.txt").write_text("no")
    (tmp_path / "c.JPG").write_bytes(_save(_rgb(rng), "JPEG"))
    got = iter_image_paths([str(tmp_path)])
    assert sorted(p.split("/")[-1] for p in got) == ["c.JPG", "x.png"]
