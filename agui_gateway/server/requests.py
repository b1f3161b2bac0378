"""Request parsing and JSON error responses for the HTTP API.

Every client error is a 4xx with ``{"error": "<what is wrong>"}`` (plus
``details`` for a body that is not a valid RunAgentInput). Nothing a client
sends becomes a path: thread ids are checked against the store's rule first.
"""

from __future__ import annotations

from typing import Any

import orjson
from ag_ui.core import RunAgentInput
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.store.base import InvalidThreadId, validate_thread_id


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if details is not None:
        body["details"] = details
    return json_response(body, status, headers)


def thread_param(request: Request) -> str:
    try:
        return validate_thread_id(request.path_params["thread"])
    except InvalidThreadId as exc:
        raise ApiError(400, str(exc)) from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


async def read_run_input(request: Request, limit: int) -> dict[str, Any]:
    """A RunAgentInput body, validated with the official model, returned as sent (a dict).

    The dict goes to the agent unchanged: re-serialising the pydantic model could
    drop or rename fields a particular agent relies on.
    """
    body = await read_body(request, limit)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object (a RunAgentInput)")
    try:
        RunAgentInput.model_validate(doc)
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False, include_context=False)
        raise ApiError(422, "the body is not a valid RunAgentInput", details) from None
    try:
        validate_thread_id(doc["threadId"])
    except InvalidThreadId as exc:
        raise ApiError(400, f"threadId: {exc}") from None
    return doc
