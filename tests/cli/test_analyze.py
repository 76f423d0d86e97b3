"""`verity analyze`: exit codes, JSON schema, HTML report, heatmap files, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from verity.cli.main import main
from verity.core.types import CLASSES
from verity.lab.edits import camera_exif, encode_jpeg, make_splice, sd_png, textured_image


@pytest.fixture
def images(tmp_path, rng):
    a = textured_image(rng, (200, 280))
    b = textured_image(rng, (200, 280))
    files = {
        "photo.jpg": encode_jpeg(a, 90, exif=camera_exif()),
        "splice.jpg": make_splice(a, b, rng).data,
        "gen.png": sd_png(b),
    }
    for k, v in files.items():
        (tmp_path / k).write_bytes(v)
    return tmp_path


def test_json_lines_schema(images, capsys):
    rc = main(["analyze", "--json", str(images)])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 3
    for d in lines:
        for key in ("path", "verdict", "probabilities", "findings", "faces", "schema_version", "explanation"):
            assert key in d
        assert set(d["probabilities"]) == set(CLASSES)
        assert abs(sum(d["probabilities"].values()) - 1) < 1e-4
        assert d["verdict"] in CLASSES + ("inconclusive",)
        for f in d["findings"]:
            assert {"detector", "score", "labels", "evidence", "heatmap"} <= set(f)
            assert f["score"] is None or 0 <= f["score"] <= 1


def test_unreadable_input_exit_3_others_still_reported(images, capsys):
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (images / "empty.png").write_bytes(b"")
    rc = main(["analyze", "--json", str(images)])
    cap = capsys.readouterr()
    assert rc == 3
    docs = [json.loads(x) for x in cap.out.strip().splitlines()]
    assert sum(d["verdict"] is not None for d in docs) == 3
    errs = {d["path"].split("/")[-1]: d["error"]["code"] for d in docs if d["verdict"] is None}
    assert set(errs) == {"broken.jpg", "empty.png"}
    assert errs["empty.png"] == "empty" and errs["broken.jpg"] in ("truncated", "corrupt")
    err_lines = [x for x in cap.err.splitlines() if x.startswith("verity: ")]
    assert len(err_lines) == 2 and all("Traceback" not in x for x in cap.err.splitlines())


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyze"])
    assert e.value.code == 2
    assert main(["analyze", "--detectors", "no_such_detector", __file__]) == 2


def test_html_and_heatmaps(images, tmp_path):
    out = tmp_path / "r.html"
    heat = tmp_path / "heat"
    rc = main(["analyze", "-q", "--html", str(out), "--heatmaps", str(heat), str(images / "splice.jpg")])
    assert rc == 0
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "splice.jpg" in text
    assert "http://" not in text and "https://" not in text  # self-contained
    for p in heat.glob("*.png"):
        assert p.stat().st_size > 0


def test_human_output_starts_with_verdict_line(images, capsys):
    assert main(["analyze", str(images / "gen.png")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(str(images / "gen.png") + ": ")
    assert first.split(": ")[1].split()[0].lower() in CLASSES + ("inconclusive",)


def test_help_is_lazy():
    code = (
        "import sys\n"
        "from verity.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('numpy', 'torch', 'cv2', 'onnxruntime', 'PIL', 'fastapi', 'pymilvus', 'c2pa', 'sklearn') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"`verity --help` imports heavy modules: {out}"


@pytest.mark.parametrize("module", ["verity", "verity.cli.main"])
def test_trainer_options_are_registered_whichever_module_runs(module):
    # `python -m verity.cli.main` used to run a second copy of the module whose CURRENT_ARGV stayed
    # empty, so `train fusion` came up without its options
    r = subprocess.run([sys.executable, "-m", module, "train", "fusion", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--data" in r.stdout
