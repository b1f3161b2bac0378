"""The upstream client against real, misbehaving agents on loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent, sse
from support.servers import refused_port, serve_app
from support.waiting import wait_until_async

from agui_gateway.upstream.agent_http import UpstreamTimeouts
from agui_gateway.upstream.run import AgentEvent, GatewayEvent, UpstreamItem, UpstreamRun
from agui_gateway.upstream.sse_parser import Malformed, SseData, SseParser

RUN_INPUT: dict[str, Any] = {
    "threadId": "thread-1",
    "runId": "run-1",
    "messages": [{"id": "u1", "role": "user", "content": "hello"}],
    "state": {},
    "tools": [],
    "context": [],
}
TIMEOUTS = UpstreamTimeouts(connect=5.0, read=30.0, total=None)

STARTED = {"type": "RUN_STARTED", "threadId": "thread-1", "runId": "run-1"}
MSG_START = {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}
MSG_CONTENT = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Hi there"}
MSG_END = {"type": "TEXT_MESSAGE_END", "messageId": "m1"}
FINISHED = {"type": "RUN_FINISHED", "threadId": "thread-1", "runId": "run-1"}


async def consume_run(
    url: str, timeouts: UpstreamTimeouts = TIMEOUTS, **options: Any
) -> tuple[list[UpstreamItem], UpstreamRun]:
    async with httpx.AsyncClient() as client:
        run = UpstreamRun(client, url, RUN_INPUT, timeouts=timeouts, **options)
        async with run:
            items = [item async for item in run]
    return items, run


async def run_against(
    agent: ScriptedAgent, timeouts: UpstreamTimeouts = TIMEOUTS, **options: Any
) -> tuple[list[UpstreamItem], UpstreamRun]:
    with serve_app(agent) as url:
        return await consume_run(url + "/agent", timeouts, **options)


def gateway_events(items: list[UpstreamItem]) -> list[dict[str, Any]]:
    return [item.event for item in items if isinstance(item, GatewayEvent)]


def stored_events(items: list[UpstreamItem]) -> list[dict[str, Any]]:
    """What the gateway stores, in order (agent and gateway events alike)."""
    return [item.event for item in items if isinstance(item, (AgentEvent, GatewayEvent))]


def assert_gateway_failure(items: list[UpstreamItem], code: str) -> dict[str, Any]:
    """The run ends with exactly one gateway RUN_ERROR carrying ``code``; returns it."""
    last = items[-1]
    assert isinstance(last, GatewayEvent)
    assert last.event["type"] == "RUN_ERROR"
    assert last.event["code"] == code
    assert isinstance(last.event["message"], str) and last.event["message"]
    assert [e["type"] for e in stored_events(items)].count("RUN_ERROR") == 1
    return last.event


# ------------------------------------------------------------------ normal runs


async def test_forwards_the_input_and_yields_the_agents_events_verbatim() -> None:
    events = [STARTED, MSG_START, MSG_CONTENT, MSG_END, {**FINISHED, "result": {"x": [1, None]}}]
    agent = ScriptedAgent([sse(*events)])
    items, run = await run_against(agent)
    assert items == [AgentEvent(event) for event in events]
    assert run.started and run.terminated and run.stats.error_code is None
    assert run.stats.agent_events == 5 and run.stats.malformed == 0
    headers, body = agent.requests[0]
    assert headers["accept"] == "text/event-stream"
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == RUN_INPUT


async def test_passes_extra_headers_to_the_agent() -> None:
    agent = ScriptedAgent([sse(STARTED, FINISHED)])
    await run_against(agent, headers={"authorization": "Bearer abc", "Accept": "text/html"})
    sent = agent.requests[0][0]
    assert sent["authorization"] == "Bearer abc"
    assert sent["accept"] == "text/event-stream"


async def test_an_agent_run_error_ends_the_run_without_a_gateway_event() -> None:
    error = {"type": "RUN_ERROR", "message": "model overloaded", "code": "overloaded"}
    items, run = await run_against(ScriptedAgent([sse(STARTED, MSG_START, error)]))
    assert items == [AgentEvent(STARTED), AgentEvent(MSG_START), AgentEvent(error)]
    assert run.terminated and run.stats.error_code is None


async def test_reading_stops_at_the_terminal_event_and_closes_the_connection() -> None:
    # Events after RUN_FINISHED would make the thread's log invalid, and an agent that
    # keeps its connection open must not hold the run open until the read timeout.
    agent = ScriptedAgent([sse(STARTED, FINISHED, MSG_START)], then="stall")
    with serve_app(agent) as url:
        async with httpx.AsyncClient() as client:
            run = UpstreamRun(client, url, RUN_INPUT, timeouts=UpstreamTimeouts(connect=5, read=120))
            items = [item async for item in run]
            # Checked while the client (and its connection pool) is still open.
            await wait_until_async(agent.disconnected.is_set, what="the agent sees the connection closed")
    assert items == [AgentEvent(STARTED), AgentEvent(FINISHED)]


async def test_a_first_event_other_than_run_started_gets_a_gateway_run_started() -> None:
    items, _ = await run_against(ScriptedAgent([sse(MSG_START, MSG_END, FINISHED)]))
    first = items[0]
    assert isinstance(first, GatewayEvent)
    assert first.event["type"] == "RUN_STARTED"
    assert (first.event["threadId"], first.event["runId"]) == ("thread-1", "run-1")
    assert first.event["input"] == RUN_INPUT
    assert items[1:] == [AgentEvent(MSG_START), AgentEvent(MSG_END), AgentEvent(FINISHED)]


async def test_crlf_line_endings_split_between_cr_and_lf() -> None:
    raw = sse(STARTED, MSG_START, FINISHED).replace(b"\n", b"\r\n")
    cr = raw.index(b"\r\n\r\n") + 1  # between the CR and the LF of a line end
    items, _ = await run_against(ScriptedAgent([raw[:cr], raw[cr:]]))
    assert items == [AgentEvent(STARTED), AgentEvent(MSG_START), AgentEvent(FINISHED)]


async def test_a_2mb_event_split_across_many_writes() -> None:
    huge = {**MSG_CONTENT, "delta": "ä€" * 350_000 + "x" * 1_000_000}  # > 2 MB of UTF-8
    raw = sse(STARTED, MSG_START, huge, MSG_END, FINISHED)
    assert len(raw) > 2 * 1024 * 1024
    pieces = [raw[i : i + 65_521] for i in range(0, len(raw), 65_521)]  # odd size: splits inside characters
    items, run = await run_against(ScriptedAgent(pieces))
    assert items == [AgentEvent(e) for e in (STARTED, MSG_START, huge, MSG_END, FINISHED)]
    assert run.stats.bytes_received == len(raw)


async def test_a_final_event_without_its_blank_line_at_eof_counts() -> None:
    raw = sse(STARTED) + b"data: " + orjson.dumps(FINISHED)
    items, _ = await run_against(ScriptedAgent([raw]))
    assert items == [AgentEvent(STARTED), AgentEvent(FINISHED)]


# ------------------------------------------------------------ malformed input


async def test_malformed_sse_lines_are_skipped_counted_and_the_rest_kept() -> None:
    raw = (
        sse(STARTED)
        + b": a comment\nevent: message\nid: 7\nretry: 1000\n"
        + b"this line is no SSE field\n"
        + b'{"type": "TEXT_MESSAGE_START"}\n\n'
        + sse(MSG_START, MSG_CONTENT, MSG_END, FINISHED)
    )
    items, run = await run_against(ScriptedAgent([raw]))
    malformed = [item for item in items if isinstance(item, Malformed)]
    assert len(malformed) == 2
    assert "this line is no SSE field" in malformed[0].raw_excerpt
    assert '{"type": "TEXT_MESSAGE_START"}' in malformed[1].raw_excerpt
    assert stored_events(items) == [STARTED, MSG_START, MSG_CONTENT, MSG_END, FINISHED]
    assert isinstance(items[1], Malformed)  # in stream order, after RUN_STARTED
    assert run.stats.malformed == 2 and run.stats.error_code is None


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        (b"{not json", "not JSON"),
        (b'{"type": "TEXT_MESSAGE_END", "messageId": "m1"', "not JSON"),
        (b"\xff\xfe not utf-8", "not JSON"),
        (b'[{"type": "RUN_FINISHED"}]', "list"),
        (b'"RUN_FINISHED"', "str"),
        (b"42", "int"),
        (b"null", "NoneType"),
        (b'{"messageId": "m1", "delta": "x"}', "'type'"),
        (b'{"type": 7}', "'type'"),
        (b'{"type": null}', "'type'"),
    ],
)
async def test_data_that_is_not_an_event_object_is_malformed(data: bytes, reason_part: str) -> None:
    raw = sse(STARTED, MSG_START) + b"data: " + data + b"\n\n" + sse(MSG_CONTENT, MSG_END, FINISHED)
    items, run = await run_against(ScriptedAgent([raw]))
    assert isinstance(items[2], Malformed)
    assert reason_part in items[2].reason
    assert items[2].raw_excerpt  # something to log
    assert stored_events(items) == [STARTED, MSG_START, MSG_CONTENT, MSG_END, FINISHED]
    assert run.stats.malformed == 1


async def test_an_event_over_the_size_limit_is_skipped_and_the_rest_kept() -> None:
    big = {**MSG_CONTENT, "delta": "y" * 5000}
    raw = sse(STARTED, MSG_START, big, MSG_CONTENT, MSG_END, FINISHED)
    pieces = [raw[i : i + 700] for i in range(0, len(raw), 700)]
    items, run = await run_against(ScriptedAgent(pieces), max_event_bytes=1000)
    assert stored_events(items) == [STARTED, MSG_START, MSG_CONTENT, MSG_END, FINISHED]
    assert isinstance(items[2], Malformed) and "1000 bytes" in items[2].reason
    assert run.stats.malformed == 1


# ------------------------------------------------------------- upstream faults


async def test_unreachable_agent_ends_the_run_with_run_started_and_run_error() -> None:
    with refused_port() as url:
        items, run = await consume_run(url)
    assert len(items) == 2
    started = items[0]
    assert isinstance(started, GatewayEvent) and started.event["type"] == "RUN_STARTED"
    assert (started.event["threadId"], started.event["runId"]) == ("thread-1", "run-1")
    error = assert_gateway_failure(items, "upstream_unreachable")
    assert "unreachable" in error["message"] and url.rstrip("/") in error["message"]
    assert run.stats.error_code == "upstream_unreachable"


async def test_the_synthesized_run_started_carries_the_given_input() -> None:
    trimmed = {**RUN_INPUT, "messages": RUN_INPUT["messages"][-1:]}
    with refused_port() as url:
        async with httpx.AsyncClient() as client:
            run = UpstreamRun(client, url, RUN_INPUT, timeouts=TIMEOUTS, run_started_input=trimmed)
            items = [item async for item in run]
            bare = UpstreamRun(client, url, RUN_INPUT, timeouts=TIMEOUTS, run_started_input=None)
            bare_items = [item async for item in bare]
    assert items[0].event["input"] == trimmed  # type: ignore[union-attr]
    assert "input" not in bare_items[0].event  # type: ignore[union-attr]


async def test_http_500_with_json_body() -> None:
    body = orjson.dumps({"error": "the model provider is down"})
    items, _ = await run_against(ScriptedAgent([body], status=500, content_type="application/json"))
    assert [e["type"] for e in gateway_events(items)] == ["RUN_STARTED", "RUN_ERROR"]
    error = assert_gateway_failure(items, "upstream_http_status")
    assert "500" in error["message"]
    assert "the model provider is down" in error["message"]


async def test_http_200_with_html() -> None:
    page = b"<html><body>Welcome to nginx!</body></html>"
    items, _ = await run_against(ScriptedAgent([page], content_type="text/html; charset=utf-8"))
    assert [e["type"] for e in gateway_events(items)] == ["RUN_STARTED", "RUN_ERROR"]
    error = assert_gateway_failure(items, "upstream_content_type")
    assert "text/html" in error["message"] and "text/event-stream" in error["message"]


async def test_stream_ending_without_a_terminal_event() -> None:
    items, run = await run_against(ScriptedAgent([sse(STARTED, MSG_START, MSG_CONTENT)]))
    assert items[:3] == [AgentEvent(STARTED), AgentEvent(MSG_START), AgentEvent(MSG_CONTENT)]
    assert len(items) == 4  # no second RUN_STARTED: the agent sent one
    error = assert_gateway_failure(items, "upstream_incomplete")
    assert "RUN_FINISHED" in error["message"]
    assert run.stats.error_code == "upstream_incomplete"


async def test_an_empty_sse_body_gets_run_started_and_run_error() -> None:
    items, _ = await run_against(ScriptedAgent([]))
    assert [e["type"] for e in gateway_events(items)] == ["RUN_STARTED", "RUN_ERROR"]
    assert_gateway_failure(items, "upstream_incomplete")


async def test_stream_stalling_past_the_read_timeout() -> None:
    agent = ScriptedAgent([sse(STARTED, MSG_START)], then="stall")
    with serve_app(agent) as url:
        async with httpx.AsyncClient() as client:
            run = UpstreamRun(client, url, RUN_INPUT, timeouts=UpstreamTimeouts(connect=5, read=0.3))
            items = [item async for item in run]
            await wait_until_async(agent.disconnected.is_set, what="the agent sees the connection closed")
    assert items[:2] == [AgentEvent(STARTED), AgentEvent(MSG_START)]
    error = assert_gateway_failure(items, "upstream_read_timeout")
    assert "0.3" in error["message"]


async def test_heartbeats_do_not_beat_the_total_timeout() -> None:
    agent = ScriptedAgent([sse(STARTED)], then="trickle")
    items, _ = await run_against(agent, UpstreamTimeouts(connect=5, read=30, total=0.5))
    assert items[0] == AgentEvent(STARTED)
    error = assert_gateway_failure(items, "upstream_total_timeout")
    assert "0.5" in error["message"]
    await wait_until_async(agent.disconnected.is_set, what="the agent sees the connection closed")


async def test_connection_dropped_mid_stream() -> None:
    # The half-sent event at the drop is not taken for a complete one.
    partial = b'data: {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "cut'
    items, _ = await run_against(ScriptedAgent([sse(STARTED, MSG_START), partial], then="abort"))
    assert items[:2] == [AgentEvent(STARTED), AgentEvent(MSG_START)]
    assert len(items) == 3
    assert_gateway_failure(items, "upstream_disconnected")


async def cancel_while_consuming(run: UpstreamRun, *, cancel_at: int, hold_at: int | None) -> list[UpstreamItem]:
    """Iterate ``run`` in a task and cancel that task once ``cancel_at`` items arrived.

    With ``hold_at`` the consumer blocks after that many items (as on a store write
    that the stop interrupts); otherwise it is cancelled while awaiting the agent.
    """
    received: list[UpstreamItem] = []
    never = asyncio.Event()
    enough = asyncio.Event()

    async def consume() -> None:
        async with run:
            async for item in run:
                received.append(item)
                if len(received) >= cancel_at:
                    enough.set()
                if len(received) == hold_at:
                    await never.wait()

    task = asyncio.create_task(consume())
    # Wait for the items (or for the consumer to end early), with a deadline.
    await asyncio.wait([asyncio.ensure_future(enough.wait()), task], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert enough.is_set() or task.done(), "the agent's items never arrived"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return received


@pytest.mark.parametrize("cancelled_while", ["awaiting the agent", "handling an item"])
async def test_cancelling_the_consumer_closes_the_upstream_connection(cancelled_while: str) -> None:
    agent = ScriptedAgent([sse(STARTED, MSG_START)], then="stall")
    with serve_app(agent) as url:
        async with httpx.AsyncClient() as client:
            run = UpstreamRun(client, url, RUN_INPUT, timeouts=TIMEOUTS)
            hold_at = 2 if cancelled_while == "handling an item" else None
            received = await cancel_while_consuming(run, cancel_at=2, hold_at=hold_at)
            # Checked while the client (and its connection pool) is still open.
            await wait_until_async(agent.disconnected.is_set, what="the agent sees the connection closed")
    assert received == [AgentEvent(STARTED), AgentEvent(MSG_START)]
    # The stop endpoint then ends the run in the log, once.
    closing = run.closing_events("run stopped by a client", "stopped")
    assert closing == [{"type": "RUN_ERROR", "message": "run stopped by a client", "code": "stopped"}]
    assert run.closing_events("again", "stopped") == []


async def test_a_stop_before_the_terminal_event_was_handed_out_still_ends_the_run() -> None:
    # RUN_FINISHED arrives in the same write as RUN_STARTED, but the consumer is
    # stopped while storing RUN_STARTED: the log has no terminal event yet.
    agent = ScriptedAgent([sse(STARTED, MSG_START, MSG_END, FINISHED)], then="stall")
    with serve_app(agent) as url:
        async with httpx.AsyncClient() as client:
            run = UpstreamRun(client, url, RUN_INPUT, timeouts=TIMEOUTS)
            received = await cancel_while_consuming(run, cancel_at=1, hold_at=1)
    assert received == [AgentEvent(STARTED)]
    assert run.started and not run.terminated
    assert [e["type"] for e in run.closing_events("stopped", "stopped")] == ["RUN_ERROR"]


async def test_closing_a_run_that_never_started_opens_it_first() -> None:
    async with httpx.AsyncClient() as client:
        run = UpstreamRun(client, "http://127.0.0.1:9/", RUN_INPUT, timeouts=TIMEOUTS)
        closing = run.closing_events("stopped before the agent answered", "stopped")
    assert [e["type"] for e in closing] == ["RUN_STARTED", "RUN_ERROR"]
    assert closing[0]["runId"] == "run-1"


async def test_fault_streams_pass_the_official_verifier(official_client: Any) -> None:
    """What the gateway stores for a fault is a valid AG-UI stream, alone and after
    earlier runs (finished or errored) of the same thread."""
    with refused_port() as url:
        unreachable, _ = await consume_run(url)
    incomplete, _ = await run_against(ScriptedAgent([sse(STARTED, MSG_START, MSG_CONTENT)]))
    headless, _ = await run_against(ScriptedAgent([sse(MSG_START, MSG_END)]))
    finished = [STARTED, FINISHED]
    for items in (unreachable, incomplete, headless):
        events = stored_events(items)
        for history in ([], finished, stored_events(unreachable)):
            result = official_client.replay(history + events)
            assert result.error is None, (history, events, result.error)
    # A run the gateway had to open records the user's message from the input.
    for items in (unreachable, headless):
        result = official_client.replay(stored_events(items))
        assert [m["id"] for m in result.messages if m["role"] == "user"] == ["u1"]


# ---------------------------------------------------------------- the parser


PARSER_STREAMS = [
    # multi-line data, comments, ignored fields, a BOM, CRLF and CR line ends, an
    # event with no data (not dispatched), a final event without its blank line
    b'\xef\xbb\xbf: hello\r\nid: 1\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    b"retry: 10\n\n"
    b"data:no-space\rdata:  two spaces\r\r"
    b"data\n\n"
    b"data: last",
]
PARSER_EXPECTED = [
    [
        SseData(b'{"a":\n1}'),
        SseData(b"no-space\n two spaces"),
        SseData(b""),
        SseData(b"last"),
    ],
]


def parse(chunks: list[bytes], max_event_bytes: int = 1 << 20) -> list[Any]:
    parser = SseParser(max_event_bytes)
    out: list[Any] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.close()


@pytest.mark.parametrize(("stream", "expected"), list(zip(PARSER_STREAMS, PARSER_EXPECTED, strict=False)))
def test_parser_result_does_not_depend_on_how_bytes_are_split(stream: bytes, expected: list[Any]) -> None:
    assert parse([stream]) == expected
    for cut in range(len(stream) + 1):
        assert parse([stream[:cut], b"", stream[cut:]]) == expected, cut
    assert parse([stream[i : i + 1] for i in range(len(stream))]) == expected


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_parser_reports_an_oversized_line_once_and_recovers(eol: bytes) -> None:
    stream = (b"data: " + b"z" * 100 + b"\ndata: more\n\n" + b'data: {"type":"OK"}\n\n').replace(b"\n", eol)
    for size in (1, 2, 7, 64, 105, 106, 107, len(stream)):
        out = parse([stream[i : i + size] for i in range(0, len(stream), size)], max_event_bytes=50)
        assert len(out) == 2
        assert isinstance(out[0], Malformed) and "50 bytes" in out[0].reason
        assert out[1] == SseData(b'{"type":"OK"}')


def test_parser_bounds_an_event_made_of_many_small_data_lines() -> None:
    stream = b"data: 0123456789\n" * 20 + b"\n" + b"data: 1\ndata: 2\n\n"
    out = parse([stream], max_event_bytes=100)
    assert len(out) == 2
    assert isinstance(out[0], Malformed) and "100 bytes" in out[0].reason
    assert out[1] == SseData(b"1\n2")
