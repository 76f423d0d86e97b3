"""Schemathesis against the OpenAPI document: no 5xx, responses match their documented schemas and
status codes. Bounded (few examples per operation, fixed seed) so it stays well under a minute."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from tests.api.stubs import StubPipeline, jpeg_bytes, solid  # noqa: E402
from verity.api import create_app  # noqa: E402


def _app():
    import atexit
    import shutil
    import tempfile

    data_dir = tempfile.mkdtemp(prefix="verity-fuzz-")
    atexit.register(shutil.rmtree, data_dir, True)
    app = create_app(data_dir=data_dir, pipeline_factory=StubPipeline,
                     token=None, max_upload_bytes=2 * 1024 * 1024, workers=1)
    # one stored analysis so the read routes have something real next to the random ids
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        c.post("/v1/analyses", files={"file": ("seed.jpg", jpeg_bytes(solid(90, (32, 32))), "image/jpeg")})
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
]


class _Fake:
    """Stand-ins for the optional modules, so /v1/verify and /v1/index/search run their full path."""

    @staticmethod
    def verify_bytes(data, mime):
        return {"present": False, "mime": mime, "bytes": len(data)}

    @staticmethod
    def search(sample, k, faces):
        return {"matches": [{"sha256": f"{i:064x}", "kind": "similar", "similarity": 0.5} for i in range(min(k, 3))],
                "faces": [], "pdq_quality": 100, "query_faces": 0}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, monkeypatch):
    from verity.api import integrations

    monkeypatch.setattr(integrations, "_module", lambda name: _Fake)
    monkeypatch.setattr(integrations, "index_backend", lambda: _Fake.search)
    case.call_and_validate(checks=CHECKS)
