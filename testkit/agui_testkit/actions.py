"""Render a list of abstract actions into a valid AG-UI event stream.

The hypothesis strategies draw lists of small action tuples; this module turns
any such list into events that ``verifyEvents`` accepts. Actions name entities
by *slot* (an index taken modulo whatever is open or finished at that point),
so deleting any action still renders a valid stream: that is what lets
hypothesis shrink a failing example to a few events. An action that has no
target (a delta with nothing open) renders nothing; one that needs a run
starts one.

Action tuples (first element is the kind):

    ("run_start", user_text|None, echo_input)   ("run_finish", outcome 0-5)   ("run_error",)
    ("text_start", role, sub)    ("text_delta", slot, [deltas])    ("text_end", slot)
    ("tool_start", name, parent 'none'|'open'|'finished'|'future', slot, sub)
    ("tool_args", slot, [deltas])    ("tool_end", slot)    ("tool_result", slot, content)
    ("reasoning_start", sub)    ("reasoning_msg_start", same_id)    ("reasoning_delta", slot, [deltas])
    ("reasoning_msg_end", slot)    ("reasoning_end", slot)    ("encrypted", 'message'|'tool-call', slot, value)
    ("state_snapshot", value)    ("state_delta", seed, ops)    ("messages_snapshot", seed)
    ("activity_snapshot", slot|None, content, replace)    ("activity_delta", slot, seed)
    ("custom", name, value)    ("raw", value, source)    ("meta", metadata)   (metadata for the next event)
    ("step_start", name, sub)    ("step_finish", slot)
    ("subagent_start", nested)    ("subagent_finish", slot)    ("subagent_error", slot)
    ("text_chunk", new, delta, named)    ("tool_chunk", new, name, parent, delta, named)
    ("reasoning_chunk", new, delta, named)
    ("text_full", role, sub, [deltas])    ("tool_full", name, parent, slot, sub, [deltas])
    ("reasoning_full", sub, same_id, [deltas])          (a whole entity: start, deltas, end)

Survivable oddities (``raw_streams`` only; still verify-clean, the reducer must cope):

    ("state_delta_fail", seed)    ("state_delta_bool_test", seed)    ("activity_delta_fail", slot, seed)
    ("activity_delta_unknown", seed)    ("tool_result_unknown", content)    ("tool_result_early", slot)
    ("tool_result_again", slot)    ("tool_parent_user", name)    ("text_reopen", slot)
    ("tool_restart", slot, name)    ("text_on_activity", slot)    ("encrypted_unknown", subtype)
    ("messages_snapshot_drop_open", seed)    ("error_after_finish",)    ("state_snapshot_odd", value)
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from agui_testkit import patches
from agui_testkit.writer import Event, IdFactory, Owned, ThreadWriter

Action = tuple[Any, ...]

_OUTCOMES: tuple[dict[str, Any] | None, ...] = (
    None,
    {"type": "success"},
    {"type": "cancelled"},
    {"type": "interrupt", "interrupts": [{"id": "int-1", "reason": "approval"}]},
    {"type": "success", "pendingToolCallIds": ["pending-1"]},
    None,
)


def _pick(items: Sequence[Any], slot: int) -> Any:
    return items[slot % len(items)] if items else None


class ActionRenderer:
    def __init__(self) -> None:
        self.w = ThreadWriter(
            "thread-h", IdFactory(random.Random(0), counter_only=True), timestamps=False, track_messages=True
        )
        self.w.decorate = self._decorate
        self._meta: dict[str, Any] | None = None

    def _decorate(self, event: Event) -> None:
        if self._meta is not None and "metadata" not in event:
            event["metadata"], self._meta = self._meta, None

    # -- helpers ---------------------------------------------------------------
    def _run(self) -> None:
        if not self.w.run_active:
            self.w.run_start()

    def _owner(self, sub: int | None) -> str | None:
        if sub is None:
            return None
        active = self.w.active_subagents()
        return active[sub % len(active)].id if active else None

    def _finished_messages(self) -> list[Owned]:
        return [*self.w.finished_texts, *self.w.finished_reasoning]

    # -- rendering -------------------------------------------------------------
    def render(self, actions: Iterable[Action], open_end: bool) -> list[Event]:
        for action in actions:
            getattr(self, "_a_" + action[0])(*action[1:])
        if not self.w.count:
            self.w.run_start()
        if self.w.run_active and not open_end:
            self.w.run_finish()
        return self.w.drain()

    def _a_meta(self, metadata: dict[str, Any]) -> None:
        self._meta = metadata

    def _a_run_start(self, user_text: str | None, echo_input: bool) -> None:
        w = self.w
        if w.run_active:
            w.run_finish()
        run_id = w.ids.uuid()
        messages = [] if user_text is None else [{"id": w.ids.new("user-"), "role": "user", "content": user_text}]
        run_input = w.run_input(run_id, messages, include_state=w.state is not None) if echo_input else None
        w.run_start(run_id=run_id, input=run_input)

    def _a_run_finish(self, outcome: int) -> None:
        if self.w.run_active:
            chosen = _OUTCOMES[outcome % len(_OUTCOMES)]
            self.w.run_finish(outcome=chosen, result={"ok": True} if outcome == 5 else None)

    def _a_run_error(self) -> None:
        self._run()
        self.w.run_error("boom", code="E_TEST")

    def _a_text_start(self, role: str, sub: int | None) -> None:
        self._run()
        self.w.text_start(role=role, subagent=self._owner(sub), explicit_role=role != "assistant")

    def _a_text_delta(self, slot: int, deltas: list[str]) -> None:
        target = _pick(self.w.open_texts(), slot)
        for delta in deltas if target else ():
            self.w.text_delta(target.id, delta)

    def _a_text_end(self, slot: int) -> None:
        target = _pick(self.w.open_texts(), slot)
        if target:
            self.w.text_end(target.id)

    def _a_tool_start(self, name: str, parent_kind: str, slot: int, sub: int | None) -> None:
        self._run()
        owner, parent = self._owner(sub), None
        if parent_kind in ("open", "finished"):
            if parent_kind == "open":  # a call lives in an assistant message
                source = [t for t in self.w.open_texts() if t.role == "assistant"]
            else:
                source = list(self.w.finished_texts)
            chosen = _pick(source, slot)
            if chosen is not None:
                parent, owner = chosen.id, chosen.owner  # a call belongs to its message's owner
        elif parent_kind == "future":
            parent = self.w.ids.new("future-")
        self.w.tool_start(name, parent=parent, subagent=owner)

    def _a_tool_args(self, slot: int, deltas: list[str]) -> None:
        target = _pick(self.w.open_tools(), slot)
        for delta in deltas if target else ():
            self.w.tool_args(target.id, delta)

    def _a_tool_end(self, slot: int) -> None:
        target = _pick(self.w.open_tools(), slot)
        if target:
            self.w.tool_end(target.id)

    def _a_tool_result(self, slot: int, content: Any) -> None:
        target = _pick(list(self.w.awaiting_result.values()) or list(self.w.finished_tools), slot)
        if target is not None:
            self._run()
            self.w.tool_result(target.id, content, subagent=target.owner if slot % 2 else None)

    def _a_reasoning_start(self, sub: int | None) -> None:
        self._run()
        self.w.reasoning_start(subagent=self._owner(sub))

    def _a_reasoning_msg_start(self, same_id: bool) -> None:
        self._run()
        open_ids = {r.id for r in self.w.open_reasoning()}
        spans = [s for s in self.w.open_spans() if s.id not in open_ids]
        span = spans[-1] if spans else None
        self.w.reasoning_message_start(
            message_id=span.id if same_id and span else None, subagent=span.owner if span else None
        )

    def _a_reasoning_delta(self, slot: int, deltas: list[str]) -> None:
        target = _pick(self.w.open_reasoning(), slot)
        for delta in deltas if target else ():
            self.w.reasoning_delta(target.id, delta)

    def _a_reasoning_msg_end(self, slot: int) -> None:
        target = _pick(self.w.open_reasoning(), slot)
        if target:
            self.w.reasoning_message_end(target.id)

    def _a_reasoning_end(self, slot: int) -> None:
        target = _pick(self.w.open_spans(), slot)
        if target:
            self.w.reasoning_end(target.id)

    def _a_encrypted(self, subtype: str, slot: int, value: str) -> None:
        w = self.w
        if subtype == "tool-call":
            candidates = [*w.open_tools(), *w.finished_tools]
        else:
            candidates = [*w.open_texts(), *w.open_reasoning(), *self._finished_messages()]
        target = _pick(candidates, slot)
        if target is not None:
            self._run()
            w.encrypted_value(subtype, target, value, tagged=slot % 2 == 0)

    def _a_state_snapshot(self, value: dict[str, Any]) -> None:
        self._run()
        self.w.state_snapshot(value)

    def _a_state_delta(self, seed: int, ops: int) -> None:
        self._run()
        self.w.state_delta(patches.valid_patch(random.Random(seed), self.w.state, ops, odd_keys=True)[0])

    def _a_messages_snapshot(self, seed: int, drop_open: bool = False) -> None:
        self._run()
        w, rng = self.w, random.Random(seed)
        assert w.mirror is not None
        messages = w.mirror.snapshot()
        protected = set() if drop_open else {e.id for e in [*w.open_texts(), *w.open_reasoning()]}
        open_calls = {c.id for c in w.open_tools()}
        if rng.random() < 0.5 and messages:  # history rewritten by the agent: some messages dropped
            keep = [
                m
                for m in messages
                if m["id"] in protected
                or rng.random() < 0.7
                or (not drop_open and any(c["id"] in open_calls for c in m.get("toolCalls", ())))
            ]
            messages = keep
        w.messages_snapshot(messages)

    def _a_activity_snapshot(self, slot: int | None, content: dict[str, Any], replace: bool | None) -> None:
        self._run()
        existing = _pick(list(self.w.activities), slot) if slot is not None else None
        self.w.activity_snapshot("PLAN", content, message_id=existing, replace=replace)

    def _a_activity_delta(self, slot: int, seed: int) -> None:
        target = _pick(list(self.w.activities), slot)
        if target is not None:
            self._run()
            patch = patches.valid_patch(random.Random(seed), self.w.activities[target][1], 2, odd_keys=True)[0]
            self.w.activity_delta(target, patch)

    def _a_custom(self, name: str, value: Any) -> None:
        self._run()
        self.w.custom(name, value)

    def _a_raw(self, value: Any, source: str | None) -> None:
        self._run()
        self.w.raw(value, source=source)

    def _a_step_start(self, name: str, sub: int | None) -> None:
        self._run()
        owner = self._owner(sub)
        if (owner, name) not in self.w.open_steps():
            self.w.step_start(name, subagent=owner)

    def _a_step_finish(self, slot: int) -> None:
        target = _pick(self.w.open_steps(), slot)
        if target:
            self.w.step_finish(target[1], subagent=target[0])

    def _a_subagent_start(self, nested: bool) -> None:
        self._run()
        active = self.w.active_subagents()
        parent_call = _pick([*self.w.open_tools(), *self.w.finished_tools], 0)
        self.w.subagent_start(
            "helper",
            parent_subagent=active[-1].id if nested and active else None,
            parent_tool_call=parent_call.id if parent_call else None,
        )

    def _a_subagent_finish(self, slot: int) -> None:
        target = _pick(self.w.active_subagents(), slot)
        if target:
            self.w.subagent_finish(target.id, outcome={"type": "success"} if slot % 2 else None)

    def _a_subagent_error(self, slot: int) -> None:
        target = _pick(self.w.active_subagents(), slot)
        if target:
            self.w.subagent_error(target.id, "subagent failed")

    def _a_text_chunk(self, new: bool, delta: str, named: bool) -> None:
        self._run()
        lane = self.w.lane
        if new or lane is None or lane.kind != "text":
            self.w.text_chunk(delta, message_id=self.w.ids.new("chunk-"), role="assistant" if named else None)
        else:
            self.w.text_chunk(delta, message_id=lane.id if named else None)

    def _a_tool_chunk(self, new: bool, name: str, with_parent: bool, delta: str, named: bool) -> None:
        self._run()
        lane = self.w.lane
        if new or lane is None or lane.kind != "tool":
            parent = None
            if with_parent:
                texts = list(self.w.finished_texts)
                if lane is not None and lane.kind == "text":
                    parent = lane.id
                elif texts and texts[-1].owner is None:
                    parent = texts[-1].id
            self.w.tool_chunk(delta, call_id=self.w.ids.new("chunkcall-"), name=name, parent=parent)
        else:
            self.w.tool_chunk(delta, call_id=lane.id if named else None)

    def _a_reasoning_chunk(self, new: bool, delta: str, named: bool) -> None:
        self._run()
        lane = self.w.lane
        if new or lane is None or lane.kind != "reasoning":
            self.w.reasoning_chunk(delta, message_id=self.w.ids.new("chunkr-"))
        else:
            self.w.reasoning_chunk(delta, message_id=lane.id if named else None)

    # -- whole entities in one action (richer streams from short action lists) -----
    def _a_text_full(self, role: str, sub: int | None, deltas: list[str]) -> None:
        self._run()
        message_id = self.w.text_start(role=role, subagent=self._owner(sub), explicit_role=role != "assistant")
        for delta in deltas:
            self.w.text_delta(message_id, delta)
        self.w.text_end(message_id)

    def _a_tool_full(self, name: str, parent_kind: str, slot: int, sub: int | None, deltas: list[str]) -> None:
        self._a_tool_start(name, parent_kind, slot, sub)
        call_id = self.w.open_tools()[-1].id
        for delta in deltas:
            self.w.tool_args(call_id, delta)
        self.w.tool_end(call_id)

    def _a_reasoning_full(self, sub: int | None, same_id: bool, deltas: list[str]) -> None:
        self._run()
        owner = self._owner(sub)
        span = self.w.reasoning_start(subagent=owner)
        message_id = self.w.reasoning_message_start(message_id=span if same_id else None, subagent=owner)
        for delta in deltas:
            self.w.reasoning_delta(message_id, delta)
        self.w.reasoning_message_end(message_id)
        self.w.reasoning_end(span)

    # -- survivable oddities ---------------------------------------------------
    def _a_state_delta_fail(self, seed: int) -> None:
        self._run()
        self.w.state_delta(patches.failing_patch(random.Random(seed), self.w.state, odd_keys=True))

    def _a_state_delta_bool_test(self, seed: int) -> None:
        """A lone test op comparing a number with a boolean: Python's == says equal, JSON does not."""
        self._run()
        path = patches.find_path(random.Random(seed), self.w.state, lambda v: v in (0, 1) and not isinstance(v, float))
        if path is not None:
            value = self.w.state
            for token in path:
                value = value[token]
            other = bool(value) if not isinstance(value, bool) else int(value)
            self.w.state_delta([{"op": "test", "path": patches.pointer(path), "value": other}])

    def _a_activity_delta_fail(self, slot: int, seed: int) -> None:
        target = _pick(list(self.w.activities), slot)
        if target is not None:
            self._run()
            self.w.activity_delta(target, patches.failing_patch(random.Random(seed), self.w.activities[target][1]))

    def _a_activity_delta_unknown(self, seed: int) -> None:
        self._run()
        self.w.activity_delta(f"no-such-activity-{seed}", [{"op": "add", "path": "/x", "value": seed}])

    def _a_tool_result_unknown(self, content: Any) -> None:
        self._run()
        self.w.tool_result(self.w.ids.new("ghost-call-"), content)

    def _a_tool_result_early(self, slot: int) -> None:
        target = _pick(self.w.open_tools(), slot)
        if target:
            self.w.tool_result(target.id, "result before the call ended")

    def _a_tool_result_again(self, slot: int) -> None:
        target = _pick(list(self.w.finished_tools), slot)
        if target:
            self._run()
            self.w.tool_result(target.id, "a second result for the same call")

    def _a_tool_parent_user(self, name: str) -> None:
        self._run()
        users = list(self.w.user_messages)
        if users:
            self.w.tool_start(name, parent=users[-1])

    def _a_text_reopen(self, slot: int) -> None:
        target = _pick(list(self.w.finished_texts), slot)
        if target is not None and target.id not in {t.id for t in self.w.open_texts()}:
            self._run()
            self.w.text_start(message_id=target.id, subagent=target.owner)

    def _a_tool_restart(self, slot: int, name: str) -> None:
        open_ids = {t.id for t in self.w.open_tools()}
        target = _pick([t for t in self.w.finished_tools if t.id not in open_ids], slot)
        if target is not None:
            self._run()
            self.w.tool_start(name, call_id=target.id, subagent=target.owner)

    def _a_text_on_activity(self, slot: int) -> None:
        target = _pick(list(self.w.activities), slot)
        if target is not None and target not in {t.id for t in self.w.open_texts()}:
            self._run()
            self.w.text_start(message_id=target)

    def _a_encrypted_unknown(self, subtype: str) -> None:
        self._run()
        self.w.encrypted_value(subtype, Owned(self.w.ids.new("ghost-")), "enc")

    def _a_messages_snapshot_drop_open(self, seed: int) -> None:
        self._a_messages_snapshot(seed, drop_open=True)

    def _a_error_after_finish(self) -> None:
        if not self.w.run_active and self.w.last_terminal == "finished":
            self.w.run_error("late failure")

    def _a_state_snapshot_odd(self, value: Any) -> None:
        self._run()
        self.w.state_snapshot(value)


def render_actions(actions: Iterable[Action], open_end: bool = False) -> list[Event]:
    """The events for ``actions``; with ``open_end`` the last run is left without a terminal event."""
    return ActionRenderer().render(actions, open_end)
