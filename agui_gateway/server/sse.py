"""Server-sent event frames and the resume position a client asks for.

Every frame is ``[id: N\\n]data: <one line of JSON>\\n\\n``. orjson never emits a
raw newline inside its output, so one ``data:`` line always suffices. No
``event:`` field: the AG-UI event names its own type, and EventSource's default
``message`` event is what browser clients listen to.
"""

from __future__ import annotations

from typing import Any

import orjson

HEARTBEAT = b": ping\n\n"
# Sent once at the start of every stream: it flushes the response headers at once
# and tells EventSource to reconnect after one second instead of its default three.
STREAM_PREAMBLE = b"retry: 1000\n\n"

_MAX_ID = 2**63 - 1
_MAX_ID_DIGITS = len(str(_MAX_ID))


class InvalidResumePosition(ValueError):
    """A Last-Event-ID header or ``after`` parameter that is not a non-negative integer."""


def frame(data: bytes | memoryview, event_id: int | None = None) -> bytes:
    """One SSE frame around already-serialised JSON."""
    if event_id is None:
        return b"data: " + data + b"\n\n"
    return b"id: %d\ndata: %s\n\n" % (event_id, data)


def event_frame(event: dict[str, Any], event_id: int | None = None) -> bytes:
    return frame(orjson.dumps(event), event_id)


def frames(events: list[tuple[dict[str, Any], int | None]]) -> bytes:
    """Many ``(event, id)`` pairs as one contiguous buffer."""
    return b"".join([event_frame(event, event_id) for event, event_id in events])


def store_error_frame(message: str) -> bytes:
    """The frame a stream ends with when the store fails under it.

    An ``error`` event (not a ``data``-only message): AG-UI clients read no event from it,
    and an EventSource reports it to ``onerror``-style listeners; it carries no id, so the
    client's resume position stays at the last event it actually received.
    """
    return b"event: error\ndata: " + orjson.dumps({"error": "store_unavailable", "message": message}) + b"\n\n"


def parse_resume_position(last_event_id: str | None, after: str | None) -> int | None:
    """The seq a client has already received, or None for a fresh connection.

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
        # The length first: int() of thousands of digits is slow, and refused by Python itself.
        if len(text) > _MAX_ID_DIGITS or not text.isascii() or not text.isdigit() or int(text) > _MAX_ID:
            raise InvalidResumePosition(f"{name} must be a non-negative integer event id")
        return int(text)
    return None
