"""Issue 13: nonsensical limits, named pipes and devices, unreadable folders, "1 detectors"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from verity.cli.main import main
from verity.lab.edits import encode_jpeg, textured_image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(tmp_path, rng):
    p = tmp_path / "photo.jpg"
    p.write_bytes(encode_jpeg(textured_image(rng, (96, 128)), 90))
    return p


@pytest.mark.parametrize("flag", ["--max-mb", "--max-mp"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_nonsensical_limits_are_usage_errors(photo, capsys, flag, value):
    with pytest.raises(SystemExit) as e:  # refused by the argument parser: usage line + one error line
        main(["analyze", str(photo), "--detectors", "jpeg_ela", flag, value])
    err = capsys.readouterr()
    assert e.value.code == 2 and err.out == ""
    errors = [ln for ln in err.err.strip().splitlines() if "error:" in ln]
    assert len(errors) == 1 and flag in errors[0] and "positive" in errors[0]
    assert "Traceback" not in err.err


def test_index_search_limits_are_usage_errors(photo, capsys):
    pytest.importorskip("pymilvus")
    for argv in (["--k", "0"], ["--near-duplicate", "-5"], ["--near-duplicate", "300"]):
        rc = main(["index", "search", str(photo), "--index-dir", str(photo.parent / "none"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, (argv, err)


def _analyze_subprocess(*paths, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "verity.cli.main", "analyze", *map(str, paths), "--detectors",
                           "jpeg_ela", "-q"], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_and_device_are_refused_without_hanging(tmp_path, photo):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    # a subprocess with a timeout: before the fix the open() of the pipe blocked forever
    r = _analyze_subprocess(fifo, "/dev/zero", photo, timeout=120)
    assert r.returncode == 3, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in r.stderr
    assert str(fifo) in err[0] and "named pipe" in err[0]
    assert "/dev/zero" in err[1] and "device" in err[1]
    assert "photo.jpg: " in r.stdout  # the regular file is still analysed


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_inside_a_folder_is_reported(tmp_path, photo):
    os.mkfifo(tmp_path / "pipe.png")
    r = _analyze_subprocess(tmp_path)
    assert r.returncode == 3 and "pipe.png: a named pipe" in r.stderr and "photo.jpg: " in r.stdout


def test_load_sample_refuses_a_pipe_without_opening_it(tmp_path, monkeypatch):
    from verity.core.errors import InputError
    from verity.core.io import load_sample

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    with pytest.raises(InputError, match="named pipe") as e:
        load_sample(fifo)
    assert e.value.code == "not_a_file" and str(fifo) not in opened


def _deny(monkeypatch, denied: set[str]):
    """os.scandir raises PermissionError for these folders: what a non-root user gets for chmod 000 (the
    tests run as root, which chmod does not stop)."""
    real = os.scandir

    def scandir(p="."):
        if os.path.abspath(os.fspath(p)) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(p))
        return real(p)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subfolder_is_reported_exit_3(tmp_path, photo, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.jpg").write_bytes(photo.read_bytes())
    _deny(monkeypatch, {str(locked)})
    rc = main(["analyze", str(tmp_path), "--detectors", "jpeg_ela", "-q"])
    out = capsys.readouterr()
    assert rc == 3
    assert f"{locked}: permission denied" in out.err
    assert "photo.jpg: " in out.out and "hidden.jpg" not in out.out


def test_unreadable_folder_is_not_called_empty(tmp_path, photo, capsys, monkeypatch):
    _deny(monkeypatch, {str(tmp_path)})
    rc = main(["analyze", str(tmp_path), "--detectors", "jpeg_ela"])
    err = capsys.readouterr().err
    assert rc == 3 and "permission denied" in err and "no image files found" not in err
    assert len(err.strip().splitlines()) == 1


def test_index_add_reports_unreadable_folders(tmp_path, photo, capsys, monkeypatch):
    pytest.importorskip("pymilvus")
    _deny(monkeypatch, {str(tmp_path)})
    rc = main(["index", "add", str(tmp_path), "--index-dir", str(tmp_path / "idx")])
    err = capsys.readouterr().err
    assert rc == 3 and "permission denied" in err and "no image files found" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="runs as root, where chmod 000 does not deny reading (covered above by a patched scandir)")
def test_chmod_000_folder_really_denied(tmp_path, photo, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.jpg").write_bytes(photo.read_bytes())
    locked.chmod(0)
    try:
        rc = main(["analyze", str(tmp_path), "--detectors", "jpeg_ela", "-q"])
        assert rc == 3 and "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_one_detector_is_singular():
    from verity.core.fusion import FusionModel, explain
    from verity.core.types import Finding

    f = Finding(detector="jpeg_ela", kind="compression", labels=["edited"], score=0.5, evidence=["nothing"])
    text = explain("inconclusive", {"authentic": 0.4, "ai_generated": 0.2, "edited": 0.2, "face_manipulated": 0.2},
                   [f], FusionModel.load())
    assert "1 detector gave" in text and "1 detectors" not in text
