"""The FastAPI application: ``create_app(settings)``.

Routes (all JSON errors are ``{"error": {"code", "message"}}``, see :mod:`verity.api.errors`)::

    GET    /                                   the web page (static, same origin, no CDN)
    GET    /healthz                            liveness, open without a token
    POST   /v1/analyses                        analyse an upload (multipart field ``file`` or raw body)
    GET    /v1/analyses                        history, newest first (``limit``, ``offset``)
    GET    /v1/analyses/{id}                   one analysis again
    DELETE /v1/analyses/{id}                   forget it (record and files)
    GET    /v1/analyses/{id}/image             display JPEG
    GET    /v1/analyses/{id}/thumbnail.jpg     160 px JPEG for lists
    GET    /v1/analyses/{id}/heatmaps/{d}.png  overlay of detector ``d``
    GET    /v1/analyses/{id}/faces/{n}.png     crop of face ``n``
    GET    /v1/analyses/{id}/report.html       self-contained HTML report (download)
    GET    /v1/analyses/{id}/timeline.svg      videos: scores over time with thumbnails
    POST   /v1/verify                          Content Credentials (C2PA) of an upload
    POST   /v1/index/search                    nearest images in the local index
    GET    /openapi.json                       this API, with examples
"""



import importlib.resources
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from verity.api.errors import ERROR_CODES, ApiError, install_handlers
from verity.api.settings import Settings

log = logging.getLogger("verity.api")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image or video, as a multipart form field `file` or as the raw request body. "
        "Its format is sniffed from the content (JPEG, PNG, WebP, TIFF, BMP, GIF; MP4, MOV, Matroska/WebM, "
        "AVI, MPEG-TS/PS, FLV, ASF, Ogg); the file name and Content-Type are not trusted.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}},
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _err(*statuses: int) -> dict[int | str, dict[str, Any]]:
    from verity.api.models import ErrorResponse

    words = {400: "Bad request (`invalid_request`, `missing_file`)", 401: "Token missing or wrong (`unauthorized`)",
             404: "No such analysis (`not_found`)", 413: "Upload over the size limit (`too_large`), refused "
             "before the body is read when Content-Length says so",
             415: "Form encoding not accepted (`unsupported_media_type`)",
             422: "Not a readable image or video (`empty`, `not_an_image`, `truncated`, `corrupt`, "
                  "`decompression_bomb`, `no_video_stream`...)",
             501: "Optional module not installed (`not_available`)",
             503: "Busy (`busy`) or optional backend not ready (`unavailable`)"}
    return {s: {"model": ErrorResponse, "description": words.get(s, "error")} for s in statuses}


def _static_dir() -> Path:
    return Path(str(importlib.resources.files("verity.web") / "static"))


def create_app(settings: Settings | None = None, **overrides: Any) -> Any:
    """Build the application.

    Parameters
    ----------
    settings : Settings, optional
        Default: ``Settings()`` (data dir from ``$VERITY_DATA_DIR``, token from ``$VERITY_API_TOKEN``).
    **overrides
        Fields of :class:`Settings` to set instead, e.g. ``data_dir=tmp_path``.
    """
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from verity import SCHEMA_VERSION, __version__
    from verity.api import integrations, models, service
    from verity.api.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware, TokenAuthMiddleware
    from verity.api.store import Store

    if settings is None:
        settings = Settings(**overrides)
    elif overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    store = Store(settings.data_dir)
    analyzer = service.Analyzer(settings, store)
    limits = settings.limits()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        analyzer.shutdown()
        integrations.close_index()

    app = FastAPI(
        title="verity",
        version=__version__,
        summary="Offline forensics of images: authentic, AI-generated, edited or face-manipulated, and where.",
        description="Upload an image to `POST /v1/analyses`; the answer is the JSON of `verity analyze "
        "--json` (docs/schema.md) plus an `id` and the URLs of its heatmaps, face crops, display image "
        "and HTML report. Errors are `{\"error\": {\"code\", \"message\"}}` with stable codes. When the "
        "server has a token (`VERITY_API_TOKEN`), send `Authorization: Bearer <token>` on every route "
        "but `/healthz`.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the OpenAPI document is served as JSON
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.analyzer = analyzer
    install_handlers(app)

    def get_record(analysis_id: str) -> Any:
        rec = store.get(analysis_id)
        if rec is None:
            raise ApiError(404, "not_found", f"no analysis with id {analysis_id[:40]!r}")
        return rec

    def png(data: bytes | None, what: str) -> Response:
        if data is None:
            raise ApiError(404, "not_found", f"no {what}")
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    # -- the page ---------------------------------------------------------------------------------
    static = _static_dir()

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(static / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static), name="static")

    # -- health -----------------------------------------------------------------------------------
    _info: dict[str, Any] = {}

    @app.get("/healthz", response_model=models.Health, tags=["meta"], summary="Liveness and configuration")
    async def healthz() -> Any:
        if "detectors" not in _info:
            def names() -> list[str]:
                pipe = settings.make_pipeline()
                return [getattr(d, "name", type(d).__name__) for d in getattr(pipe, "detectors", [])]

            _info["detectors"] = await run_in_threadpool(names)
        return {
            "status": "ok",
            "version": __version__,
            "schema_version": SCHEMA_VERSION,
            "detectors": _info["detectors"],
            "queue": analyzer.pending,
            "max_upload_bytes": settings.max_upload_bytes,
            "optional": integrations.available(),
        }

    # -- analyses ---------------------------------------------------------------------------------
    @app.post(
        "/v1/analyses",
        status_code=201,
        tags=["analyses"],
        summary="Analyse an image or a video",
        response_model=models.Analysis,
        responses={201: {"description": "The analysis (also stored; see `urls.self`)", "model": models.Analysis},
                   **_err(400, 401, 413, 415, 422, 503)},
        openapi_extra=_UPLOAD_BODY,
    )
    async def create_analysis(
        request: Request,
        filename: str | None = Query(None, max_length=255, description="Label for a raw-body upload (display only)."),
    ) -> Any:
        data, name = await integrations.read_upload(request, settings.max_upload_bytes)
        rec = await analyzer.analyze(data, name or filename)
        doc = service.public_document(rec)
        return JSONResponse(doc, status_code=201, headers={"Location": doc["urls"]["self"]})

    @app.get("/v1/analyses", tags=["analyses"], summary="History of analyses, newest first",
             response_model=models.AnalysisList, responses=_err(400, 401))
    async def list_analyses(
        limit: int = Query(20, ge=1, le=100, description="Items per page."),
        offset: int = Query(0, ge=0, le=10**9, description="Items to skip."),
    ) -> Any:
        recs, total = await run_in_threadpool(store.list, limit, offset)
        nxt = f"/v1/analyses?limit={limit}&offset={offset + limit}" if offset + limit < total else None
        return JSONResponse({"items": [service.summary(r) for r in recs], "total": total, "limit": limit,
                             "offset": offset, "next": nxt})

    @app.get("/v1/analyses/{analysis_id}", tags=["analyses"], summary="One analysis",
             response_model=models.Analysis, responses=_err(401, 404))
    async def get_analysis(analysis_id: str) -> Any:
        return JSONResponse(service.public_document(get_record(analysis_id)))

    @app.delete("/v1/analyses/{analysis_id}", status_code=204, tags=["analyses"], response_class=Response, response_model=None,
                summary="Delete an analysis and its stored files", responses=_err(401, 404))
    async def delete_analysis(analysis_id: str) -> Any:
        if not await run_in_threadpool(store.delete, analysis_id):
            raise ApiError(404, "not_found", f"no analysis with id {analysis_id[:40]!r}")
        return Response(status_code=204)

    @app.get("/v1/analyses/{analysis_id}/image", tags=["analyses"], summary="Display JPEG (oriented, at most 1600 px)",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, **_err(401, 404)})
    async def get_image(analysis_id: str) -> Any:
        rec = get_record(analysis_id)
        path = store.display_path(rec.id)
        if not path.is_file():
            raise ApiError(404, "not_found", "display image missing")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/v1/analyses/{analysis_id}/thumbnail.jpg", tags=["analyses"], summary="Small JPEG for lists (160 px)",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, **_err(401, 404)})
    async def get_thumbnail(analysis_id: str) -> Any:
        rec = get_record(analysis_id)
        data = await run_in_threadpool(service.render_thumbnail, store, rec)
        if data is None:
            raise ApiError(404, "not_found", "display image missing")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/v1/analyses/{analysis_id}/heatmaps/{detector}.png", tags=["analyses"],
             summary="Heatmap overlay of one detector (RGBA PNG, display size)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}, **_err(401, 404)})
    async def get_heatmap(analysis_id: str, detector: str) -> Any:
        rec = get_record(analysis_id)
        if detector not in rec.heatmaps:
            raise ApiError(404, "not_found", f"no heatmap for detector {detector[:60]!r}")
        return png(await run_in_threadpool(service.render_heatmap, store, rec, detector), "heatmap")

    @app.get("/v1/analyses/{analysis_id}/faces/{n}.png", tags=["analyses"], summary="Crop of face n (0-based)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}, **_err(401, 404)})
    async def get_face(analysis_id: str, n: int) -> Any:
        rec = get_record(analysis_id)
        if not 0 <= n < len(rec.result.get("faces") or []):
            raise ApiError(404, "not_found", f"no face {n}")
        return png(await run_in_threadpool(service.render_face, store, rec, n, limits), "face")

    @app.get("/v1/analyses/{analysis_id}/report.html", tags=["analyses"], summary="Self-contained HTML report",
             response_class=HTMLResponse, responses={200: {"content": {"text/html": {}}}, **_err(401, 404)})
    async def get_report(analysis_id: str) -> Any:
        rec = get_record(analysis_id)
        html = await run_in_threadpool(service.render_report, store, rec, limits)
        return HTMLResponse(html, headers={
            "Content-Disposition": f'attachment; filename="verity-report-{rec.id}.html"',
            # the report is self-contained: inline style/script and data: images only
            "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
        })

    @app.get("/v1/analyses/{analysis_id}/timeline.svg", tags=["analyses"],
             summary="Videos: the scores over time, suspicious segments shaded, with thumbnails (SVG)",
             response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}, **_err(401, 404)})
    async def get_timeline(analysis_id: str) -> Any:
        rec = get_record(analysis_id)
        data = await run_in_threadpool(service.render_timeline, store, rec)
        if data is None:
            raise ApiError(404, "not_found", "no timeline: this analysis is not of a video")
        return Response(data, media_type="image/svg+xml", headers={
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'"})

    # -- provenance and index ---------------------------------------------------------------------
    @app.post("/v1/verify", tags=["provenance"], summary="Read and validate Content Credentials (C2PA)",
              response_model=models.VerifyResult,
              responses=_err(400, 401, 413, 415, 422, 501, 503), openapi_extra=_UPLOAD_BODY)
    async def verify(request: Request) -> Any:
        data, _ = await integrations.read_upload(request, settings.max_upload_bytes)
        return JSONResponse(await analyzer.run(integrations.verify_sync, analyzer, data))

    @app.post("/v1/index/search", tags=["index"], summary="Nearest images in the local index",
              response_model=models.IndexSearchResult,
              responses=_err(400, 401, 413, 415, 422, 501, 503), openapi_extra=_UPLOAD_BODY)
    async def index_search(
        request: Request,
        k: int = Query(10, ge=1, le=100, description="Neighbours retrieved per kind."),
        faces: bool = Query(False, description="Also detect the faces and look them up (slower)."),
    ) -> Any:
        data, _ = await integrations.read_upload(request, settings.max_upload_bytes)
        return JSONResponse(await analyzer.run(integrations.index_search_sync, analyzer, data, k, faces))

    _customise_openapi(app)

    # middleware: the last added runs first (CORS, then token, then body limit, then headers)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, shown_limit=settings.max_upload_bytes)
    if settings.token:
        app.add_middleware(TokenAuthMiddleware, token=settings.token)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    return app


def _customise_openapi(app: Any) -> None:
    """Add the optional bearer scheme and the error-code table to the generated document."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary,
                          description=app.description, routes=app.routes)
        comps = doc.setdefault("components", {})
        comps.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer",
            "description": "Only when the server was started with VERITY_API_TOKEN.",
        }
        doc["security"] = [{}, {"bearer": []}]
        doc["x-error-codes"] = dict(ERROR_CODES)
        # FastAPI adds its own 422 validation schema; ours answers 400 with ErrorResponse instead.
        # Errors are JSON on every route, also those whose success is an image or HTML.
        err_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for item in doc.get("paths", {}).values():
            for op in item.values():
                if not isinstance(op, dict):
                    continue
                r = op.setdefault("responses", {})
                if "422" in r and "HTTPValidationError" in str(r["422"]):
                    del r["422"]
                    r.setdefault("400", {"description": "Bad request (`invalid_request`)"})
                for status, resp in r.items():
                    if status[:1] in "45":
                        resp["content"] = dict(err_content)
        schemas = comps.get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            if name in schemas and "HTTPValidationError" not in str(doc.get("paths")):
                schemas.pop(name)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi
