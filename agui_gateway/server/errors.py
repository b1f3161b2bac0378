"""Every refusal the gateway makes, as one tree of exception classes.

Modelled on httpx's ``_exceptions.py``: one module holds the whole tree, so a reader
sees every kind of refusal and its place at a glance::

    GatewayError
    ├── ApiError                     a request refused (or failed): HTTP status + stable code
    │   ├── BadRequest               400 bad_request
    │   │   ├── InvalidThreadIdError     400 invalid_thread_id
    │   │   ├── BadResumePosition        400 invalid_resume_position
    │   │   ├── InvalidListQuery         400 bad_request
    │   │   └── InvalidHistoryQuery      400 bad_request
    │   ├── Unauthorized             401 unauthorized
    │   ├── Forbidden                403 forbidden
    │   ├── NotFound                 404 not_found
    │   │   ├── ThreadNotFound           404 thread_not_found
    │   │   ├── UnknownRun               404 not_found
    │   │   └── UnknownMessageCursor     404 not_found
    │   ├── MethodNotAllowed         405 method_not_allowed
    │   ├── Conflict                 409 conflict
    │   │   ├── RunInProgress            409 conflict
    │   │   ├── NoRunInProgress          409 conflict
    │   │   ├── ThreadRunning            409 run_in_progress
    │   │   ├── NotTheOpenRun            409 not_the_open_run
    │   │   ├── ThreadRecreated          409 thread_recreated
    │   │   └── HistoryConflictError     409 history_conflict
    │   ├── PayloadTooLarge          413 payload_too_large
    │   │   └── HistoryTooLargeError     413 history_too_large
    │   ├── UnsupportedMediaType     415 unsupported_media_type
    │   ├── RequestTimeout           408 request_timeout (the connection is closed)
    │   ├── InvalidRunInput          422 invalid_run_input
    │   ├── InternalError            500 internal_error
    │   └── ServiceUnavailable       503 unavailable (Retry-After)
    │       ├── TooManyStreams           503 too_many_streams
    │       ├── TooManyConnections       503 too_many_connections
    │       ├── StorageUnavailable       503 storage_unavailable
    │       └── Draining                 503 draining
    └── StartupError                 the gateway cannot start as configured
        ├── ConfigError                  a malformed setting
        ├── InsecureBindError            a public address without access control
        └── InspectorUnavailable         --inspector without its package

A refusal is raised where it is detected, by whichever room detects it (request
parsing, the authorizer, the run manager); the HTTP room turns it into a response in
exactly one place (``server/http/responses.py``: ``exception_handlers``). The rooms
below the server have their own errors (the store's ``StoreError`` and
``InvalidThreadId`` and ``ThreadDeleted``, the protocol's ``HistoryConflict``, ``HistoryTooLarge`` and
``UnknownCursor``); the same handler maps each to
its class here (:func:`api_error_of`), so no handler catches and re-raises them.

This module imports no web framework: the runtime raises these without knowing HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agui_gateway.protocol.compaction import UnknownCursor
from agui_gateway.protocol.history import HistoryConflict
from agui_gateway.protocol.lineage import HistoryTooLarge
from agui_gateway.store.base import InvalidThreadId, StoreError, ThreadDeleted


class GatewayError(Exception):
    """The root of the gateway's own errors."""


class ApiError(GatewayError):
    """A request the API refuses (or fails), with what the client is told.

    Each subclass fixes its status, its stable ``code`` and its headers; ``message`` is
    for people and may change, ``details`` (when given) is machine-readable context.
    """

    STATUS: ClassVar[int] = 500
    CODE: ClassVar[str] = "internal_error"
    HEADERS: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return self.STATUS

    @property
    def code(self) -> str:
        return self.CODE

    @property
    def headers(self) -> dict[str, str] | None:
        return dict(self.HEADERS) if self.HEADERS else None


class BadRequest(ApiError):
    """400: a request the API cannot read (malformed body, header or parameter)."""

    STATUS = 400
    CODE = "bad_request"


class InvalidThreadIdError(BadRequest):
    """400: a thread id that breaks the store's rule (it never becomes a path)."""

    CODE = "invalid_thread_id"


class BadResumePosition(BadRequest):
    """400: a Last-Event-ID or ``after`` that is no event id, or one the thread never had."""

    CODE = "invalid_resume_position"


class InvalidListQuery(BadRequest):
    """400: a thread-list ``limit``, ``cursor`` or ``prefix`` the listing cannot use."""


class InvalidHistoryQuery(BadRequest):
    """400: a history window's ``turns``, or a message page's ``before`` or ``limit``, the
    gateway cannot use."""


class Unauthorized(ApiError):
    """401: no bearer token, or an unknown one."""

    STATUS = 401
    CODE = "unauthorized"
    HEADERS: ClassVar[Mapping[str, str] | None] = {"www-authenticate": "Bearer"}


class Forbidden(ApiError):
    """403: a token without the access the request needs, or a request a browser must not make."""

    STATUS = 403
    CODE = "forbidden"


class NotFound(ApiError):
    """404: no such agent, run or endpoint."""

    STATUS = 404
    CODE = "not_found"


class ThreadNotFound(NotFound):
    """404: a thread that was deleted (and not written since), or that a resume position
    names an event of while the store holds none of it."""

    CODE = "thread_not_found"


class UnknownRun(NotFound):
    """404: a run id the thread's log does not have."""


class UnknownMessageCursor(NotFound):
    """404: a message page's ``before`` that names no message of the thread's conversation."""


class MethodNotAllowed(ApiError):
    """405: an endpoint that does not take the request's method."""

    STATUS = 405
    CODE = "method_not_allowed"


class Conflict(ApiError):
    """409: the thread's run state does not allow it."""

    STATUS = 409
    CODE = "conflict"


class RunInProgress(Conflict):
    """409: the thread already has an open run (here, on another replica, or in its log)."""


class NoRunInProgress(Conflict):
    """409: a stop for a thread without an open run (or one still starting)."""


class ThreadRunning(Conflict):
    """409: a delete of a thread with a run in progress (here or on another replica),
    without ``?stop=1``."""

    CODE = "run_in_progress"


class NotTheOpenRun(Conflict):
    """409: a stop naming a run (``?runId=``) that is not the thread's open run: the run
    meant ended, and another may have started since; nothing is stopped."""

    CODE = "not_the_open_run"

    @classmethod
    def of(cls, thread_id: str, run_id: str, open_run_id: str) -> NotTheOpenRun:
        return cls(
            f"run {run_id!r} is not the open run of thread {thread_id!r} ({open_run_id!r} is); nothing was stopped",
            details={"runId": run_id, "openRunId": open_run_id},
        )


class ThreadRecreated(Conflict):
    """409: a resume position (``Last-Event-ID`` or ``after`` of the form ``EPOCH:SEQ``) from
    another incarnation of the thread: it was deleted (and maybe written again) since the
    client got that id. Its events at those positions are not the client's: it starts over
    with a fresh replay (no id)."""

    CODE = "thread_recreated"

    @classmethod
    def of(cls, thread_id: str, epoch: str, current: str | None) -> ThreadRecreated:
        now = "has no events now" if current is None else f"is epoch {current!r} now"
        return cls(
            f"thread {thread_id!r} was deleted since this id was given (its epoch was {epoch!r}, it {now}); "
            "reconnect without Last-Event-ID or after for a fresh replay",
            details={"epoch": epoch, "currentEpoch": current},
        )


class HistoryConflictError(Conflict):
    """409: with server-side history, a caller's message rewrites one the thread holds."""

    CODE = "history_conflict"

    @classmethod
    def of(cls, conflict: HistoryConflict) -> HistoryConflictError:
        return cls(str(conflict), details={"messageId": conflict.message_id, "fields": list(conflict.fields)})


class PayloadTooLarge(ApiError):
    """413: a body over the configured limit."""

    STATUS = 413
    CODE = "payload_too_large"


class HistoryTooLargeError(PayloadTooLarge):
    """413: a caller's messages that no frame the official client accepts can record (one
    of them outgrows a frame with nothing that can be cut over several)."""

    CODE = "history_too_large"


class UnsupportedMediaType(ApiError):
    """415: a POST body not declared as JSON (what a foreign page can send without a preflight)."""

    STATUS = 415
    CODE = "unsupported_media_type"


class RequestTimeout(ApiError):
    """408: the request's head and body did not arrive within the deadline; the connection
    is closed (``server/http/connections.py``)."""

    STATUS = 408
    CODE = "request_timeout"
    HEADERS: ClassVar[Mapping[str, str] | None] = {"connection": "close"}

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request did not arrive within {timeout_s:g} s")


class InvalidRunInput(ApiError):
    """422: a JSON object that is not a valid RunAgentInput (``details`` says where)."""

    STATUS = 422
    CODE = "invalid_run_input"


class InternalError(ApiError):
    """500: a failure of the gateway itself (the log has the traceback)."""


RETRY_AFTER_S = 5


class ServiceUnavailable(ApiError):
    """503: the gateway cannot take this now; retry after ``Retry-After`` seconds. The
    connection is closed, which gives its descriptor back at once."""

    STATUS = 503
    CODE = "unavailable"
    HEADERS: ClassVar[Mapping[str, str] | None] = {"retry-after": str(RETRY_AFTER_S), "connection": "close"}


class TooManyStreams(ServiceUnavailable):
    """503: a stream cap is reached; ``cap`` says which ("process" or "token")."""

    CODE = "too_many_streams"

    def __init__(self, cap: str, limit: int) -> None:
        super().__init__(f"too many open event streams ({cap} cap of {limit}); retry later")
        self.cap = cap
        self.limit = limit


class TooManyConnections(ServiceUnavailable):
    """503: every connection the process may hold has a request in progress; this one is
    refused the moment it is accepted (``server/http/connections.py``)."""

    CODE = "too_many_connections"

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many open connections (cap of {limit}); retry later")


class StorageUnavailable(ServiceUnavailable):
    """503: the store refused a write (disk full, I/O error); nothing of it was stored."""

    CODE = "storage_unavailable"


class Draining(ServiceUnavailable):
    """503: the gateway is shutting down (SIGTERM); a new run goes to another replica."""

    CODE = "draining"


# The lower rooms' exceptions that stand for a refusal (see :func:`api_error_of`).
LOWER_ROOM_ERRORS: tuple[type[Exception], ...] = (
    InvalidThreadId,
    HistoryConflict,
    HistoryTooLarge,
    UnknownCursor,
    ThreadDeleted,
    StoreError,
)


def api_error_of(exc: Exception) -> ApiError | None:
    """The refusal a lower room's exception means to a client, or None when it means none.

    The one place the store's and the protocol's errors meet HTTP (see the module docstring).
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidThreadId):  # the store's own check, should an id reach it unchecked
        return InvalidThreadIdError(str(exc))
    if isinstance(exc, HistoryConflict):
        return HistoryConflictError.of(exc)
    if isinstance(exc, HistoryTooLarge):
        return HistoryTooLargeError(str(exc))
    if isinstance(exc, UnknownCursor):
        return UnknownMessageCursor(str(exc), details={"before": exc.cursor})
    if isinstance(exc, ThreadDeleted):  # before StoreError, its base: no failure, the thread went
        return ThreadNotFound(str(exc))
    if isinstance(exc, StoreError):  # a write the store refused (disk full, I/O error)
        return StorageUnavailable(f"storage unavailable: {exc}")
    return None


class StartupError(GatewayError):
    """The gateway cannot start as configured; the message says what to change."""


class ConfigError(StartupError, ValueError):
    """The configuration is malformed; the message says which setting and why."""


class InsecureBindError(StartupError, ValueError):
    """Binding a non-loopback address with no tokens and without ``--insecure``."""


class InspectorUnavailable(StartupError, RuntimeError):
    """``--inspector`` without the ``agui-inspector`` package installed."""
