"""The HTTP API's route table: every endpoint, and the resource module that handles it.

Handlers are thin: they parse and authorise, then hand over to the thread runtimes
(:mod:`~agui_gateway.server.runtime.thread`), the run manager
(:mod:`~agui_gateway.server.runtime.manager`) and the stream bodies (:mod:`.streams`).
A refusal is raised as an :mod:`~agui_gateway.server.errors` exception; the app turns
it into the JSON response (:func:`~.responses.exception_handlers`).

Streams (``text/event-stream``, see :mod:`.streams` for the id rule):

* ``POST /agents/{agent}/run``: the run's own events (the log after the seq
  before the run), ending with the run; what an ``HttpAgent`` expects.
* ``GET /threads/{thread}/events``: history, then the live tail, forever;
  with ``?run=R``, the branch that ends at run R and nothing else.
* ``POST /agents/{agent}/connect``: history, then the live tail until the
  thread has no run in progress (a connect must complete, or the official
  client's ``connectAgent`` never resolves and shows the agent as running).

History for a fresh client (no ``Last-Event-ID`` header, no ``?after=``) is the
compacted replay view (``?turns=N``, or ``forwardedProps.aguiGateway.turns`` on a
connect: windowed to the last N runs, the older messages paged by
``GET /threads/{thread}/messages``); with ``Last-Event-ID: N`` or ``?after=N`` it is
exactly the stored events after N (0: all of them, uncompacted).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from agui_gateway.server.http.agents import AgentHandlers
from agui_gateway.server.http.runs import RunHandlers
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.http.system import SystemHandlers
from agui_gateway.server.http.threads import ThreadHandlers


def api_routes(services: ApiServices) -> list[BaseRoute]:
    runs = RunHandlers(services)
    threads = ThreadHandlers(services)
    agents = AgentHandlers(services)
    system = SystemHandlers(services)
    return [
        Route("/agents/{agent}/run", runs.run, methods=["POST"]),
        Route("/agents/{agent}/connect", runs.connect, methods=["POST"]),
        Route("/agents/{agent}/capabilities", agents.capabilities, methods=["GET"]),
        Route("/threads", threads.list_threads, methods=["GET"]),
        Route("/threads/{thread}", threads.delete, methods=["DELETE"]),
        Route("/threads/{thread}/events", threads.events, methods=["GET"]),
        Route("/threads/{thread}/runs", threads.runs, methods=["GET"]),
        Route("/threads/{thread}/snapshot", threads.snapshot, methods=["GET"]),
        Route("/threads/{thread}/messages", threads.messages, methods=["GET"]),
        Route("/threads/{thread}/log.jsonl", threads.log_jsonl, methods=["GET"]),
        Route("/threads/{thread}/stop", runs.stop, methods=["POST"]),
        Route("/healthz", system.healthz, methods=["GET"]),
        Route("/readyz", system.readyz, methods=["GET"]),
        Route("/metrics", system.metrics, methods=["GET"]),
    ]
