"""The thread tail (server/tail.py): one store waiter per thread, rounds that wake every
local subscriber once, deadlines kept with and without a timer of the waiter's own."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest
from support.waiting import wait_until_async

from agui_gateway.server.fanout import tail as tail_module
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.store.base import NewEvent
from agui_gateway.store.file import FileStore

HANG = 10.0  # only stops a hang; nothing here measures how long anything took


def _event(i: int) -> NewEvent:
    return NewEvent({"type": "CUSTOM", "name": "n", "value": i}, "r")


async def _nothing(latest: int) -> None:
    del latest


@pytest.fixture
async def store(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path, fsync="never")
    await store.open()
    return store


async def test_appends_during_the_pause_after_a_round_reach_each_subscriber_in_one_wake_up(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long pause, so that the ten appends below certainly fall inside it.
    monkeypatch.setattr(tail_module, "MIN_WINDOW_S", 1.0)
    tail = ThreadTail(store, "t", _nothing)
    seen: list[list[int]] = [[] for _ in range(50)]

    async def subscriber(mine: list[int]) -> None:
        cursor = 0
        while cursor < 11:
            cursor = await tail.wait(cursor, HANG)
            mine.append(cursor)

    subscribers = [asyncio.create_task(subscriber(mine)) for mine in seen]
    await wait_until_async(lambda: tail.waiters == 50, HANG, what="every subscriber waits")
    await store.append("t", [_event(0)])
    await wait_until_async(lambda: all(seen), HANG, what="the first round")  # the tail now pauses
    rounds = tail.rounds
    for i in range(1, 11):  # ten appends, one at a time
        await store.append("t", [_event(i)])
    await asyncio.wait_for(asyncio.gather(*subscribers), HANG)
    assert seen == [[1, 11]] * 50  # each subscriber woke once for all ten
    assert tail.rounds == rounds + 1
    tail.stop()


async def test_a_waiter_returns_at_its_deadline_with_or_without_a_timer_of_its_own(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail_module, "TICK_S", 0.2)
    tail = ThreadTail(store, "t", _nothing)
    loop = asyncio.get_running_loop()

    async def waited(timeout: float) -> float:
        started = loop.time()
        assert await tail.wait(0, timeout) == 0  # nothing was stored
        return loop.time() - started

    # 0.05 s: before the tail's next round (a timer of its own); 0.5 s: after two of the
    # quiet thread's rounds (no timer: the rounds tell it its deadline passed).
    short, long = await asyncio.wait_for(asyncio.gather(waited(0.05), waited(0.5)), HANG)
    assert short >= 0.05 and long >= 0.5
    assert tail.rounds >= 2
    tail.stop()


async def test_a_waiter_that_goes_away_leaves_the_others_waiting(store: FileStore) -> None:
    tail = ThreadTail(store, "t", _nothing)
    leaving = asyncio.create_task(tail.wait(0, HANG))
    staying = asyncio.create_task(tail.wait(0, HANG))
    await wait_until_async(lambda: tail.waiters == 2, HANG, what="both wait")
    leaving.cancel()
    await wait_until_async(lambda: tail.waiters == 1, HANG, what="one went away")
    assert not staying.done()
    await store.append("t", [_event(1)])
    assert await asyncio.wait_for(staying, HANG) == 1
    tail.stop()


async def test_the_tail_takes_new_records_in_before_it_wakes_anyone(store: FileStore) -> None:
    taken: list[int] = []

    async def follow(latest: int) -> None:
        taken.append(latest)

    tail = ThreadTail(store, "t", follow)
    waiter = asyncio.create_task(tail.wait(0, HANG))
    await wait_until_async(lambda: tail.waiters == 1, HANG, what="the waiter waits")
    await store.append("t", [_event(1), _event(2)])
    assert await asyncio.wait_for(waiter, HANG) == 2
    assert taken and taken[-1] == 2
    tail.stop()


class _Owner:
    """What a thread runtime is to its tail: it holds the tail and hands it its own methods."""

    def __init__(self, store: FileStore) -> None:
        self.followed: list[int] = []
        self.tail = ThreadTail(store, "t", self.follow, on_deleted=self.gone)

    async def follow(self, latest: int) -> None:
        self.followed.append(latest)

    def gone(self) -> None:
        pass


async def test_the_tail_holds_its_owner_weakly_so_an_owner_dropped_is_freed_without_the_cyclic_collector(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail_module, "TICK_S", 0.05)  # the task ends soon after its last waiter
    gc.collect()
    gc.disable()  # the gateway runs it rarely (cli/process.py): a cycle would stay
    try:
        owner = _Owner(store)
        tail = owner.tail
        waiting = asyncio.ensure_future(tail.wait(0, HANG))
        await wait_until_async(lambda: tail.waiters == 1, HANG, what="the waiter")
        await store.append("t", [_event(0)])
        async with asyncio.timeout(HANG):
            assert await waiting == 1
        assert owner.followed == [1]  # the task reached its owner while it ran
        freed = weakref.ref(owner)
        del owner
        await wait_until_async(lambda: freed() is None, HANG, what="the owner freed once its tail task ended")
    finally:
        gc.enable()
