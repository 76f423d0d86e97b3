"""A scan killed with SIGKILL loses no completed row, leaves no worker behind, and --resume finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import verity
from tests.scan.conftest import make_images
from verity.scan.output import JOURNAL_SUFFIX, read_results

pytest.importorskip("pyarrow")
SRC = str(Path(verity.__file__).resolve().parents[1])


def _complete_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(x) for x in data[: data.rfind(b"\n") + 1].splitlines()]


def _gone(pgid: int, timeout: float) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("fmt,workers", [("jsonl", 1), ("parquet", 2)])
def test_sigkill_mid_scan_loses_no_completed_row(tmp_path, fmt, workers):
    paths = make_images(tmp_path / "imgs", 12, size=(240, 320))
    out = tmp_path / f"r.{fmt}"
    journal = out if fmt == "jsonl" else tmp_path / f"r.{fmt}{JOURNAL_SUFFIX}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(Path(__file__).resolve().parents[2])]))
    cmd = [sys.executable, "-m", "verity.cli.main", "scan", str(tmp_path / "imgs"), "--out", str(out),
           "--workers", str(workers), "-q"]  # the default pipeline: slow enough to be killed mid-way
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        t_end = time.monotonic() + 240
        seen: list[dict] = []
        while time.monotonic() < t_end and proc.poll() is None:
            seen = _complete_rows(journal)
            if len(seen) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        assert len(seen) >= 3
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, no chance to clean up
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _gone(proc.pid, 10), "processes of the killed scan are still running"
    after = {r["path"]: r for r in read_results(out)}
    assert len(after) < len(paths)
    for r in seen:  # every row that was complete at the kill is still there, unchanged
        assert after[r["path"]] == r
    if fmt == "parquet":
        assert not out.exists() and journal.exists()
    resume = [("1" if a == str(workers) and cmd[i - 1] == "--workers" else a) for i, a in enumerate(cmd)]
    res = subprocess.run(resume + ["--resume"], env=env, capture_output=True, text=True, timeout=600)  # 1 worker
    assert res.returncode == 3, res.stderr[-800:]  # the broken and the empty file
    final = read_results(out)
    assert sorted(r["path"] for r in final) == sorted(str(p) for p in paths)
    final_by = {r["path"]: r for r in final}
    for p, r in after.items():  # nothing done before the kill was redone
        assert final_by[p] == r
    if fmt == "parquet":
        assert not journal.exists()


def test_only_the_driver_killed_workers_exit_by_themselves(tmp_path):
    make_images(tmp_path / "imgs", 16, size=(240, 320), broken=False)
    out = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(Path(__file__).resolve().parents[2])]))
    cmd = [sys.executable, "-m", "verity.cli.main", "scan", str(tmp_path / "imgs"), "--out", str(out),
           "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t_end = time.monotonic() + 240
        while time.monotonic() < t_end and proc.poll() is None and len(_complete_rows(out)) < 1:
            time.sleep(0.05)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)  # only the driver: the workers must notice and stop
        proc.wait(30)
        assert _gone(proc.pid, 15), "pool workers outlived the killed driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
