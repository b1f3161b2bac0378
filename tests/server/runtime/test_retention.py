"""Retention on a real server: idle threads are deleted by the background sweep, a thread
with a run in progress never is; the setting from every source; the sweep's rounds are
bounded pages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, user_message
from support.servers import serve_scripted_gateway
from support.sse import collect, events_of
from support.waiting import wait_until_async

from agui_gateway.cli.serve import build_config
from agui_gateway.server.config import ConfigError, load_config
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.deletion import ThreadDeleter
from agui_gateway.server.runtime.manager import RunManager
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.server.runtime.retention import PAGE, RetentionSweep
from agui_gateway.store.base import NewEvent
from agui_gateway.store.file import FileStore
from agui_gateway.upstream.agent_http import UpstreamTimeouts

RETENTION_S = 1.0  # short: the threads of the test go idle within it
LEASE_TTL_S = 0.4  # Redis wants a retention of at least two lease ttls


async def _listed(client: httpx.AsyncClient) -> set[str]:
    return {row["threadId"] for row in (await client.get("/threads")).json()["threads"]}


async def test_idle_threads_are_deleted_and_a_thread_with_a_run_in_progress_is_kept(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> None:
    scripted, url = agent
    busy = scripted.script("busy-1", agent_run_events("t-busy", "busy-1", tools=0), hold_at=3)
    scripted.script("idle-1", agent_run_events("t-idle", "idle-1", tools=0))
    overrides = {**store_overrides, "retention_s": RETENTION_S, "lease_ttl_s": LEASE_TTL_S, "heartbeat_s": 0.2}
    try:
        with serve_scripted_gateway(tmp_path / "data", url, **overrides) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
                # The busy thread's run starts first: its last activity is the older one.
                caller = asyncio.create_task(
                    collect(client, "POST", "/agents/scripted/run", json=run_input("t-busy", "busy-1"))
                )
                await wait_until_async(lambda: _running(client, "t-busy"))
                body = run_input("t-idle", "idle-1", [user_message("u1", "hi")])
                assert events_of(await collect(client, "POST", "/agents/scripted/run", json=body))
                assert await _listed(client) == {"t-busy", "t-idle"}

                await wait_until_async(lambda: _gone(client, "t-idle"), what="the idle thread deleted")
                # Idle for longer than the one deleted, but its run is in progress: kept.
                assert await _running(client, "t-busy")
                refused = await client.get("/threads/t-idle/snapshot")
                assert (refused.status_code, refused.json()["code"]) == (404, "thread_not_found")

                busy.release()  # the run ends; then the thread idles and goes too
                assert events_of(await asyncio.wait_for(caller, 10))[-1]["type"] == "RUN_FINISHED"
                await wait_until_async(lambda: _gone(client, "t-busy"), what="the busy thread deleted once idle")
                if not store_overrides:  # on Redis the keys' own expiry may come first
                    assert gw.gateway.retention.deleted == 2
    finally:
        busy.release()


async def _running(client: httpx.AsyncClient, thread_id: str) -> bool:
    response = await client.get(f"/threads/{thread_id}/snapshot")
    return response.status_code == 200 and bool(response.json()["running"])


async def _gone(client: httpx.AsyncClient, thread_id: str) -> bool:
    return thread_id not in await _listed(client)


async def test_a_sweep_round_is_one_bounded_page(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", fsync="never")
    await store.open()
    try:
        metrics = GatewayMetrics()
        threads = ThreadRegistry(store, metrics)
        deleter = ThreadDeleter(store, threads, RunManager(metrics, UpstreamTimeouts()))
        total = PAGE + 10
        for index in range(total):
            event = {"type": "CUSTOM", "name": "n", "value": index}
            await store.append(f"t-{index:04d}", [NewEvent(event, None, "gateway")])
        sweep = RetentionSweep(store, deleter, retention_s=0.001)
        # Every thread is idle by now (its one record is older than a millisecond)...
        await wait_until_async(lambda: _all_idle(store))
        assert await sweep.round() is False  # ...but one round deletes one page of them
        assert sweep.deleted == PAGE
        assert len(await store.list_threads()) == total - PAGE
        assert await sweep.round() is True  # the pass ends with the rest
        assert sweep.deleted == total and await store.list_threads() == []
    finally:
        await store.close()


async def _all_idle(store: FileStore) -> bool:
    import time

    page = await store.idle_threads(int(time.time() * 1000) - 1, limit=1)
    return bool(page.threads)


def test_the_retention_setting_from_every_source(tmp_path: Path) -> None:
    assert load_config().retention_s is None  # off by default
    config_file = tmp_path / "gateway.toml"
    config_file.write_text('retention = "30d"\n')
    assert load_config(config_file).retention_s == 30 * 86400
    assert load_config(env={"AGUI_GATEWAY_RETENTION": "12h"}).retention_s == 12 * 3600
    flags: dict[str, Any] = {
        "config_file": config_file,
        "host": None,
        "port": None,
        "data": None,
        "agents": (),
        "demo": False,
        "insecure": False,
        "fsync": None,
        "heartbeat": None,
        "demo_pace": None,
    }
    assert build_config(**flags, retention="90s").retention_s == 90
    assert build_config(**flags, retention="15m").retention_s == 900
    assert build_config(**flags, retention="off").retention_s is None
    for bad in ("30", "1w", "-5s", "soon", "0s"):
        if bad == "30":
            assert build_config(**flags, retention=bad).retention_s == 30  # a bare number is seconds
            continue
        with pytest.raises(ConfigError, match="retention"):
            build_config(**flags, retention=bad)
