"""Routes over a thread's runs: ``GET /threads/{t}/runs`` and ``GET /threads/{t}/events?run=R``.

``/runs`` lists the runs of the log (see ``protocol.lineage.RunIndex``) with their
parent, status and first and last sequence numbers. ``/events?run=R`` replays the
branch that ends at run R (time travel), compacted as a fresh replay is; its
frames carry no ids (the events after R in the log may belong to another branch,
so a resume position would mean nothing) and the stream ends after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.server.branches import UnknownRun, branch_events, run_index
from agui_gateway.server.errors import BadRequest, NotFound
from agui_gateway.server.responses import json_response, sse_response
from agui_gateway.server.sse import STREAM_PREAMBLE, event_frame
from agui_gateway.server.threads import ThreadRuntime


async def list_runs(runtime: ThreadRuntime) -> Response:
    # Recovery first: a run a crash left open is closed before the log is read, so a
    # run listed as running is one in progress (here, or on another replica).
    await runtime.compactor()
    index = await run_index(runtime.store, runtime.thread_id)
    return json_response({"threadId": runtime.thread_id, "runs": [info.to_json() for info in index.runs]})


async def branch_stream(runtime: ThreadRuntime, run_id: str) -> Response:
    await runtime.compactor()
    try:
        events = await branch_events(runtime.store, runtime.thread_id, run_id)
    except UnknownRun as exc:
        raise NotFound(str(exc)) from exc

    async def body() -> AsyncIterator[bytes | memoryview]:
        yield STREAM_PREAMBLE
        for event in events:
            yield event_frame(event)

    return sse_response(body())


def requested_run(request: Request) -> str | None:
    run = request.query_params.get("run")
    if run is None:
        return None
    if not run:
        raise BadRequest("?run= needs a run id")
    if "after" in request.query_params or "last-event-id" in request.headers:
        raise BadRequest("?run= replays a branch from its start: it takes no resume position")
    return run
