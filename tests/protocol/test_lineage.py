"""Branch detection, run plans and the run index (protocol.lineage), on hand-made cases."""

from __future__ import annotations

from typing import Any

from support.events import assistant_message as assistant
from support.events import user_message as user

from agui_gateway.protocol.lineage import (
    Parent,
    ParentFinder,
    RunIndex,
    conflicting_ids,
    continues,
    plan_run,
    served_event,
)

THREAD = [user("u1", "q1"), assistant("a1", "r1"), user("u2", "q2"), assistant("a2", "r2")]


def test_continuing_callers() -> None:
    assert continues(THREAD, [*THREAD, user("u3", "q3")])  # a new turn
    assert continues(THREAD, THREAD)  # nothing new (a retry of a failed run, a resume)
    assert continues([], [user("u1", "q1")])
    # Only its new message: a client that does not resend the transcript.
    assert continues(THREAD, [user("u3", "q3")])
    # Fields the client does not keep do not matter; client-only activity may be missing.
    assert continues([{**THREAD[0], "extra": 1}, *THREAD[1:]], THREAD)
    assert continues([*THREAD, {"id": "act", "role": "activity", "content": {}}], THREAD)


def test_branching_callers() -> None:
    assert not continues(THREAD, [user("u1", "q1"), assistant("a1", "r1"), user("u2e", "edited")])  # edit
    assert not continues(THREAD, [user("u1", "q1"), assistant("a1", "r1"), user("u2", "q2")])  # regenerate
    assert not continues(THREAD, [assistant("a1", "r1"), user("u2", "q2"), assistant("a2", "r2")])  # delete
    assert not continues(THREAD, [user("u1", "changed"), *THREAD[1:]])  # changed in place
    assert not continues(THREAD, [THREAD[1], THREAD[0], *THREAD[2:]])  # reordered
    assert not continues(THREAD, [*THREAD[:2], user("ins", "inserted"), *THREAD[2:]])  # inserted before stored ones


def test_conflicting_ids_are_stored_ids_with_other_content() -> None:
    caller = [user("u1", "q1"), user("u2", "changed"), assistant("a2", "r2", extra="ignored"), user("u3", "new")]
    assert conflicting_ids(THREAD, caller) == ["u2"]
    assert conflicting_ids(THREAD, THREAD) == []


def run_events(run_id: str, messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (run_id, {"type": "RUN_STARTED", "threadId": "t", "runId": run_id}),
        (run_id, {"type": "MESSAGES_SNAPSHOT", "messages": messages}),
        (run_id, {"type": "RUN_FINISHED", "threadId": "t", "runId": run_id}),
    ]


def test_the_parent_is_the_latest_run_the_caller_continues() -> None:
    log = run_events("r1", THREAD[:2]) + run_events("r2", THREAD)
    for caller, parent in [
        ([*THREAD[:2], user("u2e", "edited")], "r1"),  # edit
        (THREAD[:3], "r1"),  # regenerate: r2's answer is dropped
        ([user("u9", "fresh start")], None),  # from the empty thread
        ([*THREAD, user("u3", "q3")], "r2"),
    ]:
        finder = ParentFinder(caller)
        for run_id, event in log:
            finder.feed(run_id, event)
        assert finder.parent.run_id == parent, caller


def test_a_plan_records_new_messages_and_what_the_caller_holds() -> None:
    base = {"threadId": "t", "runId": "r3", "tools": [], "context": [], "forwardedProps": {}}
    plain = plan_run({**base, "messages": [*THREAD, user("u3", "q3")], "state": {}}, THREAD, {}, None)
    assert plain.annotation is not None and set(plain.annotation) == {"input"}
    assert plain.annotation["input"]["messages"] == [user("u3", "q3")]
    assert plain.caller_snapshots == [] and not plain.branch
    nothing = plan_run({**base, "messages": THREAD, "state": {}}, THREAD, {}, None)
    assert nothing.annotation is None and nothing.caller_snapshots == []  # served exactly as the agent sent it
    state = plan_run({**base, "messages": THREAD, "state": {"x": 1}}, THREAD, {"x": 0}, None)
    assert state.caller_snapshots == [{"type": "STATE_SNAPSHOT", "snapshot": {"x": 1}}]
    assert plan_run({**base, "messages": THREAD, "state": {"x": 1}}, THREAD, {"x": 1}, None).caller_snapshots == []
    resume = plan_run({**base, "messages": THREAD, "state": {}, "resume": [{"interruptId": "i"}]}, THREAD, {}, None)
    assert resume.annotation is not None and resume.annotation["input"]["resume"] == [{"interruptId": "i"}]
    assert resume.caller_snapshots == [{"type": "MESSAGES_SNAPSHOT", "messages": THREAD}]


def test_a_branch_plan_restates_the_callers_history_and_state() -> None:
    caller = [*THREAD[:2], user("u2e", "edited")]
    plan = plan_run(
        {"threadId": "t", "runId": "r3", "messages": caller, "state": {}}, THREAD, {"s": 2}, Parent("r1", THREAD[:2])
    )
    assert plan.branch and plan.parent_run_id == "r1"
    assert plan.annotation is not None and plan.annotation["parentRunId"] == "r1" and plan.annotation["branch"] is True
    assert plan.annotation["input"]["messages"] == [user("u2e", "edited")]
    assert plan.caller_snapshots == [
        {"type": "MESSAGES_SNAPSHOT", "messages": caller},
        {"type": "STATE_SNAPSHOT", "snapshot": {}},  # the caller's state, even an empty one
    ]
    started = {"type": "RUN_STARTED", "threadId": "t", "runId": "r3", "input": {"agent": "own"}}
    served = served_event(started, plan.annotation)
    assert served == {**started, "input": plan.annotation["input"], "parentRunId": "r1"}
    assert started["input"] == {"agent": "own"}  # the stored event is not touched


def test_run_index_lists_runs_with_parents_and_lineage() -> None:
    index = RunIndex()
    seq = 0
    for run_id, annotation, terminal in [
        ("r1", None, {"type": "RUN_FINISHED"}),
        ("r2", None, {"type": "RUN_ERROR", "message": "x"}),
        ("r3", {"branch": True, "parentRunId": "r1"}, {"type": "RUN_FINISHED", "outcome": {"type": "interrupt"}}),
        ("r4", None, None),
    ]:
        seq += 1
        index.feed(seq, run_id, {"type": "RUN_STARTED", "runId": run_id}, annotation)
        if terminal is not None:
            seq += 1
            index.feed(seq, run_id, terminal, None)
    listed = [info.to_json() for info in index.runs]
    assert [(r["runId"], r["parentRunId"], r["branch"], r["status"]) for r in listed] == [
        ("r1", None, False, "finished"),
        ("r2", "r1", False, "error"),
        ("r3", "r1", True, "interrupted"),
        ("r4", "r3", False, "running"),
    ]
    assert [(r["firstSeq"], r["lastSeq"]) for r in listed] == [(1, 2), (3, 4), (5, 6), (7, 7)]
    assert index.lineage("r4") == {"r4", "r3", "r1"}
    assert index.lineage("r2") == {"r2", "r1"}
    assert index.lineage("nope") is None


def test_run_index_figures_and_the_cancelled_status() -> None:
    """Each run's start, duration (once ended), time to its second record, records and bytes."""
    index = RunIndex()
    records = [  # (seq, run, event, ts, bytes)
        (1, "r1", {"type": "RUN_STARTED"}, 1_000, 100),
        (2, "r1", {"type": "TEXT_MESSAGE_START", "messageId": "m"}, 1_250, 40),
        (3, "r1", {"type": "TEXT_MESSAGE_END", "messageId": "m"}, 1_900, 30),
        (4, "r1", {"type": "RUN_FINISHED", "outcome": {"type": "cancelled"}}, 2_000, 60),
        (5, "r2", {"type": "RUN_STARTED"}, 5_000, 100),
    ]
    for seq, run_id, event, ts, size in records:
        index.feed(seq, run_id, event, None, ts, size)
    first, second = (info.to_json() for info in index.runs)
    assert {k: first[k] for k in ("status", "startedAt", "durationMs", "firstEventMs", "events", "bytes")} == {
        "status": "cancelled",
        "startedAt": 1_000,
        "durationMs": 1_000,
        "firstEventMs": 250,
        "events": 4,
        "bytes": 230,
    }
    # Running, one record: no duration and no first event yet.
    assert (second["status"], second["durationMs"], second["firstEventMs"], second["events"]) == (
        "running",
        None,
        None,
        1,
    )
