"""``DELETE /threads/{thread}`` on a real server, on the file store and on Redis.

A deleted thread is gone from the store and the thread list, its reads answer 404
``thread_not_found``, its open streams end with an ``event: thread_deleted`` frame, the
thread list's feed shows the deletion, and the id can be used again. A run in progress
is refused with 409 ``run_in_progress`` unless ``?stop=1``. Deleting needs a token with
``delete`` access. On Redis, a watcher on another replica ends too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, user_message
from support.servers import RunningGateway, serve_gateway, serve_scripted_gateway
from support.sse import collect, events_of
from support.stores import delete_keys
from support.waiting import wait_until_async

from agui_gateway.server.config import ConfigError, GatewayConfig, parse_tokens

READS = ("/events?after=0", "/snapshot", "/log.jsonl", "/runs", "/messages?before=x")


@pytest.fixture
def gateway(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> Iterator[RunningGateway]:
    with serve_scripted_gateway(tmp_path / "data", agent[1], heartbeat_s=0.2, **store_overrides) as gw:
        yield gw


class RawStream:
    """One stream's raw bytes, read in a task until the server ends it."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.data = b""
        self.status: int | None = None
        self.task = asyncio.create_task(self._read(client, url))

    async def _read(self, client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", url) as response:
            self.status = response.status_code
            async for chunk in response.aiter_bytes():
                self.data += chunk

    async def ended(self, timeout: float = 10.0) -> bytes:
        await asyncio.wait_for(self.task, timeout)
        return self.data


def named_frames(data: bytes, name: str) -> list[Any]:
    """The JSON values of the stream's ``event: NAME`` frames."""
    out = []
    for block in data.split(b"\n\n"):
        lines = block.split(b"\n")
        if b"event: " + name.encode() in lines:
            out.extend(orjson.loads(line[6:]) for line in lines if line.startswith(b"data: "))
    return out


def leftovers(gw: RunningGateway, thread_id: str) -> list[str]:
    """Whatever the store still holds of the thread: its files, or its Redis keys (but the
    deletion notice, a stream that expires by itself, for the other replicas' waiters)."""
    config = gw.gateway.config
    if not config.redis_url:
        folder = config.data_dir / "threads" / thread_id
        return [str(path) for path in folder.rglob("*")] + ([str(folder)] if folder.exists() else [])
    client = redis.Redis.from_url(config.redis_url)
    try:
        keys = [key.decode() for key in client.scan_iter(match=f"{config.redis_prefix}:{{{thread_id}}}:*")]
    finally:
        client.close()
    return [key for key in keys if not key.endswith(":deleted")]


async def _run_to_end(client: httpx.AsyncClient, scripted: ScriptedAgent, thread_id: str, run_id: str) -> None:
    scripted.script(run_id, agent_run_events(thread_id, run_id, tools=0))
    body = run_input(thread_id, run_id, [user_message(f"u-{run_id}", "hello")])
    events = events_of(await collect(client, "POST", "/agents/scripted/run", json=body))
    assert events[-1]["type"] == "RUN_FINISHED"


async def _listed(client: httpx.AsyncClient) -> set[str]:
    return {row["threadId"] for row in (await client.get("/threads")).json()["threads"]}


async def test_a_deleted_thread_is_gone_its_streams_end_and_its_id_can_be_used_again(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        await _run_to_end(client, scripted, "t-del", "r1")
        await _run_to_end(client, scripted, "t-keep", "k1")
        assert leftovers(gateway, "t-del") != []
        feed = RawStream(client, "/threads/changes")
        watcher = RawStream(client, "/threads/t-del/events")
        await wait_until_async(lambda: b"RUN_FINISHED" in watcher.data and b"event: ready" in feed.data)

        deleted = await client.delete("/threads/t-del")
        assert deleted.status_code == 204 and deleted.content == b""

        ended = await watcher.ended()  # the watcher's stream ends, with the frame saying why
        assert named_frames(ended, "thread_deleted") == [{"threadId": "t-del"}]
        assert ended.rstrip(b"\n").endswith(b'data: {"threadId":"t-del"}')
        await wait_until_async(lambda: named_frames(feed.data, "thread_deleted") == [{"threadId": "t-del"}])
        feed.task.cancel()

        assert leftovers(gateway, "t-del") == []
        assert await _listed(client) == {"t-keep"}
        assert gateway.gateway.threads.peek("t-del") is None  # the runtime is dropped
        for read in ("/events", *READS):
            refused = await client.get(f"/threads/t-del{read}")
            assert (refused.status_code, refused.json()["code"]) == (404, "thread_not_found"), read
        again = await client.delete("/threads/t-del")
        assert (again.status_code, again.json()["code"]) == (404, "thread_not_found")
        assert (await client.get("/threads/t-keep/snapshot")).json()["seq"] > 0  # the other is untouched

        # The id starts a new thread: only the new run's events.
        await _run_to_end(client, scripted, "t-del", "r2")
        log = [orjson.loads(line) for line in (await client.get("/threads/t-del/log.jsonl")).content.splitlines()]
        assert log[0]["seq"] == 1 and {r["runId"] for r in log} == {"r2"}
        assert await _listed(client) == {"t-keep", "t-del"}


async def test_a_never_written_thread_reads_as_empty_and_cannot_be_deleted(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        snapshot = await client.get("/threads/t-never/snapshot")
        assert snapshot.status_code == 200 and snapshot.json()["seq"] == 0
        assert (await client.get("/threads/t-never/runs")).json()["runs"] == []
        missing = await client.delete("/threads/t-never")
        assert (missing.status_code, missing.json()["code"]) == (404, "thread_not_found")
        bad = await client.delete("/threads/t-never?stop=maybe")
        assert bad.status_code == 400


async def test_a_run_in_progress_is_refused_unless_stop(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    events = agent_run_events("t-busy", "b1", tools=0)
    script = scripted.script("b1", events, hold_at=3)
    body = run_input("t-busy", "b1", [user_message("u1", "hi")])
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            caller = asyncio.create_task(collect(client, "POST", "/agents/scripted/run", json=body))
            await wait_until_async(lambda: _running(client, "t-busy"))

            refused = await client.delete("/threads/t-busy")
            assert (refused.status_code, refused.json()["code"]) == (409, "run_in_progress")
            assert await _running(client, "t-busy")  # the run goes on, the thread is kept

            deleted = await client.delete("/threads/t-busy?stop=1")
            assert deleted.status_code == 204
            # The run's caller got the run's end (stopped: cancelled) before the thread went.
            frames = await asyncio.wait_for(caller, 10)
            assert _stopped(events_of(frames)[-1])
            assert leftovers(gateway, "t-busy") == []
            assert "t-busy" not in await _listed(client)
    finally:
        script.release()


def _stopped(event: dict[str, Any]) -> bool:
    """A stop's end of a run: RUN_FINISHED with the cancelled outcome."""
    return event["type"] == "RUN_FINISHED" and event.get("outcome") == {"type": "cancelled"}


async def _running(client: httpx.AsyncClient, thread_id: str) -> bool:
    response = await client.get(f"/threads/{thread_id}/snapshot")
    return response.status_code == 200 and bool(response.json()["running"])


READER = "reader-token-1"
WRITER = "writer-token-1"
DELETER = "deleter-token-1"


async def test_deleting_needs_a_token_with_delete_access(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> None:
    scripted, url = agent
    tokens = parse_tokens(f"{READER}:read:* {WRITER}:write:* {DELETER}:delete:t-a")
    with serve_scripted_gateway(tmp_path / "data", url, tokens=tokens) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            deleter = {"authorization": f"Bearer {DELETER}"}
            scripted.script("a1", agent_run_events("t-a", "a1", tools=0))
            body = run_input("t-a", "a1", [user_message("u1", "hi")])
            # delete includes write (and read) on its threads
            await collect(client, "POST", "/agents/scripted/run", json=body, headers=deleter)
            for token in (READER, WRITER):
                refused = await client.delete("/threads/t-a", headers={"authorization": f"Bearer {token}"})
                assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), token
            elsewhere = await client.delete("/threads/t-b", headers=deleter)
            assert elsewhere.status_code == 403  # outside its prefixes
            assert (await client.delete("/threads/t-a")).status_code == 401
            assert (await client.delete("/threads/t-a", headers=deleter)).status_code == 204
            assert (await client.get("/threads/t-a/snapshot", headers=deleter)).status_code == 404


@pytest.mark.redis
async def test_a_watcher_on_another_replica_ends_and_a_remote_run_is_refused_unless_stop(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str
) -> None:
    scripted, url = agent
    prefix = f"agui-del-{uuid.uuid4().hex}"
    settings = {"agents": {"scripted": url}, "redis_url": redis_url, "redis_prefix": prefix, "heartbeat_s": 0.2}
    config_a = GatewayConfig(data_dir=tmp_path / "a", lease_ttl_s=1.0, **settings)
    config_b = GatewayConfig(data_dir=tmp_path / "b", lease_ttl_s=1.0, **settings)
    events = agent_run_events("t-rep", "x1", tools=0)
    script = scripted.script("x1", events, hold_at=3)
    try:
        with serve_gateway(config_a) as a, serve_gateway(config_b) as b:
            async with (
                httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
                httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
            ):
                body = run_input("t-rep", "x1", [user_message("u1", "hi")])
                caller = asyncio.create_task(collect(on_a, "POST", "/agents/scripted/run", json=body))
                watcher = RawStream(on_b, "/threads/t-rep/events")
                feed = RawStream(on_b, "/threads/changes")
                await wait_until_async(lambda: b"TEXT_MESSAGE_START" in watcher.data and b"ready" in feed.data)

                # B holds no run: the run on A shows as its lease.
                refused = await on_b.delete("/threads/t-rep")
                assert (refused.status_code, refused.json()["code"]) == (409, "run_in_progress")
                assert (await on_b.delete("/threads/t-rep?stop=1")).status_code == 204
                assert _stopped(events_of(await asyncio.wait_for(caller, 10))[-1])
                ended = await watcher.ended()
                assert named_frames(ended, "thread_deleted") == [{"threadId": "t-rep"}]
                await wait_until_async(lambda: named_frames(feed.data, "thread_deleted") == [{"threadId": "t-rep"}])
                feed.task.cancel()

                # A watcher on A of a thread deleted on B ends too (through the store's notice).
                await _run_to_end(on_a, scripted, "t-rep2", "y1")
                on_a_watcher = RawStream(on_a, "/threads/t-rep2/events")
                await wait_until_async(lambda: b"RUN_FINISHED" in on_a_watcher.data)
                assert (await on_b.delete("/threads/t-rep2")).status_code == 204
                assert named_frames(await on_a_watcher.ended(), "thread_deleted") == [{"threadId": "t-rep2"}]
                for client in (on_a, on_b):
                    assert not {"t-rep", "t-rep2"} & await _listed(client)
                refused_a = await on_a.get("/threads/t-rep2/snapshot")  # A saw it go: 404 there too
                assert (refused_a.status_code, refused_a.json()["code"]) == (404, "thread_not_found")
    finally:
        script.release()
        delete_keys(redis_url, prefix)


def test_delete_access_is_a_level_above_write() -> None:
    (grant,) = parse_tokens([{"token": DELETER, "access": "delete", "threads": ["t-"]}])
    assert [grant.allows("t-1", need) for need in ("read", "write", "delete")] == [True, True, True]
    (writer,) = parse_tokens(f"{WRITER}:write:*")
    assert [writer.allows("t-1", need) for need in ("read", "write", "delete")] == [True, True, False]
    with pytest.raises(ConfigError, match="'read', 'write' or 'delete'"):
        parse_tokens(f"{WRITER}:admin:*")
