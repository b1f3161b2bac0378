"""Reading the gateway's ``text/event-stream`` responses in tests.

:class:`SseReader` is the test's own reader, kept apart from the production parser
(:class:`agui_gateway.upstream.sse_parser.SseParser`): that one reads agents and
drops ``id:`` fields and comments, while the tests need both (resume ids,
heartbeat comments), and a check of the gateway's encoding should not lean on
code of the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


@dataclass
class Frame:
    id: int | None  # the seq part of the frame's id (``EPOCH:SEQ``, or a bare ``SEQ``)
    event: dict[str, Any] | None  # None for a comment
    comment: str | None = None
    raw_id: str | None = None  # the id exactly as sent: what a client sends back to resume

    @property
    def epoch(self) -> str | None:
        """The epoch part of the id (None: no id, or a bare seq)."""
        if self.raw_id is None or ":" not in self.raw_id:
            return None
        return self.raw_id.rpartition(":")[0]


def parse_id(raw: str) -> int:
    """The seq of an id: what follows the last ':' (the whole id when it is a bare seq)."""
    return int(raw.rpartition(":")[2])


class SseReader:
    """Incremental text/event-stream reader (LF line ends, as the gateway writes them)."""

    def __init__(self) -> None:
        self._buf = b""
        self._id: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        out: list[Frame] = []
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line == b"":
                if self._data:
                    seq = parse_id(self._id) if self._id is not None else None
                    out.append(Frame(seq, orjson.loads(b"\n".join(self._data)), raw_id=self._id))
                self._id, self._data = None, []
            elif line.startswith(b":"):
                out.append(Frame(None, None, line[1:].strip().decode()))
            else:
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    self._data.append(value)
                elif name == b"id":
                    self._id = value.decode()
        return out


def events_of(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.event for f in frames if f.event is not None]


def last_id(frames: list[Frame]) -> int | None:
    ids = [f.id for f in frames if f.id is not None]
    return ids[-1] if ids else None


def last_raw_id(frames: list[Frame]) -> str | None:
    """The last id as sent (``EPOCH:SEQ``): what a client resumes with."""
    ids = [f.raw_id for f in frames if f.raw_id is not None]
    return ids[-1] if ids else None


async def collect(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    until: Callable[[list[Frame]], bool] | None = None,
    timeout: float = 20.0,
    **kwargs: Any,
) -> list[Frame]:
    """Frames of one stream: to its end, or until ``until(frames)`` holds (then disconnect)."""
    frames: list[Frame] = []
    reader = SseReader()

    async def read() -> None:
        async with client.stream(method, url, **kwargs) as response:
            if response.status_code != 200:
                body = await response.aread()
                raise AssertionError(f"{method} {url}: HTTP {response.status_code}: {body[:500]!r}")
            async for chunk in response.aiter_bytes():
                frames.extend(reader.feed(chunk))
                if until is not None and until(frames):
                    return

    await asyncio.wait_for(read(), timeout)
    return frames


def has_event(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(f.event is not None and predicate(f.event) for f in frames)


def has_id(seq: int) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(f.id is not None and f.id >= seq for f in frames)


class FeedReader:
    """Reads ``GET /threads/changes``: ``(event name, data)`` per frame, comments skipped."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_bytes()
        self._buf = b""
        self.frames: list[tuple[str, bytes]] = []

    async def more(self) -> None:
        """Reads until at least one more frame is complete."""
        before = len(self.frames)
        while len(self.frames) == before:
            self._buf += await self._chunks.__anext__()
            *blocks, self._buf = self._buf.split(b"\n\n")
            for block in blocks:
                fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line and line[:1] != b":")
                if b"event" in fields:
                    self.frames.append((fields[b"event"].decode(), fields.get(b"data", b"")))

    def rows(self) -> list[dict]:
        return [orjson.loads(data) for name, data in self.frames if name == "thread"]
