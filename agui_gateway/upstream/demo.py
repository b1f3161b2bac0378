"""A scripted AG-UI agent for demos and tests: no LLM, no network.

``create_demo_app(pace)`` is a Starlette app answering ``POST /`` with a RunAgentInput
by streaming SSE: RUN_STARTED, a STATE_SNAPSHOT holding a small to-do plan, a
reasoning block, an assistant message that issues two parallel tool calls (their
ARGS interleaved), both TOOL_CALL_RESULTs, STATE_DELTAs ticking the plan off, a final
assistant message, RUN_FINISHED. What it says and which tools it "calls" depend on
the last user message, so a demo session feels alive. Human-in-the-loop turns get
short scripts of their own (:func:`_short_turn`): a frontend tool call the client
answers, and an interrupt the client resumes. Every event is built with the
official ``ag_ui.core`` models and encoded with the official ``EventEncoder``.

``pace`` scales the pauses (1.0: tens of ms between deltas, like a model streaming;
0: no pauses at all, for tests). The script itself, :func:`demo_script`, is pure.

Mounted by the gateway under a prefix (``Mount("/demo/agent", app)``), Starlette
redirects ``POST /demo/agent`` to ``/demo/agent/`` with a 307, which an HTTP client
that does not follow redirects sees as a non-200 answer: point the agent URL at
``.../demo/agent/`` or route the exact path to :meth:`DemoAgent.handle`.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from ag_ui.core import (
    BaseEvent,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunAgentInput,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["DemoAgent", "DemoStep", "create_demo_app", "demo_script", "last_user_text"]

# Seconds before an event at pace 1.0. Text deltas arrive like a model streaming
# tokens; tools "take" a moment; the run opens and closes promptly.
_DELTA_PAUSE = (0.02, 0.06)
_REASONING_PAUSE = (0.015, 0.04)
_ARGS_PAUSE = (0.01, 0.03)
_TOOL_WORK_PAUSE = 0.35
_ECHO_CHARS = 160
# The demo reads at most this much of a prompt: its echo (quotes, the longest word,
# the search query) is bounded whatever a client sends, so a run stays a few dozen events.
_READ_CHARS = 4096
_CITIES = ("Paris", "Tokyo", "Berlin", "London", "Lisbon", "New York", "Sydney", "Nairobi", "Lima", "Oslo")


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One event of the script and the pause before it at pace 1.0 (seconds)."""

    pause: float
    event: BaseEvent


def last_user_text(messages: Iterable[Any]) -> str:
    """The text of the last user message (text parts joined), '' if there is none."""
    for message in reversed(list(messages)):
        if getattr(message, "role", None) != "user":
            continue
        content = message.content
        if isinstance(content, str):
            return content
        return " ".join(part.text for part in content if getattr(part, "type", None) == "text")
    return ""


def _tokens(text: str, rng: random.Random) -> Iterator[str]:
    """Splits text into small deltas of one or two word-ish tokens, as a model streams."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    index = 0
    while index < len(pieces):
        take = 1 if rng.random() < 0.7 else 2
        yield "".join(pieces[index : index + take])
        index += take


def _fragments(text: str, rng: random.Random) -> Iterator[str]:
    """Splits a tool call's JSON arguments into short fragments."""
    index = 0
    while index < len(text):
        size = rng.randint(4, 12)
        yield text[index : index + size]
        index += size


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 1] + "…"


def _fake_weather(city: str) -> dict[str, Any]:
    """Deterministic made-up weather, so the same question gets the same answer."""
    digest = hashlib.sha256(city.encode()).digest()
    skies = ("sunny", "cloudy", "light rain", "windy", "clear", "foggy")
    return {"city": city, "temperatureC": 5 + digest[0] % 25, "sky": skies[digest[1] % len(skies)]}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a run talks about: its reasoning, the two tool calls, and its answers."""

    reasoning: str
    intro: str
    calls: tuple[tuple[str, dict[str, Any], Any], tuple[str, dict[str, Any], Any]]
    answer: str


def _weather_plan(text: str) -> _Plan:
    found = [city for city in _CITIES if city.lower() in text[:_READ_CHARS].lower()]
    cities = (found + [c for c in ("Paris", "Tokyo") if c not in found])[:2]
    reports = [_fake_weather(city) for city in cities]
    return _Plan(
        reasoning=(
            f"The user asks about the weather. I will look up {cities[0]} and {cities[1]} "
            "at the same time, then compare them."
        ),
        intro=f"Let me check the weather in {cities[0]} and {cities[1]} for you.",
        calls=(
            ("get_weather", {"city": cities[0]}, reports[0]),
            ("get_weather", {"city": cities[1]}, reports[1]),
        ),
        answer=" ".join(f"{r['city']}: {r['temperatureC']} °C and {r['sky']}." for r in reports)
        + f" {_warmer(reports)} (made-up numbers: this is the demo agent).",
    )


def _warmer(reports: list[dict[str, Any]]) -> str:
    first, second = reports
    if first["temperatureC"] == second["temperatureC"]:
        return "Both are equally warm."
    warmer = first if first["temperatureC"] > second["temperatureC"] else second
    return f"{warmer['city']} is the warmer of the two."


def _default_plan(text: str) -> _Plan:
    quoted = _quote(text) if text.strip() else "(nothing yet)"
    words = re.findall(r"\w+", text[:_READ_CHARS])
    longest = _quote(max(words, key=len)) if words else ""
    query = _quote(" ".join(words[:6])) or "getting started"
    hits = [
        {"title": f"Notes on {query}", "score": 0.92},
        {"title": "How the AG-UI gateway replays a thread", "score": 0.71},
    ]
    stats = {"words": len(words), "characters": len(text), "longestWord": longest}
    if len(text) <= _READ_CHARS:
        counted = f"Your message has {len(words)} words and {len(text)} characters"
    else:
        counted = f"Your message has {len(text)} characters ({len(words)} words in the first {_READ_CHARS})"
    return _Plan(
        reasoning=(
            f"The user wrote: “{quoted}”. I have no language model, so I will search "
            "the notes and measure the message in parallel, then report back."
        ),
        intro=f"You said: “{quoted}”. I'll search my notes and analyse your message at the same time.",
        calls=(
            ("search_notes", {"query": query}, {"hits": hits}),
            ("analyse_text", {"text": _quote(text)}, stats),
        ),
        answer=(
            counted
            + (f"; the longest word is “{longest}”." if longest else ".")
            + f" The best note I found is “{hits[0]['title']}”. Ask me about the weather"
            " in a city to see a different script."
        ),
    )


def _previous_runs(state: Any) -> int:
    runs = state.get("runs") if isinstance(state, dict) else None
    return runs if isinstance(runs, int) and not isinstance(runs, bool) else 0


def _short_turn(run_input: RunAgentInput, rng: random.Random) -> list[DemoStep] | None:
    """The human-in-the-loop scripts, or None for the regular one.

    * the client answered a tool call itself (the last message is a tool message: a
      frontend tool's result): a short answer quoting it;
    * a run resuming interrupts (``resume``): a short answer saying what was decided;
    * "approve" in the user's message: the run ends asking for approval (an interrupt);
    * "frontend" in it and the client declared tools: a call of the first of them,
      which the client runs (the run ends with the call pending).
    """
    thread_id, run_id = run_input.thread_id, run_input.run_id
    last = run_input.messages[-1] if run_input.messages else None
    text = last_user_text(run_input.messages)
    message_id = f"{run_id}-msg-1"
    finished = RunFinishedEvent(thread_id=thread_id, run_id=run_id)
    call: ToolCallStartEvent | None = None
    if getattr(last, "role", None) == "tool":
        say = f"Thanks, the UI answered: “{_quote(str(getattr(last, 'content', '')))}”."
    elif run_input.resume:
        decisions = ", ".join(f"{entry.interrupt_id}: {entry.status}" for entry in run_input.resume)
        say = f"Resumed with your decision ({decisions}). Done."
    elif "approve" in text.lower():
        say = "This step needs your approval first."
        interrupt = Interrupt(id=f"{run_id}-approval", reason="confirmation", message="Go ahead?")
        finished = RunFinishedEvent(
            thread_id=thread_id, run_id=run_id, outcome=RunFinishedInterruptOutcome(interrupts=[interrupt])
        )
    elif "frontend" in text.lower() and run_input.tools:
        say = "I'll ask you in the UI."
        call = ToolCallStartEvent(
            tool_call_id=f"{run_id}-ui-call", tool_call_name=run_input.tools[0].name, parent_message_id=message_id
        )
    else:
        return None
    steps = [
        DemoStep(0.0, RunStartedEvent(thread_id=thread_id, run_id=run_id)),
        DemoStep(0.1, TextMessageStartEvent(message_id=message_id, role="assistant")),
        *(
            DemoStep(rng.uniform(*_DELTA_PAUSE), TextMessageContentEvent(message_id=message_id, delta=delta))
            for delta in _tokens(say, rng)
        ),
        DemoStep(0.0, TextMessageEndEvent(message_id=message_id)),
    ]
    if call is not None:
        steps += [
            DemoStep(0.05, call),
            DemoStep(0.05, ToolCallArgsEvent(tool_call_id=call.tool_call_id, delta="{}")),
            DemoStep(0.0, ToolCallEndEvent(tool_call_id=call.tool_call_id)),
        ]
    return [*steps, DemoStep(0.0, finished)]


def demo_script(run_input: RunAgentInput) -> list[DemoStep]:
    """The events of one demo run with their pauses at pace 1.0. Pure and deterministic
    for a given input: ids derive from the run id, pauses from a seeded generator."""
    thread_id, run_id = run_input.thread_id, run_input.run_id
    rng = random.Random(f"{thread_id}/{run_id}")
    short = _short_turn(run_input, rng)
    if short is not None:
        return short
    text = last_user_text(run_input.messages)
    plan = _weather_plan(text) if "weather" in text.lower() else _default_plan(text)

    def pause(bounds: tuple[float, float]) -> float:
        return rng.uniform(*bounds)

    steps: list[DemoStep] = []
    add = steps.append
    reasoning_id = f"{run_id}-reasoning"
    intro_id, answer_id = f"{run_id}-msg-1", f"{run_id}-msg-2"
    call_ids = (f"{run_id}-call-1", f"{run_id}-call-2")

    add(DemoStep(0.0, RunStartedEvent(thread_id=thread_id, run_id=run_id)))
    todos = ["Think it over", "Call two tools in parallel", "Read the results", "Answer"]
    add(
        DemoStep(
            0.0,
            StateSnapshotEvent(
                snapshot={
                    "runs": _previous_runs(run_input.state) + 1,
                    "lastRequest": _quote(text),
                    "progress": 0,
                    "todos": [{"title": title, "done": False} for title in todos],
                }
            ),
        )
    )

    def tick(index: int) -> None:
        add(
            DemoStep(
                0.05,
                # Validated from wire dicts: the model types ``delta`` as operation models.
                StateDeltaEvent.model_validate(
                    {
                        "delta": [
                            {"op": "replace", "path": f"/todos/{index}/done", "value": True},
                            {"op": "replace", "path": "/progress", "value": round((index + 1) / len(todos), 2)},
                        ]
                    }
                ),
            )
        )

    add(DemoStep(0.1, ReasoningStartEvent(message_id=reasoning_id)))
    add(DemoStep(0.0, ReasoningMessageStartEvent(message_id=reasoning_id, role="reasoning")))
    for delta in _tokens(plan.reasoning, rng):
        add(DemoStep(pause(_REASONING_PAUSE), ReasoningMessageContentEvent(message_id=reasoning_id, delta=delta)))
    add(DemoStep(0.0, ReasoningMessageEndEvent(message_id=reasoning_id)))
    add(DemoStep(0.0, ReasoningEndEvent(message_id=reasoning_id)))
    tick(0)

    add(DemoStep(0.1, TextMessageStartEvent(message_id=intro_id, role="assistant")))
    for delta in _tokens(plan.intro, rng):
        add(DemoStep(pause(_DELTA_PAUSE), TextMessageContentEvent(message_id=intro_id, delta=delta)))
    add(DemoStep(0.0, TextMessageEndEvent(message_id=intro_id)))

    # Parallel tool calls: both open, their argument fragments interleave, both close.
    for call_id, (name, _, _) in zip(call_ids, plan.calls, strict=False):
        add(DemoStep(0.05, ToolCallStartEvent(tool_call_id=call_id, tool_call_name=name, parent_message_id=intro_id)))
    fragments = [list(_fragments(orjson.dumps(args).decode(), rng)) for _, args, _ in plan.calls]
    for index in range(max(len(f) for f in fragments)):
        for call_id, pieces in zip(call_ids, fragments, strict=False):
            if index < len(pieces):
                add(DemoStep(pause(_ARGS_PAUSE), ToolCallArgsEvent(tool_call_id=call_id, delta=pieces[index])))
    for call_id in call_ids:
        add(DemoStep(0.0, ToolCallEndEvent(tool_call_id=call_id)))
    tick(1)

    # The second tool "finishes" first, as parallel work does.
    for number in (2, 1):
        _, _, result = plan.calls[number - 1]
        add(
            DemoStep(
                _TOOL_WORK_PAUSE,
                ToolCallResultEvent(
                    message_id=f"{run_id}-result-{number}",
                    tool_call_id=call_ids[number - 1],
                    content=orjson.dumps(result).decode(),
                    role="tool",
                ),
            )
        )
    tick(2)

    add(DemoStep(0.1, TextMessageStartEvent(message_id=answer_id, role="assistant")))
    for delta in _tokens(plan.answer, rng):
        add(DemoStep(pause(_DELTA_PAUSE), TextMessageContentEvent(message_id=answer_id, delta=delta)))
    add(DemoStep(0.0, TextMessageEndEvent(message_id=answer_id)))
    tick(3)
    add(DemoStep(0.0, RunFinishedEvent(thread_id=thread_id, run_id=run_id)))
    return steps


class DemoAgent:
    """The demo agent's HTTP side; ``handle`` is a Starlette endpoint."""

    def __init__(self, pace: float = 1.0) -> None:
        if pace < 0:
            raise ValueError("pace must be >= 0")
        self.pace = pace
        self._encoder = EventEncoder()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            run_input = RunAgentInput.model_validate_json(body)
        except ValidationError as error:
            return JSONResponse(
                {
                    "error": "the body is not a valid RunAgentInput",
                    "details": error.errors(include_url=False, include_input=False, include_context=False),
                },
                status_code=422,
            )
        return StreamingResponse(
            self._stream(demo_script(run_input)),
            media_type=self._encoder.get_content_type(),
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def _stream(self, steps: list[DemoStep]) -> AsyncIterator[str]:
        for step in steps:
            if self.pace > 0 and step.pause > 0:
                await asyncio.sleep(step.pause * self.pace)
            yield self._encoder.encode(step.event)


def create_demo_app(pace: float = 1.0) -> Starlette:
    """The demo agent as an app answering ``POST /`` (mounted at /demo/agent)."""
    agent = DemoAgent(pace)
    return Starlette(routes=[Route("/", agent.handle, methods=["POST"])])
