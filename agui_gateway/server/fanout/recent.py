"""The encoded frames of a thread's most recent records, shared by its subscribers.

:class:`RecentFrames` keeps the SSE frames of the last few hundred stored records of a
thread, so that the subscribers of a busy thread that are near the tail (the usual
case) share one encoding and read no disk. It only ever holds records the store has
acknowledged, contiguous by seq; a cursor it does not cover falls back to the store
(:class:`~.follower.LogFollower`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice

import orjson

from agui_gateway.protocol.compaction import MAX_FRAME_BYTES, split_sequenced
from agui_gateway.protocol.compaction.split import fits
from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT
from agui_gateway.server.sse import frame, frames
from agui_gateway.store.base import StoredRecord

# What the JSON of one event may weigh for its frame (``id: N`` and ``data:`` around it)
# to stay within the official client's limit, which it checks on a frame still incomplete
# (``transformHttpEventStream``): a stored event past it is split.
FRAME_ROOM = CLIENT_SSE_BUFFER_LIMIT - 64


def record_frame(record: StoredRecord, epoch: str | None) -> bytes:
    """A stored record as SSE: the agent's event, exactly, with ``id: EPOCH:SEQ``; one too big
    for a frame of the client as :func:`oversized_frames` makes it.

    The same bytes as the follower sends for the store's ``read_event_json`` of the record.
    """
    data = orjson.dumps(record.served)
    if len(data) > FRAME_ROOM:
        return oversized_frames(data, record.seq, epoch) or frame(data, record.seq, epoch=epoch)
    return frame(data, record.seq, epoch=epoch)


def oversized_frames(event_json: bytes | memoryview, seq: int, epoch: str | None) -> bytes | None:
    """A stored event whose JSON outgrows :data:`FRAME_ROOM`, split over frames the client
    applies to the same result, ``id: seq`` on the last
    (:func:`~agui_gateway.protocol.compaction.split_sequenced`); None when a part still
    outgrows it (nothing of the event could be cut: it goes out whole, as stored, and the
    client refuses it as it would without the gateway). Only events that big pay for
    the decode."""
    parts = split_sequenced(orjson.loads(event_json), seq, MAX_FRAME_BYTES)
    if len(parts) == 1 or not fits([part for part, _ in parts], FRAME_ROOM):
        return None
    return frames(parts, epoch)


class RecentFrames:
    """The SSE frames of a thread's most recently stored records, shared by its subscribers.

    :attr:`epoch` is the thread's epoch (set by the replay state once it is known), which
    every frame's id carries: encoded once per record, whatever the number of subscribers.
    """

    def __init__(self, max_frames: int = 1024, max_bytes: int = 1 << 20) -> None:
        self.epoch: str | None = None
        self._frames: deque[bytes] = deque()
        self._first_seq = 1  # seq of _frames[0]
        self._bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        # The joined bytes of after(cursor) per cursor, until the next push: the subscribers
        # of a busy thread mostly stand at the same cursor, so one join serves them all.
        self._joined: dict[int, bytes] = {}

    @property
    def last_seq(self) -> int:
        return self._first_seq + len(self._frames) - 1

    def clear(self) -> None:
        self._frames.clear()
        self._bytes = 0
        self._joined.clear()

    def push(self, records: Iterable[StoredRecord]) -> int:
        """Cache the frames of newly stored records; returns the bytes of those frames."""
        pushed = 0
        self._joined.clear()
        for record in records:
            if self._frames and record.seq != self.last_seq + 1:
                self.clear()  # someone else wrote in between: restart contiguously
            if not self._frames:
                self._first_seq = record.seq
            encoded = record_frame(record, self.epoch)
            self._frames.append(encoded)
            self._bytes += len(encoded)
            pushed += len(encoded)
        while self._frames and (len(self._frames) > self._max_frames or self._bytes > self._max_bytes):
            self._bytes -= len(self._frames.popleft())
            self._first_seq += 1
        return pushed

    def after(self, cursor: int) -> list[bytes] | None:
        """The frames of seqs ``cursor+1 ..`` when this cache holds ``cursor+1``; else None."""
        if not self._frames or not self._first_seq <= cursor + 1 <= self.last_seq:
            return None
        return list(islice(self._frames, cursor + 1 - self._first_seq, None))

    def joined_after(self, cursor: int) -> bytes | None:
        """:meth:`after` as one buffer, shared by every caller at the same cursor."""
        joined = self._joined.get(cursor)
        if joined is None:
            frames = self.after(cursor)
            if frames is None:
                return None
            joined = b"".join(frames)
            if len(self._joined) > 64:  # cursors scattered by slow readers: keep it small
                self._joined.clear()
            self._joined[cursor] = joined
        return joined
