"""A stop is recorded as AG-UI 1.0's cancelled outcome, and everyone ends where the caller ended.

An agent is stopped (``POST /threads/{t}/stop?runId=R``) while it has every kind of
part open that the official client's ``verifyEvents`` refuses a RUN_FINISHED over: a
step, a reasoning span and message, a text message with a tool call, a subagent with a
message of its own; and, in a second script, a message opened by a ``*_CHUNK`` stream
(which the client's chunk stage closes itself). The stored end must be those parts
closed, then ``RUN_FINISHED`` with ``outcome: {"type": "cancelled"}``; then:

* the official client 1.0.0 takes the caller's stream without an error, and
  ``ag-ui-validate`` finds no error in it nor in a fresh replay;
* a fresh replay (the run folded by compaction), a resume after every id of the caller's
  stream and ``/snapshot`` end exactly where the caller's stream ends under the client;
* ``/runs`` says ``cancelled``; a fault (the agent dropping its stream) still ends in
  RUN_ERROR;
* the agent pipeline of the client 0.0.59 (what CopilotKit 1.75.0 bundles) takes the
  stream as well (its HttpAgent's transport refuses the outcome: docs/official-clients.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ag_ui_validate import create_validator
from support.agents import ScriptedAgent
from support.events import run_input, user_message
from support.official_client import OfficialClient, ReplayResult
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import collect, events_of, has_id
from support.stores import stored_log
from support.waiting import wait_until_async

CANCELLED = {"type": "cancelled"}


@pytest.fixture
def gateway(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> Iterator[RunningGateway]:
    with serve_scripted_gateway(tmp_path / "data", agent[1], **store_overrides) as gw:
        yield gw


def everything_open(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """A run that has each kind of part open when it is held at its end."""
    return [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id},
        {"type": "STATE_SNAPSHOT", "snapshot": {"step": "plan"}},
        {"type": "STEP_STARTED", "stepName": "plan"},
        {"type": "REASONING_START", "messageId": "think"},
        {"type": "REASONING_MESSAGE_START", "messageId": "think-1", "role": "reasoning"},
        {"type": "REASONING_MESSAGE_CONTENT", "messageId": "think-1", "delta": "Weather first, "},
        {"type": "TEXT_MESSAGE_START", "messageId": "done", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "done", "delta": "Finished."},
        {"type": "TEXT_MESSAGE_END", "messageId": "done"},
        {"type": "TEXT_MESSAGE_START", "messageId": "answer", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "answer", "delta": "Looking it up"},
        {"type": "TOOL_CALL_START", "toolCallId": "call-1", "toolCallName": "weather", "parentMessageId": "answer"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "call-1", "delta": '{"city": "Par'},
        {"type": "SUBAGENT_STARTED", "subagentRunId": "helper-1", "name": "helper"},
        {"type": "STEP_STARTED", "stepName": "search", "subagentRunId": "helper-1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "helper-says", "role": "assistant", "subagentRunId": "helper-1"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "helper-says", "delta": "Searching", "subagentRunId": "helper-1"},
        # never sent: the stop comes first
        {"type": "TEXT_MESSAGE_END", "messageId": "helper-says", "subagentRunId": "helper-1"},
    ]


# What the stop must add after the 17 events above: innermost parts first, each part's
# subagent named as its opener named it, then the cancelled outcome.
def everything_closed(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    return [
        {"type": "TEXT_MESSAGE_END", "messageId": "helper-says", "subagentRunId": "helper-1"},
        {"type": "TEXT_MESSAGE_END", "messageId": "answer"},
        # its arguments were cut at '{"city": "Par': completed to parse, nothing taken back
        {"type": "TOOL_CALL_ARGS", "toolCallId": "call-1", "delta": '"}'},
        {"type": "TOOL_CALL_END", "toolCallId": "call-1"},
        {"type": "REASONING_MESSAGE_END", "messageId": "think-1"},
        {"type": "REASONING_END", "messageId": "think"},
        {"type": "STEP_FINISHED", "stepName": "search", "subagentRunId": "helper-1"},
        {"type": "STEP_FINISHED", "stepName": "plan"},
        {
            "type": "SUBAGENT_ERROR",
            "subagentRunId": "helper-1",
            "message": "the run was stopped by a client (POST /stop)",
            "code": "stopped",
        },
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id, "outcome": CANCELLED},
    ]


def chunk_open(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """A run held inside a chunk stream: the client's chunk stage closes that message itself."""
    return [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id},
        {"type": "TOOL_CALL_START", "toolCallId": "c-1", "toolCallName": "lookup"},
        {"type": "TEXT_MESSAGE_CHUNK", "messageId": "chunked", "role": "assistant", "delta": "Half an ans"},
        {"type": "TEXT_MESSAGE_CHUNK", "messageId": "chunked", "delta": "wer"},
        {"type": "TEXT_MESSAGE_CHUNK", "messageId": "chunked", "delta": " never sent"},
    ]


def chunk_closed(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    return [
        {"type": "TOOL_CALL_END", "toolCallId": "c-1"},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id, "outcome": CANCELLED},
    ]


def assert_valid(label: str, events: list[dict[str, Any]]) -> None:
    """ag-ui-validate's core rules: no error-level finding."""
    validator = create_validator()
    for event in events:
        validator.feed(event)
    validator.finalize()
    report = validator.report()
    errors = [(d.rule, d.event_index, d.message) for d in report.diagnostics if d.severity == "error"]
    assert errors == [] and report.internal_errors == [], f"{label}: {errors} {report.internal_errors}"


def end_of(result: ReplayResult) -> tuple[Any, Any, Any]:
    assert result.error is None, result.error
    return result.messages, result.state, result.pending_interrupts


@pytest.mark.parametrize(
    ("script", "closed"), [(everything_open, everything_closed), (chunk_open, chunk_closed)], ids=["explicit", "chunks"]
)
async def test_a_stop_closes_what_is_open_and_ends_with_the_cancelled_outcome(
    gateway: RunningGateway,
    agent: tuple[ScriptedAgent, str],
    official_client: OfficialClient,
    official_client_0059: OfficialClient,
    script: Any,
    closed: Any,
) -> None:
    scripted, _ = agent
    thread_id = f"stop-{script.__name__}"
    # A finished run first, so the stopped one is folded onto a history in a fresh replay.
    scripted.script(
        "r1",
        [
            {"type": "RUN_STARTED", "threadId": thread_id, "runId": "r1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "Hello."},
            {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
            {"type": "RUN_FINISHED", "threadId": thread_id, "runId": "r1"},
        ],
    )
    events = script(thread_id, "r2")
    held = scripted.script("r2", events, hold_at=len(events) - 1)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        first = events_of(await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "r1")))
        history = [user_message("u1", "hi"), *end_of(official_client.replay(first))[0]]
        history.append(user_message("u2", "And the weather?"))
        caller = collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "r2", history))
        running = asyncio.ensure_future(caller)
        await wait_until_async(lambda: len(stored_log(gateway, thread_id)) >= len(first) + len(events) - 1)
        stopped = await client.post(f"/threads/{thread_id}/stop", params={"runId": "r2"})
        assert stopped.status_code == 200, stopped.text
        frames = await running
        latest = stopped.json()["seq"]
        fresh = events_of(await collect(client, "GET", f"/threads/{thread_id}/events", until=has_id(latest)))
        snapshot = (await client.get(f"/threads/{thread_id}/snapshot")).json()
        runs = (await client.get(f"/threads/{thread_id}/runs")).json()["runs"]
        resumed = {
            frame.id: events_of(
                await collect(
                    client,
                    "GET",
                    f"/threads/{thread_id}/events",
                    headers={"last-event-id": str(frame.id)},
                    until=has_id(latest),
                )
            )
            for frame in frames
            if frame.id is not None and frame.id < latest
        }
    held.release()
    raw = events_of(frames)
    assert raw[-len(closed(thread_id, "r2")) :] == closed(thread_id, "r2")
    assert [r["source"] for r in stored_log(gateway, thread_id)][-len(closed(thread_id, "r2")) :] == ["gateway"] * len(
        closed(thread_id, "r2")
    )
    assert [(r["runId"], r["status"]) for r in runs] == [("r1", "finished"), ("r2", "cancelled")]
    assert_valid("the caller's stream", raw)
    assert_valid("a fresh replay", fresh)
    # Under the official client: the whole thread as one stream (the first run's, then
    # the stopped one's), and every other way of reading it, end in the same place.
    whole = end_of(official_client.replay([*first, *raw]))
    assert end_of(official_client.replay(fresh)) == whole
    assert (snapshot["messages"], snapshot["state"]) == whole[:2]
    offsets = {frame.id: index for index, frame in enumerate(f for f in frames if f.event is not None)}
    for after, rest in resumed.items():
        cut = offsets[after] + 1
        assert rest == raw[cut:], f"resume after {after}"
        assert end_of(official_client.replay([*first, *raw[:cut], *rest])) == whole
    # 0.0.59's agent pipeline takes the stream too (its HttpAgent's transport schema does
    # not: docs/official-clients.md; GatewayAgentRunner's tests check that side).
    older = official_client_0059.replay([*first, *raw])
    assert older.error is None, older.error


async def test_a_fault_still_ends_in_run_error_and_an_unknown_run_is_not_stopped(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    thread_id = "stop-fault"
    # The agent drops its stream inside a message: the gateway's RUN_ERROR, no outcome.
    scripted.script(
        "f1",
        [
            {"type": "RUN_STARTED", "threadId": thread_id, "runId": "f1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"},
        ],
    )
    async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as client:
        ended = events_of(await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "f1")))
        runs = (await client.get(f"/threads/{thread_id}/runs")).json()["runs"]
        refused = await client.post(f"/threads/{thread_id}/stop", params={"runId": "f1"})
    assert ended[-1]["type"] == "RUN_ERROR" and ended[-1]["code"] == "upstream_incomplete"
    assert [r["status"] for r in runs] == ["error"]
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"  # no run to stop
