"""Video decoding: probe a file and sample frames at a fixed rate, with each sampled frame's
neighbours (the decoded frames just before and after it) for the temporal measurements.

PyAV (the ``video`` extra) is used when installed: it reads files and in-memory uploads, any
container and codec its bundled FFmpeg decodes. Without it, OpenCV's ``VideoCapture`` (OpenCV's
wheels carry FFmpeg too) reads from a file (uploads go through a temporary file). Every failure
becomes an :class:`~verity.core.errors.InputError` with a one-line reason.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verity.core.errors import InputError
from verity.core.io import DEFAULT_LIMITS, Limits, sniff_video


@dataclass
class VideoInfo:
    """What the container says about the video stream."""

    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration: float
    frames: int | None = None
    rotation: int = 0
    backend: str = "pyav"
    audio: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": round(float(self.fps), 3),
            "duration": round(float(self.duration), 3),
            "frames": self.frames,
            "rotation": self.rotation,
            "backend": self.backend,
            "audio": self.audio,
        }


@dataclass
class SampledFrame:
    """One sampled frame.

    Attributes
    ----------
    index : int
        0-based number among the sampled frames.
    time : float
        Presentation time in seconds.
    rgb : ndarray, shape (H, W, 3), uint8
        Display orientation.
    luma, prev_luma, next_luma : ndarray, shape (H, W), uint8
        Luma of this frame and of the decoded frames just before and after it (``None`` at the ends).
    """

    index: int
    time: float
    rgb: np.ndarray
    luma: np.ndarray
    prev_luma: np.ndarray | None = None
    next_luma: np.ndarray | None = None


def have_pyav() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is not None


def mp4_structure_problem(data: bytes) -> tuple[str, str] | None:
    """Walk the top-level boxes of an MP4/MOV file; ``(code, reason)`` when it is broken, else ``None``."""
    pos, seen, n = 0, [], len(data)
    while pos + 8 <= n:
        size = int.from_bytes(data[pos : pos + 4], "big")
        typ = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:
            if pos + 16 > n:
                return "truncated", f"it ends inside the '{typ}' box header at byte {pos}"
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            size = n - pos
        if size < 8:
            return "corrupt", f"the '{typ}' box at byte {pos} declares an impossible size ({size})"
        seen.append(typ)
        if pos + size > n:
            if "moov" not in seen or typ == "moov":
                return "truncated", (
                    f"the '{typ}' box at byte {pos} declares {size} bytes but only {n - pos} are present, and "
                    "the 'moov' box (the index of the frames) is " + ("cut off" if typ == "moov" else "missing")
                )
            return None  # index complete, media data cut short: decodable up to the cut
        pos += size
    if "moov" not in seen:
        return "truncated", "the 'moov' box (the index of the frames) is missing: the file was cut short or never finalised"
    return None


def _open_error(container: str, data_head: bytes, e: Exception) -> InputError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    msg = msg.split(": '")[0].split("; last error log")[0]
    return InputError(f"{container} file is corrupt or unsupported ({msg[:160]})", "corrupt")


class _Source:
    """A path or bytes, with the first bytes read for sniffing."""

    def __init__(self, source: str | os.PathLike | bytes, limits: Limits):
        self.path: str | None = None
        self.data: bytes | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
            if len(self.data) > limits.max_bytes:
                raise InputError(f"upload is over the {limits.max_bytes / 1e6:.0f} MB limit", "too_large")
            self.size = len(self.data)
            head = self.data[:512]
        else:
            from verity.core.io import read_bytes

            self.path = str(source)
            self.data = read_bytes(self.path, limits)  # size-checked; needed for C2PA and the sha256
            self.size = len(self.data)
            head = self.data[:512]
        if self.size == 0:
            raise InputError("file is empty (0 bytes)", "empty")
        self.container = sniff_video(head)
        if self.container is None:
            raise InputError("not a video container verity recognises", "not_a_video")


def open_video(source: str | os.PathLike | bytes, limits: Limits = DEFAULT_LIMITS, backend: str | None = None) -> "VideoReader":
    """Open a video for sampling.

    Parameters
    ----------
    source : path or bytes
    limits : Limits
        ``max_bytes`` for the file, ``max_pixels`` for one frame.
    backend : {"pyav", "opencv"}, optional
        Default: PyAV when installed, else OpenCV.

    Raises
    ------
    InputError
        ``empty``, ``too_large``, ``not_a_video``, ``truncated``, ``corrupt``, ``no_video_stream``,
        ``decompression_bomb``.
    """
    src = _Source(source, limits)
    if src.container in ("MP4", "MOV"):
        problem = mp4_structure_problem(src.data)
        if problem:
            raise InputError(f"{src.container} file is {problem[0]}: {problem[1]}", problem[0])
    backend = backend or ("pyav" if have_pyav() else "opencv")
    reader = _PyAVReader(src, limits) if backend == "pyav" else _OpenCVReader(src, limits)
    return reader


class VideoReader:
    info: VideoInfo
    data: bytes

    def frames(self, fps: float, max_seconds: float | None = None) -> Iterator[SampledFrame]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        pass

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rotate(a: np.ndarray, rotation: int) -> np.ndarray:
    r = rotation % 360
    if r == 90:
        return np.ascontiguousarray(np.rot90(a, 1))
    if r == 180:
        return np.ascontiguousarray(a[::-1, ::-1])
    if r == 270:
        return np.ascontiguousarray(np.rot90(a, -1))
    return a


def _sampler(decoded: Iterator[tuple[float, Any]], to_rgb, to_luma, fps: float, start_t: float,
             max_seconds: float | None, rotation: int) -> Iterator[SampledFrame]:
    """Pick the first decoded frame at or after each sampling instant; attach neighbour lumas."""
    step = 1.0 / fps
    next_t = 0.0
    prev_frame = None  # converted to luma only when it turns out to precede a sampled frame
    pending: SampledFrame | None = None
    k = 0
    for t, frame in decoded:
        t = t - start_t
        if max_seconds is not None and t >= max_seconds:
            break
        if pending is not None:
            pending.next_luma = _rotate(to_luma(frame), rotation)
            yield pending
            pending = None
        if t + 1e-6 >= next_t:
            prev_luma = _rotate(to_luma(prev_frame), rotation) if prev_frame is not None else None
            luma = _rotate(to_luma(frame), rotation)
            pending = SampledFrame(k, max(0.0, t), _rotate(to_rgb(frame), rotation), luma, prev_luma)
            k += 1
            while next_t <= t + 1e-6:
                next_t += step
        prev_frame = frame
    if pending is not None:
        yield pending


class _PyAVReader(VideoReader):
    def __init__(self, src: _Source, limits: Limits):
        import av

        self.data = src.data
        self._av = av
        try:
            self.container = av.open(io.BytesIO(src.data), mode="r", metadata_errors="ignore")
        except Exception as e:  # noqa: BLE001 - av.error.* and OSError
            raise _open_error(src.container, src.data[:64], e) from None
        vs = [s for s in self.container.streams if s.type == "video"]
        if not vs:
            self.container.close()
            raise InputError(f"{src.container} file has no video stream", "no_video_stream")
        st = vs[0]
        self.stream = st
        try:
            st.thread_type = "AUTO"
        except Exception:  # noqa: BLE001
            pass
        cc = st.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            self.container.close()
            raise InputError(f"{src.container} video stream has no frame size (corrupt header)", "corrupt")
        if w * h > limits.max_pixels:
            self.container.close()
            raise InputError(f"video frames are {w}x{h} = {w * h / 1e6:.0f} megapixels, over the "
                             f"{limits.max_pixels / 1e6:.0f} MP limit", "decompression_bomb")
        rate = st.average_rate or st.guessed_rate or st.base_rate
        fps = float(rate) if rate else 0.0
        if st.duration is not None and st.time_base is not None:
            dur = float(st.duration * st.time_base)
        elif self.container.duration:
            dur = self.container.duration / 1e6
        else:
            dur = 0.0
        self.start = float(st.start_time * st.time_base) if st.start_time is not None and st.time_base is not None else 0.0
        # Display rotation (phone videos' display matrix) is not applied: frames are analysed as
        # stored, like an image's stored pixels (boxes are in stored-frame pixels).
        rot = 0
        self.info = VideoInfo(src.container, str(cc.name), w, h, fps, dur, int(st.frames) or None, rot, "pyav",
                              any(s.type == "audio" for s in self.container.streams))
        self.decode_error: str | None = None
        self.last_time = 0.0

    def _decoded(self) -> Iterator[tuple[float, Any]]:
        av = self._av
        tb = self.stream.time_base
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is None:
                    t = self.last_time + (1.0 / self.info.fps if self.info.fps else 0.04)
                else:
                    t = float(frame.pts * tb)
                self.last_time = t
                yield t, frame
        except (av.error.FFmpegError, OSError, ValueError) as e:  # damaged media data: keep what was decoded
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.decode_error = f"decoding stopped at {self.last_time - self.start:.2f} s ({msg[:120]})"

    @staticmethod
    def _luma(frame: Any) -> np.ndarray:
        if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"):
            p = frame.planes[0]
            a = np.frombuffer(p, np.uint8).reshape(frame.height, p.line_size)[:, : frame.width]
            return a.copy()
        return frame.to_ndarray(format="gray")

    @staticmethod
    def _rgb(frame: Any) -> np.ndarray:
        return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))

    def frames(self, fps: float, max_seconds: float | None = None) -> Iterator[SampledFrame]:
        return _sampler(self._decoded(), self._rgb, self._luma, fps, self.start, max_seconds, self.info.rotation)

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001
            pass


class _OpenCVReader(VideoReader):
    def __init__(self, src: _Source, limits: Limits):
        import cv2

        self.data = src.data
        self._tmp: str | None = None
        path = src.path
        if path is None:
            fd, self._tmp = tempfile.mkstemp(suffix=".video")
            with os.fdopen(fd, "wb") as fh:
                fh.write(src.data)
            path = self._tmp
        self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.close()
            raise InputError(f"{src.container} file is corrupt or unsupported (OpenCV/FFmpeg cannot open it)", "corrupt")
        w = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w <= 0 or h <= 0:
            self.close()
            raise InputError(f"{src.container} file has no decodable video stream", "no_video_stream")
        if w * h > limits.max_pixels:
            self.close()
            raise InputError(f"video frames are {w}x{h} = {w * h / 1e6:.0f} megapixels, over the "
                             f"{limits.max_pixels / 1e6:.0f} MP limit", "decompression_bomb")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.info = VideoInfo(src.container, "unknown", w, h, fps, n / fps if fps > 0 else 0.0, n or None, 0, "opencv")
        self.decode_error = None
        self.start = 0.0

    def _decoded(self) -> Iterator[tuple[float, Any]]:
        import cv2

        k = 0
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                break
            t = k / self.info.fps if self.info.fps > 0 else float(self.cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            k += 1
            yield t, bgr

    def frames(self, fps: float, max_seconds: float | None = None) -> Iterator[SampledFrame]:
        import cv2

        return _sampler(self._decoded(), lambda b: np.ascontiguousarray(b[..., ::-1]),
                        lambda b: cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), fps, 0.0, max_seconds, 0)

    def close(self) -> None:
        try:
            self.cap.release()
        except Exception:  # noqa: BLE001
            pass
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None


def is_video(source: str | os.PathLike | bytes) -> bool:
    """Cheap check: do the first bytes of ``source`` look like a video container?"""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return sniff_video(bytes(source[:512])) is not None
    try:
        # Only regular files are sniffed: opening a FIFO or a device would
        # block (or read forever); load_sample refuses those with one line.
        if not stat.S_ISREG(os.stat(source).st_mode):
            return False
        with open(source, "rb") as fh:
            return sniff_video(fh.read(512)) is not None
    except (OSError, ValueError):
        return False
