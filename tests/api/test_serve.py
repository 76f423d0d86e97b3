"""``verity serve`` on a real socket: prints its URL, serves the API, refuses oversize bodies early."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.api.stubs import jpeg_bytes, solid

httpx = pytest.importorskip("httpx")


def _start(tmp_path, extra_args=("--max-upload-mb", "1"), extra_env=None):
    env = {**os.environ, "VERITY_API_TOKEN": "", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    for k in ("VERITY_MAX_MB", "VERITY_MAX_MP"):
        if k not in (extra_env or {}):
            env.pop(k, None)
    return subprocess.Popen(
        [sys.executable, "-m", "verity", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--log-level", "warning", *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


@pytest.fixture
def server(tmp_path):
    proc = _start(tmp_path)
    yield from _serve(proc)


def _serve(proc):
    url = None
    deadline = time.time() + 60
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"verity serving on (http://127\.0\.0\.1:\d+/)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("server did not start:\n" + "".join(lines))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_serve_prints_url_and_answers(server):
    with httpx.Client(base_url=server, timeout=30, trust_env=False) as c:
        h = c.get("/healthz").json()
        assert h["status"] == "ok" and h["max_upload_bytes"] == 1024 * 1024
        r = c.post("/v1/analyses", files={"file": ("a.jpg", jpeg_bytes(solid(128, (32, 32))), "image/jpeg")})
        assert r.status_code == 201, r.text
        assert c.get(r.json()["urls"]["image"]).status_code == 200
        assert c.get("/").status_code == 200


def test_oversize_declared_body_is_refused_before_it_is_sent(server):
    host, port = re.match(r"http://([\d.]+):(\d+)/", server).groups()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        # announce 500 MB and send none of it: the answer must come anyway
        s.sendall(b"POST /v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 524288000\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b'"too_large"' in body


def test_serve_usage_errors():
    r = subprocess.run([sys.executable, "-m", "verity", "serve", "--port", "70000"], capture_output=True, text=True)
    assert r.returncode == 2 and "--port" in r.stderr
    r = subprocess.run([sys.executable, "-m", "verity", "serve", "--detectors", "no_such_detector"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no_such_detector" in r.stderr


@pytest.mark.parametrize("args,expected_mb", [((), 2), (("--max-upload-mb", "3"), 3)],
                         ids=["environment-without-flag", "flag-wins"])
def test_upload_limit_from_environment_and_flag(tmp_path, args, expected_mb):
    gen = _serve(_start(tmp_path, extra_args=args, extra_env={"VERITY_MAX_MB": "2"}))
    url = next(gen)
    try:
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as c:
            assert c.get("/healthz").json()["max_upload_bytes"] == expected_mb * 1024 * 1024
    finally:
        gen.close()


@pytest.mark.parametrize("var", ["VERITY_MAX_MB", "VERITY_MAX_MP"])
def test_malformed_limit_variable_is_one_line_and_exit_2(tmp_path, var):
    proc = _start(tmp_path, extra_args=(), extra_env={var: "lots"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and var in lines[0] and "Traceback" not in out
