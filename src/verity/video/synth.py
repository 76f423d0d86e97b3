"""Seeded synthetic videos for tests and benchmarks: a smooth textured background with sensor-like
noise, a moving shape, optionally a face picture gliding across the frame, and optionally a region
spliced into some frames only (pasted from a noisier source).

Writing uses PyAV when installed, else the ``ffmpeg`` command (raw RGB frames on its stdin).
Nothing here is a real person's face swapped onto another: the face, if any, is the caller's
picture, moved as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def can_write() -> str | None:
    """``None`` when a video can be written, else why not."""
    import importlib.util

    if importlib.util.find_spec("av") is not None or shutil.which("ffmpeg"):
        return None
    return "neither PyAV (pip install av) nor the ffmpeg command is available"


@dataclass
class SynthSpec:
    """What to draw.

    Attributes
    ----------
    seconds, fps : float
    size : (width, height)
    splice : (start, end) seconds or None
        Frames with ``start <= t < end`` carry a pasted patch whose noise is ``splice_noise`` grey levels.
    face : ndarray (h, w, 3) uint8 or None
        A picture moved left to right across the upper half.
    face_alt, face_alt_span : ndarray (same shape as ``face``) and (start, end) seconds, optional
        Frames with ``start <= t < end`` show ``face_alt`` instead of ``face`` (e.g. a self-blended
        version of the same face: a forgery made from one real face, no second person).
    face_flicker : float
        Standard deviation of an independent brightness offset added to the inner face (the middle of
        the picture) in every frame (simulates a face re-synthesised frame by frame).
    """

    seconds: float = 6.0
    fps: float = 30.0
    size: tuple[int, int] = (640, 360)
    splice: tuple[float, float] | None = None
    splice_noise: float = 14.0
    face: np.ndarray | None = None
    face_flicker: float = 0.0
    face_alt: np.ndarray | None = None
    face_alt_span: tuple[float, float] | None = None
    seed: int = 0


def frames(spec: SynthSpec) -> Iterator[np.ndarray]:
    """The RGB frames of ``spec``."""
    import cv2

    rng = np.random.default_rng(spec.seed)
    w, h = spec.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 110 + 40 * np.sin(xx / (w / 17.0)) + 30 * np.cos(yy / (h / 15.0))
    tex = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 2)
    bg = np.repeat((base + tex)[..., None], 3, axis=2)
    bg[..., 0] += 20
    bg[..., 2] -= 15
    n = int(round(spec.seconds * spec.fps))
    sh = max(8, h // 6)
    face = None if spec.face is None else np.asarray(spec.face, np.float32)
    ph, pw = max(16, h // 3), max(16, w // 4)
    patch = np.full((ph, pw, 3), (90, 140, 90), np.float32) + cv2.GaussianBlur(
        rng.normal(0, 25, (ph, pw, 3)).astype(np.float32), (0, 0), 3)
    for i in range(n):
        t = i / spec.fps
        img = bg.copy()
        x = int(w * 0.06 + (w * 0.7) * t / max(spec.seconds, 1e-6))
        img[h // 2 + sh : h // 2 + 2 * sh, x : x + 2 * sh] = (200, 60, 60)
        if face is not None:
            fh, fw = face.shape[:2]
            fx = int(w * 0.05 + (w - fw - w * 0.1) * t / max(spec.seconds, 1e-6))
            fy = int(h * 0.08)
            alt = spec.face_alt is not None and spec.face_alt_span and spec.face_alt_span[0] <= t < spec.face_alt_span[1]
            region = np.asarray(spec.face_alt, np.float32).copy() if alt else face.copy()
            if spec.face_flicker:  # the inner face only, as a swap replaces it
                region[int(fh * 0.25) : int(fh * 0.8), int(fw * 0.2) : int(fw * 0.8)] += rng.normal(0, spec.face_flicker)
            img[fy : fy + fh, fx : fx + fw] = region
        img += rng.normal(0, 4, img.shape).astype(np.float32)  # sensor noise
        if spec.splice and spec.splice[0] <= t < spec.splice[1]:
            y0, x0 = h // 18, w - pw - w // 16
            img[y0 : y0 + ph, x0 : x0 + pw] = patch + rng.normal(0, spec.splice_noise, patch.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: str | Path, spec: SynthSpec, codec: str = "libx264", crf: int = 18, faststart: bool = False) -> Path:
    """Encode ``spec`` to ``path`` (container from the suffix: .mp4, .mkv, .avi...); ``faststart``
    puts an MP4's ``moov`` index before the media data."""
    path = Path(path)
    w, h = spec.size
    try:
        import av
    except ImportError:
        av = None
    if av is not None:
        from fractions import Fraction

        with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
            st = c.add_stream(codec, rate=Fraction(spec.fps).limit_denominator(1001))
            st.width, st.height, st.pix_fmt = w, h, "yuv420p"
            if codec == "libx264":
                st.options = {"crf": str(crf), "preset": "veryfast"}
            for img in frames(spec):
                for p in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in st.encode():
                c.mux(p)
        return path
    if not shutil.which("ffmpeg"):
        raise RuntimeError(can_write())
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(spec.fps), "-i", "-", "-c:v", codec, "-pix_fmt", "yuv420p"]
    if codec == "libx264":
        cmd += ["-crf", str(crf), "-preset", "veryfast"]
    if faststart:
        cmd += ["-movflags", "faststart"]
    proc = subprocess.Popen(cmd + [str(path)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for img in frames(spec):
        proc.stdin.write(img.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}")
    return path
