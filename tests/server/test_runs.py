"""The run bookkeeping (server/runs.py) that records a caller's new messages and hands
the gateway's input run over to the agent's run."""

from __future__ import annotations

import orjson

from agui_gateway.server.active_run import ActiveRun
from agui_gateway.server.runs import RunManager, new_messages
from agui_gateway.upstream.run import AgentEvent, GatewayEvent


def test_new_messages_are_those_the_thread_lacks_in_input_order() -> None:
    msgs = [
        {"id": "a", "role": "user", "content": "1"},
        {"id": "b", "role": "user", "content": "2"},
        {"id": "a", "role": "user", "content": "dup"},
        {"role": "user", "content": "no id"},
        {"id": "c", "role": "tool", "toolCallId": "t", "content": "r"},
    ]
    assert [m["id"] for m in new_messages({"b"}, msgs)] == ["a", "c"]
    assert new_messages({"a", "b", "c"}, msgs) == []


def test_the_gateways_input_run_hands_over_to_the_agents_run() -> None:
    translate = RunManager._translate
    manager = object.__new__(RunManager)
    run = ActiveRun("t", "r", "agent", start_after=0, input_run_open=True, current_run_id="r")
    synthesized = GatewayEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "r"})
    assert translate(manager, run, synthesized) == []  # the gateway's own run already stands for it
    started = AgentEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "agent-run"})
    records = translate(manager, run, started)
    assert [(r.event["type"], r.source, r.run_id) for r in records] == [
        ("RUN_FINISHED", "gateway", "r"),
        ("RUN_STARTED", "agent", "agent-run"),
    ]
    assert records[1].event is started.event  # stored exactly as the agent sent it
    delta = AgentEvent({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"})
    assert [(r.source, r.run_id) for r in translate(manager, run, delta)] == [("agent", "agent-run")]
    # An agent that sends no RUN_STARTED continues the gateway's run.
    run2 = ActiveRun("t", "r2", "agent", start_after=0, input_run_open=True, current_run_id="r2")
    assert [r.event["type"] for r in translate(manager, run2, delta)] == ["TEXT_MESSAGE_START"]
    assert not run2.input_run_open
    assert orjson.dumps(records[0].event) == b'{"type":"RUN_FINISHED","threadId":"t","runId":"r"}'
