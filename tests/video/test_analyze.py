"""Video analysis end to end on seeded synthetic clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from verity.core.types import CLASSES
from verity.ops.temporal import count_dips, flicker_energies, landmark_jitter
from verity.video.track import FaceTracker

pytestmark = pytest.mark.xdist_group("video")  # one worker: the clips and their analyses are shared


def test_spliced_region_yields_segment_at_the_right_time(splice_result):
    v = splice_result.verdict
    assert v.segments, v.explanation
    s = v.segments[0]
    # the patch is in the frames 2.0 <= t < 4.0; samples every 0.5 s
    assert abs(s.start - 2.0) < 0.01 and abs(s.end - 4.0) < 0.01, s
    assert s.label == "edited" and "noise_inconsistency" in s.sources
    ta = v.finding("temporal_anomaly")
    assert ta.score > 0.8 and "2.0" in ta.evidence[0]
    assert v.verdict == "edited"
    assert "2.0-4.0 s" in v.explanation


def test_clean_video_has_no_segment(clean_result):
    v = clean_result.verdict
    assert not v.segments
    assert v.verdict != "edited"
    assert v.finding("temporal_anomaly").score < 0.5


def test_json_document(splice_result):
    d = json.loads(json.dumps(splice_result.verdict.to_dict()))
    assert set(d["probabilities"]) == set(CLASSES)
    assert d["segments"] and {"start", "end", "score", "label", "reason", "sources"} <= set(d["segments"][0])
    assert d["tracks"] == []
    vid = d["video"]
    assert vid["container"] == "MP4" and vid["frames_sampled"] == 12 and vid["sample_fps"] == 2.0
    tl = vid["timeline"]
    assert len(tl["times"]) == 12 and all(len(s) == 12 for s in tl["series"].values())
    assert "noise_inconsistency" in tl["series"] and len(tl["keyframes"]["learned_semantic"]) == 3
    assert d["image"]["format"] == "MP4" and len(d["image"]["sha256"]) == 64
    assert len(splice_result.thumbnails) == 12 and splice_result.thumbnails[0][1][:2] == b"\xff\xd8"


def test_face_is_tracked_and_scored(face_result):
    v = face_result.verdict
    assert len(v.tracks) == 1, [t.to_dict() for t in v.tracks]
    t = v.tracks[0]
    assert len(t.times) >= 7 and t.score is not None  # found in (nearly) every sampled frame
    xs = [b[0] for b in t.boxes]
    assert xs[-1] - xs[0] > 200  # it moved across the frame
    assert t.temporal["flicker_samples"] >= 3 and t.temporal["jitter_samples"] >= 3
    assert v.finding("face_manipulation").score is not None
    assert v.finding("face_flicker").score is not None and v.finding("landmark_jitter").score is not None
    assert v.finding("blink").score is None and "--fps" in v.finding("blink").evidence[0]
    assert len(v.faces) == 1


def test_flickering_face_scores_higher_than_a_steady_one(video_dir, analyzer, astronaut_face, face_result):
    from verity.video.synth import SynthSpec, write_video

    p = write_video(video_dir / "flicker.mp4", SynthSpec(seconds=4, fps=25, face=astronaut_face, face_flicker=12, seed=2))
    flick = analyzer.analyze(p).verdict
    steady = face_result.verdict
    r1 = flick.tracks[0].temporal["flicker_ratio"]
    r0 = steady.tracks[0].temporal["flicker_ratio"]
    assert r1 > 2 * r0 and r1 > 2.0, (r0, r1)
    assert flick.finding("face_flicker").score > 0.5 > steady.finding("face_flicker").score
    assert "flickers" in flick.finding("face_flicker").evidence[0]


def test_tracker_keeps_identities_across_gaps_and_jumps():
    tr = FaceTracker(max_missed=2)
    a = lambda x: {"box": (x, 10.0, x + 50.0, 70.0)}  # noqa: E731
    b = lambda x: {"box": (x, 200.0, x + 60.0, 270.0)}  # noqa: E731
    assert tr.update([a(0), b(300)]) == [1, 2]
    assert tr.update([b(310), a(60)]) == [2, 1]  # a moved more than its width: centre gating
    assert tr.update([b(320)]) == [2]  # a missing once
    assert tr.update([a(120), b(330)]) == [1, 2]
    for _ in range(3):
        tr.update([])
    assert tr.update([a(0)]) == [3]  # a long gap starts a new track
    assert [len(t.obs) for t in tr.tracks()] == [3, 4, 1]


def test_temporal_ops():
    lm = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
    # smooth motion (translation and a linear drift) has no second difference
    assert landmark_jitter(lm, lm + 5, lm + 10) < 1e-9
    noisy = lm + np.random.default_rng(0).normal(0, 4, lm.shape)
    assert landmark_jitter(lm, noisy, lm) > 0.05
    r = np.random.default_rng(1)
    base = r.integers(0, 255, (120, 160)).astype(np.uint8)
    same = flicker_energies(base, base, base, (40, 30, 100, 90))
    assert same is not None and same[0] < 1e-6 and same[1] < 1e-6
    cur = base.copy()
    cur[45:85, 55:90] = np.clip(cur[45:85, 55:90].astype(int) + 30, 0, 255)
    face, ring = flicker_energies(base, cur, base, (40, 30, 100, 90))
    assert face > 5 * max(ring, 0.1)
    v = np.ones(40)
    v[[10, 25]] = 0.5
    assert count_dips(v) == [10, 25]


def test_face_replaced_for_part_of_the_video_yields_a_segment(video_dir, analyzer):
    """A self-blended version of the same face (one real face, no second person) in 1.5-3.0 s."""
    import cv2

    from tests.conftest import photo
    from verity.face.detect import detect_faces
    from verity.face.sbi import self_blend
    from verity.video.synth import SynthSpec, write_video

    face = cv2.resize(photo("astronaut")[20:220, 130:300], (170, 200), interpolation=cv2.INTER_AREA)
    frame = np.full((360, 640, 3), 120, np.uint8)
    frame[30:230, 100:270] = face
    lm = detect_faces(frame)[0].landmarks - np.array([100, 30])
    blended = self_blend(face, lm, np.random.default_rng(0)).image
    p = write_video(video_dir / "partial.mp4", SynthSpec(seconds=4.5, fps=25, face=face, face_alt=blended,
                                                          face_alt_span=(1.5, 3.0), seed=2))
    v = analyzer.analyze(p).verdict
    assert len(v.tracks) == 1
    t = v.tracks[0]
    assert t.temporal["median_score"] < 0.5 < t.score
    a, b = t.temporal["suspicious_stretch"]
    assert abs(a - 1.5) < 0.05 and abs(b - 3.0) < 0.05
    seg = next(s for s in v.segments if s.label == "face_manipulated")
    assert abs(seg.start - 1.5) < 0.05 and abs(seg.end - 3.0) < 0.05 and seg.sources == ["track 1"]
    f = v.finding("face_manipulation")
    assert f.score == t.score and "part of the video" in f.evidence[0]


def test_opencv_backend_gives_the_same_segment(splice_video):
    from verity.video.analyze import VideoAnalyzer, VideoOptions

    v = VideoAnalyzer(VideoOptions(backend="opencv", faces=False, keyframes=0)).analyze(splice_video).verdict
    assert v.video["backend"] == "opencv"
    assert v.segments and abs(v.segments[0].start - 2.0) < 0.01 and abs(v.segments[0].end - 4.0) < 0.01


@pytest.mark.data
def test_real_face_photo_moving_is_one_unsuspicious_track(shared_data, video_dir, analyzer):
    """A real studio portrait from ../shared/data moved across the frame: one track, no face segment."""
    import cv2
    from PIL import Image

    from verity.video.synth import SynthSpec, write_video

    src = sorted((shared_data / "faces" / "frl_london").glob("*.jpg"))
    if not src:
        pytest.skip("no frl_london faces in the shared data")
    face = np.asarray(Image.open(src[0]).convert("RGB"))
    face = cv2.resize(face, (180, 180), interpolation=cv2.INTER_AREA)
    p = write_video(video_dir / "real_face.mp4", SynthSpec(seconds=4, fps=25, face=face, seed=5))
    v = analyzer.analyze(p).verdict
    assert len(v.tracks) == 1 and len(v.tracks[0].times) >= 7
    assert v.tracks[0].score is not None and v.tracks[0].score < 0.5
    assert not [s for s in v.segments if s.label == "face_manipulated"]
    assert v.verdict != "face_manipulated"
