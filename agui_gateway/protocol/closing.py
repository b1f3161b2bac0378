"""What a run has open, and the events that close it before a RUN_FINISHED the gateway writes.

A stop ends a run with AG-UI 1.0's cancelled outcome (``RUN_FINISHED`` with
``outcome: {"type": "cancelled"}``). The official client's ``verifyEvents`` (1.0.0)
takes a RUN_ERROR at any point, but refuses a RUN_FINISHED while a text message, tool
call, reasoning message, reasoning span, step or subagent is still open; so the stop
first closes each. :class:`OpenParts` follows one run's events as that stage sees them
(after the client's chunk expansion, :mod:`.chunks`) and gives those closing events.

What a ``*_CHUNK`` stream left open is not closed by an explicit event: the client's
chunk stage emits its END itself, at the first closing event of its lane or at the
RUN_FINISHED, and an explicit END after it would be refused ("no active text message").

A tool call cut off in the middle of its arguments ends with arguments that parse: a
last TOOL_CALL_ARGS (a TOOL_CALL_CHUNK for a chunk stream) completes the JSON text it
streamed (open strings, literals and containers closed, a value still missing
``null``), because a TOOL_CALL_END over arguments that are no JSON is an error to
conformance checkers (``ag-ui-validate``'s AGUI204). What was streamed is kept as it
is: a delta can only add to it.
"""

from __future__ import annotations

import json
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import STOPPED_CODE
from agui_gateway.protocol.chunks import ChunkStreamError, ChunkTransformer
from agui_gateway.protocol.types import Event

# opener type -> (closing type, id field, the kind's place in the closing order)
_OPENERS = {
    ev.TEXT_MESSAGE_START: (ev.TEXT_MESSAGE_END, "messageId"),
    ev.TOOL_CALL_START: (ev.TOOL_CALL_END, "toolCallId"),
    ev.REASONING_MESSAGE_START: (ev.REASONING_MESSAGE_END, "messageId"),
    ev.REASONING_START: (ev.REASONING_END, "messageId"),
}
_CLOSERS = {closing: (opener, field) for opener, (closing, field) in _OPENERS.items()}
# Innermost first: a tool call's or a message's END before the reasoning span or step around it.
_ORDER = (ev.TEXT_MESSAGE_START, ev.TOOL_CALL_START, ev.REASONING_MESSAGE_START, ev.REASONING_START)


class OpenParts:
    """The open parts of one run, fed its events from its RUN_STARTED on."""

    def __init__(self) -> None:
        self._chunks = ChunkTransformer()
        # Per opener type, the open ids and whether the opener named a subagent (insertion ordered).
        self._open: dict[str, dict[str, Any]] = {opener: {} for opener in _OPENERS}
        self._steps: dict[tuple[Any, str], Any] = {}  # (owner, stepName) -> the owner as given
        self._subagents: dict[str, None] = {}
        self._args: dict[str, list[str]] = {}  # an open tool call's argument deltas

    def feed(self, event: Event) -> None:
        try:
            expanded = self._chunks.feed(event)
        except ChunkStreamError:
            return  # the client fails the run here whatever follows: nothing to close for it
        for seen in expanded:
            self._track(seen)

    def _track(self, event: Event) -> None:
        kind = event.get("type")
        if kind in _OPENERS:
            entity = event.get(_OPENERS[kind][1])
            if isinstance(entity, str):
                self._open[kind][entity] = event.get("subagentRunId")
                if kind == ev.TOOL_CALL_START:
                    self._args.setdefault(entity, [])
        elif kind == ev.TOOL_CALL_ARGS:
            args = self._args.get(event.get("toolCallId"))  # type: ignore[arg-type]
            delta = event.get("delta")
            if args is not None and isinstance(delta, str):
                args.append(delta)
        elif kind in _CLOSERS:
            opener, field = _CLOSERS[kind]
            entity = event.get(field)
            if isinstance(entity, str):
                self._open[opener].pop(entity, None)
                if kind == ev.TOOL_CALL_END:
                    self._args.pop(entity, None)
        elif kind == ev.STEP_STARTED or kind == ev.STEP_FINISHED:
            name = event.get("stepName")
            if isinstance(name, str):
                owner = event.get("subagentRunId")
                if kind == ev.STEP_STARTED:
                    self._steps[(owner, name)] = owner
                else:
                    self._steps.pop((owner, name), None)
        elif kind == ev.SUBAGENT_STARTED:
            subagent = event.get("subagentRunId")
            if isinstance(subagent, str):
                self._subagents[subagent] = None
        elif kind == ev.SUBAGENT_FINISHED or kind == ev.SUBAGENT_ERROR:
            subagent = event.get("subagentRunId")
            if isinstance(subagent, str):
                self._subagents.pop(subagent, None)

    def closing_events(self, reason: str) -> list[Event]:
        """The events that close every open part, innermost first; ``reason`` is the
        message of a stopped subagent's SUBAGENT_ERROR. (Pure: the run is not changed.)"""
        # What chunk streams left open the client's chunk stage closes itself (module doc):
        # see what it would emit at the RUN_FINISHED, and leave those parts out.
        chunk_closed: dict[str, set[str]] = {opener: set() for opener in _OPENERS}
        events: list[Event] = []
        for end in self._chunks.pending_ends():
            opener, field = _CLOSERS[end["type"]]
            if isinstance(end[field], str):
                chunk_closed[opener].add(end[field])
                if opener == ev.TOOL_CALL_START:
                    # Its arguments are completed by one more chunk of the same stream.
                    completion = json_completion("".join(self._args.get(end[field], ())))
                    if completion:
                        chunk = {"type": ev.TOOL_CALL_CHUNK, field: end[field], "delta": completion}
                        events.append(_owned(chunk, end.get("subagentRunId")))
        for opener in _ORDER:
            closing, field = _OPENERS[opener]
            for entity, owner in reversed(self._open[opener].items()):
                if entity in chunk_closed[opener]:
                    continue
                if opener == ev.TOOL_CALL_START:
                    completion = json_completion("".join(self._args.get(entity, ())))
                    if completion:
                        events.append(_owned({"type": ev.TOOL_CALL_ARGS, field: entity, "delta": completion}, owner))
                events.append(_owned({"type": closing, field: entity}, owner))
        for owner, name in reversed(self._steps):
            events.append(_owned({"type": ev.STEP_FINISHED, "stepName": name}, owner))
        for subagent in reversed(self._subagents):
            # A SUBAGENT_ERROR: the subagent outcomes are success and suspended only, and it did not complete.
            events.append(
                {"type": ev.SUBAGENT_ERROR, "subagentRunId": subagent, "message": reason, "code": STOPPED_CODE}
            )
        return events


def _owned(event: Event, owner: Any) -> Event:
    """``event`` naming the subagent its opener named (the client checks the two agree)."""
    if isinstance(owner, str):
        event["subagentRunId"] = owner
    return event


_LITERALS = ("true", "false", "null")


def json_completion(text: str) -> str | None:
    """What to append to ``text``, a JSON text cut short, so that it parses: "" when it
    parses already (or is empty: a tool call without arguments), None when no suffix can
    make it parse (it is no prefix of a JSON text)."""
    if not text.strip():
        return "" if not text else "null"
    try:
        json.loads(text)
        return ""
    except ValueError:
        pass
    suffix = _suffix(text)
    if suffix is None:
        return None
    try:
        json.loads(text + suffix)
    except ValueError:
        return None
    return suffix


def _suffix(text: str) -> str | None:
    # A scan of the JSON grammar: the open containers, and what each expects next.
    stack: list[str] = []  # "{" or "["
    expect = "value"  # value | key | colon | comma (after a value) | done
    in_string = is_key = escape = False
    unicode_left = 0
    token = ""  # a literal or number being read
    fresh = False  # right after a "{" or "[": it may close at once
    for ch in text:
        if in_string:
            if unicode_left:
                unicode_left -= 1
            elif escape:
                escape = False
                unicode_left = 4 if ch == "u" else 0
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
                expect = "colon" if is_key else "comma"
            continue
        if token:
            if ch.isalnum() or ch in "+-.":
                token += ch
                continue
            token = ""
            expect = "comma"
        if ch in " \t\r\n":
            continue
        if expect in ("value", "key") and ch == '"':
            in_string, is_key = True, expect == "key"
        elif expect == "value" and ch in "{[":
            stack.append(ch)
            expect = "key" if ch == "{" else "value"
            fresh = True
            continue
        elif expect == "value" and (ch.isdigit() or ch == "-" or ch in "tfn"):
            token = ch
        elif ch in "}]" and stack and stack[-1] == ("{" if ch == "}" else "[") and expect in ("comma", "key", "value"):
            stack.pop()
            expect = "comma"
        elif expect == "colon" and ch == ":":
            expect = "value"
        elif expect == "comma" and ch == "," and stack:
            expect = "key" if stack[-1] == "{" else "value"
        else:
            return None
        fresh = False
        if not stack and expect == "comma" and not token and not in_string:
            expect = "done" if ch in "}]" else expect
    out = ""
    if in_string:
        if escape:
            out += "\\"  # the escape becomes an escaped backslash
        out += "0" * unicode_left + '"'
        expect = "colon" if is_key else "comma"
    elif token:
        literal = next((word for word in _LITERALS if word.startswith(token)), None)
        if literal is not None:
            out += literal[len(token) :]
        elif token[-1] in "-+.eE":
            out += "0"
        expect = "comma"
    if fresh:
        pass  # an empty container: closed below
    elif expect == "key":
        out += '"": null'  # a trailing comma in an object cannot be taken back: it gets a member
    elif expect == "colon":
        out += ": null"
    elif expect == "value" and (stack or not out):
        out += "null"
    for opener in reversed(stack):
        out += "}" if opener == "{" else "]"
    return out
