"""SSE frames as the gateway writes them, and the resume position a client asks for (server/sse.py)."""

from __future__ import annotations

import pytest
from support.sse import SseReader

from agui_gateway.server.errors import BadResumePosition
from agui_gateway.server.http.requests import ResumePosition, parse_resume_position
from agui_gateway.server.sse import event_frame, frame, frame_around
from agui_gateway.store.base import new_epoch


def test_frames_round_trip_through_an_sse_reader() -> None:
    event = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "line1\nline2 \u2028 ünï"}
    data = event_frame(event, 42) + event_frame(event) + b": ping\n\n"
    frames = SseReader().feed(data)
    got = [(f.id, f.event, f.comment) for f in frames]
    assert got == [(42, event, None), (None, event, None), (None, None, "ping")]


def test_an_id_carries_the_threads_epoch_and_its_seq() -> None:
    event = {"type": "RUN_STARTED", "threadId": "t", "runId": "r"}
    epoch = new_epoch()
    hot, slow = frame(b"{}", 7, epoch=epoch), frame(b"{}", 7, epoch=epoch, event="x")
    assert hot == f"id: {epoch}:7\ndata: {{}}\n\n".encode()
    assert slow == f"event: x\nid: {epoch}:7\ndata: {{}}\n\n".encode()
    head, tail = frame_around(7, epoch)
    assert head + b"{}" + tail == hot
    (read,) = SseReader().feed(event_frame(event, 12, epoch))
    assert (read.id, read.raw_id, read.epoch, read.event) == (12, f"{epoch}:12", epoch, event)


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("7", None, ResumePosition(7)),
        (None, "0", ResumePosition(0)),
        ("9", "3", ResumePosition(9)),
        ("", "3", ResumePosition(3)),
        ("0123abcdef456789:12", None, ResumePosition(12, "0123abcdef456789")),
        (None, "0:5", ResumePosition(5, "0")),  # a thread stored before epochs: epoch "0"
        (" e:0 ", "1", ResumePosition(0, "e")),
    ],
)
def test_resume_position(header: str | None, query: str | None, expected: ResumePosition | None) -> None:
    assert parse_resume_position(header, query) == expected


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ("-1", None),
        ("x", None),
        (None, "1.5"),
        (None, ""),
        ("٣", None),
        (str(2**64), None),
        # An epoch part that is no epoch: empty, another alphabet, too long, a second ':'.
        (":5", None),
        ("ABC:5", None),
        ("ab-c:5", None),
        ("a" * 33 + ":5", None),
        ("a:b:5", None),
        ("é:5", None),
        (None, "abc:"),
        (None, "abc:x"),
    ],
)
def test_bad_resume_position(header: str | None, query: str | None) -> None:
    with pytest.raises(BadResumePosition):
        parse_resume_position(header, query)
