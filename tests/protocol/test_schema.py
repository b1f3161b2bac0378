"""agui_gateway.protocol.schema and agui_gateway.protocol.compat against the client's enforcement
stage (enforce/strip.ts) and inbound compatibility boundary.

Hand-written cases first (expectations from the zod schemas and strip.ts), then
the real thing: the zod schemas' structure compared with the shapes compiled
from the Python models, and random messages/events run through the installed
@ag-ui/client's own ``enforceEvents`` and ``CompatibilityBoundary``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.official_client import NodeDriver, module_driver

from agui_gateway.protocol import schema
from agui_gateway.protocol.compat import apply_compatibility_boundary
from agui_gateway.protocol.schema import (
    is_recognized_event,
    normalize_event,
    normalize_message,
    normalize_messages,
)

# ---------------------------------------------------------------- hand-written: messages


def test_unknown_keys_are_stripped_by_role() -> None:
    message = {"id": "1", "role": "assistant", "content": "hi", "toolCallId": "x", "extra": 1, "name": "bot"}
    assert normalize_message(message) == {"id": "1", "role": "assistant", "content": "hi", "name": "bot"}
    # the same key is legitimate on the role that declares it
    tool_message = {"id": "2", "role": "tool", "content": "ok", "toolCallId": "x", "name": "n", "error": "e"}
    assert normalize_message(tool_message) == {
        "id": "2",
        "role": "tool",
        "content": "ok",
        "toolCallId": "x",
        "error": "e",
    }
    reasoning = {"id": "3", "role": "reasoning", "content": "r", "encryptedValue": "v", "name": "n"}
    assert normalize_message(reasoning) == {"id": "3", "role": "reasoning", "content": "r", "encryptedValue": "v"}


def test_tool_calls_and_functions_are_stripped() -> None:
    message = {
        "id": "1",
        "role": "assistant",
        "toolCalls": [
            {
                "id": "c",
                "type": "function",
                "function": {"name": "f", "arguments": "{}", "x": 1},
                "y": 2,
                "metadata": {"z": 3},
            }
        ],
    }
    assert normalize_message(message) == {
        "id": "1",
        "role": "assistant",
        "toolCalls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}, "metadata": {"z": 3}}
        ],
    }


def test_content_parts_unknown_members_go_and_known_ones_are_stripped() -> None:
    stripped: list[str] = []
    message = {
        "id": "1",
        "role": "user",
        "content": [
            {"type": "text", "text": "a", "x": 1},
            {"type": "binary", "mimeType": "image/png", "data": "AA"},  # retired member: removed
            {"type": "image", "source": {"type": "s3", "value": "v"}},  # required source unrecognisable: part goes
            {
                "type": "document",
                "source": {"type": "file", "value": "h", "provider": "openai", "q": 1},
                "metadata": None,
            },
        ],
    }
    assert normalize_message(message, stripped) == {
        "id": "1",
        "role": "user",
        "content": [
            {"type": "text", "text": "a"},
            {"type": "document", "source": {"type": "file", "value": "h", "provider": "openai"}, "metadata": None},
        ],
    }
    assert stripped == ["/content/0/x", "/content/1", "/content/2", "/content/3/source/q"]


def test_opaque_positions_pass_whole() -> None:
    activity = {
        "id": "a",
        "role": "activity",
        "activityType": "t",
        "content": {"any": {"thing": [1]}},
        "metadata": {"m": {"n": 1}},
    }
    assert normalize_message(activity) is activity
    user = {"id": "u", "role": "user", "content": "plain text"}
    assert normalize_message(user) is user


def test_messages_with_unknown_or_missing_role_are_removed() -> None:
    messages = [
        {"id": "1", "role": "wizard", "content": "x"},
        {"id": "2", "content": "x"},
        {"id": "3", "role": "system", "content": "s"},
    ]
    assert normalize_message(messages[0]) is None
    assert normalize_messages(messages) == [{"id": "3", "role": "system", "content": "s"}]


def test_malformed_values_are_left_for_the_validator() -> None:
    # a wrong-kind value on a described field is not stripped (the client fails the run on it)
    assert normalize_message({"id": 5, "role": "user", "content": 7}) == {"id": 5, "role": "user", "content": 7}
    assert normalize_message("not a message") == "not a message"


# ---------------------------------------------------------------- hand-written: events


def test_recognized_event_types_come_from_the_protocol() -> None:
    assert is_recognized_event({"type": "TEXT_MESSAGE_CONTENT"})
    assert is_recognized_event({"type": "SUBAGENT_ERROR"})
    assert not is_recognized_event({"type": "THINKING_START"})
    assert not is_recognized_event({"type": ["TEXT_MESSAGE_CONTENT"]})
    assert not is_recognized_event({})
    assert normalize_event({"type": "THINKING_START"}) is None


def test_event_fields_are_stripped_and_clean_events_are_returned_as_is() -> None:
    clean = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "x", "metadata": {"a": 1}, "rawEvent": {"b": 2}}
    assert normalize_event(clean) is clean
    stripped: list[str] = []
    noisy = {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant", "parentMessageId": "p"}
    assert normalize_event(noisy, stripped) == {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"}
    assert stripped == ["/parentMessageId"]


def test_tool_call_result_content_parts_are_stripped() -> None:
    content = [{"type": "text", "text": "r", "q": 1}, {"type": "x"}]
    event = {"type": "TOOL_CALL_RESULT", "messageId": "t", "toolCallId": "c", "content": content}
    assert normalize_event(event)["content"] == [{"type": "text", "text": "r"}]


def test_patch_operations_are_spec_open() -> None:
    event = {
        "type": "STATE_DELTA",
        "delta": [{"op": "remove", "path": "/a", "value": 1}, {"op": "frobnicate", "path": "/b"}],
    }
    assert normalize_event(event)["delta"] == [{"op": "remove", "path": "/a", "value": 1}]


def test_unrecognised_optional_outcome_is_omitted_and_known_one_stripped() -> None:
    finished = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r", "outcome": {"type": "exploded"}}
    assert normalize_event(finished) == {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}
    interrupt = {
        "type": "RUN_FINISHED",
        "threadId": "t",
        "runId": "r",
        "outcome": {"type": "interrupt", "interrupts": [{"id": "i", "reason": "r", "x": 1}], "y": 2},
    }
    assert normalize_event(interrupt)["outcome"] == {"type": "interrupt", "interrupts": [{"id": "i", "reason": "r"}]}


def test_run_started_input_messages_are_normalized() -> None:
    event = {
        "type": "RUN_STARTED",
        "threadId": "t",
        "runId": "r",
        "input": {
            "threadId": "t",
            "runId": "r",
            "messages": [{"id": "1", "role": "user", "content": "x", "q": 1}, {"id": "2", "role": "?"}],
            "z": 0,
        },
    }
    expected_messages = [{"id": "1", "role": "user", "content": "x"}]
    assert normalize_event(event)["input"] == {"threadId": "t", "runId": "r", "messages": expected_messages}


# ---------------------------------------------------------------- hand-written: compatibility boundary


def test_legacy_nulls_become_absent() -> None:
    finished = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}
    assert apply_compatibility_boundary({**finished, "result": None, "outcome": None, "rawEvent": None}) == finished
    chunk = {"type": "TOOL_CALL_CHUNK", "delta": "x"}
    assert apply_compatibility_boundary({**chunk, "parentMessageId": None}) == chunk
    # only the listed nulls: a required null survives for the validator
    custom = {"type": "CUSTOM", "name": "n", "value": None}
    assert apply_compatibility_boundary(custom) is custom


def test_a_binary_part_with_a_filename_is_dropped_only_for_a_twin_that_keeps_the_filename() -> None:
    binary = {"type": "binary", "mimeType": "image/png", "data": "AA", "filename": "f.png"}
    source = {"type": "data", "value": "AA", "mimeType": "image/png"}
    converted = {"type": "image", "source": source, "metadata": {"filename": "f.png"}}
    bare_twin = {"type": "image", "source": source}
    event = {"type": "MESSAGES_SNAPSHOT", "messages": [{"id": "1", "role": "user", "content": [binary, bare_twin]}]}
    assert apply_compatibility_boundary(event)["messages"][0]["content"] == [converted, bare_twin]
    event["messages"][0]["content"] = [binary, converted]
    assert apply_compatibility_boundary(event)["messages"][0]["content"] == [converted]


def test_snapshot_media_metadata_null_and_binary_parts_are_upgraded() -> None:
    event = {
        "type": "MESSAGES_SNAPSHOT",
        "messages": [
            {
                "id": "1",
                "role": "user",
                "content": [
                    {"type": "binary", "mimeType": "audio/wav", "url": "http://a", "filename": "a.wav"},
                    {"type": "video", "source": {"type": "url", "value": "v"}, "metadata": None},
                    {"type": "text", "text": "t", "metadata": None},  # not a media part: kept (and fatal later)
                    {"type": "binary", "mimeType": "image/png", "data": "AA"},
                    {"type": "image", "source": {"type": "data", "value": "AA", "mimeType": "image/png"}},  # its twin
                ],
            }
        ],
    }
    assert apply_compatibility_boundary(event)["messages"][0]["content"] == [
        {
            "type": "audio",
            "source": {"type": "url", "value": "http://a", "mimeType": "audio/wav"},
            "metadata": {"filename": "a.wav"},
        },
        {"type": "video", "source": {"type": "url", "value": "v"}},
        {"type": "text", "text": "t", "metadata": None},
        {"type": "image", "source": {"type": "data", "value": "AA", "mimeType": "image/png"}},
    ]


# ---------------------------------------------------------------- the real client

_NODE_DRIVER = r"""
import { enforceEvents, CompatibilityBoundary } from "@ag-ui/client";
import * as S from "@ag-ui/core/schemas";
import { z } from "zod/v4";
import { from } from "rxjs";
import { map } from "rxjs/operators";
import readline from "node:readline";

// strip.ts's own unwrap, so the description is of what the stripper sees.
function unwrap(s) {
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault ||
        s instanceof z.ZodReadonly || s instanceof z.ZodCatch) { s = s.unwrap(); continue; }
    if (s instanceof z.ZodPipe) { s = s.def.in; continue; }
    if (s instanceof z.ZodLazy) { s = s.def.getter(); continue; }
    return s;
  }
}
function describe(schema) {
  const t = unwrap(schema);
  if (t instanceof z.ZodObject) {
    const fields = {};
    for (const [key, field] of Object.entries(t.shape))
      fields[key] = { required: !field.safeParse(undefined).success, shape: describe(field) };
    return { kind: "object", specOpen: t.meta()?.specOpen === true, fields };
  }
  if (t instanceof z.ZodArray) return { kind: "array", element: describe(t.element) };
  if (t instanceof z.ZodRecord) return { kind: "record", value: describe(t.def.valueType) };
  if (t instanceof z.ZodUnion) {
    const d = t.def.discriminator;
    if (typeof d !== "string") return { kind: "union", options: t.options.map(describe) };
    const members = {};
    for (const option of t.options) members[String(unwrap(unwrap(option).shape[d]).def.values[0])] = describe(option);
    return { kind: "tagged", discriminator: d, members };
  }
  return { kind: "leaf" };
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  let reply;
  if (request.op === "describe") {
    reply = Object.fromEntries(
      Object.entries(S).filter(([, s]) => s instanceof z.ZodType).map(([name, s]) => [name, describe(s)]),
    );
  } else if (request.op === "compat") {
    const boundary = new CompatibilityBoundary();
    reply = request.events.map((event) => boundary["transformEvent"](event));
  } else {
    const boundary = new CompatibilityBoundary();
    let source = from(request.events);
    if (request.compat) source = source.pipe(map((event) => boundary["transformEvent"](event)));
    const events = [];
    const error = await new Promise((resolve) =>
      source.pipe(enforceEvents(false)).subscribe({
        next: (event) => events.push(event),
        error: (e) => resolve(String(e?.message ?? e)),
        complete: () => resolve(null),
      }),
    );
    reply = { events, error };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
"""


class NodeEnforcement:
    """A long-lived node process running the client's own enforcement and boundary."""

    def __init__(self, driver: NodeDriver) -> None:
        self._driver = driver

    def enforce(self, events: list[dict[str, Any]], compat: bool = False) -> list[dict[str, Any]]:
        reply = self._driver.ask({"op": "enforce", "events": events, "compat": compat})
        assert reply["error"] is None, f"test input must be valid 1.0 after stripping: {reply['error']}"
        return reply["events"]

    def describe(self) -> dict[str, Any]:
        """The client's zod schemas, described as plain data."""
        reply: dict[str, Any] = self._driver.ask({"op": "describe"})
        return reply

    def compat(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each event through the client's CompatibilityBoundary alone."""
        reply: list[dict[str, Any]] = self._driver.ask({"op": "compat", "events": events})
        return reply


@pytest.fixture(scope="module")
def js() -> Iterator[NodeEnforcement]:
    with module_driver(_NODE_DRIVER, "enforcement") as driver:
        yield NodeEnforcement(driver)


def ours(events: list[dict[str, Any]], compat: bool = False) -> list[dict[str, Any]]:
    """Our port of the same stages: boundary, drop unrecognised, strip."""
    out = []
    for event in events:
        if compat:
            event = apply_compatibility_boundary(event)
        normalized = normalize_event(event)
        if normalized is not None:
            out.append(_with_run_input_defaults(normalized))
    return out


def _with_run_input_defaults(event: dict[str, Any]) -> dict[str, Any]:
    # The one thing zod's parse adds that stripping does not: RunAgentInput's defaults.
    # The client's reducer never reads them (it takes only input.messages), which is why
    # schema.py leaves them out; the comparison states them here instead.
    run_input = event.get("input")
    if event["type"] != "RUN_STARTED" or not isinstance(run_input, dict):
        return event
    filled = {"tools": [], "context": [], **run_input}
    if filled.get("state", 0) is None:
        del filled["state"]
    return {**event, "input": filled}


def _describe(shape: schema.Shape) -> dict[str, Any]:
    if shape is schema.LEAF:
        return {"kind": "leaf"}
    if isinstance(shape, schema.ObjectShape):
        return {
            "kind": "object",
            "specOpen": shape.spec_open,
            "fields": {
                key: {"required": key in shape.required, "shape": _describe(child)}
                for key, child in shape.fields.items()
            },
        }
    if isinstance(shape, schema.ArrayShape):
        return {"kind": "array", "element": _describe(shape.element)}
    if isinstance(shape, schema.TaggedUnionShape):
        members = {tag: _describe(member) for tag, member in shape.members.items()}
        return {"kind": "tagged", "discriminator": shape.discriminator, "members": members}
    return {"kind": "union", "options": [_describe(option) for option in shape.options]}


def _differences(zod: Any, python: Any, path: str) -> list[str]:
    if zod == python:
        return []
    if isinstance(zod, dict) and isinstance(python, dict):
        found = []
        for key in sorted(zod.keys() | python.keys()):
            if key not in python:
                found.append(f"{path}/{key}: only in zod")
            elif key not in zod:
                found.append(f"{path}/{key}: only in the Python models")
            else:
                found.extend(_differences(zod[key], python[key], f"{path}/{key}"))
        return found
    if isinstance(zod, list) and isinstance(python, list) and len(zod) == len(python):
        return [d for i, (a, b) in enumerate(zip(zod, python, strict=False)) for d in _differences(a, b, f"{path}/{i}")]
    return [f"{path}: zod {zod!r}, Python {python!r}"]


def test_compiled_shapes_match_the_zod_schemas(js) -> None:
    zod = js.describe()
    found = _differences(zod["EventSchema"], _describe(schema.EVENT_SHAPE), "Event")
    found += _differences(zod["MessageSchema"], _describe(schema.MESSAGE_SHAPE), "Message")
    # Known and harmless: the discriminator literals (type / role / op) are required in
    # zod but carry a default in the Python models. They are leaves, so requiredness
    # never decides anything while stripping (it only matters where a union member drops).
    harmless = [
        d
        for d in found
        if d.rsplit("/", 3)[-2] in ("type", "role", "op") and d.endswith("/required: zod True, Python False")
    ]
    assert [d for d in found if d not in harmless] == []
    assert len(harmless) > 0  # the comparison really walked the fields


# Random messages: every role (and unknown ones), known and unknown keys at every level.
# Unknown keys, some of them described on *other* roles or objects (string values, so
# they are valid wherever they are described).
_extra = st.dictionaries(
    st.sampled_from(["x", "toolCallId", "name", "error", "content2", "role2"]), st.sampled_from(["v", "w"]), max_size=2
)
# Integers stay within 2**53: beyond it JavaScript numbers round, which is not what is tested here.
_opaque = st.dictionaries(
    st.sampled_from(["a", "b"]), st.one_of(st.integers(-1000, 1000), st.none(), st.just({"deep": [1]})), max_size=2
)


def _maybe(**fields: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_source = st.one_of(
    st.builds(lambda o, x: {"type": "data", "value": "AA", "mimeType": "image/png", **o, **x}, st.just({}), _extra),
    st.builds(lambda o, x: {"type": "url", "value": "http://u", **o, **x}, _maybe(mimeType=st.just("a/b")), _extra),
    st.builds(
        lambda o, x: {"type": "file", "value": "h", **o, **x},
        _maybe(provider=st.just("openai"), mimeType=st.just("a/b")),
        _extra,
    ),
    st.builds(lambda x: {"type": "s3", "value": "h", **x}, _extra),
)
_part = st.one_of(
    st.builds(
        lambda o, x: {"type": "text", "text": "t", **o, **x},
        _maybe(id=st.just("p"), metadata=st.integers(-1000, 1000)),
        _extra,
    ),
    st.builds(
        lambda kind, source, o, x: {"type": kind, "source": source, **o, **x},
        st.sampled_from(["image", "audio", "video", "document"]),
        _source,
        _maybe(id=st.just("p"), metadata=_opaque),
        _extra,
    ),
    st.builds(lambda x: {"type": "hologram", **x}, _extra),
)
_content = st.one_of(st.just("text"), st.lists(_part, max_size=4))
_tool_call = st.builds(
    lambda fx, o, x: {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}", **fx}, **o, **x},
    _extra,
    _maybe(encryptedValue=st.just("e"), metadata=_opaque),
    _extra,
)
_common = {"subagentRunId": st.just("s1"), "metadata": _opaque}
_named = dict(name=st.just("n"), encryptedValue=st.just("e"), **_common)
_message = st.one_of(
    *[
        st.builds(
            lambda role, o, x: {"id": "m", "role": role, "content": "c", **o, **x},
            st.just(role),
            _maybe(**_named),
            _extra,
        )
        for role in ("developer", "system")
    ],
    st.builds(
        lambda o, x: {"id": "m", "role": "assistant", **o, **x},
        _maybe(content=st.just("c"), toolCalls=st.lists(_tool_call, max_size=2), **_named),
        _extra,
    ),
    st.builds(lambda c, o, x: {"id": "m", "role": "user", "content": c, **o, **x}, _content, _maybe(**_named), _extra),
    st.builds(
        lambda c, o, x: {"id": "m", "role": "tool", "content": c, "toolCallId": "c", **o, **x},
        _content,
        _maybe(error=st.just("e"), encryptedValue=st.just("e"), **_common),
        _extra,
    ),
    st.builds(
        lambda c, o, x: {"id": "m", "role": "activity", "activityType": "t", "content": c, **o, **x},
        _opaque,
        _maybe(**_common),
        _extra,
    ),
    st.builds(
        lambda o, x: {"id": "m", "role": "reasoning", "content": "r", **o, **x},
        _maybe(encryptedValue=st.just("e"), **_common),
        _extra,
    ),
    st.builds(lambda x: {"id": "m", "role": "narrator", "content": "c", **x}, _extra),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=5))
def test_random_messages_are_stripped_as_the_client_strips_them(js, messages: list[dict[str, Any]]) -> None:
    snapshot = {"type": "MESSAGES_SNAPSHOT", "messages": messages}
    (enforced,) = js.enforce([snapshot])
    assert normalize_messages(messages) == enforced["messages"]
    run_input = {"threadId": "t", "runId": "r", "messages": messages}
    started = {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "input": run_input}
    assert ours([snapshot, started]) == js.enforce([snapshot, started])


_EVENTS_OF_EVERY_TYPE: list[dict[str, Any]] = [
    {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant", "name": "n"},
    {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "d"},
    {"type": "TEXT_MESSAGE_END", "messageId": "m"},
    {"type": "TEXT_MESSAGE_CHUNK", "messageId": "m", "delta": "d", "role": "user"},
    {"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "f", "parentMessageId": "m"},
    {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": "{}"},
    {"type": "TOOL_CALL_END", "toolCallId": "c"},
    {"type": "TOOL_CALL_CHUNK", "toolCallId": "c", "toolCallName": "f", "delta": "{}"},
    {
        "type": "TOOL_CALL_RESULT",
        "messageId": "t",
        "toolCallId": "c",
        "content": [{"type": "text", "text": "r"}],
        "role": "tool",
    },
    {"type": "STATE_SNAPSHOT", "snapshot": {"a": [1, {"b": None}]}},
    {
        "type": "STATE_DELTA",
        "delta": [{"op": "add", "path": "/a", "value": 1, "why": "x"}, {"op": "move", "from": "/a", "path": "/b"}],
    },
    {"type": "MESSAGES_SNAPSHOT", "messages": [{"id": "1", "role": "user", "content": "x"}]},
    {"type": "ACTIVITY_SNAPSHOT", "messageId": "a", "activityType": "t", "content": {"k": 1}, "replace": False},
    {
        "type": "ACTIVITY_DELTA",
        "messageId": "a",
        "activityType": "t",
        "patch": [{"op": "replace", "path": "/k", "value": 2}],
    },
    {"type": "RAW", "event": {"x": 1}, "source": "s"},
    {"type": "CUSTOM", "name": "n", "value": None},
    {
        "type": "RUN_STARTED",
        "threadId": "t",
        "runId": "r",
        "input": {
            "threadId": "t",
            "runId": "r",
            "messages": [],
            "tools": [{"name": "f", "description": "d", "parameters": {}, "x": 1}],
            "context": [{"description": "d", "value": "v", "y": 2}],
            "resume": [{"interruptId": "i", "status": "resolved", "payload": 1, "z": 3}],
        },
    },
    {
        "type": "RUN_FINISHED",
        "threadId": "t",
        "runId": "r",
        "result": 1,
        "outcome": {"type": "success", "pendingToolCallIds": ["c"]},
        "usage": [{"provider": "p", "inputTokens": 3, "cost": 1}],
    },
    {"type": "RUN_ERROR", "message": "m", "code": "c", "usage": [{"model": "m", "q": 1}]},
    {"type": "STEP_STARTED", "stepName": "s"},
    {"type": "STEP_FINISHED", "stepName": "s"},
    {"type": "REASONING_START", "messageId": "r"},
    {"type": "REASONING_MESSAGE_START", "messageId": "r", "role": "reasoning"},
    {"type": "REASONING_MESSAGE_CONTENT", "messageId": "r", "delta": "d"},
    {"type": "REASONING_MESSAGE_END", "messageId": "r"},
    {"type": "REASONING_MESSAGE_CHUNK", "messageId": "r", "delta": "d"},
    {"type": "REASONING_END", "messageId": "r"},
    {"type": "REASONING_ENCRYPTED_VALUE", "subtype": "message", "entityId": "m", "encryptedValue": "e"},
    {"type": "SUBAGENT_STARTED", "subagentRunId": "s", "name": "n", "parentToolCallId": "c"},
    {
        "type": "SUBAGENT_FINISHED",
        "subagentRunId": "s",
        "outcome": {"type": "suspended", "interruptIds": ["i"], "w": 1},
    },
    {"type": "SUBAGENT_ERROR", "subagentRunId": "s", "message": "m"},
    {"type": "THINKING_TEXT_MESSAGE_CONTENT", "delta": "legacy"},
    {"type": "NOT_AN_EVENT"},
]


def test_event_list_covers_every_type() -> None:
    assert {event["type"] for event in _EVENTS_OF_EVERY_TYPE} >= set(schema.EVENT_SHAPES)


@pytest.mark.parametrize("event", _EVENTS_OF_EVERY_TYPE, ids=[event["type"] for event in _EVENTS_OF_EVERY_TYPE])
@pytest.mark.parametrize("extra", [{}, {"unknownKey": 1, "parentRunId2": "x"}], ids=["clean", "with-extras"])
def test_every_event_type_is_stripped_as_the_client_strips_it(js, event: dict[str, Any], extra: dict[str, Any]) -> None:
    events = [{**event, **extra}, {**event, "timestamp": 1, "metadata": {"m": 1}, "rawEvent": [1]}]
    assert ours(events) == js.enforce(events)


# Events carrying the legacy shapes the boundary upgrades.
# Narrow pools, so a converted binary part often meets its modern twin in the same message.
_MEDIA = [("image", "image/png"), ("audio", "audio/wav")]
_legacy_part = st.one_of(
    st.builds(
        lambda mime, src, filename: {"type": "binary", "mimeType": mime, **src, **filename},
        st.sampled_from([mime for _, mime in _MEDIA] * 3 + ["video/mp4", "application/pdf"]),
        st.sampled_from([{"data": "AA"}, {"url": "http://u"}, {"data": "", "url": "http://u"}, {"id": "only-id"}]),
        _maybe(filename=st.sampled_from(["f.png", "f.png", ""])),
    ),
    st.builds(
        lambda media, source, metadata: {
            "type": media[0],
            "source": {**source, "mimeType": media[1]},
            "metadata": metadata,
        },
        st.sampled_from([*_MEDIA, ("image", "image/jpeg")]),  # same kind and value, another MIME type
        st.sampled_from([{"type": "data", "value": "AA"}, {"type": "url", "value": "http://u"}]),
        st.sampled_from([None, {"filename": "f.png"}, {}]),
    ),
    st.just({"type": "text", "text": "t"}),
)
_legacy_messages = st.lists(
    st.builds(lambda parts: {"id": "u", "role": "user", "content": parts}, st.lists(_legacy_part, max_size=6)),
    max_size=3,
)
_legacy_event = st.one_of(
    st.builds(
        lambda m, raw: {"type": "MESSAGES_SNAPSHOT", "messages": m, **raw}, _legacy_messages, _maybe(rawEvent=st.none())
    ),
    st.builds(
        lambda m, fp, tp, rp: {
            "type": "RUN_STARTED",
            "threadId": "t",
            "runId": "r",
            "input": {
                "threadId": "t",
                "runId": "r",
                "messages": m,
                **fp,
                "tools": [{"name": "f", "description": "d", **tp}],
                "resume": [{"interruptId": "i", "status": "cancelled", **rp}],
            },
        },
        _legacy_messages,
        _maybe(forwardedProps=st.none()),
        _maybe(parameters=st.none()),
        _maybe(payload=st.none()),
    ),
    st.builds(
        lambda o: {"type": "RUN_FINISHED", "threadId": "t", "runId": "r", **o},
        _maybe(result=st.none(), outcome=st.none(), rawEvent=st.none()),
    ),
    st.builds(lambda o: {"type": "SUBAGENT_FINISHED", "subagentRunId": "s", **o}, _maybe(result=st.none())),
    st.builds(
        lambda etype, o: {"type": etype, "toolCallId": "c", "toolCallName": "f", **o},
        st.sampled_from(["TOOL_CALL_START", "TOOL_CALL_CHUNK"]),
        _maybe(parentMessageId=st.sampled_from([None, "m"]), rawEvent=st.none()),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_legacy_event, min_size=1, max_size=4))
def test_compatibility_boundary_matches_the_client(js, events: list[dict[str, Any]]) -> None:
    assert [apply_compatibility_boundary(event) for event in events] == js.compat(events)
    assert ours(events, compat=True) == js.enforce(events, compat=True)


def test_client_holds_snapshot_messages_exactly_as_normalized(official_client) -> None:
    noisy = [
        {"id": "s", "role": "system", "content": "be brief", "toolCalls": [], "x": 1},
        {
            "id": "u",
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "style": "bold"},
                {"type": "binary", "mimeType": "image/png", "data": "AA", "filename": "cat.png"},
                {"type": "audio", "source": {"type": "url", "value": "http://a", "codec": "opus"}, "metadata": None},
                {"type": "hologram", "data": "?"},
            ],
            "clientOnly": True,
        },
        {"id": "g", "role": "ghost", "content": "boo"},
        {
            "id": "a",
            "role": "assistant",
            "toolCalls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}", "strict": True},
                    "index": 0,
                }
            ],
        },
        {"id": "t", "role": "tool", "content": "done", "toolCallId": "c", "name": "f"},
    ]
    snapshot = {"type": "MESSAGES_SNAPSHOT", "messages": noisy}
    replayed = official_client.replay([RUN_STARTED_EVENT, snapshot, RUN_FINISHED_EVENT])
    assert replayed.error is None
    expected = normalize_messages(apply_compatibility_boundary(snapshot)["messages"])
    assert replayed.messages == expected
    assert [m["id"] for m in expected] == ["s", "u", "a", "t"]


RUN_STARTED_EVENT = {"type": "RUN_STARTED", "threadId": "t", "runId": "r"}
RUN_FINISHED_EVENT = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}
