"""Fan-out pieces (server/fanout.py): the recent-frames cache, send-sized batches, and the
log follower that sends each subscriber the log after its own cursor."""

from __future__ import annotations

from pathlib import Path

import orjson
from store.contract import awkward_events, events_holding_the_envelope

from agui_gateway.server.fanout.batches import BATCH_BYTES, Batcher, slices
from agui_gateway.server.fanout.follower import LogFollower, LogSource
from agui_gateway.server.fanout.recent import RecentFrames, record_frame
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.store.base import NewEvent, StoredRecord
from agui_gateway.store.file import FileStore


async def _take_in_nothing(latest: int) -> None:
    """The tail's ``follow``: these followers read the store themselves; nothing takes records in."""


def _record(seq: int, text: str = "x") -> StoredRecord:
    return StoredRecord(seq, "r", 0, "agent", {"type": "CUSTOM", "name": "n", "value": text})


def test_recent_frames_are_contiguous_and_bounded() -> None:
    recent = RecentFrames(max_frames=4, max_bytes=10_000)
    recent.push(_record(s) for s in range(1, 7))
    assert recent.after(0) is None and recent.after(1) is None  # evicted: read from the log
    assert recent.after(2) == [record_frame(_record(s), None) for s in (3, 4, 5, 6)]
    assert recent.after(5) == [record_frame(_record(6), None)]
    assert recent.after(6) is None  # nothing newer
    recent.push([_record(9)])  # a gap (another writer): start over from 9
    assert recent.after(6) is None and recent.after(8) == [record_frame(_record(9), None)]
    big = RecentFrames(max_frames=100, max_bytes=3 * len(record_frame(_record(10, "y" * 100), None)))
    big.push(_record(s, "y" * 100) for s in range(1, 11))
    assert big.after(6) is None and len(big.after(7) or []) == 3


def test_batches_and_slices_cover_the_bytes_exactly() -> None:
    batcher = Batcher()
    sent = [out for i in range(2000) if (out := batcher.add(b"%05d" % i)) is not None]
    rest = batcher.flush()
    assert b"".join(sent) + (rest or b"") == b"".join(b"%05d" % i for i in range(2000))
    assert all(len(chunk) >= BATCH_BYTES for chunk in sent)
    data = bytes(range(256)) * 1000
    pieces = list(slices(data, 1000))
    assert b"".join(bytes(p) for p in pieces) == data and max(len(p) for p in pieces) == 1000


async def test_log_follower_sends_each_stored_event_in_the_frame_of_its_record(tmp_path: Path) -> None:
    """Stored events go out as their stored bytes, framed exactly like ``record_frame``:
    from the log, from the recent-frames cache, from both, and cut at a bound."""
    store = FileStore(tmp_path)
    await store.open()
    events = awkward_events() + events_holding_the_envelope()
    records = await store.append("t", [NewEvent(e, "r") for e in events])
    last = records[-1].seq
    head = await store.head("t")
    assert head is not None
    epoch = head.epoch

    class UpTo(LogFollower):
        """Complete at ``bound`` (or the last record), which is also the last seq it may send."""

        def __init__(self, cursor: int, recent: RecentFrames, bound: int | None) -> None:
            tail = ThreadTail(store, "t", _take_in_nothing)
            super().__init__(LogSource(store, "t", recent, tail), cursor, heartbeat_s=30)
            self.bounded = bound is not None
            self.upto = bound

        def complete(self, cursor: int) -> bool:
            return cursor >= (self.upto or last)

        def bound(self) -> int | None:
            return self.upto

    async def sent(cursor: int, recent: RecentFrames, bound: int | None = None) -> bytes:
        follower = UpTo(cursor, recent, bound)
        return b"".join([bytes(piece) async for piece in follower.follow()])

    def framed(after: int, upto: int = last) -> bytes:
        return b"".join(record_frame(r, epoch) for r in records if after < r.seq <= upto)

    # A cache without the epoch yet (the records not taken in): the follower reads it itself.
    for cursor in (0, 1, last - 2, last - 1):
        assert await sent(cursor, RecentFrames()) == framed(cursor)  # all from the log
    assert framed(last - 1).startswith(f"id: {epoch}:{last}\n".encode())
    warm = RecentFrames()
    warm.epoch = epoch
    warm.push(records[:6])
    assert await sent(2, warm) == framed(2)  # 3..6 from the cache, the rest from the log
    assert await sent(0, RecentFrames(), bound=7) == framed(0, 7)
    await store.close()


def test_a_record_past_the_clients_frame_limit_is_split_unless_nothing_can_be_cut() -> None:
    """Each frame stays within the official client's limit, the id on the last one only;
    an event nothing of which can be cut goes out whole, as stored (one copy of it)."""
    limit = 10 * 1024 * 1024  # the client's MAX_BUFFER_SIZE, written out
    result = {"type": "TOOL_CALL_RESULT", "messageId": "t", "toolCallId": "c", "content": "z" * limit}
    split = record_frame(StoredRecord(7, "r", 0, "agent", result), "e")
    frames = [f for f in split.split(b"\n\n") if f]
    assert len(frames) > 2 and max(len(f) for f in frames) <= limit
    assert [f.startswith(b"id: e:7\n") for f in frames] == [False] * (len(frames) - 1) + [True]
    events = [orjson.loads(f.split(b"data: ", 1)[1]) for f in frames]
    assert events[0] == {**result, "content": ""}
    assert "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT") == result["content"]
    state = {"type": "STATE_SNAPSHOT", "snapshot": {"blob": "b" * limit}}
    assert (
        record_frame(StoredRecord(8, "r", 0, "agent", state), "e") == b"id: e:8\ndata: " + orjson.dumps(state) + b"\n\n"
    )
    small = {"type": "STATE_SNAPSHOT", "snapshot": {"blob": "b" * (8 * 1024 * 1024)}}  # under the limit: whole
    assert (
        record_frame(StoredRecord(9, "r", 0, "agent", small), "e") == b"id: e:9\ndata: " + orjson.dumps(small) + b"\n\n"
    )
