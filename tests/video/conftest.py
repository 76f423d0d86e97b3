"""Synthetic videos for the video tests (seeded; written with PyAV or the ffmpeg command).

Every test here skips with a reason when neither PyAV nor ffmpeg can write a video.
"""

from __future__ import annotations

import numpy as np
import pytest

from verity.video.synth import SynthSpec, can_write, write_video


@pytest.fixture(scope="session")
def writer_ok():
    why = can_write()
    if why:
        pytest.skip(f"cannot make test videos: {why}")
    return True


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory, writer_ok):
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def astronaut_face():
    """The astronaut's face from scikit-image's sample photo, 120 px."""
    import cv2

    from tests.conftest import photo

    img = photo("astronaut")
    return cv2.resize(img[20:220, 130:300], (110, 130), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def splice_video(video_dir):
    return write_video(video_dir / "splice.mp4", SynthSpec(seconds=6, fps=30, splice=(2.0, 4.0), seed=1))


@pytest.fixture(scope="session")
def clean_video(video_dir):
    return write_video(video_dir / "clean.mp4", SynthSpec(seconds=6, fps=30, seed=1))


@pytest.fixture(scope="session")
def face_video(video_dir, astronaut_face):
    return write_video(video_dir / "face.mp4", SynthSpec(seconds=4, fps=25, face=astronaut_face, seed=2))


@pytest.fixture(scope="session")
def analyzer():
    from verity.video.analyze import VideoAnalyzer

    return VideoAnalyzer()


@pytest.fixture(scope="session")
def splice_result(analyzer, splice_video):
    return analyzer.analyze(splice_video)


@pytest.fixture(scope="session")
def clean_result(analyzer, clean_video):
    return analyzer.analyze(clean_video)


@pytest.fixture(scope="session")
def face_result(analyzer, face_video):
    return analyzer.analyze(face_video)


def rng(seed=0):
    return np.random.default_rng(seed)
