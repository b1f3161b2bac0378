"""Request parsing for the HTTP API: path parameters, bodies, resume positions, branch runs,
history windows and message pages.

Whatever a client sends wrong becomes an :mod:`~agui_gateway.server.errors`
exception (a 4xx with a JSON message). Nothing a client sends becomes a path:
thread ids are checked against the store's rule first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from ag_ui.core import RunAgentInput
from pydantic import ValidationError
from starlette.requests import Request

from agui_gateway.protocol.limits import MAX_DEPTH, json_exceeds
from agui_gateway.server.errors import (
    BadRequest,
    BadResumePosition,
    InvalidHistoryQuery,
    InvalidRunInput,
    InvalidThreadIdError,
    PayloadTooLarge,
    ThreadRecreated,
)
from agui_gateway.server.sse import ID_SEPARATOR
from agui_gateway.store.base import InvalidThreadId, ThreadHead, ThreadStore, validate_epoch, validate_thread_id

# The largest event id: a thread's seq is a signed 64-bit integer in every store.
_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(_MAX_ID))

# A window of more turns than a thread can have is the whole thread: no bound is needed
# beyond keeping int() of the text cheap.
MAX_TURNS = 1_000_000
# A page of messages: one request answers at most this many (the default when none is asked).
MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100


def thread_param(request: Request) -> str:
    try:
        return validate_thread_id(request.path_params["thread"])
    except InvalidThreadId as exc:
        raise InvalidThreadIdError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class ResumePosition:
    """Where a client resumes: after ``seq`` of the thread's incarnation ``epoch``.

    ``epoch`` None: a bare integer (an id of a gateway before epochs, or a hand-written
    ``after=0``): a position in whatever incarnation the thread has now, as the client
    cannot tell which it meant.
    """

    seq: int
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """A stream's start checked against the thread (:func:`resume_within`): the seq to follow
    from (None: a fresh client), and the epoch the thread had then (None: no records)."""

    seq: int | None
    epoch: str | None


def resume_position(request: Request, header: bool = True) -> ResumePosition | None:
    """What the client already holds (Last-Event-ID, else ``?after=``); None: a fresh client."""
    return parse_resume_position(
        request.headers.get("last-event-id") if header else None, request.query_params.get("after")
    )


async def resume_within(request: Request, store: ThreadStore, thread_id: str) -> Resume:
    """The client's resume position, checked against the thread as the store holds it now
    (:func:`check_resume`), and the thread's epoch (read for a fresh client too: its stream
    is of the incarnation the store holds now)."""
    position = resume_position(request)
    head = await store.head(thread_id)
    if position is not None:
        check_resume(position, head, thread_id)
    return Resume(position.seq if position is not None else None, head.epoch if head is not None else None)


def check_resume(position: ResumePosition, head: ThreadHead | None, thread_id: str) -> None:
    """Refuse a position the thread's current incarnation (``head``) never had.

    An id of another epoch is from an incarnation deleted since (:class:`ThreadRecreated`,
    409): its positions mean other events now. An id beyond the latest seq comes from
    another store (wiped, or another deployment): waiting for the thread to get there
    would silently skip every event up to it (400).
    """
    if position.epoch is not None and (head is None or head.epoch != position.epoch):
        raise ThreadRecreated.of(thread_id, position.epoch, head.epoch if head is not None else None)
    latest = head.last_seq if head is not None else 0
    if position.seq > latest:
        raise BadResumePosition(
            f"cannot resume after event {position.seq}: thread {thread_id!r} has "
            f"{latest} event(s); reconnect without Last-Event-ID for a fresh replay",
        )


def parse_resume_position(last_event_id: str | None, after: str | None) -> ResumePosition | None:
    """The position a client has already received (``EPOCH:SEQ``, or a bare ``SEQ``), or None
    for a fresh connection.

    The header wins over the query parameter: EventSource reconnects to the
    same URL (still carrying the ``after`` it started with) and puts the last id
    it actually received in the header. An empty header is what EventSource
    sends before it has seen any id, so it means "fresh".
    """
    for name, value in (("Last-Event-ID", last_event_id), ("after", after)):
        if value is None:
            continue
        text = value.strip()
        if name == "Last-Event-ID" and text == "":
            continue
        epoch, separator, seq_text = text.rpartition(ID_SEPARATOR)
        # The length first: int() of thousands of digits is slow, and refused by Python itself.
        if (
            len(seq_text) > _MAX_ID_DIGITS
            or not seq_text.isascii()
            or not seq_text.isdigit()
            or int(seq_text) > _MAX_ID
        ):
            raise BadResumePosition(f"{name} must be an event id (EPOCH:SEQ, or a non-negative integer)")
        if not separator:
            return ResumePosition(int(seq_text))
        try:
            validate_epoch(epoch)
        except ValueError as exc:
            raise BadResumePosition(f"{name}: the epoch of an event id is 1-32 characters of 0-9 and a-z") from exc
        return ResumePosition(int(seq_text), epoch)
    return None


def requested_run(request: Request) -> str | None:
    """The run whose branch ``?run=R`` asks to replay (time travel), or None."""
    run = request.query_params.get("run")
    if run is None:
        return None
    if not run:
        raise BadRequest("?run= needs a run id")
    if "after" in request.query_params or "last-event-id" in request.headers:
        raise BadRequest("?run= replays a branch from its start: it takes no resume position")
    return run


def stop_run_id(request: Request) -> str | None:
    """The run a stop names (``?runId=R``: stop it only if it is the open run), or None."""
    run_id = request.query_params.get("runId")
    if run_id is not None and not run_id:
        raise BadRequest("?runId= needs a run id")
    return run_id


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
        raise InvalidThreadIdError(f"threadId: {exc}") from exc
    return doc


def _positive(name: str, text: str, most: int) -> int:
    text = text.strip()
    if len(text) > len(str(most)) or not text.isascii() or not text.isdigit() or not 1 <= int(text) <= most:
        raise InvalidHistoryQuery(f"{name} must be an integer from 1 to {most}")
    return int(text)


def window_turns(request: Request) -> int | None:
    """The ``?turns=N`` of a windowed fresh replay, or None for the whole history."""
    turns = request.query_params.get("turns")
    return None if turns is None else _positive("turns", turns, MAX_TURNS)


def connect_turns(run_input: dict[str, Any]) -> int | None:
    """The window a connect asks for in ``forwardedProps.aguiGateway.turns`` (None: none)."""
    props = run_input.get("forwardedProps")
    ours = props.get("aguiGateway") if isinstance(props, dict) else None
    if ours is None:
        return None
    if not isinstance(ours, dict):
        raise InvalidHistoryQuery("forwardedProps.aguiGateway must be an object")
    turns = ours.get("turns")
    if turns is None:
        return None
    if isinstance(turns, bool) or not isinstance(turns, int) or not 1 <= turns <= MAX_TURNS:
        raise InvalidHistoryQuery(f"forwardedProps.aguiGateway.turns must be an integer from 1 to {MAX_TURNS}")
    return turns


def page_query(request: Request) -> tuple[str, int]:
    """A message page's ``?before=MESSAGE_ID`` (required) and ``?limit=K``."""
    before = request.query_params.get("before")
    if not before:
        raise InvalidHistoryQuery("?before= needs a message id (the cursor a window or page gave)")
    limit = request.query_params.get("limit")
    return before, DEFAULT_PAGE_LIMIT if limit is None else _positive("limit", limit, MAX_PAGE_LIMIT)


def stop_flag(request: Request) -> bool:
    """``?stop=1`` (or ``true``): stop the thread's run first; absent, ``0`` or ``false``: do not."""
    value = request.query_params.get("stop")
    if value is None or value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise BadRequest(f"'stop' must be 1 or 0, not {value!r}")
