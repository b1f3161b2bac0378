"""Redis going away under a run: a private ``redis-server`` (AOF, ``appendfsync always``)
killed with SIGKILL and started again on the same data, and replies lost with their
connection. What the store gives the gateway to ride that out: appends that are safe to
repeat (``expect_seq``, and redis-py's own repeats of a call), and a lease its live
holder takes back after an outage longer than the lease's ttl."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from support.cutting_proxy import ReplyCuttingProxy
from support.redis_fixtures import private_redis
from support.redis_servers import RedisServer
from support.waiting import wait_until_async

from agui_gateway.store.base import NewEvent, StoreError
from agui_gateway.store.lease import Lease
from agui_gateway.store.redis import RedisStore
from store.contract import HANG_GUARD, drain, finished, new, started

pytestmark = pytest.mark.redis

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


class Restartable:
    """A private Redis that a test kills (SIGKILL) and starts again on the same data and port."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.url = server.url

    def kill(self) -> None:
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(timeout=10)

    def restart(self) -> None:
        self.server = RedisServer(self.server.directory, self.server.port, *DURABLE)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[Restartable]:
    with private_redis(tmp_path / "redis", *DURABLE) as server:
        restartable = Restartable(server)
        try:
            yield restartable
        finally:
            restartable.stop()


@pytest.fixture
async def stores() -> AsyncIterator[list[RedisStore]]:
    opened: list[RedisStore] = []
    yield opened
    for store in opened:
        await store.close()


async def open_store(stores: list[RedisStore], url: str, **options: object) -> RedisStore:
    store = RedisStore(url, prefix="outage", **options)  # type: ignore[arg-type]
    await store.open()
    stores.append(store)
    return store


def values(records: list) -> list:
    return [(r.seq, r.event.get("type"), r.event.get("value")) for r in records]


async def test_a_run_held_back_through_an_outage_longer_than_its_lease_is_stored_once_and_dense(
    durable_redis: Restartable, stores: list[RedisStore]
) -> None:
    a = await open_store(stores, durable_redis.url, lease_ttl_s=1.0, replica_id="a")
    b = await open_store(stores, durable_redis.url, lease_ttl_s=1.0, replica_id="b")
    assert a.leases is not None and b.leases is not None
    lease = await a.leases.acquire("t", "r1")
    assert lease is not None
    first = await a.append("t", [started("r1"), new(0, "r1")], fence=lease.token, expect_seq=1)
    durable_redis.kill()
    held = [[new(1, "r1"), new(2, "r1")], [new(3, "r1")], [new(4, "r1"), finished("r1")]]
    with pytest.raises(StoreError):  # the run goes on reading its agent and holds these back
        await a.append("t", held[0], fence=lease.token, expect_seq=3)
    with pytest.raises(StoreError):
        await a.leases.renew(lease)
    with pytest.raises(StoreError):  # replica B's sweep meets the outage too
        await b.leases.expired()
    durable_redis.restart()

    async def lapsed() -> bool:
        return await b.leases.holder("t") is None

    await wait_until_async(lapsed, HANG_GUARD, what="the lease lapsing in Redis")
    # Within a ttl of the outage B leaves the lapsed lease to its holder: no sweep, no recovery,
    # no run start taking the thread.
    assert await b.leases.expired() == []
    assert await b.leases.acquire("t", "recovery", recovery=True) is None
    assert await b.leases.acquire("t", "r2") is None
    assert not (await a.leases.renew(lease)).held
    assert await a.leases.reclaim(lease)  # the same token: nobody was granted the thread since
    seq, appended = 3, []
    for batch in held:
        appended += await a.append("t", batch, fence=lease.token, expect_seq=seq)
        seq += len(batch)
    assert await a.append("t", held[0], fence=lease.token, expect_seq=3) == appended[:2]  # a repeat: as stored
    records = await drain(b.read("t"))
    assert records == first + appended
    assert values(records) == [(1, "RUN_STARTED", None), (2, "CUSTOM", 0)] + [
        (s, "CUSTOM", s - 2) for s in range(3, 7)
    ] + [(7, "RUN_FINISHED", None)]
    assert await b.open_run_threads() == []


async def test_a_lease_taken_by_another_replica_is_not_reclaimed(
    durable_redis: Restartable, stores: list[RedisStore]
) -> None:
    a = await open_store(stores, durable_redis.url, lease_ttl_s=0.3, replica_id="a")
    b = await open_store(stores, durable_redis.url, lease_ttl_s=0.3, replica_id="b")
    assert a.leases is not None and b.leases is not None
    lease = await a.leases.acquire("t", "r1")
    assert lease is not None
    await a.append("t", [started("r1")], fence=lease.token, expect_seq=1)

    async def taken() -> Lease | None:  # B never saw an outage: a lapsed lease is a dead replica's
        return await b.leases.acquire("t", "recovery", recovery=True)

    recovery = await wait_until_async(taken, HANG_GUARD, what="B taking the lapsed lease")
    assert not await a.leases.reclaim(lease)
    with pytest.raises(StoreError):  # LeaseLost: A's held-back events are refused, not stored
        await a.append("t", [new(0, "r1")], fence=lease.token, expect_seq=2)
    await b.append("t", [new("closed by B", None)], fence=recovery.token, expect_seq=2)
    assert await a.last_seq("t") == 2


async def test_a_reply_lost_with_its_connection_stores_the_batch_once(
    durable_redis: Restartable, stores: list[RedisStore]
) -> None:
    proxy = ReplyCuttingProxy(durable_redis.server.port, marker=b"EVALSHA")
    await proxy.start()
    try:
        store = await open_store(stores, f"redis://127.0.0.1:{proxy.port}/0")
        await store.append("t", [new(0)])
        # The reply of the append is lost: the caller gets an error, the outcome unknown, and
        # calls again with the seq it expected: the batch is found, stored once.
        proxy.cut_replies = 1
        batch = [new(1), new(2)]
        with pytest.raises(StoreError):
            await store.append("t", batch, expect_seq=2)
        assert proxy.cut == 1
        again = await store.append("t", batch, expect_seq=2)
        assert [r.seq for r in again] == [2, 3]
        # A client that sends a call again by itself when its connection drops (redis-py's
        # Cluster client does; here a retry policy on the single server): the script knows
        # the attempt, and the call returns the batch stored once.
        store._redis.set_retry(Retry(NoBackoff(), 3))
        proxy.cut_replies = 1
        once = await store.append("t", [new(3), new(4)])
        assert proxy.cut == 2 and [r.seq for r in once] == [4, 5]
        assert values(await drain(store.read("t"))) == [(s, "CUSTOM", s - 1) for s in range(1, 6)]
    finally:
        await proxy.close()


async def test_appends_repeated_across_kills_of_redis_are_stored_exactly_once(
    durable_redis: Restartable, stores: list[RedisStore]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store = await open_store(stores, durable_redis.url)
    batches = [
        [NewEvent({"type": "CUSTOM", "name": "n", "value": [b, k]}, "r") for k in range(rng.randint(1, 4))]
        for b in range(60)
    ]
    kills = sorted(rng.sample(range(5, 55), 3))
    seq, acked = 1, []
    for index, batch in enumerate(batches):
        if kills and index == kills[0]:
            kills.pop(0)
            # Killed while this append is on its way: it may be stored or not; the writer cannot tell.
            attempt = asyncio.ensure_future(store.append("t", batch, expect_seq=seq))
            await asyncio.sleep(0)  # wait-ok: one loop turn, so the call is sent before the kill
            durable_redis.kill()
            await asyncio.gather(attempt, return_exceptions=True)
            await asyncio.to_thread(durable_redis.restart)
        while True:  # the gateway's outage buffer: the same batch, the same expected seq
            try:
                records = await store.append("t", batch, expect_seq=seq)
                break
            except StoreError:
                await asyncio.sleep(0.05)  # wait-ok: Redis is starting; retried under the test's timeout
        assert [r.seq for r in records] == list(range(seq, seq + len(batch))), f"seed {seed}"
        acked += records
        seq += len(batch)
    stored = await drain(store.read("t"))
    assert [r.seq for r in stored] == list(range(1, seq)), f"seed {seed}"
    assert [r.event["value"] for r in stored] == [e.event["value"] for b in batches for e in b], f"seed {seed}"
    assert stored == acked


async def test_the_open_run_index_survives_a_kill_with_the_log(
    durable_redis: Restartable, stores: list[RedisStore]
) -> None:
    store = await open_store(stores, durable_redis.url)
    await store.append("open", [started("r", "open"), new(0, "r")])
    await store.append("done", [started("r", "done"), finished("r", "done")])
    durable_redis.kill()
    durable_redis.restart()
    reopened = await open_store(stores, durable_redis.url)
    assert await reopened.open_run_threads() == ["open"]
    prefix_free = RedisStore(durable_redis.url, prefix=f"other-{uuid.uuid4().hex}")
    await prefix_free.open()
    stores.append(prefix_free)
    assert await prefix_free.open_run_threads() == []  # under the store's own prefix
