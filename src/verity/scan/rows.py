"""One file in, one result row out (the schema is documented in ``docs/scan.md``).

:func:`scan_file` never raises: an unreadable file or a failing pipeline becomes a row with
``status == "error"``, an ``error_code`` and a one-line ``error``. Every engine (in-process, process
pool, Ray) calls the same :class:`Scanner`, so their rows are identical apart from the timing columns.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from verity.core.types import CLASSES

#: Columns of a result row, in output order.
COLUMNS = (
    "path", "status", "sha256", "verdict", "confidence",
    *(f"p_{c}" for c in CLASSES),
    "evidence", "explanation", "scores", "n_faces", "format", "width", "height", "bytes",
    "detector_errors", "error_code", "error", "seconds", "timings",
)
#: Columns that depend on the machine's speed; everything else is identical across engines.
TIMING_COLUMNS = ("seconds", "timings")
#: How many evidence lines a row keeps.
TOP_EVIDENCE = 3

#: Environment variables that cap the intra-op thread pools of BLAS, OpenMP and verity's onnxruntime sessions.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VERITY_THREADS")


def limit_threads_env(n: int = 1) -> None:
    """Set the thread variables to ``n`` where the user has not set them (read by child processes and
    by libraries not yet imported)."""
    for v in THREAD_ENV:
        os.environ.setdefault(v, str(n))


def limit_threads(n: int = 1) -> None:
    """Cap every intra-op thread pool of this process at ``n``: OpenCV, BLAS/OpenMP already loaded
    (threadpoolctl, when installed), torch when already imported, and the environment for onnxruntime
    sessions created later (:func:`verity.models.runtime.get_session` uses 1 thread by default)."""
    limit_threads_env(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except Exception:  # pragma: no cover - cv2 is a core dependency
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:  # never import torch just for this
        try:
            torch.set_num_threads(n)
        except Exception:
            pass


@dataclass(frozen=True)
class ScanConfig:
    """What every worker needs to build its :class:`Scanner` (picklable, sent to workers)."""

    detectors: tuple[str, ...] | None = None
    max_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 100_000_000
    threads: int = 1


def empty_row(path: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(path=path, status="error", evidence=[], scores={}, detector_errors=[], timings={})
    return row


def error_row(path: str, code: str, message: str, seconds: float = 0.0) -> dict[str, Any]:
    row = empty_row(path)
    row.update(error_code=code, error=message, seconds=round(seconds, 4))
    return row


def _evidence(findings: list[dict[str, Any]]) -> list[str]:
    shown = sorted((f for f in findings if f["score"] is not None), key=lambda f: -abs(f["score"] - 0.5))
    out = []
    for f in shown[:TOP_EVIDENCE]:
        first = f["evidence"][0] if f["evidence"] else ""
        out.append(f"{f['detector']} {f['score']:.2f}: {first}".rstrip(": "))
    return out


class Scanner:
    """The analysis one worker runs: one :class:`~verity.pipeline.Pipeline` (one model load) reused
    for every file."""

    def __init__(self, config: ScanConfig | None = None):
        from verity.core.io import Limits
        from verity.pipeline import Pipeline

        self.config = config or ScanConfig()
        limit_threads(self.config.threads)
        self.limits = Limits(max_bytes=self.config.max_bytes, max_pixels=self.config.max_pixels)
        self.pipeline = Pipeline(list(self.config.detectors) if self.config.detectors else None)

    def __call__(self, path: str) -> dict[str, Any]:
        return scan_file(self.pipeline, path, self.limits)


def scan_file(pipeline, path: str, limits) -> dict[str, Any]:
    """Analyse one file into a row; never raises (except KeyboardInterrupt/SystemExit)."""
    from verity.core.errors import InputError
    from verity.core.io import decode, read_bytes

    t0, c0 = time.perf_counter(), time.process_time()
    row = empty_row(path)
    try:
        data = read_bytes(path, limits)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        row["bytes"] = len(data)
        sample = decode(data, path=path, limits=limits)
        v = pipeline.analyze(sample)
        d = v.to_dict()
    except InputError as e:
        row.update(error_code=e.code, error=str(e).splitlines()[0] if str(e) else e.code)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - one bad file must never stop a scan
        msg = str(e).splitlines()[0] if str(e) else ""
        row.update(error_code="internal", error=f"{type(e).__name__}: {msg}".rstrip(": "))
    else:
        img = d["image"]
        row.update(
            status="ok",
            verdict=d["verdict"],
            confidence=d["confidence"],
            **{f"p_{c}": d["probabilities"].get(c) for c in CLASSES},
            evidence=_evidence(d["findings"]),
            explanation=d["explanation"],
            scores={f["detector"]: f["score"] for f in d["findings"]},
            n_faces=len(d["faces"]),
            format=img.get("format"),
            width=img.get("width"),
            height=img.get("height"),
            detector_errors=list(d["errors"]),
            timings={k: float(t) for k, t in d["timings"].items()},
        )
    row["seconds"] = round(time.perf_counter() - t0, 4)
    # CPU time of the worker for this file: unlike the wall time, not inflated by other processes
    row["timings"] = {**(row["timings"] or {}), "cpu": round(time.process_time() - c0, 4)}
    return _finite(row)


def _finite(x: Any) -> Any:
    """NaN and infinities become None (JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def comparable(row: dict[str, Any], ndigits: int | None = None) -> dict[str, Any]:
    """The row without its timing columns (what two engines must agree on)."""
    out = {k: v for k, v in row.items() if k not in TIMING_COLUMNS}
    if ndigits is not None:
        out = {k: (round(v, ndigits) if isinstance(v, float) else v) for k, v in out.items()}
    return out


def scanner_names(detectors: Sequence[str] | None) -> list[str]:
    """Validate detector names in the driver before any worker starts (KeyError with a message)."""
    from verity.core.registry import get_detector_class, list_detectors

    names = list(detectors) if detectors else list_detectors(default_only=True)
    for n in names:
        get_detector_class(n)
    return names
