"""Concurrent uploads never mix results: each client gets the analysis of its own bytes."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tests.api.stubs import STUB_DETECTORS, BrightnessDetector, StubPipeline, png_bytes


class _SlowBrightness(BrightnessDetector):
    """Sleeps a little so that analyses overlap in the worker threads."""

    def run(self, sample):
        time.sleep(0.02)
        return super().run(sample)


def _slow_pipeline():
    return StubPipeline((_SlowBrightness,) + STUB_DETECTORS[1:])


def test_concurrent_uploads_get_their_own_results(make_client):
    c = make_client(pipeline_factory=_slow_pipeline, workers=3)
    rng = np.random.default_rng(7)
    images = []
    for i in range(24):
        level = 10 + 10 * i  # a distinct brightness per image
        px = np.clip(rng.normal(level, 3, (40 + i, 56, 3)), 0, 255).astype(np.uint8)
        images.append(png_bytes(px))

    def post(i):
        r = c.post("/v1/analyses", files={"file": (f"img{i}.png", images[i], "image/png")})
        return i, r.status_code, r.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(len(images))))

    ids = set()
    for i, status, doc in results:
        assert status == 201, doc
        assert doc["image"]["sha256"] == hashlib.sha256(images[i]).hexdigest(), i
        assert doc["filename"] == f"img{i}.png" and doc["image"]["height"] == 40 + i
        bright = next(f for f in doc["findings"] if f["detector"] == "stub_brightness")
        assert abs(bright["score"] - (10 + 10 * i) / 255) < 0.01, i
        ids.add(doc["id"])
        again = c.get(doc["urls"]["self"]).json()
        assert again["image"]["sha256"] == doc["image"]["sha256"] and again["id"] == doc["id"]
    assert len(ids) == len(images)
    assert c.get("/v1/analyses?limit=100").json()["total"] == len(images)


def test_event_loop_stays_responsive_during_analysis(make_client):
    """While a slow analysis runs in the worker pool, /healthz still answers at once."""
    import threading

    gate = threading.Event()

    class _Blocking(BrightnessDetector):
        def run(self, sample):
            gate.wait(10)
            return super().run(sample)

    c = make_client(pipeline_factory=lambda: StubPipeline((_Blocking,)), workers=1)
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(c.post, "/v1/analyses", files={"file": ("a.png", png_bytes(np.zeros((8, 8, 3), np.uint8)), "image/png")})
        deadline = time.time() + 5
        queue = 0
        while time.time() < deadline and queue == 0:
            queue = c.get("/healthz").json()["queue"]
        assert queue == 1  # the analysis is in flight and the server answered anyway
        gate.set()
        assert fut.result(10).status_code == 201
