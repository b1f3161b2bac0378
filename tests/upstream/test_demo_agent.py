"""The built-in demo agent, streamed over a real socket and replayed by the official client."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import orjson
import pytest
from support.servers import serve_app

from agui_gateway.upstream.agent_http import UpstreamTimeouts
from agui_gateway.upstream.demo import create_demo_app
from agui_gateway.upstream.run import AgentEvent, UpstreamRun

TIMEOUTS = UpstreamTimeouts(connect=5.0, read=30.0)


def demo_input(
    text: Any, *, run_id: str = "run-1", state: Any = None, history: list[Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threadId": "demo-thread",
        "runId": run_id,
        "messages": [*(history or []), {"id": f"{run_id}-user", "role": "user", "content": text}],
        "tools": [],
        "context": [],
    }
    if state is not None:
        body["state"] = state
    return body


@pytest.fixture(scope="module")
def demo_url() -> Any:
    with serve_app(create_demo_app(pace=0)) as url:
        yield url + "/"


async def stream_demo(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The demo's events as the gateway reads them; any malformed or gateway item fails."""
    async with httpx.AsyncClient() as client:
        run = UpstreamRun(client, url, body, timeouts=TIMEOUTS)
        async with run:
            items = [item async for item in run]
    assert all(isinstance(item, AgentEvent) for item in items), [i for i in items if not isinstance(i, AgentEvent)]
    return [item.event for item in items]  # type: ignore[union-attr]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def joined(events: list[dict[str, Any]], kind: str, key: str, value: str) -> str:
    return "".join(e["delta"] for e in events if e["type"] == kind and e[key] == value)


async def test_a_run_has_every_kind_of_event_in_a_valid_order(demo_url: str) -> None:
    events = await stream_demo(demo_url, demo_input("Tell me something about streams"))
    kinds = types(events)
    assert events[0] == {"type": "RUN_STARTED", "threadId": "demo-thread", "runId": "run-1"}
    assert events[-1] == {"type": "RUN_FINISHED", "threadId": "demo-thread", "runId": "run-1"}
    assert kinds.count("RUN_STARTED") == 1 and kinds.count("RUN_FINISHED") == 1

    # A reasoning block: span open, message open, several deltas, message close, span close.
    start = kinds.index("REASONING_START")
    end = kinds.index("REASONING_END")
    block = kinds[start : end + 1]
    assert block[:2] == ["REASONING_START", "REASONING_MESSAGE_START"]
    assert block[-2:] == ["REASONING_MESSAGE_END", "REASONING_END"]
    assert set(block[2:-2]) == {"REASONING_MESSAGE_CONTENT"} and len(block) > 6

    # Text arrives in small deltas.
    text_deltas = [e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert len(text_deltas) > 10
    assert all(0 < len(delta) <= 40 for delta in text_deltas)
    assert kinds.count("TEXT_MESSAGE_START") == kinds.count("TEXT_MESSAGE_END") == 2

    # Two parallel tool calls on the first assistant message, their args interleaved.
    first_text = next(e for e in events if e["type"] == "TEXT_MESSAGE_START")
    starts = [e for e in events if e["type"] == "TOOL_CALL_START"]
    assert len(starts) == 2
    assert all(e["parentMessageId"] == first_text["messageId"] for e in starts)
    call_ids = [e["toolCallId"] for e in starts]
    assert len(set(call_ids)) == 2
    args_owners = [e["toolCallId"] for e in events if e["type"] == "TOOL_CALL_ARGS"]
    switches = sum(1 for a, b in itertools.pairwise(args_owners) if a != b)
    assert switches >= 2, "tool call arguments should interleave"
    assert kinds.index("TOOL_CALL_START", kinds.index("TOOL_CALL_START") + 1) < kinds.index("TOOL_CALL_ARGS")
    for call_id in call_ids:
        orjson.loads(joined(events, "TOOL_CALL_ARGS", "toolCallId", call_id))  # complete JSON
    results = [e for e in events if e["type"] == "TOOL_CALL_RESULT"]
    assert sorted(e["toolCallId"] for e in results) == sorted(call_ids)
    assert kinds.index("TOOL_CALL_RESULT") > max(i for i, k in enumerate(kinds) if k == "TOOL_CALL_END")

    # A state snapshot, then deltas.
    assert kinds.count("STATE_SNAPSHOT") == 1
    deltas = [i for i, k in enumerate(kinds) if k == "STATE_DELTA"]
    assert len(deltas) >= 2 and kinds.index("STATE_SNAPSHOT") < deltas[0]


async def test_the_demo_reacts_to_the_users_message(demo_url: str) -> None:
    events = await stream_demo(demo_url, demo_input("Please summarise the quarterly numbers"))
    first = next(e["messageId"] for e in events if e["type"] == "TEXT_MESSAGE_START")
    assert "Please summarise the quarterly numbers" in joined(events, "TEXT_MESSAGE_CONTENT", "messageId", first)

    weather = await stream_demo(demo_url, demo_input([{"type": "text", "text": "What's the weather in Oslo?"}]))
    names = {e["toolCallName"] for e in weather if e["type"] == "TOOL_CALL_START"}
    assert names == {"get_weather"}
    calls = [e["toolCallId"] for e in weather if e["type"] == "TOOL_CALL_START"]
    cities = {orjson.loads(joined(weather, "TOOL_CALL_ARGS", "toolCallId", c))["city"] for c in calls}
    assert "Oslo" in cities and len(cities) == 2


async def test_the_official_client_accepts_the_stream_and_builds_the_conversation(
    demo_url: str, official_client: Any
) -> None:
    events = await stream_demo(demo_url, demo_input("Is it going to rain in Lima? weather please", state={"runs": 2}))
    assert official_client.verify(events).error is None
    result = official_client.replay(events)
    assert result.error is None
    assert result.warnings == []  # nothing stripped or dropped: every field is the protocol's

    messages = result.messages
    assert [m["role"] for m in messages] == ["reasoning", "assistant", "tool", "tool", "assistant"]
    reasoning, intro, tool_a, tool_b, answer = messages
    reasoning_id = next(e["messageId"] for e in events if e["type"] == "REASONING_MESSAGE_START")
    assert reasoning["content"] == joined(events, "REASONING_MESSAGE_CONTENT", "messageId", reasoning_id)
    assert "Lima" in intro["content"]
    assert [call["function"]["name"] for call in intro["toolCalls"]] == ["get_weather", "get_weather"]
    argument_cities = [orjson.loads(call["function"]["arguments"])["city"] for call in intro["toolCalls"]]
    assert argument_cities[0] == "Lima"
    # Each tool message answers one of the calls, with the city it was asked about.
    calls_by_id = {call["id"]: orjson.loads(call["function"]["arguments"]) for call in intro["toolCalls"]}
    for tool in (tool_a, tool_b):
        assert orjson.loads(tool["content"])["city"] == calls_by_id[tool["toolCallId"]]["city"]
    assert {tool_a["toolCallId"], tool_b["toolCallId"]} == set(calls_by_id)
    assert answer["content"] and "Lima" in answer["content"]

    state = result.state
    assert state["runs"] == 3  # counted on from the input's state
    assert state["todos"] and all(todo["done"] for todo in state["todos"])
    assert state["progress"] == 1


async def test_consecutive_runs_of_a_thread_replay_as_one_conversation(demo_url: str, official_client: Any) -> None:
    first = await stream_demo(demo_url, demo_input("first question", run_id="run-a"))
    after_first = official_client.replay(first)
    second = await stream_demo(
        demo_url,
        demo_input("second question", run_id="run-b", state=after_first.state, history=after_first.messages),
    )
    result = official_client.replay(first + second)
    assert result.error is None
    ids = [m["id"] for m in result.messages]
    assert len(ids) == len(set(ids)) == 10  # five messages per run, none reused
    assert result.state["runs"] == 2


async def test_pacing_changes_timing_only(demo_url: str) -> None:
    body = demo_input("same words, different pace")
    with serve_app(create_demo_app(pace=0.02)) as paced_url:
        paced = await stream_demo(paced_url + "/", body)
    assert paced == await stream_demo(demo_url, body)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"threadId": "t"}', b'{"threadId": "t", "runId": "r", "messages": "nope"}'],
)
async def test_an_invalid_body_is_a_422_with_a_json_error(demo_url: str, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(demo_url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "RunAgentInput" in response.json()["error"]


@pytest.mark.parametrize("prompt", ["word " * 400_000, "x" * 2_000_000, "weather " + "Paris " * 300_000])
async def test_a_huge_prompt_gives_a_bounded_run(demo_url: str, prompt: str) -> None:
    """A 2 MB prompt (one giant word, or hundreds of thousands of words) is not echoed
    into millions of events: the run is a few dozen small events, as for any prompt."""
    small = await stream_demo(demo_url, demo_input("hello there"))
    events = await stream_demo(demo_url, demo_input(prompt))
    assert len(events) < 2 * len(small) + 100
    assert max(len(orjson.dumps(e)) for e in events) < 2048
