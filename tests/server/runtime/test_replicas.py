"""Two gateway replicas (two ``agui-gateway serve`` processes, two ports) on one Redis.

A run proxied by replica A is seen live, in order, without loss or duplicate by
subscribers on replica B; B serves fresh replays and resumes by ids that A issued;
a stop sent to B ends the run A drives; and when A is SIGKILLed mid-run, B closes
the run with one stored RUN_ERROR once A's lease lapses, and takes the next run.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, user_message
from support.official_client import OfficialClient, assert_same_end
from support.servers import GatewayProcess
from support.sse import Frame, collect, events_of, has_event, has_id
from support.stores import delete_keys
from support.waiting import wait_until_async

pytestmark = pytest.mark.redis

LEASE_TTL = 1.5  # seconds: short, so that a dead replica's run is closed quickly


def _stored(url: str, prefix: str, thread_id: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return [fields[b"r"] for _, fields in client.xrange(f"{prefix}:{{{thread_id}}}:log")]
    finally:
        client.close()


@pytest.fixture
def replicas(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess, str]]:
    """Replicas A and B sharing one Redis under a key prefix of this test's own."""
    prefix = f"agui-replicas-{uuid.uuid4().hex}"
    args = ("--store", redis_url, "--redis-prefix", prefix, "--lease-ttl", str(LEASE_TTL), "--heartbeat", "0.5")
    a = GatewayProcess(tmp_path / "a", {"scripted": agent[1]}, *args)
    b = GatewayProcess(tmp_path / "b", {"scripted": agent[1]}, *args)
    try:
        a.start()
        b.start()
        yield a, b, prefix
    finally:
        a.terminate()
        b.terminate()
        delete_keys(redis_url, prefix)


async def _kill_a_mid_run(
    client: httpx.AsyncClient,
    a: GatewayProcess,
    b: GatewayProcess,
    scripted: ScriptedAgent,
    where: tuple[str, str, str],
) -> tuple[str, asyncio.Task[list[Frame]]]:
    """A run on A, SIGKILLed once part of it is stored; returns the run's id and B's watcher
    of the thread, which ends at the first RUN_ERROR. ``where``: Redis URL, prefix, thread."""
    redis_url, prefix, thread_id = where
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    scripted.script(run_id, agent_run_events(thread_id, run_id), hold_at=6)
    body = run_input(thread_id, run_id)
    run = asyncio.create_task(collect(client, "POST", f"{a.url}/agents/scripted/run", json=body))
    await wait_until_async(lambda: len(_stored(redis_url, prefix, thread_id)) >= 6, timeout=10)
    errored = has_event(lambda e: e["type"] == "RUN_ERROR")
    watcher = asyncio.create_task(
        collect(client, "GET", f"{b.url}/threads/{thread_id}/events", params={"after": "0"}, until=errored)
    )
    a.kill()
    with pytest.raises((httpx.HTTPError, AssertionError)):
        await run
    return run_id, watcher


def _ids(frames: list[Frame]) -> list[int]:
    return [f.id for f in frames if f.id is not None]


async def test_a_run_through_a_is_live_on_b_and_b_replays_and_resumes_by_as_ids(
    replicas: tuple[GatewayProcess, GatewayProcess, str],
    agent: tuple[ScriptedAgent, str],
    redis_url: str,
    official_client: OfficialClient,
) -> None:
    a, b, prefix = replicas
    scripted, _ = agent
    thread_id, run_id = "rep-live", f"r-{uuid.uuid4().hex[:8]}"
    events = agent_run_events(thread_id, run_id, text_deltas=40)
    script = scripted.script(run_id, events, hold_at=5)

    # Every event of the agent's run has arrived (the stored run is at least that long).
    def finished(frames: list[Frame]) -> bool:
        got = events_of(frames)
        return len(got) >= len(events) and bool(got) and got[-1] == events[-1]

    async with httpx.AsyncClient(timeout=30) as client:
        # Subscribers on B before the run exists: fresh (empty thread) and by position.
        subscribers = [
            asyncio.create_task(collect(client, "GET", f"{b.url}/threads/{thread_id}/events", until=finished))
            for _ in range(3)
        ]
        subscribers.append(
            asyncio.create_task(
                collect(client, "GET", f"{b.url}/threads/{thread_id}/events", params={"after": "0"}, until=finished)
            )
        )
        await wait_until_async(
            lambda: b"agui_gateway_subscribers 4.0" in httpx.get(b.url + "/metrics").content, timeout=10
        )
        body = run_input(thread_id, run_id, [user_message("u1", "hello")])
        run = asyncio.create_task(collect(client, "POST", f"{a.url}/agents/scripted/run", json=body))
        # A connect on B while A's run is open (part of it stored) follows it to its end.
        await wait_until_async(lambda: len(_stored(redis_url, prefix, thread_id)) >= 5, timeout=10)
        connect = asyncio.create_task(
            collect(client, "POST", f"{b.url}/agents/scripted/connect", json=run_input(thread_id, "c1"))
        )
        script.release()
        on_a = await run
        seen = await asyncio.gather(*subscribers)
        connected = await connect
    a_ids, a_events = _ids(on_a), events_of(on_a)
    assert a_ids == list(range(1, len(a_events) + 1))  # the whole thread is this run
    for frames in seen:  # every event, in order, once, with A's ids
        assert _ids(frames) == a_ids and events_of(frames) == a_events
    # What A's caller holds, under the official client: B's streams must end there too.
    on_a_end = official_client.replay(a_events)
    assert on_a_end.error is None, on_a_end.error
    assert on_a_end.messages, "A's run holds messages (the check below is not vacuous)"
    assert_same_end("B's /connect, joined mid-run", official_client.replay(events_of(connected)), on_a_end)
    async with httpx.AsyncClient(timeout=30) as client:
        # Fresh replay on B (compacted from what A stored): ends at A's last id with the same
        # final event, and the official client replaying it holds what A's caller holds.
        fresh = await collect(client, "GET", f"{b.url}/threads/{thread_id}/events", until=has_id(a_ids[-1]))
        assert _ids(fresh)[-1] == a_ids[-1] and events_of(fresh)[-1] == a_events[-1]
        assert len(events_of(fresh)) < len(a_events), "B's fresh replay is compacted"
        assert_same_end("B's fresh replay", official_client.replay(events_of(fresh)), on_a_end)
        # A /connect on B after the run: the compacted history, then it ends (no run open).
        later = await collect(client, "POST", f"{b.url}/agents/scripted/connect", json=run_input(thread_id, "c2"))
        assert_same_end("B's /connect after the run", official_client.replay(events_of(later)), on_a_end)
        # Resume on B from an id A issued mid-run: exactly the events after it.
        middle = a_ids[len(a_ids) // 2]
        resumed = await collect(
            client,
            "GET",
            f"{b.url}/threads/{thread_id}/events",
            headers={"last-event-id": str(middle)},
            until=has_id(a_ids[-1]),
        )
        assert _ids(resumed) == a_ids[middle:] and events_of(resumed) == a_events[middle:]


async def test_a_stop_sent_to_b_ends_the_run_on_a(
    replicas: tuple[GatewayProcess, GatewayProcess, str], agent: tuple[ScriptedAgent, str], redis_url: str
) -> None:
    a, b, prefix = replicas
    scripted, _ = agent
    thread_id, run_id = "rep-stop", f"r-{uuid.uuid4().hex[:8]}"
    script = scripted.script(run_id, agent_run_events(thread_id, run_id), hold_at=4)
    async with httpx.AsyncClient(timeout=30) as client:
        run = asyncio.create_task(
            collect(client, "POST", f"{a.url}/agents/scripted/run", json=run_input(thread_id, run_id))
        )
        await wait_until_async(lambda: len(_stored(redis_url, prefix, thread_id)) >= 4, timeout=10)
        conflict = await client.post(f"{b.url}/agents/scripted/run", json=run_input(thread_id, "other"))
        assert conflict.status_code == 409 and "another gateway replica" in conflict.json()["error"]
        # A stop naming another run is refused by the lease itself: the run on A goes on.
        other = await client.post(f"{b.url}/threads/{thread_id}/stop", params={"runId": "other"})
        assert other.status_code == 409 and other.json()["code"] == "not_the_open_run", other.text
        stopped = await client.post(f"{b.url}/threads/{thread_id}/stop", params={"runId": run_id})
        assert stopped.status_code == 200, stopped.text
        frames = await run
    script.release()
    # The agent held inside its first message: closed, then the cancelled outcome.
    assert events_of(frames)[-2:] == [
        {"type": "TEXT_MESSAGE_END", "messageId": f"{run_id}-m1"},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id, "outcome": {"type": "cancelled"}},
    ]
    stored = _stored(redis_url, prefix, thread_id)
    assert sum(b'"type":"RUN_FINISHED"' in line for line in stored) == 1
    assert not any(b'"type":"RUN_ERROR"' in line for line in stored)
    # The stop names the position with its epoch: the one A's stream gave its ids.
    epoch = frames[-1].epoch
    assert epoch is not None
    assert stopped.json() == {"stopped": True, "runId": run_id, "seq": len(stored), "epoch": epoch}


async def test_b_closes_the_run_of_a_killed_replica_once_and_takes_the_next_run(
    replicas: tuple[GatewayProcess, GatewayProcess, str], agent: tuple[ScriptedAgent, str], redis_url: str
) -> None:
    a, b, prefix = replicas
    scripted, _ = agent
    thread_id = "rep-kill"
    async with httpx.AsyncClient(timeout=30) as client:
        _, watcher = await _kill_a_mid_run(client, a, b, scripted, (redis_url, prefix, thread_id))
        # Nobody touches the thread: B's sweep closes it after A's lease lapses.
        frames = await asyncio.wait_for(watcher, LEASE_TTL * 10)
        error = events_of(frames)[-1]
        assert error["type"] == "RUN_ERROR" and error["code"] == "gateway_restarted"
        stored = _stored(redis_url, prefix, thread_id)
        assert sum(b'"type":"RUN_ERROR"' in line for line in stored) == 1
        # The thread takes the next run, on B.
        next_id = f"r-{uuid.uuid4().hex[:8]}"
        scripted.script(next_id, agent_run_events(thread_id, next_id))
        # At once: the sweep that stored the RUN_ERROR may still hold the thread's lease, and
        # a run start waits for a recovery's lease (a 409 here would be a regression).
        nxt = await client.post(f"{b.url}/agents/scripted/run", json=run_input(thread_id, next_id))
        assert nxt.status_code == 200, nxt.text
        assert '"type":"RUN_FINISHED"' in nxt.text.rsplit("data: ", 1)[-1]
    assert sum(b'"type":"RUN_ERROR"' in line for line in _stored(redis_url, prefix, thread_id)) == 1


RESTART_LEASE_TTL = 600.0  # far beyond the test: no lease of it lapses, so none is closed by lapsing


def _lease(url: str, prefix: str, thread_id: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(url)
    try:
        return dict(client.hgetall(f"{prefix}:{{{thread_id}}}:lease"))
    finally:
        client.close()


async def test_a_replica_restarted_under_its_id_closes_its_run_at_once_and_the_thread_takes_the_next(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str
) -> None:
    scripted, agent_url = agent
    prefix = f"agui-restart-{uuid.uuid4().hex}"
    common = ("--store", redis_url, "--redis-prefix", prefix, "--lease-ttl", str(RESTART_LEASE_TTL))
    a = GatewayProcess(tmp_path / "a", {"scripted": agent_url}, *common, "--replica-id", "replica-a")
    b = GatewayProcess(tmp_path / "b", {"scripted": agent_url}, *common, "--replica-id", "replica-b")
    thread_id = "rep-restart"
    try:
        a.start()
        b.start()
        async with httpx.AsyncClient(timeout=30) as client:
            run_id, watcher = await _kill_a_mid_run(client, a, b, scripted, (redis_url, prefix, thread_id))
            before = _stored(redis_url, prefix, thread_id)
            assert b'"type":"RUN_ERROR"' not in b"".join(before)
            held = _lease(redis_url, prefix, thread_id)  # live, and for far longer than the test
            assert held[b"replica"] == b"replica-a" and held[b"run"] == run_id.encode()
            # A again, under its id: the run its previous process drove is closed before it
            # answers at all, by taking over that lease rather than waiting for it to lapse.
            a.start()
            stored = _stored(redis_url, prefix, thread_id)
            assert stored[: len(before)] == before and len(stored) == len(before) + 1
            assert b'"type":"RUN_ERROR"' in stored[-1] and b'"code":"gateway_restarted"' in stored[-1]
            assert _lease(redis_url, prefix, thread_id) == {}  # given up: the thread is free
            # B's watcher sees the run end; the thread takes the next run, on B and then on A.
            frames = await watcher
            assert events_of(frames)[-1]["code"] == "gateway_restarted"
            for replica in (b, a):
                next_id = f"r-{uuid.uuid4().hex[:8]}"
                scripted.script(next_id, agent_run_events(thread_id, next_id))
                nxt = await client.post(f"{replica.url}/agents/scripted/run", json=run_input(thread_id, next_id))
                assert nxt.status_code == 200, nxt.text
                assert '"type":"RUN_FINISHED"' in nxt.text.rsplit("data: ", 1)[-1]
        assert sum(b'"type":"RUN_ERROR"' in line for line in _stored(redis_url, prefix, thread_id)) == 1
    finally:
        a.terminate()
        b.terminate()
        delete_keys(redis_url, prefix)


async def test_a_subscriber_on_b_sees_the_run_of_a_draining_replica_to_its_end(
    replicas: tuple[GatewayProcess, GatewayProcess, str], agent: tuple[ScriptedAgent, str], redis_url: str
) -> None:
    """A rolling deploy stops replica A (SIGTERM): its run goes on to its end, and a watcher
    of the thread on replica B receives every event of it, the terminal one included."""
    a, b, prefix = replicas
    scripted, _ = agent
    thread_id, run_id = "rep-drain", f"r-{uuid.uuid4().hex[:8]}"
    script = scripted.script(run_id, agent_run_events(thread_id, run_id), hold_at=4)
    async with httpx.AsyncClient(timeout=30) as client:
        run = asyncio.create_task(
            collect(client, "POST", f"{a.url}/agents/scripted/run", json=run_input(thread_id, run_id))
        )
        await wait_until_async(lambda: len(_stored(redis_url, prefix, thread_id)) >= 4, timeout=10)
        watcher = asyncio.create_task(
            collect(
                client,
                "GET",
                f"{b.url}/threads/{thread_id}/events",
                until=has_event(lambda e: e["type"] == "RUN_FINISHED"),
            )
        )
        assert a.proc is not None
        a.proc.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            answer = await client.get(f"{a.url}/readyz")
            return answer.status_code == 503 and answer.json()["reason"].startswith("draining")

        await wait_until_async(draining, timeout=10, what="A draining")
        script.release()
        called = events_of(await run)
        watched = events_of(await watcher)
    assert called[-1]["type"] == "RUN_FINISHED" and "outcome" not in called[-1]
    assert watched[-1] == called[-1]
    await wait_until_async(lambda: a.proc is not None and a.proc.poll() is not None, timeout=30, what="A's exit")
    assert a.proc.returncode == 0


async def test_a_thread_deleted_and_written_again_on_b_is_never_served_as_the_old_one_by_a(
    replicas: tuple[GatewayProcess, GatewayProcess, str], agent: tuple[ScriptedAgent, str]
) -> None:
    """A built the thread and then stopped following it (no stream open). B deletes it and
    writes it again: A serves the new thread (fresh, and by B's ids), refuses the old ids
    with 409 thread_recreated, and continues the new thread with the next run."""
    a, b, _ = replicas
    scripted, _ = agent
    thread_id = f"again-{uuid.uuid4().hex[:8]}"

    async def run_on(replica: GatewayProcess, run_id: str) -> list[Frame]:
        scripted.script(run_id, agent_run_events(thread_id, run_id, tools=0))
        body = run_input(thread_id, run_id, [user_message(f"{run_id}-u", f"hello from {run_id}")])
        frames = await collect(client, "POST", f"{replica.url}/agents/scripted/run", json=body)
        assert events_of(frames)[-1]["type"] == "RUN_FINISHED"
        return frames

    async with httpx.AsyncClient(timeout=30) as client:
        old = await run_on(a, "old-1")
        old_id = old[-1].raw_id
        assert old_id is not None and (await client.get(f"{a.url}/threads/{thread_id}/snapshot")).status_code == 200
        assert (await client.delete(f"{b.url}/threads/{thread_id}")).status_code == 204
        new = await run_on(b, "new-1")
        new_epoch = new[-1].epoch
        assert new_epoch is not None and new_epoch != old[-1].epoch

        refused = await client.get(f"{a.url}/threads/{thread_id}/events", headers={"last-event-id": old_id})
        assert (refused.status_code, refused.json()["code"]) == (409, "thread_recreated")
        snapshot = (await client.get(f"{a.url}/threads/{thread_id}/snapshot")).json()
        assert snapshot["epoch"] == new_epoch
        assert [m["id"] for m in snapshot["messages"] if m["role"] == "user"] == ["new-1-u"]
        second = next(f.raw_id for f in new if f.id == 2)
        resumed = await collect(
            client,
            "GET",
            f"{a.url}/threads/{thread_id}/events",
            params={"after": second},
            until=has_id(new[-1].id or 0),
        )
        assert events_of(resumed) == [f.event for f in new if f.id is not None and f.id > 2]
        assert {f.epoch for f in resumed if f.raw_id is not None} == {new_epoch}
        # A takes the next run of the new thread, continuing it.
        await run_on(a, "new-2")
        snapshot = (await client.get(f"{b.url}/threads/{thread_id}/snapshot")).json()
        assert [m["id"] for m in snapshot["messages"] if m["role"] == "user"] == ["new-1-u", "new-2-u"]
