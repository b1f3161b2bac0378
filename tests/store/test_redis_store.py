"""The Redis store against a real Redis: the shared contract plus cross-replica behaviour.

Every test runs twice: on a single Redis (``AGUI_TEST_REDIS_URL`` or a private
server) and on a local 3-node Redis Cluster started by the session fixtures
(``support.redis_fixtures``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from support.waiting import wait_until_async

from agui_gateway.store.base import (
    LEGACY_EPOCH,
    Checkpoint,
    LeaseLost,
    NewEvent,
    SeqConflict,
    ThreadDeleted,
    ThreadHead,
)
from agui_gateway.store.lease import Holder, Renewal
from agui_gateway.store.redis import RedisStore
from agui_gateway.store.redis.connect import connect
from store.contract import (
    HANG_GUARD,
    MakeStore,
    StoreContract,
    drain,
    finished,
    let_waiters_start,
    new,
    opened_stores,
    started,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def make_replica(any_redis_url: str, redis_prefix: str) -> AsyncIterator[MakeStore]:
    """Opened RedisStores sharing one prefix - separate connections, like gateway replicas.

    Every test here runs on a single Redis and on a local 3-node Redis Cluster."""
    async with opened_stores(lambda: RedisStore(any_redis_url, prefix=redis_prefix)) as make:
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


async def test_event_json_decodes_entries_of_another_shape(
    make_replica: MakeStore, redis_prefix: str, any_redis_url: str
) -> None:
    store = await make_replica()
    await store.append("t", [new(0), NewEvent({"type": "CUSTOM", "value": 1}, 'x","event":{')])
    client = await connect(any_redis_url)
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


# -- run leases and fencing -------------------------------------------------------------


async def test_one_lease_per_thread_and_fenced_appends(make_replica: MakeStore) -> None:
    first, second = await make_replica(), await make_replica()
    assert first.leases is not None and second.leases is not None
    lease = await first.leases.acquire("t", "run-a")
    assert lease is not None
    assert await second.leases.acquire("t", "run-b") is None  # another replica: refused
    assert await second.leases.holder("t") == Holder("run-a", closing=False)
    assert await second.leases.acquire("other", "run-c") is not None  # threads are independent
    await first.append("t", [new(0)], fence=lease.token)
    with pytest.raises(LeaseLost):  # no token while the thread is leased
        await second.append("t", [new(1)])
    with pytest.raises(LeaseLost):  # a token that is not the lease's
        await second.append("t", [new(1)], fence=lease.token + 1)
    await first.leases.release(lease)
    later = await second.leases.acquire("t", "run-b")
    assert later is not None and later.token > lease.token
    with pytest.raises(LeaseLost):  # the old holder's token no longer writes
        await first.append("t", [new(2)], fence=lease.token)
    await second.append("t", [new(3)], fence=later.token)
    assert [r.event["value"] for r in await drain(first.read("t"))] == [0, 3]
    await second.leases.release(later)
    with pytest.raises(LeaseLost):  # a token without any lease
        await second.append("t", [new(4)], fence=later.token)


async def test_the_append_storing_the_holders_terminal_event_marks_its_lease_closing(
    make_replica: MakeStore,
) -> None:
    holder, other = await make_replica(), await make_replica()
    assert holder.leases is not None and other.leases is not None
    lease = await holder.leases.acquire("t", "run-a")
    assert lease is not None
    started = NewEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "run-a"}, "run-a", "agent")
    await holder.append("t", [started, new(0)], fence=lease.token)
    assert await other.leases.holder("t") == Holder("run-a", closing=False)  # a live run
    finished = NewEvent({"type": "RUN_FINISHED", "threadId": "t", "runId": "run-a"}, "run-a", "agent")
    await holder.append("t", [new(1), finished], fence=lease.token)
    # In the same script as the end: no reader sees it before the lease says it is closing.
    assert await other.leases.holder("t") == Holder("run-a", closing=True)
    assert (await holder.leases.renew(lease)).held  # still the holder's, until it gives it up
    await holder.leases.release(lease)
    assert await other.leases.holder("t") is None


async def test_a_lapsed_lease_is_gone_listed_for_the_sweep_and_its_holder_fenced(
    any_redis_url: str, redis_prefix: str
) -> None:
    async with opened_stores(lambda: RedisStore(any_redis_url, prefix=redis_prefix, lease_ttl_s=0.2)) as make:
        holder, other = await make(), await make()
        assert holder.leases is not None and other.leases is not None
        lease = await holder.leases.acquire("t", "run-a")
        assert lease is not None
        assert (await holder.leases.renew(lease)).held
        assert await other.leases.expired() == []
        async with asyncio.timeout(HANG_GUARD):  # the holder stops renewing, as if it died
            while await other.leases.holder("t") is not None:
                await asyncio.sleep(0.05)  # wait-ok: Redis expires the key; nothing to wait on
            while "t" not in await other.leases.expired():
                await asyncio.sleep(0.05)  # wait-ok: the index entry's score is a clock time
        renewal = await holder.leases.renew(lease)
        assert not renewal.held
        taken = await other.leases.acquire("t", "recovery", recovery=True)
        assert taken is not None and taken.recovery
        assert await holder.leases.holder("t") == Holder("recovery", closing=True)  # a run start waits for it
        with pytest.raises(LeaseLost):
            await holder.append("t", [new(0)], fence=lease.token)
        await other.append("t", [new(1)], fence=taken.token)
        await other.leases.forget("t")
        assert await other.leases.expired() == []


async def test_a_restarted_replica_takes_over_the_leases_recorded_under_its_id_and_no_other(
    any_redis_url: str, redis_prefix: str
) -> None:
    ids = iter(["replica-a", "replica-b", "replica-a"])  # A, B, then A again (restarted)
    async with opened_stores(lambda: RedisStore(any_redis_url, prefix=redis_prefix, replica_id=next(ids))) as make:
        a, b = await make(), await make()
        assert a.leases is not None and b.leases is not None
        lease = await a.leases.acquire("t", "run-a")
        b_lease = await b.leases.acquire("u", "run-b")
        assert lease is not None and b_lease is not None
        assert await b.leases.take_over("t", "recovery") is None  # another replica's: not taken over
        restarted = await make()
        assert restarted.leases is not None and restarted.leases.replica_id == "replica-a"
        assert await restarted.leases.held_by_this_replica() == ["t"]
        assert await restarted.leases.take_over("u", "recovery") is None  # B's lease stays B's
        taken = await restarted.leases.take_over("t", "recovery")
        assert taken is not None and taken.recovery and taken.token > lease.token
        assert await b.leases.holder("t") == Holder("recovery", closing=True)
        with pytest.raises(LeaseLost):  # the previous process's token no longer writes
            await a.append("t", [new(0)], fence=lease.token)
        assert not (await a.leases.renew(lease)).held
        await restarted.append("t", [new(1)], fence=taken.token)
        await restarted.leases.release(taken)
        assert await restarted.leases.held_by_this_replica() == []


async def test_a_stop_request_reaches_the_holder_through_its_renewal(make_replica: MakeStore) -> None:
    holder, other = await make_replica(), await make_replica()
    assert holder.leases is not None and other.leases is not None
    assert await other.leases.request_stop("t", "stop it") is None  # no run, no stop
    lease = await holder.leases.acquire("t", "run-a")
    assert lease is not None
    assert (await holder.leases.renew(lease)).stop_message is None
    # A stop for another run (one that ended since the caller looked) asks nothing of this one.
    assert await other.leases.request_stop("t", "not this one", "run-0") == "run-a"
    assert (await holder.leases.renew(lease)).stop_message is None
    assert await other.leases.request_stop("t", "stop it", "run-a") == "run-a"
    assert await other.leases.request_stop("t", "again") == "run-a"
    assert await holder.leases.renew(lease) == Renewal(held=True, stop_message="stop it")


async def test_concurrent_last_seq_reads_share_one_round_trip_yet_see_this_replicas_appends(
    make_replica: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await make_replica()
    assert isinstance(store, RedisStore)
    await store.append("t", [new(0)])
    reads: list[int] = []
    answer = asyncio.Event()  # holds each read's answer back until the test lets it go
    read_head = store._read_head

    async def held_read(thread_id: str) -> tuple[str | None, int]:
        value = await read_head(thread_id)
        reads.append(value[1])
        await answer.wait()
        return value

    monkeypatch.setattr(store, "_read_head", held_read)
    async with asyncio.timeout(HANG_GUARD):
        early = [asyncio.create_task(store.last_seq("t")) for _ in range(200)]
        await wait_until_async(lambda: reads, HANG_GUARD, what="the shared read's answer, held back")
        await store.append("t", [new(1)])  # completes while that read is in flight
        late = [asyncio.create_task(store.last_seq("t")) for _ in range(200)]
        await wait_until_async(lambda: len(reads) == 2, HANG_GUARD, what="a second read")
        answer.set()
        assert await asyncio.gather(*early) == [1] * 200
        # Not the read sent before the append: a caller sees what this replica stored.
        assert await asyncio.gather(*late) == [2] * 200
    assert reads == [1, 2]  # 400 callers, two round trips


async def test_a_repair_rebuilds_an_open_run_index_lost_outside_the_store(
    make_replica: MakeStore, redis_prefix: str, any_redis_url: str
) -> None:
    store = await make_replica()
    for i in range(40):
        thread_id = f"t{i}"
        await store.append(thread_id, [started("r", thread_id), new(i, "r")])
        if i % 3:
            await store.append(thread_id, [finished("r", thread_id)])
    opened = [f"t{i}" for i in range(40) if i % 3 == 0]
    assert await store.open_run_threads() == sorted(opened)
    client = await connect(any_redis_url)
    try:  # every key of the index (on a Cluster: the shards of many slots, and their registry)
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}:open-run*", count=1000)]
        assert keys
        for key in keys:
            await client.delete(key)
        await client.sadd(f"{redis_prefix}:open-runs", "t1")  # an extra entry too (a single server's set)
    finally:
        await client.aclose()
    assert set(await store.open_run_threads()) <= {"t1"}
    repair = await store.repair_open_runs()
    assert repair.threads == 40 and list(repair.open) == sorted(opened) and list(repair.added) == sorted(opened)
    assert await (await make_replica()).open_run_threads() == sorted(opened)


async def test_threads_of_an_older_version_get_a_warning_until_a_full_repair(
    make_replica: MakeStore, redis_prefix: str, any_redis_url: str
) -> None:
    store = await make_replica()
    assert isinstance(store, RedisStore) and store.index_warning is None  # a new store: indexed from the start
    await store.append("t", [started("r"), new(0, "r")])
    client = await connect(any_redis_url)
    try:  # as an older version left it: threads, a run open, no index at all
        for key in [key async for key in client.scan_iter(match=f"{redis_prefix}:open-run*", count=1000)]:
            await client.delete(key)
    finally:
        await client.aclose()
    older = await make_replica()
    assert isinstance(older, RedisStore) and older.index_warning is not None
    assert "recover --full" in older.index_warning and await older.open_run_threads() == []
    assert (await older.repair_open_runs()).added == ("t",)
    assert older.index_warning is None
    later = await make_replica()
    assert isinstance(later, RedisStore) and later.index_warning is None
    assert await later.open_run_threads() == ["t"]


# -- the data lifecycle across replicas -----------------------------------------------------------


async def _keys_of(url: str, prefix: str, thread_id: str) -> set[str]:
    client = await connect(url)
    try:
        keys = {key.decode() async for key in client.scan_iter(match=f"{prefix}:{{{thread_id}}}:*", count=1000)}
    finally:
        await client.aclose()
    return keys


async def test_a_delete_takes_the_lease_and_fence_with_it_and_the_holder_can_no_longer_write(
    make_replica: MakeStore, any_redis_url: str, redis_prefix: str
) -> None:
    holder, deleting = await make_replica(), await make_replica()
    assert holder.leases is not None and deleting.leases is not None
    lease = await holder.leases.acquire("t", "run-a")
    assert lease is not None
    await holder.append("t", [new(0)], fence=lease.token)
    await holder.save_checkpoint("t", Checkpoint(1, b"cp"))
    assert await deleting.delete_thread("t") == "leased"  # a run in progress is kept
    assert await deleting.last_seq("t") == 1
    assert await deleting.delete_thread("t", even_if_leased=True) == "deleted"
    # Only the deletion notice is left under the thread's tag, and it holds no data.
    assert await _keys_of(any_redis_url, redis_prefix, "t") == {f"{redis_prefix}:{{t}}:deleted"}
    with pytest.raises(LeaseLost):
        await holder.append("t", [new("into the deleted thread")], fence=lease.token)
    assert not (await holder.leases.renew(lease)).held
    # Created again, with a lease of its own: the old token does not hold it either.
    again = await deleting.leases.acquire("t", "run-b")
    assert again is not None and again.token != lease.token
    await deleting.append("t", [new("new")], fence=again.token)
    with pytest.raises(LeaseLost):
        await holder.append("t", [new("stale")], fence=lease.token)
    assert [r.event["value"] for r in await drain(holder.read("t"))] == ["new"]


async def test_tokens_keep_growing_across_a_delete(make_replica: MakeStore) -> None:
    store = await make_replica()
    assert store.leases is not None
    tokens = []
    for _ in range(3):
        lease = await store.leases.acquire("t", "run")
        assert lease is not None
        tokens.append(lease.token)
        await store.append("t", [new(0)], fence=lease.token)
        await store.delete_thread("t", even_if_leased=True)
    assert tokens == sorted(set(tokens))


async def test_a_waiter_on_another_replica_learns_of_the_delete(make_replica: MakeStore) -> None:
    waiting, deleting = await make_replica(), await make_replica()
    await deleting.append("t", [new(0)])
    head = await waiting.head("t")
    assert head is not None
    waiter = asyncio.create_task(waiting.wait_for("t", 1, timeout=HANG_GUARD * 2, epoch=head.epoch))
    await let_waiters_start(waiting)
    assert not waiter.done()
    await deleting.delete_thread("t")  # a blocked XREAD does not wake on a delete: the notice does
    async with asyncio.timeout(HANG_GUARD):
        with pytest.raises(ThreadDeleted):
            await waiter
    # Created again by the other replica: a waiter of the new epoch follows it from seq 0.
    await deleting.append("t", [new("new")])
    again = await waiting.head("t")
    assert again is not None and again.epoch != head.epoch
    follower = asyncio.create_task(waiting.wait_for("t", 1, timeout=HANG_GUARD * 2, epoch=again.epoch))
    await let_waiters_start(waiting)
    assert not follower.done()
    await deleting.append("t", [new("more")])
    async with asyncio.timeout(HANG_GUARD):
        assert await follower == 2


async def test_a_thread_stored_before_epochs_reads_as_legacy(
    make_replica: MakeStore, any_redis_url: str, redis_prefix: str
) -> None:
    store = await make_replica()
    await store.append("t", [new(0)])
    await store.save_checkpoint("t", Checkpoint(1, b"cp"))
    client = await connect(any_redis_url)
    try:  # as the previous version stored them: no epoch in the info, a bare checkpoint header
        await client.hdel(f"{redis_prefix}:{{t}}:info", "epoch")
        await client.set(f"{redis_prefix}:{{t}}:ckpt", b"1\ncp")
    finally:
        await client.aclose()
    for reader in (store, await make_replica()):
        assert await reader.head("t") == ThreadHead(LEGACY_EPOCH, 1)
        assert await reader.load_checkpoint("t") == Checkpoint(1, b"cp")
    await store.append("t", [new(1)])
    assert await store.head("t") == ThreadHead(LEGACY_EPOCH, 2)


async def _ttls(url: str, prefix: str, thread_id: str) -> dict[str, int]:
    client = await connect(url)
    try:
        return {
            kind: await client.pttl(f"{prefix}:{{{thread_id}}}:{kind}") for kind in ("log", "info", "ckpt", "fence")
        }
    finally:
        await client.aclose()


async def test_with_retention_the_keys_expire_unless_active_or_leased(any_redis_url: str, redis_prefix: str) -> None:
    retention_ms = 600_000
    async with opened_stores(
        lambda: RedisStore(any_redis_url, prefix=redis_prefix, lease_ttl_s=5, retention_s=retention_ms / 1000)
    ) as make:
        store = await make()
        assert store.leases is not None
        await store.append("t", [new(0)])
        await store.save_checkpoint("t", Checkpoint(1, b"cp"))
        ttls = await _ttls(any_redis_url, redis_prefix, "t")
        assert all(0 < ttls[kind] <= retention_ms for kind in ("log", "info", "ckpt")), ttls
        lease = await store.leases.acquire("t", "run")
        assert lease is not None
        client = await connect(any_redis_url)
        try:  # as if the retention had nearly run out: a renewal pushes it back
            for kind in ("log", "info", "ckpt", "fence"):
                await client.pexpire(f"{redis_prefix}:{{t}}:{kind}", 1_000)
        finally:
            await client.aclose()
        assert (await store.leases.renew(lease)).held
        ttls = await _ttls(any_redis_url, redis_prefix, "t")
        assert all(retention_ms - 60_000 < ttl <= retention_ms for ttl in ttls.values()), ttls
    async with opened_stores(lambda: RedisStore(any_redis_url, prefix=redis_prefix)) as make:
        plain = await make()
        await plain.append("u", [new(0)])
        assert (await _ttls(any_redis_url, redis_prefix, "u"))["log"] == -1  # no retention: no expiry
    with pytest.raises(ValueError, match="retention"):
        RedisStore(any_redis_url, prefix=redis_prefix, lease_ttl_s=10, retention_s=15)


async def test_a_sweep_keeps_leased_threads_and_moves_past_them(make_replica: MakeStore) -> None:
    store = await make_replica()
    assert store.leases is not None
    last = 0
    for name in ("a", "b", "c", "d"):
        last = (await store.append(name, [new(name)]))[0].ts
    lease = await store.leases.acquire("a", "run")
    assert lease is not None
    outcomes: dict[str, str] = {}
    cursor: str | None = None
    for _ in range(10):
        page = await store.idle_threads(last + 1, limit=2, cursor=cursor)
        for idle in page.threads:
            outcomes[idle.thread_id] = await store.delete_thread(idle.thread_id, idle_before_ms=last + 1)
        cursor = page.next
        if cursor is None:
            break
    assert outcomes == {"a": "leased", "b": "deleted", "c": "deleted", "d": "deleted"}
    assert [i.thread_id for i in await store.list_threads()] == ["a"]


async def test_a_retention_delete_reaches_a_waiter_at_its_next_wait(make_replica: MakeStore) -> None:
    waiting, sweeping = await make_replica(), await make_replica()
    appended = await sweeping.append("t", [new(0)])
    head = await waiting.head("t")
    assert head is not None
    # A sweep's delete leaves no notice (it would cost what a small thread does, thousands
    # at a time): a waiter that follows the epoch learns it when it next asks.
    assert await sweeping.delete_thread("t", idle_before_ms=appended[0].ts + 1) == "deleted"
    with pytest.raises(ThreadDeleted):
        await waiting.wait_for("t", 1, timeout=HANG_GUARD, epoch=head.epoch)


async def test_a_sweep_finds_and_unlists_threads_whose_keys_expired(
    make_replica: MakeStore, any_redis_url: str, redis_prefix: str
) -> None:
    store = await make_replica()
    last = (await store.append("gone", [new(0)]))[0].ts
    await store.append("kept", [new(0)])
    client = await connect(any_redis_url)
    try:  # as Redis expires them with retention, gateway or not: the index entry stays behind
        for kind in ("log", "info"):
            await client.delete(f"{redis_prefix}:{{gone}}:{kind}")
        assert await client.zscore(f"{redis_prefix}:threads", "gone") is not None
    finally:
        await client.aclose()
    assert [i.thread_id for i in await store.list_threads()] == ["kept"]
    page = await store.idle_threads(last + 1)
    assert "gone" in [t.thread_id for t in page.threads]
    assert await store.delete_thread("gone", idle_before_ms=last + 1) == "missing"
    client = await connect(any_redis_url)
    try:
        assert await client.zscore(f"{redis_prefix}:threads", "gone") is None
    finally:
        await client.aclose()


# -- the lifecycle meets the open-run index, repeated appends and reclaimed leases -------------------


async def test_a_fenced_batch_repeated_after_a_delete_is_refused_and_creates_nothing(
    make_replica: MakeStore, any_redis_url: str, redis_prefix: str
) -> None:
    holder, deleting = await make_replica(), await make_replica()
    assert holder.leases is not None
    lease = await holder.leases.acquire("t", "run-a")
    assert lease is not None
    batch = [started("run-a"), new(0, "run-a")]
    await holder.append("t", batch, fence=lease.token, expect_seq=1)
    assert await deleting.open_run_threads() == ["t"]
    assert await deleting.delete_thread("t", even_if_leased=True) == "deleted"
    assert await holder.open_run_threads() == []
    # The holder repeats its batch (its reply was lost, say): the delete took the lease and
    # the fence, so the thread is not created again, not even at seq 1.
    with pytest.raises(LeaseLost):
        await holder.append("t", batch, fence=lease.token, expect_seq=1)
    with pytest.raises(SeqConflict):
        await holder.append("t", [new(1, "run-a")], fence=lease.token, expect_seq=3)
    assert not await holder.leases.reclaim(lease)  # the lease is not granted again either
    assert await _keys_of(any_redis_url, redis_prefix, "t") == {f"{redis_prefix}:{{t}}:deleted"}
    assert await holder.head("t") is None and await holder.open_run_threads() == []
    assert [i.thread_id for i in await holder.list_threads()] == []


async def test_a_reclaimed_lease_refreshes_the_retention_of_the_thread(any_redis_url: str, redis_prefix: str) -> None:
    retention_ms = 600_000
    async with opened_stores(
        lambda: RedisStore(any_redis_url, prefix=redis_prefix, lease_ttl_s=5, retention_s=retention_ms / 1000)
    ) as make:
        store = await make()
        assert store.leases is not None
        lease = await store.leases.acquire("t", "run")
        assert lease is not None
        await store.append("t", [started("run"), new(0, "run")], fence=lease.token, expect_seq=1)
        client = await connect(any_redis_url)
        try:  # an outage longer than the ttl: the lease lapsed, the retention nearly ran out
            await client.delete(f"{redis_prefix}:{{t}}:lease")
            for kind in ("log", "info", "fence"):
                await client.pexpire(f"{redis_prefix}:{{t}}:{kind}", 1_000)
        finally:
            await client.aclose()
        assert await store.leases.reclaim(lease)
        ttls = await _ttls(any_redis_url, redis_prefix, "t")
        assert all(retention_ms - 60_000 < ttls[kind] <= retention_ms for kind in ("log", "info", "fence")), ttls
        assert [r.seq for r in await store.append("t", [finished("run")], fence=lease.token, expect_seq=3)] == [3]
        assert await store.open_run_threads() == []


async def test_a_sweep_drops_the_open_run_entry_of_a_thread_whose_keys_expired(
    make_replica: MakeStore, any_redis_url: str, redis_prefix: str
) -> None:
    store = await make_replica()
    last = (await store.append("gone", [started("r", "gone"), new(0, "r")]))[0].ts
    await store.append("kept", [started("r", "kept")])
    client = await connect(any_redis_url)
    try:  # as Redis expires a thread's keys with retention: its open-run entry stays behind
        for kind in ("log", "info", "fence"):
            await client.delete(f"{redis_prefix}:{{gone}}:{kind}")
    finally:
        await client.aclose()
    assert await store.open_run_threads() == ["gone", "kept"]  # extra, and harmless
    assert "gone" in [t.thread_id for t in (await store.idle_threads(last + 1)).threads]
    assert await store.delete_thread("gone", idle_before_ms=last + 1) == "missing"
    assert await store.open_run_threads() == ["kept"]
