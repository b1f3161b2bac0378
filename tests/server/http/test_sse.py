"""SSE frames as the gateway writes them, and the resume position a client asks for (server/sse.py)."""

from __future__ import annotations

import pytest
from support.sse import SseReader

from agui_gateway.server.errors import BadResumePosition
from agui_gateway.server.http.requests import parse_resume_position
from agui_gateway.server.sse import event_frame


def test_frames_round_trip_through_an_sse_reader() -> None:
    event = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "line1\nline2 \u2028 ünï"}
    data = event_frame(event, 42) + event_frame(event) + b": ping\n\n"
    frames = SseReader().feed(data)
    got = [(f.id, f.event, f.comment) for f in frames]
    assert got == [(42, event, None), (None, event, None), (None, None, "ping")]


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [(None, None, None), ("", None, None), ("7", None, 7), (None, "0", 0), ("9", "3", 9), ("", "3", 3)],
)
def test_resume_position(header: str | None, query: str | None, expected: int | None) -> None:
    assert parse_resume_position(header, query) == expected


@pytest.mark.parametrize(
    ("header", "query"), [("-1", None), ("x", None), (None, "1.5"), (None, ""), ("٣", None), (str(2**64), None)]
)
def test_bad_resume_position(header: str | None, query: str | None) -> None:
    with pytest.raises(BadResumePosition):
        parse_resume_position(header, query)
