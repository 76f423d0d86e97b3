"""Manifests and folders into path lists."""

from __future__ import annotations

import json
import os

import pytest

from verity.scan.inputs import ManifestError, collect_inputs, read_manifest


def test_folder_is_searched_recursively_and_paths_are_absolute(images):
    (images / "sub").mkdir()
    (images / "sub" / "x.jpg").write_bytes((images / "photo_000.jpg").read_bytes())
    (images / "notes.txt").write_text("not an image")
    got = collect_inputs([str(images)])
    assert all(os.path.isabs(p) for p in got)
    assert str(images / "sub" / "x.jpg") in got
    assert not any(p.endswith("notes.txt") for p in got)
    assert len(got) == 9


def test_manifest_formats_resolve_relative_to_the_manifest(tmp_path):
    (tmp_path / "m").mkdir()
    csv_m = tmp_path / "m" / "list.csv"
    csv_m.write_text('path,class\nimgs/a.jpg,real\n"imgs/b c.png",fake\n/abs/x.jpg,real\n')
    assert read_manifest(csv_m) == [str(tmp_path / "m/imgs/a.jpg"), str(tmp_path / "m/imgs/b c.png"), "/abs/x.jpg"]
    jl = tmp_path / "m" / "list.jsonl"
    jl.write_text(json.dumps({"path": "a.jpg", "x": 1}) + "\n\n" + json.dumps("b.jpg") + "\n")
    assert read_manifest(jl) == [str(tmp_path / "m/a.jpg"), str(tmp_path / "m/b.jpg")]
    txt = tmp_path / "m" / "list.txt"
    txt.write_text("# a comment\na.jpg\n\n  b.jpg  \na.jpg\n")
    assert collect_inputs([str(txt)]) == [str(tmp_path / "m/a.jpg"), str(tmp_path / "m/b.jpg")]  # deduplicated


@pytest.mark.parametrize("name,text,msg", [
    ("bad.csv", "file,class\na.jpg,real\n", "'path' column"),
    ("bad.jsonl", '{"path": "a.jpg"}\nnot json\n', "bad.jsonl:2"),
    ("bad2.jsonl", '{"file": "a.jpg"}\n', "'path' string"),
])
def test_bad_manifests_are_one_line_errors(tmp_path, name, text, msg):
    (tmp_path / name).write_text(text)
    with pytest.raises(ManifestError, match=msg) as e:
        collect_inputs([str(tmp_path / name)])
    assert e.value.exit_code == 2


def test_missing_source_is_an_error_but_missing_listed_file_is_not(tmp_path):
    with pytest.raises(ManifestError, match="no such file or folder"):
        collect_inputs([str(tmp_path / "nope")])
    (tmp_path / "l.txt").write_text("missing.jpg\n")
    assert collect_inputs([str(tmp_path / "l.txt")]) == [str(tmp_path / "missing.jpg")]


def test_scan_package_sits_below_the_interfaces():
    import subprocess
    import sys

    code = ("import sys, verity.scan.engine, verity.scan.output, verity.scan.inputs, verity.scan.rows, "
            "verity.scan.ray_engine; print([m for m in sys.modules if m.startswith(('verity.cli', 'verity.api', "
            "'verity.web')) or m in ('torch', 'ray', 'pyarrow')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"verity.scan imports an interface or a heavy module at import time: {out}"
