"""Routes of the thread browser: the page, the thread-changes feed, per-thread figures.

* ``GET /ui/...``: the static page (``index.html``, its scripts and styles); no data,
  so no token: the page asks for one and sends it on every API call.
* ``GET /threads/changes``: ``text/event-stream`` of the threads that changed, one
  ``event: thread`` frame (a thread-list row) per changed readable thread, coalesced
  to at most one frame per thread every :data:`FEED_INTERVAL_S`; an ``event: ready``
  frame first (a page that loads the list after it misses no change), a heartbeat
  comment when idle; a thread deleted is one ``event: thread_deleted`` frame
  (``{"threadId": T}``), unless it has events again by then; ``ready`` again when more
  threads changed than the feed holds (a client that stopped reading): reload the list.
* ``GET /agents``: ``{"agents": [names]}``, the agents a run can be started against.
* ``GET /threads/{thread}/info``: the list row plus what a fresh replay sends
  (bytes, frames, the seq it covers), i.e. what a reconnect costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agui_gateway.server.config import TokenGrant
from agui_gateway.server.errors import NotFound
from agui_gateway.server.http.listing import Row, thread_row
from agui_gateway.server.http.requests import thread_param
from agui_gateway.server.http.responses import json_response, sse_response
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.sse import HEARTBEAT, STREAM_PREAMBLE, named_frame, thread_deleted_frame
from agui_gateway.server.ui.inspector import inspector_routes

FEED_INTERVAL_S = 0.25  # a thread streaming deltas updates its row at most 4 times a second
STATIC_DIR = "static"
_READY = named_frame("ready", {})
_PACKAGE = "agui_gateway.server.ui"


def static_files() -> StaticFiles:
    """The page's files, read from the installed package (``pip install .`` ships them)."""
    return StaticFiles(packages=[(_PACKAGE, STATIC_DIR)], html=True)


def ui_routes(services: ApiServices) -> list[BaseRoute]:
    handlers = _UiHandlers(services)
    return [
        Route("/agents", handlers.agents, methods=["GET"]),
        Route("/threads/changes", handlers.changes, methods=["GET"]),
        Route("/threads/{thread}/info", handlers.info, methods=["GET"]),
        # Before the /ui mount, which would shadow it.
        *(inspector_routes(services.agents.names()) if services.config.inspector else []),
        Mount("/ui", app=static_files(), name="ui"),
    ]


class _UiHandlers:
    def __init__(self, services: ApiServices) -> None:
        self.services = services

    async def _row(self, thread_id: str) -> Row | None:
        info = await self.services.store.thread_info(thread_id)
        return None if info is None else thread_row(info, self.services.threads.peek(thread_id))

    async def agents(self, request: Request) -> Response:
        self.services.auth.require_any(request)
        return json_response({"agents": self.services.agents.names()})

    async def info(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.services.auth.require(request, thread_id, "read")
        row = await self._row(thread_id)
        if row is None:
            raise NotFound(f"thread {thread_id!r} has no events")
        view = await (await self.services.threads.current(thread_id)).replay_view()
        row["replay"] = {
            "bytes": view.nbytes,
            "frames": sum(part.count(b"\n\n") for part in view.parts),
            "seq": view.seq,
        }
        return json_response(row)

    async def changes(self, request: Request) -> Response:
        grant = self.services.auth.require_any(request)
        return sse_response(self._feed(grant))

    async def _feed(self, grant: TokenGrant | None) -> AsyncIterator[bytes]:
        with self.services.changes.subscribe() as subscription:
            yield STREAM_PREAMBLE + _READY
            while True:
                if not await subscription.wait(self.services.config.heartbeat_s):
                    yield HEARTBEAT
                    continue
                # Let a burst collect: one frame per thread per interval, however many events.
                await asyncio.sleep(FEED_INTERVAL_S)
                out = []
                changed = subscription.take()
                if changed.overflowed:  # too many to hold (a client that stopped reading): reload
                    yield _READY
                    continue
                for thread_id in sorted(changed.touched | changed.deleted):
                    if not self.services.auth.may_read(grant, thread_id):
                        continue
                    row = await self._row(thread_id)
                    if row is not None:
                        out.append(named_frame("thread", row))
                    elif thread_id in changed.deleted:
                        out.append(thread_deleted_frame(thread_id))
                if out:
                    yield b"".join(out)
