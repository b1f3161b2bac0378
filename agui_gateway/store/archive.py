"""Backups and moves between stores: threads written to one JSON-lines archive and read back.

The format (version 1), one JSON value per line, UTF-8::

    {"format":"agui-gateway-archive","version":1}
    {"thread":"<id>","epoch":"<epoch>","records":N}       one section per thread:
    <stored record line>                                   N lines, exactly as the store
    ...                                                    holds them (seq, ts, bytes)
    {"end":"<id>","checkpoint":null}                       or {"seq":S,"data":"<base64>"}

Record lines are copied byte for byte (the file store's and the Redis store's lines are
the same bytes), so an archive can be checked with ``grep``/``jq`` and a thread's
section is its ``log.jsonl`` between two lines of JSON. The counts and the end line make
a truncated archive an error, not a shorter thread. Exports read each thread up to the
last seq it had when its section began (a live gateway's later appends wait for the
next export); a thread deleted or created again meanwhile is skipped and reported.

Importing checks every record (valid, dense seqs from 1: ``ThreadImport``) and commits
each thread whole, with its epoch: a client's ``Last-Event-ID`` from the exported
thread is valid against the imported one. A thread the store already holds is refused
(and the import goes on with the next one) unless ``replace``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from agui_gateway.store.base import (
    Checkpoint,
    ThreadExists,
    ThreadImport,
    ThreadStore,
    validate_epoch,
    validate_thread_id,
)

FORMAT = "agui-gateway-archive"
VERSION = 1
_BATCH = 1000  # records handed to an import at once


class BadArchive(ValueError):
    """The archive is not one this version reads, or is cut short or damaged (line number given)."""


@dataclass
class ExportReport:
    threads: int = 0
    records: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # deleted or created again while exported


@dataclass
class ImportReport:
    threads: int = 0
    records: int = 0
    refused: list[str] = field(default_factory=list)  # already in the store (no replace)


def header_line() -> bytes:
    return orjson.dumps({"format": FORMAT, "version": VERSION}) + b"\n"


async def export_thread(store: ThreadStore, thread_id: str) -> AsyncIterator[bytes]:
    """The section of one thread (nothing when it has no records), in pieces of bounded size."""
    head = await store.head(thread_id)
    if head is None:
        return
    lines: list[bytes] = []
    async for line in store.read_lines(thread_id):
        lines.append(line)
        if len(lines) == head.last_seq:
            break
    after = await store.head(thread_id)
    if len(lines) < head.last_seq or after is None or after.epoch != head.epoch:
        raise _Changed(thread_id)
    checkpoint = await store.load_checkpoint(thread_id)
    yield orjson.dumps({"thread": thread_id, "epoch": head.epoch, "records": head.last_seq}) + b"\n"
    for start in range(0, len(lines), _BATCH):
        yield b"".join(lines[start : start + _BATCH])
    saved: dict[str, Any] | None = None
    if checkpoint is not None and checkpoint.seq <= head.last_seq:
        saved = {"seq": checkpoint.seq, "data": base64.b64encode(checkpoint.data).decode()}
    yield orjson.dumps({"end": thread_id, "checkpoint": saved}) + b"\n"


class _Changed(Exception):
    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id


async def export_threads(store: ThreadStore, thread_ids: list[str] | None, out: IO[bytes]) -> ExportReport:
    """Write the archive of ``thread_ids`` (None: every thread of the store, by id) to ``out``."""
    report = ExportReport()
    if thread_ids is None:
        thread_ids = sorted(info.thread_id for info in await store.list_threads())
    out.write(header_line())
    for thread_id in thread_ids:
        validate_thread_id(thread_id)
        pieces = []
        try:
            # One thread's section is held until it is whole: a thread that changes while it
            # is read leaves nothing half-written in the archive.
            async for piece in export_thread(store, thread_id):
                pieces.append(piece)
        except _Changed:
            report.skipped.append(thread_id)
            continue
        if not pieces:
            report.skipped.append(thread_id)
            continue
        out.writelines(pieces)
        report.threads += 1
        report.records += sum(piece.count(b"\n") for piece in pieces) - 2
        report.bytes += sum(map(len, pieces))
    return report


@dataclass
class _Section:
    thread_id: str
    epoch: str
    records: int


class ArchiveReader:
    """Reads an archive line by line, checking its structure (not the records: the import does)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines = iter(stream)
        self.line_number = 0

    def _next(self) -> bytes | None:
        line = next(self._lines, None)
        if line is not None:
            self.line_number += 1
        return line

    def _json(self, line: bytes | None, what: str) -> dict[str, Any]:
        if line is None:
            raise BadArchive(f"the archive ends at line {self.line_number}, where {what} was expected")
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise BadArchive(f"line {self.line_number}: not {what}")
        return value

    def read_header(self) -> None:
        header = self._json(self._next(), "the archive header")
        if header.get("format") != FORMAT:
            raise BadArchive("not an agui-gateway archive (its first line names no such format)")
        if header.get("version") != VERSION:
            raise BadArchive(f"archive version {header.get('version')!r}; this gateway reads version {VERSION}")

    def next_section(self) -> _Section | None:
        line = self._next()
        while line is not None and not line.strip():  # blank lines between sections are fine
            line = self._next()
        if line is None:
            return None
        start = self._json(line, "a thread's first line")
        thread_id, epoch, records = start.get("thread"), start.get("epoch"), start.get("records")
        try:
            validate_thread_id(thread_id)  # type: ignore[arg-type]
            validate_epoch(epoch)  # type: ignore[arg-type]
        except ValueError as exc:
            raise BadArchive(f"line {self.line_number}: {exc}") from None
        if type(records) is not int or records < 1:
            raise BadArchive(f"line {self.line_number}: a thread's record count must be a positive integer")
        assert isinstance(thread_id, str) and isinstance(epoch, str)
        return _Section(thread_id, epoch, records)

    def records(self, section: _Section) -> Iterator[list[bytes]]:
        """The section's record lines, in batches."""
        batch: list[bytes] = []
        for _ in range(section.records):
            line = self._next()
            if line is None or not line.endswith(b"\n"):
                raise BadArchive(f"the archive ends inside thread {section.thread_id!r} (line {self.line_number})")
            batch.append(line)
            if len(batch) == _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def end(self, section: _Section) -> Checkpoint | None:
        end = self._json(self._next(), f"the end of thread {section.thread_id!r}")
        if end.get("end") != section.thread_id:
            raise BadArchive(f"line {self.line_number}: thread {section.thread_id!r} has more records than it says")
        saved = end.get("checkpoint")
        if saved is None:
            return None
        try:
            seq, data = saved["seq"], base64.b64decode(saved["data"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            raise BadArchive(f"line {self.line_number}: a damaged checkpoint") from None
        if type(seq) is not int:
            raise BadArchive(f"line {self.line_number}: a damaged checkpoint")
        return Checkpoint(seq, data)


async def import_archive(store: ThreadStore, stream: IO[bytes], *, replace: bool = False) -> ImportReport:
    """Import every thread of the archive; raises :class:`BadArchive` (and ``InvalidRecord``
    for a bad record) with the threads before it imported, the one it was in not."""
    report = ImportReport()
    reader = ArchiveReader(stream)
    reader.read_header()
    while (section := reader.next_section()) is not None:
        importing: ThreadImport = store.import_thread(section.thread_id, section.epoch)
        try:
            for batch in reader.records(section):
                await importing.add(batch)
            checkpoint = reader.end(section)
            await importing.commit(checkpoint, replace=replace)
        except ThreadExists:
            report.refused.append(section.thread_id)
            continue
        except BaseException:
            await importing.abort()
            raise
        report.threads += 1
        report.records += section.records
    return report
