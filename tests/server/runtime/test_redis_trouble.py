"""The gateway when Redis is unreachable at start, or lost while serving, or not persistent.

Each test runs its own ``redis-server`` (so it can stop and restart it).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input
from support.redis_fixtures import private_redis
from support.redis_servers import RedisServer
from support.servers import REPO_ROOT, GatewayProcess, refused_port, serve_gateway
from support.sse import SseReader
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


async def test_redis_lost_while_serving_then_back(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], durable_redis: RedisServer
) -> None:
    scripted, agent_url = agent
    thread_id, run_id = "lost", f"r-{uuid.uuid4().hex[:8]}"
    script = scripted.script(run_id, agent_run_events(thread_id, run_id), hold_at=5)
    config = GatewayConfig(
        data_dir=tmp_path / "data",
        agents={"scripted": agent_url},
        redis_url=durable_redis.url,
        redis_prefix="lost",
        lease_ttl_s=1.0,
        heartbeat_s=0.2,
    )
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            run = asyncio.create_task(
                client.post("/agents/scripted/run", json=run_input(thread_id, run_id), timeout=60)
            )
            await wait_until_async(lambda: len(stored_log(gw, thread_id)) >= 5, timeout=10)
            before = stored_log(gw, thread_id)
            frames = []
            parser = SseReader()
            async with client.stream("GET", f"/threads/{thread_id}/events", params={"after": "0"}) as response:
                chunks = response.aiter_bytes()
                # The stream's headers go out before its replay reads the store: Redis stops only
                # once the reader holds what was stored, or the replay itself meets the outage.
                while sum(f.event is not None for f in frames) < len(before):
                    frames.extend(parser.feed(await anext(chunks)))
                durable_redis.stop()
                script.release()  # the agent goes on; the gateway can store nothing now
                async for chunk in chunks:
                    frames.extend(parser.feed(chunk))
            # The reader got what was stored, then an error frame, and its stream closed.
            events = [f.event for f in frames if f.event is not None]
            assert events[: len(before)] == [r["event"] for r in before]
            assert events[-1]["error"] == "store_unavailable"
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["store"] == "down"
            await run  # the run's caller is not left hanging
            # Redis comes back (same port, same data): the run gets its stored RUN_ERROR.
            restarted = RedisServer(durable_redis.directory, durable_redis.port, "--appendonly", "yes")
            try:
                await wait_until_async(lambda: _health(gw.url) == 200, timeout=15)
                stored = await wait_until_async(
                    lambda: (log := stored_log(gw, thread_id)) and log[-1]["event"]["type"] == "RUN_ERROR" and log,
                    timeout=20,
                )
                assert [r["event"] for r in stored[: len(before)]] == [r["event"] for r in before]
                assert sum(r["event"]["type"] == "RUN_ERROR" for r in stored) == 1
                # The thread takes runs again.
                next_id = f"r-{uuid.uuid4().hex[:8]}"
                scripted.script(next_id, agent_run_events(thread_id, next_id))
                # At once, though the sweep that stored the RUN_ERROR may hold the lease still.
                again = await client.post("/agents/scripted/run", json=run_input(thread_id, next_id))
                assert again.status_code == 200, again.text
                await wait_until_async(
                    lambda: stored_log(gw, thread_id)[-1]["event"]["type"] in ("RUN_FINISHED", "RUN_ERROR"),
                    timeout=20,
                )
                last = stored_log(gw, thread_id)[-1]["event"]
                assert last["type"] == "RUN_FINISHED", last
            finally:
                restarted.stop()


def _health(url: str) -> int:
    try:
        return httpx.get(url + "/healthz", timeout=3).status_code
    except httpx.HTTPError:
        return 0
