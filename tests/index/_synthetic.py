"""Deterministic synthetic index records (shared by the store tests and the crash child process)."""

from __future__ import annotations

import hashlib

import numpy as np


def synthetic_record(i: int, label: str = "real", faces: int | None = None):
    from verity.index.store import FaceEntry, ImageRecord

    rng = np.random.default_rng(10_000 + i)
    e = rng.standard_normal(1280).astype(np.float32)
    e /= np.linalg.norm(e)
    n = int(i % 3) if faces is None else faces
    fs = []
    for k in range(n):
        v = rng.standard_normal(512).astype(np.float32)
        fs.append(FaceEntry((10.0 * k, 5.0, 10.0 * k + 8, 20.0), 0.99, v / np.linalg.norm(v)))
    return ImageRecord(
        sha256=hashlib.sha256(f"synthetic-{i}".encode()).hexdigest(), embedding=e,
        pdq=rng.integers(0, 2, 256).astype(np.uint8), pdq_quality=100, label=label, source="synthetic",
        path=f"/synthetic/{i}.png", width=64, height=48, faces=fs,
    )
