"""The data that flows through verity: a loaded :class:`Sample`, the :class:`Finding` each detector
returns, and the :class:`Verdict` that fusion makes of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

#: The four classes that carry a probability, in a fixed order.
CLASSES: tuple[str, ...] = ("authentic", "ai_generated", "edited", "face_manipulated")
#: Every verdict verity can give: a class, or ``inconclusive`` when the evidence is weak.
VERDICTS: tuple[str, ...] = CLASSES + ("inconclusive",)
#: Groups that findings are shown under (report side panel, web page).
KINDS: tuple[str, ...] = (
    "provenance",
    "metadata",
    "compression",
    "noise",
    "copy-move",
    "frequency",
    "learned",
    "faces",
    "index",
    "temporal",
)


@dataclass
class Sample:
    """One decoded image and everything read from its container.

    Attributes
    ----------
    data : bytes
        The file exactly as read.
    pixels : ndarray, shape (H, W, 3), uint8
        RGB pixels in *stored* orientation (EXIF orientation not applied): forensic maps are computed
        on these so that they line up with the compressed blocks.
    format : str
        Sniffed container format: ``JPEG``, ``PNG``, ``WEBP``, ``TIFF``, ``BMP`` or ``GIF``.
    mode : str
        The PIL mode of the stored image before conversion (``RGB``, ``L``, ``CMYK``, ``I;16``...).
    path : str or None
        Where it came from, for messages; ``None`` for uploaded bytes.
    alpha : ndarray, shape (H, W), uint8, or None
        The alpha channel when the image had one (pixels are then the colour channels unblended).
    orientation : int
        EXIF orientation tag (1 when absent).
    info : dict
        The container's metadata as Pillow reads it (text chunks, ``exif`` bytes, ``icc_profile``,
        ``xmp``, ``dpi``...). Values are left as Pillow gives them.
    quantization : dict of int to list of int, or None
        JPEG quantization tables (table id to 64 values in natural row-major order, as Pillow
        returns them), JPEG only.
    bit_depth : int
        Bits per channel of the stored image (16 for 16-bit PNG/TIFF, else 8).
    frames : int
        Number of frames (animated GIF/WebP, multi-page TIFF); only the first is analysed.
    """

    data: bytes
    pixels: np.ndarray
    format: str
    mode: str = "RGB"
    path: str | None = None
    alpha: np.ndarray | None = None
    orientation: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    quantization: dict[int, list[int]] | None = None
    bit_depth: int = 8
    frames: int = 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def name(self) -> str:
        return self.path or "<bytes>"

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def gray(self) -> np.ndarray:
        """Luma (ITU-R BT.601) as float32 in [0, 255], shape (H, W)."""
        p = self.pixels
        if p.ndim == 2:
            return p.astype(np.float32)
        try:  # OpenCV does the weighted sum in one pass: about 4x faster at 12 MP than numpy
            import cv2

            return cv2.cvtColor(p.astype(np.float32), cv2.COLOR_RGB2GRAY)
        except ImportError:  # pragma: no cover - opencv is a core dependency
            q = p.astype(np.float32)
            return 0.299 * q[..., 0] + 0.587 * q[..., 1] + 0.114 * q[..., 2]

    @cached_property
    def exif(self) -> dict[int, Any]:
        """EXIF tags (IFD0 merged with the Exif sub-IFD), tag id to value; empty when absent or broken."""
        from verity.core.io import read_exif

        return read_exif(self)

    def display_pixels(self) -> np.ndarray:
        """Pixels with EXIF orientation applied, for showing to a person."""
        from verity.core.io import apply_orientation

        return apply_orientation(self.pixels, self.orientation)


@dataclass
class Finding:
    """What one detector concluded about one sample.

    Attributes
    ----------
    detector : str
        The registered name of the detector.
    score : float or None
        In [0, 1]: the detector's belief that the image is *not* authentic in the way named by
        ``labels`` (0.5 means no opinion either way, below 0.5 is evidence of authenticity).
        ``None`` when the detector abstains (nothing to measure, wrong format, too small...).
    labels : list of str
        The classes from :data:`CLASSES` that the score speaks for, e.g. ``["edited"]``.
    evidence : list of str
        Plain sentences a person can check, strongest first.
    heatmap : ndarray, shape (h, w), float32 in [0, 1], or None
        Where in the stored pixels the detector sees the problem. Any resolution with the image's
        aspect ratio; it is resized to the image for display.
    kind : str
        One of :data:`KINDS`, for grouping in reports.
    details : dict
        Extra JSON-serializable numbers for experts and for fusion training.
    """

    detector: str
    score: float | None
    labels: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    heatmap: np.ndarray | None = None
    kind: str = "metadata"
    details: dict[str, Any] = field(default_factory=dict)
    #: Faces the detector found; the pipeline gathers them into ``Verdict.faces``.
    faces: list["Face"] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.score is not None:
            s = float(self.score)
            if not np.isfinite(s):
                raise ValueError(f"{self.detector}: score must be finite, got {self.score!r}")
            self.score = min(1.0, max(0.0, s))
        bad = [c for c in self.labels if c not in CLASSES]
        if bad:
            raise ValueError(f"{self.detector}: unknown labels {bad}")
        if self.heatmap is not None:
            h = np.asarray(self.heatmap, dtype=np.float32)
            if h.ndim != 2:
                raise ValueError(f"{self.detector}: heatmap must be 2-D, got shape {h.shape}")
            self.heatmap = np.clip(np.nan_to_num(h), 0.0, 1.0)

    @property
    def abstained(self) -> bool:
        return self.score is None


@dataclass
class Face:
    """A face found in the image (box and landmarks in display orientation pixels)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    landmarks: list[tuple[float, float]] = field(default_factory=list)
    detection_score: float = 0.0
    manipulation_score: float | None = None
    evidence: list[str] = field(default_factory=list)
    heatmap: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "detection_score": round(float(self.detection_score), 4),
            "manipulation_score": None
            if self.manipulation_score is None
            else round(float(self.manipulation_score), 4),
            "evidence": list(self.evidence),
        }


@dataclass
class Segment:
    """A stretch of a video that looks suspicious (``Verdict.segments``, most suspicious first).

    Attributes
    ----------
    start, end : float
        Seconds from the start of the video.
    score : float
        Peak suspicion in [0, 1] inside the segment.
    label : str
        The class from :data:`CLASSES` the suspicion speaks for.
    reason : str
        One sentence saying which signal rose and by how much.
    sources : list of str
        The series (detector names, ``track N``) that flagged it.
    """

    start: float
    end: float
    score: float
    label: str
    reason: str = ""
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(float(self.start), 3),
            "end": round(float(self.end), 3),
            "score": round(float(self.score), 4),
            "label": self.label,
            "reason": self.reason,
            "sources": list(self.sources),
        }


@dataclass
class Track:
    """One face followed across the sampled frames of a video (``Verdict.tracks``).

    Attributes
    ----------
    id : int
        1-based, in order of first appearance.
    times : list of float
        Seconds of the sampled frames the face was found in.
    boxes : list of (x0, y0, x1, y1)
        Face box in each of those frames (display pixels).
    scores : list of float or None
        Face-manipulation score in each frame (``None`` when the face was too small to score).
    score : float or None
        The track's score: the median of its frame scores, or the median over its most suspicious stretch
        of at least 3 consecutive samples all scoring 0.5 or more when that is higher; ``None`` when no
        frame was scored.
    temporal : dict
        Temporal measurements of the track (flicker ratio, landmark jitter, blinks), see docs/schema.md.
    evidence : list of str
    """

    id: int
    times: list[float] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    score: float | None = None
    temporal: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.times[0] if self.times else 0.0

    @property
    def end(self) -> float:
        return self.times[-1] if self.times else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "start": round(float(self.start), 3),
            "end": round(float(self.end), 3),
            "score": None if self.score is None else round(float(self.score), 4),
            "times": [round(float(t), 3) for t in self.times],
            "boxes": [[round(float(v), 1) for v in b] for b in self.boxes],
            "scores": [None if s is None else round(float(s), 4) for s in self.scores],
            "temporal": _jsonable(self.temporal),
            "evidence": list(self.evidence),
        }


@dataclass
class Verdict:
    """The result of analysing one sample (an image, or a whole video)."""

    verdict: str
    probabilities: dict[str, float]
    findings: list[Finding]
    path: str | None = None
    faces: list[Face] = field(default_factory=list)
    explanation: str = ""
    image: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: ``"fusion"``, or ``"provenance"`` when signed Content Credentials decided the verdict.
    decided_by: str = "fusion"
    #: The detectors' fused probabilities before the provenance rule (``None``: same as ``probabilities``).
    fused_probabilities: dict[str, float] | None = None
    #: The provenance rule that applied (claim, likelihood ratios or decided class), or ``None``.
    provenance: dict[str, Any] | None = None
    #: class -> the 90 % interval of its probability from the calibration data
    #: (:meth:`verity.core.fusion.FusionModel.interval`); classes without calibration data are absent.
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: detector -> ``{"role", "contribution"}`` (:func:`verity.core.fusion.evidence_roles`).
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What a reader must know about the analysis itself (e.g. only frame 1 of an animation was analysed).
    warnings: list[str] = field(default_factory=list)
    #: Videos only: suspicious stretches, most suspicious first.
    segments: list[Segment] = field(default_factory=list)
    #: Videos only: faces tracked across the sampled frames.
    tracks: list[Track] = field(default_factory=list)
    #: Videos only: duration, frame rate, codec, the sampled timeline (see docs/schema.md).
    video: dict[str, Any] | None = None
    #: AI-generated verdicts only: the generator lineage the semantic branch names (``lineage``,
    #: ``probability``, ``description``, ``probabilities``, ``sibling_precision``, ``named``), or ``None``.
    generator_family: dict[str, Any] | None = None

    @property
    def confidence(self) -> float:
        return max(self.probabilities.values())

    def finding(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.detector == name), None)

    def family_sentence(self) -> str | None:
        """"Generator: looks like ... (p %)" for :attr:`generator_family`, or None."""
        fam = self.generator_family
        if not fam or not fam.get("description"):
            return None
        return (f"Generator: looks like {fam['description']} ({float(fam.get('probability', 0)):.0%}; "
                "a resemblance of traces, not an attribution).")

    def to_dict(self, heatmap_paths: dict[str, str] | None = None) -> dict[str, Any]:
        """The JSON document described in ``docs/schema.md``."""
        from verity import SCHEMA_VERSION

        heatmap_paths = heatmap_paths or {}

        def heat(f: Finding) -> dict[str, Any] | None:
            if f.heatmap is None:
                return None
            return {
                "shape": [int(f.heatmap.shape[0]), int(f.heatmap.shape[1])],
                "max": round(float(f.heatmap.max()), 4),
                "path": heatmap_paths.get(f.detector),
            }

        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "verdict": self.verdict,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "intervals": {
                k: {
                    "level": round(float(iv.get("level", 0.9)), 3),
                    "low": round(float(iv["low"]), 4),
                    "high": round(float(iv["high"]), 4),
                    "observed": None if iv.get("observed") is None else round(float(iv["observed"]), 4),
                    "bin": [round(float(x), 4) for x in iv.get("bin") or []],
                    "examples": int(iv.get("examples", 0)),
                    "images": round(float(iv.get("images", 0)), 2),
                }
                for k, iv in self.intervals.items()
            },
            "explanation": self.explanation,
            "generator_family": _jsonable(self.generator_family) if self.generator_family else None,
            "decided_by": self.decided_by,
            "fused_probabilities": {k: round(float(v), 6) for k, v in (self.fused_probabilities or self.probabilities).items()},
            "provenance": _jsonable(self.provenance) if self.provenance else None,
            "image": self.image,
            "findings": [
                {
                    "detector": f.detector,
                    "kind": f.kind,
                    "score": None if f.score is None else round(float(f.score), 4),
                    "labels": list(f.labels),
                    "evidence": list(f.evidence),
                    "heatmap": heat(f),
                    "details": _jsonable(f.details),
                    **({"role": self.roles[f.detector]["role"],
                        "contribution": dict(self.roles[f.detector].get("contribution") or {})}
                       if f.detector in self.roles else {}),
                }
                for f in self.findings
            ],
            "faces": [face.to_dict() for face in self.faces],
            "segments": [seg.to_dict() for seg in self.segments],
            "tracks": [t.to_dict() for t in self.tracks],
            **({"video": _jsonable(self.video)} if self.video is not None else {}),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to plain JSON types."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, bytes):
        return x.hex()
    return x
