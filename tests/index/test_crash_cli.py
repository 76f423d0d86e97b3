"""SIGKILL in the middle of ``verity index add``: nothing acknowledged is lost, nothing is left corrupt."""

from __future__ import annotations

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

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")
pytest.importorskip("milvus_lite", reason="the [index] extra is not installed")
pytest.importorskip("pdqhash", reason="the [index] extra is not installed")

from verity.index.store import IndexStore  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigkill_during_index_add_keeps_every_acknowledged_image(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(40):
        base = np.random.default_rng(i).integers(0, 255, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(np.kron(base, np.ones((8, 8, 1), np.uint8))).save(imgs / f"{i:02d}.png")
    index = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "verity.cli.main", "index", "add", str(imgs), "--index-dir", str(index),
           "--no-faces", "--json", "-q", "--batch", "3"]
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    acked: dict[str, str] = {}
    deadline = time.time() + 240
    try:
        while len(acked) < 10 and time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            d = json.loads(line)
            acked[d["sha256"]] = d["path"]
        os.kill(p.pid, signal.SIGKILL)  # the next batch is being computed or written
        for line in p.stdout:  # lines printed before the kill were acknowledged too
            d = json.loads(line)
            acked[d["sha256"]] = d["path"]
    finally:
        p.kill()
        p.wait(30)
    assert 10 <= len(acked) < 40, "the add finished before it could be killed; make the folder bigger"

    s = IndexStore(index)  # a writer: replays the journal
    try:
        assert s.contains(list(acked)) == set(acked)
        n_after_kill = s.count()
        assert n_after_kill >= len(acked)
        recs = s.fetch(list(acked))
        for sha, path in acked.items():
            assert Path(recs[sha]["path"]).name == Path(path).name
        from verity.core.io import load_sample
        from verity.index.features import compute_features
        from verity.index.search import search

        sha, path = next(iter(acked.items()))
        res = search(s, compute_features(load_sample(path), faces=False), k=3, faces=False)
        assert res.matches[0].kind == "exact" and res.matches[0].sha256 == sha
    finally:
        s.close()
    # the index stays usable: the same command completes it, skipping what is there
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    statuses = [json.loads(x)["status"] for x in r.stdout.splitlines()]
    assert statuses.count("already_indexed") == n_after_kill and len(statuses) == 40
    s = IndexStore(index, read_only=True)
    try:
        assert s.count() == 40
    finally:
        s.close()
