"""Response shapes for the OpenAPI document (the routes return plain JSON built by
:meth:`verity.core.types.Verdict.to_dict`; these models describe it, with examples)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["authentic", "ai_generated", "edited", "face_manipulated", "inconclusive"]
Kind = Literal["provenance", "metadata", "compression", "noise", "copy-move", "frequency", "learned", "faces", "index",
               "temporal"]

_ID = "3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `too_large`, `not_an_image`.")
    message: str = Field(description="One line for people.")


class ErrorResponse(BaseModel):
    error: ErrorDetail

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_an_image", "message":
                           "not a supported image (content is not JPEG, PNG, WebP, TIFF, BMP or GIF)"}}]}
    )


class HeatmapRef(BaseModel):
    shape: list[int] = Field(description="[rows, cols] of the map, stored-pixel orientation.")
    max: float
    path: str | None = Field(description="URL of the PNG overlay (display orientation and size).")


class FindingOut(BaseModel):
    detector: str
    kind: str
    score: float | None = Field(description="In [0, 1]; 0.5 no opinion; null when the detector abstained.")
    labels: list[str]
    evidence: list[str]
    heatmap: HeatmapRef | None
    details: dict[str, Any]
    role: str | None = Field(None, description="What the finding did to the verdict: `decisive`, `outweighed`, "
                             "`minor` or `abstained` (docs/schema.md).")
    contribution: dict[str, float] | None = Field(None, description="Class to the finding's additive logit.")


class FaceOut(BaseModel):
    box: list[float] = Field(description="[x0, y0, x1, y1] in pixels of the displayed (EXIF-oriented) image.")
    landmarks: list[list[float]]
    detection_score: float
    manipulation_score: float | None
    evidence: list[str]


class IntervalOut(BaseModel):
    level: float = Field(description="0.9")
    low: float
    high: float
    observed: float | None = Field(description="Share of that class among calibration examples in the same bin.")
    bin: list[float] = Field(description="[lo, hi] probability band the share was measured in.")
    examples: int = Field(description="Calibration examples in the bin.")
    images: float = Field(description="Calibration images in the bin (the views of one image count once).")


class AnalysisUrls(BaseModel):
    self: str
    image: str = Field(description="Display JPEG (oriented, longest side at most 1600 px).")
    report: str = Field(description="Self-contained HTML report (download).")
    heatmaps: dict[str, str] = Field(description="Detector name to PNG overlay URL.")
    faces: list[str] = Field(description="PNG crop URL of each face, in the order of `faces`.")
    timeline: str | None = Field(None, description="Videos only: SVG of the scores over time with thumbnails.")


class SegmentOut(BaseModel):
    start: float = Field(description="Seconds from the start of the video.")
    end: float
    score: float
    label: str
    reason: str
    sources: list[str]


class TrackOut(BaseModel):
    id: int
    start: float
    end: float
    score: float | None = Field(description="Median face-manipulation score over the track's frames.")
    times: list[float]
    boxes: list[list[float]]
    scores: list[float | None]
    temporal: dict[str, Any] = Field(description="Flicker ratio, landmark jitter, blinks (docs/schema.md).")
    evidence: list[str]


_EXAMPLE = {
    "schema_version": "1.0",
    "path": None,
    "verdict": "edited",
    "confidence": 0.8123,
    "probabilities": {"authentic": 0.1011, "ai_generated": 0.0502, "edited": 0.8123, "face_manipulated": 0.0364},
    "explanation": "The image looks edited (parts of it were altered) (edited 81%). The region at "
    "x=120..310, y=40..200 was compressed once while the rest was compressed twice.",
    "image": {"format": "JPEG", "width": 512, "height": 512, "mode": "RGB", "bit_depth": 8, "has_alpha": False,
              "orientation": 1, "frames": 1, "bytes": 48211, "sha256": "9b1c" + "0" * 60},
    "findings": [
        {"detector": "double_jpeg", "kind": "compression", "score": 0.91, "labels": ["edited"],
         "evidence": ["The region at x=120..310, y=40..200 was compressed once while the rest was compressed twice."],
         "heatmap": {"shape": [64, 64], "max": 0.97, "path": f"/v1/analyses/{_ID}/heatmaps/double_jpeg.png"},
         "details": {"q1_estimate": 60, "q2": 92}},
    ],
    "faces": [],
    "errors": [],
    "timings": {"double_jpeg": 0.21, "total": 0.84},
    "id": _ID,
    "created_at": "2025-01-31T12:00:00.000Z",
    "filename": "photo.jpg",
    "urls": {"self": f"/v1/analyses/{_ID}", "image": f"/v1/analyses/{_ID}/image",
             "report": f"/v1/analyses/{_ID}/report.html",
             "heatmaps": {"double_jpeg": f"/v1/analyses/{_ID}/heatmaps/double_jpeg.png"}, "faces": []},
}


class Analysis(BaseModel):
    """The same object as ``verity analyze --json`` (see docs/schema.md) plus ``id``, ``created_at``,
    ``filename`` and ``urls``."""

    schema_version: str
    path: str | None
    verdict: Verdict
    confidence: float
    probabilities: dict[str, float]
    intervals: dict[str, IntervalOut] = Field(default_factory=dict, description=(
        "Per class with calibration data: the 90 % interval of its probability (docs/schema.md)."))
    explanation: str
    generator_family: dict[str, Any] | None = Field(
        None, description="AI-generated verdicts: the generator lineage named by the semantic branch "
        "(lineage, probability, description, probabilities; docs/schema.md).")
    decided_by: Literal["fusion", "provenance"] = Field(
        "fusion", description="'provenance' when signed Content Credentials decided the verdict (docs/schema.md).")
    fused_probabilities: dict[str, float] | None = Field(
        None, description="The detectors' fused probabilities before the provenance rule.")
    provenance: dict[str, Any] | None = Field(None, description="The provenance rule that applied, if any.")
    image: dict[str, Any]
    findings: list[FindingOut]
    faces: list[FaceOut]
    segments: list[SegmentOut] = Field(default_factory=list, description="Videos: suspicious stretches, most suspicious first.")
    tracks: list[TrackOut] = Field(default_factory=list, description="Videos: faces followed across frames.")
    video: dict[str, Any] | None = Field(None, description="Videos only: container, codec, duration, sampling, timeline.")
    errors: list[str]
    warnings: list[str] = Field(default_factory=list, description="E.g. only frame 1 of an animation was analysed.")
    timings: dict[str, float]
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    created_at: str
    filename: str | None = Field(description="The uploaded file's name, as a label only.")
    urls: AnalysisUrls

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})


class SummaryUrls(BaseModel):
    self: str
    image: str
    thumbnail: str = Field(description="Small JPEG (longest side 160 px) for lists.")


class AnalysisSummary(BaseModel):
    id: str
    created_at: str
    filename: str | None
    verdict: Verdict
    confidence: float
    probabilities: dict[str, float]
    sha256: str
    format: str
    bytes: int
    width: int | None
    height: int | None
    urls: SummaryUrls


class AnalysisList(BaseModel):
    items: list[AnalysisSummary]
    total: int = Field(description="Analyses stored in all.")
    limit: int
    offset: int
    next: str | None = Field(description="URL of the next page, null on the last one.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": _ID, "created_at": "2025-01-31T12:00:00.000Z", "filename": "photo.jpg",
                   "verdict": "edited", "confidence": 0.8123, "probabilities": _EXAMPLE["probabilities"],
                   "sha256": "9b1c" + "0" * 60, "format": "JPEG", "bytes": 48211, "width": 512, "height": 512,
                   "urls": {"self": f"/v1/analyses/{_ID}", "image": f"/v1/analyses/{_ID}/image",
                            "thumbnail": f"/v1/analyses/{_ID}/thumbnail.jpg"}}],
        "total": 1, "limit": 20, "offset": 0, "next": None}]})


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    schema_version: str
    detectors: list[str] = Field(description="Detectors the analysis pipeline runs.")
    queue: int = Field(description="Analyses waiting or running.")
    max_upload_bytes: int = Field(description="Largest upload accepted.")
    optional: dict[str, bool] = Field(description="Whether the optional modules (index, c2pa) are installed.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "ok", "version": "0.1.0", "schema_version": "1.0", "detectors": ["double_jpeg", "ela"],
        "queue": 0, "max_upload_bytes": 104857600, "optional": {"index": True, "c2pa": True}}]})


class VerifyResult(BaseModel):
    """Content Credentials (C2PA) read and validated from the upload, plus the provenance findings."""

    sha256: str
    format: str
    c2pa: dict[str, Any] | None = Field(description="What verity.provenance.c2pa reported; null when not installed.")
    findings: list[FindingOut] = Field(description="Findings of the provenance detectors on this file.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sha256": "9b1c" + "0" * 60, "format": "JPEG",
        "c2pa": {"present": True, "valid": True, "claim_generator": "Adobe Photoshop 25.0", "signer": "Adobe Inc."},
        "findings": []}]})


class IndexSearchResult(BaseModel):
    """What the local similarity index knows about the upload (``verity index search``)."""

    sha256: str
    matches: list[dict[str, Any]] = Field(
        description="Indexed images: the exact copy first, then near duplicates by PDQ distance, then similar "
        "images by embedding similarity (`sha256`, `kind`, `pdq_distance`, `similarity`, `label`, `source`...).")
    faces: list[dict[str, Any]] = Field(default_factory=list, description="Indexed faces close to the upload's faces.")
    pdq_quality: int | None = Field(None, description="PDQ hash quality of the upload (below 50: flat image).")
    query_faces: int | None = Field(None, description="Faces found in the upload (with `faces=true`).")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sha256": "9b1c" + "0" * 60, "pdq_quality": 100, "query_faces": 0, "faces": [],
        "matches": [{"sha256": "4f0e" + "0" * 60, "kind": "near_duplicate", "pdq_distance": 6, "similarity": 0.97,
                     "label": "known_fake", "fake_class": "edited", "source": "newsroom archive",
                     "path": "fakes/harbour.jpg", "width": 1024, "height": 768, "n_faces": 0}]}]})
