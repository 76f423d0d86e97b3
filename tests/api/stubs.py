"""Small deterministic detectors and a pipeline made of them, so API tests do not depend on which
real detectors exist (they are not registered: nothing leaks into other tests)."""

from __future__ import annotations

import io

import numpy as np

from verity.core.fusion import FusionModel
from verity.core.registry import Detector
from verity.core.types import Face
from verity.pipeline import Pipeline


class BrightnessDetector(Detector):
    """Score = mean brightness; heatmap = brightness on a coarse grid (depends on every pixel)."""

    name = "stub_brightness"
    kind = "compression"
    labels = ("edited",)

    def run(self, sample):
        g = sample.gray
        h, w = g.shape
        gh, gw = max(1, h // 8), max(1, w // 8)
        heat = g[: gh * 8, : gw * 8].reshape(gh, 8, gw, 8).mean(axis=(1, 3)) / 255.0
        score = float(g.mean() / 255.0)
        return self.finding(
            score,
            [f"mean brightness {score:.4f} over {w}x{h} pixels"],
            heatmap=heat,
            details={"mean": score, "width": w, "height": h},
        )


class EdgeDetector(Detector):
    """A second heatmap (gradient magnitude), and an abstention on tiny images."""

    name = "stub_edges"
    kind = "noise"
    labels = ("edited",)

    def run(self, sample):
        if min(sample.width, sample.height) < 16:
            return self.abstain("image smaller than 16 pixels")
        g = sample.gray
        gy, gx = np.gradient(g)
        mag = np.hypot(gx, gy)
        heat = mag / max(1e-6, float(mag.max()))
        return self.finding(0.4, ["edges are evenly spread"], heatmap=heat[::4, ::4])


class FaceStub(Detector):
    """One fixed face box in the top-left quarter of the displayed image."""

    name = "stub_faces"
    kind = "faces"
    labels = ("face_manipulated",)

    def run(self, sample):
        h, w = sample.display_pixels().shape[:2]
        box = (0.1 * w, 0.1 * h, 0.4 * w, 0.45 * h)
        face = Face(box=box, landmarks=[(0.2 * w, 0.2 * h)], detection_score=0.97, manipulation_score=0.72,
                    evidence=["blending boundary around the jaw"])
        return self.finding(0.72, ["1 face; its boundary shows blending"], faces=[face],
                            details={"faces": 1})


class MetadataStub(Detector):
    name = "stub_exif"
    kind = "metadata"
    labels = ("ai_generated", "edited")

    def run(self, sample):
        return self.finding(0.3, ["camera make and model present"],
                            details={"format": sample.format, "exif": {"Make": "Canon", "Model": "EOS 5D"}})


class ProvenanceStub(Detector):
    name = "stub_c2pa"
    kind = "provenance"
    labels = ("ai_generated",)

    def run(self, sample):
        return self.abstain("no Content Credentials (C2PA manifest) in the file", present=False)


STUB_DETECTORS = (BrightnessDetector, EdgeDetector, FaceStub, MetadataStub, ProvenanceStub)


class StubPipeline(Pipeline):
    """The real :class:`Pipeline` (fusion, explanation, verdict) over the stub detectors."""

    def __init__(self, detectors=STUB_DETECTORS):  # noqa: D107 - skips registry lookups on purpose
        self.skipped = {}
        self.detectors = [cls() for cls in detectors]
        self.fusion = FusionModel()
        self.detector_timeout = None  # the stubs are instant; no watchdog threads
        self._abandoned = {}


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    from verity.lab.edits import encode_jpeg

    return encode_jpeg(pixels, quality)


def solid(value: int, shape=(48, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)
