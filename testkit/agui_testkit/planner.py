"""The seeded driver behind generate_log/iter_log: decides what each run contains.

Runs and turns are generators that yield after every emitted event, so the
caller can drain the writer as it goes (bounded memory) and a run can be cut
at any point (RUN_ERROR, or an open last run).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import orjson

from agui_testkit import content, patches, text
from agui_testkit.content import ToolCallSpec
from agui_testkit.shapes import LogShape
from agui_testkit.writer import Event, IdFactory, Owned, ThreadWriter

Steps = Iterator[None]


def _interleave(rng: random.Random, streams: list[Steps]) -> Steps:
    """Advance randomly chosen streams one event at a time until all are done."""
    active = list(streams)
    while active:
        stream = rng.choice(active)
        try:
            next(stream)
        except StopIteration:
            active.remove(stream)
            continue
        yield


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Sizes spread like real tool output: many small, a few large (skewed log-uniform)."""
    lo, hi = math.log(max(1, low)), math.log(max(1, high))
    return min(high, max(low, round(math.exp(lo + (hi - lo) * rng.random() ** 1.5))))


class Planner:
    def __init__(self, shape: LogShape, seed: int) -> None:
        self.shape = shape
        self.rng = random.Random(seed)
        ids = IdFactory(random.Random(self.rng.getrandbits(64)))
        self.w = ThreadWriter(
            shape.thread_id or f"thread-{seed}",
            ids,
            clock_rng=random.Random(self.rng.getrandbits(64)),
            start_ms=1_760_000_000_000 + (seed % 10**6) * 1000,
            timestamps=shape.timestamps,
            track_messages=shape.messages_snapshot_every > 0 or shape.input_history,
        )
        self.w.decorate = self._decorate
        k, runs = shape.huge_tool_results, range(shape.runs)
        self._huge_runs = sorted(self.rng.sample(runs, k) if k <= len(runs) else self.rng.choices(runs, k=k))
        self._huge_now = 0
        self._turn_mean = 150.0
        self._snapshot_in_stream = False
        self._resume: list[dict[str, Any]] = []

    # -- top level ---------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        for index in range(self.shape.runs):
            for _ in self._run(index):
                if self.w.out:
                    yield from self.w.drain()
            yield from self.w.drain()

    def _decorate(self, event: Event) -> None:
        s, r = self.shape, self.rng
        if s.metadata and "metadata" not in event and r.random() < s.metadata:
            event["metadata"] = content.metadata(r)
        if s.raw_event_field and r.random() < s.raw_event_field:
            event["rawEvent"] = {"provider": "generated", "n": r.randrange(10**6)}

    # -- runs ------------------------------------------------------------------
    def _run(self, index: int) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        last = index == s.runs - 1
        open_end = last and s.open_last_run
        will_error = not open_end and r.random() < s.error_runs
        self._huge_now += self._huge_runs.count(index)  # leftovers carry over
        budget = None
        if s.events_per_run:
            budget = max(20, (s.runs * s.events_per_run - w.count) / (s.runs - index))
        run_start = w.count

        yield from self._start_run(index)
        if s.state and (not w.state_sent or (s.state_snapshot_every and index % s.state_snapshot_every == 0)):
            w.state_snapshot(patches.random_document(r, s.state_keys, s.odd_keys))
            yield
        snapshot_at = None
        if s.messages_snapshot_every and index % s.messages_snapshot_every == s.messages_snapshot_every - 1:
            snapshot_at = r.choice(("start", "between", "stream"))
            if snapshot_at == "start":
                self._messages_snapshot()
                yield
            self._snapshot_in_stream = snapshot_at == "stream"

        body = self._run_body(run_start, budget, open_end, snapshot_at == "between")
        cut_at = w.count + r.randrange(int(budget or 150)) if will_error else None
        countdown = r.randrange(0, 4)
        for _ in body:
            yield
            if cut_at is not None and w.count >= cut_at:
                break
            if open_end and w.open_texts() and w.open_tools():
                if countdown == 0:
                    return  # the log ends inside this run: no terminal event
                countdown -= 1
        if self._snapshot_in_stream and not open_end:
            self._snapshot_in_stream = False
            self._messages_snapshot()
            yield
        if will_error:
            w.run_error(
                r.choice(("Model provider timed out", "Tool sandbox crashed", "Rate limit exceeded")),
                code=r.choice(("TIMEOUT", "INTERNAL", "RATE_LIMIT")),
            )
        elif not open_end:
            self._finish_run()
        yield

    def _start_run(self, index: int) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        run_id = w.ids.uuid()
        user_id = w.ids.new("msg_")
        as_text = r.random() < s.user_as_text
        history: list[dict[str, Any]] = []
        if s.input_history and w.mirror is not None:
            history = [m for m in w.mirror.snapshot() if m["role"] != "activity"]
        if index == 0:
            history.insert(
                0,
                {
                    "id": w.ids.new("sys_"),
                    "role": "system",
                    "content": "You are a careful coding agent. Prefer small, tested changes.",
                },
            )
        if not as_text:
            history.append(content.user_message(r, user_id, s.content_parts, s.unicode_ratio))
        run_input = None
        if s.echo_input:
            run_input = w.run_input(
                run_id,
                history,
                tools=content.TOOLS if r.random() < 0.8 else [],
                context=[{"description": "Current working directory", "value": "/workspace/app"}],
                forwarded_props={"model": "claude-sonnet-4", "temperature": 0} if r.random() < 0.5 else None,
                resume=self._resume,
            )
        self._resume = []
        w.run_start(run_id=run_id, input=run_input)
        yield
        if as_text:
            yield from self._text_stream(
                user_id, text.prose(r, r.randrange(20, 200), s.unicode_ratio), None, role="user"
            )

    def _finish_run(self) -> None:
        s, r, w = self.shape, self.rng, self.w
        if not s.outcomes:
            w.run_finish()
            return
        pending = list(w.awaiting_result)
        roll = r.random()
        kwargs: dict[str, Any] = {}
        if r.random() < 0.3:
            kwargs["usage"] = content.usage(r)
        if pending and roll < 0.5:
            interrupt = {
                "id": w.ids.new("int_", 10),
                "reason": "tool_approval",
                "toolCallId": pending[-1],
                "message": "Allow this command to run?",
            }
            kwargs["outcome"] = {"type": "interrupt", "interrupts": [interrupt]}
            self._resume = [
                {
                    "interruptId": interrupt["id"],
                    "status": r.choice(("resolved", "cancelled")),
                    "payload": {"approved": True},
                }
            ]
        elif pending:
            kwargs["outcome"] = {"type": "success", "pendingToolCallIds": pending}
        elif roll < 0.1:
            kwargs["outcome"] = {"type": "success"}
            kwargs["result"] = {"summary": text.words(r, 6)}
        elif roll < 0.14:
            kwargs["outcome"] = {"type": "cancelled"}
        w.run_finish(**kwargs)

    def _run_body(self, run_start: int, budget: float | None, open_end: bool, snapshot_between: bool) -> Steps:
        """Model turns that may call tools, then a final text answer (or, in an open
        last run, a turn that is cut while its text and a tool call are open)."""
        s, r, w = self.shape, self.rng, self.w
        turns = None if budget is not None else r.randint(*s.turns_per_run)
        turn = 0
        while True:
            # Without a turn count, the run ends once the budget would be reached mid-turn.
            last = turn >= turns if turns is not None else w.count - run_start + self._turn_mean * 0.5 >= (budget or 0)
            before = w.count
            if last:
                yield from self._turn(final=not open_end, force_nested=open_end)
            else:
                yield from self._turn(final=False)
                self._turn_mean = 0.8 * self._turn_mean + 0.2 * (w.count - before)
            if snapshot_between and turn == 0:
                self._messages_snapshot()
                yield
            yield from self._extras()
            turn += 1
            if last:
                return

    # -- turns -----------------------------------------------------------------
    def _turn(self, *, final: bool, force_nested: bool = False, owner: str | None = None) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        if s.steps:
            w.step_start("model", subagent=owner)
            yield
        if r.random() < s.reasoning:
            yield from self._reasoning(owner)
        n_tools = 0 if final else r.randint(*s.tool_calls_per_turn)
        if force_nested or (self._huge_now and owner is None):
            n_tools = max(1, n_tools)
        calls = [
            content.tool_call(r, r.randint(*s.args_chars), owner is None and r.random() < s.subagents, s.unicode_ratio)
            for _ in range(n_tools)
        ]
        if owner is None and not force_nested and r.random() < s.chunks:
            call_ids = yield from self._chunked_streams(calls)
        else:
            call_ids = yield from self._streams(calls, final, force_nested, owner)
        if s.steps:
            w.step_finish("model", subagent=owner)
            yield
        if call_ids:
            yield from self._execute(list(zip(call_ids, calls, strict=False)), owner)
        yield from self._state_updates()

    def _state_updates(self) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        for _ in range(r.randint(*s.state_deltas_per_turn) if s.state else 0):
            if len(orjson.dumps(w.state)) > s.state_max_bytes:
                w.state_snapshot(patches.random_document(r, s.state_keys, s.odd_keys))
            elif r.random() < s.failing_deltas:
                w.state_delta(patches.failing_patch(r, w.state, s.odd_keys))
            else:
                w.state_delta(patches.valid_patch(r, w.state, r.randint(*s.state_ops), s.odd_keys)[0])
            yield

    def _streams(self, calls: list[ToolCallSpec], final: bool, force_nested: bool, owner: str | None) -> Iterator[None]:
        s, r, w = self.shape, self.rng, self.w
        nested = bool(calls) and (force_nested or r.random() < s.nested_tool_in_text)
        has_text = final or not calls or nested or r.random() < 0.7
        text_id = w.ids.new("msg_")
        body = text.prose(r, r.randint(*s.text_chars), s.unicode_ratio)
        call_ids = [w.ids.new("call_") for _ in calls]
        parallel = not nested and len(calls) >= 2 and r.random() < s.parallel_tools
        future = not nested and has_text and bool(calls) and r.random() < s.future_parent

        def parent_for() -> str | None:
            if nested or future:
                return text_id
            return text_id if has_text and r.random() < 0.6 else None

        tools = [self._tool_stream(cid, spec, parent_for(), owner) for cid, spec in zip(call_ids, calls, strict=False)]
        if nested:
            text_steps = self._text_stream(text_id, body, owner)
            for _ in range(r.randint(1, 6)):  # the START and a few deltas first
                if next(text_steps, StopIteration) is StopIteration:
                    break
                yield
            yield from _interleave(r, [text_steps, *tools])
        elif future:
            for tool in tools:
                yield from tool
            yield from self._text_stream(text_id, body, owner)
        else:
            if has_text:
                yield from self._text_stream(text_id, body, owner)
            if parallel:
                for tool in tools:  # every START before any ARGS
                    next(tool)
                    yield
                yield from _interleave(r, tools)
            else:
                for tool in tools:
                    yield from tool
        if has_text and r.random() < s.encrypted_values:
            w.encrypted_value("message", Owned(text_id, owner), content.encrypted_blob(r))
            yield
        return call_ids

    def _text_stream(self, message_id: str, body: str, owner: str | None, role: str = "assistant") -> Steps:
        r, w = self.rng, self.w
        w.text_start(role=role, message_id=message_id, subagent=owner, explicit_role=r.random() < 0.7)
        yield
        for i, delta in enumerate(text.split_deltas(r, body, self.shape.max_delta_chars)):
            w.text_delta(message_id, delta)
            yield
            if self._snapshot_in_stream and i == 3 and owner is None:
                self._snapshot_in_stream = False  # a snapshot while this message is still open
                self._messages_snapshot()
                yield
        w.text_end(message_id)
        yield

    def _tool_stream(self, call_id: str, spec: ToolCallSpec, parent: str | None, owner: str | None) -> Steps:
        r, w = self.rng, self.w
        w.tool_start(spec.name, parent=parent, call_id=call_id, subagent=owner)
        yield
        for delta in text.split_deltas(r, spec.arguments, self.shape.max_delta_chars):
            w.tool_args(call_id, delta)
            yield
        w.tool_end(call_id)
        yield
        if r.random() < self.shape.encrypted_values:
            w.encrypted_value("tool-call", Owned(call_id, owner), content.encrypted_blob(r), tagged=r.random() < 0.5)
            yield

    def _chunked_streams(self, calls: list[ToolCallSpec]) -> Iterator[None]:
        """The same turn spelled with *_CHUNK events: one pending stream at a time."""
        s, r, w = self.shape, self.rng, self.w
        text_id = w.ids.new("msg_")
        if r.random() < s.reasoning:
            rid = w.ids.new("rm_")
            for i, delta in enumerate(text.split_deltas(r, text.prose(r, 120), s.max_delta_chars)):
                w.reasoning_chunk(delta, message_id=rid if i == 0 or r.random() < 0.5 else None)
                yield
        body = text.prose(r, r.randint(*s.text_chars), s.unicode_ratio)
        for i, delta in enumerate(text.split_deltas(r, body, s.max_delta_chars)):
            named = i == 0 or r.random() < 0.5
            w.text_chunk(
                delta, message_id=text_id if named else None, role="assistant" if i == 0 and r.random() < 0.5 else None
            )
            yield
            if r.random() < s.custom_raw:  # RAW does not end a pending chunk stream
                event, source = content.raw_event(r)
                w.raw(event, source=source)
                yield
        call_ids = []
        for spec in calls:
            call_id = w.ids.new("call_")
            call_ids.append(call_id)
            parent = text_id if r.random() < 0.7 else None
            for i, delta in enumerate(text.split_deltas(r, spec.arguments, s.max_delta_chars)):
                if i == 0:
                    w.tool_chunk(delta, call_id=call_id, name=spec.name, parent=parent)
                else:
                    w.tool_chunk(delta, call_id=call_id if r.random() < 0.5 else None)
                yield
        return call_ids

    def _reasoning(self, owner: str | None) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        span = w.reasoning_start(subagent=owner)
        yield
        for n in range(1 if r.random() < 0.8 else 2):
            mid = w.reasoning_message_start(message_id=span if n == 0 and r.random() < 0.5 else None, subagent=owner)
            yield
            for delta in text.split_deltas(r, text.prose(r, r.randrange(80, 600)), s.max_delta_chars):
                w.reasoning_delta(mid, delta)
                yield
            w.reasoning_message_end(mid)
            yield
            if r.random() < s.encrypted_values:
                w.encrypted_value("message", Owned(mid, owner), content.encrypted_blob(r))
                yield
        w.reasoning_end(span)
        yield

    def _execute(self, calls: list[tuple[str, ToolCallSpec]], owner: str | None) -> Steps:
        s, r, w = self.shape, self.rng, self.w
        if s.steps:
            w.step_start("tools", subagent=owner)
            yield
        activity = None
        if r.random() < s.activity:
            activity = yield from self._activity_open()
        if len(calls) > 1 and r.random() < s.parallel_tools:
            calls = r.sample(calls, len(calls))  # parallel calls finish in any order
        for call_id, spec in calls:
            if spec.name == "task" and owner is None:
                yield from self._subagent(call_id, spec)
            if s.outcomes and owner is None and r.random() < 0.04:
                continue  # a frontend tool: answered by the client after the run
            if self._huge_now and owner is None:
                self._huge_now -= 1
                result: Any = text.big_blob(r, s.huge_tool_result_bytes)
            else:
                result = content.tool_result(r, spec, _log_uniform(r, *s.tool_result_bytes), s.content_parts)
            w.tool_result(call_id, result, subagent=owner if r.random() < 0.5 else None, explicit_role=r.random() < 0.3)
            yield
            yield from self._extras()
            if activity is not None:
                w.activity_delta(
                    activity, patches.valid_patch(r, w.activities[activity][1], r.randint(1, 3), s.odd_keys)[0]
                )
                yield
        if s.steps:
            w.step_finish("tools", subagent=owner)
            yield

    def _subagent(self, call_id: str, spec: ToolCallSpec) -> Steps:
        r, w = self.rng, self.w
        sid = w.subagent_start("researcher", description="Investigates one question", parent_tool_call=call_id)
        yield
        for n in range(r.randint(1, 2)):
            yield from self._turn(final=n == 1, owner=sid)
        if r.random() < 0.15:
            w.subagent_error(sid, "subagent gave up", code="GAVE_UP")
        else:
            w.subagent_finish(sid, outcome={"type": "success"} if r.random() < 0.5 else None)
        yield

    # -- extras ----------------------------------------------------------------
    def _activity_open(self) -> Iterator[None]:
        r, w = self.rng, self.w
        known = list(w.activities)
        if known and r.random() < 0.3:  # re-snapshot an earlier activity, replacing it or not
            activity = r.choice(known)
            w.activity_snapshot("PLAN", content.activity_content(r), message_id=activity, replace=r.random() < 0.5)
        else:
            activity = w.activity_snapshot("PLAN", content.activity_content(r))
        yield
        return activity

    def _extras(self) -> Steps:
        """Maybe a CUSTOM and maybe a RAW event (at turn boundaries and after tool results)."""
        s, r, w = self.shape, self.rng, self.w
        if s.custom_raw and r.random() < s.custom_raw:
            w.custom(*content.custom_event(r))
            yield
        if s.custom_raw and r.random() < s.custom_raw:
            event, source = content.raw_event(r)
            w.raw(event, source=source if r.random() < 0.7 else None)
            yield

    def _messages_snapshot(self) -> None:
        s, r, w = self.shape, self.rng, self.w
        assert w.mirror is not None
        messages = w.mirror.snapshot()
        if s.messages_snapshot_edits and r.random() < 0.6:
            protected = {t.id for t in w.open_texts()} | {m.id for m in w.open_reasoning()}
            for m in messages:
                if m["role"] == "tool" and isinstance(m["content"], str) and len(m["content"]) > 1000:
                    m["content"] = "[elided by the agent to save context]"
            drop = r.randrange(0, max(1, len(messages) // 3))
            droppable = [
                m
                for m in messages
                if m["id"] not in protected
                and m["role"] != "system"
                and not any(tc["id"] in {c.id for c in w.open_tools()} for tc in m.get("toolCalls", ()))
            ]
            gone = {m["id"] for m in droppable[:drop]}
            messages = [m for m in messages if m["id"] not in gone]
        w.messages_snapshot(messages)
