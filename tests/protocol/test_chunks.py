"""agui_gateway.protocol.chunks against the TypeScript it ports (chunks/transform.ts).

Three layers:
* hand-written cases, expectations worked out from the TypeScript's branches;
* the same cases, plus random chunk streams, run through the real
  ``transformChunks`` from the installed @ag-ui/client (harness/node_modules)
  and compared event for event, error for error;
* the whole client (tests/support/official_client.py): replaying a raw chunked stream
  ends where replaying our expansion of it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.official_client import NodeDriver, module_driver

from agui_gateway.protocol.chunks import ChunkStreamError, ChunkTransformer
from agui_gateway.protocol.events import CHUNK_TYPES

# ---------------------------------------------------------------- helpers


def run(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Everything our transformer emits for ``events``, and the error that stopped it."""
    transformer = ChunkTransformer()
    out: list[dict[str, Any]] = []
    try:
        for event in events:
            out.extend(transformer.feed(event))
        out.extend(transformer.finish())
    except ChunkStreamError as error:
        return out, str(error)
    return out, None


def expand(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out, error = run(events)
    assert error is None, error
    return out


RUN_STARTED = {"type": "RUN_STARTED", "threadId": "t", "runId": "r"}
RUN_FINISHED = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}


def text(**fields: Any) -> dict[str, Any]:
    return {"type": "TEXT_MESSAGE_CHUNK", **fields}


def tool(**fields: Any) -> dict[str, Any]:
    return {"type": "TOOL_CALL_CHUNK", **fields}


def reasoning(**fields: Any) -> dict[str, Any]:
    return {"type": "REASONING_MESSAGE_CHUNK", **fields}


# ---------------------------------------------------------------- hand-written cases

# (name, input stream, expected output, expected error)
CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], str | None]] = [
    (
        "text chunks open, continue and close on the run terminal; role defaults to assistant",
        [RUN_STARTED, text(messageId="m1", delta="Hel"), text(delta="lo"), RUN_FINISHED],
        [
            RUN_STARTED,
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Hel"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "lo"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
            RUN_FINISHED,
        ],
        None,
    ),
    (
        "explicit role and name ride the START; a repeat of the same values is accepted",
        [text(messageId="m1", role="user", name="ann", delta="a"), text(messageId="m1", role="user", delta="b")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "user", "name": "ann"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "b"},
        ],
        None,
    ),
    (
        "a chunk with a new messageId ends the open message first",
        [text(messageId="m1", delta="a"), text(messageId="m2", delta="b")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "m2", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": "b"},
        ],
        None,
    ),
    (
        "metadata rides START and CONTENT, rawEvent only CONTENT; a metadata-only continuation "
        "becomes a zero-delta CONTENT",
        [
            text(messageId="m1", delta="a", metadata={"k": 1}, rawEvent={"p": 1}),
            text(metadata={"usage": 3}),
            text(),
        ],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "metadata": {"k": 1}},
            {
                "type": "TEXT_MESSAGE_CONTENT",
                "messageId": "m1",
                "delta": "a",
                "metadata": {"k": 1},
                "rawEvent": {"p": 1},
            },
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "", "metadata": {"usage": 3}},
        ],
        None,
    ),
    (
        "an opener without delta emits only START; rawEvent alone still makes a CONTENT",
        [text(messageId="m1"), text(rawEvent="x")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "", "rawEvent": "x"},
        ],
        None,
    ),
    (
        "unrecognised material rides the CONTENT, or the START when there is no CONTENT; a described key wins over it",
        [text(messageId="m1", delta="a", extra=1), text(messageId="m2", extra=2), reasoning(messageId="r1", role="x")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"extra": 1, "type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
            {"extra": 2, "type": "TEXT_MESSAGE_START", "messageId": "m2", "role": "assistant"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m2"},
            {"type": "REASONING_MESSAGE_START", "messageId": "r1", "role": "reasoning"},
        ],
        None,
    ),
    (
        "a null delta and a null tag are preserved for the stage that rejects them",
        [text(messageId="m1", delta=None), text(subagentRunId=None)],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": None},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "", "subagentRunId": None},
        ],
        None,
    ),
    (
        "tool chunks: parentMessageId only when given; args; END on the next explicit parent event",
        [
            tool(toolCallId="c1", toolCallName="search", parentMessageId="m1", delta='{"q":'),
            tool(delta='"x"}'),
            {"type": "STATE_SNAPSHOT", "snapshot": {}},
            tool(toolCallId="c2", toolCallName="f"),
        ],
        [
            {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "search", "parentMessageId": "m1"},
            {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"q":'},
            {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '"x"}'},
            {"type": "TOOL_CALL_END", "toolCallId": "c1"},
            {"type": "STATE_SNAPSHOT", "snapshot": {}},
            {"type": "TOOL_CALL_START", "toolCallId": "c2", "toolCallName": "f"},
        ],
        None,
    ),
    (
        "a text chunk while a tool call is open in the same lane ends the tool call",
        [tool(toolCallId="c1", toolCallName="f", delta="{}"), text(messageId="m1", delta="a")],
        [
            {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f"},
            {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": "{}"},
            {"type": "TOOL_CALL_END", "toolCallId": "c1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a"},
        ],
        None,
    ),
    (
        "reasoning chunks: START says role reasoning; REASONING_END closes the message",
        [reasoning(messageId="r1", delta="think"), reasoning(delta="ing"), {"type": "REASONING_END", "messageId": "s"}],
        [
            {"type": "REASONING_MESSAGE_START", "messageId": "r1", "role": "reasoning"},
            {"type": "REASONING_MESSAGE_CONTENT", "messageId": "r1", "delta": "think"},
            {"type": "REASONING_MESSAGE_CONTENT", "messageId": "r1", "delta": "ing"},
            {"type": "REASONING_MESSAGE_END", "messageId": "r1"},
            {"type": "REASONING_END", "messageId": "s"},
        ],
        None,
    ),
    (
        "RAW, ACTIVITY_* and unknown types pass without closing; MESSAGES_SNAPSHOT closes every lane in opening order",
        [
            text(messageId="m1", delta="a", subagentRunId="s1"),
            text(messageId="m2", delta="b"),
            {"type": "RAW", "event": 1},
            {"type": "ACTIVITY_SNAPSHOT", "messageId": "a", "activityType": "x", "content": {}},
            {"type": "SOMETHING_ELSE"},
            {"type": "MESSAGES_SNAPSHOT", "messages": []},
        ],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "m2", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m2", "delta": "b"},
            {"type": "RAW", "event": 1},
            {"type": "ACTIVITY_SNAPSHOT", "messageId": "a", "activityType": "x", "content": {}},
            {"type": "SOMETHING_ELSE"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m1", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m2"},
            {"type": "MESSAGES_SNAPSHOT", "messages": []},
        ],
        None,
    ),
    (
        "lanes: an explicit parent event closes only the parent lane; a subagent terminal closes its own; "
        "an untagged id-less chunk continues the sole open stream of its kind",
        [
            text(messageId="m1", delta="a", subagentRunId="s1"),
            tool(toolCallId="c1", toolCallName="f"),
            text(delta="b"),
            {"type": "CUSTOM", "name": "n", "value": 1},
            {"type": "SUBAGENT_FINISHED"},
            {"type": "SUBAGENT_FINISHED", "subagentRunId": "s1"},
        ],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a", "subagentRunId": "s1"},
            {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "b", "subagentRunId": "s1"},
            {"type": "TOOL_CALL_END", "toolCallId": "c1"},
            {"type": "CUSTOM", "name": "n", "value": 1},
            {"type": "SUBAGENT_FINISHED"},
            {"type": "TEXT_MESSAGE_END", "messageId": "m1", "subagentRunId": "s1"},
            {"type": "SUBAGENT_FINISHED", "subagentRunId": "s1"},
        ],
        None,
    ),
    (
        "a continuation's own tag wins on the content it produces",
        [text(messageId="m1", delta="a", subagentRunId="s1"), text(messageId="m1", delta="b")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a", "subagentRunId": "s1"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "b", "subagentRunId": "s1"},
        ],
        None,
    ),
    (
        "first text chunk without messageId",
        [RUN_STARTED, text(delta="x")],
        [RUN_STARTED],
        "First TEXT_MESSAGE_CHUNK must have a messageId",
    ),
    (
        "first tool chunk without toolCallId",
        [tool(toolCallName="f")],
        [],
        "First TOOL_CALL_CHUNK must have a toolCallId",
    ),
    (
        "first tool chunk without toolCallName",
        [tool(toolCallId="c1")],
        [],
        "First TOOL_CALL_CHUNK must have a toolCallName",
    ),
    (
        "first reasoning chunk without messageId",
        [reasoning(delta="x")],
        [],
        "First REASONING_MESSAGE_CHUNK must have a messageId",
    ),
    (
        "a continuation may not change the role",
        [text(messageId="m1", delta="a"), text(role="user", delta="b")],
        [
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "a"},
        ],
        "Cannot continue text message 'm1': chunk role 'user' does not match the open stream's role 'assistant'.",
    ),
    (
        "a continuation may not add a name the opener did not have",
        [text(messageId="m1"), text(name="bob")],
        [{"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}],
        "Cannot continue text message 'm1': chunk name 'bob' does not match the open stream's name (absent).",
    ),
    (
        "a continuation may not change the tool name or parent",
        [tool(toolCallId="c1", toolCallName="f", parentMessageId="p"), tool(toolCallId="c1", parentMessageId="q")],
        [{"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f", "parentMessageId": "p"}],
        "Cannot continue tool call 'c1': chunk parentMessageId 'q' does not match the open stream's "
        "parentMessageId 'p'.",
    ),
    (
        "a named id continues in its own lane only",
        [text(messageId="m1", subagentRunId="s1"), text(messageId="m1", subagentRunId="s2", delta="x")],
        [{"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "subagentRunId": "s1"}],
        "Cannot continue text message 'm1': chunk subagentRunId 's2' does not match the open stream's subagent 's1'.",
    ),
    (
        "a tagged chunk naming a parent-lane id",
        [tool(toolCallId="c1", toolCallName="f"), tool(toolCallId="c1", subagentRunId="s1")],
        [{"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f"}],
        "Cannot continue tool call 'c1': chunk subagentRunId 's1' does not match the open stream's "
        "subagent '(the parent agent)'.",
    ),
    (
        "an untagged id-less chunk with two subagent lanes open is ambiguous",
        [
            reasoning(messageId="r1", subagentRunId="s1"),
            reasoning(messageId="r2", subagentRunId="s2"),
            reasoning(delta="x"),
        ],
        [
            {"type": "REASONING_MESSAGE_START", "messageId": "r1", "role": "reasoning", "subagentRunId": "s1"},
            {"type": "REASONING_MESSAGE_START", "messageId": "r2", "role": "reasoning", "subagentRunId": "s2"},
        ],
        "Ambiguous REASONING_MESSAGE_CHUNK: it carries neither a messageId nor a subagentRunId, but 2 lanes "
        "have an open reasoning message. Attribute the chunk to the subagent it belongs to.",
    ),
]
CASE_IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("name", "stream", "expected", "error"), CASES, ids=CASE_IDS)
def test_hand_written_case(name: str, stream: list[dict], expected: list[dict], error: str | None) -> None:
    out, raised = run(stream)
    assert out == expected
    assert raised == error


def test_non_chunk_events_pass_through_as_the_same_object_while_idle() -> None:
    transformer = ChunkTransformer()
    content = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "x"}
    (out,) = transformer.feed(content)
    assert out is content
    assert not transformer.active


def test_finish_emits_nothing_and_clears_open_lanes() -> None:
    transformer = ChunkTransformer()
    transformer.feed(text(messageId="m1", delta="a"))
    assert transformer.active
    assert transformer.finish() == []
    assert not transformer.active
    # The cleared lane no longer closes on the next parent event.
    assert transformer.feed(RUN_FINISHED) == [RUN_FINISHED]


def test_non_string_subagent_tag_is_rejected() -> None:
    with pytest.raises(ChunkStreamError, match="must be a string"):
        ChunkTransformer().feed(text(messageId="m", subagentRunId=5))


# ---------------------------------------------------------------- the real transformChunks

_NODE_DRIVER = r"""
import { transformChunks } from "@ag-ui/client";
import { from } from "rxjs";
import readline from "node:readline";
for await (const line of readline.createInterface({ input: process.stdin })) {
  const events = JSON.parse(line);
  const out = [];
  const error = await new Promise((resolve) =>
    from(events).pipe(transformChunks(false)).subscribe({
      next: (event) => out.push(event),
      error: (e) => resolve(String(e?.message ?? e)),
      complete: () => resolve(null),
    }),
  );
  process.stdout.write(JSON.stringify({ events: out, error }) + "\n");
}
"""


class NodeTransformChunks:
    """A long-lived node process running @ag-ui/client's own transformChunks."""

    def __init__(self, driver: NodeDriver) -> None:
        self._driver = driver

    def run(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        reply = self._driver.ask(events)
        return reply["events"], reply["error"]


@pytest.fixture(scope="module")
def js_chunks() -> Iterator[NodeTransformChunks]:
    with module_driver(_NODE_DRIVER, "transformChunks") as driver:
        yield NodeTransformChunks(driver)


@pytest.mark.parametrize(("name", "stream", "expected", "error"), CASES, ids=CASE_IDS)
def test_hand_written_case_matches_the_client(js_chunks, name, stream, expected, error) -> None:
    assert run(stream) == js_chunks.run(stream)


# Random streams over a small vocabulary, so ids, lanes and tags collide often.
_ids = st.sampled_from(["m1", "m2", "c1", "c2"])
_tags = st.sampled_from(["s1", "s2", None])


_USUALLY = {"messageId", "toolCallId", "toolCallName"}  # present more often, so streams get going


@st.composite
def _optional_fields(draw: st.DrawFn, usually: int = 8, **pools: st.SearchStrategy) -> dict[str, Any]:
    """Each field present 4 times in 10, the opener ids ``usually`` times in 10."""
    fields: dict[str, Any] = {}
    for key, pool in pools.items():
        if draw(st.integers(0, 9)) < (usually if key in _USUALLY else 4):
            fields[key] = draw(pool)
    return fields


_common = {
    "subagentRunId": _tags,
    "delta": st.sampled_from(["a", "", "{", None]),
    "metadata": st.sampled_from([{"k": 1}, {"k": 2}]),
    "rawEvent": st.sampled_from([{"p": 1}, "raw"]),
    "extra": st.sampled_from([1, "x"]),
    "timestamp": st.just(7),
}
_chunk = st.one_of(
    _optional_fields(
        messageId=_ids, role=st.sampled_from(["assistant", "user"]), name=st.sampled_from(["n1", "n2"]), **_common
    ).map(lambda f: {"type": "TEXT_MESSAGE_CHUNK", **f}),
    _optional_fields(
        toolCallId=_ids,
        toolCallName=st.sampled_from(["f", "g"]),
        parentMessageId=st.sampled_from(["m1", "p"]),
        **_common,
    ).map(lambda f: {"type": "TOOL_CALL_CHUNK", **f}),
    # `role` is not described on a reasoning chunk: it is remainder, and clashes with the START's
    _optional_fields(messageId=_ids, role=st.sampled_from(["reasoning", "assistant"]), **_common).map(
        lambda f: {"type": "REASONING_MESSAGE_CHUNK", **f}
    ),
    # sparse continuations: at most one field, so the zero-delta filler paths get exercised
    st.builds(
        lambda etype, field: {"type": etype, **field},
        st.sampled_from(sorted(CHUNK_TYPES)),
        st.sampled_from([{}, {"subagentRunId": None}, {"metadata": {"k": 3}}, {"rawEvent": 0}, {"extra": 2}]),
    ),
)
_other = st.one_of(
    st.sampled_from(
        [
            RUN_STARTED,
            RUN_FINISHED,
            {"type": "RUN_ERROR", "message": "boom"},
            {"type": "MESSAGES_SNAPSHOT", "messages": []},
            {"type": "RAW", "event": {}},
            {"type": "SUBAGENT_STARTED", "subagentRunId": "s1", "name": "sub"},
            {"type": "SUBAGENT_ERROR", "subagentRunId": "s2", "message": "x"},
            {"type": "SUBAGENT_FINISHED"},
            {"type": "THINKING_START"},
        ]
    ),
    st.builds(
        lambda etype, tag: {
            "type": etype,
            "messageId": "m1",
            "delta": "z",
            **({} if tag is None else {"subagentRunId": tag}),
        },
        st.sampled_from(["TEXT_MESSAGE_CONTENT", "STEP_STARTED", "TOOL_CALL_RESULT", "SUBAGENT_FINISHED"]),
        _tags,
    ),
)
_streams = st.lists(st.one_of(_chunk, _chunk, _other), max_size=14)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=_streams)
def test_random_chunk_streams_match_the_client(js_chunks, stream: list[dict[str, Any]]) -> None:
    assert run(stream) == js_chunks.run(stream)


# ---------------------------------------------------------------- the whole client

_VALID_CHUNK_STREAMS = [
    [
        RUN_STARTED,
        text(messageId="m1", delta="Hi "),
        text(delta="there", metadata={"usage": 1}),
        tool(toolCallId="c1", toolCallName="lookup", parentMessageId="m1", delta='{"q":'),
        tool(delta='"x"}'),
        {"type": "TOOL_CALL_RESULT", "messageId": "t1", "toolCallId": "c1", "content": "ok"},
        reasoning(messageId="r1", delta="hmm"),
        text(messageId="m2", role="assistant", delta="done"),
        RUN_FINISHED,
    ],
    [
        RUN_STARTED,
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s1", "name": "helper"},
        text(messageId="m1", delta="parent "),
        text(messageId="m2", delta="child ", subagentRunId="s1"),
        text(delta="more", subagentRunId="s1"),
        text(delta="again"),
        {"type": "SUBAGENT_FINISHED", "subagentRunId": "s1"},
        text(messageId="m3", delta="after"),
        RUN_FINISHED,
    ],
]


@pytest.mark.parametrize("stream", _VALID_CHUNK_STREAMS)
def test_client_replay_of_raw_chunks_equals_replay_of_our_expansion(official_client, stream) -> None:
    expanded = expand(stream)
    assert not any(event["type"].endswith("_CHUNK") for event in expanded)
    raw = official_client.replay(stream)
    ours = official_client.replay(expanded)
    assert raw.error is None, raw.error
    assert (ours.messages, ours.state, ours.error) == (raw.messages, raw.state, raw.error)
    assert raw.messages, "the stream should have produced messages"


# Schema-valid chunk streams (no nulls, no unknown keys, valid roles): enforcement passes
# them untouched, so the whole client must end in the same place either way, including
# when verification or the chunk stage itself rejects the stream.
_valid_common = {
    "subagentRunId": st.sampled_from(["s1", "s2"]),
    "delta": st.sampled_from(["a", "", '{"x":1}']),
    "metadata": st.sampled_from([{"k": 1}, {"u": 2}]),
}
# Opener fields a continuation may repeat take one value each here, so most streams get
# through; conflicting repeats are covered against transformChunks above.
_valid_chunk = st.one_of(
    _optional_fields(usually=9, messageId=_ids, role=st.just("assistant"), **_valid_common).map(
        lambda f: {"type": "TEXT_MESSAGE_CHUNK", **f}
    ),
    _optional_fields(usually=9, toolCallId=_ids, toolCallName=st.just("f"), **_valid_common).map(
        lambda f: {"type": "TOOL_CALL_CHUNK", **f}
    ),
    _optional_fields(usually=9, messageId=_ids, **_valid_common).map(
        lambda f: {"type": "REASONING_MESSAGE_CHUNK", **f}
    ),
)
_valid_other = st.sampled_from(
    [
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s1", "name": "one"},
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s2", "name": "two"},
        {"type": "SUBAGENT_FINISHED", "subagentRunId": "s1"},
        {"type": "STATE_SNAPSHOT", "snapshot": {"n": 1}},
        {"type": "STEP_STARTED", "stepName": "s", "subagentRunId": "s2"},
        {"type": "MESSAGES_SNAPSHOT", "messages": [{"id": "u0", "role": "user", "content": "hi"}]},
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(st.one_of(_valid_chunk, _valid_chunk, _valid_chunk, _valid_other), max_size=12))
def test_random_client_replay_of_raw_chunks_equals_replay_of_our_expansion(official_client, body) -> None:
    stream = [RUN_STARTED, *body, RUN_FINISHED]
    expanded, error = run(stream)
    raw = official_client.replay(stream)
    ours = official_client.replay(expanded)
    assert (ours.messages, ours.state) == (raw.messages, raw.state)
    if error is None or ours.error is not None:
        # no chunk error, or a later stage already rejected the prefix we did expand
        assert ours.error == raw.error
    else:  # the client's chunk stage fails the run exactly where ours stopped
        assert raw.error is not None and error in raw.error
