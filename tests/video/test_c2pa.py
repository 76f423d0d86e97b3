"""C2PA manifests embedded in a video are verified as for images."""

from __future__ import annotations

import pytest

pytest.importorskip("c2pa")

from verity.provenance import c2pa as prov  # noqa: E402
from verity.video.analyze import VideoAnalyzer, VideoOptions  # noqa: E402
from verity.video.synth import SynthSpec, write_video  # noqa: E402

pytestmark = pytest.mark.xdist_group("video")  # one worker: the clips and their analyses are shared


@pytest.fixture(scope="module")
def signed(video_dir):
    data = write_video(video_dir / "c2.mp4", SynthSpec(seconds=2, fps=25, size=(256, 144), seed=9)).read_bytes()
    creds = prov.make_dev_credentials(common_name="verity test signer")
    return prov.sign(data, "video/mp4", cert_chain=creds.chain_pem, private_key=creds.key_pem, claim_generator="verity-lab")


@pytest.fixture(scope="module")
def quick():
    return VideoAnalyzer(VideoOptions(faces=False, keyframes=0))


def test_signed_video_declares_generated(signed, quick):
    v = quick.analyze(signed).verdict
    f = v.finding("c2pa")
    assert f.score >= 0.9 and f.labels == ["ai_generated"]
    assert "trainedAlgorithmicMedia" in f.evidence[0] and "video" in f.evidence[0]
    assert v.verdict == "ai_generated"


def test_changed_video_bytes_fail_validation(signed, quick):
    b = bytearray(signed)
    b[len(b) - 2000] ^= 0x55  # inside the media data covered by the BMFF hash
    f = quick.analyze(bytes(b)).verdict.finding("c2pa")
    assert f.labels == ["edited"] and f.score > 0.9 and "mismatch" in f.evidence[0]


def test_unsigned_video_abstains(splice_video, quick):
    f = quick.analyze(splice_video).verdict.finding("c2pa")
    assert f.score is None and "No C2PA manifest" in f.evidence[0]
