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
