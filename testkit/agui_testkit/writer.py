"""ThreadWriter: emits AG-UI events while keeping the bookkeeping that makes them valid.

Every generator front end (the seeded log generator, the hypothesis
strategies) drives one of these. It tracks exactly what the official client's
``verifyEvents`` tracks (the open run, open text messages, tool calls,
reasoning spans and messages, steps per owner, subagents) plus what a consumer
holds (agent state, activity contents, optionally the message list), and its
methods refuse (``WriterError``) any call that would make the stream invalid.
Front ends check the ``can_*``/``open_*`` views first.

Events are plain dicts with the protocol's camelCase keys; optional fields are
omitted, never ``None``. Emitted events accumulate in ``out`` until the front
end drains them, so a huge log is produced without being held.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import orjson
from ag_ui.core import EventType

from agui_testkit.conversation import Conversation

Event = dict[str, Any]

# Explicit events that end the pending chunk stream of their own lane
# (chunks/transform.ts); untagged ones belong to the parent lane.
_LANE_CLOSERS = frozenset(
    t.value
    for t in (
        EventType.TEXT_MESSAGE_START,
        EventType.TEXT_MESSAGE_CONTENT,
        EventType.TEXT_MESSAGE_END,
        EventType.TOOL_CALL_START,
        EventType.TOOL_CALL_ARGS,
        EventType.TOOL_CALL_END,
        EventType.TOOL_CALL_RESULT,
        EventType.STATE_SNAPSHOT,
        EventType.STATE_DELTA,
        EventType.CUSTOM,
        EventType.STEP_STARTED,
        EventType.STEP_FINISHED,
        EventType.REASONING_START,
        EventType.REASONING_MESSAGE_START,
        EventType.REASONING_MESSAGE_CONTENT,
        EventType.REASONING_MESSAGE_END,
        EventType.REASONING_END,
    )
)
# Run-level events close every lane.
_ALL_LANE_CLOSERS = frozenset(
    t.value for t in (EventType.RUN_STARTED, EventType.RUN_FINISHED, EventType.RUN_ERROR, EventType.MESSAGES_SNAPSHOT)
)
# Events whose payload may be a structure the writer or a front end also holds.
_PAYLOAD_TYPES = frozenset(
    t.value
    for t in (
        EventType.RUN_STARTED,
        EventType.RUN_FINISHED,
        EventType.STATE_SNAPSHOT,
        EventType.STATE_DELTA,
        EventType.MESSAGES_SNAPSHOT,
        EventType.ACTIVITY_SNAPSHOT,
        EventType.ACTIVITY_DELTA,
        EventType.CUSTOM,
        EventType.RAW,
        EventType.TOOL_CALL_RESULT,
        EventType.SUBAGENT_FINISHED,
    )
)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class WriterError(RuntimeError):
    """A front end asked for an event that would make the stream invalid."""


class IdFactory:
    """Deterministic, realistic-looking ids (``msg_…``, ``call_…``, uuid-shaped run ids)."""

    def __init__(self, rng: random.Random, counter_only: bool = False) -> None:
        self._rng = rng
        self._counter = 0
        self._counter_only = counter_only

    def _token(self, length: int) -> str:
        bits = self._rng.getrandbits(6 * length)
        return "".join(_ALPHABET[(bits >> (6 * i)) % 62] for i in range(length))

    def new(self, prefix: str, length: int = 8) -> str:
        self._counter += 1
        if self._counter_only:
            return f"{prefix}{self._counter}"
        return f"{prefix}{self._token(length)}"

    def uuid(self) -> str:
        self._counter += 1
        if self._counter_only:
            return f"run-{self._counter}"
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


@dataclass
class Owned:
    """An open entity and the subagent that opened it (None = the parent agent)."""

    id: str
    owner: str | None = None
    name: str = ""  # tool name, subagent name
    parent: str | None = None  # a tool call's parentMessageId
    role: str = ""  # a text message's role


@dataclass
class Lane:
    """The parent agent's pending chunk stream (see chunks/transform.ts)."""

    kind: str  # "text" | "tool" | "reasoning"
    id: str


@dataclass
class _Run:
    id: str
    texts: dict[str, Owned] = field(default_factory=dict)
    tools: dict[str, Owned] = field(default_factory=dict)
    spans: dict[str, Owned] = field(default_factory=dict)
    reasoning: dict[str, Owned] = field(default_factory=dict)
    steps: list[tuple[str | None, str]] = field(default_factory=list)  # (owner, name), in opening order
    subagents: dict[str, Owned] = field(default_factory=dict)
    closed_subagents: set[str] = field(default_factory=set)
    started_tools: list[str] = field(default_factory=list)


class ThreadWriter:
    """Builds one thread's event log, one valid event at a time."""

    def __init__(
        self,
        thread_id: str,
        ids: IdFactory,
        *,
        clock_rng: random.Random | None = None,
        start_ms: int = 1_760_000_000_000,
        timestamps: bool = True,
        track_messages: bool = False,
    ) -> None:
        self.thread_id = thread_id
        self.ids = ids
        self.out: list[Event] = []
        self.count = 0
        self.run: _Run | None = None
        self.last_run_id: str | None = None
        self.last_terminal: str | None = None  # "finished" | "error" | None
        self.state: Any = {}  # what the official client starts from
        self.state_sent = False
        self.activities: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (type, content)
        self.lane: Lane | None = None
        self.mirror = Conversation() if track_messages else None
        # Recently finished entities, for parenting tool calls and encrypted values.
        self.finished_texts: deque[Owned] = deque(maxlen=32)
        self.finished_tools: deque[Owned] = deque(maxlen=64)
        self.finished_reasoning: deque[Owned] = deque(maxlen=16)
        self.awaiting_result: dict[str, Owned] = {}
        self.user_messages: deque[str] = deque(maxlen=8)
        # Optional hook that may add fields (metadata, rawEvent) to every event.
        self.decorate: Callable[[Event], None] | None = None
        self._timestamps = timestamps
        self._clock_rng = clock_rng or random.Random(0)
        self._now = start_ms

    # -- views -----------------------------------------------------------------
    @property
    def run_active(self) -> bool:
        return self.run is not None

    def drain(self) -> list[Event]:
        events, self.out = self.out, []
        return events

    def open_texts(self, owner: str | None = ...) -> list[Owned]:  # type: ignore[assignment]
        return self._filter(self.run.texts if self.run else {}, owner)

    def open_tools(self, owner: str | None = ...) -> list[Owned]:  # type: ignore[assignment]
        return self._filter(self.run.tools if self.run else {}, owner)

    def open_reasoning(self) -> list[Owned]:
        return list(self.run.reasoning.values()) if self.run else []

    def open_spans(self) -> list[Owned]:
        return list(self.run.spans.values()) if self.run else []

    def open_steps(self) -> list[tuple[str | None, str]]:
        return list(self.run.steps) if self.run else []

    def active_subagents(self) -> list[Owned]:
        return list(self.run.subagents.values()) if self.run else []

    @staticmethod
    def _filter(entities: dict[str, Owned], owner: Any) -> list[Owned]:
        if owner is ...:
            return list(entities.values())
        return [e for e in entities.values() if e.owner == owner]

    # -- emission --------------------------------------------------------------
    def _emit(
        self,
        event: Event,
        *,
        metadata: dict[str, Any] | None = None,
        raw_event: Any = None,
        stamp: bool = True,
        mirror: bool = True,
    ) -> Event:
        if metadata is not None:
            event["metadata"] = metadata
        if raw_event is not None:
            event["rawEvent"] = raw_event
        if self.decorate is not None:
            self.decorate(event)
        if self._timestamps and stamp:
            self._now += self._clock_rng.randrange(1, 400)
            event["timestamp"] = self._now
        kind = event["type"]
        if kind in _PAYLOAD_TYPES or "metadata" in event or "rawEvent" in event:
            # Events own their payloads: nothing is shared with the writer's tracked state,
            # a front end's objects or other events, so a consumer may mutate what it gets.
            event = orjson.loads(orjson.dumps(event))
        if self.lane is not None and (
            kind in _ALL_LANE_CLOSERS or (kind in _LANE_CLOSERS and "subagentRunId" not in event)
        ):
            self._close_lane()
        self.out.append(event)
        self.count += 1
        if self.mirror is not None and mirror:
            self.mirror.apply(event)
        return event

    def _require_run(self) -> _Run:
        if self.run is None:
            raise WriterError("no run is active")
        return self.run

    @staticmethod
    def _tag(event: Event, owner: str | None) -> Event:
        if owner is not None:
            event["subagentRunId"] = owner
        return event

    # -- runs ------------------------------------------------------------------
    def run_input(
        self,
        run_id: str,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        context: list[dict[str, str]] | None = None,
        forwarded_props: Any = None,
        include_state: bool = True,
        resume: list[dict[str, Any]] | None = None,
        parent_run_id: str | None = None,
    ) -> dict[str, Any]:
        """A complete RunAgentInput, as a client would have sent it for ``run_id``."""
        payload: dict[str, Any] = {"threadId": self.thread_id, "runId": run_id}
        if parent_run_id is not None:
            payload["parentRunId"] = parent_run_id
        if include_state and self.state is not None:
            payload["state"] = self.state
        payload["messages"] = messages
        payload["tools"] = tools or []
        payload["context"] = context or []
        if forwarded_props is not None:
            payload["forwardedProps"] = forwarded_props
        if resume:
            payload["resume"] = resume
        return payload

    def run_start(
        self,
        *,
        run_id: str | None = None,
        input: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        if self.run is not None:
            raise WriterError("a run is already active")
        run_id = run_id or (input["runId"] if input else self.ids.uuid())
        event: Event = {"type": EventType.RUN_STARTED.value, "threadId": self.thread_id, "runId": run_id}
        if parent_run_id is not None:
            event["parentRunId"] = parent_run_id
        if input is not None:
            event["input"] = input
            for message in input.get("messages", ()):
                if message.get("role") == "user":
                    self.user_messages.append(message["id"])
        self.run = _Run(run_id)
        self.last_run_id = run_id
        self.last_terminal = None
        self.awaiting_result.clear()
        self._emit(event, metadata=metadata)
        return run_id

    def close_all(self, owner: Any = ...) -> None:
        """End everything open (of ``owner`` if given), innermost kinds first."""
        run = self._require_run()
        for r in self._filter(run.reasoning, owner):
            self.reasoning_message_end(r.id)
        for s in self._filter(run.spans, owner):
            self.reasoning_end(s.id)
        for t in self._filter(run.texts, owner):
            self.text_end(t.id)
        for c in self._filter(run.tools, owner):
            self.tool_end(c.id)
        for step_owner, name in reversed(list(run.steps)):
            if owner is ... or step_owner == owner:
                self.step_finish(name, subagent=step_owner)
        if owner is ...:
            while run.subagents:  # finishing a subagent finishes its children first
                self.subagent_finish(next(iter(run.subagents)))

    def run_finish(
        self,
        *,
        result: Any = None,
        outcome: dict[str, Any] | None = None,
        usage: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        run = self._require_run()
        self.close_all()
        event: Event = {"type": EventType.RUN_FINISHED.value, "threadId": self.thread_id, "runId": run.id}
        if result is not None:
            event["result"] = result
        if outcome is not None:
            event["outcome"] = outcome
        if usage is not None:
            event["usage"] = usage
        self._emit(event, metadata=metadata)
        self.run = None
        self.last_terminal = "finished"

    def run_error(self, message: str, *, code: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        """RUN_ERROR may cut a run anywhere: whatever is open stays unterminated.

        Also allowed right after RUN_FINISHED (verifyEvents accepts that).
        """
        if self.run is None and self.last_terminal != "finished":
            raise WriterError("RUN_ERROR needs an active or just-finished run")
        event: Event = {"type": EventType.RUN_ERROR.value, "message": message}
        if code is not None:
            event["code"] = code
        self._emit(event, metadata=metadata)
        self.run = None
        self.last_terminal = "error"

    # -- text messages ---------------------------------------------------------
    def text_start(
        self,
        *,
        role: str = "assistant",
        message_id: str | None = None,
        name: str | None = None,
        subagent: str | None = None,
        metadata: dict[str, Any] | None = None,
        explicit_role: bool = True,
    ) -> str:
        run = self._require_run()
        message_id = message_id or self.ids.new("msg_")
        if message_id in run.texts:
            raise WriterError(f"text message {message_id} is already open")
        event: Event = {"type": EventType.TEXT_MESSAGE_START.value, "messageId": message_id}
        if explicit_role or role != "assistant":
            event["role"] = role
        if name is not None:
            event["name"] = name
        self._tag(event, subagent)
        run.texts[message_id] = Owned(message_id, subagent, role=role)
        self._emit(event, metadata=metadata)
        return message_id

    def text_delta(self, message_id: str, delta: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().texts.get(message_id)
        if entity is None:
            raise WriterError(f"text message {message_id} is not open")
        event = self._tag(
            {"type": EventType.TEXT_MESSAGE_CONTENT.value, "messageId": message_id, "delta": delta}, entity.owner
        )
        self._emit(event, metadata=metadata, stamp=False)

    def text_end(self, message_id: str, *, metadata: dict[str, Any] | None = None) -> None:
        run = self._require_run()
        entity = run.texts.pop(message_id, None)
        if entity is None:
            raise WriterError(f"text message {message_id} is not open")
        self._emit(
            self._tag({"type": EventType.TEXT_MESSAGE_END.value, "messageId": message_id}, entity.owner),
            metadata=metadata,
        )
        if entity.role == "assistant":
            self.finished_texts.append(entity)

    # -- tool calls ------------------------------------------------------------
    def tool_start(
        self,
        name: str,
        *,
        parent: str | None = None,
        call_id: str | None = None,
        subagent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        run = self._require_run()
        call_id = call_id or self.ids.new("call_")
        if call_id in run.tools:
            raise WriterError(f"tool call {call_id} is already open")
        event: Event = {"type": EventType.TOOL_CALL_START.value, "toolCallId": call_id, "toolCallName": name}
        if parent is not None:
            event["parentMessageId"] = parent
        self._tag(event, subagent)
        run.tools[call_id] = Owned(call_id, subagent, name=name, parent=parent)
        run.started_tools.append(call_id)
        self._emit(event, metadata=metadata)
        return call_id

    def tool_args(self, call_id: str, delta: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().tools.get(call_id)
        if entity is None:
            raise WriterError(f"tool call {call_id} is not open")
        event = self._tag({"type": EventType.TOOL_CALL_ARGS.value, "toolCallId": call_id, "delta": delta}, entity.owner)
        self._emit(event, metadata=metadata, stamp=False)

    def tool_end(self, call_id: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().tools.pop(call_id, None)
        if entity is None:
            raise WriterError(f"tool call {call_id} is not open")
        self._emit(
            self._tag({"type": EventType.TOOL_CALL_END.value, "toolCallId": call_id}, entity.owner), metadata=metadata
        )
        self.finished_tools.append(entity)
        self.awaiting_result[call_id] = entity

    def tool_result(
        self,
        call_id: str,
        content: Any,
        *,
        message_id: str | None = None,
        subagent: str | None = None,
        explicit_role: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """TOOL_CALL_RESULT; valid for any tool call id, even an unknown one."""
        self._require_run()
        message_id = message_id or self.ids.new("msg_")
        event: Event = {
            "type": EventType.TOOL_CALL_RESULT.value,
            "messageId": message_id,
            "toolCallId": call_id,
            "content": content,
        }
        if explicit_role:
            event["role"] = "tool"
        self._tag(event, subagent)
        self.awaiting_result.pop(call_id, None)
        self._emit(event, metadata=metadata)
        return message_id

    # -- reasoning -------------------------------------------------------------
    def reasoning_start(
        self, *, message_id: str | None = None, subagent: str | None = None, metadata: dict[str, Any] | None = None
    ) -> str:
        run = self._require_run()
        message_id = message_id or self.ids.new("rs_")
        if message_id in run.spans:
            raise WriterError(f"reasoning span {message_id} is already open")
        run.spans[message_id] = Owned(message_id, subagent)
        self._emit(
            self._tag({"type": EventType.REASONING_START.value, "messageId": message_id}, subagent), metadata=metadata
        )
        return message_id

    def reasoning_message_start(
        self, *, message_id: str | None = None, subagent: str | None = None, metadata: dict[str, Any] | None = None
    ) -> str:
        run = self._require_run()
        message_id = message_id or self.ids.new("rm_")
        if message_id in run.reasoning:
            raise WriterError(f"reasoning message {message_id} is already open")
        run.reasoning[message_id] = Owned(message_id, subagent)
        event = {"type": EventType.REASONING_MESSAGE_START.value, "messageId": message_id, "role": "reasoning"}
        self._emit(self._tag(event, subagent), metadata=metadata)
        return message_id

    def reasoning_delta(self, message_id: str, delta: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().reasoning.get(message_id)
        if entity is None:
            raise WriterError(f"reasoning message {message_id} is not open")
        event = {"type": EventType.REASONING_MESSAGE_CONTENT.value, "messageId": message_id, "delta": delta}
        self._emit(self._tag(event, entity.owner), metadata=metadata, stamp=False)

    def reasoning_message_end(self, message_id: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().reasoning.pop(message_id, None)
        if entity is None:
            raise WriterError(f"reasoning message {message_id} is not open")
        self._emit(
            self._tag({"type": EventType.REASONING_MESSAGE_END.value, "messageId": message_id}, entity.owner),
            metadata=metadata,
        )
        self.finished_reasoning.append(entity)

    def reasoning_end(self, message_id: str, *, metadata: dict[str, Any] | None = None) -> None:
        entity = self._require_run().spans.pop(message_id, None)
        if entity is None:
            raise WriterError(f"reasoning span {message_id} is not open")
        self._emit(
            self._tag({"type": EventType.REASONING_END.value, "messageId": message_id}, entity.owner), metadata=metadata
        )

    def encrypted_value(
        self, subtype: str, entity: Owned, value: str, *, tagged: bool = True, metadata: dict[str, Any] | None = None
    ) -> None:
        """REASONING_ENCRYPTED_VALUE on a message ("message") or a tool call ("tool-call").

        Tagged, it carries the entity's own owner, which always agrees with the
        opener verifyEvents recorded.
        """
        self._require_run()
        event: Event = {
            "type": EventType.REASONING_ENCRYPTED_VALUE.value,
            "subtype": subtype,
            "entityId": entity.id,
            "encryptedValue": value,
        }
        if tagged:
            self._tag(event, entity.owner)
        self._emit(event, metadata=metadata)

    # -- state, activity, snapshots --------------------------------------------
    def state_snapshot(self, snapshot: Any, *, metadata: dict[str, Any] | None = None) -> None:
        self._require_run()
        self.state = snapshot
        self.state_sent = True
        self._emit({"type": EventType.STATE_SNAPSHOT.value, "snapshot": snapshot}, metadata=metadata)

    def state_delta(self, patch: list[dict[str, Any]], *, metadata: dict[str, Any] | None = None) -> bool:
        """Emit a STATE_DELTA; returns whether it applies (a failing one leaves state as is)."""
        self._require_run()
        try:
            new_state = jsonpatch.apply_patch(self.state, patch)
            applied = True
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            new_state, applied = self.state, False
        self._emit({"type": EventType.STATE_DELTA.value, "delta": patch}, metadata=metadata)
        self.state = new_state
        return applied

    def messages_snapshot(
        self, messages: list[dict[str, Any]] | None = None, *, metadata: dict[str, Any] | None = None
    ) -> None:
        self._require_run()
        if messages is None:
            if self.mirror is None:
                raise WriterError("messages_snapshot() without messages needs track_messages=True")
            messages = self.mirror.snapshot()
        self._emit({"type": EventType.MESSAGES_SNAPSHOT.value, "messages": messages}, metadata=metadata)

    def activity_snapshot(
        self,
        activity_type: str,
        content: dict[str, Any],
        *,
        message_id: str | None = None,
        replace: bool | None = None,
        subagent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        self._require_run()
        message_id = message_id or self.ids.new("act_")
        event: Event = {
            "type": EventType.ACTIVITY_SNAPSHOT.value,
            "messageId": message_id,
            "activityType": activity_type,
            "content": content,
        }
        if replace is not None:
            event["replace"] = replace
        self._tag(event, subagent)
        if message_id not in self.activities or replace is not False:
            self.activities[message_id] = (activity_type, content)
        self._emit(event, metadata=metadata)
        return message_id

    def activity_delta(
        self,
        message_id: str,
        patch: list[dict[str, Any]],
        *,
        activity_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Emit an ACTIVITY_DELTA; returns whether the patch applies to the tracked content."""
        self._require_run()
        known = self.activities.get(message_id)
        kind = activity_type or (known[0] if known else "progress")
        applied = False
        if known is not None:
            try:
                self.activities[message_id] = (kind, jsonpatch.apply_patch(known[1], patch))
                applied = True
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
                pass
        event = {"type": EventType.ACTIVITY_DELTA.value, "messageId": message_id, "activityType": kind, "patch": patch}
        self._emit(event, metadata=metadata)
        return applied

    # -- misc ------------------------------------------------------------------
    def custom(
        self, name: str, value: Any, *, subagent: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._require_run()
        self._emit(
            self._tag({"type": EventType.CUSTOM.value, "name": name, "value": value}, subagent), metadata=metadata
        )

    def raw(self, event: Any, *, source: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._require_run()
        payload: Event = {"type": EventType.RAW.value, "event": event}
        if source is not None:
            payload["source"] = source
        self._emit(payload, metadata=metadata)

    def step_start(self, name: str, *, subagent: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        run = self._require_run()
        if (subagent, name) in run.steps:
            raise WriterError(f"step {name!r} is already active for {subagent}")
        run.steps.append((subagent, name))
        self._emit(self._tag({"type": EventType.STEP_STARTED.value, "stepName": name}, subagent), metadata=metadata)

    def step_finish(self, name: str, *, subagent: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        run = self._require_run()
        if (subagent, name) not in run.steps:
            raise WriterError(f"step {name!r} is not active for {subagent}")
        run.steps.remove((subagent, name))
        self._emit(self._tag({"type": EventType.STEP_FINISHED.value, "stepName": name}, subagent), metadata=metadata)

    def subagent_start(
        self,
        name: str,
        *,
        description: str | None = None,
        parent_tool_call: str | None = None,
        parent_message: str | None = None,
        parent_subagent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        run = self._require_run()
        subagent_id = self.ids.new("sub_", 12)
        if (
            parent_subagent is not None
            and parent_subagent not in run.subagents
            and parent_subagent not in run.closed_subagents
        ):
            raise WriterError(f"parent subagent {parent_subagent} was not started in this run")
        event: Event = {"type": EventType.SUBAGENT_STARTED.value, "subagentRunId": subagent_id, "name": name}
        for key, value in (
            ("description", description),
            ("parentSubagentRunId", parent_subagent),
            ("parentToolCallId", parent_tool_call),
            ("parentMessageId", parent_message),
        ):
            if value is not None:
                event[key] = value
        run.subagents[subagent_id] = Owned(subagent_id, parent_subagent, name=name)
        self._emit(event, metadata=metadata)
        return subagent_id

    def subagent_finish(
        self, subagent_id: str, *, outcome: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._end_subagent(subagent_id)
        event: Event = {"type": EventType.SUBAGENT_FINISHED.value, "subagentRunId": subagent_id}
        if outcome is not None:
            event["outcome"] = outcome
        self._emit(event, metadata=metadata)

    def subagent_error(
        self, subagent_id: str, message: str, *, code: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._end_subagent(subagent_id)
        event: Event = {"type": EventType.SUBAGENT_ERROR.value, "subagentRunId": subagent_id, "message": message}
        if code is not None:
            event["code"] = code
        self._emit(event, metadata=metadata)

    def _end_subagent(self, subagent_id: str) -> None:
        run = self._require_run()
        if subagent_id not in run.subagents:
            raise WriterError(f"subagent {subagent_id} is not active")
        # A subagent ends its own work before it reports back; nested subagents first.
        for child in [s for s in run.subagents.values() if s.owner == subagent_id]:
            self.subagent_finish(child.id)
        self.close_all(owner=subagent_id)
        del run.subagents[subagent_id]
        run.closed_subagents.add(subagent_id)

    # -- chunks (parent lane only) ---------------------------------------------
    def _close_lane(self) -> None:
        """The client synthesises the END of a pending chunk stream here; mirror that."""
        lane, self.lane = self.lane, None
        assert lane is not None
        if lane.kind == "tool":
            entity = Owned(lane.id)
            self.finished_tools.append(entity)
            self.awaiting_result[lane.id] = entity
        elif lane.kind == "text":
            self.finished_texts.append(Owned(lane.id, role="assistant"))
        else:
            self.finished_reasoning.append(Owned(lane.id))

    def _continues(self, kind: str, entity_id: str | None) -> bool:
        return self.lane is not None and self.lane.kind == kind and entity_id in (None, self.lane.id)

    def _chunk(
        self,
        kind: str,
        event: Event,
        entity_id: str | None,
        opener: Event,
        content: Event | None,
        metadata: dict[str, Any] | None,
    ) -> str:
        """Emit one chunk; ``entity_id`` None continues the lane's stream without naming it."""
        self._require_run()
        continuing = self._continues(kind, entity_id)
        if not continuing:
            if entity_id is None:
                raise WriterError(f"an id-less {kind} chunk needs a pending {kind} stream")
            if self.lane is not None:
                self._close_lane()
            self.lane = Lane(kind, entity_id)
        entity_id = self.lane.id  # type: ignore[union-attr]
        self._emit(event, metadata=metadata, stamp=not continuing, mirror=False)
        if self.mirror is not None:
            # What transformChunks hands the reducer: an opener for a new stream, then the content.
            extra = {"metadata": event["metadata"]} if "metadata" in event else {}
            if not continuing:
                self.mirror.apply({**opener, f"{'toolCallId' if kind == 'tool' else 'messageId'}": entity_id, **extra})
            if content is not None:
                self.mirror.apply({**content, f"{'toolCallId' if kind == 'tool' else 'messageId'}": entity_id, **extra})
        return entity_id

    def text_chunk(
        self,
        delta: str | None,
        *,
        message_id: str | None = None,
        role: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """TEXT_MESSAGE_CHUNK; ``role`` is only sent on the chunk that opens the stream."""
        continuing = self._continues("text", message_id)
        event: Event = {"type": EventType.TEXT_MESSAGE_CHUNK.value}
        if message_id is not None:
            event["messageId"] = message_id
        if role is not None and not continuing:
            event["role"] = role
        if delta is not None:
            event["delta"] = delta
        opener = {"type": EventType.TEXT_MESSAGE_START.value, "role": role or "assistant"}
        content = {"type": EventType.TEXT_MESSAGE_CONTENT.value, "delta": delta} if delta is not None else None
        return self._chunk("text", event, message_id, opener, content, metadata)

    def tool_chunk(
        self,
        delta: str | None,
        *,
        call_id: str | None = None,
        name: str | None = None,
        parent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """TOOL_CALL_CHUNK; ``name``/``parent`` are only sent on the chunk that opens the call."""
        continuing = self._continues("tool", call_id)
        if not continuing and name is None:
            raise WriterError("the first TOOL_CALL_CHUNK needs a toolCallName")
        event: Event = {"type": EventType.TOOL_CALL_CHUNK.value}
        if call_id is not None:
            event["toolCallId"] = call_id
        if not continuing:
            event["toolCallName"] = name
            if parent is not None:
                event["parentMessageId"] = parent
        if delta is not None:
            event["delta"] = delta
        opener: Event = {"type": EventType.TOOL_CALL_START.value, "toolCallName": name or ""}
        if parent is not None:
            opener["parentMessageId"] = parent
        content = {"type": EventType.TOOL_CALL_ARGS.value, "delta": delta} if delta is not None else None
        return self._chunk("tool", event, call_id, opener, content, metadata)

    def reasoning_chunk(
        self, delta: str | None, *, message_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> str:
        event: Event = {"type": EventType.REASONING_MESSAGE_CHUNK.value}
        if message_id is not None:
            event["messageId"] = message_id
        if delta is not None:
            event["delta"] = delta
        opener = {"type": EventType.REASONING_MESSAGE_START.value, "role": "reasoning"}
        content = {"type": EventType.REASONING_MESSAGE_CONTENT.value, "delta": delta} if delta is not None else None
        return self._chunk("reasoning", event, message_id, opener, content, metadata)
