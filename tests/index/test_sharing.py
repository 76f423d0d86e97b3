"""Several processes on one embedded index (issue 13): a running ``verity serve`` used to lock every other
command out with a traceback. The first process holds Milvus Lite and publishes its port; the others go
through it, take over when it stops, and a holder that cannot share is named in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.index._synthetic import synthetic_record

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")
pytest.importorskip("milvus_lite", reason="the [index] extra is not installed")
pytest.importorskip("pdqhash", reason="the [index] extra is not installed")

from verity.index.store import ENDPOINT, IndexBusy, IndexStore, describe_process, lock_holder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO), "VERITY_INDEX_WAIT": "2"}


def _make_index(d: Path, n: int = 12) -> list[str]:
    s = IndexStore(d, create=True)
    try:
        return s.add([synthetic_record(i) for i in range(n)])
    finally:
        s.close()


class Child:
    """``tests.index._hold_child`` in a subprocess; ends when its stdin closes (or on kill)."""

    def __init__(self, index_dir: Path, mode: str):
        self.p = subprocess.Popen([sys.executable, "-m", "tests.index._hold_child", str(index_dir), mode], cwd=REPO,
                                  env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        line = self.p.stdout.readline()
        assert line.startswith("ready"), line + self.p.stderr.read()

    def lines_until(self, last: str) -> list[str]:
        out = []
        for line in self.p.stdout:
            if line.strip() == last:
                return out
            out.append(line.strip())
        raise AssertionError("child ended early: " + self.p.stderr.read())

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(60)
        return self.p.stderr.read()

    def kill(self) -> None:
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(30)


def _verity(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verity.cli.main", *argv], cwd=REPO, env=env or ENV,
                          capture_output=True, text=True, timeout=300)


def _images(d: Path, n: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)  # blocky, so PDQ quality is high
        img = np.kron(base, np.ones((8, 8, 1), np.uint8))
        Image.fromarray(img).save(d / f"{i:02d}.png")
    return d


@pytest.mark.slow
def test_cli_stats_add_search_analyze_next_to_a_process_holding_the_index(tmp_path):
    data = tmp_path / "data"
    index = data / "index"  # the default index of VERITY_DATA_DIR, which index_match looks up
    _make_index(index)
    imgs = _images(tmp_path / "imgs", 3)
    env = {**ENV, "VERITY_DATA_DIR": str(data)}
    holder = Child(index, "read")  # what `verity serve` keeps open
    try:
        r = _verity("index", "stats", "--index-dir", str(index), "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["images"] == 12 and "Traceback" not in r.stderr
        r = _verity("index", "add", str(imgs), "--index-dir", str(index), "--no-faces", "--json", "-q", env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert [json.loads(x)["status"] for x in r.stdout.splitlines()] == ["added"] * 3
        r = _verity("index", "search", str(imgs / "01.png"), "--index-dir", str(index), "--no-faces", "--json",
                    env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert json.loads(r.stdout)["matches"][0]["kind"] == "exact"
        r = _verity("analyze", str(imgs / "02.png"), "--detectors", "index_match", "--json", env=env)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        f = next(f for f in json.loads(r.stdout)["findings"] if f["detector"] == "index_match")
        text = json.dumps(f)
        assert "could not be searched" not in text and "02.png" in text, text
    finally:
        err = holder.stop()
    assert "Traceback" not in err, err
    s = IndexStore(index, read_only=True)
    try:
        assert s.count() == 15  # the additions made through the holder are in the database
    finally:
        s.close()


@pytest.mark.slow
def test_reader_sees_writes_of_another_process_and_takes_over_when_it_stops(tmp_path):
    acked = _make_index(tmp_path)
    writer = Child(tmp_path, "write")  # holds the database; we go through it
    reader = IndexStore(tmp_path, read_only=True)
    try:
        assert reader.shared_with == writer.p.pid
        new = writer.lines_until("done")
        assert len(new) == 10 and reader.contains(new) == set(new)
        # the writer's journal is not checkpointed yet: the reader must not trust the stale PDQ table
        assert reader.search_pdq(synthetic_record(503).pdq, 1) == [(new[3], 0)]
        err = writer.stop()  # checkpoints, stops its Milvus Lite
        assert "Traceback" not in err, err
        # the next operation re-opens the database here and is repeated
        assert reader.count() == 22
        assert reader.shared_with is None and lock_holder(tmp_path / "milvus.db") == os.getpid()
        assert json.loads((tmp_path / ENDPOINT).read_text())["pid"] == os.getpid()
        assert reader.search_pdq(synthetic_record(507).pdq, 1) == [(new[7], 0)]
        assert reader.contains(acked) == set(acked)
    finally:
        reader.close()
    assert not (tmp_path / ENDPOINT).exists()


@pytest.mark.slow
def test_writer_survives_the_holder_being_killed(tmp_path):
    _make_index(tmp_path)
    holder = Child(tmp_path, "read")
    w = IndexStore(tmp_path, checkpoint_every=1000)
    try:
        assert w.shared_with == holder.p.pid
        acked = w.add([synthetic_record(i) for i in range(100, 106)])
        holder.kill()  # SIGKILL: whatever it had not flushed of our writes is gone
        acked += w.add([synthetic_record(i) for i in range(106, 110)])  # reconnects, replays, writes
        assert w.shared_with is None
        assert w.contains(acked) == set(acked) and w.count() == 22
    finally:
        w.close()
    s = IndexStore(tmp_path, read_only=True)
    try:
        assert s.contains(acked) == set(acked)
    finally:
        s.close()


@pytest.mark.slow
def test_a_holder_that_does_not_share_is_named_in_one_line(tmp_path):
    _make_index(tmp_path, 3)
    foreign = Child(tmp_path, "lock")
    try:
        with pytest.raises(IndexBusy, match=f"in use by process {foreign.p.pid}"):
            IndexStore(tmp_path, read_only=True, wait=0.3)
        r = _verity("index", "stats", "--index-dir", str(tmp_path))
        assert r.returncode == 1 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"in use by process {foreign.p.pid}" in lines[0], r.stderr
        assert "cannot be shared" in lines[0]
    finally:
        foreign.stop()


@pytest.mark.slow
def test_second_writer_process_waits_then_is_named(tmp_path):
    _make_index(tmp_path, 3)
    w = IndexStore(tmp_path)
    try:
        r = _verity("index", "add", str(_images(tmp_path / "imgs", 1)), "--index-dir", str(tmp_path), "--no-faces")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        assert "is being written by this process" not in lines[0] and f"process {os.getpid()}" in lines[0]
    finally:
        w.close()


def test_describe_process_names_verity_commands():
    assert describe_process(None) == "another process"
    assert describe_process(os.getpid()).startswith("this process")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "verity"], stdout=subprocess.DEVNULL)
    try:
        import time

        deadline = time.time() + 20
        while describe_process(p.pid) != f"process {p.pid} (verity)" and time.time() < deadline:
            time.sleep(0.05)  # until the child has exec'd
        assert describe_process(p.pid) == f"process {p.pid} (verity)"
    finally:
        p.kill()
        p.wait()
