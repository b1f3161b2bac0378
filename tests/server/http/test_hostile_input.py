"""Hostile input without loss, through the real gateway and a real (hostile) agent.

* An agent event nested too deep to be stored again is replaced by a stored, counted
  ``agui_gateway.event_rejected`` record; the events around it (same batch) are kept
  and the run goes on.
* A state built deeper and deeper by small STATE_DELTAs never makes the thread
  unreadable (``/snapshot``, fresh ``/events``, the checkpoint; after a restart too).
* Request input: resume ids of thousands of digits, bodies nested too deep (messages,
  state, forwardedProps) are clear 4xx and leave nothing on disk.
* An agent streaming garbage: every bad line counted, a bounded number logged.
* Time limits: a run's total duration and the silence between two reads, each a
  stored RUN_ERROR with its own code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from support.agents import sse
from support.events import nested, read_log, run_input, user_message
from support.servers import RunningGateway, serve_app, serve_gateway
from support.sse import collect, events_of

from agui_gateway.protocol.limits import MAX_DEPTH, depth_exceeds
from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.runtime.bad_input import LINES_PER_WINDOW
from agui_gateway.upstream.agent_http import UpstreamTimeouts

DEEP = 300  # the depth the issue used: valid JSON, beyond what orjson encodes (254)


def deep_sse(depth: int) -> bytes:
    """A CUSTOM event nested ``depth`` levels, encoded by hand (orjson refuses to)."""
    return b'data: {"type":"CUSTOM","name":"deep","value":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}\n\n"


def _hostile_agent() -> Starlette:
    async def handle(request: Request) -> Response:
        body = await request.json()
        kind = request.path_params["kind"]
        t, r = body["threadId"], body["runId"]
        started = sse({"type": "RUN_STARTED", "threadId": t, "runId": r})
        finished = sse({"type": "RUN_FINISHED", "threadId": t, "runId": r})

        async def stream() -> AsyncIterator[bytes]:
            if kind == "deep":  # one chunk: the deep event is in the middle of one stored batch
                yield b"".join(
                    [
                        started,
                        sse({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"}),
                        sse({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "before "}),
                        deep_sse(DEEP),
                        sse({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "after"}),
                        sse({"type": "TEXT_MESSAGE_END", "messageId": "m"}),
                        finished,
                    ]
                )
            elif kind == "deepstate":  # 300 small deltas, each one level deeper
                yield started + sse({"type": "STATE_SNAPSHOT", "snapshot": {}})
                path = ""
                for _ in range(DEEP):
                    yield sse({"type": "STATE_DELTA", "delta": [{"op": "add", "path": path + "/a", "value": {}}]})
                    path += "/a"
                yield finished
            elif kind == "garbage":
                yield started
                for i in range(2000):
                    yield bytes([0xFF, 0xFE, 0x80 + i % 64]) + b"\x00garbage\n\n"
                yield finished
            elif kind == "trickle":  # a byte now and then, forever: only the total limit ends it
                yield started
                while True:
                    await asyncio.sleep(0.05)  # wait-ok: the agent's trickle pace, not a synchronisation
                    yield b":\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/{kind}", handle, methods=["POST"])])


KINDS = ("deep", "deepstate", "garbage", "trickle")


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with serve_app(_hostile_agent()) as url:
        yield url


def config_for(data_dir: Path, hostile: str, **extra: Any) -> GatewayConfig:
    return GatewayConfig(
        data_dir=data_dir,
        agents={kind: f"{hostile}/{kind}" for kind in KINDS},
        timeouts=UpstreamTimeouts(connect=2, read=0.5, total=2.0),
        **extra,
    )


@pytest.fixture
def gateway(tmp_path: Path, hostile: str) -> Iterator[RunningGateway]:
    with serve_gateway(config_for(tmp_path / "data", hostile)) as gw:
        yield gw


async def test_an_event_that_cannot_be_stored_is_replaced_and_nothing_else_is_lost(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        frames = await collect(client, "POST", "/agents/deep/run", json=run_input("deep", "r1"))
        metrics = (await client.get("/metrics")).text
        snapshot = (await client.get("/threads/deep/snapshot")).json()
    stored = read_log(tmp_path / "data", "deep")
    assert [(r["source"], r["event"]["type"]) for r in stored] == [
        ("agent", "RUN_STARTED"),
        ("agent", "TEXT_MESSAGE_START"),
        ("agent", "TEXT_MESSAGE_CONTENT"),
        ("gateway", "CUSTOM"),
        ("agent", "TEXT_MESSAGE_CONTENT"),
        ("agent", "TEXT_MESSAGE_END"),
        ("agent", "RUN_FINISHED"),
    ]
    rejected = stored[3]["event"]
    assert rejected["name"] == "agui_gateway.event_rejected"
    assert rejected["value"]["eventType"] == "CUSTOM" and str(MAX_DEPTH) in rejected["value"]["reason"]
    assert events_of(frames) == [r["event"] for r in stored]
    assert snapshot["messages"][0]["content"] == "before after"
    assert "agui_gateway_events_rejected_total 1.0" in metrics
    assert 'agui_gateway_bad_input_total{kind="event_rejected"} 1.0' in metrics


async def test_a_state_built_too_deep_never_makes_the_thread_unreadable(hostile: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve_gateway(config_for(data_dir, hostile)) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
            run = events_of(await collect(client, "POST", "/agents/deepstate/run", json=run_input("ds", "r1")))
            assert run[-1]["type"] == "RUN_FINISHED"
            first = await _check_readable(client, "ds")
    assert (data_dir / "threads" / "ds" / "checkpoint.bin").exists()
    with serve_gateway(config_for(data_dir, hostile)) as gateway:  # a restart: from the checkpoint
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
            assert await _check_readable(client, "ds") == first
    (data_dir / "threads" / "ds" / "checkpoint.bin").unlink()
    with serve_gateway(config_for(data_dir, hostile)) as gateway:  # and rebuilt from the log alone
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
            assert await _check_readable(client, "ds") == first


async def _check_readable(client: httpx.AsyncClient, thread_id: str) -> Any:
    snapshot = await client.get(f"/threads/{thread_id}/snapshot")
    assert snapshot.status_code == 200
    state = snapshot.json()["state"]
    assert not depth_exceeds(state, MAX_DEPTH) and depth_exceeds(state, MAX_DEPTH - 2)  # deep as allowed
    fresh = events_of(await collect(client, "POST", "/agents/deepstate/connect", json=run_input(thread_id, "c")))
    assert fresh[0]["type"] == "RUN_STARTED" and fresh[-1]["type"] == "RUN_FINISHED"
    assert [e["snapshot"] for e in fresh if e["type"] == "STATE_SNAPSHOT"] == [state]
    return state


HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/threads/t/events?after={HUGE}", {}),
        ("/threads/t/events", {"last-event-id": HUGE}),
        (f"/threads/t/log.jsonl?after={HUGE}", {}),
        ("/threads/t/events?after=%EF%BC%91", {}),  # a full-width digit: isdigit() but not ASCII
    ],
)
async def test_huge_or_odd_resume_ids_are_a_400(gateway: RunningGateway, path: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        response = await client.get(path, headers=headers)
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 400 and "non-negative integer" in response.json()["error"]
    assert 'agui_gateway_bad_input_total{kind="request"} 1.0' in metrics


@pytest.mark.parametrize("where", ["message", "state", "forwardedProps", "tool"])
async def test_bodies_nested_too_deep_are_a_400_and_store_nothing(
    gateway: RunningGateway, tmp_path: Path, where: str
) -> None:
    body = run_input("nest", "r1", [user_message("u1", "hi")])
    if where == "message":
        body["messages"][0]["content"] = nested(DEEP, "x")
    elif where == "tool":
        body["tools"] = [{"name": "t", "description": "d", "parameters": nested(DEEP)}]
    else:
        body[where] = nested(DEEP)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        response = await client.post(
            "/agents/deep/run", content=_encode_deep(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and f"deeper than {MAX_DEPTH}" in response.json()["error"]
        # A body exactly at the limit is accepted.
        at_limit = run_input("nest", "c", state=nested(MAX_DEPTH - 1))
        assert events_of(await collect(client, "POST", "/agents/deep/connect", json=at_limit)) == []
    assert not (tmp_path / "data" / "threads" / "nest").exists()


def _encode_deep(value: Any) -> bytes:
    """JSON for values orjson refuses to encode (deeper than 254)."""
    if isinstance(value, dict):
        return b"{" + b",".join(orjson.dumps(k) + b":" + _encode_deep(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_encode_deep(v) for v in value) + b"]"
    return orjson.dumps(value)


async def test_garbage_from_an_agent_is_counted_and_logged_a_bounded_number_of_times(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agui_gateway"):
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
            frames = await collect(client, "POST", "/agents/garbage/run", json=run_input("junk", "r1"))
            metrics = (await client.get("/metrics")).text
    assert [e["type"] for e in events_of(frames)] == ["RUN_STARTED", "RUN_FINISHED"]
    assert 'agui_gateway_bad_input_total{kind="upstream_malformed"} 2000.0' in metrics
    assert "agui_gateway_upstream_malformed_total 2000.0" in metrics
    lines = [r for r in caplog.records if r.name == "agui_gateway.bad_input"]
    assert 1 <= len(lines) <= LINES_PER_WINDOW


async def test_a_trickling_agent_is_ended_by_the_total_run_limit(gateway: RunningGateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        frames = await collect(client, "POST", "/agents/trickle/run", json=run_input("slow", "r1"))
    error = events_of(frames)[-1]
    assert error["type"] == "RUN_ERROR" and error["code"] == "upstream_total_timeout"
    stored = read_log(tmp_path / "data", "slow")
    assert stored[-1]["source"] == "gateway" and stored[-1]["event"] == error


def test_the_default_run_limit_is_finite() -> None:
    total = GatewayConfig().timeouts.total
    assert total is not None and 3600 <= total < float("inf")
