"""Checkpoints and the replay state: written at run ends, shared builds, crash recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import httpx
from support.agents import ScriptedAgent
from support.events import agent_run_events, read_log, run_input, served, user_message
from support.official_client import OfficialClient, assert_same_end
from support.servers import serve_gateway
from support.sse import collect, events_of, has_event, has_id
from support.waiting import wait_until_async

from agui_gateway import SnapshotCompactor
from agui_gateway.server.config import GatewayConfig
from agui_gateway.store.base import NewEvent
from agui_gateway.store.file import FileStore
from agui_gateway.store.file.checkpoint import read_checkpoint


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_checkpoint_follows_each_run_and_the_log_is_only_appended(
    agent: tuple[ScriptedAgent, str], tmp_path: Path, official_client: OfficialClient
) -> None:
    scripted, url = agent
    data = tmp_path / "data"
    thread_dir = data / "threads" / "cp"
    config = GatewayConfig(data_dir=data, agents={"scripted": url})
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            previous_log = b""
            for i in range(3):
                scripted.script(f"cp{i}", agent_run_events("cp", f"cp{i}"))
                await collect(
                    client, "POST", "/agents/scripted/run", json=run_input("cp", f"cp{i}", [user_message(f"u{i}", "q")])
                )
                log_bytes = (thread_dir / "log.jsonl").read_bytes()
                assert log_bytes.startswith(previous_log), "the raw log is only ever appended to"
                previous_log = log_bytes
                raw = [served(r) for r in read_log(data, "cp")]
                # Written right after the run's last event is stored (the caller's stream
                # does not wait for it).
                checkpoint = await wait_until_async(
                    lambda: (cp := read_checkpoint(thread_dir)) is not None and cp.seq == len(raw) and cp  # noqa: B023
                )
                # What the checkpoint restores replays, under the official client, to
                # where the raw log ends.
                restored = SnapshotCompactor.loads(checkpoint.data)
                assert_same_end(
                    f"the checkpoint after run {i}",
                    official_client.replay(restored.replay_events()),
                    official_client.replay(raw),
                )

            async def metrics() -> str:
                return (await client.get("/metrics")).text

            # One checkpoint write per run, and one build (the first run): never a rebuild.
            text = await wait_until_async(lambda: _written(metrics(), 3))
    assert _metric(text, "agui_gateway_checkpoint_builds_total") == 1


async def _written(metrics: Awaitable[str], count: int) -> str | None:
    text = await metrics
    return text if _metric(text, "agui_gateway_checkpoint_writes_total") == count else None


async def test_concurrent_first_readers_share_one_build(
    agent: tuple[ScriptedAgent, str], tmp_path: Path, official_client: OfficialClient
) -> None:
    scripted, url = agent
    data = tmp_path / "data"
    config = GatewayConfig(data_dir=data, agents={"scripted": url})
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            for i in range(2):
                scripted.script(f"sf{i}", agent_run_events("sf", f"sf{i}", text_deltas=40))
                await collect(client, "POST", "/agents/scripted/run", json=run_input("sf", f"sf{i}"))
    latest = len(read_log(data, "sf"))
    with serve_gateway(config) as gw:  # a new process-like gateway: nothing loaded yet
        async with httpx.AsyncClient(base_url=gw.url, timeout=20, limits=httpx.Limits(max_connections=None)) as client:
            replays = await asyncio.gather(
                *(collect(client, "GET", "/threads/sf/events", until=has_id(latest)) for _ in range(30))
            )
            metrics = (await client.get("/metrics")).text
    assert _metric(metrics, "agui_gateway_checkpoint_builds_total") == 1
    assert all(events_of(r) == events_of(replays[0]) for r in replays)
    assert_same_end(
        "the shared build's replay",
        official_client.replay(events_of(replays[0])),
        official_client.replay([served(r) for r in read_log(data, "sf")]),
    )


async def test_a_run_left_open_by_a_crash_is_closed_at_first_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data)
    await store.open()
    started = agent_run_events("crashed", "x1")[:6]  # RUN_STARTED .. mid-message, no terminal
    await store.append("crashed", [NewEvent(e, "x1", "agent") for e in started])
    await store.close()
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            frames = await collect(
                client,
                "GET",
                "/threads/crashed/events",
                params={"after": "6"},
                until=has_event(lambda e: e["type"] == "RUN_ERROR"),
            )
            snapshot = (await client.get("/threads/crashed/snapshot")).json()
            metrics = (await client.get("/metrics")).text
    stored = read_log(data, "crashed")
    assert [f.id for f in frames if f.event is not None] == [7]
    assert stored[-1]["seq"] == 7 and stored[-1]["source"] == "gateway" and stored[-1]["runId"] == "x1"
    assert stored[-1]["event"] == events_of(frames)[0]
    assert stored[-1]["event"]["code"] == "gateway_restarted"
    assert snapshot["running"] is False and snapshot["seq"] == 7
    assert _metric(metrics, "agui_gateway_recovered_runs_total") == 1
