"""The API's errors: one exception class per kind of refusal, turned into JSON in one place.

A handler (or anything it calls: request parsing, the authorizer) raises an
:class:`ApiError`; :func:`exception_handlers`, registered on the app, renders it
as ``{"error": "<message>"}`` (plus ``"details"`` when there are any) with the
error's status and headers. Nothing else writes an error response.

Each error also has a ``code``, a stable name for its kind. It is not in the
body: clients see exactly the bodies they saw before the codes existed.

An error raised inside a streaming body, after the status and headers went out,
cannot become a 4xx any more: the stream ends and the server logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from agui_gateway.server.responses import json_response
from agui_gateway.store.base import InvalidThreadId, StoreError

log = logging.getLogger("agui_gateway")


class ApiError(Exception):
    """A request the API refuses (or fails), with what the client is told."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers) if headers else None


class _FixedApiError(ApiError):
    """An :class:`ApiError` whose class fixes the status, the code and the headers."""

    STATUS: ClassVar[int]
    CODE: ClassVar[str]
    HEADERS: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(self.STATUS, self.CODE, message, details, self.HEADERS)


class BadRequest(_FixedApiError):
    """400: a request the API cannot read (malformed body, header or parameter)."""

    STATUS = 400
    CODE = "bad_request"


class InvalidThread(BadRequest):
    """400: a thread id that breaks the store's rule (it never becomes a path)."""

    CODE = "invalid_thread_id"


class BadResumePosition(BadRequest):
    """400: a Last-Event-ID or ``after`` that is no event id, or one the thread never had."""

    CODE = "invalid_resume_position"


class Unauthorized(_FixedApiError):
    """401: no bearer token, or an unknown one."""

    STATUS = 401
    CODE = "unauthorized"
    HEADERS: ClassVar[Mapping[str, str] | None] = {"www-authenticate": "Bearer"}


class Forbidden(_FixedApiError):
    """403: a token without the access the request needs."""

    STATUS = 403
    CODE = "forbidden"


class NotFound(_FixedApiError):
    """404: no such agent, or no such endpoint."""

    STATUS = 404
    CODE = "not_found"


class MethodNotAllowed(_FixedApiError):
    """405: an endpoint that does not take the request's method."""

    STATUS = 405
    CODE = "method_not_allowed"


class Conflict(_FixedApiError):
    """409: the thread's run state does not allow it (a run already open, or none to stop)."""

    STATUS = 409
    CODE = "conflict"


class HistoryMismatch(Conflict):
    """409: with server-side history, a caller's message rewrites one the thread holds."""

    CODE = "history_conflict"


class PayloadTooLarge(_FixedApiError):
    """413: a body over the configured limit."""

    STATUS = 413
    CODE = "payload_too_large"


class UnsupportedMediaType(_FixedApiError):
    """415: a POST body not declared as JSON (what a foreign page can send without a preflight)."""

    STATUS = 415
    CODE = "unsupported_media_type"


RETRY_AFTER_S = 5


class ServiceUnavailable(_FixedApiError):
    """503: the gateway cannot take this now; retry after ``Retry-After`` seconds. The
    connection is closed, which gives its descriptor back at once."""

    STATUS = 503
    CODE = "unavailable"
    HEADERS: ClassVar[Mapping[str, str] | None] = {"retry-after": str(RETRY_AFTER_S), "connection": "close"}


class TooManyStreams(ServiceUnavailable):
    """503: a stream cap (per process, per token) is reached."""

    CODE = "too_many_streams"


class StorageUnavailable(ServiceUnavailable):
    """503: the store refused a write (disk full, I/O error); nothing of it was stored."""

    CODE = "storage_unavailable"


class InvalidRunInput(_FixedApiError):
    """422: a JSON object that is not a valid RunAgentInput (``details`` says where)."""

    STATUS = 422
    CODE = "invalid_run_input"


class InternalError(_FixedApiError):
    """500: a failure of the gateway itself (the log has the traceback)."""

    STATUS = 500
    CODE = "internal_error"


def error_response(error: ApiError) -> Response:
    # "code" is stable and machine-readable; "error" is for people and may change.
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if error.details is not None:
        body["details"] = error.details
    return json_response(body, error.status, error.headers)


def exception_handlers() -> dict[Any, ExceptionHandler]:
    """What the app registers: every error a request can end in, rendered by :func:`error_response`."""
    return {
        ApiError: _api_error,
        # The store's own check, should a thread id reach it unchecked.
        InvalidThreadId: _invalid_thread,
        # A write the store refused (disk full, I/O error) while answering a request.
        StoreError: _store_error,
        # Starlette's router raises HTTPException(404 / 405) for unknown paths and methods.
        404: _no_such_endpoint,
        405: _method_not_allowed,
        Exception: _internal_error,
    }


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None and 400 <= exc.status < 500:
        gateway.metrics.bad_input.labels("request").inc()  # refused requests are counted, not logged
    return error_response(exc)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return error_response(StorageUnavailable(f"storage unavailable: {exc}"))


async def _invalid_thread(request: Request, exc: Exception) -> Response:
    return error_response(InvalidThread(str(exc)))


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    return error_response(NotFound(f"no such endpoint: {request.method} {request.url.path}"))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}"))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError(f"internal error: {type(exc).__name__}"))
