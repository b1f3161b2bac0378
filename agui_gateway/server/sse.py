"""The wire: every server-sent-event frame the gateway sends is written here.

A frame is ``[: comment\\n][retry: MS\\n][event: NAME\\n][id: EPOCH:SEQ\\n][data: <one line of JSON>\\n]\\n``.
orjson never emits a raw newline inside its output, so one ``data:`` line always
suffices. AG-UI events go out with no ``event:`` field: the AG-UI event names its own
type, and EventSource's default ``message`` event is what browser clients listen to;
the gateway's own signals (a store failure, the ``/ui`` feeds) are named events that
AG-UI clients ignore. What an id promises is in ``docs/resuming.md``: ``EPOCH:SEQ``, the
thread's epoch (which incarnation of the thread, see ``store.base.new_epoch``: never a
``:``) and the seq; a bare ``SEQ`` only where the epoch is not known (no records yet).
"""

from __future__ import annotations

from typing import Any

import orjson

# Between the epoch and the seq of an id: epochs never contain it, so the last one splits.
ID_SEPARATOR = ":"


def event_id_text(seq: int, epoch: str | None) -> str:
    """The id of the frame that covers the thread up to ``seq`` (``EPOCH:SEQ``)."""
    return str(seq) if epoch is None else f"{epoch}{ID_SEPARATOR}{seq}"


def frame(
    data: bytes | memoryview | None = None,
    event_id: int | None = None,
    *,
    epoch: str | None = None,
    event: str | None = None,
    retry_ms: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One SSE frame around already-serialised JSON (``data``), and/or the other fields;
    ``event_id`` (a seq) goes out as ``EPOCH:SEQ`` with the thread's ``epoch``."""
    if event is None and retry_ms is None and comment is None and data is not None:
        # The hot path: one per stored event per replay.
        if event_id is None:
            return b"data: " + data + b"\n\n"
        if epoch is None:
            return b"id: %d\ndata: %s\n\n" % (event_id, data)
        return b"id: %s:%d\ndata: %s\n\n" % (epoch.encode(), event_id, data)
    head = b""
    if comment is not None:
        head += b": " + comment.encode() + b"\n"
    if retry_ms is not None:
        head += b"retry: %d\n" % retry_ms
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id_text(event_id, epoch).encode() + b"\n"
    if data is not None:
        head += b"data: " + data + b"\n"
    return head + b"\n"


def frame_around(event_id: int, epoch: str | None = None) -> tuple[bytes, bytes]:
    """The bytes before and after the data in ``frame(data, event_id, epoch=epoch)``: a big
    event goes out as the head, its own bytes in slices and the tail, never copied into one frame."""
    empty = frame(b"", event_id, epoch=epoch)  # b"id: EPOCH:SEQ\ndata: \n\n"
    return empty[:-2], empty[-2:]


def event_frame(event: dict[str, Any], event_id: int | None = None, epoch: str | None = None) -> bytes:
    """An AG-UI event (a dict) as a frame."""
    return frame(orjson.dumps(event), event_id, epoch=epoch)


def frames(events: list[tuple[dict[str, Any], int | None]], epoch: str | None = None) -> bytes:
    """Many ``(event, seq)`` pairs as one contiguous buffer (ids with the thread's ``epoch``)."""
    return b"".join([event_frame(event, event_id, epoch) for event, event_id in events])


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
