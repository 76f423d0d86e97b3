"""``verity watermark embed|detect``: outputs, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.conftest import photo
from verity.cli.main import main
from verity.ops import watermark as wm
from verity.provenance import watermark as W


def _img(tmp_path, name="in.jpg", arr=None):
    p = tmp_path / name
    Image.fromarray(photo("coffee") if arr is None else arr).save(p, quality=92)
    return p


def test_embed_then_detect(tmp_path, capsys):
    src = _img(tmp_path)
    out = tmp_path / "out.png"
    assert main(["watermark", "embed", str(src), "--message", "C0FFEE", "--out", str(out)]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert main(["watermark", "detect", "--json", str(out), str(src)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["marked"] and rows[0]["message"] == "c0ffee" and rows[0]["p_value"] < 1e-6
    assert rows[1]["status"] == "unmarked" and rows[1]["message"] is None


def test_embed_jpeg_output(tmp_path, capsys):
    src = _img(tmp_path)
    out = tmp_path / "out.jpg"
    assert main(["watermark", "embed", str(src), "--message", "01", "--out", str(out), "--quality", "80"]) == 0
    assert main(["watermark", "detect", str(out)]) == 0
    assert "WATERMARKED, message 01" in capsys.readouterr().out


def test_usage_errors(tmp_path, capsys):
    src = _img(tmp_path)
    cases = [
        ["watermark", "embed", str(src), "--message", "xyz", "--out", str(tmp_path / "a.png")],
        ["watermark", "embed", str(src), "--message", "00" * 9, "--out", str(tmp_path / "a.png")],
        ["watermark", "embed", str(src), "--message", "00", "--out", str(tmp_path / "a.gif")],
        ["watermark", "embed", str(src), "--message", "00", "--out", str(src)],
        ["watermark", "embed", str(src), "--message", "00", "--out", str(tmp_path / "a.png"), "--psnr", "5"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err


def test_unreadable_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = _img(tmp_path)
    assert main(["watermark", "detect", str(bad), str(good), str(tmp_path / "missing.jpg")]) == 3
    io = capsys.readouterr()
    assert "no verity watermark" in io.out
    assert len(io.err.strip().splitlines()) == 2
    small = _img(tmp_path, "small.png", np.zeros((32, 32, 3), np.uint8))
    assert main(["watermark", "embed", str(small), "--message", "00", "--out", str(tmp_path / "o.png")]) == 3
    assert main(["watermark", "detect", str(small)]) == 3


def test_existing_output_needs_force(tmp_path, capsys):
    src = _img(tmp_path)
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    assert main(["watermark", "embed", str(src), "--message", "00", "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    assert main(["watermark", "embed", str(src), "--message", "00", "--out", str(out), "--force"]) == 0


def test_detect_reports_known_sd_mark(tmp_path, capsys):
    arr = wm.dwtdct_embed(photo("chelsea"), W.KNOWN_MARKS["Stable Diffusion 1.x (txt2img/img2img)"])
    p = tmp_path / "sd.png"
    Image.fromarray(arr).save(p)
    assert main(["watermark", "detect", str(p)]) == 0
    assert "Stable Diffusion 1.x" in capsys.readouterr().out


def test_no_action_is_usage(capsys):
    assert main(["watermark"]) == 2
