"""Routes of the HTTP API over the stub pipeline: create, fetch, history, pictures, report, delete."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.api.stubs import jpeg_bytes, png_bytes, solid
from tests.conftest import photo
from verity.core.types import CLASSES, KINDS


def _post(client, data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg"):
    return client.post("/v1/analyses", files={"file": (name, data, ctype)})


def test_analysis_has_the_cli_schema_plus_id_and_urls(client, astronaut):
    data = jpeg_bytes(astronaut[:256, :320])
    r = _post(client, data)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["location"] == f"/v1/analyses/{doc['id']}"
    for key in ("schema_version", "path", "verdict", "confidence", "probabilities", "explanation", "image",
                "findings", "faces", "errors", "timings"):
        assert key in doc
    assert doc["path"] is None  # docs/schema.md: null for uploads
    assert doc["filename"] == "photo.jpg"
    assert set(doc["probabilities"]) == set(CLASSES)
    assert abs(sum(doc["probabilities"].values()) - 1) < 1e-4
    assert doc["image"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["image"]["format"] == "JPEG" and (doc["image"]["width"], doc["image"]["height"]) == (320, 256)
    assert {f["detector"] for f in doc["findings"]} >= {"stub_brightness", "stub_edges", "stub_faces"}
    assert all(f["kind"] in KINDS for f in doc["findings"])
    # heatmap paths in the findings are the API's own URLs
    bright = next(f for f in doc["findings"] if f["detector"] == "stub_brightness")
    assert bright["heatmap"]["path"] == doc["urls"]["heatmaps"]["stub_brightness"]
    assert doc["urls"]["faces"] == [f"/v1/analyses/{doc['id']}/faces/0.png"]
    # the score depends on this image (not a canned answer)
    gray = 0.299 * astronaut[:256, :320, 0] + 0.587 * astronaut[:256, :320, 1] + 0.114 * astronaut[:256, :320, 2]
    assert bright["score"] == pytest.approx(gray.mean() / 255, abs=0.02)


def test_get_returns_the_same_document(client, coffee):
    doc = _post(client, jpeg_bytes(coffee[:200, :300])).json()
    again = client.get(doc["urls"]["self"])
    assert again.status_code == 200
    assert again.json() == doc


def test_raw_body_upload_with_filename_label(client, coffee):
    data = png_bytes(coffee[:64, :96])
    r = client.post("/v1/analyses?filename=cup.png", content=data, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "cup.png" and r.json()["image"]["format"] == "PNG"


def test_heatmap_face_image_and_report(client, astronaut):
    doc = _post(client, jpeg_bytes(astronaut[:240, :320])).json()
    r = client.get(doc["urls"]["heatmaps"]["stub_brightness"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.mode == "RGBA" and im.size == (320, 240)  # display size, overlay aligned with the image
    # a second request is served from the cache and identical
    assert client.get(doc["urls"]["heatmaps"]["stub_brightness"]).content == r.content
    disp = client.get(doc["urls"]["image"])
    assert disp.status_code == 200 and disp.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(disp.content)).size == (320, 240)
    face = client.get(doc["urls"]["faces"][0])
    assert face.status_code == 200 and face.headers["content-type"] == "image/png"
    fw, fh = Image.open(io.BytesIO(face.content)).size
    assert 96 <= fw <= 160 and 80 <= fh <= 140  # the 96x84 box plus a margin
    rep = client.get(doc["urls"]["report"])
    assert rep.status_code == 200 and rep.headers["content-type"].startswith("text/html")
    assert "attachment" in rep.headers["content-disposition"]
    assert "stub_brightness" in rep.text and "data:image/png;base64," in rep.text
    assert doc["verdict"].replace("_", " ") in rep.text


def test_missing_pictures_are_404_json(client, coffee):
    doc = _post(client, jpeg_bytes(coffee[:64, :64])).json()
    base = doc["urls"]["self"]
    for url in (f"{base}/heatmaps/nope.png", f"{base}/heatmaps/stub_exif.png", f"{base}/faces/3.png",
                f"{base}/faces/-1.png", "/v1/analyses/" + "0" * 32, "/v1/analyses/..%2F..%2Fetc%2Fpasswd",
                "/v1/analyses/" + "0" * 32 + "/image", "/v1/analyses/" + "0" * 32 + "/report.html"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "not_found"


def test_history_is_paginated_newest_first(client):
    ids = [_post(client, png_bytes(solid(v)), name=f"img{v}.png").json()["id"] for v in (10, 120, 240)]
    page1 = client.get("/v1/analyses?limit=2").json()
    assert page1["total"] == 3 and [i["id"] for i in page1["items"]] == ids[::-1][:2]
    assert page1["next"] == "/v1/analyses?limit=2&offset=2"
    page2 = client.get(page1["next"]).json()
    assert [i["id"] for i in page2["items"]] == ids[:1] and page2["next"] is None
    item = page2["items"][0]
    assert item["filename"] == "img10.png" and item["format"] == "PNG" and item["width"] == 64
    thumb = client.get(item["urls"]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 48)  # small images are not enlarged
    assert client.get("/v1/analyses?limit=0").status_code == 400
    assert client.get("/v1/analyses?limit=abc").json()["error"]["code"] == "invalid_request"


def test_analyses_persist_across_restarts(make_client, tmp_path, coffee):
    first = make_client(data_dir=tmp_path / "d")
    doc = _post(first, jpeg_bytes(coffee[:80, :80])).json()
    second = make_client(data_dir=tmp_path / "d")
    again = second.get(doc["urls"]["self"])
    assert again.status_code == 200 and again.json()["image"]["sha256"] == doc["image"]["sha256"]
    assert second.get(doc["urls"]["heatmaps"]["stub_edges"]).status_code == 200


def test_delete_removes_record_and_files(client, tmp_path, coffee):
    doc = _post(client, jpeg_bytes(coffee[:80, :80])).json()
    client.get(doc["urls"]["heatmaps"]["stub_brightness"])  # fill the cache
    data_dir = tmp_path / "data"
    assert any(data_dir.joinpath("uploads").iterdir())
    assert client.delete(doc["urls"]["self"]).status_code == 204
    assert client.get(doc["urls"]["self"]).status_code == 404
    assert client.delete(doc["urls"]["self"]).status_code == 404
    for sub in ("uploads", "arrays", "display", "cache"):
        assert not any(p for p in data_dir.joinpath(sub).rglob("*") if p.is_file()), sub


def test_client_file_name_never_reaches_the_filesystem(client, tmp_path, coffee):
    evil = "../../../../tmp/evil\x00name\n.png"
    r = _post(client, png_bytes(coffee[:32, :32]), name=evil, ctype="image/png")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert "/" not in doc["filename"] and "\n" not in doc["filename"] and "\x00" not in doc["filename"]
    stored = list((tmp_path / "data" / "uploads").iterdir())
    assert [p.name for p in stored] == [f"{doc['id']}.png"]


def test_errors_have_stable_json_shape(client):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.put("/v1/analyses")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = client.post("/v1/analyses", data={"file": "not a file"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = client.post("/v1/analyses", files={"other": ("a.png", b"x", "image/png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_file"
    r = client.post("/v1/analyses", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 422) and "error" in r.json()


def test_healthz_and_page(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["detectors"][:2] == ["stub_brightness", "stub_edges"]
    assert h["max_upload_bytes"] == 100 * 1024 * 1024
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    # every asset the page names is served locally (no CDN)
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert asset in page.text and client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        body = client.get(asset).text
        assert "http://" not in body and "https://" not in body and "@import" not in body
    assert client.get("/static/../api/app.py").status_code == 404


def test_cors_is_off_by_default_and_opt_in(make_client, tmp_path):
    off = make_client()
    r = off.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    on = make_client(data_dir=tmp_path / "cors", cors_origins=("https://newsroom.example",))
    r = on.get("/healthz", headers={"Origin": "https://newsroom.example"})
    assert r.headers.get("access-control-allow-origin") == "https://newsroom.example"
    r = on.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_openapi_document_has_examples_and_error_codes(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for p in ("/v1/analyses", "/v1/analyses/{analysis_id}", "/v1/analyses/{analysis_id}/heatmaps/{detector}.png",
              "/v1/analyses/{analysis_id}/faces/{n}.png", "/v1/analyses/{analysis_id}/image",
              "/v1/analyses/{analysis_id}/report.html", "/v1/verify", "/v1/index/search", "/healthz"):
        assert p in paths, p
    post = paths["/v1/analyses"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"201", "413", "422", "401"} <= set(post["responses"])
    assert doc["components"]["schemas"]["Analysis"]["examples"][0]["verdict"] == "edited"
    assert doc["x-error-codes"]["too_large"] == 413
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    json.dumps(doc)


def test_busy_queue_answers_503(make_client, coffee):
    c = make_client(max_queue=0)
    r = _post(c, jpeg_bytes(coffee[:32, :32]))
    assert r.status_code == 503 and r.json()["error"]["code"] == "busy" and r.headers["retry-after"]


class _FakeModule:
    def __init__(self, **fns):
        self.__dict__.update(fns)


def test_verify_and_index_search_use_optional_modules(client, monkeypatch, coffee):
    from verity.api import integrations

    data = jpeg_bytes(coffee[:64, :64])
    monkeypatch.setattr(integrations, "_module", lambda name: None)
    monkeypatch.setattr("verity.core.registry.list_detectors", lambda default_only=False: [])
    for url in ("/v1/verify", "/v1/index/search"):
        r = client.post(url, files={"file": ("a.jpg", data, "image/jpeg")})
        assert r.status_code == 501 and r.json()["error"]["code"] == "not_available"

    seen = {}

    def verify_bytes(data, mime):
        seen["verify"] = (len(data), mime)
        return {"present": True, "valid": False, "signer": "Example CA", "raw": b"\x01\x02"}

    def search(sample, k, faces):
        seen["search"] = (sample.format, k, faces)
        return {"matches": [{"id": "photo-1", "distance": 4}, {"id": "photo-2", "distance": 30}][:k], "faces": []}

    mods = {"verity.provenance.c2pa": _FakeModule(verify_bytes=verify_bytes)}
    monkeypatch.setattr(integrations, "_module", mods.get)
    monkeypatch.setattr(integrations, "index_backend", lambda: search)
    r = client.post("/v1/verify", files={"file": ("a.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["c2pa"]["signer"] == "Example CA" and body["c2pa"]["raw"] == "0102"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and seen["verify"] == (len(data), "image/jpeg")
    r = client.post("/v1/index/search?k=1", content=data, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json()["matches"] == [{"id": "photo-1", "distance": 4}] and seen["search"] == ("JPEG", 1, False)
    # garbage is still 422 there
    r = client.post("/v1/verify", content=b"nope", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_an_image"


def test_verify_index_backend_failure_is_503(client, monkeypatch, coffee):
    from verity.api import integrations
    from verity.core.errors import VerityError

    def search(sample, k, faces):
        raise VerityError("no index has been built yet (run verity index add)")

    monkeypatch.setattr(integrations, "index_backend", lambda: search)
    r = client.post("/v1/index/search", content=jpeg_bytes(coffee[:32, :32]),
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert "no index" in r.json()["error"]["message"]


def test_verify_with_the_real_c2pa_module(client, coffee):
    """A lab image signed with development credentials reads back as a valid, untrusted manifest."""
    pytest.importorskip("c2pa")
    vc = pytest.importorskip("verity.provenance.c2pa")
    if not hasattr(vc, "sign_synthetic") or not hasattr(vc, "make_dev_credentials"):
        pytest.skip("verity.provenance.c2pa has no signing helpers")
    signed = vc.sign_synthetic(jpeg_bytes(coffee[:96, :96]), credentials=vc.make_dev_credentials())
    r = client.post("/v1/verify", files={"file": ("lab.jpg", signed, "image/jpeg")})
    assert r.status_code == 200, r.text
    c2pa = r.json()["c2pa"]
    assert c2pa["present"] is True and c2pa["validation_state"] in ("Valid", "Trusted")
    assert "trainedAlgorithmicMedia" in c2pa["digital_source_types"]
    assert c2pa["signature_ok"] is True and c2pa["content_modified"] is False
    plain = client.post("/v1/verify", files={"file": ("plain.jpg", jpeg_bytes(coffee[:64, :64]), "image/jpeg")})
    assert plain.status_code == 200 and plain.json()["c2pa"]["present"] is False


def test_stored_upload_removed_from_disk_is_404_not_500(client, tmp_path, astronaut):
    doc = _post(client, jpeg_bytes(astronaut[:64, :64])).json()
    for p in (tmp_path / "data" / "uploads").iterdir():
        p.unlink()
    for url in (doc["urls"]["report"], doc["urls"]["faces"][0]):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", url
    assert client.get(doc["urls"]["self"]).status_code == 200  # the record itself is still there
