"""Blocking helpers for one thread's JSONL log: chunked scan, torn-tail repair, sparse index.

Nothing here touches asyncio; :mod:`agui_gateway.store.file.store` runs these in a
thread executor. Every function reads in fixed-size chunks so memory stays
bounded by the chunk size plus the longest line.

Which lines count
-----------------
A line is *good* when it is newline-terminated, decodes as a record and its seq
is greater than the previous good line's seq. Bad lines in the middle of the
log (a hand edit, never our own writes) are skipped and counted. The *tail* -
everything after the last good line, plus trailing good lines whose seq is not
exactly the next one after their predecessor's - is a torn write: it is moved
to a side file and cut off. (A run of more than 64 such lines is a hand-edited
log, not a torn write, and is kept.) The rule is a fixpoint: repairing twice
changes nothing.

The scan also notes the *odd* lines: the bad ones and the good ones that are
not exactly in the shape the store writes (:func:`~.records.decode_scan`).
Readers that serve events without decoding them cut every other line
(:func:`~.records.slice_event`) and decode the odd ones; a log only the store
wrote has none.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from agui_gateway.store.file.fs import fsync_dir, write_all
from agui_gateway.store.records import decode_record, decode_scan

CHUNK_SIZE = 64 * 1024
INDEX_EVERY = 256  # one (seq, offset) index entry per this many records
BIG_PARTIAL = 1 << 20  # a partial line above this is grown in place (LineSplitter.block)
_RECENT = 64  # good lines remembered for the torn-tail check


class LineSplitter:
    """Turns chunks into complete lines (without the newline), tracking byte offsets."""

    def __init__(self, offset: int = 0) -> None:
        self._parts: list[bytes] = []
        self._parts_size = 0
        # A line longer than BIG_PARTIAL is assembled in one buffer grown in place, so a
        # reader holds it once (joining pieces would hold it twice at the end).
        self._big: bytearray | None = None
        self.line_start = offset  # file offset where the current partial line starts

    def block(self, chunk: bytes) -> bytes | bytearray:
        """The lines ``chunk`` completes, as one buffer, newlines included (b"" if none).

        The bulk form of :meth:`feed`. Read :attr:`line_start` before the call: the
        block starts there, and :attr:`line_start` afterwards is where it ends.
        """
        last = chunk.rfind(b"\n")
        if last < 0:
            self._add_partial(chunk)
            return b""
        block: bytes | bytearray
        if self._big is not None:
            self._big += memoryview(chunk)[: last + 1]
            block, self._big = self._big, None
        else:
            block = chunk[: last + 1]
            if self._parts:
                self._parts.append(block)
                block = b"".join(self._parts)
                self._parts.clear()
        self._parts_size = 0
        if last + 1 < len(chunk):
            self._add_partial(chunk[last + 1 :])
        self.line_start += len(block)
        return block

    def _add_partial(self, piece: bytes) -> None:
        if self._big is not None:
            self._big += piece
            return
        self._parts.append(piece)
        self._parts_size += len(piece)
        if self._parts_size > BIG_PARTIAL:
            self._big = bytearray().join(self._parts)
            self._parts.clear()

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes, int]]:
        """Yield ``(start, line, end)`` for each line completed by ``chunk``."""
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            if nl < 0:
                break
            if self._parts:
                self._parts.append(chunk[pos:nl])
                line = b"".join(self._parts)
                self._parts.clear()
            else:
                line = chunk[pos:nl]
            start = self.line_start
            self.line_start = start + len(line) + 1
            yield start, line, self.line_start
            pos = nl + 1
        if pos < len(chunk):
            self._parts.append(chunk[pos:])

    @property
    def has_partial(self) -> bool:
        return bool(self._parts) or self._big is not None


@dataclass
class SparseIndex:
    """``seq -> byte offset`` for every ~``INDEX_EVERY``-th record: 16 bytes per entry."""

    seqs: array[int] = field(default_factory=lambda: array("q"))
    offsets: array[int] = field(default_factory=lambda: array("q"))

    def note(self, seq: int, offset: int) -> None:
        """Called for every good line in file order; keeps one in ``INDEX_EVERY``."""
        if not self.seqs or seq >= self.seqs[-1] + INDEX_EVERY:
            self.seqs.append(seq)
            self.offsets.append(offset)

    def locate(self, after: int) -> int:
        """Offset of a good line at or before the first record with ``seq > after``."""
        i = bisect_right(self.seqs, after + 1) - 1
        return self.offsets[i] if i >= 0 else 0

    def forget_from(self, offset: int) -> None:
        while self.offsets and self.offsets[-1] >= offset:
            self.offsets.pop()
            self.seqs.pop()

    def __len__(self) -> int:
        return len(self.seqs)


class _GoodLine(NamedTuple):
    seq: int
    prev_seq: int
    end: int
    ts: int
    bad_before: int  # bad lines between the previous good line and this one
    run_open: bool  # whether a run is open after this line (see store.open_runs)


@dataclass
class ScanResult:
    last_seq: int = 0
    last_ts: int | None = None
    good_end: int = 0  # byte offset just after the last good line
    file_size: int = 0
    malformed: int = 0  # bad lines in the middle, skipped
    index: SparseIndex = field(default_factory=SparseIndex)
    odd: array[int] = field(default_factory=lambda: array("q"))  # start offsets of the odd lines
    run_open: bool = False  # the good lines end in an open run (a RUN_STARTED, no end after it)

    @property
    def torn_bytes(self) -> int:
        return self.file_size - self.good_end


def scan_log(path: Path) -> ScanResult:
    """Scan ``path`` once, in chunks, and say what is good and where; nothing is modified."""
    result = ScanResult()
    recent: deque[_GoodLine] = deque(maxlen=_RECENT)
    good_lines = 0  # good lines seen (recent only remembers the last _RECENT)
    bad_since_good = 0
    run_open = False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return result
    try:
        result.file_size = size = os.fstat(fd).st_size
        splitter = LineSplitter(0)
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            for start, line, end in splitter.feed(chunk):
                fields = decode_scan(line)
                if fields is None or fields[0] <= result.last_seq:
                    bad_since_good += 1
                    result.odd.append(start)
                    continue
                seq, ts, sliceable, boundary = fields
                if not sliceable:
                    result.odd.append(start)
                if boundary is not None:
                    run_open = boundary
                recent.append(_GoodLine(seq, result.last_seq, end, ts, bad_since_good, run_open))
                result.malformed += bad_since_good
                bad_since_good = 0
                good_lines += 1
                result.last_seq = seq
                result.index.note(seq, start)
    finally:
        os.close(fd)
    # The tail check: the last good line must carry exactly the next seq.
    drop = _torn_seq_lines(recent, good_lines)
    for _ in range(drop):
        result.malformed -= recent.pop().bad_before
    if recent:
        last = recent[-1]
        result.last_seq, result.last_ts, result.good_end = last.seq, last.ts, last.end
        result.run_open = last.run_open
    else:
        result.last_seq, result.last_ts, result.good_end, result.malformed = 0, None, 0, 0
    result.index.forget_from(result.good_end)
    while result.odd and result.odd[-1] >= result.good_end:  # cut off with the torn tail
        result.odd.pop()
    return result


def _torn_seq_lines(recent: deque[_GoodLine], good_lines: int) -> int:
    """How many trailing good lines to treat as torn because their seq is not the next one.

    Bounded by the remembered lines: a longer run of seq gaps is a hand-edited
    log, not a torn write, and is kept whole (the decision is the same on every
    scan, so repair stays idempotent).
    """
    drop = 0
    for line in reversed(recent):
        if line.seq == line.prev_seq + 1:
            return drop
        drop += 1
    return drop if good_lines == len(recent) else 0


def repair_torn(path: Path, good_end: int, side_path: Path) -> int:
    """Move the bytes after ``good_end`` to ``side_path`` (fsynced), then cut them off.

    Returns the number of torn bytes. The side file is durable before the log
    shrinks, so a crash during repair loses nothing.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size <= good_end:
            return 0
        side = _create_new(side_path)
        try:
            offset = good_end
            while offset < size:
                chunk = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
                if not chunk:
                    break
                write_all(side, chunk)
                offset += len(chunk)
            os.fsync(side)
        finally:
            os.close(side)
        fsync_dir(path.parent)
        os.ftruncate(fd, good_end)
        os.fsync(fd)
        return size - good_end
    finally:
        os.close(fd)


def _create_new(path: Path) -> int:
    """Create ``path``, or ``path-1``, ``path-2``... if it exists: never overwrite evidence."""
    candidate, n = path, 0
    while True:
        try:
            return os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")


@dataclass(frozen=True, slots=True)
class TailInfo:
    last_seq: int
    size: int
    last_ts: int | None


def peek_tail(path: Path) -> TailInfo | None:
    """Cheap metadata from the end of a log, or None when a full scan must decide.

    Reads at most one chunk. Only answers when the tail is unambiguous: the file
    ends with a newline and its last line is a record whose seq is exactly one
    more than the line before it (or it is seq 1 and the only line).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return TailInfo(0, 0, None)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return TailInfo(0, 0, None)
        start = max(0, size - CHUNK_SIZE)
        chunk = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    if not chunk.endswith(b"\n"):
        return None
    lines = chunk[:-1].split(b"\n")
    last = decode_record(lines[-1])
    if last is None:
        return None
    if len(lines) == 1:
        ok = start == 0 and last.seq == 1
    else:
        before = decode_record(lines[-2])
        complete = len(lines) > 2 or start == 0  # lines[-2] began inside the chunk
        ok = complete and before is not None and last.seq == before.seq + 1
    return TailInfo(last.seq, size, last.ts) if ok else None
