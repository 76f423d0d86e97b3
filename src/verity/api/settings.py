"""Server settings: where analyses are kept, how large an upload may be, who may call.

Everything has a safe default: listen on loopback, 100 MB uploads, no token, CORS off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Default largest upload, in bytes (matches :class:`verity.core.io.Limits`).
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
#: Bytes of multipart framing allowed on top of the largest upload.
MULTIPART_SLACK = 64 * 1024


def default_data_dir() -> Path:
    """``$VERITY_DATA_DIR``, else ``$XDG_DATA_HOME/verity``, else ``~/.local/share/verity``."""
    env = os.environ.get("VERITY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "verity"


@dataclass
class Settings:
    """Configuration of one API application.

    Attributes
    ----------
    data_dir : Path
        SQLite database, uploads, heatmap arrays and the render cache live here.
    max_upload_bytes : int
        Largest upload accepted; larger requests get 413 before their body is read.
    max_pixels : int
        Largest width x height decoded (decompression-bomb guard).
    token : str or None
        When set, every route but ``/healthz`` needs ``Authorization: Bearer <token>`` (or HTTP
        Basic with the token as password, so a browser can open the page). Default:
        ``$VERITY_API_TOKEN``.
    cors_origins : sequence of str
        Origins allowed to call the API from another site; empty (the default) disables CORS.
    workers : int
        Analyses run at the same time (threads); others wait in a queue.
    max_queue : int
        Analyses waiting or running before new ones get 503 ``busy``.
    detectors : sequence of str or None
        Detector names for the default pipeline (None: every default detector).
    pipeline_factory : callable or None
        Builds the object whose ``analyze(sample)`` returns a :class:`~verity.core.types.Verdict`;
        called once per worker thread. Default: ``verity.pipeline.Pipeline(detectors)``.
    video_factory : callable, optional
        Builds the object whose ``analyze(data, name=..., limits=...)`` returns a
        :class:`~verity.video.analyze.VideoResult` for video uploads; called once per worker thread.
        Default: ``verity.video.analyze.VideoAnalyzer()`` (2 frames per second).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_pixels: int = 100_000_000
    token: str | None = field(default_factory=lambda: os.environ.get("VERITY_API_TOKEN") or None)
    cors_origins: Sequence[str] = ()
    workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    max_queue: int = 32
    detectors: Sequence[str] | None = None
    pipeline_factory: Callable[[], Any] | None = None
    video_factory: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.max_upload_bytes <= 0:
            raise ValueError("max_upload_bytes must be positive")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.token is not None and not self.token.strip():
            self.token = None

    @property
    def max_body_bytes(self) -> int:
        """Largest request body read: the upload limit plus multipart framing."""
        return self.max_upload_bytes + MULTIPART_SLACK

    def limits(self) -> Any:
        from verity.core.io import Limits

        return Limits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)

    def make_pipeline(self) -> Any:
        if self.pipeline_factory is not None:
            return self.pipeline_factory()
        from verity.pipeline import Pipeline

        return Pipeline(list(self.detectors) if self.detectors else None)

    def make_video_analyzer(self) -> Any:
        if self.video_factory is not None:
            return self.video_factory()
        from verity.video.analyze import VideoAnalyzer

        return VideoAnalyzer()
