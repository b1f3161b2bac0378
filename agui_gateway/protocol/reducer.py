"""An exact Python port of @ag-ui/client 1.0.0's ``defaultApplyEvents``.

Feed it events one at a time; it holds only the resulting ``messages`` and
``state`` (plus small indexes), never the events. Every branch mirrors
``apply/default.ts``; where the TypeScript relies on JavaScript semantics
(``??``, spreading ``undefined``, first-match ``find``) the Python says so.

Two things differ in *how*, never in *what*:

* Streamed text and tool-call arguments are collected in per-target buffers and
  joined when read, because ``s += delta`` on a dict value is quadratic in
  CPython and a tool result or message can be megabytes of tiny deltas.
* Lookups by message id and tool-call id go through indexes that always answer
  "the first message in list order", as ``messages.find`` does.

The client runs every event through its compatibility boundary, its schema
enforcement (unknown fields stripped) and its chunk stage before apply. The
reducer always runs the chunk stage (:class:`~agui_gateway.protocol.chunks.ChunkTransformer`).
With ``client_view=True`` (the default) it also runs the boundary and the
enforcement strip (:mod:`agui_gateway.protocol.compat`, :mod:`agui_gateway.protocol.schema`) on
every event but the streamed deltas, whose extra fields never reach a message,
so ``messages`` is exactly what the client holds. Compaction uses
``client_view=False``: its snapshots keep what the agent sent, the client strips
on its side as it would have from the raw stream, and a newer client that knows
more fields still gets them. (Those modules load the protocol's pydantic models,
which costs a third of a second; without ``client_view`` they are not loaded.)
"""

from __future__ import annotations

from collections.abc import Callable, KeysView
from typing import Any

import jsonpatch
import orjson

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.chunks import ChunkStreamError, ChunkTransformer
from agui_gateway.protocol.limits import TooDeep, depth_exceeds, patch_exceeds
from agui_gateway.protocol.types import NOT_GIVEN, Event, Message

_ACTIVITY_HISTORY_METADATA = "@ag-ui/client"


def _clone(value: Any) -> Any:
    """``structuredClone`` for JSON values (what events are made of)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return orjson.loads(orjson.dumps(value))


def _as_is(value: Any) -> Any:
    return value


def _merge_metadata(existing: Any, incoming: Any) -> dict[str, Any]:
    # mergeMetadata: {...existing, ...incoming}; spreading null/undefined adds nothing.
    merged: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
    if isinstance(incoming, dict):
        merged.update(incoming)
    return merged


def _apply_metadata(target: dict[str, Any] | None, event: Event) -> bool:
    """applyEventMetadata: fold the event's metadata into its target, last write wins."""
    if target is None or "metadata" not in event:
        return False
    target["metadata"] = _merge_metadata(target.get("metadata"), _clone(event["metadata"]))
    return True


def _authoritative_activity_types(event: Event) -> list[str] | bool | None:
    """activity-history.ts ``authoritativeActivityTypes``; ``False`` stands for undefined."""
    metadata = event.get("metadata")
    if not isinstance(metadata, dict) or _ACTIVITY_HISTORY_METADATA not in metadata:
        return False
    value = metadata[_ACTIVITY_HISTORY_METADATA]
    if not value or not isinstance(value, dict):
        return []
    if "authoritativeActivityTypes" not in value:
        return False
    types = value["authoritativeActivityTypes"]
    if types is None:
        return None
    if isinstance(types, list) and all(isinstance(t, str) for t in types):
        return types
    return []


def _apply_json_patch(document: Any, patch: Any) -> Any:
    """fast-json-patch ``applyPatch(doc, patch, validate=true, mutate=false)``: all or nothing.

    Raises on any invalid operation; the caller keeps the old document. A patch
    that would nest the document deeper than :data:`~agui_gateway.protocol.limits.MAX_DEPTH`
    is refused the same way (:class:`TooDeep`): a state that cannot be encoded again
    would make the thread unreadable (the one place this port departs from the client).
    """
    if patch_exceeds(document, patch):
        raise TooDeep("the patch would nest the document too deep")
    # Clone with orjson (much faster than the deepcopy jsonpatch would do), then patch the clone.
    return jsonpatch.apply_patch(_clone(document), patch, in_place=True)


_DELTAS = frozenset({ev.TEXT_MESSAGE_CONTENT, ev.TOOL_CALL_ARGS, ev.REASONING_MESSAGE_CONTENT})


def _client_enforcement() -> Callable[[Event], Event | None]:
    """The client's compatibility boundary then its enforcement strip, as one function."""
    from agui_gateway.protocol.compat import apply_compatibility_boundary
    from agui_gateway.protocol.schema import normalize_event

    def enforce(event: Event) -> Event | None:
        return normalize_event(apply_compatibility_boundary(event))

    return enforce


def _strip_null_subagent(message: Any) -> Any:
    if isinstance(message, dict) and "subagentRunId" in message and message["subagentRunId"] is None:
        message = dict(message)
        del message["subagentRunId"]
    return message


class Reducer:
    """Applies AG-UI events to ``(messages, state)`` exactly as the official client does."""

    def __init__(
        self,
        messages: list[Message] | None = None,
        state: Any = NOT_GIVEN,
        *,
        client_view: bool = True,
        take: bool = False,
    ) -> None:
        # take: the caller hands over messages and state no one else holds (just
        # decoded from a checkpoint), so copying them would only cost time.
        copy = _as_is if take else _clone
        self._messages: list[Message] = copy(messages) if messages else []
        # The client's initial agent state is {}; None (JSON null) is a real state.
        self._state: Any = {} if state is NOT_GIVEN else copy(state)
        self.state_touched = False  # a STATE_SNAPSHOT or successful STATE_DELTA was applied
        self.pending_interrupts: list[Any] = []
        self.error: str | None = None
        self._chunks = ChunkTransformer()
        self._enforce = _client_enforcement() if client_view else None
        # id -> first message with that id; tool call id -> (first owner message, tool call)
        self._by_id: dict[str, Message] = {}
        self._tool_calls: dict[str, tuple[Message, dict[str, Any]]] = {}
        # id(target) -> (target, key, parts): streamed text not yet joined into target[key]
        self._buffers: dict[int, tuple[dict[str, Any], str, list[str]]] = {}
        # How many times the id index was rebuilt: between two rebuilds ids are only
        # ever added, at the end of message_ids() (the folded runs rely on it).
        self.reindexes = 0
        self._reindex()

    # ------------------------------------------------------------------ public API

    def apply(self, event: Event) -> None:
        """Apply one event (as parsed from JSON). Unknown or malformed events change nothing.

        An event the client's chunk stage rejects ends the client's run; from
        then on this reducer ignores events too (``error`` says why).
        """
        if self.error is not None:
            return
        chunks = self._chunks
        try:
            if chunks.active or event.get("type") in ev.CHUNK_TYPES:
                for produced in chunks.feed(event):
                    self._apply_one(produced)
            else:
                self._apply_one(event)
        except ChunkStreamError as exc:
            self.error = str(exc)
        except TypeError:  # an unhashable "type": the client's schema rejects it
            pass

    def apply_all(self, events: Any) -> Reducer:
        for event in events:
            self.apply(event)
        return self

    def finish(self) -> None:
        """The input stream ended: apply what the chunk stage emits at completion."""
        for produced in self._chunks.finish():
            self._apply_one(produced)

    @property
    def messages(self) -> list[Message]:
        """The live message list (do not mutate); see :meth:`snapshot` for a copy."""
        self._flush_all()
        return self._messages

    @property
    def state(self) -> Any:
        return self._state

    def message_ids(self) -> KeysView[str]:
        """The (string) ids of the messages held, in the order they first appeared since
        the last rebuild of the index (:attr:`reindexes`), as a live view."""
        return self._by_id.keys()

    def snapshot(self) -> tuple[list[Message], Any]:
        """Deep copies of ``(messages, state)``."""
        return _clone(self.messages), _clone(self._state)

    # ------------------------------------------------------------------ internals

    def _apply_one(self, event: Event) -> None:
        kind: Any = event.get("type")  # any JSON value: events reach here unvalidated
        if self._enforce is not None and kind not in _DELTAS:
            enforced = self._enforce(event)
            if enforced is None:
                return
            event = enforced
        handler = _HANDLERS.get(kind)
        if handler is not None:
            try:
                handler(self, event)
            except (KeyError, TypeError, AttributeError, ValueError):
                # The client's zod parse rejects such events before apply: skip it.
                return

    def _reindex(self) -> None:
        self.reindexes += 1
        self._by_id = {}
        self._tool_calls = {}
        for message in self._messages:
            self._index_message(message)

    def _index_message(self, message: Message) -> None:
        mid = message.get("id")
        if isinstance(mid, str) and mid not in self._by_id:
            self._by_id[mid] = message
        tool_calls = message.get("toolCalls")
        if isinstance(tool_calls, list):
            for tool_call in tool_calls:
                if isinstance(tool_call, dict):
                    tcid = tool_call.get("id")
                    if isinstance(tcid, str) and tcid not in self._tool_calls:
                        self._tool_calls[tcid] = (message, tool_call)

    def _push(self, message: Message) -> None:
        self._messages.append(message)
        self._index_message(message)

    def _append_text(self, target: dict[str, Any], key: str, delta: str) -> None:
        entry = self._buffers.get(id(target))
        if entry is None:
            existing = target.get(key)
            base = existing if isinstance(existing, str) else ""
            self._buffers[id(target)] = (target, key, [base, delta])
        else:
            entry[2].append(delta)

    def _flush(self, target: dict[str, Any]) -> None:
        entry = self._buffers.pop(id(target), None)
        if entry is not None:
            entry[0][entry[1]] = "".join(entry[2])

    def _flush_all(self) -> None:
        if self._buffers:
            for target, key, parts in self._buffers.values():
                target[key] = "".join(parts)
            self._buffers.clear()

    def _position(self, message: Message) -> int:
        # The message is usually near the end: search backwards by identity.
        messages = self._messages
        for index in range(len(messages) - 1, -1, -1):
            if messages[index] is message:
                return index
        return -1

    # --- text messages

    def _text_start(self, event: Event) -> None:
        self._start_message(event, event.get("role") or "assistant", named=True)

    def _reasoning_start(self, event: Event) -> None:
        self._start_message(event, "reasoning", named=False)

    def _start_message(self, event: Event, role: str, named: bool) -> None:
        """TEXT_MESSAGE_START / REASONING_MESSAGE_START: create the message unless its id exists."""
        message_id = event["messageId"]
        existing = self._by_id.get(message_id)
        if existing is not None and existing.get("role") == "activity":
            return  # a reused activity id: the client drops the text (and its metadata)
        target = existing
        if target is None:
            target = {"id": message_id, "role": role, "content": ""}
            if named and "name" in event:
                target["name"] = event["name"]
            if event.get("subagentRunId") is not None:
                target["subagentRunId"] = event["subagentRunId"]
            self._push(target)
        _apply_metadata(target, event)

    def _text_content(self, event: Event) -> None:
        target = self._by_id.get(event["messageId"])
        if target is None or target.get("role") == "activity":
            return
        self._append_text(target, "content", event["delta"])
        if "metadata" in event:
            _apply_metadata(target, event)

    def _text_end(self, event: Event) -> None:
        target = self._by_id.get(event["messageId"])
        if target is None or target.get("role") == "activity":
            return
        self._flush(target)
        _apply_metadata(target, event)

    _reasoning_content = _text_content
    _reasoning_end = _text_end

    # --- tool calls

    def _tool_call_start(self, event: Event) -> None:
        tool_call_id = event["toolCallId"]
        name = event["toolCallName"]
        known = self._tool_calls.get(tool_call_id)
        if known is not None:
            existing_call = known[1]
            function = existing_call["function"]
            if function.get("name") != name:
                function["name"] = name
            _apply_metadata(existing_call, event)
            return

        target = self._resolve_or_create_assistant(event.get("parentMessageId"), tool_call_id)
        if target is None:
            return
        owner, created = target
        if created and event.get("subagentRunId") is not None and "subagentRunId" not in owner:
            owner["subagentRunId"] = event["subagentRunId"]
        tool_calls = owner.get("toolCalls")
        if tool_calls is None:
            tool_calls = owner["toolCalls"] = []
        tool_call: dict[str, Any] = {
            "id": tool_call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        tool_calls.append(tool_call)
        self._tool_calls[tool_call_id] = (owner, tool_call)
        _apply_metadata(tool_call, event)

    def _resolve_or_create_assistant(self, parent_id: str | None, tool_call_id: str) -> tuple[Message, bool] | None:
        if parent_id:
            existing = self._by_id.get(parent_id)
            if existing is not None and existing.get("role") == "assistant":
                return existing, False
            created: Message = {
                "id": tool_call_id if existing is not None else parent_id,
                "role": "assistant",
                "toolCalls": [],
            }
        else:
            created = {"id": tool_call_id, "role": "assistant", "toolCalls": []}
        self._push(created)
        return created, True

    def _tool_call_args(self, event: Event) -> None:
        known = self._tool_calls.get(event["toolCallId"])
        if known is None:
            return
        tool_call = known[1]
        self._append_text(tool_call["function"], "arguments", event["delta"])
        if "metadata" in event:
            _apply_metadata(tool_call, event)

    def _tool_call_end(self, event: Event) -> None:
        known = self._tool_calls.get(event["toolCallId"])
        if known is None:
            return
        self._flush(known[1]["function"])
        _apply_metadata(known[1], event)

    def _tool_call_result(self, event: Event) -> None:
        tool_call_id = event["toolCallId"]
        message: Message = {
            "id": event["messageId"],
            "toolCallId": tool_call_id,
            "role": event.get("role") or "tool",
            "content": event["content"],
        }
        if event.get("subagentRunId") is not None:
            message["subagentRunId"] = event["subagentRunId"]
        _apply_metadata(message, event)

        owner_index = self._owner_index(tool_call_id)
        messages = self._messages
        if owner_index == -1:
            messages.append(message)
            self._index_message(message)
            return
        insert_at = owner_index + 1
        while insert_at < len(messages) and messages[insert_at].get("role") == "tool":
            insert_at += 1
        messages.insert(insert_at, message)
        if message["id"] in self._by_id:
            self._reindex()  # a duplicate id may now come first
        else:
            self._index_message(message)

    def _owner_index(self, tool_call_id: str) -> int:
        """findIndex of the first *assistant* message holding the tool call."""
        known = self._tool_calls.get(tool_call_id)
        if known is None:
            return -1
        if known[0].get("role") == "assistant":
            return self._position(known[0])
        for index, message in enumerate(self._messages):
            calls = message.get("toolCalls")
            if (
                message.get("role") == "assistant"
                and isinstance(calls, list)
                and any(isinstance(c, dict) and c.get("id") == tool_call_id for c in calls)
            ):
                return index
        return -1

    def _encrypted_value(self, event: Event) -> None:
        entity_id: Any = event.get("entityId")
        value = event.get("encryptedValue")
        if event.get("subtype") == "tool-call":
            known = self._tool_calls.get(entity_id)
            if known is not None and known[0].get("role") == "assistant":
                known[1]["encryptedValue"] = value
                return
            for message in self._messages:
                calls = message.get("toolCalls")
                if message.get("role") == "assistant" and calls:
                    for call in calls:
                        if call.get("id") == entity_id:
                            call["encryptedValue"] = value
                            return
        else:
            target = self._by_id.get(entity_id)
            if target is not None and target.get("role") != "activity":
                target["encryptedValue"] = value

    # --- state

    def _state_snapshot(self, event: Event) -> None:
        snapshot = event.get("snapshot")
        if depth_exceeds(snapshot):
            return  # never a state that cannot be encoded again (see _apply_json_patch)
        self._state = snapshot
        self.state_touched = True

    def _state_delta(self, event: Event) -> None:
        try:
            self._state = _apply_json_patch(self._state, event.get("delta"))
        except Exception:
            return
        self.state_touched = True

    # --- snapshots and activity

    def _messages_snapshot(self, event: Event) -> None:
        raw = event["messages"]
        if not isinstance(raw, list):
            return
        self._flush_all()
        incoming = [_strip_null_subagent(m) for m in _clone(raw)]
        by_id = {m.get("id"): m for m in incoming}
        owned = _authoritative_activity_types(event)
        has_activity = any(m.get("role") == "activity" for m in incoming)
        has_reasoning = any(m.get("role") == "reasoning" for m in incoming)

        def preserved(message: Message) -> bool:
            role = message.get("role")
            if role == "activity":
                if isinstance(owned, list):
                    return message.get("activityType") not in owned
                return owned is not None and not has_activity
            return role == "reasoning" and not has_reasoning

        kept = [by_id.get(m.get("id"), m) for m in self._messages if m.get("id") in by_id or preserved(m)]
        existing_ids = {m.get("id") for m in kept}
        kept.extend(m for m in incoming if m.get("id") not in existing_ids)
        self._messages = kept
        self._reindex()

    def _activity_snapshot(self, event: Event) -> None:
        self._flush_all()
        message_id = event["messageId"]
        existing = self._by_id.get(message_id)
        index = -1 if existing is None else self._position(existing)
        replace = event.get("replace")
        replace = True if replace is None else replace
        activity: Message = {
            "id": message_id,
            "role": "activity",
            "activityType": event.get("activityType"),
            "content": _clone(event.get("content")),
        }
        if event.get("subagentRunId") is not None:
            activity["subagentRunId"] = event["subagentRunId"]

        merge_target: Message | None = None
        if existing is None:
            self._push(activity)
            merge_target = activity
        elif existing.get("role") == "activity":
            if replace:
                updated = dict(existing)
                updated["activityType"] = event.get("activityType")
                updated["content"] = _clone(event.get("content"))
                updated.pop("subagentRunId", None)
                if event.get("subagentRunId") is not None:
                    updated["subagentRunId"] = event["subagentRunId"]
                self._messages[index] = updated
                self._by_id[message_id] = updated
            merge_target = self._messages[index]
        elif replace:
            self._messages[index] = activity
            merge_target = activity
            self._reindex()
        _apply_metadata(merge_target, event)

    def _activity_delta(self, event: Event) -> None:
        message_id = event["messageId"]
        existing = self._by_id.get(message_id)
        if existing is None or existing.get("role") != "activity":
            return
        _apply_metadata(existing, event)
        base = existing.get("content")
        try:
            content = _apply_json_patch(_clone({} if base is None else base), event.get("patch") or [])
        except Exception:
            return
        updated = dict(existing)
        updated["content"] = content
        if "activityType" in event:
            updated["activityType"] = event["activityType"]
        else:
            updated.pop("activityType", None)  # {...m, activityType: undefined}
        self._messages[self._position(existing)] = updated
        self._by_id[message_id] = updated

    # --- runs

    def _run_started(self, event: Event) -> None:
        run_input = event.get("input")
        if not isinstance(run_input, dict) or not run_input.get("messages"):
            return
        for message in [_strip_null_subagent(m) for m in _clone(run_input["messages"])]:
            if message.get("id") not in self._by_id:
                self._push(message)

    def _run_finished(self, event: Event) -> None:
        outcome = event.get("outcome")
        if isinstance(outcome, dict) and outcome.get("type") == "interrupt":
            self.pending_interrupts = [_strip_null_subagent(i) for i in _clone(outcome.get("interrupts") or [])]
        else:
            self.pending_interrupts = []


# Event type -> handler, one table for all reducers: a table of bound methods in each
# reducer made every reducer a reference cycle, which only the cyclic garbage collector
# frees (the gateway runs it rarely, see cli/process.py): the memory of the replay states
# a server had dropped grew with the threads it had read.
_HANDLERS: dict[Any, Callable[[Reducer, Event], None]] = {
    ev.TEXT_MESSAGE_START: Reducer._text_start,
    ev.TEXT_MESSAGE_CONTENT: Reducer._text_content,
    ev.TEXT_MESSAGE_END: Reducer._text_end,
    ev.TOOL_CALL_START: Reducer._tool_call_start,
    ev.TOOL_CALL_ARGS: Reducer._tool_call_args,
    ev.TOOL_CALL_END: Reducer._tool_call_end,
    ev.TOOL_CALL_RESULT: Reducer._tool_call_result,
    ev.STATE_SNAPSHOT: Reducer._state_snapshot,
    ev.STATE_DELTA: Reducer._state_delta,
    ev.MESSAGES_SNAPSHOT: Reducer._messages_snapshot,
    ev.ACTIVITY_SNAPSHOT: Reducer._activity_snapshot,
    ev.ACTIVITY_DELTA: Reducer._activity_delta,
    ev.RUN_STARTED: Reducer._run_started,
    ev.RUN_FINISHED: Reducer._run_finished,
    ev.REASONING_MESSAGE_START: Reducer._reasoning_start,
    ev.REASONING_MESSAGE_CONTENT: Reducer._reasoning_content,
    ev.REASONING_MESSAGE_END: Reducer._reasoning_end,
    ev.REASONING_ENCRYPTED_VALUE: Reducer._encrypted_value,
}
