"""Plain ASGI middleware: bearer-token check, request-body limit, security headers.

They run before FastAPI parses anything, so a request without the token or with a body over the
limit is refused before its body is read.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from verity.api.errors import BodyTooLarge, fmt_size, send_error

#: Routes open without a token.
PUBLIC_PATHS = frozenset({"/healthz"})


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return v
    return None


class TokenAuthMiddleware:
    """Refuse every request but ``/healthz`` that lacks the token (401 ``unauthorized``).

    Accepts ``Authorization: Bearer <token>``, or HTTP Basic with the token as the password (any
    user name) so that a browser can open the page: pages outside ``/v1/`` answer 401 with a
    ``Basic`` challenge and the browser asks for it.
    """

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token.encode("utf-8")

    def _ok(self, value: bytes | None) -> bool:
        if not value:
            return False
        scheme, _, cred = value.strip().partition(b" ")
        scheme = scheme.lower()
        cred = cred.strip()
        if scheme == b"bearer":
            return hmac.compare_digest(cred, self.token)
        if scheme == b"basic":
            try:
                decoded = base64.b64decode(cred, validate=True)
            except ValueError:
                return False
            _, _, password = decoded.partition(b":")
            return hmac.compare_digest(password, self.token)
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self._ok(_header(scope, b"authorization")):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        challenge = 'Bearer realm="verity"'
        if not path.startswith("/v1/") and path != "/openapi.json":
            challenge = 'Basic realm="verity", charset="UTF-8"'
        await send_error(
            send, 401, "unauthorized", "missing or wrong token (send Authorization: Bearer <token>)",
            {"WWW-Authenticate": challenge},
        )


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 ``too_large``.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; a
    chunked body is counted as it streams and reading stops at the first chunk past the limit.
    """

    def __init__(self, app: Any, max_bytes: int, shown_limit: int | None = None):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.shown_limit = int(shown_limit or max_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cl = _header(scope, b"content-length")
        if cl is not None:
            try:
                n = int(cl)
                if n < 0:
                    raise ValueError
            except ValueError:
                await send_error(send, 400, "invalid_request", "Content-Length is not a whole number")
                return
            if n > self.max_bytes:
                await send_error(
                    send, 413, "too_large",
                    f"request body is {fmt_size(n)}, over the {fmt_size(self.shown_limit)} upload limit",
                )
                return
        received = 0
        limit = self.max_bytes
        shown = self.shown_limit

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(shown)
            return message

        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as e:
            if started:
                raise
            await send_error(send, 413, e.code, e.message)


class SecurityHeadersMiddleware:
    """Add ``nosniff``, ``no-referrer`` and a same-origin-only content security policy."""

    #: The page loads nothing from other origins (no CDN); images may be blob: previews.
    PAGE_CSP = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", self.PAGE_CSP.encode()),
                ]
                headers.extend((k, v) for k, v in extra if k not in names)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_headers)
