"""Synthetic forgeries made in code, with ground-truth masks: splices, copy-moves, inpainting-like
fills, and container tricks (camera EXIF, Stable Diffusion text chunks). Used by tests, the demo and
detector training. Pure numpy/Pillow/OpenCV; no torch.

Every function takes a ``numpy.random.Generator`` so results are reproducible.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass
class Forgery:
    """An encoded forged image and where it was altered.

    Attributes
    ----------
    data : bytes
        The file (JPEG or PNG).
    mask : ndarray, shape (H, W), bool
        True where pixels were altered (for copy-move: the pasted copy only).
    source_mask : ndarray, shape (H, W), bool, or None
        For copy-move: the region that was copied.
    box : (x0, y0, x1, y1)
        Bounding box of ``mask``.
    """

    data: bytes
    mask: np.ndarray
    box: tuple[int, int, int, int]
    source_mask: np.ndarray | None = None


def encode_jpeg(pixels: np.ndarray, quality: int, exif: bytes | None = None, subsampling: int = 2) -> bytes:
    """JPEG-encode an (H, W, 3) uint8 array (Pillow/libjpeg, standard IJG tables)."""
    from PIL import Image

    buf = io.BytesIO()
    kw = {"quality": int(quality), "subsampling": subsampling}
    if exif:
        kw["exif"] = exif
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", **kw)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    return decode(encode_jpeg(pixels, quality))


def camera_exif(make: str = "Canon", model: str = "Canon EOS 5D", when: str = "2019:06:01 10:20:30") -> bytes:
    """EXIF bytes with typical camera fields (make, model, exposure, timestamps)."""
    from PIL import Image

    ex = Image.Exif()
    ex[0x010F] = make
    ex[0x0110] = model
    ex[0x0132] = when
    ifd = ex.get_ifd(0x8769)
    ifd[0x9003] = when  # DateTimeOriginal
    ifd[0x9004] = when  # DateTimeDigitized
    ifd[0x829A] = (1, 125)  # ExposureTime
    ifd[0x829D] = (56, 10)  # FNumber
    ifd[0x8827] = 200  # ISO
    ifd[0x920A] = (50, 1)  # FocalLength
    return ex.tobytes()


def sd_png(pixels: np.ndarray, prompt: str = "a photo of an astronaut riding a horse", seed: int = 1234) -> bytes:
    """PNG with an AUTOMATIC1111-style Stable Diffusion ``parameters`` text chunk."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, "
        "Size: 512x512, Model hash: 7460a6fa, Model: sd-v1-4",
    )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _box_mask(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros(shape, bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def random_box(rng: np.random.Generator, shape: tuple[int, int], frac: tuple[float, float] = (0.15, 0.35)) -> tuple[int, int, int, int]:
    """A random axis-aligned box whose sides are ``frac`` of the image sides."""
    h, w = shape
    bw = int(w * rng.uniform(*frac))
    bh = int(h * rng.uniform(*frac))
    x0 = int(rng.integers(0, w - bw))
    y0 = int(rng.integers(0, h - bh))
    return x0, y0, x0 + bw, y0 + bh


def make_splice(
    host: np.ndarray,
    donor: np.ndarray,
    rng: np.random.Generator,
    q_host: int = 92,
    q_donor: int = 60,
    q_final: int | None = None,
    box: tuple[int, int, int, int] | None = None,
    exif: bytes | None = None,
) -> Forgery:
    """Paste a region of ``donor`` (after a JPEG round trip at ``q_donor``) into ``host`` (after a
    JPEG round trip at ``q_host``) and save the result as JPEG at ``q_final`` (default ``q_host``).
    The pasted box lands at a random offset, usually off the 8x8 grid of the host.
    """
    h, w = host.shape[:2]
    host_j = jpeg_roundtrip(host, q_host)
    donor_j = jpeg_roundtrip(donor, q_donor)
    box = box or random_box(rng, (h, w))
    x0, y0, x1, y1 = box
    bh, bw = y1 - y0, x1 - x0
    dh, dw = donor_j.shape[:2]
    if dh < bh or dw < bw:
        raise ValueError("donor is smaller than the box")
    sy = int(rng.integers(0, dh - bh + 1))
    sx = int(rng.integers(0, dw - bw + 1))
    out = host_j.copy()
    out[y0:y1, x0:x1] = donor_j[sy : sy + bh, sx : sx + bw]
    data = encode_jpeg(out, q_final or q_host, exif=exif)
    return Forgery(data=data, mask=_box_mask((h, w), box), box=box)


def make_copy_move(
    img: np.ndarray,
    rng: np.random.Generator,
    size: int = 64,
    quality: int | None = 95,
    min_shift: int | None = None,
) -> Forgery:
    """Copy a square ``size`` patch to another place of the same image (no overlap).

    Saved as JPEG at ``quality`` (PNG when ``None``). The patch source is chosen where the image has
    texture (highest local variance among random candidates), as a forger hiding something would.
    """
    import cv2

    h, w = img.shape[:2]
    min_shift = min_shift or size + 8
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    var = cv2.blur(g * g, (size, size)) - cv2.blur(g, (size, size)) ** 2
    best = None
    for _ in range(64):
        sx = int(rng.integers(0, w - size))
        sy = int(rng.integers(0, h - size))
        v = float(var[sy + size // 2, sx + size // 2])
        if best is None or v > best[0]:
            best = (v, sx, sy)
    _, sx, sy = best
    for _ in range(1000):
        dx = int(rng.integers(0, w - size))
        dy = int(rng.integers(0, h - size))
        if abs(dx - sx) >= min_shift or abs(dy - sy) >= min_shift:
            break
    out = img.copy()
    out[dy : dy + size, dx : dx + size] = img[sy : sy + size, sx : sx + size]
    if quality is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = encode_jpeg(out, quality)
    box = (dx, dy, dx + size, dy + size)
    return Forgery(
        data=data,
        mask=_box_mask((h, w), box),
        box=box,
        source_mask=_box_mask((h, w), (sx, sy, sx + size, sy + size)),
    )


def make_inpaint_fill(img: np.ndarray, rng: np.random.Generator, quality: int = 90) -> Forgery:
    """Erase a random box with OpenCV inpainting (a crude stand-in for generative fill)."""
    import cv2

    h, w = img.shape[:2]
    box = random_box(rng, (h, w), (0.1, 0.25))
    mask = _box_mask((h, w), box)
    filled = cv2.inpaint(np.ascontiguousarray(img), mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    return Forgery(data=encode_jpeg(filled, quality), mask=mask, box=box)


def textured_image(rng: np.random.Generator, shape: tuple[int, int] = (384, 512)) -> np.ndarray:
    """A photo-like random test image: smooth colour gradients, shapes, fine texture and sensor noise."""
    import cv2

    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 110 + 60 * np.sin(a * xx / w * 3 + b * yy / h * 3 + rng.uniform(0, 6))
    for _ in range(12):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(10, max(11, min(h, w) // 5)))
        col = tuple(float(v) for v in rng.uniform(20, 235, 3))
        cv2.circle(img, (cx, cy), r, col, -1, lineType=cv2.LINE_AA)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    img += 18 * tex[..., None]
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
