"""An exact port of @ag-ui/client 1.0.0 ``transformChunks`` (chunks/transform.ts).

The client expands the ``*_CHUNK`` shorthand into explicit start / content / end
events after enforcement and before verification. :class:`ChunkTransformer` does
the same, one event at a time, so a reducer fed through it ends where the client
ends. Everything mirrors the TypeScript branch for branch, including its
JavaScript distinctions:

* ``x !== undefined`` is "the key is present" (a JSON ``null`` is present);
  ``x ?? undefined`` reads ``null`` as absent. Lane owners follow ``??``, so the
  parent agent's lane is keyed ``None``.
* ``===`` on ids is :func:`~agui_gateway.protocol.js.strict_equals` (objects compare by identity, numbers by
  value, never across types).
* Errors raise :class:`ChunkStreamError` with the client's own message, where
  the client's observable errors and the run fails.

One deliberate narrowing: a ``subagentRunId`` that is neither a string nor
``null`` on a chunk raises. The client would key a lane by it here, but its
enforcement stage (``SubagentRunIdSchema`` is ``z.string()``) rejects such an
event fatally before this stage runs, so the run fails either way.

The client's warnings (console.warn) are not reproduced; they change nothing.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.js import strict_equals, to_string
from agui_gateway.protocol.types import ABSENT, Event

if TYPE_CHECKING:
    from pydantic import BaseModel

# An explicit event closes only its own lane's pending stream.
_CLOSES_OWN_LANE = frozenset(
    {
        ev.TEXT_MESSAGE_START,
        ev.TEXT_MESSAGE_CONTENT,
        ev.TEXT_MESSAGE_END,
        ev.TOOL_CALL_START,
        ev.TOOL_CALL_ARGS,
        ev.TOOL_CALL_END,
        ev.TOOL_CALL_RESULT,
        ev.STATE_SNAPSHOT,
        ev.STATE_DELTA,
        ev.CUSTOM,
        ev.STEP_STARTED,
        ev.STEP_FINISHED,
        ev.REASONING_START,
        ev.REASONING_MESSAGE_START,
        ev.REASONING_MESSAGE_CONTENT,
        ev.REASONING_MESSAGE_END,
        ev.REASONING_END,
    }
)
# Run-level events (and the conversation-wide snapshot) close every lane.
_CLOSES_ALL_LANES = frozenset({ev.RUN_STARTED, ev.RUN_FINISHED, ev.RUN_ERROR, ev.MESSAGES_SNAPSHOT})
# A subagent's terminal closes that subagent's lane only.
_SUBAGENT_TERMINALS = frozenset({ev.SUBAGENT_FINISHED, ev.SUBAGENT_ERROR})
# Passed through untouched, lanes left open.
_UNTOUCHED = frozenset(
    {ev.RAW, ev.ACTIVITY_SNAPSHOT, ev.ACTIVITY_DELTA, ev.REASONING_ENCRYPTED_VALUE, ev.SUBAGENT_STARTED}
)

# The TypeScript switch is exhaustive over EventType (`_exhaustiveCheck: never`);
# keep the same guarantee against a protocol revision adding a type.
_ALL_CASES = (_CLOSES_OWN_LANE, _CLOSES_ALL_LANES, _SUBAGENT_TERMINALS, _UNTOUCHED, ev.CHUNK_TYPES)
assert frozenset().union(*_ALL_CASES) == ev.ALL_TYPES and sum(map(len, _ALL_CASES)) == len(ev.ALL_TYPES)


@cache
def chunk_fields(event_type: str) -> frozenset[str]:
    """The wire names a chunk shape declares, read from the generated model (as the
    client reads ``Object.keys(schema.shape)``), never hand-copied. Loaded on the
    first chunk event: the pydantic models take a third of a second to import."""
    from ag_ui._generated import models

    chunk_models: dict[str, type[BaseModel]] = {
        ev.TEXT_MESSAGE_CHUNK: models.TextMessageChunkEvent,
        ev.TOOL_CALL_CHUNK: models.ToolCallChunkEvent,
        ev.REASONING_MESSAGE_CHUNK: models.ReasoningMessageChunkEvent,
    }
    model = chunk_models[event_type]
    return frozenset(field.alias or name for name, field in model.model_fields.items())


class ChunkStreamError(ValueError):
    """The client's chunk stage would throw here, failing the run."""


def _remainder(chunk: Event, described: frozenset[str]) -> Event | None:
    """What the chunk carries that its schema does not describe (``undefined`` if nothing)."""
    if chunk.keys() <= described:
        return None
    return {key: value for key, value in chunk.items() if key not in described}


def _owner_of(chunk: Event, fields: Event) -> Any:
    """The incoming chunk's own tag if present (even null), else the opener's (maybe absent)."""
    return chunk["subagentRunId"] if "subagentRunId" in chunk else fields.get("subagentRunId", ABSENT)


def _with_metadata(event: Event, chunk: Event) -> Event:
    if "metadata" in chunk:
        event["metadata"] = chunk["metadata"]
    return event


def _with_origin(event: Event, chunk: Event) -> Event:
    _with_metadata(event, chunk)
    if "rawEvent" in chunk:
        event["rawEvent"] = chunk["rawEvent"]
    return event


def _require_opener_agreement(entity_kind: str, entity_id: Any, field: str, incoming: Any, established: Any) -> None:
    if incoming is not ABSENT and not strict_equals(incoming, established):
        said = "(absent)" if established is ABSENT else f"'{to_string(established)}'"
        raise ChunkStreamError(
            f"Cannot continue {entity_kind} '{to_string(entity_id)}': chunk {field} "
            f"'{to_string(incoming)}' does not match the open stream's {field} {said}."
        )


def _carry_remainder_on_opener(result: list[Event], remainder: Event | None, carried: bool) -> None:
    """Nothing else took the remainder: it rides the last synthesized event, which wins on clashes."""
    if remainder is None or carried or not result:
        return
    result[-1] = {**remainder, **result[-1]}


class _Pending:
    """The stream one lane is assembling. ``fields`` holds only the keys the opener had."""

    __slots__ = ("entity_id", "fields", "kind")

    def __init__(self, kind: str, entity_id: Any, fields: Event) -> None:
        self.kind = kind  # "text" | "tool" | "reasoning"
        self.entity_id = entity_id  # messageId, or toolCallId for "tool"
        self.fields = fields


_END_TYPE = {"text": ev.TEXT_MESSAGE_END, "tool": ev.TOOL_CALL_END, "reasoning": ev.REASONING_MESSAGE_END}
_ID_FIELD = {"text": "messageId", "tool": "toolCallId", "reasoning": "messageId"}


def _end_of(pending: _Pending) -> Event:
    end: Event = {"type": _END_TYPE[pending.kind], _ID_FIELD[pending.kind]: pending.entity_id}
    if "subagentRunId" in pending.fields:
        end["subagentRunId"] = pending.fields["subagentRunId"]
    return end


class ChunkTransformer:
    """One subscription of the client's ``transformChunks`` operator.

    ``feed(event)`` returns the events the client emits for ``event``, in order.
    When :attr:`active` is false and the event is not a ``*_CHUNK`` event the
    answer is always ``[event]``, so a caller may skip the call on that hot path.
    """

    __slots__ = ("_lanes",)

    def __init__(self) -> None:
        # One pending stream per lane; a lane is the subagent its chunks belong to,
        # None the parent agent. Insertion-ordered, like the client's Map.
        self._lanes: dict[str | None, _Pending] = {}

    @property
    def active(self) -> bool:
        """Whether any lane has a chunk stream open."""
        return bool(self._lanes)

    def finish(self) -> list[Event]:
        """The stream completed. The client's ``finalize`` only clears its lanes: the
        END events it would build are discarded, so nothing is emitted."""
        self._lanes.clear()
        return []

    def feed(self, event: Event) -> list[Event]:
        etype = event.get("type")
        if type(etype) is not str:
            return [event]  # the switch's default arm: not this stage's to judge
        if etype in _CLOSES_OWN_LANE:
            if not self._lanes:
                return [event]
            return [*self._close_lane(event.get("subagentRunId")), event]
        if etype in ev.CHUNK_TYPES:
            if etype == ev.TEXT_MESSAGE_CHUNK:
                return self._text_chunk(event)
            if etype == ev.TOOL_CALL_CHUNK:
                return self._tool_chunk(event)
            return self._reasoning_chunk(event)
        if etype in _CLOSES_ALL_LANES:
            return [*self._close_all_lanes(), event]
        if etype in _SUBAGENT_TERMINALS:
            owner = event.get("subagentRunId")
            if owner is None:  # `== null`: a terminal without an owner closes nothing
                return [event]
            return [*self._close_lane(owner), event]
        return [event]  # _UNTOUCHED, and types the protocol does not know

    # ------------------------------------------------------------------ lanes

    def _close_lane(self, owner: Any) -> list[Event]:
        """Emit the END for whatever ``owner`` has open, and clear the lane."""
        if owner is not None and type(owner) is not str:
            return []  # lanes are only ever keyed by strings or None
        pending = self._lanes.pop(owner, None)
        if pending is None:
            return []
        return [_end_of(pending)]

    def pending_ends(self) -> list[Event]:
        """The ENDs a run-level event would get first (what the lanes have open); nothing changes."""
        return [_end_of(pending) for pending in self._lanes.values()]

    def _close_all_lanes(self) -> list[Event]:
        closed: list[Event] = []
        for owner in list(self._lanes):
            closed.extend(self._close_lane(owner))
        return closed

    def _resolve_lane(
        self, kind: str, entity_id: Any, tag: str | None, chunk_type: str, entity_kind: str
    ) -> str | None:
        """Which lane a chunk belongs to (``resolveLane``)."""
        lanes = self._lanes
        if entity_id is not ABSENT:
            # A named id continues wherever it is already open.
            for owner, pending in lanes.items():
                if pending.kind == kind and strict_equals(pending.entity_id, entity_id):
                    if tag is not None and tag != owner:
                        shown = "(the parent agent)" if owner is None else owner
                        raise ChunkStreamError(
                            f"Cannot continue {entity_kind} '{to_string(entity_id)}': chunk subagentRunId "
                            f"'{tag}' does not match the open stream's subagent '{shown}'."
                        )
                    return owner
            return tag  # an id nobody holds opens a new stream in its own tag's lane
        if tag is not None:
            return tag
        parent = lanes.get(None)
        if parent is not None and parent.kind == kind:
            return None
        candidates = [owner for owner, pending in lanes.items() if pending.kind == kind]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ChunkStreamError(
                f"Ambiguous {chunk_type}: it carries neither a {_ID_FIELD[kind]} nor a subagentRunId, "
                f"but {len(candidates)} lanes have an open {entity_kind}. "
                "Attribute the chunk to the subagent it belongs to."
            )
        return None

    @staticmethod
    def _tag(chunk: Event) -> str | None:
        tag = chunk.get("subagentRunId")  # `?? undefined`
        if tag is not None and type(tag) is not str:
            raise ChunkStreamError(
                f"{chunk['type']}.subagentRunId must be a string; the client rejects this event at enforcement."
            )
        return tag

    @staticmethod
    def _content(
        result: list[Event],
        chunk: Event,
        remainder: Event | None,
        content_type: str,
        id_field: str,
        fields: Event,
        entity_id: Any,
    ) -> bool:
        """The content event(s) a chunk synthesizes; returns whether the remainder found a carrier."""
        if "delta" in chunk or "rawEvent" in chunk:
            content: Event = dict(remainder) if remainder is not None else {}
            content["type"] = content_type
            content[id_field] = entity_id
            content["delta"] = chunk.get("delta", "")  # `=== undefined ? "" : delta`: null survives
            owner = _owner_of(chunk, fields)
            if owner is not ABSENT:
                content["subagentRunId"] = owner
            result.append(_with_origin(content, chunk))
            return True
        # A chunk that synthesized nothing still delivers its metadata, payload, a null
        # tag (for the stage that rejects it) or unrecognised material.
        if not result and (
            "metadata" in chunk
            or "rawEvent" in chunk
            or ("subagentRunId" in chunk and chunk["subagentRunId"] is None)
            or remainder is not None
        ):
            filler: Event = dict(remainder) if remainder is not None else {}
            filler["type"] = content_type
            filler[id_field] = entity_id
            filler["delta"] = ""
            if "metadata" in chunk:
                filler["metadata"] = chunk["metadata"]
            if "rawEvent" in chunk:
                filler["rawEvent"] = chunk["rawEvent"]
            owner = _owner_of(chunk, fields)
            if owner is not ABSENT:
                filler["subagentRunId"] = owner
            result.append(filler)
            return True
        return False

    # ------------------------------------------------------------------ the three arms

    def _text_chunk(self, chunk: Event) -> list[Event]:
        remainder = _remainder(chunk, chunk_fields(ev.TEXT_MESSAGE_CHUNK))
        message_id = chunk.get("messageId", ABSENT)
        lane = self._resolve_lane("text", message_id, self._tag(chunk), "TEXT_MESSAGE_CHUNK", "text message")
        pending = self._lanes.get(lane)
        result: list[Event] = []
        if (
            pending is not None
            and pending.kind == "text"
            and (message_id is ABSENT or strict_equals(message_id, pending.entity_id))
        ):
            fields = pending.fields
            for field in ("role", "name"):
                _require_opener_agreement(
                    "text message", pending.entity_id, field, chunk.get(field, ABSENT), fields.get(field, ABSENT)
                )
            entity_id = pending.entity_id
        else:
            result.extend(self._close_lane(lane))
            if message_id is ABSENT:
                raise ChunkStreamError("First TEXT_MESSAGE_CHUNK must have a messageId")
            entity_id = message_id
            # Absent means assistant; a present value (even null) is kept for enforcement to judge.
            fields = {"role": chunk.get("role", "assistant")}
            start: Event = {"type": ev.TEXT_MESSAGE_START, "messageId": message_id, "role": fields["role"]}
            if "name" in chunk:
                fields["name"] = start["name"] = chunk["name"]
            if "subagentRunId" in chunk:
                fields["subagentRunId"] = start["subagentRunId"] = chunk["subagentRunId"]
            self._lanes[lane] = _Pending("text", message_id, fields)
            result.append(_with_metadata(start, chunk))
        carried = self._content(result, chunk, remainder, ev.TEXT_MESSAGE_CONTENT, "messageId", fields, entity_id)
        _carry_remainder_on_opener(result, remainder, carried)
        return result

    def _tool_chunk(self, chunk: Event) -> list[Event]:
        remainder = _remainder(chunk, chunk_fields(ev.TOOL_CALL_CHUNK))
        tool_call_id = chunk.get("toolCallId", ABSENT)
        lane = self._resolve_lane("tool", tool_call_id, self._tag(chunk), "TOOL_CALL_CHUNK", "tool call")
        pending = self._lanes.get(lane)
        result: list[Event] = []
        if (
            pending is not None
            and pending.kind == "tool"
            and (tool_call_id is ABSENT or strict_equals(tool_call_id, pending.entity_id))
        ):
            fields = pending.fields
            for field in ("toolCallName", "parentMessageId"):
                _require_opener_agreement(
                    "tool call", pending.entity_id, field, chunk.get(field, ABSENT), fields.get(field, ABSENT)
                )
            entity_id = pending.entity_id
        else:
            result.extend(self._close_lane(lane))
            if tool_call_id is ABSENT:
                raise ChunkStreamError("First TOOL_CALL_CHUNK must have a toolCallId")
            if "toolCallName" not in chunk:
                raise ChunkStreamError("First TOOL_CALL_CHUNK must have a toolCallName")
            entity_id = tool_call_id
            fields = {"toolCallName": chunk["toolCallName"]}
            start = {"type": ev.TOOL_CALL_START, "toolCallId": tool_call_id, "toolCallName": chunk["toolCallName"]}
            if "parentMessageId" in chunk:
                fields["parentMessageId"] = start["parentMessageId"] = chunk["parentMessageId"]
            if "subagentRunId" in chunk:
                fields["subagentRunId"] = start["subagentRunId"] = chunk["subagentRunId"]
            self._lanes[lane] = _Pending("tool", tool_call_id, fields)
            result.append(_with_metadata(start, chunk))
        carried = self._content(result, chunk, remainder, ev.TOOL_CALL_ARGS, "toolCallId", fields, entity_id)
        _carry_remainder_on_opener(result, remainder, carried)
        return result

    def _reasoning_chunk(self, chunk: Event) -> list[Event]:
        remainder = _remainder(chunk, chunk_fields(ev.REASONING_MESSAGE_CHUNK))
        message_id = chunk.get("messageId", ABSENT)
        lane = self._resolve_lane(
            "reasoning", message_id, self._tag(chunk), "REASONING_MESSAGE_CHUNK", "reasoning message"
        )
        pending = self._lanes.get(lane)
        result: list[Event] = []
        if (
            pending is not None
            and pending.kind == "reasoning"
            and (message_id is ABSENT or strict_equals(message_id, pending.entity_id))
        ):
            fields = pending.fields
            entity_id = pending.entity_id
        else:
            result.extend(self._close_lane(lane))
            if message_id is ABSENT:
                raise ChunkStreamError("First REASONING_MESSAGE_CHUNK must have a messageId")
            entity_id = message_id
            fields = {}
            start = {"type": ev.REASONING_MESSAGE_START, "messageId": message_id, "role": "reasoning"}
            if "subagentRunId" in chunk:
                fields["subagentRunId"] = start["subagentRunId"] = chunk["subagentRunId"]
            self._lanes[lane] = _Pending("reasoning", message_id, fields)
            result.append(_with_metadata(start, chunk))
        carried = self._content(result, chunk, remainder, ev.REASONING_MESSAGE_CONTENT, "messageId", fields, entity_id)
        _carry_remainder_on_opener(result, remainder, carried)
        return result
