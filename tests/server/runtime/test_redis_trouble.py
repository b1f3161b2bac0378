"""The gateway when Redis is unreachable at start, or lost while serving, or not persistent.

Each test runs its own ``redis-server`` (so it can stop and restart it).
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, assert_stored_as_sent, run_input, served
from support.official_client import OfficialClient, assert_same_end
from support.redis_fixtures import private_redis
from support.redis_servers import RedisServer
from support.servers import REPO_ROOT, GatewayProcess, RunningGateway, refused_port, serve_gateway
from support.sse import Frame, SseReader, events_of
from support.stores import stored_log
from support.waiting import wait_until_async

from agui_gateway.server.config import GatewayConfig

pytestmark = pytest.mark.redis


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis with an fsynced append-only file: it comes back with its data."""
    with private_redis(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


def test_unreachable_redis_at_start_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    with refused_port() as nowhere:
        port = nowhere.rsplit(":", 1)[1].strip("/")
        url = f"redis://:hunter2secret@127.0.0.1:{port}/0"
        result = subprocess.run(
            [sys.executable, "-c", "from agui_gateway.cli.main import main; main()", "serve", "--store", url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"redis://:***@127.0.0.1:{port}/0" in result.stderr
    assert "cannot reach Redis" in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout


def test_a_redis_without_persistence_is_reported_at_start(tmp_path: Path) -> None:
    # A private Redis configured without RDB and AOF, whatever the shared one does.
    prefix = f"agui-warn-{uuid.uuid4().hex}"
    with (
        private_redis(tmp_path / "redis", "--save", "", "--appendonly", "no") as volatile,
        GatewayProcess(tmp_path / "data", {}, "--store", volatile.url, "--redis-prefix", prefix) as gw,
    ):
        pass
    assert "Redis has no persistence" in gw.log_path.read_text()


def _restart(server: RedisServer) -> RedisServer:
    """The same Redis again: same port, same data (its fsynced append-only file)."""
    return RedisServer(server.directory, server.port, "--appendonly", "yes", "--appendfsync", "always")


async def _read_stream(client: httpx.AsyncClient, method: str, url: str, frames: list[Frame], **kwargs: Any) -> None:
    """Read an SSE stream to its end, every frame into ``frames`` as it comes."""
    parser = SseReader()
    async with client.stream(method, url, timeout=120, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_bytes():
            frames.extend(parser.feed(chunk))


async def _not_ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    response = await client.get("/readyz")
    return response.json() if response.status_code == 503 else None


def _metric(gw: RunningGateway, name: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"no metric {name}"
    return float(found[1])


# A failover's length, as the issue measured it: the scenario, not a synchronisation.
OUTAGE_S = 4.0


async def test_a_4_s_redis_outage_mid_run_is_ridden_out(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], durable_redis: RedisServer, official_client: OfficialClient
) -> None:
    """Redis killed mid-run for 4 s while the agent streams on: the run ends in its
    RUN_FINISHED, every event stored once with dense seqs; the caller gets every event and
    the terminal one; a watcher waits (heartbeats) and gets them once Redis is back."""
    scripted, agent_url = agent
    thread_id, run_id = "ride-out", f"r-{uuid.uuid4().hex[:8]}"
    sent = agent_run_events(thread_id, run_id, text_deltas=20)
    script = scripted.script(run_id, sent, hold_at=5)
    config = GatewayConfig(
        data_dir=tmp_path / "data",
        agents={"scripted": agent_url},
        redis_url=durable_redis.url,
        redis_prefix="ride-out",
        lease_ttl_s=1.0,  # shorter than the outage: the run takes its lapsed lease back
        heartbeat_s=0.2,
    )
    caller: list[Frame] = []
    watcher: list[Frame] = []
    restarted: RedisServer | None = None
    try:
        with serve_gateway(config) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                the_input = run_input(thread_id, run_id)
                calling = asyncio.create_task(
                    _read_stream(client, "POST", "/agents/scripted/run", caller, json=the_input)
                )
                await wait_until_async(lambda: len(stored_log(gw, thread_id)) >= 5, timeout=10)
                watching = asyncio.create_task(
                    _read_stream(client, "GET", f"/threads/{thread_id}/events", watcher, params={"after": "0"})
                )
                await wait_until_async(lambda: len(events_of(caller)) >= 5 and len(events_of(watcher)) >= 5)

                durable_redis.kill()
                killed = time.monotonic()
                script.release()  # the agent streams the rest: the gateway can store nothing now
                reason = await wait_until_async(lambda: _not_ready(client), timeout=10, what="/readyz 503")
                assert reason["reason"].startswith("store down")
                # The run reads its agent to the end and holds every event it could not store.
                await wait_until_async(
                    lambda: _metric(gw, "agui_gateway_outage_buffered_events") == len(sent) - 5,
                    timeout=10,
                    what="the run holding the rest of the agent's events",
                )
                assert not calling.done() and not watching.done()  # both streams wait
                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed)))  # wait-ok: the outage's length
                restarted = _restart(durable_redis)

                await asyncio.wait_for(calling, 30)  # the caller's stream ends, with the run
                stored = stored_log(gw, thread_id)
                assert_stored_as_sent(stored, [(the_input, sent)])  # each event once, seqs dense
                assert stored[-1]["event"]["type"] == "RUN_FINISHED"
                served_log = [served(record) for record in stored]
                assert events_of(caller) == served_log
                assert [f.id for f in caller if f.event is not None] == [r["seq"] for r in stored]
                await wait_until_async(lambda: len(events_of(watcher)) == len(stored), timeout=15)
                assert events_of(watcher) == served_log
                assert not any(f.event is not None and "error" in f.event for f in watcher)
                watching.cancel()
                assert_same_end(
                    "the caller's stream", official_client.replay(events_of(caller)), official_client.replay(stored)
                )
                await wait_until_async(lambda: httpx.get(gw.url + "/readyz").status_code == 200, timeout=15)
                assert _metric(gw, "agui_gateway_store_outages_total") >= 1
                assert _metric(gw, "agui_gateway_outage_buffered_events") == 0
                assert _metric(gw, "agui_gateway_store_outage_runs_ended_total") == 0
    finally:
        if restarted is not None:
            restarted.stop()


async def test_a_redis_outage_longer_than_the_budget_ends_the_run_with_the_run_error_its_caller_receives(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], durable_redis: RedisServer
) -> None:
    """Redis killed mid-run until after the outage budget (1.5 s): the run stops reading its
    agent; once Redis is back everything it read is stored, then its RUN_ERROR, once; its
    caller receives that RUN_ERROR before its stream ends. A watcher waited the budget, then
    got an ``error`` frame and its stream closed (it resumes by its last id)."""
    scripted, agent_url = agent
    thread_id, run_id = "outlasted", f"r-{uuid.uuid4().hex[:8]}"
    sent = agent_run_events(thread_id, run_id)[:-1]  # no terminal event: the agent streams on
    script = scripted.script(run_id, sent, hold_at=5)
    script.then = "trickle"  # keep-alive comments until the gateway leaves
    config = GatewayConfig(
        data_dir=tmp_path / "data",
        agents={"scripted": agent_url},
        redis_url=durable_redis.url,
        redis_prefix="outlasted",
        lease_ttl_s=1.0,
        heartbeat_s=0.2,
        store_outage_budget_s=1.5,
    )
    caller: list[Frame] = []
    watcher: list[Frame] = []
    restarted: RedisServer | None = None
    try:
        with serve_gateway(config) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                the_input = run_input(thread_id, run_id)
                calling = asyncio.create_task(
                    _read_stream(client, "POST", "/agents/scripted/run", caller, json=the_input)
                )
                await wait_until_async(lambda: len(stored_log(gw, thread_id)) >= 5, timeout=10)
                watching = asyncio.create_task(
                    _read_stream(client, "GET", f"/threads/{thread_id}/events", watcher, params={"after": "0"})
                )
                await wait_until_async(lambda: len(events_of(caller)) >= 5 and len(events_of(watcher)) >= 5)

                durable_redis.kill()
                script.release()
                # The watcher waits out the budget, then gets a clear error frame and its stream ends.
                await asyncio.wait_for(watching, 30)
                assert events_of(watcher)[-1]["error"] == "store_unavailable"
                health = await client.get("/healthz")
                assert health.status_code == 503 and health.json()["store"] == "down"
                refused = await client.post("/agents/scripted/run", json=run_input("elsewhere", "r-elsewhere"))
                assert refused.status_code == 503 and refused.json()["code"] == "storage_unavailable", refused.text
                # The run gives up on the agent once the budget is spent (the agent is still streaming).
                await wait_until_async(
                    lambda: _metric(gw, "agui_gateway_store_outage_runs_ended_total") == 1,
                    timeout=20,
                    what="the run ending for the outage",
                )
                assert not calling.done()  # its caller waits for the run's end
                restarted = _restart(durable_redis)

                await asyncio.wait_for(calling, 30)
                stored = stored_log(gw, thread_id)
                assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
                assert [r["event"] for r in stored[:-1]] == sent  # everything the agent sent, once
                error = stored[-1]["event"]
                assert error["type"] == "RUN_ERROR" and error["code"] == "gateway_store_outage", error
                assert sum(r["event"]["type"] == "RUN_ERROR" for r in stored) == 1
                caller_events = events_of(caller)
                assert caller_events == [served(record) for record in stored]  # the RUN_ERROR last

                # The thread takes runs again.
                next_id = f"r-{uuid.uuid4().hex[:8]}"
                scripted.script(next_id, agent_run_events(thread_id, next_id))
                again = await client.post("/agents/scripted/run", json=run_input(thread_id, next_id))
                assert again.status_code == 200, again.text
                await wait_until_async(
                    lambda: stored_log(gw, thread_id)[-1]["event"]["type"] in ("RUN_FINISHED", "RUN_ERROR"),
                    timeout=20,
                )
                last = stored_log(gw, thread_id)[-1]["event"]
                assert last["type"] == "RUN_FINISHED", last
    finally:
        if restarted is not None:
            restarted.stop()


async def test_a_drain_while_redis_is_away_still_ends_the_callers_stream_with_a_run_error(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], durable_redis: RedisServer
) -> None:
    """SIGTERM (drain 1 s) during an outage: the run cannot store its end, and the process
    stops; its caller still gets a RUN_ERROR (``gateway_shutdown``, without an id: it is not
    in the log) before its stream closes, as an unmodified HttpAgent needs."""
    scripted, agent_url = agent
    thread_id, run_id = "drained-away", f"r-{uuid.uuid4().hex[:8]}"
    sent = agent_run_events(thread_id, run_id)
    script = scripted.script(run_id, sent, hold_at=5)
    args = ("--store", durable_redis.url, "--redis-prefix", "drained-away", "--drain-timeout", "1")
    caller: list[Frame] = []
    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}, *args) as gw:
        try:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                the_input = run_input(thread_id, run_id)
                calling = asyncio.create_task(
                    _read_stream(client, "POST", "/agents/scripted/run", caller, json=the_input)
                )
                await wait_until_async(lambda: len(events_of(caller)) >= 5, timeout=20)
                durable_redis.kill()
                script.release()
                await wait_until_async(lambda: _not_ready(client), timeout=10, what="/readyz 503")
                assert gw.proc is not None
                gw.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(calling, 60)
        finally:
            scripted.release_all()
    events = events_of(caller)
    assert events[-1]["type"] == "RUN_ERROR" and events[-1]["code"] == "gateway_shutdown", events[-1]
    # Not stored: the caller's resume position stays its last stored event.
    assert [f for f in caller if f.event is not None][-1].id is None
    assert [e["type"] for e in events].count("RUN_ERROR") == 1


def _health(url: str) -> int:
    try:
        return httpx.get(url + "/healthz", timeout=3).status_code
    except httpx.HTTPError:
        return 0
