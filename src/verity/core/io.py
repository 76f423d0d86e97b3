"""Safe image loading.

Reading never crashes and never hangs: the file size and pixel count are checked before decoding,
the format is sniffed from the content (extensions are not trusted), and every failure becomes an
:class:`~verity.core.errors.InputError` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import ConfigError, InputError
from verity.core.types import Sample

#: Containers verity reads, by the name Pillow uses.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
#: File name suffixes picked up when a folder is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
#: Video containers recognised by :func:`sniff_video` (decoded by :mod:`verity.video`).
VIDEO_FORMATS = ("MP4", "MOV", "MATROSKA", "AVI", "MPEG-TS", "MPEG-PS", "FLV", "ASF", "OGG")
#: Video file name suffixes picked up when a folder is given.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                  ".flv", ".3gp", ".3g2", ".wmv", ".asf", ".ogv")
#: ``ftyp`` brands of still-image formats in the ISO media file format (not videos).
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"crx ")
#: Video container name -> MIME type.
VIDEO_MIME = {"MP4": "video/mp4", "MOV": "video/quicktime", "MATROSKA": "video/x-matroska", "AVI": "video/x-msvideo",
              "MPEG-TS": "video/mp2t", "MPEG-PS": "video/mpeg", "FLV": "video/x-flv", "ASF": "video/x-ms-asf",
              "OGG": "video/ogg"}


#: Environment variables that override the built-in default limits (flags override them in turn).
ENV_MAX_MB, ENV_MAX_MP, ENV_MAX_FRAMES = "VERITY_MAX_MB", "VERITY_MAX_MP", "VERITY_MAX_FRAMES"


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    """A positive number from the environment variable ``name``, else ``default``.

    Raises
    ------
    ConfigError
        When the variable is set to something that is not a positive number.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v != float("inf")) or (integer and v != int(v)):
        kind = "a positive whole number" if integer else "a positive number"
        raise ConfigError(f"${name}={raw!r} is not {kind}")
    return int(v) if integer else v


def _env_bytes() -> int:
    return int(env_number(ENV_MAX_MB, 100.0) * 1024 * 1024)


def _env_pixels() -> int:
    return int(env_number(ENV_MAX_MP, 100.0) * 1e6)


def _env_frames() -> int:
    return int(env_number(ENV_MAX_FRAMES, 10_000, integer=True))


@dataclass(frozen=True)
class Limits:
    """Limits applied before decoding.

    Each default can be changed with an environment variable (``VERITY_MAX_MB``, ``VERITY_MAX_MP``,
    ``VERITY_MAX_FRAMES``), read when a ``Limits()`` is made; explicit arguments (the CLI flags)
    override them.

    Attributes
    ----------
    max_bytes : int
        Largest file accepted (default 100 MB).
    max_pixels : int
        Largest width x height accepted (default 100 megapixels), against decompression bombs.
    max_frames : int
        Most frames (animated GIF/WebP, multi-page TIFF) accepted (default 10,000). Frames are
        counted with a bounded scan, so a file with millions of frames is refused quickly.
    max_metadata_bytes : int
        Largest single metadata block kept (text chunk, XMP, EXIF); larger ones are dropped with a note.
    """

    max_bytes: int = field(default_factory=_env_bytes)
    max_pixels: int = field(default_factory=_env_pixels)
    max_frames: int = field(default_factory=_env_frames)
    max_metadata_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_frames", "max_metadata_bytes"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"limit {name} must be positive, got {getattr(self, name)!r}")


#: The built-in defaults (environment variables not applied).
DEFAULT_LIMITS = Limits(max_bytes=100 * 1024 * 1024, max_pixels=100_000_000, max_frames=10_000)

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


def sniff_video(data: bytes) -> str | None:
    """Return the video container (one of :data:`VIDEO_FORMATS`) from the first bytes, or ``None``.

    Parameters
    ----------
    data : bytes
        At least the first 400 bytes of a file (MPEG-TS needs three 188-byte packets).
    """
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "MOV" if brand == b"qt  " else "MP4"
    if len(data) >= 8 and data[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "MOV"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "MATROSKA"
    if data[:4] == b"RIFF" and data[8:12] in (b"AVI ", b"AVIX"):
        return "AVI"
    if len(data) >= 377 and data[0] == 0x47 and data[188] == 0x47 and data[376] == 0x47:
        return "MPEG-TS"
    if data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "MPEG-PS"
    if data[:3] == b"FLV":
        return "FLV"
    if data[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "ASF"
    if data[:4] == b"OggS":
        return "OGG"
    return None


def read_bytes(path: str | os.PathLike, limits: Limits | None = None) -> bytes:
    """Read a file, refusing anything larger than ``limits.max_bytes`` without reading it all."""
    if limits is None:
        limits = Limits()
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
    limits: Limits | None = None,
) -> Sample:
    """Load an image file or bytes into a :class:`Sample`.

    Parameters
    ----------
    source : path or bytes
        A file path, or the file's bytes (an upload).
    name : str, optional
        Name to report for bytes input.
    limits : Limits, optional
        Size, pixel and frame limits checked before decoding; default ``Limits()`` (the built-in
        defaults, or the ``VERITY_MAX_*`` environment variables).

    Returns
    -------
    Sample
        ``pixels`` has shape (H, W, 3), dtype uint8, in stored orientation.

    Raises
    ------
    InputError
        With a one-line reason and a stable ``code``: ``empty``, ``too_large``, ``not_an_image``,
        ``unsupported_format`` (video, HEIF), ``decompression_bomb``, ``too_many_frames``,
        ``truncated``, ``corrupt``.
    """
    if limits is None:
        limits = Limits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        path = name
        if len(data) > limits.max_bytes:
            raise InputError(f"upload is over the {limits.max_bytes / 1e6:.0f} MB limit", "too_large")
    else:
        data = read_bytes(source, limits)
        path = str(source)
    return decode(data, path=path, limits=limits)


def decode(data: bytes, *, path: str | None = None, limits: Limits | None = None) -> Sample:
    """Decode bytes into a :class:`Sample`; see :func:`load_sample`."""
    if limits is None:
        limits = Limits()
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
                s.info.setdefault("_dropped", []).append(f"{n} PNG text/ICC chunk(s) (one inflates past the limit)")
                return s
        raise


#: Ancillary (non-critical) PNG chunks handed to Pillow; more are dropped before decoding (Pillow
#: reads each in Python: 100,000 of them cost seconds). Text chunks are read from the raw bytes anyway.
MAX_PNG_ANCILLARY = 1000
_PNG_KEEP = (b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT")


def prune_png_ancillary(data: bytes, keep: int = MAX_PNG_ANCILLARY) -> tuple[bytes, int]:
    """Drop ancillary chunks after the first ``keep``; returns (bytes for the decoder, number dropped).

    Critical and animation chunks are always kept. The walk stops at the first broken length and
    leaves the rest of the file as it is (the decoder reports the damage).
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data, 0
    pos, n, seen, spans = 8, len(data), 0, []
    while pos + 8 <= n:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            break
        if ctype not in _PNG_KEEP:
            seen += 1
            if seen > keep:
                spans.append((pos, end))
        if ctype == b"IEND":
            break
        pos = end
    if not spans:
        return data, 0
    out, last = [], 0
    for a, b in spans:
        out.append(data[last:a])
        last = b
    out.append(data[last:])
    return b"".join(out), len(spans)


def strip_png_text_chunks(data: bytes) -> tuple[bytes, int]:
    """Remove tEXt/zTXt/iTXt and iCCP chunks from a PNG (Pillow refuses the whole file when one of
    them inflates past its limit); returns (new bytes, number removed)."""
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
        if ctype in (b"tEXt", b"zTXt", b"iTXt", b"iCCP"):
            removed += 1
        else:
            out.append(data[pos:end])
        pos = end
    return b"".join(out), removed


_FD2_LOCK = threading.RLock()  # re-entrant: a caller (the fuzz harness) may wrap a decode that uses it


class _NativeStderr:
    """Context manager that diverts file descriptor 2 into a temporary file while a native decoder
    runs (libtiff writes warnings such as "Using code not yet in table" straight to stderr, which
    would break the CLI's one-line errors). ``first_line`` holds what it wrote, for the error message.

    The redirection is process-wide, so it is serialised by a lock: TIFF decodes in parallel
    threads wait for each other, and anything another thread writes to fd 2 meanwhile lands in the
    temporary file (milliseconds).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.first_line = ""
        self._saved: int | None = None
        self._tmp: Any = None

    def __enter__(self) -> "_NativeStderr":
        if not self.enabled:
            return self
        import tempfile

        _FD2_LOCK.acquire()
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            self._saved = os.dup(2)
            self._tmp = tempfile.TemporaryFile()
            os.dup2(self._tmp.fileno(), 2)
        except OSError:  # no fd 2 (daemon) or no temp dir: leave stderr alone
            if self._saved is not None:
                os.close(self._saved)
            self._saved = None
            _FD2_LOCK.release()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saved is None:
            return
        try:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._tmp.seek(0)
            text = self._tmp.read(4096).decode("utf-8", "replace")
            self._tmp.close()
            self.first_line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:200]
        finally:
            self._saved = None
            _FD2_LOCK.release()


def _decode(data: bytes, *, path: str | None, limits: Limits) -> Sample:
    from PIL import Image, ImageFile

    if len(data) == 0:
        raise InputError("file is empty (0 bytes)", "empty")
    if len(data) < 8 and (data == b"\x89PNG\r\n\x1a\n"[: len(data)] or data[:2] == b"\xff\xd8"):
        raise InputError(f"file is truncated: only {len(data)} bytes, the start of an image signature", "truncated")
    fmt = sniff_format(data[:16])
    if fmt is None:
        video = sniff_video(data[:512])
        if video:
            raise InputError(f"is a video ({video}), not an image (`verity analyze` reads videos)", "is_video")
        if data[4:8] == b"ftyp" and data[8:12] in _IMAGE_BRANDS:
            raise InputError(
                "HEIF/AVIF images are not supported yet (verity analyses JPEG, PNG, WebP, TIFF, BMP and GIF "
                "images and videos)",
                "unsupported_format",
            )
        raise InputError(
            "not a supported image or video (content is not JPEG, PNG, WebP, TIFF, BMP, GIF or a video "
            "container: MP4, MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV, ASF, Ogg)",
            "not_an_image",
        )
    if fmt == "PNG":
        data_for_pillow, n_pruned = prune_png_ancillary(data)
    else:
        data_for_pillow, n_pruned = data, 0
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # Pillow's own bomb check is replaced by ours (checked before decode, with our limit).
    Image.MAX_IMAGE_PIXELS = None
    native = _NativeStderr(enabled=fmt == "TIFF")  # libtiff prints its complaints on fd 2
    try:
        with native, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data_for_pillow), formats=[fmt])
            w, h = im.size
            if w <= 0 or h <= 0:
                raise InputError(f"image has invalid size {w}x{h}", "corrupt")
            if w * h > limits.max_pixels:
                raise InputError(
                    f"image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the "
                    f"{limits.max_pixels / 1e6:.0f} MP limit (possible decompression bomb)",
                    "decompression_bomb",
                )
            frames = count_frames(im, fmt, data, limits.max_frames)
            if frames > limits.max_frames:
                raise InputError(
                    f"{fmt} has more than {limits.max_frames} frames, over the frame limit "
                    "(--max-frames / $VERITY_MAX_FRAMES)",
                    "too_many_frames",
                )
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
            if n_pruned:
                info.setdefault("_dropped", []).append(
                    f"{n_pruned} ancillary PNG chunks beyond the first {MAX_PNG_ANCILLARY} (not passed to the decoder)"
                )
            orientation = _orientation(im)
            pixels, alpha, depth = _to_rgb8(im)
            depth = max(depth, _stored_bit_depth(im, fmt, data))
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError("image exceeds the pixel limit (possible decompression bomb)", "decompression_bomb") from None
    except MemoryError:
        raise InputError("image is too large to decode in memory", "too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError, struct.error) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if native.first_line:
            msg = f"{msg}; libtiff: {native.first_line}"
        if msg.startswith("cannot identify image file"):  # Pillow names the BytesIO object: say what it means
            raise InputError(f"{fmt} file is corrupt or cut short (its header could not be parsed)", "corrupt") from None
        if msg == "cannot load this image":
            raise InputError(f"{fmt} file is corrupt or cut short (its image data could not be decoded)", "corrupt") from None
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


def count_frames(im: Any, fmt: str, data: bytes, limit: int) -> int:
    """Number of frames, counting at most ``limit + 1`` (so the cost is bounded by the limit).

    GIF, TIFF and APNG are counted by walking their blocks / IFD chain / chunks directly (Pillow's
    ``n_frames`` walks the whole file, which takes seconds for a GIF with a million tiny frames, and
    believes an APNG's acTL claim); WebP uses Pillow (libwebp's demuxer).
    """
    if fmt == "GIF":
        return _gif_frames(data, limit + 1)
    if fmt == "TIFF":
        return _tiff_pages(data, limit + 1)
    if fmt == "PNG":
        return _apng_frames(data, limit + 1)
    return int(getattr(im, "n_frames", 1) or 1)


def _apng_frames(data: bytes, stop: int) -> int:
    """Frames of an APNG: its fcTL chunks, counted up to ``stop`` (the acTL chunk only *claims* a
    number, which a hostile file sets to 2^31); 1 for a still PNG."""
    pos, n, animated, frames = 8, len(data), False, 0
    while pos + 8 <= n and frames < stop:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if ctype == b"acTL":
            animated = True
        elif ctype == b"fcTL":
            frames += 1
        elif ctype == b"IEND":
            break
        pos += 12 + length
    return max(1, frames) if animated else 1


def _gif_frames(data: bytes, stop: int) -> int:
    """Count GIF image descriptors, stopping at ``stop``; at least 1 (Pillow validates the rest)."""
    n = len(data)
    if n < 13:
        return 1
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 * (2 << (flags & 7))
    frames = 0

    def skip_subblocks(p: int) -> int:
        while p < n:
            size = data[p]
            p += 1 + size
            if size == 0:
                return p
        return n

    while pos < n and frames < stop:
        b = data[pos]
        if b == 0x2C:  # image descriptor
            frames += 1
            if pos + 10 > n:
                break
            lflags = data[pos + 9]
            pos += 10
            if lflags & 0x80:
                pos += 3 * (2 << (lflags & 7))
            pos = skip_subblocks(pos + 1)  # LZW minimum code size, then data sub-blocks
        elif b == 0x21:  # extension
            pos = skip_subblocks(pos + 2)
        else:  # 0x3B trailer, or garbage: stop
            break
    return max(1, frames)


def _tiff_pages(data: bytes, stop: int) -> int:
    """Count the IFDs of a classic TIFF, stopping at ``stop`` or at a loop; at least 1."""
    if len(data) < 8 or data[2:4] not in (b"*\x00", b"\x00*"):
        return 1  # BigTIFF: leave to Pillow's single-page read
    e = "<" if data[:2] == b"II" else ">"
    (off,) = struct.unpack(e + "I", data[4:8])
    seen: set[int] = set()
    while off and off not in seen and len(seen) < stop and off + 2 <= len(data):
        seen.add(off)
        (count,) = struct.unpack(e + "H", data[off : off + 2])
        nxt = off + 2 + 12 * count
        if nxt + 4 > len(data):
            break
        (off,) = struct.unpack(e + "I", data[nxt : nxt + 4])
    return max(1, len(seen))


def _stored_bit_depth(im: Any, fmt: str, data: bytes) -> int:
    """Bits per channel as stored in the container when it says more than 8 (16-bit RGB PNG/TIFF,
    which Pillow reduces to 8-bit ``RGB`` on reading), else 8."""
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            depth, colour = data[24], data[25]
            return 8 if colour == 3 else int(depth)
        if fmt == "TIFF":
            bps = im.tag_v2.get(258)
            spp = im.tag_v2.get(277, 1)
            spp = int(spp[0] if isinstance(spp, (tuple, list)) else spp or 1)
            vals = list(bps) if isinstance(bps, (tuple, list)) else [bps] if bps else []
            vals = [int(v) for v in vals[: max(1, spp)]]  # a fuzzed file listed 11 values for 3 samples
            if vals and len(set(vals)) == 1 and vals[0] in (12, 16, 32):
                return vals[0]
            return 8
    except Exception:  # noqa: BLE001 - a depth is informational; never fail a load for it
        pass
    return 8


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
    # XMP is read by verity's own bounded parser (verity.provenance.metadata.parse_xmp) from the
    # raw packet; Pillow's getxmp() is not called: nothing used its result, and without defusedxml
    # it raised a UserWarning that leaked out of the API's worker threads
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
        with warnings.catch_warnings():  # Pillow warns about each broken tag; broken tags are skipped
            warnings.simplefilter("ignore")
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


def iter_image_paths(inputs: list[str], videos: bool = False) -> list[str]:
    """Expand folders (recursively, sorted) into image files (and video files when ``videos``);
    plain files are kept as given.

    Folders that cannot be read are left out; :func:`scan_image_paths` says which."""
    return scan_image_paths(inputs, videos)[0]


def scan_image_paths(inputs: list[str], videos: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand folders (recursively, sorted) into image files (and video files when ``videos``); plain
    files are kept as given.

    Returns
    -------
    paths : list of str
    problems : list of (path, reason)
        Folders that could not be listed (permission denied, ...) and image-named entries that are not
        regular files (named pipes, devices, sockets), in the order met. Symbolic links to folders
        are followed, each folder once.
    """
    suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
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
                    elif Path(e.name).suffix.lower() in suffixes:
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
