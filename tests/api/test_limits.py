"""Limits and safety: upload size (413 before the body is read), token, content sniffing, bad images."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from tests.api.stubs import jpeg_bytes, png_bytes, solid

LIMIT = 4096


def _counting_body(total: int, chunk: int, pulled: list[int]):
    def gen():
        sent = 0
        while sent < total:
            n = min(chunk, total - sent)
            pulled.append(n)
            sent += n
            yield b"\0" * n

    return gen()


def test_declared_length_over_limit_is_413_without_reading_the_body(make_client):
    c = make_client(max_upload_bytes=LIMIT)
    pulled: list[int] = []
    r = c.post("/v1/analyses", content=_counting_body(10 * 1024 * 1024, 65536, pulled),
               headers={"content-length": str(10 * 1024 * 1024), "content-type": "application/octet-stream"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert "4 KB" in r.json()["error"]["message"]
    assert pulled == []  # not one byte of the body was asked for


def test_default_limit_is_100_mb(make_client):
    c = make_client()
    just_over = 100 * 1024 * 1024 + 64 * 1024 + 1
    pulled: list[int] = []
    r = c.post("/v1/analyses", content=_counting_body(just_over, 1 << 20, pulled),
               headers={"content-length": str(just_over), "content-type": "application/octet-stream"})
    assert r.status_code == 413 and pulled == []


def _asgi_post(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """Drive the ASGI app directly with a streamed (chunked) body; return status, body, chunks read."""
    sent = {"status": None, "body": b""}
    state = {"read": 0}

    async def receive():
        i = state["read"]
        state["read"] += 1
        if i < len(chunks):
            return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(msg):
        if msg["type"] == "http.response.start":
            sent["status"] = msg["status"]
        elif msg["type"] == "http.response.body":
            sent["body"] += msg.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/analyses", "raw_path": b"/v1/analyses", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")] + headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    return sent["status"], sent["body"], state["read"]


@pytest.mark.parametrize("ctype", [b"application/octet-stream", b"multipart/form-data; boundary=xyz"])
def test_streamed_body_is_counted_and_reading_stops_at_the_limit(tmp_path, ctype):
    import json

    from tests.api.stubs import StubPipeline
    from verity.api import create_app

    app = create_app(data_dir=tmp_path, max_upload_bytes=LIMIT, pipeline_factory=StubPipeline, token=None)
    chunk = 1024
    head = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
    chunks = [head] + [b"\0" * chunk] * 1000  # about 1 MB offered, no Content-Length
    status, body, read = _asgi_post(app, chunks, [(b"content-type", ctype)])
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    # the limit is the upload size plus 64 KB of multipart framing; reading stopped right after it
    assert read * chunk <= LIMIT + 64 * 1024 + 2 * chunk + len(head)
    assert read < len(chunks)


def test_multipart_file_over_the_limit_is_413(make_client):
    c = make_client(max_upload_bytes=LIMIT)
    r = c.post("/v1/analyses", files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (LIMIT + 10), "image/png")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = c.post("/v1/analyses", files={"file": ("ok.png", png_bytes(solid(7, (8, 8))), "image/png")})
    assert r.status_code == 201


def test_garbage_empty_and_truncated_uploads_are_422_with_input_codes(client, astronaut):
    cases = {
        "not_an_image": b"this is not an image at all" * 10,
        "empty": b"",
        "truncated": jpeg_bytes(astronaut[:128, :128])[:600],
    }
    for code, data in cases.items():
        r = client.post("/v1/analyses", files={"file": ("x.jpg", data, "image/jpeg")})
        assert r.status_code == 422, (code, r.text)
        assert r.json()["error"]["code"] in ({code} if code != "truncated" else {"truncated", "corrupt"})
        assert r.json()["error"]["message"]
    assert client.get("/v1/analyses").json()["total"] == 0  # failures are not stored


def test_decompression_bomb_is_refused(make_client):
    c = make_client(max_pixels=1000)
    r = c.post("/v1/analyses", files={"file": ("big.png", png_bytes(solid(1, (100, 100))), "image/png")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "decompression_bomb"


def test_content_is_sniffed_not_the_name_or_header(client, tmp_path, coffee):
    data = png_bytes(coffee[:40, :50])
    r = client.post("/v1/analyses", files={"file": ("holiday.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["image"]["format"] == "PNG" and doc["filename"] == "holiday.jpg"
    assert (tmp_path / "data" / "uploads" / f"{doc['id']}.png").read_bytes() == data
    # and a JPEG sent as text/plain with a .txt name is still read as a JPEG
    j = jpeg_bytes(coffee[:40, :50])
    r = client.post("/v1/analyses", files={"file": ("notes.txt", j, "text/plain")})
    assert r.status_code == 201 and r.json()["image"]["format"] == "JPEG"
    assert r.json()["image"]["sha256"] == hashlib.sha256(j).hexdigest()


TOKEN = "s3cret-token"


def test_token_is_required_everywhere_but_healthz(make_client, coffee):
    c = make_client(token=TOKEN)
    assert c.get("/healthz").status_code == 200
    doc_id = "0" * 32
    for method, url in [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/openapi.json"), ("GET", "/v1/analyses"),
                        ("GET", f"/v1/analyses/{doc_id}"), ("GET", f"/v1/analyses/{doc_id}/image"),
                        ("POST", "/v1/analyses"), ("POST", "/v1/verify"), ("POST", "/v1/index/search"),
                        ("DELETE", f"/v1/analyses/{doc_id}"), ("GET", "/no/such/route")]:
        r = c.request(method, url)
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.json()["error"]["code"] == "unauthorized"
        assert "www-authenticate" in r.headers
        r = c.request(method, url, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401, (method, url)
    # API routes challenge with Bearer, the page with Basic so a browser asks for it
    assert c.get("/v1/analyses").headers["www-authenticate"].startswith("Bearer")
    assert c.get("/").headers["www-authenticate"].startswith("Basic")
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/v1/analyses", headers=ok).status_code == 200
    basic = {"Authorization": "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()}
    assert c.get("/", headers=basic).status_code == 200
    bad_basic = {"Authorization": "Basic " + base64.b64encode(b"anyone:nope").decode()}
    assert c.get("/", headers=bad_basic).status_code == 401
    r = c.post("/v1/analyses", files={"file": ("c.jpg", jpeg_bytes(coffee[:32, :32]), "image/jpeg")}, headers=ok)
    assert r.status_code == 201
    assert c.get(r.json()["urls"]["image"], headers=ok).status_code == 200
    assert c.get(r.json()["urls"]["image"]).status_code == 401


def test_token_is_checked_before_the_body_is_read(make_client):
    c = make_client(token=TOKEN, max_upload_bytes=LIMIT)
    pulled: list[int] = []
    r = c.post("/v1/analyses", content=_counting_body(1 << 20, 4096, pulled),
               headers={"content-length": str(1 << 20), "content-type": "application/octet-stream"})
    assert r.status_code == 401 and pulled == []


def test_token_from_environment(monkeypatch, tmp_path):
    from verity.api.settings import Settings

    monkeypatch.setenv("VERITY_API_TOKEN", "from-env")
    assert Settings(data_dir=tmp_path).token == "from-env"
    monkeypatch.setenv("VERITY_API_TOKEN", "")
    assert Settings(data_dir=tmp_path).token is None
    monkeypatch.setenv("VERITY_DATA_DIR", str(tmp_path / "x"))
    assert Settings().data_dir == tmp_path / "x"
