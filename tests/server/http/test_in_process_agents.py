"""Agents nobody here wrote, made durable: pydantic-ai's AG-UI adapter over its
``FunctionModel``, run through the gateway in process (``module:app`` and the library
API) and over HTTP; the official client's view of the stored thread equals the
caller's. Also: an in-process app's failures become stored RUN_ERRORs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from support import pydantic_agent
from support.events import read_log, run_input, user_message
from support.official_client import Held, assert_same_end, run_node_script
from support.servers import GatewayProcess, RunningGateway, serve_app, serve_gateway
from support.sse import collect, events_of

from agui_gateway.server.config import GatewayConfig

CALLER = r"""
import { HttpAgent } from "@ag-ui/client";
const [url, threadId] = process.argv.slice(1);
const agent = new HttpAgent({ url, threadId });
agent.state = { cities: [] };
const errors = [];
const subscriber = { onRunFailed: ({ error }) => { errors.push(String(error)); } };
agent.messages = [{ id: "u1", role: "user", content: "Please add Lisbon" }];
await agent.runAgent({ runId: "r1" }, subscriber);
agent.messages.push({ id: "u2", role: "user", content: "Now add Oslo" });
await agent.runAgent({ runId: "r2" }, subscriber);
process.stdout.write(
  JSON.stringify({ messages: agent.messages, state: agent.state, pendingInterrupts: agent.pendingInterrupts, errors }),
);
"""


def replay_complete(frames: list[Any]) -> bool:
    """A fresh replay is complete at its first frame with an id (the thread's latest seq)."""
    return bool(frames) and frames[-1].id is not None


def run_caller(url: str, thread_id: str) -> dict[str, Any]:
    result: dict[str, Any] = run_node_script(CALLER, url, thread_id)
    return result


@pytest.fixture(params=["module-spec", "library-api", "http"])
def trip_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningGateway]:
    """The pydantic-ai agent behind the gateway as agent ``trip``, three ways."""
    data = tmp_path / "data"
    if request.param == "module-spec":
        with serve_gateway(GatewayConfig(data_dir=data, agents={"trip": "support.pydantic_agent:app"})) as gw:
            yield gw
    elif request.param == "library-api":
        with serve_gateway(GatewayConfig(data_dir=data), apps={"trip": pydantic_agent.app}) as gw:
            yield gw
    else:
        with (
            serve_app(pydantic_agent.app) as agent_url,
            serve_gateway(GatewayConfig(data_dir=data, agents={"trip": agent_url + "/"})) as gw,
        ):
            yield gw


async def test_third_party_agent_through_the_gateway_ends_where_the_caller_ends(
    trip_gateway: RunningGateway, official_client: Any
) -> None:
    caller = await asyncio.to_thread(run_caller, f"{trip_gateway.url}/agents/trip/run", "trip-1")
    assert caller["errors"] == []
    assert caller["state"] == {"cities": ["Lisbon", "Oslo"]}
    tool_results = [m for m in caller["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_results] == [
        "Lisbon is on the trip (1 cities)",
        "Oslo is on the trip (2 cities)",
    ]
    async with httpx.AsyncClient(base_url=trip_gateway.url, timeout=30) as client:
        fresh = await collect(client, "GET", "/threads/trip-1/events", until=replay_complete)
        snapshot = (await client.get("/threads/trip-1/snapshot")).json()
    held = Held(caller["messages"], caller["state"], caller["pendingInterrupts"])
    assert_same_end("a client connecting afterwards", official_client.replay(events_of(fresh)), held)
    assert (snapshot["messages"], snapshot["state"]) == (caller["messages"], caller["state"])


def _failing_app(when: str) -> Starlette:
    async def run(request: Request) -> StreamingResponse:
        await request.body()
        if when == "before":
            raise RuntimeError("no model configured")

        async def body() -> Any:
            yield b'data: {"type":"RUN_STARTED","threadId":"f","runId":"r1"}\n\n'
            raise RuntimeError("the tool crashed")

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/", run, methods=["POST"])])


@pytest.mark.parametrize(("when", "code"), [("before", "upstream_http_status"), ("during", "upstream_disconnected")])
async def test_an_exception_in_an_in_process_agent_is_a_stored_run_error(tmp_path: Path, when: str, code: str) -> None:
    with serve_gateway(GatewayConfig(data_dir=tmp_path), apps={"broken": _failing_app(when)}) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            frames = await collect(
                client, "POST", "/agents/broken/run", json=run_input("f", "r1", [user_message("u1", "hi")])
            )
    events = events_of(frames)
    assert events[-1]["type"] == "RUN_ERROR" and events[-1]["code"] == code
    stored = [record["event"] for record in read_log(tmp_path, "f")]
    assert stored[-1] == events[-1]
    if when == "during":
        assert {"type": "RUN_STARTED", "threadId": "f", "runId": "r1"} in stored


async def test_serve_mounts_a_module_app_from_the_command_line(tmp_path: Path) -> None:
    tests_dir = Path(__file__).resolve().parents[2]
    with GatewayProcess(
        tmp_path / "data", {"trip": "support.pydantic_agent:app/"}, env={"PYTHONPATH": str(tests_dir)}
    ) as gw:
        caller = await asyncio.to_thread(run_caller, f"{gw.url}/agents/trip/run", "cli-1")
    assert caller["errors"] == [] and caller["state"] == {"cities": ["Lisbon", "Oslo"]}


async def test_capabilities_advertise_resumable_and_keep_what_the_agent_declares(tmp_path: Path) -> None:
    from agui_gateway.server.config import AgentOptions

    options = {"trip": AgentOptions(history="gateway", capabilities={"tools": {"supported": True}})}
    config = GatewayConfig(data_dir=tmp_path, agents={"trip": "support.pydantic_agent:app"}, agent_options=options)
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            caps = (await client.get("/agents/trip/capabilities")).json()
            missing = await client.get("/agents/nobody/capabilities")
    assert caps["transport"] == {"streaming": True, "resumable": True}
    assert caps["tools"] == {"supported": True}
    gateway_part = caps["custom"]["aguiGateway"]
    assert gateway_part["history"] == "gateway" and gateway_part["inProcess"] is True
    assert gateway_part["resume"]["header"] == "Last-Event-ID"
    assert missing.status_code == 404
