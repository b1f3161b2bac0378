"""A control endpoint for the scripted agent, for tests driven from another process (Node).

The scripted agent (:mod:`support.agents`) is scripted and released from Python; a Node
test reaches it through this small HTTP app on loopback instead:

* ``POST /script`` ``{"threadId", "runId", "holdAt"?, "textDeltas"?, "outcome"?}``: run
  ``runId`` answers with :func:`support.events.agent_run_events` for that thread (its
  RUN_FINISHED carrying ``outcome`` when given), held after ``holdAt`` events until
  released (a mid-run state without sleeping); answers ``{"events": N}``, the length
  of the run.
* ``POST /release`` ``{"runId"}``: the held run goes on to its end.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.agents import Script, ScriptedAgent
from support.events import agent_run_events


def agent_control_app(agent: ScriptedAgent) -> Starlette:
    scripts: dict[str, Script] = {}

    async def script(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        events = agent_run_events(body["threadId"], body["runId"], text_deltas=int(body.get("textDeltas", 6)))
        if body.get("outcome") is not None:
            events[-1] = {**events[-1], "outcome": body["outcome"]}
        hold_at = body.get("holdAt")
        scripts[body["runId"]] = agent.script(body["runId"], events, hold_at=None if hold_at is None else int(hold_at))
        return JSONResponse({"events": len(events)})

    async def release(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        held = scripts.get(body["runId"])
        if held is None:
            return JSONResponse({"error": f"no script for run {body['runId']!r}"}, status_code=404)
        held.release()
        return JSONResponse({"released": body["runId"]})

    return Starlette(routes=[Route("/script", script, methods=["POST"]), Route("/release", release, methods=["POST"])])
