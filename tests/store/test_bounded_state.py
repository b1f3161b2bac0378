"""What the stores keep per thread stays bounded, however many threads are touched.

Objects are counted, not memory measured (``bench/startup_bench.py`` measures memory):
every per-thread structure of a store, after many distinct threads were written, read,
listed, waited on and asked about once each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.waiting import wait_until_async

from agui_gateway.store.base import Checkpoint
from agui_gateway.store.file import FileStore
from agui_gateway.store.redis import RedisStore
from store.contract import HANG_GUARD, drain, finished, new, opened_stores, started

THREADS = 600


async def touch_every_way(store: FileStore | RedisStore, thread_id: str) -> None:
    assert [r.seq for r in await drain(store.read(thread_id))] == [1, 2, 3]
    assert len(await drain(store.read_event_json(thread_id, 1))) == 2
    assert await store.last_seq(thread_id) == 3
    info = await store.thread_info(thread_id)
    assert info is not None and info.events == 3
    assert await store.wait_for(thread_id, 3, timeout=0.001) == 3
    assert await store.load_checkpoint(thread_id) is None


async def test_the_file_store_keeps_the_state_of_a_bounded_number_of_threads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, fsync="never", cached_threads=32, cached_infos=50, max_open_files=16)
    await store.open()
    try:
        for i in range(THREADS):
            thread_id = f"t{i:04d}"
            await store.append(thread_id, [started("r", thread_id), new(i, "r"), finished("r", thread_id)])
            await touch_every_way(store, thread_id)
            assert len(store._logs) <= 32 and len(store._peeked) <= 50
        assert len(await store.list_threads()) == THREADS
        for i in range(THREADS):  # read again, in the order that evicts most: the oldest first
            await touch_every_way(store, f"t{i:04d}")
        assert len(store._logs) <= 32 and len(store._peeked) <= 50 and len(store._fds._open) <= 16
        assert len(store._open_runs.threads) == 0
        # A dropped thread is scanned again on its next use and carries on where it was.
        assert [r.seq for r in await store.append("t0000", [new("more", None)])] == [4]
        assert [r.event.get("value") for r in await drain(store.read("t0000"))] == [None, 0, None, "more"]
    finally:
        await store.close()


async def test_the_file_store_keeps_a_thread_that_is_waited_on_or_written(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", fsync="always", cached_threads=4)
    await store.open()
    try:
        await store.append("watched", [new(0)])
        waiter = asyncio.ensure_future(store.wait_for("watched", 1, timeout=HANG_GUARD))
        await wait_until_async(lambda: store._logs["watched"].waiters == 1, HANG_GUARD, what="the waiter")
        for i in range(40):  # many other threads, each with an append and a checkpoint
            await store.append(f"o{i}", [new(i)])
            await store.save_checkpoint(f"o{i}", Checkpoint(1, b"x"))
        assert len(store._logs) <= 5  # the cap, plus the one pinned by its waiter
        await store.append("watched", [new(1)])  # the very object the waiter holds is woken
        async with asyncio.timeout(HANG_GUARD):
            assert await waiter == 2
    finally:
        await store.close()


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    async with opened_stores(lambda: RedisStore(redis_url, prefix=redis_prefix)) as make:
        store = await make()
        assert isinstance(store, RedisStore)
        yield store


@pytest.mark.redis
@pytest.mark.parametrize("any_redis_url", ["single"], indirect=True)
async def test_the_redis_store_keeps_nothing_per_thread_once_it_is_idle(redis_store: RedisStore) -> None:
    store = redis_store
    for i in range(THREADS // 3):
        thread_id = f"t{i:04d}"
        await store.append(thread_id, [started("r", thread_id), new(i, "r"), finished("r", thread_id)])
        await touch_every_way(store, thread_id)
        # A wait that times out leaves a watch behind for its XREAD's current block at most.
        await store.wait_for(thread_id, 3, timeout=0.01)
    assert len(await store.list_threads()) == THREADS // 3
    assert len(store._seq_reads) == 0
    await wait_until_async(lambda: not store._watches, HANG_GUARD, what="every idle watch gone")
