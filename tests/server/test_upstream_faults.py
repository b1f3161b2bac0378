"""Upstream faults through the gateway: each leaves a stored, broadcast RUN_ERROR, and the
thread takes runs again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support.gateway_fixtures import (
    RunningGateway,
    collect,
    events_of,
    read_log,
    run_input,
    serve_gateway,
    user_message,
)
from support.servers import refused_port, serve_app

from agui_gateway.server.config import GatewayConfig, UpstreamTimeouts


def _faulty_agent() -> Starlette:
    async def status_500(request: Request) -> Response:
        return JSONResponse({"detail": "model overloaded"}, status_code=500)

    async def plain_text(request: Request) -> Response:
        return Response("hello", media_type="text/plain")

    async def malformed(request: Request) -> Response:
        body = await request.json()

        async def stream() -> AsyncIterator[bytes]:
            t, r = body["threadId"], body["runId"]
            yield b'data: {"type":"RUN_STARTED","threadId":"%s","runId":"%s"}\n\n' % (t.encode(), r.encode())
            yield b"data: {not json\n\n"
            yield b'data: {"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"}\n\n'
            yield b"data: [1,2,3]\n\n"
            yield b'data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"kept"}\n\n'
            yield b'data: {"type":"TEXT_MESSAGE_END","messageId":"m"}\n\n'
            yield b'data: {"type":"RUN_FINISHED","threadId":"%s","runId":"%s"}\n\n' % (t.encode(), r.encode())

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def truncated(request: Request) -> Response:
        body = await request.json()

        async def stream() -> AsyncIterator[bytes]:
            yield b'data: {"type":"RUN_STARTED","threadId":"%s","runId":"%s"}\n\n' % (
                body["threadId"].encode(),
                body["runId"].encode(),
            )
            yield b'data: {"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"}\n\n'

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def silent(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            import asyncio

            yield b": hello\n\n"
            await asyncio.Event().wait()  # never sends anything else
            yield b""

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/500", status_500, methods=["POST"]),
            Route("/text", plain_text, methods=["POST"]),
            Route("/malformed", malformed, methods=["POST"]),
            Route("/truncated", truncated, methods=["POST"]),
            Route("/silent", silent, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def faulty() -> Iterator[str]:
    with serve_app(_faulty_agent()) as url:
        yield url


@pytest.fixture
def gateway(tmp_path: Path, faulty: str) -> Iterator[RunningGateway]:
    with refused_port() as nowhere:
        agents = {name: f"{faulty}/{name}" for name in ("500", "text", "malformed", "truncated", "silent")}
        agents["down"] = nowhere
        config = GatewayConfig(
            data_dir=tmp_path / "data", agents=agents, timeouts=UpstreamTimeouts(connect=2, read=0.5, total=None)
        )
        with serve_gateway(config) as gw:
            yield gw


@pytest.mark.parametrize(
    ("agent", "code", "words"),
    [
        ("down", "upstream_unreachable", "unreachable"),
        ("500", "upstream_http_status", "HTTP 500"),
        ("text", "upstream_content_type", "text/plain"),
        ("truncated", "upstream_incomplete", "without RUN_FINISHED"),
        ("silent", "upstream_read_timeout", "read timeout"),
    ],
)
async def test_upstream_fault_ends_the_run_with_a_stored_run_error(
    gateway: RunningGateway, tmp_path: Path, agent: str, code: str, words: str
) -> None:
    thread_id = f"fault-{agent}"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        frames = await collect(
            client, "POST", f"/agents/{agent}/run", json=run_input(thread_id, "r1", [user_message("u1", "hi")])
        )
        events = events_of(frames)
        assert events[0]["type"] == "RUN_STARTED" and events[0]["input"]["messages"] == [user_message("u1", "hi")]
        error = events[-1]
        assert error["type"] == "RUN_ERROR" and error["code"] == code and words in error["message"]
        stored = read_log(tmp_path / "data", thread_id)
        assert stored[-1] == {**stored[-1], "source": "gateway", "event": error}
        assert [r["event"] for r in stored] == events
        # The user's message is kept, and a fresh replay is a valid stream that shows the error.
        snapshot = (await client.get(f"/threads/{thread_id}/snapshot")).json()
        assert snapshot["messages"][0] == user_message("u1", "hi") and snapshot["running"] is False
        fresh = await collect(client, "POST", f"/agents/{agent}/connect", json=run_input(thread_id, "c"))
        assert events_of(fresh)[0]["type"] == "RUN_STARTED" and events_of(fresh)[-1] == error
        metrics = (await client.get("/metrics")).text
        assert f'agui_gateway_upstream_errors_total{{code="{code}"}} 1.0' in metrics
        # The thread takes the next run (which fails the same way, but is accepted).
        again = await client.post(f"/agents/{agent}/run", json=run_input(thread_id, "r2"))
        assert again.status_code == 200


async def test_malformed_lines_are_skipped_counted_and_the_rest_kept(gateway: RunningGateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        frames = await collect(client, "POST", "/agents/malformed/run", json=run_input("fault-lines", "r1"))
        metrics = (await client.get("/metrics")).text
    assert [e["type"] for e in events_of(frames)] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert len(read_log(tmp_path / "data", "fault-lines")) == 5
    assert "agui_gateway_upstream_malformed_total 2.0" in metrics
