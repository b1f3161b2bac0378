"""Runs from a history window, and runs on a history bigger than a frame of the client.

A caller holding a window (what a client that opened the thread with ``turns`` sends)
continues the thread: no branch is recorded and the agent receives the whole
conversation. A regenerate on a thread with 12 MB of history records the caller's
conversation in frames the official client accepts, on the caller's own stream too,
judged by the pinned client reading the stream's bytes with its frame limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent, serve_agent
from support.events import agent_run_events, read_log, run_input, user_message
from support.official_client import OfficialClient
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import collect, events_of
from support.sse_client import SseClient, frame_sizes, sse_client

from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT

THREAD = "windowed"
MIB = 1024 * 1024
# A tool result whose event is just under the 10 MiB agents may send: its frame, with the
# id field, is over the client's limit unless split.
_RESULT = {"type": "TOOL_CALL_RESULT", "messageId": "t0", "toolCallId": "c0", "content": ""}
BIG_RESULT = CLIENT_SSE_BUFFER_LIMIT - len(orjson.dumps(_RESULT)) - 4


@pytest.fixture
def agent() -> Iterator[tuple[ScriptedAgent, str]]:
    with serve_agent() as served:
        yield served


@pytest.fixture
def gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    with serve_scripted_gateway(tmp_path / "data", agent[1]) as gw:
        yield gw


@pytest.fixture(scope="module")
def sse() -> Iterator[SseClient]:
    with sse_client() as client:
        yield client


async def _messages(client: httpx.AsyncClient, thread: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await client.get(f"/threads/{thread}/snapshot")).json()["messages"]
    return messages


async def converse(client: httpx.AsyncClient, agent: ScriptedAgent, thread: str, turns: int) -> None:
    for turn in range(turns):
        run_id = f"r{turn}"
        agent.script(run_id, agent_run_events(thread, run_id, text_deltas=2))
        body = run_input(thread, run_id, [*await _messages(client, thread), user_message(f"u{turn}", f"q {turn}")])
        await collect(client, "POST", "/agents/scripted/run", json=body)


def _run_records(data_dir: Path, thread: str, run_id: str) -> list[dict[str, Any]]:
    """The stored records of one run, its RUN_STARTED to its terminal event."""
    records = read_log(data_dir, thread)
    start = next(
        i for i, r in enumerate(records) if r["event"]["type"] == "RUN_STARTED" and r["event"]["runId"] == run_id
    )
    end = next(i for i in range(start, len(records)) if records[i]["event"]["type"] in ("RUN_FINISHED", "RUN_ERROR"))
    return records[start : end + 1]


async def test_a_caller_holding_a_window_continues_the_thread(
    tmp_path: Path, gateway: RunningGateway, agent: tuple[ScriptedAgent, str], official_client: OfficialClient
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        await converse(client, agent[0], THREAD, 4)
        stored = await _messages(client, THREAD)
        connect = run_input(THREAD, "c", forwardedProps={"aguiGateway": {"turns": 1}})
        window = official_client.replay(
            events_of(await collect(client, "POST", "/agents/scripted/connect", json=connect))
        )
        assert window.error is None and 0 < len(window.messages) < len(stored)
        script = agent[0].script("r9", agent_run_events(THREAD, "r9", text_deltas=2))
        body = run_input(THREAD, "r9", [*window.messages, user_message("u9", "go on")])
        await collect(client, "POST", "/agents/scripted/run", json=body)
        after = await _messages(client, THREAD)
        # A regenerate inside the window still branches, from the run before the window's turn.
        last_user = max(i for i, m in enumerate(window.messages) if m["role"] == "user")
        agent[0].script("r10", agent_run_events(THREAD, "r10", text_deltas=2))
        regenerate = run_input(THREAD, "r10", window.messages[: last_user + 1])
        await collect(client, "POST", "/agents/scripted/run", json=regenerate)

    [received] = script.requests
    assert received["messages"] == [*stored, user_message("u9", "go on")]
    records = _run_records(tmp_path / "data", THREAD, "r9")
    assert "parentRunId" not in (records[0].get("gateway") or {})
    assert not any(r["event"]["type"] == "MESSAGES_SNAPSHOT" for r in records)
    assert after[: len(stored) + 1] == [*stored, user_message("u9", "go on")]
    branch = _run_records(tmp_path / "data", THREAD, "r10")
    assert branch[0]["gateway"]["parentRunId"] == "r2"


async def test_history_no_frame_can_record_is_refused_and_the_thread_stays_usable(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    huge = {"id": "big", "role": "user", "content": [{"type": "text", "text": "x" * (9 * 1024 * 1024)}]}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        refused = await client.post("/agents/scripted/run", json=run_input(THREAD, "r0", [huge]))
        await converse(client, agent[0], THREAD, 1)
        messages = await _messages(client, THREAD)
    assert refused.status_code == 413 and refused.json()["code"] == "history_too_large"
    assert [m["id"] for m in messages][:1] == ["u0"]


def _big_turn(thread: str, run_id: str, sizes: list[int]) -> list[dict[str, Any]]:
    """A run with a tool result of each size (files the agent read)."""
    events: list[dict[str, Any]] = [{"type": "RUN_STARTED", "threadId": thread, "runId": run_id}]
    for n, size in enumerate(sizes):
        events += [
            {"type": "TOOL_CALL_START", "toolCallId": f"c{n}", "toolCallName": "read_file", "parentMessageId": "a0"},
            {"type": "TOOL_CALL_ARGS", "toolCallId": f"c{n}", "delta": '{"path":"big.txt"}'},
            {"type": "TOOL_CALL_END", "toolCallId": f"c{n}"},
            {"type": "TOOL_CALL_RESULT", "messageId": f"t{n}", "toolCallId": f"c{n}", "content": chr(97 + n) * size},
        ]
    return [
        *events,
        {"type": "TEXT_MESSAGE_START", "messageId": "a0b", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a0b", "delta": "read it"},
        {"type": "TEXT_MESSAGE_END", "messageId": "a0b"},
        {"type": "RUN_FINISHED", "threadId": thread, "runId": run_id},
    ]


def _assert_readable(data: bytes) -> None:
    assert max(frame_sizes(data)) < CLIENT_SSE_BUFFER_LIMIT


async def test_a_regenerate_on_12_mb_of_history_stays_under_the_frame_limit(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], sse: SseClient
) -> None:
    thread = "big"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:
        # 13 MiB of history; one result too big for a frame of the client (which the
        # gateway stores: agents' events are refused above 10 MiB), split on every stream.
        agent[0].script("r0", _big_turn(thread, "r0", [BIG_RESULT, 3 * MIB]))
        first_input = [user_message("u0", "read big.txt")]
        first = await client.post("/agents/scripted/run", json=run_input(thread, "r0", first_input))
        agent[0].script("r1", agent_run_events(thread, "r1", text_deltas=2, tools=0))
        held = [*await _messages(client, thread), user_message("u1", "and now?")]
        await client.post("/agents/scripted/run", json=run_input(thread, "r1", held))
        # Regenerate r1: the same conversation again, a new run id: a branch from r0,
        # which records the caller's 12 MB conversation.
        agent[0].script("r2", agent_run_events(thread, "r2", text_deltas=3, tools=0))
        regenerated = await client.post("/agents/scripted/run", json=run_input(thread, "r2", held))
        fresh = await client.post("/agents/scripted/connect", json=run_input(thread, "c"))
        windowed = await client.post(
            "/agents/scripted/connect", json=run_input(thread, "c", forwardedProps={"aguiGateway": {"turns": 1}})
        )
        resumed = await client.post(
            "/agents/scripted/connect", json=run_input(thread, "c"), headers={"last-event-id": "0"}
        )

    for stream in (first, regenerated, fresh, windowed, resumed):
        assert stream.status_code == 200
        _assert_readable(stream.content)
    after_first = sse.read(first.content, mode="run", messages=first_input)
    after_regenerate = sse.read(regenerated.content, mode="run", messages=held)
    whole = sse.read(fresh.content)
    raw = sse.read(resumed.content)
    for result in (after_first, after_regenerate, whole, raw):
        assert result.error is None, result.error
    assert [len(m["content"]) for m in after_first.messages if m["role"] == "tool"] == [BIG_RESULT, 3 * MIB]
    assert after_regenerate.messages == whole.messages == raw.messages
    assert after_regenerate.state == whole.state == raw.state
    assert after_regenerate.pending_interrupts == whole.pending_interrupts == raw.pending_interrupts
    assert sse.read(windowed.content).error is None


@pytest.mark.slow
async def test_a_fresh_replay_of_40_mb_stays_under_the_frame_limit(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], sse: SseClient
) -> None:
    """Issue 18's large case: a thread whose fresh replay is about 40 MB (four results just
    under what an agent may send in one event) is served in frames the client reads, and
    ends where the raw log does."""
    thread = "huge"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=300) as client:
        agent[0].script("r0", _big_turn(thread, "r0", [BIG_RESULT] * 4))
        first = await client.post(
            "/agents/scripted/run", json=run_input(thread, "r0", [user_message("u0", "read them all")])
        )
        assert first.status_code == 200
        fresh = await client.post("/agents/scripted/connect", json=run_input(thread, "c"))
        resumed = await client.post(
            "/agents/scripted/connect", json=run_input(thread, "c"), headers={"last-event-id": "0"}
        )
    assert len(fresh.content) > 38 * MIB
    for stream in (fresh, resumed):
        assert stream.status_code == 200
        _assert_readable(stream.content)
    whole, raw = sse.read(fresh.content), sse.read(resumed.content)
    assert whole.error is None and raw.error is None, (whole.error, raw.error)
    assert [len(m["content"]) for m in whole.messages if m["role"] == "tool"] == [BIG_RESULT] * 4
    assert (whole.messages, whole.state, whole.pending_interrupts) == (raw.messages, raw.state, raw.pending_interrupts)
