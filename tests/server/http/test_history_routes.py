"""``GET /threads/{t}/runs`` and ``GET /threads/{t}/events?run=R``: their refusals, and a
run in progress."""

from __future__ import annotations

from pathlib import Path

import httpx
from support.events import run_input, user_message
from support.servers import serve_gateway
from support.sse import collect, events_of

from agui_gateway.server.config import GatewayConfig


async def test_bad_time_travel_requests_are_clear_errors(tmp_path: Path) -> None:
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=0)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            body = run_input("t", "r1", [user_message("u1", "hello")])
            await collect(client, "POST", "/agents/demo/run", json=body)
            unknown = await client.get("/threads/t/events", params={"run": "nope"})
            empty = await client.get("/threads/t/events", params={"run": ""})
            with_position = await client.get("/threads/t/events", params={"run": "r1", "after": "1"})
            with_header = await client.get("/threads/t/events?run=r1", headers={"last-event-id": "1"})
            no_thread = (await client.get("/threads/other/runs")).json()
            branch = await collect(client, "GET", "/threads/t/events", params={"run": "r1"})
    assert unknown.status_code == 404 and "no run 'nope'" in unknown.json()["error"]
    assert empty.status_code == 400 and with_position.status_code == 400 and with_header.status_code == 400
    assert "resume position" in with_position.json()["error"]
    assert no_thread == {"threadId": "other", "epoch": None, "runs": []}
    events = events_of(branch)
    assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] == "RUN_FINISHED"
    assert all(f.id is None for f in branch)
