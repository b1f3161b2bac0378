"""A real third-party AG-UI integration that runs offline: a pydantic-ai agent over
its ``FunctionModel``, served by pydantic-ai's own AG-UI adapter as a Starlette app.

Nobody here wrote the adapter: it decides the event shapes (ids, RUN_STARTED fields,
tool call events, state snapshots, interrupts), so the gateway is tested against what a
real integration sends. The model is a scripted function of the conversation:

* after a tool result (a backend tool's, or a frontend tool's result the client sent
  with the next run): an answer quoting it, streamed in several deltas;
* a user message containing "frontend", when the client declared tools
  (RunAgentInput.tools): a call of the first of them; pydantic-ai ends the run with
  that call for the client to run;
* a user message containing "approve": a call of ``delete_file``, a tool that
  requires approval; pydantic-ai ends the run with an AG-UI interrupt, and a run with
  ``resume`` carries the decision;
* otherwise a call of ``record_city`` (the message's last word), which changes the
  shared state (``StateDeps``) and sends it back as a STATE_SNAPSHOT.

Test-only: pydantic-ai is in the ``test`` extra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ag_ui.core import EventType, StateSnapshotEvent
from pydantic import BaseModel
from pydantic_ai import Agent, DeferredToolRequests, RunContext, ToolReturn
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.ui import StateDeps
from pydantic_ai.ui.ag_ui import AGUIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class TripState(BaseModel):
    cities: list[str] = []


def _last_user_text(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                content = getattr(part, "content", None)
                if getattr(part, "part_kind", "") == "user-prompt" and isinstance(content, str):
                    return content
    return ""


async def _scripted_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
        returned = next(p for p in last.parts if isinstance(p, ToolReturnPart))
        for piece in ("Noted ", f"{returned.content}. ", "Anything ", "else?"):
            yield piece
        return
    text = _last_user_text(messages)
    frontend = [tool for tool in info.function_tools if tool.kind == "external"]
    if "frontend" in text and frontend:
        yield {0: DeltaToolCall(name=frontend[0].name, json_args='{"color": "teal"}', tool_call_id="ui-call")}
        return
    if "approve" in text:
        yield {0: DeltaToolCall(name="delete_file", json_args='{"path": "/tmp/x"}', tool_call_id="approval-call")}
        return
    city = text.split()[-1].strip("?.!") if text.split() else "Paris"
    yield {0: DeltaToolCall(name="record_city", json_args='{"city": ', tool_call_id="call-" + city.lower())}
    yield {0: DeltaToolCall(json_args=f'"{city}"}}')}


agent: Agent[StateDeps[TripState], str | DeferredToolRequests] = Agent(
    FunctionModel(stream_function=_scripted_model),
    deps_type=StateDeps[TripState],
    output_type=[str, DeferredToolRequests],  # a call that needs approval ends the run as an interrupt
)


@agent.tool
async def record_city(ctx: RunContext[StateDeps[TripState]], city: str) -> ToolReturn:
    """Adds a city to the trip and shares the new state with the UI."""
    ctx.deps.state.cities.append(city)
    snapshot = StateSnapshotEvent(type=EventType.STATE_SNAPSHOT, snapshot=ctx.deps.state.model_dump())
    return ToolReturn(return_value=f"{city} is on the trip ({len(ctx.deps.state.cities)} cities)", metadata=[snapshot])


@agent.tool_plain(requires_approval=True)
def delete_file(path: str) -> str:
    """Deletes a file (only once the user approved it)."""
    return f"deleted {path}"


async def _run(request: Request) -> Response:
    return await AGUIAdapter.dispatch_request(request, agent=agent, deps=StateDeps(TripState()))


app = Starlette(routes=[Route("/", _run, methods=["POST"])])
