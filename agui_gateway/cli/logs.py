"""Reading AG-UI event logs (JSONL): tolerant, streaming, bounded memory.

A line is either a bare event (``{"type": ...}``) or a stored record
(``{"seq": N, "event": {...}, ...}``) as the gateway writes them (a record's event
is read as the gateway serves it: its ``gateway`` annotation merged in). Torn or
non-JSON lines, and JSON that is not an event, are skipped and counted, never
fatal: a crash mid-write must not make a thread unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from agui_gateway.protocol.lineage import served_event
from agui_gateway.protocol.types import Event
from agui_gateway.store.base import ANNOTATION_KEY

_CHUNK = 1 << 20


class ByteReader(Protocol):
    """What the readers need of a stream: a file opened ``rb``, stdin's buffer, ..."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class ReadStats:
    lines: int = 0
    events: int = 0
    bad_lines: int = 0
    bytes: int = 0
    bad_line_numbers: list[int] = field(default_factory=list)  # the first few, for messages

    def count_bad(self, line_number: int) -> None:
        self.bad_lines += 1
        if len(self.bad_line_numbers) < 20:
            self.bad_line_numbers.append(line_number)


def iter_lines(stream: ByteReader, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Yield the lines of a binary stream without their newline, reading 1 MiB at a time."""
    tail = b""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        if on_bytes is not None:
            on_bytes(len(chunk))
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail


def read_events(
    stream: ByteReader,
    stats: ReadStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """Yield the events of a JSONL log, skipping (and counting) bad lines.

    The loop is the hot path of offline compaction, so it keeps its counters
    in locals and touches ``stats`` once at the end.
    """
    stats = stats if stats is not None else ReadStats()
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    lines = events = 0
    size = [0]

    def count(n: int) -> None:
        size[0] += n
        if on_bytes is not None:
            on_bytes(n)

    tail = b""
    try:
        while True:  # iter_lines, inlined: this loop runs once per event
            block = stream.read(_CHUNK)
            if block:
                count(len(block))
                chunk = (tail + block).split(b"\n")
                tail = chunk.pop()
            else:
                chunk, tail = ([tail] if tail else []), b""
            for line in chunk:
                lines += 1
                try:
                    doc = loads(line)
                except decode_error:
                    if line.strip():
                        stats.count_bad(lines)
                    continue
                if doc.__class__ is dict:
                    if "event" in doc and "seq" in doc:
                        annotation = doc.get(ANNOTATION_KEY)
                        doc = doc["event"]
                        if doc.__class__ is not dict:
                            stats.count_bad(lines)
                            continue
                        if annotation.__class__ is dict:  # a stored record's annotation: serve it merged
                            doc = served_event(doc, annotation)
                    if doc.get("type").__class__ is str:
                        events += 1
                        yield doc
                        continue
                stats.count_bad(lines)
            if not block:
                break
    finally:
        stats.lines += lines
        stats.events += events
        stats.bytes += size[0]


def read_records(
    stream: ByteReader,
    stats: ReadStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Event, int]]:
    """Yield ``(seq, event, line_bytes)``; lines without a stored seq are numbered by position."""
    stats = stats if stats is not None else ReadStats()
    loads = orjson.loads
    number = 0
    position = 0
    for line in iter_lines(stream, on_bytes):
        number += 1
        stats.bytes += len(line) + 1
        if not line.strip():
            continue
        stats.lines += 1
        # Fast path: a bare event, the common case.
        try:
            doc = loads(line)
        except orjson.JSONDecodeError:
            stats.count_bad(number)
            continue
        seq = None
        if isinstance(doc, dict) and "seq" in doc and isinstance(doc.get("event"), dict):
            seq = doc["seq"] if isinstance(doc["seq"], int) else None
            annotation = doc.get(ANNOTATION_KEY)
            doc = served_event(doc["event"], annotation if isinstance(annotation, dict) else None)
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            stats.count_bad(number)
            continue
        position += 1
        stats.events += 1
        yield (seq if seq is not None else position), doc, len(line) + 1
