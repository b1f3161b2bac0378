"""An unmodified official ``HttpAgent`` (Node, @ag-ui/client 1.0.0) pointed at the gateway.

Two conversation turns against the built-in demo agent, served by the gateway
itself under /demo/agent (``--demo``): the official client ends with exactly the
thread's messages and state as the gateway stores them, no message twice; then a
second official client (a reload) replays the history through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.events import run_input
from support.official_client import Held, OfficialClient, assert_same_end, run_node_script
from support.servers import RunningGateway, serve_gateway
from support.sse import collect, events_of

from agui_gateway.server.config import GatewayConfig

SCRIPT = r"""
import { HttpAgent } from "@ag-ui/client";
const [url, threadId] = process.argv.slice(1);
const agent = new HttpAgent({ url, threadId });
const errors = [];
const subscriber = { onRunFailed: ({ error }) => { errors.push(String(error)); } };
agent.messages = [{ id: "node-u1", role: "user", content: "What is the weather in Paris?" }];
await agent.runAgent({ runId: "node-r1" }, subscriber);
agent.messages.push({ id: "node-u2", role: "user", content: "And a plan for tomorrow?" });
await agent.runAgent({ runId: "node-r2" }, subscriber);
process.stdout.write(
  JSON.stringify({ messages: agent.messages, state: agent.state, pendingInterrupts: agent.pendingInterrupts, errors }),
);
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=0)
    with serve_gateway(config) as gw:
        yield gw


def run_node(*args: str) -> dict:
    result: dict = run_node_script(SCRIPT, *args)
    return result


async def test_official_http_agent_runs_through_the_gateway(
    gateway: RunningGateway, official_client: OfficialClient
) -> None:
    result = await _run_in_thread(f"{gateway.url}/agents/demo/run", "node-thread")
    assert result["errors"] == []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        snapshot = (await client.get("/threads/node-thread/snapshot")).json()
        fresh = await collect(client, "POST", "/agents/demo/connect", json=run_input("node-thread", "c"))
    ids = [m["id"] for m in result["messages"]]
    assert len(ids) == len(set(ids)), "a message arrived twice"
    assert result["messages"] == snapshot["messages"]
    assert result["state"] == snapshot["state"]
    assert ids.index("node-u1") < ids.index("node-u2")
    # A reload: the official client replaying the gateway's fresh replay ends the same.
    caller = Held(result["messages"], result["state"], result["pendingInterrupts"])
    assert_same_end("a reload (fresh /connect)", official_client.replay(events_of(fresh)), caller)


async def _run_in_thread(url: str, thread_id: str) -> dict:
    import asyncio

    return await asyncio.to_thread(run_node, url, thread_id)


async def test_serve_demo_walkthrough(tmp_path: Path) -> None:
    """`agui-gateway serve --demo`, then the README's walk-through: run, watch, resume, snapshot."""
    from support.events import user_message
    from support.servers import GatewayProcess
    from support.sse import has_id

    with GatewayProcess(tmp_path / "data", {}, "--demo", "--demo-pace", "0") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            body = run_input("demo-1", "run-1", [user_message("u1", "Weather in Paris?")])
            run = await collect(client, "POST", "/agents/demo/run", json=body)
            events = events_of(run)
            assert events[-1]["type"] == "RUN_FINISHED"
            latest = [f.id for f in run if f.id is not None][-1]
            watched = await collect(client, "GET", "/threads/demo-1/events", until=has_id(latest))
            resumed = await collect(
                client, "GET", "/threads/demo-1/events", headers={"last-event-id": "10"}, until=has_id(latest)
            )
            snapshot = (await client.get("/threads/demo-1/snapshot")).json()
    assert events_of(resumed) == events[10:]
    assert [e["type"] for e in events_of(watched)][:2] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
    assert snapshot["messages"][0] == user_message("u1", "Weather in Paris?") and snapshot["seq"] == latest
