"""Safe image loading.

Reading never crashes and never hangs: the file size and pixel count are checked before decoding,
the format is sniffed from the content (extensions are not trusted), and every failure becomes an
:class:`~verity.core.errors.InputError` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import InputError
from verity.core.types import Sample

#: Containers verity reads, by the name Pillow uses.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
#: File name suffixes picked up when a folder is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


@dataclass(frozen=True)
class Limits:
    """Limits applied before decoding.

    Attributes
    ----------
    max_bytes : int
        Largest file accepted (default 100 MB).
    max_pixels : int
        Largest width x height accepted (default 100 megapixels), against decompression bombs.
    max_metadata_bytes : int
        Largest single metadata block kept (text chunk, XMP, EXIF); larger ones are dropped with a note.
    """

    max_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_metadata_bytes: int = 8 * 1024 * 1024


DEFAULT_LIMITS = Limits()


def sniff_format(data: bytes) -> str | None:
    """Return the container format from the first bytes, or ``None`` when unknown.

    Parameters
    ----------
    data : bytes
        At least the first 16 bytes of a file.
    """
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def read_bytes(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a file, refusing anything larger than ``limits.max_bytes`` without reading it all."""
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError("is a directory", "not_a_file")
        if not p.exists():
            raise InputError("no such file", "not_found")
        _require_regular(p.stat().st_mode)  # a named pipe would block the open, a device never end
        # O_NONBLOCK: should the path be swapped for a pipe after the check, the open still returns
        fd = os.open(str(p), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            _require_regular(st.st_mode)
            size = st.st_size
            if size > limits.max_bytes:
                raise InputError(
                    f"file is {size / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:.0f} MB limit", "too_large"
                )
            data = fh.read(limits.max_bytes + 1)
    except PermissionError:
        raise InputError("permission denied", "unreadable") from None
    except IsADirectoryError:
        raise InputError("is a directory", "not_a_file") from None
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", "unreadable") from None
    if len(data) > limits.max_bytes:
        raise InputError(f"file is over the {limits.max_bytes / 1e6:.0f} MB limit", "too_large")
    return data


def load_sample(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Sample:
    """Load an image file or bytes into a :class:`Sample`.

    Parameters
    ----------
    source : path or bytes
        A file path, or the file's bytes (an upload).
    name : str, optional
        Name to report for bytes input.
    limits : Limits
        Size and pixel limits checked before decoding.

    Returns
    -------
    Sample
        ``pixels`` has shape (H, W, 3), dtype uint8, in stored orientation.

    Raises
    ------
    InputError
        With a one-line reason and a stable ``code``: ``empty``, ``too_large``, ``not_an_image``,
        ``unsupported_format``, ``decompression_bomb``, ``truncated``, ``corrupt``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        path = name
        if len(data) > limits.max_bytes:
            raise InputError(f"upload is over the {limits.max_bytes / 1e6:.0f} MB limit", "too_large")
    else:
        data = read_bytes(source, limits)
        path = str(source)
    return decode(data, path=path, limits=limits)


def decode(data: bytes, *, path: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Sample:
    """Decode bytes into a :class:`Sample`; see :func:`load_sample`."""
    try:
        return _decode(data, path=path, limits=limits)
    except InputError as e:
        # Pillow refuses PNGs whose text chunks inflate past its safety limit; the pixels are still
        # worth analysing, so retry without the text chunks and say what was dropped.
        msg = str(e)
        if e.code == "corrupt" and ("text chunk" in msg.lower() or "MAX_TEXT_CHUNK" in msg):
            stripped, n = strip_png_text_chunks(data)
            if n:
                s = _decode(stripped, path=path, limits=limits)
                s.data = data
                s.info.setdefault("_dropped", []).append(f"{n} oversize PNG text chunk(s)")
                return s
        raise


def strip_png_text_chunks(data: bytes) -> tuple[bytes, int]:
    """Remove tEXt/zTXt/iTXt chunks from a PNG; returns (new bytes, number removed)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data, 0
    out, pos, removed = [data[:8]], 8, 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            out.append(data[pos:])
            break
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            removed += 1
        else:
            out.append(data[pos:end])
        pos = end
    return b"".join(out), removed


def _decode(data: bytes, *, path: str | None, limits: Limits) -> Sample:
    from PIL import Image, ImageFile

    if len(data) == 0:
        raise InputError("file is empty (0 bytes)", "empty")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise InputError(
            "not a supported image (content is not JPEG, PNG, WebP, TIFF, BMP or GIF)", "not_an_image"
        )
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Pillow's own bomb check is replaced by ours (checked before decode, with our limit).
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = im.size
            if w <= 0 or h <= 0:
                raise InputError(f"image has invalid size {w}x{h}", "corrupt")
            if w * h > limits.max_pixels:
                raise InputError(
                    f"image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the "
                    f"{limits.max_pixels / 1e6:.0f} MP limit (possible decompression bomb)",
                    "decompression_bomb",
                )
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1:
                im.seek(0)
            quant = None
            if fmt == "JPEG":
                q = getattr(im, "quantization", None)
                if q:
                    quant = {int(k): [int(v) for v in t] for k, t in q.items()}
            mode = im.mode
            im.load()
            info = _safe_info(im, limits)  # after load: PNG text chunks behind the image data
            orientation = _orientation(im)
            pixels, alpha, depth = _to_rgb8(im)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError("image exceeds the pixel limit (possible decompression bomb)", "decompression_bomb") from None
    except MemoryError:
        raise InputError("image is too large to decode in memory", "too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError, struct.error) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            raise InputError(f"{fmt} file is truncated ({msg})", "truncated") from None
        raise InputError(f"{fmt} file is corrupt or unsupported ({msg})", "corrupt") from None
    return Sample(
        data=data,
        pixels=pixels,
        format=fmt,
        mode=mode,
        path=path,
        alpha=alpha,
        orientation=orientation,
        info=info,
        quantization=quant,
        bit_depth=depth,
        frames=frames,
    )


def _safe_info(im: Any, limits: Limits) -> dict[str, Any]:
    """Copy Pillow's info dict, dropping oversize blocks (noted under ``_dropped``)."""
    out: dict[str, Any] = {}
    dropped = []
    for k, v in dict(im.info).items():
        size = len(v) if isinstance(v, (bytes, str)) else 0
        if size > limits.max_metadata_bytes:
            dropped.append(f"{k} ({size} bytes)")
            continue
        out[str(k)] = v
    if dropped:
        out["_dropped"] = dropped
    try:
        xmp = im.getxmp() if hasattr(im, "getxmp") else None  # needs defusedxml; optional
        if xmp:
            out["_xmp_parsed"] = xmp
    except Exception:
        pass
    return out


def _orientation(im: Any) -> int:
    try:
        o = int(im.getexif().get(0x0112, 1))
        return o if 1 <= o <= 8 else 1
    except Exception:
        return 1


def _to_rgb8(im: Any) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Convert any Pillow mode to RGB uint8 (+ alpha), keeping the stored orientation."""
    mode = im.mode
    depth = 8
    alpha = None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        depth = 16 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 8
        scale = 65535.0 if depth == 16 else 255.0
        g = np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), None, depth
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        g = np.zeros(arr.shape, np.uint8) if hi <= lo else ((arr - lo) / (hi - lo) * 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), None, 32
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        a = np.asarray(rgba)
        alpha = a[..., 3].copy()
        return np.ascontiguousarray(a[..., :3]), alpha, depth
    if mode == "1":
        im = im.convert("L")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "P", "L", "1") or mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8)), None, depth


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array."""
    o = orientation
    if o == 2:
        return pixels[:, ::-1]
    if o == 3:
        return pixels[::-1, ::-1]
    if o == 4:
        return pixels[::-1]
    if o == 5:
        return np.swapaxes(pixels, 0, 1)
    if o == 6:
        return np.rot90(pixels, -1)
    if o == 7:
        return np.swapaxes(pixels, 0, 1)[::-1, ::-1]
    if o == 8:
        return np.rot90(pixels, 1)
    return pixels


def read_exif(sample: Sample) -> dict[int, Any]:
    """EXIF tags of a sample, IFD0 merged with the Exif and GPS sub-IFDs; ``{}`` when absent or broken."""
    from PIL import Image

    raw = sample.info.get("exif")
    if not raw and sample.format not in ("TIFF",):
        return {}
    try:
        exif = Image.Exif()
        if raw:
            exif.load(raw)
        else:
            with Image.open(io.BytesIO(sample.data)) as im:
                exif = im.getexif()
        tags: dict[int, Any] = dict(exif)
        for ifd in (0x8769, 0x8825):
            try:
                tags.update(exif.get_ifd(ifd))
            except Exception:
                pass
        return tags
    except Exception:
        return {}


def _require_regular(mode: int) -> None:
    import stat

    if stat.S_ISREG(mode):
        return
    what = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise InputError(f"{what}, not a regular file; refused without reading it", "not_a_file")


def iter_image_paths(inputs: list[str]) -> list[str]:
    """Expand folders (recursively, sorted) into image files; plain files are kept as given.

    Folders that cannot be read are left out; :func:`scan_image_paths` says which."""
    return scan_image_paths(inputs)[0]


def scan_image_paths(inputs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand folders (recursively, sorted) into image files; plain files are kept as given.

    Returns
    -------
    paths : list of str
    problems : list of (path, reason)
        Folders that could not be listed (permission denied, ...) and image-named entries that are not
        regular files (named pipes, devices, sockets), in the order met. Symbolic links to folders
        are followed, each folder once.
    """
    out: list[str] = []
    problems: list[tuple[str, str]] = []
    for s in inputs:
        p = Path(s)
        if not p.is_dir():
            out.append(s)
            continue
        found: list[str] = []
        seen: set[tuple[int, int]] = set()
        todo = [p]
        while todo:
            d = todo.pop()
            try:
                st = d.stat()
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                with os.scandir(d) as it:
                    entries = list(it)
            except PermissionError:
                problems.append((str(d), "permission denied (folder skipped)"))
                continue
            except OSError as e:
                problems.append((str(d), f"cannot list folder: {e.strerror or e} (folder skipped)"))
                continue
            for e in entries:
                try:
                    if e.is_dir():
                        todo.append(Path(e.path))
                    elif Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                        if e.is_file():
                            found.append(e.path)
                        elif not e.is_symlink() or os.path.exists(e.path):
                            _require_regular(e.stat().st_mode)
                except InputError as err:
                    problems.append((e.path, str(err)))
                except OSError as err:
                    problems.append((e.path, f"cannot read: {err.strerror or err}"))
        out.extend(str(f) for f in sorted(Path(f) for f in found))
    return out, problems
