"""The Node harness really drives the official @ag-ui/client.

Every expectation here is written by hand from the protocol's semantics on a
small stream, so these tests say what the client does, not what the harness
happened to print.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.official_client import HARNESS_DIR, HarnessError, HarnessNotInstalled, Held, Mode, OfficialClient

Event = dict[str, Any]


def run_started(run_id: str = "r1") -> Event:
    return {"type": "RUN_STARTED", "threadId": "t1", "runId": run_id}


def run_finished(run_id: str = "r1") -> Event:
    return {"type": "RUN_FINISHED", "threadId": "t1", "runId": run_id}


def text_message(message_id: str, *deltas: str) -> list[Event]:
    return [
        {"type": "TEXT_MESSAGE_START", "messageId": message_id, "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": message_id, "delta": d} for d in deltas),
        {"type": "TEXT_MESSAGE_END", "messageId": message_id},
    ]


def tool_call(call_id: str, parent_id: str, args: str, result: str, result_id: str) -> list[Event]:
    return [
        {
            "type": "TOOL_CALL_START",
            "toolCallId": call_id,
            "toolCallName": "lookup",
            "parentMessageId": parent_id,
        },
        {"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": args},
        {"type": "TOOL_CALL_END", "toolCallId": call_id},
        {"type": "TOOL_CALL_RESULT", "messageId": result_id, "toolCallId": call_id, "content": result},
    ]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


# -- the reducer ----------------------------------------------------------


def test_text_stream_becomes_one_assistant_message(official_client: OfficialClient) -> None:
    events = [run_started(), *text_message("m1", "Hel", "lo, ", "world"), run_finished()]

    result = official_client.replay(events)

    assert result.error is None
    assert result.messages == [{"id": "m1", "role": "assistant", "content": "Hello, world"}]
    assert result.state == {}  # a fresh agent starts from an empty object
    assert result.warnings == []
    assert result.events == len(events)


def test_run_mode_goes_through_run_agent_with_the_same_outcome(official_client: OfficialClient) -> None:
    events = [run_started(), *text_message("m1", "a", "b"), run_finished()]

    result = official_client.replay(events, mode="run")

    assert result.error is None
    assert result.messages == [{"id": "m1", "role": "assistant", "content": "ab"}]


def test_state_snapshot_then_delta_gives_the_patched_state(official_client: OfficialClient) -> None:
    events = [
        run_started(),
        {"type": "STATE_SNAPSHOT", "snapshot": {"count": 1, "items": ["a"]}},
        {
            "type": "STATE_DELTA",
            "delta": [
                {"op": "replace", "path": "/count", "value": 2},
                {"op": "add", "path": "/items/-", "value": "b"},
            ],
        },
        run_finished(),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert result.state == {"count": 2, "items": ["a", "b"]}


def test_tool_call_and_result_attach_to_the_parent_message(official_client: OfficialClient) -> None:
    events = [
        run_started(),
        *text_message("m1", "Let me look."),
        *tool_call("tc1", "m1", '{"q":"x"}', "found", "res1"),
        run_finished(),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert result.messages == [
        {
            "id": "m1",
            "role": "assistant",
            "content": "Let me look.",
            "toolCalls": [{"id": "tc1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}],
        },
        {"id": "res1", "role": "tool", "toolCallId": "tc1", "content": "found"},
    ]


def test_two_runs_in_one_connect_stream_accumulate(official_client: OfficialClient) -> None:
    events = [
        run_started("r1"),
        *text_message("m1", "first"),
        run_finished("r1"),
        run_started("r2"),
        *text_message("m2", "second"),
        run_finished("r2"),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert [m["content"] for m in result.messages] == ["first", "second"]


def test_messages_snapshot_inside_a_run_replaces_the_conversation(official_client: OfficialClient) -> None:
    user = {"id": "u1", "role": "user", "content": "hi"}
    events = [
        run_started(),
        *text_message("m1", "dropped"),
        {"type": "MESSAGES_SNAPSHOT", "messages": [user]},
        run_finished(),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert result.messages == [user]


def test_samples_are_what_the_agent_holds_mid_stream(official_client: OfficialClient) -> None:
    interrupt = {"id": "i1", "reason": "confirm"}
    events = [
        run_started(),
        *text_message("m1", "a", "b"),
        {
            "type": "RUN_FINISHED",
            "threadId": "t1",
            "runId": "r1",
            "outcome": {"type": "interrupt", "interrupts": [interrupt]},
        },
    ]

    result = official_client.replay(events, sample_after=[0, 2, 3, 5, 6])

    assert result.error is None
    message = {"id": "m1", "role": "assistant"}
    assert result.samples == {
        0: Held([], {}, []),
        2: Held([{**message, "content": ""}], {}, []),  # after TEXT_MESSAGE_START
        3: Held([{**message, "content": "a"}], {}, []),
        5: Held([{**message, "content": "ab"}], {}, []),  # ended, the run not yet
        6: Held([{**message, "content": "ab"}], {}, [interrupt]),  # the outcome is pending
    }
    assert result.end == result.samples[6]


def test_then_connects_the_same_agent_again_keeping_what_it_holds(official_client: OfficialClient) -> None:
    first = [run_started("r1"), *text_message("m1", "kept")]  # cut: the run never ends
    second = [
        run_started("r2"),
        {"type": "MESSAGES_SNAPSHOT", "messages": []},
        *text_message("m2", "new"),
        run_finished("r2"),
    ]

    kept = official_client.replay(first, then=[[run_started("r2"), *text_message("m2", "new"), run_finished("r2")]])
    replaced = official_client.replay(first, then=[second])
    rejected = official_client.replay(first, then=[text_message("m3", "no RUN_STARTED")])

    # A new connection is a new stream (RUN_STARTED is welcome again) on the same messages.
    assert kept.error is None
    assert [m["content"] for m in kept.messages] == ["kept", "new"]
    assert replaced.error is None
    assert [m["id"] for m in replaced.messages] == ["m2"]
    assert rejected.error is not None and "RUN_STARTED" in rejected.error
    assert [m["id"] for m in rejected.messages] == ["m1"]


# -- verification errors --------------------------------------------------


def test_first_event_must_be_run_started(official_client: OfficialClient) -> None:
    result = official_client.replay(text_message("m1", "x"))

    assert result.error is not None
    assert "RUN_STARTED" in result.error
    assert result.messages == []


def test_content_without_start_is_an_error_and_keeps_earlier_progress(
    official_client: OfficialClient,
) -> None:
    events = [
        run_started(),
        *text_message("m1", "kept"),
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": "orphan"},
        *text_message("m3", "never applied"),
    ]

    result = official_client.replay(events)

    assert result.error is not None
    assert "m2" in result.error
    # Everything before the bad event was applied, nothing after it.
    assert result.messages == [{"id": "m1", "role": "assistant", "content": "kept"}]


def test_messages_snapshot_outside_a_run_is_rejected(official_client: OfficialClient) -> None:
    events = [run_started(), run_finished(), {"type": "MESSAGES_SNAPSHOT", "messages": []}]

    result = official_client.replay(events)

    assert result.error is not None
    assert "MESSAGES_SNAPSHOT" in result.error


def test_a_new_run_may_follow_run_error_but_nothing_else_may(official_client: OfficialClient) -> None:
    errored = {"type": "RUN_ERROR", "message": "boom"}
    restarted = official_client.replay(
        [run_started("r1"), errored, run_started("r2"), *text_message("m1", "ok"), run_finished("r2")]
    )
    continued = official_client.replay([run_started("r1"), errored, *text_message("m1", "late")])

    assert restarted.error is None
    assert [m["content"] for m in restarted.messages] == ["ok"]
    assert continued.error is not None
    assert "RUN_ERROR" in continued.error


def test_verify_mode_runs_the_verifier_alone(official_client: OfficialClient) -> None:
    good = official_client.verify([run_started(), *text_message("m1", "x"), run_finished()])
    bad = official_client.verify([run_started(), {"type": "TEXT_MESSAGE_END", "messageId": "nope"}])

    assert good.error is None
    assert good.messages == []  # no reducer in verify mode
    assert bad.error is not None and "nope" in bad.error


def test_a_throwing_reducer_is_reported_and_the_server_carries_on(
    official_client: OfficialClient, tmp_path: Path
) -> None:
    # A snapshot nested deeper than the stack makes the reducer's own deep
    # clone of its update throw: the stream must end with an error, not hang.
    depth = 200_000
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    log = write_jsonl(
        tmp_path / "deep.jsonl",
        [run_started(), b'{"type":"STATE_SNAPSHOT","snapshot":' + deep + b"}", run_finished()],
    )

    result = official_client.replay_file(log)
    after = official_client.replay([run_started(), *text_message("m1", "still alive"), run_finished()])

    assert result.error is not None
    assert result.state == {}  # the snapshot never landed
    assert after.error is None
    assert after.messages[0]["content"] == "still alive"


# -- the client's enforcement is visible as warnings ----------------------


def test_unknown_fields_are_stripped_with_a_warning(official_client: OfficialClient) -> None:
    events = [
        run_started(),
        {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "vendorExtra": 1},
        {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
        {"type": "NOT_AN_AGUI_EVENT", "x": 1},
        run_finished(),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert result.messages == [{"id": "m1", "role": "assistant", "content": ""}]
    assert len(result.warnings) == 2
    assert "/vendorExtra" in result.warnings[0]
    assert "NOT_AN_AGUI_EVENT" in result.warnings[1]


# -- input handling -------------------------------------------------------


def envelope(seq: int, event: Event) -> Event:
    return {"seq": seq, "runId": "r1", "ts": 1_700_000_000_000 + seq, "source": "agent", "event": event}


def test_envelopes_are_unwrapped_in_requests(official_client: OfficialClient) -> None:
    events = [run_started(), *text_message("m1", "wrapped"), run_finished()]

    result = official_client.replay([envelope(i + 1, e) for i, e in enumerate(events)])

    assert result.error is None
    assert result.messages == [{"id": "m1", "role": "assistant", "content": "wrapped"}]


def test_files_skip_blank_lines_and_count_bad_ones(official_client: OfficialClient, tmp_path: Path) -> None:
    events = [run_started(), *text_message("m1", "from ", "file"), run_finished()]
    lines: list[Any] = [envelope(1, events[0]), b"", b"{not json", *events[1:3], b"   ", b"42", *events[3:]]
    log = write_jsonl(tmp_path / "thread.jsonl", lines)

    result = official_client.replay_file(log)

    assert result.error is None
    assert result.bad_lines == 2
    assert result.events == len(events)
    assert result.messages == [{"id": "m1", "role": "assistant", "content": "from file"}]


def test_a_five_megabyte_tool_result_round_trips(official_client: OfficialClient) -> None:
    big = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 201_650)[: 5 * 1024 * 1024 - 3] + "é✓"
    events = [
        run_started(),
        *text_message("m1", "calling"),
        *tool_call("tc1", "m1", "{}", big, "res1"),
        run_finished(),
    ]

    result = official_client.replay(events)

    assert result.error is None
    assert result.messages[1]["content"] == big


def test_server_answers_many_requests_in_order_each_on_a_fresh_agent(official_client: OfficialClient) -> None:
    for i in range(150):
        if i % 10 == 0:  # a failing request must not leak into the next one
            failing = official_client.replay([{"type": "TEXT_MESSAGE_START", "messageId": "x"}])
            assert failing.error is not None
        result = official_client.replay([run_started(), *text_message(f"m{i}", f"request {i}"), run_finished()])
        assert result.error is None
        assert result.messages == [{"id": f"m{i}", "role": "assistant", "content": f"request {i}"}]


def test_a_bad_request_raises_and_the_server_survives(official_client: OfficialClient, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="ENOENT"):
        official_client.replay_file(tmp_path / "missing.jsonl")

    assert official_client.replay([run_started(), run_finished()]).error is None


def test_missing_node_modules_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(HarnessNotInstalled, match=r"npm ci --prefix harness"):
        OfficialClient(harness_dir=tmp_path)


# -- the fast clone changes nothing the client can observe ----------------
# (Here on a hand-made stream that takes every path that clones, in both modes and cut
# short; test_equivalence.py compares the two clones over the whole generated corpus.)


def mixed_stream() -> list[Event]:
    """A stream that exercises every reducer path that clones or mutates in place."""
    events: list[Event] = [
        {
            "type": "RUN_STARTED",
            "threadId": "t1",
            "runId": "r1",
            "input": {
                "threadId": "t1",
                "runId": "r1",
                "state": {},
                "tools": [],
                "context": [],
                "forwardedProps": {},
                "messages": [{"id": "u0", "role": "user", "content": "hello"}],
            },
        },
        {"type": "STATE_SNAPSHOT", "snapshot": {"shared": {"deep": [1, {"x": "y"}]}, "n": 0}},
        *text_message("m1", "one ", "two"),
        *tool_call("tc1", "m1", '{"a":1}', "result one", "res1"),
        {
            "type": "ACTIVITY_SNAPSHOT",
            "messageId": "act1",
            "activityType": "plan",
            "content": {"steps": ["a"]},
        },
        {
            "type": "ACTIVITY_DELTA",
            "messageId": "act1",
            "activityType": "plan",
            "patch": [{"op": "add", "path": "/steps/-", "value": "b"}],
        },
        {
            "type": "STATE_DELTA",
            "delta": [
                {"op": "copy", "from": "/shared", "path": "/copy"},
                {"op": "replace", "path": "/n", "value": 1},
            ],
        },
        {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "/copy/deep/0", "value": 2}]},
        {"type": "STATE_DELTA", "delta": [{"op": "remove", "path": "/missing"}]},
        {"type": "TEXT_MESSAGE_START", "messageId": "m2", "metadata": {"k": 1}},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": "meta", "metadata": {"j": [1, 2]}},
        {"type": "TEXT_MESSAGE_END", "messageId": "m2"},
        run_finished("r1"),
        run_started("r2"),
        {
            "type": "MESSAGES_SNAPSHOT",
            "messages": [
                {"id": "u0", "role": "user", "content": "hello again"},
                {"id": "m1", "role": "assistant", "content": "replaced"},
            ],
        },
        {"type": "TEXT_MESSAGE_CHUNK", "messageId": "m3", "delta": "chunk"},
        {"type": "TEXT_MESSAGE_CHUNK", "delta": "ed"},
        {
            "type": "RUN_FINISHED",
            "threadId": "t1",
            "runId": "r2",
            "outcome": {"type": "interrupt", "interrupts": [{"id": "i1", "reason": "confirm"}]},
        },
    ]
    return events


@pytest.mark.parametrize("mode", ["connect", "run"])
def test_fast_clone_agrees_with_native_structured_clone(
    official_client: OfficialClient, native_clone_client: OfficialClient, mode: Mode
) -> None:
    events = mixed_stream()
    orphan = {"type": "TOOL_CALL_ARGS", "toolCallId": "nope", "delta": "x"}
    # The whole stream, two truncations, and one that ends in a verify error.
    variants = [events, events[:9], events[:14], [*events[:12], orphan, *events[12:]]]
    results = [official_client.replay(v, mode=mode) for v in variants]
    assert results == [native_clone_client.replay(v, mode=mode) for v in variants]
    assert results[3].error is not None and "nope" in results[3].error
    whole = results[0]
    assert whole.error is None
    assert whole.pending_interrupts == [{"id": "i1", "reason": "confirm"}]
    # The second run's snapshot kept u0 and m1 (updated) and dropped the rest
    # except the activity message, which a snapshot without activity leaves alone.
    assert [m["id"] for m in whole.messages] == ["u0", "m1", "act1", "m3"]
    assert whole.state == {"shared": {"deep": [1, {"x": "y"}]}, "n": 1, "copy": {"deep": [2, {"x": "y"}]}}


# -- the command-line tools -----------------------------------------------


def test_cli_prints_one_report(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "t.jsonl", [run_started(), *text_message("m1", "cli"), run_finished(), b"oops"])

    out = subprocess.run(
        ["node", str(HARNESS_DIR / "replay.mjs"), str(log)], capture_output=True, check=True, timeout=120
    ).stdout

    report = orjson.loads(out)
    assert set(report) >= {"messages", "state", "error", "warnings", "events", "badLines"}
    assert report["messages"] == [{"id": "m1", "role": "assistant", "content": "cli"}]
    assert (report["error"], report["events"], report["badLines"]) == (None, 5, 1)


def test_compact_cli_runs_the_official_compaction(tmp_path: Path, official_client: OfficialClient) -> None:
    events = [run_started(), *text_message("m1", "a", "b", "c"), run_finished()]
    log = write_jsonl(tmp_path / "t.jsonl", [envelope(i + 1, e) for i, e in enumerate(events)])
    out = tmp_path / "compacted.jsonl"

    subprocess.run(["node", str(HARNESS_DIR / "compact.mjs"), str(log), "-o", str(out)], check=True, timeout=120)

    compacted = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    contents = [e for e in compacted if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert contents == [{"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "abc"}]
    assert official_client.replay(compacted).messages == official_client.replay(events).messages


@pytest.mark.slow
def test_a_36000_event_log_with_a_large_tool_result(official_client: OfficialClient, tmp_path: Path) -> None:
    lines: list[Event] = []
    for run in range(100):
        lines.append(run_started(f"r{run}"))
        lines.extend(text_message(f"m{run}", *(f"w{i} " for i in range(350))))
        lines.extend(tool_call(f"tc{run}", f"m{run}", "{}", "x" * (3_000_000 if run == 0 else 100), f"res{run}"))
        lines.append({"type": "STATE_DELTA", "delta": [{"op": "add", "path": f"/k{run}", "value": run}]})
        lines.append(run_finished(f"r{run}"))
    log = write_jsonl(tmp_path / "big.jsonl", lines)

    result = official_client.replay_file(log)

    assert result.error is None
    assert result.events == len(lines) == 35_900
    assert len(result.messages) == 200
    assert result.messages[0]["content"] == "".join(f"w{i} " for i in range(350))
    assert len(result.messages[1]["content"]) == 3_000_000
    assert result.state == {f"k{run}": run for run in range(100)}
