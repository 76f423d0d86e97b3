"""Crash safety of batch output: ``verity analyze DIR --json > out.jsonl`` killed with SIGKILL keeps
every result it wrote, each as a complete JSON line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=85)
        (folder / f"img_{i:04d}.jpg").write_bytes(buf.getvalue())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_batch_loses_no_written_line(tmp_path):
    _images(tmp_path / "in", 200)
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with out.open("wb") as fh:
        p = subprocess.Popen(
            [sys.executable, "-m", "verity.cli.main", "analyze", str(tmp_path / "in"), "--json",
             "--detectors", "copy_move,noise_inconsistency,jpeg_double"],
            stdout=fh, stderr=subprocess.DEVNULL, env=env,
        )
        t0 = time.monotonic()
        try:
            while out.read_bytes().count(b"\n") < 5:
                assert p.poll() is None, "finished before it could be killed"
                assert time.monotonic() - t0 < 120, "no output after 120 s"
                time.sleep(0.01)
            os.kill(p.pid, signal.SIGKILL)
        finally:
            p.wait(30)
    assert p.returncode == -signal.SIGKILL
    data = out.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: must be nothing (no half line)
    assert tail == b"", f"half a line left behind: {tail[:80]!r}"
    assert 5 <= len(lines) < 200
    paths = [json.loads(ln)["path"] for ln in lines]  # every written line is valid JSON
    assert paths == sorted(paths) and len(set(paths)) == len(paths)


def test_write_line_survives_short_writes(monkeypatch):
    from verity.cli import analyze

    r, w = os.pipe()
    real_write = os.write
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))  # the kernel may accept less than asked

    class Out:
        def fileno(self):
            return w

        def flush(self):
            pass

    monkeypatch.setattr(analyze.os, "write", short_write)
    monkeypatch.setattr(analyze.sys, "stdout", Out())
    analyze.write_line(json.dumps({"a": "x" * 50}))
    os.close(w)
    got = os.read(r, 1000)
    os.close(r)
    assert got == (json.dumps({"a": "x" * 50}) + "\n").encode() and len(calls) > 1


def test_html_report_is_written_atomically(tmp_path):
    from verity.cli.analyze import write_text_atomic

    target = tmp_path / "r.html"
    target.write_text("old")
    write_text_atomic(target, "new report")
    assert target.read_text() == "new report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left
