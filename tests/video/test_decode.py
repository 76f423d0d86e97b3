"""Sniffing, sampling, neighbours, both decoding back ends, broken files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from verity.core.errors import InputError
from verity.core.io import sniff_video
from verity.video.decode import mp4_structure_problem, open_video
from verity.video.synth import SynthSpec, write_video

pytestmark = pytest.mark.xdist_group("video")  # one worker: the clips and their analyses are shared

BACKENDS = ["opencv"] + (["pyav"] if importlib.util.find_spec("av") else [])


def test_sniff_video_containers():
    assert sniff_video(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20) == "MP4"
    assert sniff_video(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 20) == "MOV"
    assert sniff_video(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20) is None  # HEIC still image
    assert sniff_video(b"\x1a\x45\xdf\xa3" + b"\x00" * 20) == "MATROSKA"
    assert sniff_video(b"RIFF\x00\x00\x00\x00AVI LIST") == "AVI"
    assert sniff_video(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None
    ts = bytearray(400)
    ts[0] = ts[188] = ts[376] = 0x47
    assert sniff_video(bytes(ts)) == "MPEG-TS"
    assert sniff_video(b"\xff\xd8\xff\xe0") is None and sniff_video(b"hello world") is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_times_and_neighbours(video_dir, backend):
    p = write_video(video_dir / f"s_{backend}.mp4", SynthSpec(seconds=3, fps=30, size=(320, 180), seed=3))
    with open_video(p, backend=backend) as r:
        assert (r.info.width, r.info.height) == (320, 180)
        assert abs(r.info.fps - 30) < 0.01 and abs(r.info.duration - 3.0) < 0.1
        fr = list(r.frames(2.0))
    assert [round(f.time, 2) for f in fr] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert fr[0].prev_luma is None and all(f.prev_luma is not None for f in fr[1:])
    assert all(f.next_luma is not None and f.next_luma.shape == (180, 320) for f in fr)
    assert fr[1].rgb.shape == (180, 320, 3) and fr[1].rgb.dtype == np.uint8
    # neighbours are the adjacent decoded frames: close to, but not the same as, the sampled frame
    d = np.abs(fr[2].luma.astype(int) - fr[2].next_luma.astype(int)).mean()
    assert 0 < d < 10


def test_max_seconds_and_other_containers(video_dir):
    p = write_video(video_dir / "m.mkv", SynthSpec(seconds=3, fps=24, size=(256, 144), seed=4))
    with open_video(p) as r:
        assert r.info.container == "MATROSKA"
        fr = list(r.frames(4.0, max_seconds=1.0))
    assert len(fr) == 4 and fr[-1].time < 1.0


def test_truncated_moov_one_clear_error(video_dir):
    data = write_video(video_dir / "t.mp4", SynthSpec(seconds=2, fps=25, size=(256, 144), seed=5)).read_bytes()
    cut = data[: len(data) * 2 // 3]  # the muxer writes the moov index at the end
    problem = mp4_structure_problem(cut)
    assert problem and problem[0] == "truncated" and "moov" in problem[1]
    with pytest.raises(InputError) as e:
        open_video(cut)
    assert e.value.code == "truncated" and "moov" in str(e.value) and "\n" not in str(e.value)


def test_garbage_after_ftyp_and_audio_only(tmp_path):
    with pytest.raises(InputError) as e:
        open_video(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 12 + b"\x00\x00\x00\x03xxxx" + b"\x00" * 100)
    assert e.value.code in ("corrupt", "truncated")
    with pytest.raises(InputError) as e:
        open_video(b"")
    assert e.value.code == "empty"
