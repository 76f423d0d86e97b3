"""``analyze_video(path) -> VideoResult``: sample frames, track and score faces, score frames, add
temporal evidence, and fuse it all into one verdict with the most suspicious segments.

What runs (see docs/video.md):

* every sampled frame (``fps``, default 2 per second): the cheap image detectors
  (:data:`FRAME_DETECTORS`) and MTCNN; every face at least ``MIN_FACE`` px wide is scored by the
  face-manipulation network and followed by :class:`~verity.video.track.FaceTracker`;
* ``keyframes`` evenly spaced frames (default 3): the costly image detectors (:data:`KEYFRAME_DETECTORS`);
* per face and sampled frame, with the decoded frames just before and after it: flicker of the face
  against its surroundings and landmark jitter (:mod:`verity.ops.temporal`); eye-region contrast
  for blinks when sampling is dense enough;
* once per file: the C2PA manifest (:func:`verity.provenance.c2pa.read` with the container's MIME type).

Video-level findings: each image detector's median over the frames it ran on (so the fitted fusion
weights apply as for images), ``face_manipulation`` (the most suspicious track's median score),
``temporal_anomaly`` (a frame-level score that rises well above the video's own baseline for a
stretch of time: a splice present in some frames only), ``face_flicker``, ``landmark_jitter`` and
``blink``. The temporal findings' mappings and weights are hand-set (no real face-swap video was
available to fit them); docs/video.md says so.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verity.core.errors import InputError
from verity.core.fusion import FusionModel, evidence_roles, explain
from verity.core.io import DEFAULT_LIMITS, VIDEO_MIME, Limits
from verity.core.types import Face, Finding, Sample, Segment, Track, Verdict

#: Image detectors run on every sampled frame (about 60 ms together on a 720p frame).
FRAME_DETECTORS: tuple[str, ...] = ("noise_inconsistency", "upsampling")
#: Image detectors run on a few key frames only (about 600 ms together on a 720p frame).
KEYFRAME_DETECTORS: tuple[str, ...] = ("learned_semantic", "learned_npr", "copy_move")
#: Faces narrower than this (pixels) are tracked but not scored.
MIN_FACE = 40
#: Hand-set fusion weights of the video-only findings (not fitted: no face-swap video to fit on).
VIDEO_WEIGHTS: dict[str, float] = {"temporal_anomaly": 1.0, "face_flicker": 0.6, "landmark_jitter": 0.5, "blink": 0.3}
#: A frame-level score flags a sample when it reaches this and exceeds the video's median by ANOMALY_RISE.
ANOMALY_LEVEL = 0.65
ANOMALY_RISE = 0.25
#: Least number of consecutive suspicious samples that can raise a face track's score above its median.
RUN_MIN = 3
#: Sampling rate below which blinks (0.1 to 0.4 s) are mostly missed.
BLINK_MIN_FPS = 8.0


@dataclass
class VideoOptions:
    """Settings of :class:`VideoAnalyzer` (the CLI's ``--fps`` and ``--max-seconds``)."""

    fps: float = 2.0
    max_seconds: float = 600.0
    frame_detectors: tuple[str, ...] = FRAME_DETECTORS
    keyframe_detectors: tuple[str, ...] = KEYFRAME_DETECTORS
    keyframes: int = 3
    faces: bool = True
    max_faces: int = 5
    temporal: bool = True
    backend: str | None = None
    max_segments: int = 5


@dataclass
class VideoResult:
    """A video verdict plus the pictures the report and the web page show."""

    verdict: Verdict
    #: (time, 160 px JPEG) for every sampled frame
    thumbnails: list[tuple[float, bytes]] = field(default_factory=list)
    #: (time, 640 px JPEG) for every sampled frame
    previews: list[tuple[float, bytes]] = field(default_factory=list)

    def preview_at(self, t: float) -> tuple[float, bytes] | None:
        if not self.previews:
            return None
        return min(self.previews, key=lambda p: abs(p[0] - t))


def _jpeg(rgb: np.ndarray, width: int, quality: int = 80) -> bytes:
    import cv2

    from verity.report.render import jpeg_bytes

    h, w = rgb.shape[:2]
    if w > width:
        rgb = cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return jpeg_bytes(rgb, quality)


def _soft(x: float, centre: float, width: float, lo: float = 0.4, hi: float = 0.95) -> float:
    """Hand-set mapping of a measurement to a score: 0.5 at ``centre``, saturating at ``lo``/``hi``."""
    return float(min(hi, max(lo, 0.5 + 0.45 * np.tanh((x - centre) / width))))


class VideoAnalyzer:
    """Reusable detectors and models for analysing videos.

    Parameters
    ----------
    options : VideoOptions, optional
    fusion : FusionModel, optional
        Default: the shipped fitted fusion, plus :data:`VIDEO_WEIGHTS` for the video-only findings.
    """

    def __init__(self, options: VideoOptions | None = None, fusion: FusionModel | None = None):
        from verity.pipeline import Pipeline

        self.options = options or VideoOptions()
        if not self.options.fps > 0:
            raise ValueError("fps must be positive")
        self.frame_pipe = Pipeline(list(self.options.frame_detectors)) if self.options.frame_detectors else None
        self.key_pipe = Pipeline(list(self.options.keyframe_detectors)) if self.options.keyframe_detectors else None
        base = fusion or FusionModel.load()
        self.fusion = dataclasses.replace(base, default_weights={**base.default_weights, **VIDEO_WEIGHTS})
        self._face_model = None
        self.face_reason: str | None = None
        if self.options.faces:
            from verity.core.registry import get_detector_class

            cls = get_detector_class("face_manipulation")
            if not cls.available():
                self.face_reason = f"optional dependency missing ({', '.join(cls.requires)})"
            else:
                from verity.face.manipulation import model_available

                self.face_reason = model_available()

    # ------------------------------------------------------------------ faces
    def _faces(self, fr) -> list[dict[str, Any]]:
        from verity.face.detect import detect_faces

        rgb = fr.rgb
        h, w = rgb.shape[:2]
        # MTCNN finds faces of ~20 px at the detection scale; faces under MIN_FACE are not scored
        # anyway, so detecting at half size (never below 640 px) loses no scored face.
        max_side = max(640, int(max(h, w) / 2))
        dets = detect_faces(rgb, max_side=max_side, max_faces=self.options.max_faces)
        obs = []
        for d in dets:
            obs.append({"t": fr.time, "frame": fr.index, "box": tuple(float(v) for v in d.box),
                        "landmarks": np.asarray(d.landmarks, np.float64), "det_score": float(d.score), "score": None})
        if not obs:
            return obs
        scoreable = [o for o in obs if o["box"][2] - o["box"][0] >= MIN_FACE]
        if scoreable and self.face_reason is None:
            from verity.face.manipulation import get_model, manipulation_crop

            model = get_model()
            crops = np.stack([manipulation_crop(rgb, o["landmarks"])[0] for o in scoreable])
            logits, _ = model.predict(crops)
            for o, s in zip(scoreable, model.score(logits)):
                o["score"] = float(s)
        if self.options.temporal:
            self._temporal(fr, scoreable)
        return obs

    def _temporal(self, fr, obs: list[dict[str, Any]]) -> None:
        from verity.ops.temporal import eye_openness, flicker_energies, landmark_jitter

        for o in obs:
            o["eye"] = eye_openness(fr.luma, o["landmarks"])
            if fr.prev_luma is None or fr.next_luma is None or fr.prev_luma.shape != fr.luma.shape:
                continue
            o["flicker"] = flicker_energies(fr.prev_luma, fr.luma, fr.next_luma, o["box"])
            lp = _landmarks_near(fr.prev_luma, o["box"])
            ln = _landmarks_near(fr.next_luma, o["box"])
            if lp is not None and ln is not None:
                o["jitter"] = landmark_jitter(lp, o["landmarks"], ln)

    # ------------------------------------------------------------------ main
    def analyze(
        self,
        source: str | os.PathLike | bytes,
        *,
        name: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        progress: Callable[[int, int], None] | None = None,
    ) -> VideoResult:
        """Analyse one video file (path) or upload (bytes).

        Raises
        ------
        InputError
            When the file cannot be opened or no frame decodes (one-line reason, stable code).
        """
        from verity.video.decode import open_video
        from verity.video.track import FaceTracker

        t_start = time.perf_counter()
        opt = self.options
        path = name if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        reader = open_video(source, limits, backend=opt.backend)
        info = reader.info
        errors: list[str] = []
        timings: dict[str, float] = {}
        series: dict[str, list[tuple[float, float | None]]] = {}
        peak_ev: dict[str, tuple[float, float, str]] = {}
        frame_findings: dict[str, list[Finding]] = {}
        tracker = FaceTracker(max_missed=max(1, int(round(opt.fps))))
        thumbs: list[tuple[float, bytes]] = []
        previews: list[tuple[float, bytes]] = []
        span = min(info.duration, opt.max_seconds) if info.duration > 0 else opt.max_seconds
        n_est = max(1, int(np.ceil(span * opt.fps))) if info.duration > 0 else 0
        kf = max(0, opt.keyframes)
        key_idx = {int((k + 0.5) * n_est / kf) for k in range(kf)} if n_est and kf else ({0} if kf else set())
        times: list[float] = []
        preview_w = 640 if n_est <= 600 else 320  # long or densely sampled videos: smaller previews

        def add(t: float, fs: list[Finding]) -> None:
            for f in fs:
                series.setdefault(f.detector, []).append((t, f.score))
                frame_findings.setdefault(f.detector, []).append(f)
                if f.score is not None and (f.detector not in peak_ev or f.score > peak_ev[f.detector][0]):
                    peak_ev[f.detector] = (float(f.score), t, f.evidence[0] if f.evidence else "")

        from concurrent.futures import ThreadPoolExecutor

        def faces_of(fr):
            t1 = time.perf_counter()
            try:
                return self._faces(fr), None, time.perf_counter() - t1
            except Exception as e:  # noqa: BLE001 - one bad frame must not lose the video
                return [], f"faces: {type(e).__name__}: {str(e)[:120]} (frame at {fr.time:.2f} s)", time.perf_counter() - t1

        # faces run on a second thread while the frame detectors run here (onnxruntime, OpenCV and
        # numpy release the GIL), so two cores are used; the tracker is updated in frame order.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verity-video-faces") if opt.faces else None
        try:
            for fr in reader.frames(opt.fps, opt.max_seconds):
                times.append(fr.time)
                sample = Sample(data=b"", pixels=fr.rgb, format=info.container, path=f"{path}@{fr.time:.2f}s")
                t0 = time.perf_counter()
                fut = pool.submit(faces_of, fr) if pool is not None else None
                for pipe, on in ((self.frame_pipe, True), (self.key_pipe, fr.index in key_idx)):
                    if pipe is None or not on:
                        continue
                    fs, tm, errs = pipe.run_findings(sample)
                    add(fr.time, fs)
                    for k, v in tm.items():
                        timings[k] = timings.get(k, 0.0) + v
                    errors.extend(f"{e} (frame at {fr.time:.2f} s)" for e in errs)
                thumbs.append((fr.time, _jpeg(fr.rgb, 160, 75)))
                previews.append((fr.time, _jpeg(fr.rgb, preview_w, 82)))
                if fut is not None:
                    obs, err, dt_faces = fut.result()
                    if err:
                        errors.append(err)
                    tracker.update(obs)
                    timings["faces"] = timings.get("faces", 0.0) + dt_faces
                timings["frames"] = timings.get("frames", 0.0) + time.perf_counter() - t0
                if progress:
                    progress(fr.index + 1, n_est)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            decode_error = getattr(reader, "decode_error", None)
            reader.close()
        if not times:
            raise InputError(
                f"{info.container} file has no decodable frame" + (f" ({decode_error})" if decode_error else ""),
                "truncated" if decode_error else "corrupt",
            )
        if decode_error:
            errors.append(f"video: {decode_error}; the frames decoded before it were analysed")
        else:
            last = float(getattr(reader, "last_time", times[-1])) - float(getattr(reader, "start", 0.0))
            expected = min(info.duration, opt.max_seconds)
            if info.duration > 0 and last < expected - max(1.0, 2.0 / opt.fps):
                errors.append(f"video: frames stop at {max(last, times[-1]):.1f} s of the {info.duration:.1f} s the "
                              "container declares (media data cut short?); the frames before were analysed")
        analysed = times[-1] + 1.0 / opt.fps
        duration = info.duration if info.duration > 0 else analysed
        if info.duration > opt.max_seconds:
            errors.append(f"video: only the first {opt.max_seconds:.0f} s of {info.duration:.0f} s were analysed (--max-seconds)")
        dt = 1.0 / opt.fps

        # ---------------------------------------------------------------- tracks
        tracks = _build_tracks(tracker.tracks(), opt.fps)
        findings: list[Finding] = []
        findings.extend(self._aggregate(frame_findings, peak_ev))
        # series compared with their own baseline: every frame detector, and every face track's score
        anomaly_series: dict[str, tuple[str, list[tuple[float, float | None]]]] = {}
        for name, vals in series.items():
            labels = _det_labels(name, self.frame_pipe)
            if labels and len(vals) == len(times):  # key-frame detectors: too few samples for a baseline
                anomaly_series[name] = (labels[0], vals)
        # (face tracks are not added: a partly replaced face already raises its track's score, see _build_tracks)
        segs_frame = _anomaly_segments(anomaly_series, dt, duration)
        findings.append(_temporal_anomaly(segs_frame, anomaly_series, len(times)))
        findings.extend(_face_findings(tracks, self.face_reason, opt.faces, dt, duration))
        findings.extend(_temporal_findings(tracks, opt))
        c2 = _c2pa_finding(reader.data, info.container)
        if c2 is not None:
            findings.append(c2)
        segs_face = [s for t in tracks for s in _track_segments(t, dt, duration)]
        segments = _merge_segments(segs_frame + segs_face)[: opt.max_segments]

        decision = self.fusion.decide(findings)  # fusion, then the provenance rule, as for images
        probs, verdict = decision.probabilities, decision.verdict
        expl = explain(verdict, probs, findings, self.fusion, decision, intervals=False)
        expl = expl.replace("The image", "The video", 1)
        if segments:
            s0 = segments[0]
            expl += f" Most suspicious stretch: {s0.start:.1f}-{s0.end:.1f} s ({s0.reason.rstrip('.')})."
        faces = []
        for t in tracks:
            if not t.times:
                continue
            k = int(np.nanargmax([-1 if s is None else s for s in t.scores])) if any(s is not None for s in t.scores) else 0
            faces.append(Face(box=tuple(t.boxes[k]), landmarks=[tuple(p) for p in t.temporal.get("_landmarks", [])],
                              detection_score=float(t.temporal.get("_det_score", 0.0)),
                              manipulation_score=t.score, evidence=list(t.evidence)))
            t.temporal.pop("_landmarks", None)
            t.temporal.pop("_det_score", None)
            t.temporal.pop("_eyes", None)
        timings["total"] = time.perf_counter() - t_start
        timeline = {
            "times": [round(t, 3) for t in times],
            "series": {k: [None if s is None else round(float(s), 4) for _, s in v]
                       for k, v in series.items() if len(v) == len(times)},
            "keyframes": {k: [[round(t, 3), None if s is None else round(float(s), 4)] for t, s in v]
                          for k, v in series.items() if len(v) != len(times)},
        }
        import hashlib

        verdict_obj = Verdict(
            verdict=verdict,
            probabilities=probs,
            findings=findings,
            path=path,
            faces=faces,
            explanation=expl,
            image={"format": info.container, "width": info.width, "height": info.height, "mode": "RGB",
                   "bit_depth": 8, "has_alpha": False, "orientation": 1, "frames": len(times),
                   "bytes": len(reader.data), "sha256": hashlib.sha256(reader.data).hexdigest()},
            timings=timings,
            errors=errors,
            segments=segments,
            tracks=tracks,
            decided_by=decision.decided_by,
            fused_probabilities=decision.fused_probabilities,
            provenance=decision.rule,
            # no calibration intervals: the fusion was calibrated on images, not on per-frame medians
            roles=evidence_roles(verdict, findings, self.fusion),
            video={**info.to_dict(), "mime": VIDEO_MIME.get(info.container), "sample_fps": opt.fps,
                   "frames_sampled": len(times), "analysed_seconds": round(min(analysed, duration), 3),
                   "keyframes": sorted(round(times[i], 3) for i in key_idx if i < len(times)),
                   "frame_detectors": [d.name for d in (self.frame_pipe.detectors if self.frame_pipe else [])],
                   "keyframe_detectors": [d.name for d in (self.key_pipe.detectors if self.key_pipe else [])],
                   "timeline": timeline},
        )
        return VideoResult(verdict_obj, thumbs, previews)

    def _aggregate(self, frame_findings: dict[str, list[Finding]], peak_ev) -> list[Finding]:
        out = []
        for name, fs in frame_findings.items():
            scores = [f.score for f in fs if f.score is not None]
            f0 = fs[0]
            if not scores:
                out.append(Finding(detector=name, score=None, labels=list(f0.labels), kind=f0.kind,
                                   evidence=[f"Abstained on every frame it ran on ({len(fs)}): " + (f0.evidence[0] if f0.evidence else "")]))
                continue
            med = float(np.median(scores))
            labels = next((list(f.labels) for f in fs if f.score is not None), list(f0.labels))
            pk, pt, pe = peak_ev.get(name, (med, 0.0, ""))
            ev = [f"Median {med:.2f} over {len(scores)} frame(s) (range {min(scores):.2f}-{max(scores):.2f}); "
                  f"highest at {pt:.1f} s: {pe}".rstrip(": ")]
            out.append(Finding(detector=name, score=med, labels=labels, kind=f0.kind, evidence=ev,
                               details={"frames": len(scores), "median": round(med, 4), "max": round(max(scores), 4),
                                        "min": round(min(scores), 4), "max_at": round(pt, 3)}))
        return out


def _landmarks_near(luma: np.ndarray, box) -> np.ndarray | None:
    """MTCNN landmarks of the face overlapping ``box`` in a crop of a neighbouring frame."""
    from verity.face.detect import get_mtcnn
    from verity.video.track import iou

    h, w = luma.shape
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    cx0, cy0 = max(0, int(x0 - 0.5 * bw)), max(0, int(y0 - 0.5 * bh))
    cx1, cy1 = min(w, int(x1 + 0.5 * bw)), min(h, int(y1 + 0.5 * bh))
    crop = luma[cy0:cy1, cx0:cx1]
    if min(crop.shape) < 24:
        return None
    scale = min(1.0, 160.0 / max(crop.shape))
    import cv2

    small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else crop
    dets = get_mtcnn().detect(np.repeat(small[..., None], 3, axis=2))
    best, best_iou = None, 0.3
    for d in dets:
        b = d.box / scale + np.array([cx0, cy0, cx0, cy0])
        v = iou(tuple(b), box)
        if v > best_iou:
            best, best_iou = d.landmarks / scale + np.array([cx0, cy0]), v
    return best


def _build_tracks(states, fps: float) -> list[Track]:
    out = []
    for st in states:
        obs = st.obs
        scores = [o.get("score") for o in obs]
        scored = [s for s in scores if s is not None]
        median = float(np.median(scored)) if scored else None
        # a face replaced for part of the video: the median of its most suspicious stretch of at least
        # RUN_MIN consecutive samples all scoring >= 0.5, when that is higher than the whole track's median
        run = None
        for a, b in _runs([s is not None and s >= 0.5 for s in scores], max_gap=0):
            if b - a + 1 >= RUN_MIN:
                m = float(np.median([s for s in scores[a : b + 1] if s is not None]))
                if run is None or m > run[0]:
                    run = (m, obs[a]["t"], obs[b]["t"])
        score = median if run is None or median is None or run[0] <= median else run[0]
        tr = Track(id=st.id, times=[o["t"] for o in obs], boxes=[o["box"] for o in obs], scores=scores, score=score)
        temporal: dict[str, Any] = {"frames": len(obs), "scored_frames": len(scored),
                                    "median_score": None if median is None else round(median, 4)}
        if run is not None and score == run[0]:
            temporal["suspicious_stretch"] = [round(run[1], 3), round(run[2] + 1.0 / fps, 3)]
        fl = [o["flicker"] for o in obs if o.get("flicker")]
        if len(fl) >= 3:
            face = float(np.median([a for a, _ in fl]))
            ring = float(np.median([b for _, b in fl]))
            temporal["flicker_ratio"] = round((face + 0.5) / (ring + 0.5), 4)
            temporal["flicker_face"] = round(face, 3)
            temporal["flicker_surround"] = round(ring, 3)
            temporal["flicker_samples"] = len(fl)
        jit = [o["jitter"] for o in obs if o.get("jitter") is not None]
        if len(jit) >= 3:
            temporal["landmark_jitter"] = round(float(np.median(jit)), 5)
            temporal["jitter_samples"] = len(jit)
        eyes = [o.get("eye") for o in obs]
        temporal["eye_samples"] = sum(e is not None for e in eyes)
        temporal["_eyes"] = eyes
        best = max(obs, key=lambda o: -1 if o.get("score") is None else o["score"])
        temporal["_landmarks"] = [tuple(map(float, p)) for p in best["landmarks"]]
        temporal["_det_score"] = max(o["det_score"] for o in obs)
        tr.temporal = temporal
        span = f"{tr.start:.1f}-{tr.end + 1.0 / fps:.1f} s"
        if tr.score is None:
            tr.evidence.append(f"Face track {tr.id} ({span}, {len(obs)} frame(s)) was never large enough to score (needs {MIN_FACE} px).")
        elif "suspicious_stretch" in temporal:
            a, b = temporal["suspicious_stretch"]
            tr.evidence.append(
                f"Face track {tr.id} ({span}) looks blended from {a:.1f} to {b:.1f} s: median face-manipulation score "
                f"{tr.score:.2f} there (more blended-looking than 99% of real calibration faces), against {median:.2f} "
                "over the whole track: the face may have been replaced for part of the video.")
        else:
            hi = max(scored)
            tr.evidence.append(
                f"Face track {tr.id} ({span}): median face-manipulation score {tr.score:.2f} over {len(scored)} "
                f"frame(s), highest {hi:.2f}" + (" (more blended-looking than 99% of real calibration faces)." if tr.score >= 0.5 else "."))
        out.append(tr)
    return out


def _runs(flags: list[bool], max_gap: int = 1) -> list[tuple[int, int]]:
    """(first, last) indices of runs of True, bridging gaps of up to ``max_gap`` False samples."""
    runs, start, last = [], None, None
    for i, f in enumerate(flags):
        if not f:
            continue
        if start is None:
            start = last = i
        elif i - last <= max_gap + 1:
            last = i
        else:
            runs.append((start, last))
            start = last = i
    if start is not None:
        runs.append((start, last))
    return runs


def _det_labels(name: str, *pipes) -> list[str]:
    for p in pipes:
        if p is None:
            continue
        for d in p.detectors:
            if d.name == name:
                return list(d.labels)
    return []


def _anomaly_segments(series: dict[str, tuple[str, list[tuple[float, float | None]]]], dt: float,
                      duration: float) -> list[Segment]:
    out = []
    for name, (label, vals) in series.items():
        sc = [s for _, s in vals if s is not None]
        if len(sc) < 4:
            continue
        base = float(np.median(sc))
        flags = [s is not None and s >= ANOMALY_LEVEL and s - base >= ANOMALY_RISE for _, s in vals]
        if sum(flags) > len(flags) / 2:  # a majority cannot rise above the median
            continue
        # hysteresis: a run grows into neighbouring samples that are raised by half as much
        weak = [s is not None and s >= ANOMALY_LEVEL and s - base >= ANOMALY_RISE / 2 for _, s in vals]
        for a, b in _runs(flags):
            while a > 0 and weak[a - 1]:
                a -= 1
            while b + 1 < len(vals) and weak[b + 1]:
                b += 1
            peak = max(s for _, s in vals[a : b + 1] if s is not None)
            t0, t1 = vals[a][0], min(duration, vals[b][0] + dt)
            what = f"the face-manipulation score of face {name}" if name.startswith("track ") else name
            out.append(Segment(
                start=t0, end=max(t1, t0 + 1e-3), score=float(peak), label=label,
                reason=f"{what} rises from the video's baseline {base:.2f} to {peak:.2f} between {t0:.1f} and {t1:.1f} s, "
                       "while the rest of the video stays near the baseline",
                sources=[name]))
    return out


def _temporal_anomaly(segs: list[Segment], series, n_frames: int) -> Finding:
    name = "temporal_anomaly"
    if n_frames < 4:
        return Finding(detector=name, score=None, labels=["edited"], kind="temporal",
                       evidence=[f"Only {n_frames} frame(s) sampled: too few to compare frames with each other."])
    if not segs:
        return Finding(detector=name, score=0.45, labels=["edited"], kind="temporal",
                       evidence=[f"No frame-level score rose well above the video's own baseline over "
                                 f"{n_frames} sampled frames."],
                       details={"segments": 0})
    best = max(segs, key=lambda s: s.score)
    src = best.sources[0]
    vals = [s for _, s in series[src][1] if s is not None]
    base = float(np.median(vals))
    score = min(0.97, 0.5 + (best.score - base))
    if src.startswith("track "):
        ev = [f"Between {best.start:.1f} and {best.end:.1f} s the face-manipulation score of face {src} rises from its "
              f"own baseline {base:.2f} to {best.score:.2f} and falls back: the face looks blended in those frames only "
              "(a face replaced for part of the video)."]
    else:
        ev = [f"Between {best.start:.1f} and {best.end:.1f} s {src} rises from the video's baseline {base:.2f} "
              f"to {best.score:.2f} and falls back: something in those frames differs from the rest of the video "
              "(e.g. a region spliced into some frames only)."]
    if len(segs) > 1:
        ev.append(f"{len(segs) - 1} more such stretch(es).")
    return Finding(detector=name, score=score, labels=[best.label], kind="temporal", evidence=ev,
                   details={"segments": len(segs), "baseline": round(base, 4), "peak": round(best.score, 4),
                            "source": src, "start": round(best.start, 3), "end": round(best.end, 3)})


def _track_segments(tr: Track, dt: float, duration: float) -> list[Segment]:
    flags = [s is not None and s >= 0.5 for s in tr.scores]
    out = []
    for a, b in _runs(flags):
        peak = max(s for s in tr.scores[a : b + 1] if s is not None)
        t0, t1 = tr.times[a], min(duration, tr.times[b] + dt)
        out.append(Segment(start=t0, end=max(t1, t0 + 1e-3), score=float(peak), label="face_manipulated",
                           reason=f"face track {tr.id} scores up to {peak:.2f} on the face-manipulation detector between "
                                  f"{t0:.1f} and {t1:.1f} s", sources=[f"track {tr.id}"]))
    return out


def _merge_segments(segs: list[Segment]) -> list[Segment]:
    segs = sorted(segs, key=lambda s: s.start)
    merged: list[Segment] = []
    for s in segs:
        if merged and s.start <= merged[-1].end + 1e-6:
            m = merged[-1]
            if s.score > m.score:
                m.label, m.reason, m.score = s.label, s.reason, s.score
            m.end = max(m.end, s.end)
            m.sources = list(dict.fromkeys(m.sources + s.sources))
        else:
            merged.append(dataclasses.replace(s, sources=list(s.sources)))
    return sorted(merged, key=lambda s: (-s.score, s.start))


def _face_findings(tracks: list[Track], reason: str | None, enabled: bool, dt: float, duration: float) -> list[Finding]:
    name = "face_manipulation"
    if not enabled:
        return []
    mk = lambda score, ev, **kw: Finding(detector=name, score=score, labels=["face_manipulated"], kind="faces", evidence=ev, **kw)  # noqa: E731
    if not tracks:
        return [mk(None, ["No face found in any sampled frame (MTCNN, faces of at least about 40 px at 720p)."])]
    scored = [t for t in tracks if t.score is not None]
    if reason or not scored:
        return [mk(None, [f"{len(tracks)} face track(s) found but not scored: "
                          + (reason or f"every face is narrower than {MIN_FACE} px")])]
    # a track seen in one frame only is weaker evidence than a face followed for a while
    steady = [t for t in scored if t.temporal.get("scored_frames", 0) >= 2] or scored
    best = max(steady, key=lambda t: t.score)
    ev = [best.evidence[0]] + [t.evidence[0] for t in sorted(steady, key=lambda t: -t.score) if t is not best][:2]
    ev.append("The face-manipulation network was trained on self-blended real faces only; the track score is the "
              "median over the frames, so a single odd frame does not decide it.")
    return [mk(best.score, ev, details={"tracks": len(tracks), "scored_tracks": len(scored), "best_track": best.id,
                                        "track_scores": {str(t.id): round(t.score, 4) for t in scored}})]


def _temporal_findings(tracks: list[Track], opt: VideoOptions) -> list[Finding]:
    if not opt.faces or not opt.temporal:
        return []
    out = []
    kind = "temporal"
    lab = ["face_manipulated"]
    fl = [t for t in tracks if "flicker_ratio" in t.temporal]
    if not fl:
        out.append(Finding(detector="face_flicker", score=None, labels=lab, kind=kind,
                           evidence=["No face was followed over at least 3 sampled frames with both neighbouring frames "
                                     "decoded: flicker not measured."]))
    else:
        best = max(fl, key=lambda t: t.temporal["flicker_ratio"])
        r = best.temporal["flicker_ratio"]
        s = _soft(r, 2.0, 0.6)
        if s >= 0.5:
            e = (f"Face track {best.id}: from one frame to the next the face flickers {r:.1f}x as much as its "
                 "surroundings (temporal high-frequency energy after motion compensation): a face re-synthesised "
                 "frame by frame does this, a filmed face moves smoothly with its head.")
        else:
            e = (f"Face track {best.id}: the face changes from frame to frame about as smoothly as its surroundings "
                 f"(flicker ratio {r:.2f}).")
        out.append(Finding(detector="face_flicker", score=s, labels=lab, kind=kind,
                           evidence=[e, "Hand-set mapping (0.5 at a ratio of 2), not fitted on face-swap video."],
                           details={"track": best.id, "ratio": r, "samples": best.temporal["flicker_samples"]}))
    jt = [t for t in tracks if "landmark_jitter" in t.temporal]
    if not jt:
        out.append(Finding(detector="landmark_jitter", score=None, labels=lab, kind=kind,
                           evidence=["Landmarks were not found in enough consecutive frame triples: jitter not measured."]))
    else:
        best = max(jt, key=lambda t: t.temporal["landmark_jitter"])
        j = best.temporal["landmark_jitter"]
        s = _soft(j, 0.06, 0.025)
        if s >= 0.5:
            e = (f"Face track {best.id}: the five facial landmarks jump by {100 * j:.1f}% of the eye distance between "
                 "consecutive frames beyond smooth motion; real faces move their features together.")
        else:
            e = f"Face track {best.id}: landmarks move smoothly between consecutive frames (jitter {100 * j:.1f}% of the eye distance)."
        out.append(Finding(detector="landmark_jitter", score=s, labels=lab, kind=kind,
                           evidence=[e, "Hand-set mapping (0.5 at 6% of the eye distance), not fitted on face-swap video."],
                           details={"track": best.id, "jitter": j, "samples": best.temporal["jitter_samples"]}))
    out.append(_blink_finding(tracks, opt))
    for t in tracks:
        t.temporal.pop("_eyes", None)
    return out


def _blink_finding(tracks: list[Track], opt: VideoOptions) -> Finding:
    from verity.ops.temporal import count_dips

    name, lab = "blink", ["face_manipulated"]
    if opt.fps < BLINK_MIN_FPS:
        return Finding(detector=name, score=None, labels=lab, kind="temporal",
                       evidence=[f"Blinks not counted: at {opt.fps:g} frames per second most blinks (0.1 to 0.4 s) fall "
                                 f"between samples; analyse with --fps {BLINK_MIN_FPS:g} or more to count them."])
    cands = []
    for t in tracks:
        eyes = t.temporal.get("_eyes", [])
        vals = [e for e in eyes if e is not None]
        length = t.end - t.start
        if len(vals) >= 0.8 * max(1, len(eyes)) and length >= 10.0:
            cands.append((t, np.asarray(vals), length))
    if not cands:
        return Finding(detector=name, score=None, labels=lab, kind="temporal",
                       evidence=["Blinks not counted: no face was followed for 10 s or more with eyes large enough "
                                 "(five landmarks give eye centres only; an eye-region contrast proxy is used)."])
    t, vals, length = max(cands, key=lambda c: c[2])
    dips = count_dips(vals)
    rate = 60.0 * len(dips) / length
    t.temporal["blinks"] = len(dips)
    t.temporal["blinks_per_minute"] = round(rate, 2)
    if not dips and length >= 20:
        s, e = 0.65, (f"Face track {t.id} does not blink in {length:.0f} s (people blink about 15 to 20 times a minute; "
                      "early face swaps rarely blinked). Measured with an eye-region contrast proxy.")
    elif 4 <= rate <= 45:
        s, e = 0.45, f"Face track {t.id} blinks {len(dips)} time(s) in {length:.0f} s ({rate:.0f} a minute), a normal rate."
    else:
        s, e = 0.5, f"Face track {t.id}: {len(dips)} blink(s) in {length:.0f} s ({rate:.0f} a minute); no clear opinion."
    return Finding(detector=name, score=s, labels=lab, kind="temporal", evidence=[e],
                   details={"track": t.id, "blinks": len(dips), "per_minute": round(rate, 2), "seconds": round(length, 2)})


def _c2pa_finding(data: bytes, container: str) -> Finding | None:
    """The image C2PA detector run on the whole file, read with the container's MIME type."""
    from verity.core.registry import get_detector_class

    cls = get_detector_class("c2pa")
    if not cls.available():
        return None
    mime = VIDEO_MIME.get(container)
    if mime is None:
        return None
    det = cls()
    sample = Sample(data=data, pixels=np.zeros((1, 1, 3), np.uint8), format=mime)
    try:
        f = det.run(sample)
    except Exception as e:  # noqa: BLE001
        return det.abstain(f"C2PA check failed: {type(e).__name__}: {e}")
    f.evidence = [e.replace("the image", "the video").replace("The image", "The video") for e in f.evidence]
    return f


_DEFAULT: VideoAnalyzer | None = None


def analyze_video(source: str | os.PathLike | bytes, *, name: str | None = None, limits: Limits = DEFAULT_LIMITS,
                  options: VideoOptions | None = None) -> VideoResult:
    """Analyse one video with a shared :class:`VideoAnalyzer` (or one built for ``options``)."""
    global _DEFAULT
    if options is not None:
        return VideoAnalyzer(options).analyze(source, name=name, limits=limits)
    if _DEFAULT is None:
        _DEFAULT = VideoAnalyzer()
    return _DEFAULT.analyze(source, name=name, limits=limits)


__all__: Sequence[str] = ("VideoAnalyzer", "VideoOptions", "VideoResult", "analyze_video", "FRAME_DETECTORS",
                          "KEYFRAME_DETECTORS")
