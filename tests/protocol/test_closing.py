"""What a stop closes: the arguments of a cut tool call completed to JSON, and the parts a
run left open closed so that the official client takes the cancelled RUN_FINISHED.

The gateway's side of it through a real server is ``tests/server/runtime/test_stop_outcome.py``.
"""

from __future__ import annotations

import json
from typing import Any

from ag_ui_validate import create_validator
from hypothesis import given, settings
from hypothesis import strategies as st
from support.official_client import OfficialClient

from agui_gateway.protocol.builders import run_cancelled_event
from agui_gateway.protocol.closing import OpenParts, json_completion

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans(), st.data())
def test_any_cut_of_a_json_text_is_completed_to_one_that_parses_and_keeps_the_cut(
    value: Any, ascii_only: bool, data: st.DataObject
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=data.draw(st.sampled_from([None, 1])))
    cut = data.draw(st.integers(min_value=1, max_value=len(text)))
    completion = json_completion(text[:cut])
    assert completion is not None, text[:cut]
    json.loads(text[:cut] + completion)
    assert json_completion(text) == ""  # a whole text is left alone


def test_text_that_no_suffix_can_repair_gets_none() -> None:
    assert json_completion('{"a": 1}}') is None
    assert json_completion("[1, 2] x") is None


def _run(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "RUN_STARTED", "threadId": "t", "runId": "r"}, *events]


CASES = {
    "nothing open": _run(
        {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"},
        {"type": "TEXT_MESSAGE_END", "messageId": "m"},
    ),
    "a tool call inside a step, cut inside a key": _run(
        {"type": "STEP_STARTED", "stepName": "s"},
        {"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "f"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": '{"ci'},
    ),
    "a text message, then a tool call streamed by chunks": _run(
        {"type": "TEXT_MESSAGE_CHUNK", "messageId": "m", "role": "assistant", "delta": "half"},
        {"type": "TOOL_CALL_CHUNK", "toolCallId": "c", "toolCallName": "f", "delta": '{"a": [1, '},
        {"type": "TOOL_CALL_CHUNK", "toolCallId": "c", "delta": '"b'},
    ),
    "a subagent's tool call streamed by chunks, cut inside a literal": _run(
        {"type": "SUBAGENT_STARTED", "subagentRunId": "sa", "name": "helper"},
        {
            "type": "TOOL_CALL_CHUNK",
            "toolCallId": "c",
            "toolCallName": "f",
            "delta": '{"ok": tr',
            "subagentRunId": "sa",
        },
    ),
    "a subagent's reasoning, and a step of the same name in the parent": _run(
        {"type": "SUBAGENT_STARTED", "subagentRunId": "sa", "name": "helper"},
        {"type": "STEP_STARTED", "stepName": "s", "subagentRunId": "sa"},
        {"type": "STEP_STARTED", "stepName": "s"},
        {"type": "REASONING_START", "messageId": "r", "subagentRunId": "sa"},
        {"type": "REASONING_MESSAGE_CHUNK", "messageId": "r1", "delta": "hm", "subagentRunId": "sa"},
    ),
}


def test_the_official_client_and_ag_ui_validate_take_a_cancelled_run_finished_after_the_closing_events(
    official_client: OfficialClient,
) -> None:
    for label, events in CASES.items():
        parts = OpenParts()
        for event in events:
            parts.feed(event)
        closing = parts.closing_events("stopped")
        assert (label == "nothing open") == (closing == []), label
        stream = [*events, *closing, run_cancelled_event("t", "r")]
        result = official_client.verify(stream)
        assert result.error is None, f"{label}: {result.error}"
        validator = create_validator()
        for event in stream:
            validator.feed(event)
        validator.finalize()
        errors = [(d.rule, d.message) for d in validator.report().diagnostics if d.severity == "error"]
        assert errors == [], f"{label}: {errors}"


def test_without_the_closing_events_the_client_refuses_the_run_finished(official_client: OfficialClient) -> None:
    """What the closing events are for (a RUN_ERROR needs none of them)."""
    events = CASES["a tool call inside a step, cut inside a key"]
    refused = official_client.verify([*events, run_cancelled_event("t", "r")])
    assert refused.error is not None and "RUN_FINISHED" in refused.error
