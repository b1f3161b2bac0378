"""The wire: every server-sent-event frame the gateway sends is written here.

A frame is ``[: comment\\n][retry: MS\\n][event: NAME\\n][id: N\\n][data: <one line of JSON>\\n]\\n``.
orjson never emits a raw newline inside its output, so one ``data:`` line always
suffices. AG-UI events go out with no ``event:`` field: the AG-UI event names its own
type, and EventSource's default ``message`` event is what browser clients listen to;
the gateway's own signals (a store failure, the ``/ui`` feeds) are named events that
AG-UI clients ignore. What ``id: N`` promises is in ``docs/resuming.md``.
"""

from __future__ import annotations

from typing import Any

import orjson


def frame(
    data: bytes | memoryview | None = None,
    event_id: int | None = None,
    *,
    event: str | None = None,
    retry_ms: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One SSE frame around already-serialised JSON (``data``), and/or the other fields."""
    if event is None and retry_ms is None and comment is None and data is not None:
        # The hot path: one per stored event per replay.
        if event_id is None:
            return b"data: " + data + b"\n\n"
        return b"id: %d\ndata: %s\n\n" % (event_id, data)
    head = b""
    if comment is not None:
        head += b": " + comment.encode() + b"\n"
    if retry_ms is not None:
        head += b"retry: %d\n" % retry_ms
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: %d\n" % event_id
    if data is not None:
        head += b"data: " + data + b"\n"
    return head + b"\n"


def frame_around(event_id: int) -> tuple[bytes, bytes]:
    """The bytes before and after the data in ``frame(data, event_id)``: a big event goes out
    as the head, its own bytes in slices and the tail, never copied into one frame."""
    empty = frame(b"", event_id)  # b"id: N\ndata: \n\n"
    return empty[:-2], empty[-2:]


def event_frame(event: dict[str, Any], event_id: int | None = None) -> bytes:
    """An AG-UI event (a dict) as a frame."""
    return frame(orjson.dumps(event), event_id)


def frames(events: list[tuple[dict[str, Any], int | None]]) -> bytes:
    """Many ``(event, id)`` pairs as one contiguous buffer."""
    return b"".join([event_frame(event, event_id) for event, event_id in events])


def named_frame(name: str, value: Any) -> bytes:
    """A named (non-AG-UI) event with a JSON value: the ``/ui`` feeds' ``thread`` and ``ready``."""
    return frame(orjson.dumps(value), event=name)


# Sent once at the start of every stream: it flushes the response headers at once
# and tells EventSource to reconnect after one second instead of its default three.
STREAM_PREAMBLE = frame(retry_ms=1000)
# Keeps proxies from closing an idle stream; clients ignore comments.
HEARTBEAT = frame(comment="ping")


def store_error_frame(message: str) -> bytes:
    """The frame a stream ends with when the store fails under it.

    An ``error`` event (not a ``data``-only message): AG-UI clients read no event from it,
    and an EventSource reports it to ``onerror``-style listeners; it carries no id, so the
    client's resume position stays at the last event it actually received.
    """
    return named_frame("error", {"error": "store_unavailable", "message": message})


def thread_deleted_frame(thread_id: str) -> bytes:
    """The frame a stream ends with when its thread is deleted (by a client, the CLI, or
    retention, on any replica).

    A named ``thread_deleted`` event without an id: AG-UI clients ignore it, and a client
    that reconnects anyway by its last id is answered 404 ``thread_not_found`` while the
    thread holds no events. ``/threads/changes`` sends the same frame.
    """
    return named_frame("thread_deleted", {"threadId": thread_id})
