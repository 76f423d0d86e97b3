"""Configurable limits: file size, pixels, frames (flags, environment) and the per-detector time limit."""

from __future__ import annotations

import io
import json
import struct
import time

import numpy as np
import pytest
from PIL import Image

from verity.core.errors import ConfigError, InputError
from verity.core.io import Limits, load_sample
from verity.pipeline import Pipeline, default_detector_timeout


def _png(rng, h=16, w=16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def tiny_gif(frames: int) -> bytes:
    """A 1x1 GIF with ``frames`` frames, written block by block (about 12 bytes a frame)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b"\x3b"


def test_tiny_gif_helper_is_a_valid_gif():
    im = Image.open(io.BytesIO(tiny_gif(5)))
    assert im.n_frames == 5
    s = load_sample(tiny_gif(5))
    assert s.frames == 5 and s.pixels.shape == (1, 1, 3)


def test_frame_limit_refuses_quickly():
    data = tiny_gif(1_000_000)  # 12 MB; Pillow's n_frames would walk all of it
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_sample(data, limits=Limits(max_frames=10_000))
    assert e.value.code == "too_many_frames"
    assert "10000 frames" in str(e.value)
    assert time.perf_counter() - t0 < 5  # bounded by the limit, not by the file (about 0.05 s here)


def test_frame_limit_boundary():
    assert load_sample(tiny_gif(7), limits=Limits(max_frames=7)).frames == 7
    with pytest.raises(InputError):
        load_sample(tiny_gif(8), limits=Limits(max_frames=7))


def test_multipage_tiff_frames_counted_and_limited(rng):
    pages = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(5)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    assert load_sample(buf.getvalue()).frames == 5
    with pytest.raises(InputError) as e:
        load_sample(buf.getvalue(), limits=Limits(max_frames=4))
    assert e.value.code == "too_many_frames"


def test_tiff_ifd_loop_is_not_infinite(rng):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8])
    (n,) = struct.unpack("<H", data[ifd : ifd + 2])
    data[ifd + 2 + 12 * n : ifd + 6 + 12 * n] = struct.pack("<I", ifd)  # next IFD = itself
    try:
        s = load_sample(bytes(data))
        assert s.frames >= 1
    except InputError:
        pass  # a clear refusal is fine too; a hang or a traceback is not


def test_limits_from_environment(monkeypatch, rng):
    monkeypatch.setenv("VERITY_MAX_MP", "0.0001")  # 100 pixels
    with pytest.raises(InputError) as e:
        load_sample(_png(rng))
    assert e.value.code == "decompression_bomb"
    monkeypatch.setenv("VERITY_MAX_FRAMES", "3")
    assert Limits().max_frames == 3
    monkeypatch.setenv("VERITY_MAX_MB", "2.5")
    assert Limits().max_bytes == int(2.5 * 1024 * 1024)
    assert Limits(max_bytes=10).max_bytes == 10  # explicit beats the environment


@pytest.mark.parametrize("name,value", [("VERITY_MAX_MB", "-5"), ("VERITY_MAX_MP", "lots"),
                                        ("VERITY_MAX_FRAMES", "2.5"), ("VERITY_MAX_MB", "inf")])
def test_bad_environment_is_a_config_error(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        Limits()
    assert name in str(e.value)


def test_bad_environment_cli_one_line_exit_2(monkeypatch, tmp_path, rng, capsys):
    from verity.cli.main import main

    f = tmp_path / "a.png"
    f.write_bytes(_png(rng))
    monkeypatch.setenv("VERITY_MAX_MB", "-5")
    assert main(["analyze", str(f), "--detectors", "exif_camera"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VERITY_MAX_MB" in err


@pytest.mark.parametrize("flag,value", [("--max-mb", "-5"), ("--max-mb", "0"), ("--max-mp", "nan"),
                                        ("--max-frames", "0"), ("--max-frames", "1.5"),
                                        ("--detector-timeout", "-1")])
def test_bad_limit_flags_exit_2(tmp_path, capsys, flag, value):
    from verity.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["analyze", str(tmp_path / "x.png"), flag, value])
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_frame_flag(tmp_path, capsys):
    from verity.cli.main import main

    f = tmp_path / "anim.gif"
    f.write_bytes(tiny_gif(50))
    assert main(["analyze", str(f), "--json", "--max-frames", "10", "--detectors", "exif_camera"]) == 3
    out = capsys.readouterr()
    assert json.loads(out.out)["error"]["code"] == "too_many_frames"
    assert out.err.count("\n") == 1


def test_video_containers_are_named_not_misreported():
    """A video handed to the image loader is named as a video (verity.video decodes it); HEIF is refused."""
    mp4 = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00isomiso2" + struct.pack(">I", 8) + b"moov"
    for data, word in [(mp4, "MP4"), (b"\x1a\x45\xdf\xa3" + b"\x00" * 40, "MATROSKA"),
                       (b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 20, "AVI")]:
        with pytest.raises(InputError) as e:
            load_sample(data)
        assert e.value.code == "is_video"
        assert word in str(e.value) and "video" in str(e.value)
    with pytest.raises(InputError) as e:
        load_sample(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20)
    assert e.value.code == "unsupported_format" and "HEIF" in str(e.value) and "not supported yet" in str(e.value)


# ------------------------------------------------------------------ per-detector time limit


def _sample(rng):
    return load_sample(_png(rng, 32, 32))


def test_slow_detector_is_stopped_and_abstains(slow_detector, rng):
    pipe = Pipeline(["exif_camera", "test_slow"], detector_timeout=0.3)
    t0 = time.perf_counter()
    v = pipe.analyze(_sample(rng))
    assert time.perf_counter() - t0 < 10  # 0.3 s plus the other detector; the slow one waits 30 s
    f = v.finding("test_slow")
    assert f is not None and f.score is None
    assert "timed out" in f.evidence[0] and "0.3 s" in f.evidence[0]
    assert f.details["timed_out"] is True
    assert any("test_slow: timed out" in e for e in v.errors)
    assert v.finding("exif_camera") is not None  # the others still ran
    # while the abandoned run is still going, the detector is not started again
    v2 = pipe.analyze(_sample(rng))
    assert "not run" in v2.finding("test_slow").evidence[0] and slow_detector.calls == 1
    # once it has finished, it runs normally again
    slow_detector.release.set()
    pipe._abandoned["test_slow"].join(5)
    v3 = pipe.analyze(_sample(rng))
    assert v3.finding("test_slow").score == pytest.approx(0.8) and slow_detector.calls == 2


def test_detector_errors_still_become_abstentions_under_the_watchdog(rng):
    from verity.core import registry
    from verity.core.registry import Detector

    registry._discover()

    class Broken(Detector):
        name = "test_broken"
        default = False

        def run(self, sample):
            raise RuntimeError("boom")

    registry.register_detector(Broken)
    try:
        v = Pipeline(["test_broken"], detector_timeout=5).analyze(_sample(rng))
    finally:
        registry._REGISTRY.pop("test_broken", None)
    f = v.finding("test_broken")
    assert f.score is None and "RuntimeError: boom" in f.evidence[0]


def test_timeout_defaults_and_environment(monkeypatch):
    monkeypatch.delenv("VERITY_DETECTOR_TIMEOUT", raising=False)
    assert default_detector_timeout() == 60.0
    monkeypatch.setenv("VERITY_DETECTOR_TIMEOUT", "2.5")
    assert default_detector_timeout() == 2.5
    assert Pipeline(["exif_camera"]).detector_timeout == 2.5
    monkeypatch.setenv("VERITY_DETECTOR_TIMEOUT", "none")
    assert default_detector_timeout() is None
    monkeypatch.setenv("VERITY_DETECTOR_TIMEOUT", "soon")
    with pytest.raises(ConfigError):
        default_detector_timeout()


def test_cli_detector_timeout_flag(slow_detector, tmp_path, rng, capsys):
    from verity.cli.main import main

    f = tmp_path / "a.png"
    f.write_bytes(_png(rng))
    assert main(["analyze", str(f), "--json", "--detectors", "test_slow", "--detector-timeout", "0.2"]) == 0
    d = json.loads(capsys.readouterr().out)
    (finding,) = d["findings"]
    assert finding["score"] is None and "timed out" in finding["evidence"][0]


def test_apng_frames_are_counted_not_believed(rng):
    """Regression (hostile corpus): Pillow's n_frames for an APNG is the acTL chunk's claim, so a
    still PNG claiming 2^31-1 frames was refused as too_many_frames."""
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    assert load_sample(buf.getvalue()).frames == 4
    with pytest.raises(InputError) as e:
        load_sample(buf.getvalue(), limits=Limits(max_frames=3))
    assert e.value.code == "too_many_frames"
    from tests.hardening.corpus import cases

    liar = next(c for c in cases() if c.name == "apng_claims_2g_frames")
    assert load_sample(liar.data).frames == 1
