"""Reading an agent's ``text/event-stream``: an incremental SSE parser and the event decoder.

Pure (bytes in, values out, no I/O); the server-side encoder is :mod:`agui_gateway.server.sse`.
What cannot be used becomes a :class:`Malformed` (skipped and counted by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT, Event

# An event whose data passes the official client's frame limit could never reach a
# client through the gateway (the client fails the stream instead), so it is skipped
# and counted here rather than stored; the bound also keeps one runaway event from
# growing memory.
DEFAULT_MAX_EVENT_BYTES = CLIENT_SSE_BUFFER_LIMIT
_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    raw_excerpt: str


def excerpt(raw: bytes | bytearray | str) -> str:
    """At most a couple of hundred characters of ``raw``, for error messages and logs."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[: _EXCERPT_CHARS * 4]).decode("utf-8", errors="replace")
    return raw if len(raw) <= _EXCERPT_CHARS else raw[:_EXCERPT_CHARS] + "…"


def decode_event(data: bytes) -> Event | Malformed:
    """One SSE event's data as an AG-UI event dict, or why it is not one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        return Malformed(f"data is not JSON: {error}", excerpt(data))
    if not isinstance(value, dict):
        return Malformed(f"data is a JSON {type(value).__name__}, not an object", excerpt(data))
    if not isinstance(value.get("type"), str):
        return Malformed("event has no string 'type'", excerpt(data))
    return value


@dataclass(frozen=True, slots=True)
class SseData:
    """The data of one dispatched SSE event (its ``data:`` lines joined with LF)."""

    data: bytes


_BOM = b"\xef\xbb\xbf"
_IGNORED_FIELDS = frozenset({b"event", b"id", b"retry"})


def _first_line_end(chunk: bytes) -> int:
    lf, cr = chunk.find(b"\n"), chunk.find(b"\r")
    return lf if cr < 0 else cr if lf < 0 else min(lf, cr)


class SseParser:
    """Incremental server-sent-events parser (WHATWG rules), bytes in, no I/O.

    ``feed`` takes chunks split anywhere (even between CR and LF) and returns what
    they completed; ``close`` flushes at end of stream, where a last event without
    its blank line still counts. Lines end in LF, CRLF or CR. Comments and the
    ``event``/``id``/``retry`` fields are ignored; any other field name is reported as
    :class:`Malformed` (an agent has no reason to send one, so it is almost always a
    broken line). An event whose data passes ``max_event_bytes`` is dropped while it
    streams and reported once, so memory stays bounded.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._partial = bytearray()  # the current line, not yet ended
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it
        self._discarding_line = False  # inside an oversized line: drop up to its end
        self._at_start = True
        self._data: list[bytes] = []
        self._data_size = 0
        self._oversized = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held between two feeds: the current line and the current event's data."""
        return len(self._partial) + self._data_size

    def feed(self, chunk: bytes) -> list[SseData | Malformed]:
        out: list[SseData | Malformed] = []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if self._discarding_line and chunk:
            end = _first_line_end(chunk)
            if end < 0:
                return out
            self._discarding_line = False
            if chunk[end] == 0x0D and end + 1 == len(chunk):
                self._skip_lf = True
            elif chunk[end : end + 2] == b"\r\n":
                end += 1
            chunk = chunk[end + 1 :]
        if not chunk:
            return out
        last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if last < 0:
            self._partial += chunk
        else:
            complete = chunk[: last + 1]
            if self._partial:
                complete = bytes(self._partial) + complete
                self._partial.clear()
            self._partial += chunk[last + 1 :]
            self._skip_lf = last == len(chunk) - 1 and chunk[last] == 0x0D
            self._lines(complete.splitlines(), out)
        if len(self._partial) + self._data_size > self._max:
            self._mark_oversized()
            self._partial.clear()
            self._discarding_line = True
        return out

    def close(self) -> list[SseData | Malformed]:
        out: list[SseData | Malformed] = []
        if self._partial and not self._discarding_line:
            self._lines([bytes(self._partial)], out)
        self._partial.clear()
        self._discarding_line = False
        self._dispatch(out)
        return out

    def _mark_oversized(self) -> None:
        self._oversized = True
        self._data.clear()
        self._data_size = 0

    def _lines(self, lines: list[bytes], out: list[SseData | Malformed]) -> None:
        if self._at_start and lines:
            self._at_start = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        data = self._data
        for line in lines:
            if not line:
                self._dispatch(out)
                data = self._data
                continue
            if line.startswith(b"data:"):  # the hot path: one per event, typically
                value = line[6:] if line[5:6] == b" " else line[5:]
            elif line[0] == 0x3A:  # ':' starts a comment (agents use them as heartbeats)
                continue
            else:
                name, _, value = line.partition(b":")
                if name != b"data":
                    if name not in _IGNORED_FIELDS:
                        out.append(Malformed(f"not an SSE field line (field '{excerpt(name)}')", excerpt(line)))
                    continue
                if value[:1] == b" ":
                    value = value[1:]
            if self._oversized:
                continue
            data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                self._mark_oversized()

    def _dispatch(self, out: list[SseData | Malformed]) -> None:
        if self._oversized:
            out.append(Malformed(f"event larger than {self._max} bytes", ""))
        elif self._data:
            data = self._data
            out.append(SseData(data[0] if len(data) == 1 else b"\n".join(data)))
        self._data = []
        self._data_size = 0
        self._oversized = False
