"""A run start meeting a thread that is only being given up waits for it; a live run's is 409.

A recovery (the sweep, or a replica touching the thread) holds the thread's lease
while it stores the RUN_ERROR of a dead replica's run, and gives it up right after;
a run holds the thread, and its lease, until a moment after its end is stored. A
client that saw that RUN_ERROR or that end may start the next run in between: the
start must not fail for it. Each test holds the thread at that very point (the end
stored, the lease not yet given up) and starts a run on the gateway:

* another replica's recovery, another replica's ended run: the test is that
  replica, with a store of its own on the gateway's Redis key prefix;
* the recovery of the gateway's own sweep, the gateway's own ended run: the
  gateway's store holds the release of that lease until the test lets it go.

The start must wait (the gateway counts it) and then run; without the handover it
answered 409 at once. A live run of another replica still gets its 409 at once.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input
from support.servers import RunningGateway, serve_gateway
from support.sse import SseReader, collect, events_of, has_event
from support.stores import delete_keys, stored_log
from support.waiting import wait_until_async

from agui_gateway.protocol.builders import run_error_event
from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.runtime.leases import keep_lease
from agui_gateway.server.runtime.recovery import RECOVERY_RUN_ID
from agui_gateway.store.base import NewEvent
from agui_gateway.store.lease import Holder, Lease, Renewal, RunLeases
from agui_gateway.store.redis import RedisStore

pytestmark = pytest.mark.redis

LEASE_TTL = 30.0  # no lease the test holds lapses on its own while it matters
DEAD_LEASE_TTL = 0.3  # the lease of a run whose replica the test lets die
OtherReplica = Callable[[float], Awaitable[RedisStore]]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"agui-handover-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        delete_keys(redis_url, name)


@pytest.fixture
async def other_replica(redis_url: str, prefix: str) -> AsyncIterator[OtherReplica]:
    """Opens another replica's store on the gateway's keys, with the lease ttl given."""
    opened: list[RedisStore] = []

    async def open_replica(lease_ttl_s: float) -> RedisStore:
        store = RedisStore(redis_url, prefix=prefix, lease_ttl_s=lease_ttl_s)
        await store.open()
        opened.append(store)
        return store

    try:
        yield open_replica
    finally:
        for store in opened:
            await store.close()


def _config(tmp_path: Path, agent_url: str, redis_url: str, prefix: str, lease_ttl_s: float) -> GatewayConfig:
    return GatewayConfig(
        data_dir=tmp_path / "data",
        agents={"scripted": agent_url},
        redis_url=redis_url,
        redis_prefix=prefix,
        lease_ttl_s=lease_ttl_s,
    )


def _waited_starts(gw: RunningGateway) -> float:
    """The gateway's count of run starts that waited for the thread to be given up."""
    for line in httpx.get(gw.url + "/metrics").text.splitlines():
        if line.startswith("agui_gateway_run_starts_waited_total "):
            return float(line.split()[1])
    return 0.0


def _leases(store: RedisStore) -> RunLeases:
    assert store.leases is not None
    return store.leases


async def _store_run_start(replica: RedisStore, thread_id: str, run_id: str) -> Lease:
    """A run of ``replica``: its lease, and its RUN_STARTED stored under it."""
    lease = await _leases(replica).acquire(thread_id, run_id)
    assert lease is not None
    started = {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}
    await replica.append(thread_id, [NewEvent(started, run_id, "agent")], fence=lease.token)
    return lease


async def _start_run_while_held(
    client: httpx.AsyncClient, gw: RunningGateway, thread_id: str, run_id: str
) -> asyncio.Task[httpx.Response]:
    """Start the run; return once the gateway reports it waits (it must not answer yet)."""
    start = asyncio.create_task(client.post("/agents/scripted/run", json=run_input(thread_id, run_id)))
    await wait_until_async(lambda: start.done() or _waited_starts(gw) >= 1, timeout=10, what="the run start waiting")
    if start.done():
        answer = start.result()
        pytest.fail(f"the run start answered while the thread was being given up: {answer.status_code} {answer.text}")
    return start


def _finished(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return events_of(SseReader().feed(response.content))[-1]["type"] == "RUN_FINISHED"


def _count(gw: RunningGateway, thread_id: str, kind: str) -> int:
    return sum(record["event"]["type"] == kind for record in stored_log(gw, thread_id))


# -- another replica holds the lease -----------------------------------------------------


async def test_a_run_start_waits_for_another_replicas_recovery_then_runs(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str, prefix: str, other_replica: OtherReplica
) -> None:
    scripted, agent_url = agent
    thread_id, run_id = "after-remote-recovery", f"r-{uuid.uuid4().hex[:8]}"
    replica = await other_replica(LEASE_TTL)
    leases = _leases(replica)
    dead = await _store_run_start(replica, thread_id, "dead-run")
    await leases.release(dead)  # as good as lapsed: the log shows the run open, no lease
    # The replica recovers the run: its lease, its RUN_ERROR, and it holds on.
    recovery = await leases.acquire(thread_id, RECOVERY_RUN_ID, recovery=True)
    assert recovery is not None
    error = run_error_event("cut off", "gateway_restarted")
    await replica.append(thread_id, [NewEvent(error, "dead-run", "gateway")], fence=recovery.token)
    scripted.script(run_id, agent_run_events(thread_id, run_id))
    with serve_gateway(_config(tmp_path, agent_url, redis_url, prefix, LEASE_TTL)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            start = await _start_run_while_held(client, gw, thread_id, run_id)
            await leases.release(recovery)
            assert _finished(await start)
        assert _count(gw, thread_id, "RUN_ERROR") == 1


async def test_a_run_start_waits_for_another_replicas_ended_run_then_runs(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str, prefix: str, other_replica: OtherReplica
) -> None:
    scripted, agent_url = agent
    thread_id, run_id = "after-remote-run", f"r-{uuid.uuid4().hex[:8]}"
    replica = await other_replica(LEASE_TTL)
    # The replica's run ends: its RUN_FINISHED is stored, its lease not given up yet.
    lease = await _store_run_start(replica, thread_id, "remote-run")
    finished = {"type": "RUN_FINISHED", "threadId": thread_id, "runId": "remote-run"}
    await replica.append(thread_id, [NewEvent(finished, "remote-run", "agent")], fence=lease.token)
    scripted.script(run_id, agent_run_events(thread_id, run_id))
    with serve_gateway(_config(tmp_path, agent_url, redis_url, prefix, LEASE_TTL)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            start = await _start_run_while_held(client, gw, thread_id, run_id)
            await _leases(replica).release(lease)
            assert _finished(await start)
        assert _count(gw, thread_id, "RUN_FINISHED") == 2


async def test_a_run_start_meeting_a_live_run_of_another_replica_is_409_without_waiting(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str, prefix: str, other_replica: OtherReplica
) -> None:
    _, agent_url = agent
    thread_id = "live-elsewhere"
    replica = await other_replica(LEASE_TTL)
    lease = await _store_run_start(replica, thread_id, "live-run")
    with serve_gateway(_config(tmp_path, agent_url, redis_url, prefix, LEASE_TTL)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            conflict = await client.post("/agents/scripted/run", json=run_input(thread_id, "mine"))
        assert conflict.status_code == 409 and "another gateway replica" in conflict.json()["error"]
        assert _waited_starts(gw) == 0
    await _leases(replica).release(lease)


# -- the gateway itself holds the lease ----------------------------------------------------


class _HeldLeases(RunLeases):
    """The store's own leases, except that giving up one that ``held`` picks waits for :attr:`go`."""

    def __init__(self, inner: RunLeases, held: Callable[[Lease], bool], holding: threading.Event) -> None:
        self.ttl_s = inner.ttl_s
        self.replica_id = inner.replica_id
        self.go = threading.Event()
        self._inner = inner
        self._held = held
        self._holding = holding

    async def acquire(self, thread_id: str, run_id: str, *, recovery: bool = False) -> Lease | None:
        return await self._inner.acquire(thread_id, run_id, recovery=recovery)

    async def take_over(self, thread_id: str, run_id: str) -> Lease | None:
        return await self._inner.take_over(thread_id, run_id)

    async def held_by_this_replica(self) -> list[str]:
        return await self._inner.held_by_this_replica()

    async def renew(self, lease: Lease) -> Renewal:
        return await self._inner.renew(lease)

    async def release(self, lease: Lease) -> None:
        if self._held(lease):
            self._holding.set()
            await asyncio.to_thread(self.go.wait, 30)
        await self._inner.release(lease)

    async def holder(self, thread_id: str) -> Holder | None:
        return await self._inner.holder(thread_id)

    async def request_stop(self, thread_id: str, message: str, run_id: str | None = None) -> str | None:
        return await self._inner.request_stop(thread_id, message, run_id)

    async def expired(self) -> list[str]:
        return await self._inner.expired()

    async def forget(self, thread_id: str) -> None:
        await self._inner.forget(thread_id)


class _HeldReleaseStore(RedisStore):
    """The gateway's Redis store, holding the release of the leases ``held`` picks."""

    def __init__(self, url: str, prefix: str, lease_ttl_s: float, held: Callable[[Lease], bool]) -> None:
        super().__init__(url, prefix=prefix, lease_ttl_s=lease_ttl_s)
        self.holding = threading.Event()  # set once a release is held
        self._held = held
        self._leases: _HeldLeases | None = None

    async def open(self) -> None:
        await super().open()
        if self._leases is None:
            self._leases = _HeldLeases(_leases(self), self._held, self.holding)
        self.leases = self._leases

    def let_go(self) -> None:
        if self._leases is not None:
            self._leases.go.set()


def _never(message: str) -> None:
    raise AssertionError(f"the other replica's run was not meant to end: {message}")


def _is_run_started(event: dict[str, object]) -> bool:
    return event["type"] == "RUN_STARTED"


async def test_a_run_start_waits_for_the_recovery_of_its_own_sweep_then_runs(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str, prefix: str, other_replica: OtherReplica
) -> None:
    scripted, agent_url = agent
    thread_id, run_id = "after-own-sweep", f"r-{uuid.uuid4().hex[:8]}"
    # The gateway's lease ttl sets its sweep's pace (ttl/2), and lasts while the recovery is held.
    gateway_ttl = 4.0
    store = _HeldReleaseStore(redis_url, prefix, gateway_ttl, held=lambda lease: lease.recovery)
    scripted.script(run_id, agent_run_events(thread_id, run_id))
    replica = await other_replica(DEAD_LEASE_TTL)
    with serve_gateway(_config(tmp_path, agent_url, redis_url, prefix, gateway_ttl), store=store) as gw:
        try:
            # The other replica's run, alive (its lease renewed) while the gateway reads the
            # thread; then the replica dies: its lease lapses and the gateway's sweep recovers it.
            lease = await _store_run_start(replica, thread_id, "dead-run")
            alive = asyncio.create_task(keep_lease(_leases(replica), lease, on_stop=_never, on_lost=_never))
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                await collect(client, "GET", f"/threads/{thread_id}/events", until=has_event(_is_run_started))
                alive.cancel()
                await asyncio.gather(alive, return_exceptions=True)
                await wait_until_async(store.holding.is_set, timeout=gateway_ttl * 3, what="the sweep's recovery")
                assert stored_log(gw, thread_id)[-1]["event"]["code"] == "gateway_restarted"
                start = await _start_run_while_held(client, gw, thread_id, run_id)
                store.let_go()
                assert _finished(await start)
        finally:
            store.let_go()
        assert _count(gw, thread_id, "RUN_ERROR") == 1


async def test_a_run_start_waits_for_the_previous_run_of_this_gateway_to_let_go_then_runs(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str, prefix: str
) -> None:
    scripted, agent_url = agent
    thread_id, first_id, next_id = "after-own-run", f"r-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    store = _HeldReleaseStore(redis_url, prefix, LEASE_TTL, held=lambda lease: lease.run_id == first_id)
    scripted.script(first_id, agent_run_events(thread_id, first_id))
    scripted.script(next_id, agent_run_events(thread_id, next_id))
    with serve_gateway(_config(tmp_path, agent_url, redis_url, prefix, LEASE_TTL), store=store) as gw:
        try:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                first = asyncio.create_task(client.post("/agents/scripted/run", json=run_input(thread_id, first_id)))
                # The first run's RUN_FINISHED is stored (a watcher may have seen it); its lease is not given up yet.
                await wait_until_async(store.holding.is_set, timeout=10, what="the first run's end")
                assert stored_log(gw, thread_id)[-1]["event"]["type"] == "RUN_FINISHED"
                start = await _start_run_while_held(client, gw, thread_id, next_id)
                store.let_go()
                assert _finished(await first)
                assert _finished(await start)
        finally:
            store.let_go()
        assert _count(gw, thread_id, "RUN_FINISHED") == 2
