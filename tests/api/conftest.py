from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")


@pytest.fixture
def make_client(tmp_path):
    """Build a TestClient over a fresh data folder; keyword arguments go to :class:`Settings`."""
    from fastapi.testclient import TestClient

    from tests.api.stubs import StubPipeline
    from verity.api import create_app

    clients = []

    def make(**kw):
        kw.setdefault("data_dir", tmp_path / "data")
        kw.setdefault("pipeline_factory", StubPipeline)
        kw.setdefault("token", None)
        kw.setdefault("workers", 2)
        app = create_app(**kw)
        c = TestClient(app, raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()
