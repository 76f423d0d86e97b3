"""`verity scan`: output formats, per-file errors, resume, summary, workers, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.scan.conftest import FAST, make_images
from verity.cli.main import main
from verity.core.types import CLASSES
from verity.scan.engine import Progress, iter_pool, run_scan
from verity.scan.inputs import collect_inputs
from verity.scan.output import JOURNAL_SUFFIX, read_results
from verity.scan.rows import COLUMNS, ScanConfig, comparable

pytest.importorskip("pyarrow")


def _by_path(rows):
    return {r["path"]: comparable(r) for r in rows}


def test_jsonl_rows_and_per_file_errors(images, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    rc = main(["scan", str(images), "--out", str(out), "--detectors", FAST])
    cap = capsys.readouterr()
    assert rc == 3  # some files could not be analysed, the others were
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 8 and all(list(r) == list(COLUMNS) for r in rows)
    bad = {r["path"].rsplit("/", 1)[-1]: r for r in rows if r["status"] == "error"}
    assert set(bad) == {"broken.jpg", "empty.png"}
    assert bad["empty.png"]["error_code"] == "empty" and bad["broken.jpg"]["error_code"] in ("truncated", "corrupt")
    assert all(r["verdict"] is None and r["error"] for r in bad.values())
    for r in rows:
        if r["status"] == "ok":
            assert r["verdict"] in CLASSES + ("inconclusive",) and len(r["sha256"]) == 64
            assert abs(sum(r[f"p_{c}"] for c in CLASSES) - 1) < 1e-4
            assert {"exif_camera", "generator_metadata"} <= set(r["scores"]) <= set(FAST.split(","))
            assert r["error"] is None and r["seconds"] > 0 and "total" in r["timings"]
            assert len(r["evidence"]) <= 3 and all(isinstance(e, str) for e in r["evidence"])
    # the summary: counts per verdict, slowest files, errors
    assert "verdicts:" in cap.out and "slowest:" in cap.out and "errors (2" in cap.out
    assert "broken.jpg" in cap.out and "Traceback" not in cap.err


def test_parquet_matches_jsonl_and_leaves_no_journal(images, tmp_path):
    import pyarrow.parquet as pq

    assert main(["scan", str(images), "--out", str(tmp_path / "a.jsonl"), "--detectors", FAST, "-q"]) == 3
    assert main(["scan", str(images), "--out", str(tmp_path / "a.parquet"), "--detectors", FAST, "-q"]) == 3
    assert not (tmp_path / ("a.parquet" + JOURNAL_SUFFIX)).exists()
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.column_names == list(COLUMNS) and table.num_rows == 8
    assert table.schema.metadata[b"verity_scan_schema"] == b"1.0"
    assert _by_path(read_results(tmp_path / "a.parquet")) == _by_path(read_results(tmp_path / "a.jsonl"))


def test_existing_output_needs_resume_or_overwrite(images, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert main(["scan", str(images), "--out", str(out), "--detectors", FAST, "-q"]) == 3
    assert main(["scan", str(images), "--out", str(out), "--detectors", FAST, "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["scan", str(images), "--out", str(out), "--detectors", FAST, "-q", "--overwrite"]) == 3
    assert len(out.read_text().splitlines()) == 8


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_resume_after_partial_output(images, tmp_path, fmt):
    paths = collect_inputs([str(images)])
    cfg = ScanConfig(detectors=tuple(FAST.split(",")))
    full = run_scan(paths, tmp_path / "full.jsonl", config=cfg, progress=False)
    # a killed scan: three complete rows and a fourth cut short in the middle of its line
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    part = tmp_path / f"part.{fmt}"
    journal = part if fmt == "jsonl" else tmp_path / f"part.{fmt}{JOURNAL_SUFFIX}"
    journal.write_text("".join(lines[:3]) + lines[3][:40])
    rep = run_scan(paths, part, config=cfg, progress=False, resume=True)
    assert rep.skipped == 3 and rep.scanned == len(paths) - 3
    rows = read_results(part)
    assert len(rows) == len(paths)  # one row per file, nothing lost, nothing twice
    assert _by_path(rows) == _by_path(full.rows)
    if fmt == "jsonl":
        assert all(json.loads(x) for x in part.read_text().splitlines())  # the cut line is gone
    else:
        assert not journal.exists()
    # resuming a finished scan with new files scans only the new ones
    make_images(images / "more", 2, seed=7, broken=False)
    rep2 = run_scan(collect_inputs([str(images)]), part, config=cfg, progress=False, resume=True)
    assert rep2.scanned == 2 and len(read_results(part)) == len(paths) + 2


def test_two_workers_identical_to_one(images, tmp_path):
    paths = collect_inputs([str(images)])
    one = run_scan(paths, tmp_path / "w1.jsonl", workers=1, progress=False)  # default pipeline
    two = run_scan(paths, tmp_path / "w2.parquet", workers=2, progress=False)
    assert one.scanned == two.scanned == len(paths)
    a, b = _by_path(one.rows), _by_path(read_results(tmp_path / "w2.parquet"))
    assert a == b
    assert sum(r["status"] == "ok" for r in a.values()) == 6


def test_a_file_that_kills_its_worker_is_recorded_and_the_scan_goes_on(tmp_path):
    from tests.scan import _pool_helpers as h

    paths = [str(tmp_path / f"f{i}.jpg") for i in range(6)] + [str(tmp_path / "crash.jpg")]
    rows = list(iter_pool(paths, ScanConfig(), 2, work=h.work, initializer=h.init))
    by = {r["path"]: r for r in rows}
    assert len(rows) == len(by) == 7
    assert by[paths[-1]]["status"] == "error" and by[paths[-1]]["error_code"] == "worker_crashed"
    assert all(by[p]["status"] == "ok" for p in paths[:-1])


def test_progress_line_has_rate_and_eta():
    import io

    s = io.StringIO()
    p = Progress(4, stream=s, every=0.0)
    for st in ("ok", "error", "ok", "ok"):
        p.update({"status": st})
    lines = s.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("scan: 2/4 (50%)") and "img/s" in lines[1] and "ETA" in lines[1] and "1 error" in lines[1]


def test_usage_errors(images, tmp_path, capsys):
    assert main(["scan", str(images), "--out", str(tmp_path / "r.csv")]) == 2
    assert main(["scan", str(tmp_path / "nope"), "--out", str(tmp_path / "r.jsonl")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["scan", str(tmp_path / "empty"), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert main(["scan", str(images), "--out", str(tmp_path / "r.jsonl"), "--workers", "0"]) == 2
    assert main(["scan", str(images), "--out", str(tmp_path / "r.jsonl"), "--detectors", "nope"]) == 2
    assert main(["scan", str(images), "--out", str(tmp_path / "r.jsonl"), "--engine", "local",
                 "--ray-address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ".jsonl or .parquet" in err and "unknown detector" in err


def test_embedded_index_with_parallel_workers_is_refused(images, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    (data / "index" / "milvus.db").mkdir(parents=True)  # what index_exists() looks for
    monkeypatch.setenv("VERITY_DATA_DIR", str(data))
    assert main(["scan", str(images), "--out", str(tmp_path / "r.jsonl"), "--workers", "2"]) == 2
    assert "--no-index" in capsys.readouterr().err


def test_an_output_being_written_is_neither_shared_nor_deleted(images, tmp_path, capsys):
    from verity.scan.output import Journal

    out = tmp_path / "r.jsonl"
    held = Journal(out)  # another scan holds it
    try:
        for flag in ("--resume", "--overwrite"):
            assert main(["scan", str(images), "--out", str(out), "--detectors", FAST, "-q", flag]) == 2
            assert "being written by another scan" in capsys.readouterr().err
        assert out.exists()
    finally:
        held.close()
