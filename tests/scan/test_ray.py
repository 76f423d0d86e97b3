"""`verity scan --engine ray` on a private local Ray gives the local engine's rows (one Ray start)."""

from __future__ import annotations

import pytest

from verity.cli.main import main
from verity.scan.output import read_results
from verity.scan.rows import comparable

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # Ray internals


@pytest.fixture(scope="module")
def ray_and_local(tmp_path_factory):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'verity[scale]')")
    pytest.importorskip("ray.data", reason="ray[data] is not installed (pip install 'verity[scale]')")
    from tests.scan.conftest import make_images

    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("ray_scan")
    mp.setenv("VERITY_DATA_DIR", str(tmp / "data"))
    mp.delenv("VERITY_MILVUS_URI", raising=False)
    try:
        make_images(tmp / "imgs", 5)
        rc_local = main(["scan", str(tmp / "imgs"), "--out", str(tmp / "local.jsonl"), "-q"])
        rc_ray = main(["scan", str(tmp / "imgs"), "--out", str(tmp / "ray.parquet"), "--engine", "ray",
                       "--workers", "2", "--batch-size", "2", "-q"])
    finally:
        mp.undo()
    return rc_local, rc_ray, read_results(tmp / "local.jsonl"), read_results(tmp / "ray.parquet")


def test_ray_engine_gives_the_local_rows(ray_and_local):
    rc_local, rc_ray, local, ray_rows = ray_and_local
    assert rc_local == rc_ray == 3  # the broken and the empty file are error rows, not failures
    assert len(local) == len(ray_rows) == 7
    a = {r["path"]: comparable(r) for r in local}
    b = {r["path"]: comparable(r) for r in ray_rows}
    assert a == b
    assert sum(r["status"] == "ok" for r in ray_rows) == 5
    assert all(len(r["scores"]) >= 10 for r in ray_rows if r["status"] == "ok")  # the default pipeline ran


def test_local_start_retries_once_after_a_startup_timeout(monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'verity[scale]')")
    pytest.importorskip("ray.data", reason="ray[data] is not installed (pip install 'verity[scale]')")
    from verity.scan import ray_engine
    from verity.scan.engine import ScanError

    calls, shutdowns = [], []

    def flaky_init(**kw):
        calls.append(kw)
        if len(calls) == 1:
            raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", flaky_init)
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(1))
    mod, started = ray_engine.start_ray(2)
    assert mod is ray and started and len(calls) == 2 and len(shutdowns) == 1
    # a start that keeps failing ends in one clear error after LOCAL_START_ATTEMPTS tries
    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw) or (_ for _ in ()).throw(Exception("timed out")))
    with pytest.raises(ScanError, match="cannot start a local Ray: timed out"):
        ray_engine.start_ray(2)
    assert len(calls) == ray_engine.LOCAL_START_ATTEMPTS
