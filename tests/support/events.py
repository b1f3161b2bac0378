"""AG-UI events and stored records as the gateway tests build and read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def user_message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "content": text}


def assistant_message(message_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": message_id, "role": "assistant", "content": text, **extra}


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` levels of ``{"a": ...}``."""
    for _ in range(depth):
        leaf = {"a": leaf}
    return leaf


def run_input(
    thread_id: str, run_id: str, messages: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": run_id,
        "messages": messages or [],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
        **extra,
    }


def agent_run_events(thread_id: str, run_id: str, *, text_deltas: int = 6, tools: int = 2) -> list[dict[str, Any]]:
    """A realistic agent run: state, text, parallel tool calls with results, deltas, custom."""
    p = run_id
    events: list[dict[str, Any]] = [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id},
        {"type": "STATE_SNAPSHOT", "snapshot": {"run": run_id, "progress": 0, "todo": ["a", "b"]}},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{p}-m1", "role": "assistant"},
    ]
    events += [
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{p}-m1", "delta": f"part {i} ünïcödé "}
        for i in range(text_deltas)
    ]
    events.append({"type": "TEXT_MESSAGE_END", "messageId": f"{p}-m1"})
    for t in range(tools):
        events.append(
            {
                "type": "TOOL_CALL_START",
                "toolCallId": f"{p}-c{t}",
                "toolCallName": "lookup",
                "parentMessageId": f"{p}-m1",
            }
        )
    for piece in ('{"q":', '"x', 'y"}'):
        for t in range(tools):  # interleaved ARGS of parallel calls
            events.append({"type": "TOOL_CALL_ARGS", "toolCallId": f"{p}-c{t}", "delta": piece})
    for t in range(tools):
        events.append({"type": "TOOL_CALL_END", "toolCallId": f"{p}-c{t}"})
    for t in reversed(range(tools)):
        events.append(
            {"type": "TOOL_CALL_RESULT", "messageId": f"{p}-r{t}", "toolCallId": f"{p}-c{t}", "content": f"result {t}"}
        )
    events += [
        {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "/progress", "value": 1}]},
        {"type": "CUSTOM", "name": "progress", "value": {"done": True}},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{p}-m2", "role": "assistant"},
    ]
    events += [
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{p}-m2", "delta": f"answer {i}. "} for i in range(text_deltas)
    ]
    events += [
        {"type": "TEXT_MESSAGE_END", "messageId": f"{p}-m2"},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id},
    ]
    return events


def served(record: dict[str, Any]) -> dict[str, Any]:
    """The event a stored record is served as: the README's rule, written out independently
    (the ``gateway`` annotation's ``input`` and ``parentRunId`` set on the event)."""
    annotation = record.get("gateway") or {}
    return {**record["event"], **{k: annotation[k] for k in ("input", "parentRunId") if k in annotation}}


def read_log(data_dir: Path, thread_id: str) -> list[dict[str, Any]]:
    """The stored records of a thread, straight from its JSONL file."""
    path = data_dir / "threads" / thread_id / "log.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


TERMINAL_TYPES = ("RUN_FINISHED", "RUN_ERROR")


def assert_stored_as_sent(
    records: list[dict[str, Any]], runs: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> None:
    """The stored log is, run by run, exactly what the agent sent plus the README's gateway additions.

    ``runs``: (the caller's RunAgentInput, the events the agent sent) in order, for runs
    that continue the thread with an empty state (no branch, no state of the caller's
    own, no resume). Written from the README, not from the gateway's code: each event
    of the agent stored as sent (``source`` "agent"), the run's RUN_STARTED with the
    annotation ``{"input": {...}}`` holding the caller's new messages (none when it sent
    none), and a gateway RUN_ERROR (``upstream_incomplete``) after an agent that stopped
    without a terminal event. Nothing else.
    """
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1)), "seqs are dense from 1"
    at = 0
    for run_input, sent in runs:
        stored = records[at : at + len(sent)]
        label = f"run {run_input['runId']}"
        assert [r["event"] for r in stored] == sent, f"{label}: the stored events are not what the agent sent"
        assert [r["source"] for r in stored] == ["agent"] * len(sent), f"{label}: not stored as the agent's"
        new_messages = run_input.get("messages") or []
        if new_messages:
            assert sent[0]["type"] == "RUN_STARTED"
            note = stored[0].get("gateway")
            assert note is not None and set(note) == {"input"}, f"{label}: annotation {note!r}"
            recorded = note["input"]
            assert (recorded["threadId"], recorded["runId"]) == (run_input["threadId"], run_input["runId"])
            assert recorded["messages"] == new_messages, f"{label}: the caller's new messages are not recorded"
            annotated = stored[1:]
        else:
            annotated = stored
        assert all("gateway" not in r for r in annotated), f"{label}: an annotation on a later event"
        at += len(sent)
        if sent[-1]["type"] not in TERMINAL_TYPES:
            closing = records[at]
            assert closing["source"] == "gateway" and closing["event"]["type"] == "RUN_ERROR", closing
            assert closing["event"]["code"] == "upstream_incomplete", closing
            at += 1
    assert at == len(records), f"{len(records) - at} stored record(s) nobody sent: {records[at:][:3]}"
