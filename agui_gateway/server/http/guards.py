"""Browser-facing safety: a web page the user has open must not drive a local gateway.

With no tokens (the loopback default) the gateway trusts whoever can reach it, and a
browser can reach it on behalf of any page: a cross-origin ``POST`` with a
"simple" content type (``text/plain``) needs no CORS preflight, and DNS rebinding
points a foreign name at 127.0.0.1 so the page's reads become same-origin. So,
before routing and before any body is read:

* without tokens (and without ``--insecure``), the ``Host`` header must name a
  loopback address (``localhost``, ``127.x.y.z``, ``::1``): a rebound name is
  refused; and an ``Origin`` header, when present, must be the gateway's own
  origin or a configured CORS origin: a foreign page is refused;
* with or without tokens, ``POST`` bodies must be declared JSON
  (``application/json`` or ``+json``): no form or ``text/plain`` request a page
  can send without a preflight gets through. A ``POST`` without a body and
  without a content type (``/stop``) is allowed.

Answers are JSON 4xx like every other error. CORS itself stays opt-in
(:mod:`agui_gateway.server.app`).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from agui_gateway.server.errors import ApiError, Forbidden, UnsupportedMediaType
from agui_gateway.server.http.auth import is_loopback
from agui_gateway.server.http.responses import error_response


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header value, without port (IPv6 brackets removed)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BrowserGuard:
    """ASGI middleware enforcing the rules of the module docstring."""

    def __init__(self, app: ASGIApp, *, open_access: bool, cors_origins: Iterable[str]) -> None:
        self.app = app
        self._open_access = open_access  # no tokens and not --insecure: loopback-only rules
        self._origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                # Outside the app's exception handlers (it runs before routing): rendered here,
                # by the same function.
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiError | None:
        headers = Headers(scope=scope)
        if self._open_access:
            host = headers.get("host")
            if host is not None and not is_loopback(host_name(host)):
                return Forbidden(
                    f"Host {host!r} is not a loopback address: without tokens the gateway answers "
                    "only requests addressed to localhost (configure tokens to serve other names)"
                )
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, scope, host):
                return Forbidden(
                    f"requests from pages of origin {origin!r} are refused: without tokens only the "
                    "gateway's own pages and configured CORS origins may call it"
                )
        if scope["method"] == "POST":
            content_type = headers.get("content-type")
            if content_type is None:
                if _has_body(headers):
                    return UnsupportedMediaType("a POST body must be sent with content-type: application/json")
            elif not is_json_media_type(content_type):
                return UnsupportedMediaType(f"content type {content_type!r} is not accepted: send application/json")
        return None

    def _origin_allowed(self, origin: str, scope: Scope, host: str | None) -> bool:
        lowered = origin.strip().lower()
        if "*" in self._origins or lowered in self._origins:
            return True
        scheme = scope.get("scheme", "http")
        return host is not None and lowered == f"{scheme}://{host.strip().lower()}"


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return headers.get("transfer-encoding") is not None or (length is not None and length.strip() not in ("", "0"))
