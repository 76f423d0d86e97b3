"""JSON errors with stable codes: ``{"error": {"code": "...", "message": "..."}}``.

Codes (HTTP status): ``unauthorized`` (401), ``not_found`` (404), ``method_not_allowed`` (405),
``invalid_request`` (400), ``missing_file`` (400), ``too_large`` (413), ``unsupported_media_type``
(415), the :class:`~verity.core.errors.InputError` codes for unreadable images and videos (422:
``empty``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``, ``decompression_bomb``,
``no_video_stream``),
``not_available`` (501, optional module not installed), ``unavailable`` (503, optional backend
not ready), ``busy`` (503, analysis queue full), ``internal`` (500).
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("verity.api")

#: Every code the API returns, with its HTTP status.
ERROR_CODES: dict[str, int] = {
    "invalid_request": 400,
    "missing_file": 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "too_large": 413,
    "unsupported_media_type": 415,
    "empty": 422,
    "not_an_image": 422,
    "unsupported_format": 422,
    "truncated": 422,
    "corrupt": 422,
    "decompression_bomb": 422,
    "unreadable": 422,
    "not_found_input": 422,
    "no_video_stream": 422,
    "not_a_video": 422,
    "is_video": 422,
    "internal": 500,
    "not_available": 501,
    "unavailable": 503,
    "busy": 503,
}


class ApiError(Exception):
    """An error answered as JSON with a stable ``code``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(ApiError):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int):
        super().__init__(413, "too_large", f"request body is over the {fmt_size(limit)} upload limit")


def fmt_size(n: int | float) -> str:
    """Bytes as people read them: ``100 MB``, ``512 KB``, ``900 bytes`` (binary units)."""
    if n >= 1024 * 1024:
        v = n / (1024 * 1024)
        return f"{v:.0f} MB" if v >= 10 or v == int(v) else f"{v:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{int(n)} bytes"


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


def input_error(e: Exception) -> ApiError:
    """Map a :class:`~verity.core.errors.InputError` to 413 (too large) or 422 (unreadable)."""
    code = getattr(e, "code", "unreadable") or "unreadable"
    status = 413 if code == "too_large" else 422
    return ApiError(status, code, str(e))


async def send_error(send: Any, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    """Send a JSON error from plain ASGI code (middleware)."""
    body = error_body(code, message)
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        hdrs.append((b"connection", b"close"))
    for k, v in (headers or {}).items():
        hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


def _allowed_methods(request: Any) -> list[str]:
    """Every method some route accepts on this path (Starlette lists only the first route's)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"}) if hasattr(route, "matches") else (None, None)
        route_methods = getattr(route, "methods", None)
        if match in (Match.FULL, Match.PARTIAL) and route_methods:
            methods |= set(route_methods)
    return sorted(methods)


def install_handlers(app: Any) -> None:
    """Make every error, including FastAPI's own, answer in the JSON shape above."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def resp(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):  # noqa: ANN001
        headers = dict(exc.headers)
        if exc.status == 413:
            headers.setdefault("Connection", "close")
        return resp(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):  # noqa: ANN001
        codes = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 413: "too_large", 415: "unsupported_media_type"}
        code = codes.get(exc.status_code, "invalid_request" if exc.status_code < 500 else "internal")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such route: {request.url.path}"
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {' or '.join(allowed) or 'another method'}"
        return resp(exc.status_code, code, detail, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc: RequestValidationError):  # noqa: ANN001
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
        return resp(400, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):  # noqa: ANN001
        log.exception("internal error on %s %s", request.method, request.url.path)
        return resp(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
