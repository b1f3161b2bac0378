"""Upstream faults through the gateway: each leaves a stored, broadcast RUN_ERROR, and the
thread takes runs again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent, sse
from support.events import run_input, served, user_message
from support.servers import RunningGateway, refused_port, serve_app, serve_gateway
from support.sse import collect, events_of
from support.stores import stored_log

from agui_gateway.server.config import GatewayConfig
from agui_gateway.upstream.agent_http import UpstreamTimeouts


def _started(thread_id: str, run_id: str) -> dict[str, str]:
    return {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}


def _faulty_agents() -> dict[str, ScriptedAgent]:
    """One agent per fault, each answering every run the same way (or per run where the
    answer names the run)."""
    status_500 = ScriptedAgent(
        [orjson.dumps({"detail": "model overloaded"})], status=500, content_type="application/json"
    )
    plain_text = ScriptedAgent([b"hello"], content_type="text/plain; charset=utf-8")
    malformed = ScriptedAgent()
    malformed.answer(
        "r1",
        [
            sse(_started("fault-lines", "r1")),
            b"data: {not json\n\n",
            sse({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"}),
            b"data: [1,2,3]\n\n",
            sse({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "kept"}),
            sse({"type": "TEXT_MESSAGE_END", "messageId": "m"}),
            sse({"type": "RUN_FINISHED", "threadId": "fault-lines", "runId": "r1"}),
        ],
    )
    truncated = ScriptedAgent()
    for run_id in ("r1", "r2"):  # the stream stops before the run's end
        truncated.answer(
            run_id,
            [
                sse(_started("fault-truncated", run_id)),
                sse({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"}),
            ],
        )
    silent = ScriptedAgent([b": hello\n\n"], then="stall")  # never sends anything else
    return {"500": status_500, "text": plain_text, "malformed": malformed, "truncated": truncated, "silent": silent}


@pytest.fixture(scope="module")
def faulty() -> Iterator[dict[str, str]]:
    """The faulty agents on loopback: name -> run URL."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, agent in _faulty_agents().items():
            urls[name] = stack.enter_context(serve_app(agent)) + "/"
            stack.callback(agent.release_all)
        yield urls


@pytest.fixture
def gateway(tmp_path: Path, faulty: dict[str, str], store_overrides: dict[str, Any]) -> Iterator[RunningGateway]:
    """The gateway on the file store, then on Redis: every test here runs on both."""
    with refused_port() as nowhere:
        agents = {**faulty, "down": nowhere}
        config = GatewayConfig(
            data_dir=tmp_path / "data",
            agents=agents,
            timeouts=UpstreamTimeouts(connect=2, read=0.5, total=None),
            **store_overrides,
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
        # One run (the gateway's RUN_STARTED stands in for the agent's and carries the input).
        assert [e["type"] for e in events].count("RUN_STARTED") == 1
        assert [e["type"] for e in events if e["type"] in ("RUN_FINISHED", "RUN_ERROR")] == ["RUN_ERROR"]
        error = events[-1]
        assert error["type"] == "RUN_ERROR" and error["code"] == code and words in error["message"]
        stored = stored_log(gateway, thread_id)
        assert stored[-1] == {**stored[-1], "source": "gateway", "event": error}
        assert [served(r) for r in stored] == events
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
    assert len(stored_log(gateway, "fault-lines")) == 5
    assert "agui_gateway_upstream_malformed_total 2.0" in metrics
