"""``POST /v1/index/search`` against a real (Milvus Lite) index built in a temporary folder."""

from __future__ import annotations

import pytest

from tests.api.stubs import jpeg_bytes

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_index_search_finds_the_known_fake(make_client, tmp_path, monkeypatch, astronaut, coffee):
    pytest.importorskip("pymilvus")
    pytest.importorskip("pdqhash")
    pytest.importorskip("milvus_lite")
    from verity.api import integrations
    from verity.core.io import load_sample
    from verity.index.features import image_record
    from verity.index.store import IndexStore

    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path / "verity-data"))
    monkeypatch.delenv("VERITY_MILVUS_URI", raising=False)
    c = make_client()
    query = jpeg_bytes(astronaut[:256, :256], quality=90)
    # before any index exists the route says so
    r = c.post("/v1/index/search", content=query, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"

    fake = jpeg_bytes(astronaut[:256, :256], quality=75)  # a re-encoded copy: a near duplicate, not the same bytes
    other = jpeg_bytes(coffee[:256, :256], quality=90)
    try:
        recs = [image_record(load_sample(fake, name="fakes/astronaut.jpg"), label="known_fake", fake_class="edited",
                             source="test", faces=False),
                image_record(load_sample(other, name="real/coffee.jpg"), label="real", faces=False)]
        recs[0].path = "/srv/newsroom-archive/fakes/astronaut.jpg"  # as `verity index add` stores it: absolute
        recs[1].path = "/srv/newsroom-archive/real/coffee.jpg"
        with IndexStore(create=True) as store:
            store.add(recs)
        r = c.post("/v1/index/search?k=2", content=query, headers={"content-type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        body = r.json()
        top = body["matches"][0]
        assert top["kind"] == "near_duplicate" and top["label"] == "known_fake" and top["pdq_distance"] <= 31
        assert body["sha256"] == load_sample(query).sha256
        # the server's file system layout is not an API client's business: the file name only
        assert top["name"] == "astronaut.jpg" and "path" not in top
        assert "/srv" not in r.text and "newsroom-archive" not in r.text
    finally:
        integrations.close_index()
