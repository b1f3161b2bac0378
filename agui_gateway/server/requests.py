"""Request parsing for the HTTP API: path parameters, bodies, resume positions.

Whatever a client sends wrong becomes an :mod:`~agui_gateway.server.errors`
exception (a 4xx with a JSON message). Nothing a client sends becomes a path:
thread ids are checked against the store's rule first.
"""

from __future__ import annotations

from typing import Any

import orjson
from ag_ui.core import RunAgentInput
from pydantic import ValidationError
from starlette.requests import Request

from agui_gateway.protocol.limits import MAX_DEPTH, json_exceeds
from agui_gateway.server import sse
from agui_gateway.server.errors import BadRequest, BadResumePosition, InvalidRunInput, InvalidThread, PayloadTooLarge
from agui_gateway.store.base import InvalidThreadId, validate_thread_id


def thread_param(request: Request) -> str:
    try:
        return validate_thread_id(request.path_params["thread"])
    except InvalidThreadId as exc:
        raise InvalidThread(str(exc)) from exc


def resume_position(request: Request, header: bool = True) -> int | None:
    """The seq the client already holds (Last-Event-ID, else ``?after=``); None: a fresh client."""
    try:
        return sse.parse_resume_position(
            request.headers.get("last-event-id") if header else None, request.query_params.get("after")
        )
    except sse.InvalidResumePosition as exc:
        raise BadResumePosition(str(exc)) from exc


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise BadRequest("invalid Content-Length header")
        if len(declared) > len(str(limit)) or int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
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
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object (a RunAgentInput)")
    if json_exceeds(doc, body, MAX_DEPTH):
        # Checked before anything else sees it: such a body could be neither validated
        # reliably nor stored (its messages go into the thread's log).
        raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels")
    try:
        RunAgentInput.model_validate(doc)
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False, include_context=False)
        raise InvalidRunInput("the body is not a valid RunAgentInput", details) from exc
    try:
        validate_thread_id(doc["threadId"])
    except InvalidThreadId as exc:
        raise InvalidThread(f"threadId: {exc}") from exc
    return doc
