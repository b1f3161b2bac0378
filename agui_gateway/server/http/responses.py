"""How the API answers: JSON bodies, event streams, NDJSON, and errors (the one place).

Every error a request can end in becomes a response here, in :func:`exception_handlers`
(registered on the app) and nowhere else: the gateway's own refusals
(:mod:`agui_gateway.server.errors`, each with its status and stable ``code``), the
lower rooms' errors they stand for (:func:`~agui_gateway.server.errors.api_error_of`),
Starlette's 404/405 for unknown endpoints, and anything unexpected as a 500. The body
is ``{"error": "<message>", "code": "<code>"}`` plus ``"details"`` when there are any.

An error raised inside a streaming body, after the status and headers went out,
cannot become a 4xx any more: the stream ends and the server logs it.

Streams are :class:`ClosingStreamingResponse`: Starlette's ``StreamingResponse``
cancels the task that iterates the body when the client disconnects, but it never
closes the body's async generator: what the generator holds (a log follower, the
file descriptor of the log it reads, a subscriber slot, the bytes of the event it was
sending) stays until the garbage collector gets to it, which took minutes under load
and let hundreds of descriptors pile up. This response closes it in a ``finally``,
shielded from the cancellation that ended the response, so every stream releases its
resources when its client goes away, deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from http import HTTPStatus
from typing import Any

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import ContentStream, Response, StreamingResponse
from starlette.types import ExceptionHandler, Receive, Scope, Send

from agui_gateway.server.errors import (
    LOWER_ROOM_ERRORS,
    ApiError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    StorageUnavailable,
    api_error_of,
)

log = logging.getLogger("agui_gateway")

# No caching of a stream, and no buffering by a proxy in front (nginx reads this header).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def sse_response(
    body: AsyncIterator[bytes | memoryview], release: Callable[[], None] | None = None
) -> StreamingResponse:
    """An event stream; ``body`` is closed (and ``release`` called) the moment it ends."""
    return ClosingStreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS, release=release)


def ndjson_response(body: AsyncIterator[bytes | memoryview]) -> StreamingResponse:
    return ClosingStreamingResponse(body, media_type="application/x-ndjson")


class ClosingStreamingResponse(StreamingResponse):
    """``release`` (e.g. a stream slot's) runs once the response is over, however it ended."""

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose: Any = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            finally:
                if self._release is not None:
                    self._release()


def error_response(error: ApiError) -> Response:
    return json_response(_error_body(error), error.status, error.headers)


def raw_error_response(error: ApiError) -> bytes:
    """The whole HTTP/1.1 response of ``error`` as bytes, for the connection level
    (``connections.py``), where no request reached the app."""
    body = orjson.dumps(_error_body(error))
    headers = {"content-type": "application/json", "content-length": str(len(body)), **(error.headers or {})}
    head = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + body


def _error_body(error: ApiError) -> dict[str, Any]:
    # "code" is stable and machine-readable; "error" is for people and may change.
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if error.details is not None:
        body["details"] = error.details
    return body


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """What the app registers: every error a request can end in, rendered by :func:`error_response`."""
    # Registered by class (Starlette finds a handler by the exception's MRO) so that they run
    # inside the middleware, CORS included; an ``Exception`` handler runs outside it all.
    refusals: dict[Any, ExceptionHandler] = dict.fromkeys((ApiError, *LOWER_ROOM_ERRORS), _refusal)
    return {
        **refusals,
        # Starlette's router raises HTTPException(404 / 405) for unknown paths and methods.
        404: _no_such_endpoint,
        405: _method_not_allowed,
        # The client went away before its body arrived (or the request deadline closed the
        # connection, connections.py): nobody to answer, nothing failed.
        ClientDisconnect: _client_gone,
        Exception: _internal_error,
    }


async def _refusal(request: Request, exc: Exception) -> Response:
    error = api_error_of(exc)
    assert error is not None, f"no refusal for {type(exc).__name__}"
    if isinstance(error, StorageUnavailable) and error is not exc:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None and 400 <= error.status < 500:
        gateway.metrics.bad_input.labels("request").inc()  # refused requests are counted, not logged
    return error_response(error)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError(f"internal error: {type(exc).__name__}"))


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=400)  # never written: the server drops what is sent to a closed connection


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    return error_response(NotFound(f"no such endpoint: {request.method} {request.url.path}"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}"))
