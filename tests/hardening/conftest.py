"""Fixtures for the hardening tests: a test-only slow detector registered for one test."""

from __future__ import annotations

import threading

import pytest

from verity.core import registry
from verity.core.registry import Detector


@pytest.fixture
def slow_detector():
    """Register ``test_slow``: its ``run`` blocks until the test sets ``release`` (or 30 s pass).

    Yields the class; it is removed from the registry afterwards so that the contract test over the
    shipped detectors never sees it.
    """
    registry._discover()
    release = threading.Event()
    started = threading.Event()

    class SlowDetector(Detector):
        name = "test_slow"
        kind = "noise"
        labels = ("edited",)
        default = False
        calls = 0

        def run(self, sample):
            type(self).calls += 1
            started.set()
            release.wait(30)
            return self.finding(0.8, ["slow but done"])

    SlowDetector.release = release
    SlowDetector.started = started
    registry.register_detector(SlowDetector)
    try:
        yield SlowDetector
    finally:
        release.set()
        registry._REGISTRY.pop("test_slow", None)
