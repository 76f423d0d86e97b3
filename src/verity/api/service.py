"""The work behind the routes: analyse uploaded bytes in a worker thread, store the result, and render
heatmaps, face crops and HTML reports from what was stored.

Nothing here knows about HTTP except that it raises :class:`~verity.api.errors.ApiError`.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from verity.api.errors import ApiError, fmt_size, input_error
from verity.api.settings import Settings
from verity.api.store import Record, Store, clean_filename, new_id, now_iso

#: Longest side of the display image, heatmap overlays and the HTML report.
DISPLAY_SIDE = 1600
#: Longest side of a face crop.
FACE_SIDE = 256
#: Longest side of a history thumbnail.
THUMB_SIDE = 160


def urls_for(analysis_id: str, heatmaps: list[str], n_faces: int, video: bool = False) -> dict[str, Any]:
    base = f"/v1/analyses/{analysis_id}"
    out = {
        "self": base,
        "image": f"{base}/image",
        "report": f"{base}/report.html",
        "heatmaps": {name: f"{base}/heatmaps/{name}.png" for name in heatmaps},
        "faces": [f"{base}/faces/{n}.png" for n in range(n_faces)],
    }
    if video:
        out["timeline"] = f"{base}/timeline.svg"
    return out


def public_document(rec: Record) -> dict[str, Any]:
    """The analysis as the API returns it: ``Verdict.to_dict`` plus id, creation time, URLs."""
    doc = dict(rec.result)
    doc["id"] = rec.id
    doc["created_at"] = rec.created_at
    doc["filename"] = rec.filename
    video = doc.get("video") is not None  # a video's faces are described, not cropped (frames are not kept)
    doc["urls"] = urls_for(rec.id, rec.heatmaps, 0 if video else len(doc.get("faces") or []), video)
    return doc


def summary(rec: Record) -> dict[str, Any]:
    """One line of the history."""
    res = rec.result
    return {
        "id": rec.id,
        "created_at": rec.created_at,
        "filename": rec.filename,
        "verdict": rec.verdict,
        "confidence": rec.confidence,
        "probabilities": res.get("probabilities", {}),
        "sha256": rec.sha256,
        "format": rec.format,
        "bytes": rec.bytes,
        "width": (res.get("image") or {}).get("width"),
        "height": (res.get("image") or {}).get("height"),
        "urls": {"self": f"/v1/analyses/{rec.id}", "image": f"/v1/analyses/{rec.id}/image",
                 "thumbnail": f"/v1/analyses/{rec.id}/thumbnail.jpg"},
    }


class Analyzer:
    """Runs analyses on a bounded thread pool, one pipeline per worker thread.

    Parameters
    ----------
    settings : Settings
    store : Store
    """

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.limits = settings.limits()
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._pending_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        # created on first use and again after a shutdown (an app can live through several lifespans)
        with self._pending_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="verity-analyze")
            return self._pool

    def shutdown(self) -> None:
        with self._pending_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        return self._pending

    def _pipeline(self) -> Any:
        pipe = getattr(self._local, "pipeline", None)
        if pipe is None:
            pipe = self._local.pipeline = self.settings.make_pipeline()
        return pipe

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the analysis pool; 503 ``busy`` when the queue is full."""
        with self._pending_lock:
            if self._pending >= self.settings.max_queue:
                raise ApiError(503, "busy", f"{self._pending} analyses are queued; try again shortly",
                               {"Retry-After": "5"})
            self._pending += 1
        try:
            return await asyncio.wrap_future(self._executor().submit(fn, *args))
        finally:
            with self._pending_lock:
                self._pending -= 1

    async def analyze(self, data: bytes, filename: str | None) -> Record:
        return await self.run(self.analyze_sync, data, filename)

    def decode(self, data: bytes, label: str | None = None) -> Any:
        from verity.core.errors import InputError
        from verity.core.io import decode

        if len(data) > self.settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"upload is over the {fmt_size(self.settings.max_upload_bytes)} limit")
        try:
            return decode(data, path=label, limits=self.limits)
        except InputError as e:
            raise input_error(e) from None

    def _video_analyzer(self) -> Any:
        va = getattr(self._local, "video", None)
        if va is None:
            va = self._local.video = self.settings.make_video_analyzer()
        return va

    def analyze_video_sync(self, data: bytes, label: str | None) -> Record:
        """Analyse a video upload and store it with its poster frame, timeline and report."""
        from verity.core.errors import InputError
        from verity.report.html import ReportItem, render_html
        from verity.report.timeline import timeline_svg

        try:
            res = self._video_analyzer().analyze(data, name=None, limits=self.limits)
        except InputError as e:
            raise input_error(e) from None
        verdict = res.verdict
        analysis_id = new_id()
        result = verdict.to_dict()
        poster_t = verdict.segments[0].start if verdict.segments else 0.0
        poster = res.preview_at(poster_t)
        fmt = str(verdict.image.get("format") or "video")
        stored = self.store.save_files(analysis_id, fmt, data, {}, poster[1] if poster else b"")
        self.store.write_cache(analysis_id, "timeline.svg", timeline_svg(verdict, res.thumbnails).encode("utf-8"))
        title = f"verity report: {label or analysis_id}"
        report = render_html([ReportItem(path=label or analysis_id, verdict=verdict, video=res)], title=title)
        self.store.write_cache(analysis_id, "report.html", report.encode("utf-8"))
        rec = Record(
            id=analysis_id, created_at=now_iso(), filename=label, sha256=str(verdict.image.get("sha256")),
            format=fmt, bytes=len(data), verdict=str(result["verdict"]), confidence=float(result["confidence"]),
            stored_name=stored, heatmaps=[], result=result,
        )
        self.store.insert(rec)
        return rec

    def analyze_sync(self, data: bytes, filename: str | None) -> Record:
        """Decode (content sniffed, limits applied), analyse, store; runs in a worker thread."""
        from verity.core.io import sniff_video
        from verity.report.render import display_image, jpeg_bytes

        label = clean_filename(filename)
        if len(data) > self.settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"upload is over the {fmt_size(self.settings.max_upload_bytes)} limit")
        if sniff_video(data[:512]):
            return self.analyze_video_sync(data, label)
        sample = self.decode(data, None)  # schema: `path` is null for uploads
        verdict = self._pipeline().analyze(sample)
        analysis_id = new_id()
        heatmaps = {f.detector: f.heatmap for f in verdict.findings if f.heatmap is not None}
        names = list(heatmaps)
        urls = urls_for(analysis_id, names, len(verdict.faces))
        result = verdict.to_dict(urls["heatmaps"])
        disp = jpeg_bytes(display_image(sample.pixels, sample.orientation, DISPLAY_SIDE))
        stored = self.store.save_files(analysis_id, sample.format, sample.data, heatmaps, disp)
        rec = Record(
            id=analysis_id,
            created_at=now_iso(),
            filename=label,
            sha256=sample.sha256,
            format=sample.format,
            bytes=len(sample.data),
            verdict=str(result["verdict"]),
            confidence=float(result["confidence"]),
            stored_name=stored,
            heatmaps=names,
            result=result,
        )
        self.store.insert(rec)
        return rec


# -- rendering from stored data (run in a thread by the routes) --------------------------------------

def load_sample(store: Store, rec: Record, limits: Any) -> Any:
    """Decode the stored upload again (404 ``not_found`` when it was removed from the data folder)."""
    from verity.core.errors import InputError
    from verity.core.io import decode

    try:
        data = store.upload_path(rec).read_bytes()
    except FileNotFoundError:
        raise ApiError(404, "not_found", "the stored upload of this analysis is missing from the data folder") from None
    try:
        return decode(data, path=rec.filename, limits=limits)
    except InputError as e:  # only if the file was changed on disk
        raise input_error(e) from None


def render_heatmap(store: Store, rec: Record, detector: str) -> bytes | None:
    """PNG overlay of one detector's heatmap at display size (cached on disk)."""
    from verity.report.render import heatmap_png

    if detector not in rec.heatmaps:
        return None
    name = f"heatmap-{rec.heatmaps.index(detector)}.png"
    cached = store.cache_path(rec.id, name)
    if cached.is_file():
        return cached.read_bytes()
    h = store.heatmap(rec, detector)
    if h is None:
        return None
    img = rec.result.get("image") or {}
    png = heatmap_png(h, (int(img["height"]), int(img["width"])), int(img.get("orientation", 1)), DISPLAY_SIDE)
    store.write_cache(rec.id, name, png)
    return png


def render_thumbnail(store: Store, rec: Record) -> bytes | None:
    """Small JPEG (longest side :data:`THUMB_SIDE`) for the history list, from the display copy (cached)."""
    import io

    from PIL import Image

    cached = store.cache_path(rec.id, "thumb.jpg")
    if cached.is_file():
        return cached.read_bytes()
    src = store.display_path(rec.id)
    if not src.is_file():
        return None
    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
    store.write_cache(rec.id, "thumb.jpg", buf.getvalue())
    return buf.getvalue()


def render_face(store: Store, rec: Record, n: int, limits: Any) -> bytes | None:
    """PNG crop (with a margin) of face ``n``, from the stored upload (cached on disk)."""
    import cv2

    from verity.report.render import png_bytes

    faces = rec.result.get("faces") or []
    if not 0 <= n < len(faces) or rec.result.get("video") is not None:
        return None
    name = f"face-{n}.png"
    cached = store.cache_path(rec.id, name)
    if cached.is_file():
        return cached.read_bytes()
    sample = load_sample(store, rec, limits)
    img = sample.display_pixels()
    H, W = img.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in faces[n]["box"])
    m = 0.2 * max(x1 - x0, y1 - y0)
    xa, ya = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
    xb, yb = int(min(W, np.ceil(x1 + m))), int(min(H, np.ceil(y1 + m)))
    if xb <= xa or yb <= ya:
        return None
    crop = np.ascontiguousarray(img[ya:yb, xa:xb])
    s = FACE_SIDE / max(crop.shape[:2])
    if s < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                          interpolation=cv2.INTER_AREA)
    png = png_bytes(crop)
    store.write_cache(rec.id, name, png)
    return png


def verdict_from_document(doc: dict[str, Any], heatmaps: dict[str, np.ndarray]) -> Any:
    """Rebuild a :class:`~verity.core.types.Verdict` from its stored JSON and heatmap arrays."""
    from verity.core.types import CLASSES, KINDS, Face, Finding, Verdict

    findings = []
    for f in doc.get("findings") or []:
        findings.append(
            Finding(
                detector=str(f.get("detector", "?")),
                score=f.get("score"),
                labels=[c for c in f.get("labels") or [] if c in CLASSES],
                evidence=[str(e) for e in f.get("evidence") or []],
                heatmap=heatmaps.get(f.get("detector")),
                kind=f.get("kind") if f.get("kind") in KINDS else "metadata",
                details=f.get("details") or {},
            )
        )
    faces = [
        Face(
            box=tuple(face["box"]),
            landmarks=[tuple(p) for p in face.get("landmarks") or []],
            detection_score=face.get("detection_score") or 0.0,
            manipulation_score=face.get("manipulation_score"),
            evidence=list(face.get("evidence") or []),
        )
        for face in doc.get("faces") or []
    ]
    return Verdict(
        verdict=doc["verdict"],
        probabilities={k: float(v) for k, v in (doc.get("probabilities") or {}).items()},
        findings=findings,
        path=doc.get("path"),
        faces=faces,
        explanation=doc.get("explanation") or "",
        image=doc.get("image") or {},
        timings=doc.get("timings") or {},
        errors=list(doc.get("errors") or []),
        intervals={k: dict(v) for k, v in (doc.get("intervals") or {}).items() if isinstance(v, dict)},
        warnings=[str(w) for w in doc.get("warnings") or []],
        generator_family=dict(doc["generator_family"]) if isinstance(doc.get("generator_family"), dict) else None,
        roles={str(f.get("detector")): {"role": f["role"], "contribution": f.get("contribution") or {}}
               for f in doc.get("findings") or [] if f.get("role")},
    )


def render_timeline(store: Store, rec: Record) -> bytes | None:
    """The SVG timeline of a video analysis (written when it was analysed), else None."""
    p = store.cache_path(rec.id, "timeline.svg")
    return p.read_bytes() if p.is_file() else None


def render_report(store: Store, rec: Record, limits: Any) -> str:
    """The self-contained HTML report of one stored analysis."""
    from verity.report.html import ReportItem, render_html

    if rec.result.get("video") is not None:  # written when the video was analysed (frames are not kept)
        p = store.cache_path(rec.id, "report.html")
        if not p.is_file():
            raise ApiError(404, "not_found", "the stored report of this video analysis is missing from the data folder")
        return p.read_text(encoding="utf-8")

    sample = load_sample(store, rec, limits)
    verdict = verdict_from_document(rec.result, store.all_heatmaps(rec))
    title = f"verity report: {rec.filename or rec.id}"
    return render_html([ReportItem(path=rec.filename or rec.id, verdict=verdict, sample=sample)], title=title)
