"""The run bookkeeping (server/runtime/run_task.py): a run's first RUN_STARTED carries what the caller
adds (the plan), and the agent's events are stored exactly as sent."""

from __future__ import annotations

from agui_gateway.protocol.lineage import new_messages, plan_run
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.run_task import RunTask, UpstreamItem
from agui_gateway.store.base import NewEvent
from agui_gateway.upstream.run import AgentEvent, GatewayEvent


def translate(run: ActiveRun, item: UpstreamItem) -> list[NewEvent]:
    """The records the run task makes of one upstream item (no agent, no store needed)."""
    task = object.__new__(RunTask)
    task.run = run
    return task.records_of(item)


def test_new_messages_are_those_the_thread_lacks_in_input_order() -> None:
    msgs = [
        {"id": "a", "role": "user", "content": "1"},
        {"id": "b", "role": "user", "content": "2"},
        {"id": "a", "role": "user", "content": "dup"},
        {"role": "user", "content": "no id"},
        {"id": "c", "role": "tool", "toolCallId": "t", "content": "r"},
    ]
    assert [m["id"] for m in new_messages([{"id": "b"}], msgs)] == ["a", "c"]
    assert new_messages([{"id": "a"}, {"id": "b"}, {"id": "c"}], msgs) == []


def test_the_runs_first_run_started_carries_the_plan_and_the_agents_event_stays_as_sent() -> None:
    plan = plan_run(
        {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}], "state": {"x": 1}},
        [],
        {},
        None,
    )
    run = ActiveRun("t", "r", "agent", start_after=0, plan=plan, current_run_id="r")
    started = AgentEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "agent-run"})
    records = translate(run, started)
    assert [(r.event["type"], r.source, r.run_id) for r in records] == [
        ("RUN_STARTED", "agent", "agent-run"),
        ("STATE_SNAPSHOT", "gateway", "agent-run"),  # the caller set a state the thread did not have
    ]
    assert records[0].event is started.event  # stored exactly as the agent sent it
    assert records[0].annotation is not None and records[0].annotation["input"]["messages"] == [
        {"id": "u", "role": "user", "content": "hi"}
    ]
    assert records[1].event == {"type": "STATE_SNAPSHOT", "snapshot": {"x": 1}}
    delta = AgentEvent({"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"})
    assert [(r.source, r.run_id, r.annotation) for r in translate(run, delta)] == [("agent", "agent-run", None)]
    # A second RUN_STARTED (an agent's sub-run) carries nothing of the caller's.
    assert translate(run, started)[0].annotation is None
    # A RUN_STARTED the upstream client synthesizes carries the plan like the agent's would.
    run2 = ActiveRun("t", "r2", "agent", start_after=0, plan=plan, current_run_id="r2")
    synthesized = GatewayEvent({"type": "RUN_STARTED", "threadId": "t", "runId": "r2"})
    first = translate(run2, synthesized)[0]
    assert (first.source, first.annotation) == ("gateway", plan.annotation)


def test_a_run_that_ends_before_its_run_started_is_stored_gets_the_gateways() -> None:
    """A batch holding the RUN_STARTED failed to store (disk full): the run's end still
    makes a whole run, with the caller's input."""
    plan = plan_run(
        {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}]}, [], {}, None
    )
    run = ActiveRun("t", "r", "agent", start_after=0, plan=plan, current_run_id="r")
    error = GatewayEvent({"type": "RUN_ERROR", "message": "disk full", "code": "gateway_storage_error"})
    records = translate(run, error)
    assert [(r.event["type"], r.source, r.annotation) for r in records] == [
        ("RUN_STARTED", "gateway", plan.annotation),
        ("RUN_ERROR", "gateway", None),
    ]
    assert records[0].event["runId"] == "r" and run.plan is None
