"""The gateway's HTTP API on a real server: runs, streams, errors, stop, listings, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, user_message
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import collect, events_of, has_event
from support.stores import stored_bytes, stored_log
from support.waiting import wait_until_async


@pytest.fixture
def gateway(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> Iterator[RunningGateway]:
    """The gateway on the file store, then on Redis: every test here runs on both."""
    with serve_scripted_gateway(
        tmp_path / "data", agent[1], heartbeat_s=0.2, max_body_bytes=64 * 1024, **store_overrides
    ) as gw:
        yield gw


def _types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def test_run_streams_the_agents_events_with_dense_ids_and_records_the_user_message(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    script = agent_run_events("t-run", "r1")
    answer = scripted.script("r1", script)
    body = run_input("t-run", "r1", [user_message("u1", "hello")])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        frames = await collect(client, "POST", "/agents/scripted/run", json=body)
    events = events_of(frames)
    recorded = {
        "threadId": "t-run",
        "runId": "r1",
        "messages": [user_message("u1", "hello")],
        "tools": [],
        "context": [],
    }
    # One run: the agent's own RUN_STARTED carries the caller's new message as its input.
    assert script[0]["type"] == "RUN_STARTED" and "input" not in script[0]
    assert events[0] == {**script[0], "input": recorded}
    assert events[1:] == script[1:]
    assert [f.id for f in frames if f.event is not None] == list(range(1, len(events) + 1))
    stored = stored_log(gateway, "t-run")
    assert [r["seq"] for r in stored] == list(range(1, len(events) + 1))
    assert [r["source"] for r in stored] == ["agent"] * len(script)
    assert [r["event"] for r in stored] == script  # the agent's events exactly as sent
    assert stored[0]["gateway"] == {"input": recorded}  # what the gateway adds, beside the event
    assert all("gateway" not in r for r in stored[1:])
    assert answer.requests[0] == body  # forwarded unchanged


async def test_second_run_records_only_messages_the_thread_does_not_have(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    scripted.script("a1", agent_run_events("t-two", "a1", tools=0))
    scripted.script("a2", agent_run_events("t-two", "a2", tools=1))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        first = run_input("t-two", "a1", [user_message("u1", "one")])
        await collect(client, "POST", "/agents/scripted/run", json=first)
        snapshot = (await client.get("/threads/t-two/snapshot")).json()
        history = snapshot["messages"] + [user_message("u2", "two")]
        frames = await collect(client, "POST", "/agents/scripted/run", json=run_input("t-two", "a2", history))
    first = events_of(frames)[0]
    assert first["type"] == "RUN_STARTED" and first["input"]["messages"] == [user_message("u2", "two")]
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        snapshot = (await client.get("/threads/t-two/snapshot")).json()
    ids = [m["id"] for m in snapshot["messages"]]
    assert ids.index("u1") < ids.index("a1-m1") < ids.index("u2") < ids.index("a2-m1")
    assert snapshot["running"] is False and snapshot["seq"] == len(stored_log(gateway, "t-two"))


async def test_run_without_new_messages_stores_only_the_agents_events(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    script = agent_run_events("t-plain", "p1", tools=0)
    scripted.script("p1", script)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        frames = await collect(client, "POST", "/agents/scripted/run", json=run_input("t-plain", "p1"))
    assert events_of(frames) == script
    assert {r["source"] for r in stored_log(gateway, "t-plain")} == {"agent"}


async def test_second_run_on_a_thread_with_an_open_run_is_409_and_stop_ends_the_run(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    held = scripted.script("h1", agent_run_events("t-409", "h1"), hold_at=5)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        # The caller disconnects once the run is under way; the run goes on without it.
        await collect(
            client,
            "POST",
            "/agents/scripted/run",
            json=run_input("t-409", "h1"),
            until=lambda frames: len(events_of(frames)) >= 5,
        )
        second = await client.post("/agents/scripted/run", json=run_input("t-409", "h2"))
        assert second.status_code == 409 and "run in progress" in second.json()["error"]
        listing = (await client.get("/threads")).json()["threads"]
        assert [t["running"] for t in listing if t["threadId"] == "t-409"] == [True]
        # A stop naming another run stops nothing.
        other = await client.post("/threads/t-409/stop", params={"runId": "h0"})
        assert other.status_code == 409 and other.json()["code"] == "not_the_open_run", other.text
        assert other.json()["details"] == {"runId": "h0", "openRunId": "h1"}
        assert (await client.get("/threads/t-409/runs")).json()["runs"][-1]["status"] == "running"
        assert (await client.post("/threads/t-409/stop", params={"runId": ""})).status_code == 400
        # A watcher connected now sees the stop's end live: the message the agent left
        # open (it held after its 5th event, inside h1-m1) closed, then AG-UI 1.0's
        # cancelled outcome.
        watcher = collect(
            client,
            "GET",
            "/threads/t-409/events",
            params={"after": "5"},
            until=has_event(lambda e: e["type"] == "RUN_FINISHED"),
        )
        watching = asyncio.ensure_future(watcher)
        stopped = await client.post("/threads/t-409/stop", params={"runId": "h1"})
        assert stopped.status_code == 200, stopped.text
        seen = events_of(await watching)
        assert seen == [
            {"type": "TEXT_MESSAGE_END", "messageId": "h1-m1"},
            {"type": "RUN_FINISHED", "threadId": "t-409", "runId": "h1", "outcome": {"type": "cancelled"}},
        ]
        stored = stored_log(gateway, "t-409")
        assert [(r["source"], r["event"]) for r in stored[-2:]] == [("gateway", e) for e in seen]
        epoch = (await client.get("/threads/t-409/snapshot")).json()["epoch"]
        assert stopped.json() == {"stopped": True, "runId": "h1", "seq": stored[-1]["seq"], "epoch": epoch}
        assert (await client.get("/threads/t-409/runs")).json()["runs"][-1]["status"] == "cancelled"
        assert (await client.post("/threads/t-409/stop")).status_code == 409
        assert (await client.post("/threads/t-409/stop", params={"runId": "h1"})).status_code == 409
        # The thread accepts runs again.
        scripted.script("h3", agent_run_events("t-409", "h3", tools=0))
        frames = await collect(client, "POST", "/agents/scripted/run", json=run_input("t-409", "h3"))
        assert events_of(frames)[-1]["type"] == "RUN_FINISHED"
    held.release()


async def test_empty_thread_stream_stays_open_until_the_first_run(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    script = agent_run_events("t-empty", "e1", tools=1)
    scripted.script("e1", script)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        watching = asyncio.ensure_future(
            collect(client, "GET", "/threads/t-empty/events", until=has_event(lambda e: e["type"] == "RUN_FINISHED"))
        )
        # Heartbeats show the stream is open and waiting (interval 0.2 s in this config).
        await wait_until_async(lambda: gateway.gateway.metrics.subscribers._value.get() >= 1)
        run = await collect(client, "POST", "/agents/scripted/run", json=run_input("t-empty", "e1"))
        frames = await watching
    assert events_of(frames) == events_of(run) == script
    assert [f.id for f in frames if f.event is not None] == list(range(1, len(script) + 1))


async def test_heartbeat_comments_on_an_idle_stream(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        frames = await collect(
            client, "GET", "/threads/t-idle/events", until=lambda fs: sum(f.comment == "ping" for f in fs) >= 2
        )
    assert all(f.event is None for f in frames)


@pytest.mark.parametrize("thread_id", ["..", ".", "a" * 129, "bad id", "semi;colon", "ünï"])
async def test_bad_thread_ids_are_400(gateway: RunningGateway, thread_id: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post("/agents/scripted/run", json=run_input(thread_id, "r"))
        assert response.status_code == 400 and "thread id" in response.json()["error"]
        for path in ("events", "snapshot", "log.jsonl"):
            got = await client.get(f"/threads/{httpx.URL(path=thread_id).path}/{path}")
            # '.' and '..' are normalised away by the URL itself: /threads/events names a
            # thread "events", whose only route is DELETE /threads/{thread} (405)
            if got.status_code not in (404, 405):
                assert got.status_code == 400, (path, got.text)
                assert "thread id" in got.json()["error"]


async def test_path_traversal_never_reaches_the_disk(gateway: RunningGateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        raw = await client.get("/threads/..%2F..%2Fetc/log.jsonl")
        assert raw.status_code in (400, 404)
        assert raw.headers["content-type"].startswith("application/json")
    assert not (tmp_path / "etc").exists()


async def test_oversized_and_invalid_bodies(gateway: RunningGateway) -> None:
    big = run_input("t-big", "r", [user_message("u", "x" * 70_000)])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        declared = await client.post("/agents/scripted/run", json=big)
        assert declared.status_code == 413 and "limit" in declared.json()["error"]

        async def chunked():  # no Content-Length: the limit applies while reading
            data = orjson.dumps(big)
            for i in range(0, len(data), 8192):
                yield data[i : i + 8192]

        as_json = {"content-type": "application/json"}
        streamed = await client.post("/agents/scripted/run", content=chunked(), headers=as_json)
        assert streamed.status_code == 413
        not_json = await client.post("/agents/scripted/run", content=b"{nope", headers=as_json)
        assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
        not_object = await client.post("/agents/scripted/run", json=[1, 2])
        assert not_object.status_code == 400
        invalid = await client.post("/agents/scripted/run", json={"threadId": "t", "messages": "no"})
        assert invalid.status_code == 422 and invalid.json()["details"]
        unknown = await client.post("/agents/nobody/run", json=run_input("t", "r"))
        assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
        bad_after = await client.get("/threads/t/events", params={"after": "-1"})
        assert bad_after.status_code == 400
        bad_header = await client.get("/threads/t/events", headers={"last-event-id": "x1"})
        assert bad_header.status_code == 400
    assert stored_bytes(gateway, "t-big") == b""


async def test_log_jsonl_listing_and_metrics(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    scripted.script("l1", agent_run_events("t-log", "l1"))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await collect(client, "POST", "/agents/scripted/run", json=run_input("t-log", "l1", [user_message("u", "q")]))
        file_bytes = stored_bytes(gateway, "t-log")
        whole = await client.get("/threads/t-log/log.jsonl")
        assert whole.content == file_bytes
        tail = await client.get("/threads/t-log/log.jsonl", params={"after": "10"})
        assert tail.content == b"".join(file_bytes.splitlines(keepends=True)[10:])
        listing = (await client.get("/threads")).json()["threads"]
        entry = next(t for t in listing if t["threadId"] == "t-log")
        assert entry["events"] == len(file_bytes.splitlines())
        assert entry["bytes"] == len(file_bytes) and entry["running"] is False
        assert isinstance(entry["lastActivity"], int)
        await collect(client, "GET", "/threads/t-log/events", until=has_event(lambda e: e["type"] == "RUN_FINISHED"))
        metrics = (await client.get("/metrics")).text
    events = len(file_bytes.splitlines())
    # The caller's message rides on the agent's RUN_STARTED: the gateway stored no event of its own.
    assert f'agui_gateway_events_stored_total{{source="agent"}} {float(events)}' in metrics
    assert 'agui_gateway_events_stored_total{source="gateway"}' not in metrics
    assert 'agui_gateway_replays_total{kind="fresh"} 1.0' in metrics
    assert "agui_gateway_checkpoint_writes_total 1.0" in metrics  # once, when the run ended
    assert "agui_gateway_subscribers 0.0" in metrics or "agui_gateway_subscribers 1.0" in metrics
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"


async def test_resume_beyond_the_latest_event_is_a_clear_400(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        for headers, params in (({"Last-Event-ID": "5"}, {}), ({}, {"after": "5"})):
            response = await client.get("/threads/never-used/events", headers=headers, params=params)
            assert response.status_code == 400
            assert "cannot resume after event 5" in response.json()["error"]
            assert "has 0 event(s)" in response.json()["error"]
