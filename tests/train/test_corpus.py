"""The corpus builder: recipe validation, reading blobs out of a bare git snapshot, hashes, drops."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess

import numpy as np
import pytest

from verity.train import corpus as C

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _png(seed: int, size=(300, 280)) -> bytes:
    from PIL import Image

    a = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _grid_px(pad: int) -> np.ndarray:
    """A 2 x 3 grid of 300 px random tiles, ``pad`` px black separators around and between them."""
    t = 300
    a = np.zeros((2 * t + 3 * pad, 3 * t + 4 * pad, 3), np.uint8)
    rng = np.random.default_rng(9)
    for r in range(2):
        for c in range(3):
            y, x = pad + r * (t + pad), pad + c * (t + pad)
            a[y : y + t, x : x + t] = rng.integers(20, 236, (t, t, 3))
    return a


def _grid_png(pad: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_grid_px(pad)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def snapshot(tmp_path):
    """A bare snapshot of a fake repository owner/name in the fetch tool's layout, and its commit."""
    work = tmp_path / "work"
    (work / "samples").mkdir(parents=True)
    (work / "photos").mkdir()
    files = {"samples/a.png": _png(1), "samples/b.png": _png(2), "photos/c.png": _png(3), "samples/tiny.png": _png(4, (40, 40)),
             "grids/g.png": _grid_png(pad=0), "grids/padded.png": _grid_png(pad=2)}
    (work / "grids").mkdir()
    for k, v in files.items():
        (work / k).write_bytes(v)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = lambda *a, cwd=work: subprocess.run(["git", *a], cwd=cwd, env=env, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", ".")
    run("commit", "-q", "-m", "x")
    root = tmp_path / "mirror"
    root.mkdir()
    run("clone", "-q", "--bare", str(work), str(root / "owner+name" / "repo"), cwd=tmp_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True).stdout.strip()
    return root, commit, files


def _recipe(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(C.RECIPE_COLUMNS)
        w.writerows(rows)


def _row(commit, p, data, label="ai_generated", family="fam", repo="owner/name"):
    return [repo, commit, p, hashlib.sha256(data).hexdigest(), label, family, "MIT", f"g:{p}", "", "", ""]


def test_add_build_and_manifest(snapshot, tmp_path):
    root, commit, files = snapshot
    entries, skipped = C.entries_from_snapshot("owner/name", ["samples"], "ai_generated", "fam", "MIT",
                                               snapshots=[str(root)], min_bytes=100)
    assert sorted(e.path for e in entries) == ["samples/a.png", "samples/b.png"]
    assert [s[0] for s in skipped] == ["samples/tiny.png"]  # below 256 px
    assert all(e.commit == commit and e.sha256 == hashlib.sha256(files[e.path]).hexdigest() for e in entries)
    rec = tmp_path / "recipe.csv"
    C.write_recipe(rec, entries + [C.Entry("owner/name", commit, "photos/c.png", hashlib.sha256(files["photos/c.png"]).hexdigest(),
                                            "authentic", "real", "MIT", "g:c")])
    out = tmp_path / "out"
    res = C.build(rec, out, snapshots=[str(root)], progress=False)
    assert (res.written, res.kept, res.failed) == (3, 0, [])
    from verity.train.data import read_dataset

    recs = read_dataset(out)
    assert sorted(r.label for r in recs) == ["ai_generated", "ai_generated", "authentic"]
    for r in recs:
        assert hashlib.sha256(open(r.path, "rb").read()).hexdigest() in {hashlib.sha256(v).hexdigest() for v in files.values()}
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert {r["width"] for r in rows} == {"280"} and {r["format"] for r in rows} == {"png"}
    # a rebuild keeps the files
    res2 = C.build(rec, out, snapshots=[str(root)], progress=False)
    assert (res2.written, res2.kept) == (0, 3)


def test_hash_mismatch_and_missing_blob_fail_rows(snapshot, tmp_path):
    root, commit, files = snapshot
    rec = tmp_path / "r.csv"
    bad = _row(commit, "samples/a.png", b"other bytes")
    _recipe(rec, [bad, _row(commit, "samples/nope.png", b"x"), _row(commit, "samples/b.png", files["samples/b.png"])])
    res = C.build(rec, tmp_path / "out", snapshots=[str(root)], progress=False)
    assert res.written == 1
    why = sorted(w for _, w in res.failed)
    assert why[0].startswith("not in the snapshot") and why[1].startswith("sha256 mismatch")
    assert not (tmp_path / "out" / C.read_recipe(rec)[0].out_relpath()).exists()


def test_missing_snapshot_names_the_fetch(snapshot, tmp_path):
    root, commit, files = snapshot
    rec = tmp_path / "r.csv"
    _recipe(rec, [_row(commit, "samples/a.png", files["samples/a.png"]),
                  _row(commit, "x.png", b"x", repo="someone/absent")])
    with pytest.raises(C.SnapshotMissing, match="fetch github:someone/absent"):
        C.build(rec, tmp_path / "out", snapshots=[str(root)], progress=False)
    res = C.build(rec, tmp_path / "out", snapshots=[str(root)], skip_missing=True, progress=False)
    assert res.written == 1 and res.missing_repos == ["someone/absent"]


@pytest.mark.parametrize("change,msg", [
    (lambda r: r.__setitem__(4, "fake"), "label"),
    (lambda r: r.__setitem__(1, "abc"), "commit"),
    (lambda r: r.__setitem__(3, "zz"), "sha256"),
    (lambda r: r.__setitem__(0, "noslash"), "repo"),
    (lambda r: r.__setitem__(5, "real"), "generator family"),
])
def test_recipe_validation(tmp_path, change, msg):
    row = ["o/n", "a" * 40, "p.png", "b" * 64, "ai_generated", "fam", "MIT", "g", "", "", ""]
    change(row)
    rec = tmp_path / "r.csv"
    _recipe(rec, [row])
    with pytest.raises(C.CorpusError, match=msg):
        C.read_recipe(rec)


def test_duplicate_rows_rejected(tmp_path):
    row = ["o/n", "a" * 40, "p.png", "b" * 64, "ai_generated", "fam", "MIT", "g", "", "", ""]
    rec = tmp_path / "r.csv"
    _recipe(rec, [row, row])
    with pytest.raises(C.CorpusError, match="listed twice"):
        C.read_recipe(rec)


def test_drop_flagged_removes_rows_and_files(snapshot, tmp_path):
    root, commit, files = snapshot
    rec = tmp_path / "recipe.csv"
    _recipe(rec, [_row(commit, "samples/a.png", files["samples/a.png"]), _row(commit, "samples/b.png", files["samples/b.png"])])
    out = tmp_path / "out"
    C.build(rec, out, snapshots=[str(root)], progress=False)
    flagged = out / C.read_recipe(rec)[0].out_relpath()
    report = f"IDENTICAL {flagged}\n2 images checked, 1 flagged\n"
    dropped = C.drop_flagged(rec, out, report, tmp_path / "dropped.csv")
    assert [e.path for e in dropped] == ["samples/a.png"]
    assert [e.path for e in C.read_recipe(rec)] == ["samples/b.png"]
    assert hashlib.sha256(files["samples/a.png"]).hexdigest() in C.read_drop_list(tmp_path / "dropped.csv")
    res = C.build(rec, out, snapshots=[str(root)], progress=False)
    assert res.removed == 1 and not flagged.exists()


def test_cli_build_exit_codes(snapshot, tmp_path, capsys):
    from verity.cli.main import main

    root, commit, files = snapshot
    rec = tmp_path / "r.csv"
    _recipe(rec, [_row(commit, "samples/a.png", files["samples/a.png"]), _row(commit, "x.png", b"x", repo="a/b")])
    assert main(["corpus", "build", "--recipe", str(rec), "--out", str(tmp_path / "o"), "--snapshots", str(root), "-q"]) == 4
    assert "fetch github:a/b" in capsys.readouterr().err
    _recipe(rec, [_row(commit, "samples/a.png", b"wrong")])
    assert main(["corpus", "build", "--recipe", str(rec), "--out", str(tmp_path / "o"), "--snapshots", str(root), "-q"]) == 3
    assert main(["corpus", "build", "--recipe", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.parametrize("name,grid,pad", [("grids/g.png", "2x3", 0), ("grids/padded.png", "auto", 2)])
def test_grid_tiles(snapshot, tmp_path, name, grid, pad):
    from PIL import Image

    root, commit, files = snapshot
    entries, skipped = C.entries_from_snapshot("owner/name", ["grids"], "ai_generated", "fam", "MIT", snapshots=[str(root)],
                                               include=name.split("/")[1], grid=grid, min_bytes=100)
    assert len(entries) == 6 and not skipped
    assert len({e.crop for e in entries}) == 6 and all(e.sha256 == hashlib.sha256(files[name]).hexdigest() for e in entries)
    rec = tmp_path / "recipe.csv"
    C.write_recipe(rec, entries)
    assert [e.crop for e in C.read_recipe(rec)] == [e.crop for e in sorted(entries, key=lambda e: e.path)]
    out = tmp_path / "out"
    res = C.build(rec, out, snapshots=[str(root)], progress=False)
    assert res.written == 6 and not res.failed
    px = _grid_px(pad)
    for e in entries:
        x0, y0, x1, y1 = map(int, e.crop.split(","))
        tile = np.asarray(Image.open(out / e.out_relpath()).convert("RGB"))
        assert tile.shape == (300, 300, 3) and np.array_equal(tile, px[y0:y1, x0:x1])
    assert C.build(rec, out, snapshots=[str(root)], progress=False).kept == 6


def test_bad_crop_rejected(tmp_path):
    row = ["o/n", "a" * 40, "p.png", "b" * 64, "ai_generated", "fam", "MIT", "g", "", "", "10,10,5,20"]
    rec = tmp_path / "r.csv"
    _recipe(rec, [row])
    with pytest.raises(C.CorpusError, match="bad crop"):
        C.read_recipe(rec)


def test_non_bare_snapshot_is_found_and_built(snapshot, tmp_path):
    """The fetch tool sometimes brings a repository as ``owner+name/repo/.git`` (a clone with a work tree)."""
    root, commit, files = snapshot
    other = tmp_path / "mirror2"
    other.mkdir()
    subprocess.run(["git", "clone", "-q", str(root / "owner+name" / "repo"), str(other / "Owner+Name" / "repo")],
                   check=True, capture_output=True)
    (other / "Owner+Name" / "repo" / "samples" / "a.png").write_bytes(b"edited work tree: must not be read")
    found = C.find_snapshot("owner/name", [other])
    assert found is not None and found.name == ".git"
    rec = tmp_path / "r.csv"
    _recipe(rec, [_row(commit, "samples/a.png", files["samples/a.png"])])
    res = C.build(rec, tmp_path / "out", snapshots=[str(other)], progress=False)
    assert (res.written, res.failed) == (1, [])
