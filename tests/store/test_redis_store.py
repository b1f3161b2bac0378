"""The Redis store against a real Redis: the shared contract plus cross-replica behaviour.

Uses ``AGUI_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Without a
reachable Redis the tests are skipped - unless ``CI`` is set, where that is a
failure: CI must provide Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from agui_gateway.store.base import NewEvent
from agui_gateway.store.redis import RedisStore
from store.contract import (
    HANG_GUARD,
    MakeStore,
    StoreContract,
    drain,
    let_waiters_start,
    new,
    opened_stores,
)

REDIS_URL = os.environ.get("AGUI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.redis


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
        await client.aclose()
        message = f"no Redis answers at {REDIS_URL} ({exc}); set AGUI_TEST_REDIS_URL"
        if _in_ci():
            pytest.fail(f"CI is set but {message}", pytrace=False)
        pytest.skip(message)
    prefix = f"agui-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def make_replica(redis_prefix: str) -> AsyncIterator[MakeStore]:
    """Opened RedisStores sharing one prefix - separate connections, like gateway replicas."""
    async with opened_stores(lambda: RedisStore(REDIS_URL, prefix=redis_prefix)) as make:
        yield make


class TestRedisStore(StoreContract):
    @pytest.fixture
    def make_store(self, make_replica: MakeStore) -> MakeStore:
        return make_replica


async def test_two_replicas_appending_concurrently_get_dense_unique_seqs(
    make_replica: MakeStore,
) -> None:
    replicas = [await make_replica(), await make_replica()]

    async def appender(replica: int, task: int) -> list[int]:
        seqs = []
        for batch in range(8):
            events = [new([replica, task, batch, k]) for k in range(1 + batch % 3)]
            records = await replicas[replica].append("t", events)
            seqs.extend(r.seq for r in records)
        return seqs

    async with asyncio.timeout(HANG_GUARD * 3):
        results = await asyncio.gather(*(appender(r, t) for r in (0, 1) for t in range(10)))
    returned = sorted(seq for seqs in results for seq in seqs)
    total = 2 * 10 * sum(1 + b % 3 for b in range(8))
    assert returned == list(range(1, total + 1))
    for replica in replicas:
        stored = await drain(replica.read("t"))
        assert [r.seq for r in stored] == returned
    values = [r.event["value"] for r in stored]
    assert len({tuple(v) for v in values}) == total


async def test_wait_for_wakes_on_an_append_by_another_replica(make_replica: MakeStore) -> None:
    waiting, writing = await make_replica(), await make_replica()
    await writing.append("t", [new(0)])
    waiter = asyncio.create_task(waiting.wait_for("t", 1, timeout=HANG_GUARD * 2))
    await let_waiters_start(waiting)
    assert not waiter.done()
    await writing.append("t", [NewEvent({"type": "CUSTOM", "name": "n", "value": 1}, None)])
    async with asyncio.timeout(HANG_GUARD):
        assert await waiter == 2
    assert [r.seq for r in await drain(waiting.read("t", after=1))] == [2]


async def test_read_pages_through_long_streams(make_replica: MakeStore) -> None:
    store = await make_replica()
    total = 1300  # several XRANGE pages
    for start in range(0, total, 250):
        await store.append("t", [new(v) for v in range(start, min(start + 250, total))])
    assert [r.event["value"] for r in await drain(store.read("t"))] == list(range(total))
    assert [r.seq for r in await drain(store.read("t", after=511))] == list(range(512, total + 1))
    got = await drain(store.read_event_json("t", after=511))
    assert [(seq, orjson.loads(data)["value"]) for seq, data in got] == [(s, s - 1) for s in range(512, total + 1)]


async def test_event_json_decodes_entries_of_another_shape(make_replica: MakeStore, redis_prefix: str) -> None:
    store = await make_replica()
    await store.append("t", [new(0), NewEvent({"type": "CUSTOM", "value": 1}, 'x","event":{')])
    client = aioredis.from_url(REDIS_URL)
    try:
        key = f"{redis_prefix}:{{t}}:log"
        spaced = b'{"seq": 3, "runId": null, "ts": 1, "source": "agent", "event": {"type": "CUSTOM", "value": 2}}'
        await client.xadd(key, {"r": spaced}, id="0-3")
        await client.xadd(key, {"r": b"not json"}, id="0-4")
        await client.xadd(key, {"other": b"field"}, id="0-5")
    finally:
        await client.aclose()
    await store.append("t", [new(3)])
    records = await drain(store.read("t"))
    assert [r.seq for r in records] == [1, 2, 3, 6]
    before = store.malformed_entries
    got = await drain(store.read_event_json("t"))
    assert store.malformed_entries == before + 2
    assert [(seq, orjson.loads(data)) for seq, data in got] == [(r.seq, r.event) for r in records]


async def test_cancelled_waiters_do_not_disturb_the_others(make_replica: MakeStore) -> None:
    waiting, writing = await make_replica(), await make_replica()
    waiters = [asyncio.create_task(waiting.wait_for("t", 0, timeout=HANG_GUARD * 2)) for _ in range(20)]
    await let_waiters_start(waiting)
    for waiter in waiters[::2]:
        waiter.cancel()
    await writing.append("t", [new(0)])  # another replica: only the shared XREAD can tell
    async with asyncio.timeout(HANG_GUARD):
        assert await asyncio.gather(*waiters[1::2]) == [1] * 10
        # A later waiter starts a fresh watch and still wakes.
        late = asyncio.create_task(waiting.wait_for("t", 1, timeout=HANG_GUARD * 2))
        await let_waiters_start(waiting)
        assert not late.done()
        await writing.append("t", [new(1)])
        assert await late == 2
