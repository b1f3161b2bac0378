"""Small pure pieces of the gateway: SSE frames, resume positions, the recent-frames cache,
the run bookkeeping that records a caller's new messages."""

from __future__ import annotations

import orjson
import pytest
from support.gateway_fixtures import SseParser

from agui_gateway.server.fanout import BATCH_BYTES, Batcher, RecentFrames, record_frame, slices
from agui_gateway.server.runs import ActiveRun, RunManager, new_messages
from agui_gateway.server.sse import InvalidResumePosition, event_frame, parse_resume_position
from agui_gateway.store.base import StoredRecord
from agui_gateway.upstream.client import AgentEvent, GatewayEvent


def _record(seq: int, text: str = "x") -> StoredRecord:
    return StoredRecord(seq, "r", 0, "agent", {"type": "CUSTOM", "name": "n", "value": text})


def test_frames_round_trip_through_an_sse_parser() -> None:
    event = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "line1\nline2 \u2028 ünï"}
    data = event_frame(event, 42) + event_frame(event) + b": ping\n\n"
    frames = SseParser().feed(data)
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
    with pytest.raises(InvalidResumePosition):
        parse_resume_position(header, query)


def test_recent_frames_are_contiguous_and_bounded() -> None:
    recent = RecentFrames(max_frames=4, max_bytes=10_000)
    recent.push(_record(s) for s in range(1, 7))
    assert recent.after(0) is None and recent.after(1) is None  # evicted: read from the log
    assert recent.after(2) == [record_frame(_record(s)) for s in (3, 4, 5, 6)]
    assert recent.after(5) == [record_frame(_record(6))]
    assert recent.after(6) is None  # nothing newer
    recent.push([_record(9)])  # a gap (another writer): start over from 9
    assert recent.after(6) is None and recent.after(8) == [record_frame(_record(9))]
    big = RecentFrames(max_frames=100, max_bytes=3 * len(record_frame(_record(10, "y" * 100))))
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


def test_new_messages_are_those_the_thread_lacks_in_input_order() -> None:
    msgs = [
        {"id": "a", "role": "user", "content": "1"},
        {"id": "b", "role": "user", "content": "2"},
        {"id": "a", "role": "user", "content": "dup"},
        {"role": "user", "content": "no id"},
        {"id": "c", "role": "tool", "toolCallId": "t", "content": "r"},
    ]
    assert [m["id"] for m in new_messages({"b"}, msgs)] == ["a", "c"]
    assert new_messages({"a", "b", "c"}, msgs) == []


def test_the_gateways_input_run_hands_over_to_the_agents_run() -> None:
    translate = RunManager._translate
    manager = object.__new__(RunManager)
    run = ActiveRun("t", "r", "agent", start_after=0, input_run_open=True, current_run_id="r")
    synthesized = GatewayEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "r"})
    assert translate(manager, run, synthesized) == []  # the gateway's own run already stands for it
    started = AgentEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "agent-run"})
    records = translate(manager, run, started)
    assert [(r.event["type"], r.source, r.run_id) for r in records] == [
        ("RUN_FINISHED", "gateway", "r"),
        ("RUN_STARTED", "agent", "agent-run"),
    ]
    assert records[1].event is started.event  # stored exactly as the agent sent it
    delta = AgentEvent({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"})
    assert [(r.source, r.run_id) for r in translate(manager, run, delta)] == [("agent", "agent-run")]
    # An agent that sends no RUN_STARTED continues the gateway's run.
    run2 = ActiveRun("t", "r2", "agent", start_after=0, input_run_open=True, current_run_id="r2")
    assert [r.event["type"] for r in translate(manager, run2, delta)] == ["TEXT_MESSAGE_START"]
    assert not run2.input_run_open
    assert orjson.dumps(records[0].event) == b'{"type":"RUN_FINISHED","threadId":"t","runId":"r"}'


async def test_registry_keeps_one_runtime_per_thread_and_evicts_only_idle_ones(tmp_path) -> None:
    import gc

    from agui_gateway.server.metrics import GatewayMetrics
    from agui_gateway.server.threads import ThreadRegistry
    from agui_gateway.store.file import FileStore

    store = FileStore(tmp_path)
    await store.open()
    registry = ThreadRegistry(store, GatewayMetrics(), cached_threads=2)
    busy = registry.get("busy")
    busy.subscribers = 1  # a stream is open on it
    held = registry.get("held")
    registry.get("third")
    registry.get("fourth")  # over the cap: the idle, least recently used ones go
    assert registry.peek("busy") is busy  # never evicted while a stream uses it
    assert registry.get("held") is held  # evicted, but still referenced: the same runtime comes back
    gc.collect()
    assert registry.peek("third") is None  # evicted and unreferenced: gone
    await store.close()


async def test_log_follower_sends_each_stored_event_in_the_frame_of_its_record(tmp_path) -> None:
    """Stored events go out as their stored bytes, framed exactly like ``record_frame``:
    from the log, from the recent-frames cache, from both, and cut at a bound."""
    from store.contract import awkward_events, events_holding_the_envelope

    from agui_gateway.server.fanout import LogFollower
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.file import FileStore

    store = FileStore(tmp_path)
    await store.open()
    events = awkward_events() + events_holding_the_envelope()
    records = await store.append("t", [NewEvent(e, "r") for e in events])
    last = records[-1].seq

    async def sent(cursor: int, recent: RecentFrames, bound: int | None = None) -> bytes:
        follower = LogFollower(
            store,
            "t",
            recent,
            cursor,
            heartbeat_s=30,
            heartbeat=b": ping\n\n",
            wait=lambda after, timeout: store.wait_for("t", after, timeout),
            stop=lambda at: at >= (bound or last),
            bound=lambda: bound,
        )
        return b"".join([bytes(piece) async for piece in follower.follow()])

    def framed(after: int, upto: int = last) -> bytes:
        return b"".join(record_frame(r) for r in records if after < r.seq <= upto)

    for cursor in (0, 1, last - 2, last - 1):
        assert await sent(cursor, RecentFrames()) == framed(cursor)  # all from the log
    warm = RecentFrames()
    warm.push(records[:6])
    assert await sent(2, warm) == framed(2)  # 3..6 from the cache, the rest from the log
    assert await sent(0, RecentFrames(), bound=7) == framed(0, 7)
    await store.close()
