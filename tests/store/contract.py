"""The behaviour every :class:`ThreadStore` backend must have, written only against the interface.

Usage (in the style of the ``eventsourcing`` library's persistence tests)::

    class TestMyStore(StoreContract):
        @pytest.fixture
        async def make_store(self):
            ...  # yield an async factory; every call returns an *opened* store over
            ...  # the same backing data (a "restart"); close them all at teardown

Nothing here knows which backend it is testing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from agui_gateway.store.base import (
    Checkpoint,
    InvalidThreadId,
    NewEvent,
    SeqConflict,
    StoredRecord,
    ThreadStore,
    UnencodableEvent,
)

MakeStore = Callable[[], Awaitable[ThreadStore]]


@asynccontextmanager
async def opened_stores(build: Callable[[], ThreadStore]) -> AsyncIterator[MakeStore]:
    """A ``make_store`` factory: each call opens a new ``build()``; all are closed on exit."""
    stores: list[ThreadStore] = []

    async def make() -> ThreadStore:
        store = build()
        await store.open()
        stores.append(store)
        return store

    try:
        yield make
    finally:
        for store in stores:
            await store.close()


INVALID_THREAD_IDS = [
    "../x",
    "a/b",
    "",
    ".",
    "..",
    "x" * 129,
    "a\x00b",
    "a\\b",
    "a b",
    "x\n",
    "caf\u00e9",
]

# A deadline that only a hang reaches; never used to measure speed.
HANG_GUARD = 20.0


def event(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "CUSTOM", "name": "test", "value": value, **extra}


def new(value: Any, run_id: str | None = "run-1", **extra: Any) -> NewEvent:
    return NewEvent(event(value, **extra), run_id)


async def drain(records: AsyncIterator[Any]) -> list[Any]:
    """Every item of an async iterator, in order."""
    return [record async for record in records]


async def let_waiters_start(store: ThreadStore) -> None:
    """Give freshly created tasks loop turns and the backend a round trip to start waiting.

    Not a timed sleep: it only yields, so a wait_for that wrongly returns at once
    is done afterwards.
    """
    for _ in range(3):
        for _ in range(10):
            await asyncio.sleep(0)  # wait-ok: yields a loop turn, no timing
        await store.last_seq("round-trip")


def started(run_id: str, thread_id: str = "t") -> NewEvent:
    return NewEvent({"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}, run_id)


def finished(run_id: str, thread_id: str = "t") -> NewEvent:
    return NewEvent({"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id}, run_id)


def errored(run_id: str) -> NewEvent:
    return NewEvent({"type": "RUN_ERROR", "message": "cut off", "code": "test"}, run_id, "gateway")


def awkward_events() -> list[dict[str, Any]]:
    """Events that break naive serialisers: unicode, escapes, numbers, nesting, size."""
    nested: dict[str, Any] = {"leaf": True}
    for depth in range(40):
        nested = {f"level{depth}": [nested, depth]}
    return [
        event("h\u00e9llo w\u00f6rld \u65e5\u672c\u8a9e \U0001f600\U0001f389 \U0001f468\u200d\U0001f469"),
        event('line\nbreak\ttab "quote" back\\slash \u2028\u2029 \x00\x01\x1f nul'),
        {"type": "STATE_SNAPSHOT", "snapshot": {"\u00fcnicode key": "v", "": "empty key"}},
        event([0.1, -0.0, 1e-300, 1.7976931348623157e308, 2**63 - 1, -(2**63), 2**64 - 1]),
        event([None, True, False, [], {}, "", [[[]]]]),
        {"z": 1, "a": 2, "m": 3, "type": "CUSTOM"},  # key order must survive
        event(nested),
        event("big \u00e9\U0001f600 " * 150_000),  # ~1.5 MB: spans many read chunks
        event("after the big one"),
    ]


def events_holding_the_envelope() -> list[dict[str, Any]]:
    """Events whose strings or keys look like the stored envelope around them."""
    return [
        event('{"event":{"type":"RUN_ERROR","message":"x"}}'),
        event('x","event":{"type":"RUN_ERROR"}},"y":"'),
        event('\\"event\\":{}'),
        event("ends with a backslash \\"),
        {"type": "CUSTOM", "name": "event", "value": {"event": {"event": '"event":'}}},
        {"event": {"seq": 1, "runId": "r"}, "type": "CUSTOM", "source": "gateway", "seq": 7},
        {"type": "CUSTOM", "name": ',"source":"agent","event":{', "value": "}"},
        {"type": "CUSTOM", "name": "}", "value": {"": {"}": "{"}}},
    ]


# Run ids that could fool a reader cutting the event out of a stored line.
AWKWARD_RUN_IDS: list[str | None] = [
    None,
    "plain",
    'r","event":{"x":1},"y":"',
    ',"source":"agent","event":{',
    "ends with a backslash \\",
    "\u00e9\U0001f600 \u2028",
    '"event":',
    "",
]


class StoreContract:
    """Tests every backend passes. Subclasses provide the ``make_store`` fixture."""

    @pytest.fixture
    async def store(self, make_store: MakeStore) -> ThreadStore:
        return await make_store()

    # -- append and read ---------------------------------------------------------------

    async def test_append_assigns_dense_seqs_in_order(self, store: ThreadStore) -> None:
        first = await store.append("t", [new(0), new(1), new(2)])
        second = await store.append("t", [new(3)])
        third = await store.append("t", [new(4), new(5)])
        assert [r.seq for r in first + second + third] == [1, 2, 3, 4, 5, 6]
        read = await drain(store.read("t"))
        assert [r.seq for r in read] == [1, 2, 3, 4, 5, 6]
        assert [r.event["value"] for r in read] == [0, 1, 2, 3, 4, 5]
        assert await store.last_seq("t") == 6

    async def test_read_returns_what_append_returned(self, store: ThreadStore) -> None:
        appended = await store.append(
            "t",
            [
                NewEvent(event("a"), "run-1", "agent"),
                NewEvent(event("b"), None, "gateway"),
                NewEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "r"}, "r"),
            ],
        )
        read = await drain(store.read("t"))
        assert read == appended
        assert [(r.run_id, r.source) for r in read] == [
            ("run-1", "agent"),
            (None, "gateway"),
            ("r", "agent"),
        ]
        assert all(isinstance(r.ts, int) and r.ts > 0 for r in read)

    async def test_empty_append_stores_nothing(self, store: ThreadStore) -> None:
        assert await store.append("t", []) == []
        assert await store.last_seq("t") == 0
        assert await store.thread_info("t") is None

    async def test_read_after_every_n(self, store: ThreadStore) -> None:
        for start in range(0, 37, 4):
            await store.append("t", [new(v) for v in range(start, min(start + 4, 37))])
        for after in range(40):
            seqs = [r.seq for r in await drain(store.read("t", after=after))]
            assert seqs == list(range(after + 1, 38)), after
            lines = await drain(store.read_lines("t", after=after))
            assert [orjson.loads(line)["seq"] for line in lines] == seqs

    async def test_read_lines_are_the_stored_records(self, store: ThreadStore) -> None:
        await store.append("t", [new(v) for v in range(5)])
        await store.append("t", [NewEvent(e, None, "gateway") for e in awkward_events()[:3]])
        records = await drain(store.read("t"))
        lines = await drain(store.read_lines("t"))
        assert len(lines) == len(records)
        for line, record in zip(lines, records, strict=True):
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            assert orjson.loads(line) == record.to_json_dict()
            assert list(orjson.loads(line)) == ["seq", "runId", "ts", "source", "event"]
        info = await store.thread_info("t")
        assert info is not None and info.bytes == sum(len(line) for line in lines)

    async def test_records_round_trip_exactly(self, store: ThreadStore) -> None:
        originals = awkward_events()
        await store.append("t", [NewEvent(e, "run-\u00e9") for e in originals[:5]])
        for e in originals[5:]:
            await store.append("t", [NewEvent(e, None)])
        read = await drain(store.read("t"))
        assert [orjson.dumps(r.event) for r in read] == [orjson.dumps(e) for e in originals]
        assert read[0].run_id == "run-\u00e9"
        tail = await drain(store.read("t", after=len(originals) - 2))
        assert [r.event for r in tail] == originals[-2:]

    async def test_unencodable_event_is_rejected_and_stores_nothing(self, store: ThreadStore) -> None:
        await store.append("t", [new(0)])
        # The base contract documents UnencodableEvent (a ValueError) for both backends.
        with pytest.raises(UnencodableEvent, match="JSON"):
            await store.append("t", [new(1), NewEvent({1: "non-string key"}, None)])  # type: ignore[dict-item]
        with pytest.raises(UnencodableEvent, match="JSON"):
            await store.append("t", [NewEvent(event(object()), None)])
        assert await store.last_seq("t") == 1
        assert [r.seq for r in await store.append("t", [new(2)])] == [2]
        assert [r.event["value"] for r in await drain(store.read("t"))] == [0, 2]

    async def test_threads_are_independent(self, store: ThreadStore) -> None:
        await store.append("a", [new("a1"), new("a2")])
        await store.append("b", [new("b1")])
        await store.append("a", [new("a3")])
        assert [(r.seq, r.event["value"]) for r in await drain(store.read("a"))] == [
            (1, "a1"),
            (2, "a2"),
            (3, "a3"),
        ]
        assert [(r.seq, r.event["value"]) for r in await drain(store.read("b"))] == [(1, "b1")]

    async def test_longest_valid_thread_id(self, store: ThreadStore) -> None:
        thread_id = ("Ab9._-" * 22)[:128]
        await store.append(thread_id, [new(0)])
        assert [r.seq for r in await drain(store.read(thread_id))] == [1]
        assert {i.thread_id for i in await store.list_threads()} == {thread_id}

    # -- events as stored JSON (served without decoding) ----------------------------------

    async def test_event_json_is_each_stored_event_exactly(self, store: ThreadStore) -> None:
        events = awkward_events() + events_holding_the_envelope()
        for i, e in enumerate(events):
            source = "agent" if i % 3 else "gateway"
            await store.append("t", [NewEvent(e, AWKWARD_RUN_IDS[i % len(AWKWARD_RUN_IDS)], source)])
        await store.append("t", [NewEvent(e, "batch") for e in events_holding_the_envelope()])
        records = await drain(store.read("t"))
        lines = await drain(store.read_lines("t"))
        last = records[-1].seq
        for after in (0, 1, 7, 8, last - 9, last - 1, last, last + 3):
            expected = [(r, line) for r, line in zip(records, lines, strict=True) if r.seq > after]
            got = await drain(store.read_event_json("t", after))
            assert [seq for seq, _ in got] == [r.seq for r, _ in expected], after
            for (seq, data), (record, line) in zip(got, expected, strict=True):
                # bytes, or a view of the bytes read for a big event (held once, not copied)
                assert isinstance(data, bytes | memoryview)
                data = bytes(data)
                assert b"\n" not in data and b"\r" not in data
                decoded = orjson.loads(data)
                assert decoded == record.event, seq
                assert orjson.dumps(decoded) == orjson.dumps(record.event), seq  # key order too
                assert line.endswith(b',"event":' + data + b"}\n"), seq  # the stored bytes

    async def test_an_annotated_record_keeps_its_event_and_is_served_merged(
        self, store: ThreadStore, make_store: MakeStore
    ) -> None:
        started = {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "input": {"agent's": "own"}}
        annotation = {
            "input": {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}]}
        }
        appended = await store.append("t", [new("before"), NewEvent(started, "r", "agent", annotation), new("after")])
        assert appended[1].annotation == annotation and appended[1].event == started
        for reader in (store, await make_store()):
            records = await drain(reader.read("t"))
            assert [(r.event, r.annotation) for r in records] == [(r.event, r.annotation) for r in appended]
            served = {**started, "input": annotation["input"]}
            assert [orjson.loads(data) for _, data in await drain(reader.read_event_json("t"))] == [
                appended[0].event,
                served,
                appended[2].event,
            ]
            line = (await drain(reader.read_lines("t")))[1]
            # The envelope: the annotation beside the event, which is stored exactly as sent.
            assert orjson.loads(line) == {**orjson.loads(line), "gateway": annotation, "event": started}
            assert line.endswith(b',"event":' + orjson.dumps(started) + b"}\n")

    async def test_event_json_of_events_appended_while_reading(self, store: ThreadStore) -> None:
        await store.append("t", [new(v) for v in range(3)])
        seen = []
        async for seq, data in store.read_event_json("t"):
            seen.append((seq, orjson.loads(data)["value"]))
            if seq == 2:
                await store.append("t", [new(3)])
        # Whether a running read reaches a record stored meanwhile is up to the backend;
        # whatever it yields is a contiguous prefix, and a new read yields the rest.
        assert seen[:3] == [(1, 0), (2, 1), (3, 2)] and seen == [(s, s - 1) for s in range(1, len(seen) + 1)]
        rest = [(seq, orjson.loads(data)["value"]) for seq, data in await drain(store.read_event_json("t", 3))]
        assert rest == [(4, 3)]

    # -- concurrency -------------------------------------------------------------------

    async def test_concurrent_appends_get_dense_unique_seqs(self, store: ThreadStore) -> None:
        tasks, batches_per_task = 25, 6

        async def appender(task: int) -> list[list[StoredRecord]]:
            done = []
            for batch in range(batches_per_task):
                size = 1 + (task + batch) % 3
                done.append(await store.append("t", [new([task, batch, k]) for k in range(size)]))
            return done

        async with asyncio.timeout(HANG_GUARD * 3):
            results = await asyncio.gather(*(appender(t) for t in range(tasks)))
        returned = [r for per_task in results for batch in per_task for r in batch]
        total = sum(1 + (t + b) % 3 for t in range(tasks) for b in range(batches_per_task))
        assert sorted(r.seq for r in returned) == list(range(1, total + 1))
        stored = await drain(store.read("t"))
        assert [r.seq for r in stored] == list(range(1, total + 1))
        by_seq = {r.seq: r.event["value"] for r in stored}
        for per_task in results:
            for batch in per_task:
                # A batch is stored atomically: consecutive seqs, in order, as returned.
                assert [r.seq for r in batch] == list(range(batch[0].seq, batch[0].seq + len(batch)))
                assert [by_seq[r.seq] for r in batch] == [r.event["value"] for r in batch]
            # One task's batches keep their order.
            assert [b[0].seq for b in per_task] == sorted(b[0].seq for b in per_task)

    async def test_reader_concurrent_with_appends_sees_no_gaps(self, store: ThreadStore) -> None:
        total = 400

        async def writer() -> None:
            value = 0
            while value < total:
                size = min(1 + value % 5, total - value)
                await store.append("t", [new(v) for v in range(value, value + size)])
                value += size

        async def reader(kind: str) -> int:
            seen = reads = 0
            while seen < total:
                await store.wait_for("t", seen, timeout=HANG_GUARD)
                if kind == "lines":
                    got = [orjson.loads(line) for line in await drain(store.read_lines("t", seen))]
                    pairs = [(g["seq"], g["event"]["value"]) for g in got]
                elif kind == "event_json":
                    got = await drain(store.read_event_json("t", seen))
                    pairs = [(seq, orjson.loads(data)["value"]) for seq, data in got]
                else:
                    got = await drain(store.read("t", seen))
                    pairs = [(r.seq, r.event["value"]) for r in got]
                assert pairs == [(seen + 1 + i, seen + i) for i in range(len(pairs))]
                seen += len(pairs)
                reads += 1
            return reads

        async with asyncio.timeout(HANG_GUARD * 3):
            _, *reads = await asyncio.gather(writer(), reader("records"), reader("lines"), reader("event_json"))
        assert await store.last_seq("t") == total
        assert all(count >= 1 for count in reads)

    # -- wait_for -----------------------------------------------------------------------

    async def test_wait_for_returns_at_once_when_already_past(self, store: ThreadStore) -> None:
        await store.append("t", [new(0), new(1)])
        async with asyncio.timeout(HANG_GUARD):
            assert await store.wait_for("t", 0, timeout=HANG_GUARD * 2) == 2
            assert await store.wait_for("t", 1, timeout=HANG_GUARD * 2) == 2

    async def test_wait_for_wakes_on_append(self, store: ThreadStore) -> None:
        await store.append("t", [new(0)])
        waiter = asyncio.create_task(store.wait_for("t", 1, timeout=HANG_GUARD * 2))
        await let_waiters_start(store)
        assert not waiter.done(), "wait_for returned although nothing new was appended"
        await store.append("t", [new(1)])
        async with asyncio.timeout(HANG_GUARD):
            assert await waiter == 2

    async def test_wait_for_wakes_every_waiter(self, store: ThreadStore) -> None:
        waiters = [asyncio.create_task(store.wait_for("t", 0, timeout=HANG_GUARD * 2)) for _ in range(5)]
        await let_waiters_start(store)
        assert not any(w.done() for w in waiters)
        await store.append("t", [new(0)])
        async with asyncio.timeout(HANG_GUARD):
            assert await asyncio.gather(*waiters) == [1] * 5

    async def test_wait_for_times_out_with_latest_seq(self, store: ThreadStore) -> None:
        assert await store.wait_for("t", 0, timeout=0.05) == 0
        await store.append("t", [new(0), new(1), new(2)])
        assert await store.wait_for("t", 3, timeout=0.05) == 3
        assert await store.wait_for("t", 10, timeout=0.05) == 3
        assert await store.wait_for("t", 3, timeout=0) == 3

    # -- checkpoints ----------------------------------------------------------------------

    async def test_checkpoint_saves_load_and_replace(self, store: ThreadStore) -> None:
        assert await store.load_checkpoint("t") is None
        first = Checkpoint(3, b'{"messages": []}')
        await store.save_checkpoint("t", first)
        assert await store.load_checkpoint("t") == first
        second = Checkpoint(10, bytes(range(256)) * 1000 + b"\n\x00end")
        await store.save_checkpoint("t", second)
        assert await store.load_checkpoint("t") == second
        empty = Checkpoint(0, b"")
        await store.save_checkpoint("t", empty)
        assert await store.load_checkpoint("t") == empty
        assert await store.load_checkpoint("other") is None

    async def test_concurrent_checkpoint_saves_leave_one_whole(self, store: ThreadStore) -> None:
        candidates = [Checkpoint(i, bytes([i]) * (50_000 + i)) for i in range(8)]
        async with asyncio.timeout(HANG_GUARD):
            await asyncio.gather(*(store.save_checkpoint("t", c) for c in candidates))
        assert await store.load_checkpoint("t") in candidates

    async def test_checkpoint_only_thread_is_not_listed(self, store: ThreadStore) -> None:
        await store.save_checkpoint("t", Checkpoint(0, b"x"))
        assert await store.list_threads() == []
        assert await store.thread_info("t") is None

    # -- listing ----------------------------------------------------------------------------

    async def test_list_threads_and_thread_info(self, store: ThreadStore) -> None:
        assert await store.list_threads() == []
        await store.append("alpha", [new(0), new(1)])
        await store.append("beta.2", [new(0)])
        await store.append("alpha", [new(2)])
        infos = {i.thread_id: i for i in await store.list_threads()}
        assert set(infos) == {"alpha", "beta.2"}
        for thread_id, events in (("alpha", 3), ("beta.2", 1)):
            records = await drain(store.read(thread_id))
            lines = await drain(store.read_lines(thread_id))
            expected = (events, sum(len(line) for line in lines), records[-1].ts)
            info = infos[thread_id]
            assert (info.events, info.bytes, info.last_activity_ms) == expected
            assert await store.thread_info(thread_id) == info
        assert await store.thread_info("gamma") is None

    async def test_thread_info_grows_with_appends(self, store: ThreadStore) -> None:
        await store.append("t", [new(0)])
        before = await store.thread_info("t")
        appended = await store.append("t", [new(1), new(2)])
        after = await store.thread_info("t")
        assert before is not None and after is not None
        assert after.events == 3 and after.bytes > before.bytes
        assert after.last_activity_ms == appended[-1].ts

    # -- validation and unknown threads -------------------------------------------------------

    @pytest.mark.parametrize("bad", INVALID_THREAD_IDS, ids=repr)
    async def test_invalid_thread_ids_are_rejected(self, store: ThreadStore, bad: str) -> None:
        with pytest.raises(InvalidThreadId):
            await store.append(bad, [new(0)])
        with pytest.raises(InvalidThreadId):
            await drain(store.read(bad))
        with pytest.raises(InvalidThreadId):
            await drain(store.read_lines(bad, 3))
        with pytest.raises(InvalidThreadId):
            await drain(store.read_event_json(bad))
        with pytest.raises(InvalidThreadId):
            await store.last_seq(bad)
        with pytest.raises(InvalidThreadId):
            await store.wait_for(bad, 0, timeout=0.01)
        with pytest.raises(InvalidThreadId):
            await store.thread_info(bad)
        with pytest.raises(InvalidThreadId):
            await store.load_checkpoint(bad)
        with pytest.raises(InvalidThreadId):
            await store.save_checkpoint(bad, Checkpoint(0, b""))
        assert await store.list_threads() == []

    async def test_unknown_thread_is_empty(self, store: ThreadStore) -> None:
        assert await drain(store.read("nobody")) == []
        assert await drain(store.read_lines("nobody", 5)) == []
        assert await drain(store.read_event_json("nobody")) == []
        assert await store.last_seq("nobody") == 0
        assert await store.thread_info("nobody") is None
        assert await store.load_checkpoint("nobody") is None
        assert await store.wait_for("nobody", 0, timeout=0.01) == 0
        assert await store.list_threads() == []

    # -- durability across a restart ----------------------------------------------------------

    async def test_a_new_store_sees_everything_and_continues(self, store: ThreadStore, make_store: MakeStore) -> None:
        appended = await store.append("t", [new(v) for v in range(300)])
        await store.append("u", [new("u")])
        await store.save_checkpoint("t", Checkpoint(300, b"state"))
        await store.close()
        reopened = await make_store()
        assert await drain(reopened.read("t")) == appended
        assert [r.seq for r in await drain(reopened.read("t", after=257))] == list(range(258, 301))
        assert await reopened.last_seq("t") == 300
        assert await reopened.load_checkpoint("t") == Checkpoint(300, b"state")
        assert {i.thread_id: i.events for i in await reopened.list_threads()} == {"t": 300, "u": 1}
        assert [r.seq for r in await reopened.append("t", [new(300)])] == [301]

    # -- the open-run index ---------------------------------------------------------------------

    async def test_open_run_threads_follow_the_appends_that_open_and_end_runs(self, store: ThreadStore) -> None:
        assert await store.open_run_threads() == []
        await store.append("a", [started("r1", "a"), new(0, "r1")])
        await store.append("b", [new("no run at all", None)])
        await store.append("c", [started("r1", "c")])
        assert await store.open_run_threads() == ["a", "c"]
        await store.append("a", [new(1, "r1")])  # no run boundary: the run is still open
        assert await store.open_run_threads() == ["a", "c"]
        await store.append("a", [new(2, "r1"), finished("r1", "a")])
        await store.append("c", [errored("r1")])
        assert await store.open_run_threads() == []
        await store.append("c", [started("r2", "c"), new(0, "r2"), finished("r2", "c")])  # one batch, ended
        await store.append("a", [started("r2", "a"), finished("r2", "a"), started("r3", "a")])  # ends open
        assert await store.open_run_threads() == ["a"]

    async def test_open_runs_are_listed_by_a_new_store_without_opening_their_threads(
        self, store: ThreadStore, make_store: MakeStore
    ) -> None:
        for i in range(30):
            thread_id = f"t{i:02d}"
            await store.append(thread_id, [started("r", thread_id), new(i, "r")])
            if i % 7:
                await store.append(thread_id, [finished("r", thread_id)])
        await store.close()
        reopened = await make_store()
        assert await reopened.open_run_threads() == ["t00", "t07", "t14", "t21", "t28"]
        await reopened.append("t07", [finished("r", "t07")])
        assert await reopened.open_run_threads() == ["t00", "t14", "t21", "t28"]
        await reopened.close()
        assert await (await make_store()).open_run_threads() == ["t00", "t14", "t21", "t28"]

    async def test_a_repair_reads_every_log_and_keeps_a_consistent_index(self, store: ThreadStore) -> None:
        await store.append("open", [started("r", "open"), new(0, "r")])
        await store.append("done", [started("r", "done"), finished("r", "done")])
        await store.append("plain", [new(0, None)])
        repair = await store.repair_open_runs()
        assert (repair.threads, repair.open, repair.added, repair.removed) == (3, ("open",), (), ())
        assert await store.open_run_threads() == ["open"]
        # Appends go on while a repair reads: an open run started meanwhile is not lost.
        repairing = asyncio.ensure_future(store.repair_open_runs())
        await store.append("late", [started("r", "late")])
        await repairing
        assert await store.open_run_threads() == ["late", "open"]

    # -- appends with an expected first seq (repeatable after an unknown outcome) ----------------

    async def test_an_append_with_the_next_seq_expected_is_an_append(self, store: ThreadStore) -> None:
        first = await store.append("t", [new(0), new(1)], expect_seq=1)
        second = await store.append("t", [new(2)], expect_seq=3)
        assert [r.seq for r in first + second] == [1, 2, 3]
        assert [r.event["value"] for r in await drain(store.read("t"))] == [0, 1, 2]

    async def test_a_repeated_batch_is_stored_once_and_answered_as_first_stored(
        self, store: ThreadStore, make_store: MakeStore
    ) -> None:
        await store.append("t", [new("before")])
        batch = [started("r"), new(0, "r"), NewEvent(event("note"), "r", "gateway", {"input": {"x": 1}})]
        stored = await store.append("t", batch, expect_seq=2)
        assert [r.seq for r in stored] == [2, 3, 4]
        again = await store.append("t", batch, expect_seq=2)  # its first reply was lost, say
        assert again == stored  # same seqs, same ts, same everything
        later = await store.append("t", [new(1, "r")], expect_seq=5)
        assert await store.append("t", batch, expect_seq=2) == stored  # still, after more appends
        assert await (await make_store()).append("t", batch, expect_seq=2) == stored  # and after a restart
        assert await store.append("t", [new(1, "r")], expect_seq=5) == later
        records = await drain(store.read("t"))
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[1:4] == stored and records[4:] == later
        assert await store.open_run_threads() == ["t"]

    async def test_an_append_that_does_not_fit_the_expected_seq_stores_nothing(self, store: ThreadStore) -> None:
        await store.append("t", [new(0), new(1)], expect_seq=1)
        with pytest.raises(SeqConflict) as gap:
            await store.append("t", [new(9)], expect_seq=4)  # seq 3 would be missing
        assert gap.value.last_seq == 2
        with pytest.raises(SeqConflict) as stale:
            await store.append("t", [new("other")], expect_seq=2)  # seq 2 holds another event
        assert stale.value.last_seq == 2
        with pytest.raises(SeqConflict):
            await store.append("t", [new(1), new("more")], expect_seq=2)  # only part of it is there
        with pytest.raises(SeqConflict):
            await store.append("t", [new(0), new(1)], expect_seq=2)  # the batch, but at other seqs
        with pytest.raises(SeqConflict):
            await store.append("u", [new(0)], expect_seq=2)  # a new thread starts at 1
        assert [r.event["value"] for r in await drain(store.read("t"))] == [0, 1]
        assert await store.last_seq("u") == 0
        assert [r.seq for r in await store.append("t", [new(2)], expect_seq=3)] == [3]

    @pytest.mark.parametrize("bad", [0, -1, "1", 1.0, True])
    async def test_a_bad_expected_seq_is_refused(self, store: ThreadStore, bad: Any) -> None:
        with pytest.raises(ValueError, match="expect_seq"):
            await store.append("t", [new(0)], expect_seq=bad)
        assert await store.last_seq("t") == 0
