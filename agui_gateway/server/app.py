"""The gateway's HTTP API: ``create_app(config, store=None) -> Starlette``.

Handlers are thin: they parse and authorise, then hand over to the thread
runtimes (:mod:`.threads`), the run manager (:mod:`.runs`) and the log
follower (:mod:`.fanout`). Everything hangs off one :class:`Gateway` object
created here and stored on ``app.state.gateway``; there are no module globals.

Streams (``text/event-stream``), all following the same id rule: a frame has
``id: N`` exactly when a client holding everything up to that frame holds the
effect of every stored event up to seq N.

* ``POST /agents/{agent}/run``: the run's own events (the log after the seq
  before the run), ending with the run; what an ``HttpAgent`` expects.
* ``GET /threads/{thread}/events``: history, then the live tail, forever.
* ``POST /agents/{agent}/connect``: history, then the live tail until the
  thread has no run in progress (a connect must complete, or the official
  client's ``connectAgent`` never resolves and shows the agent as running).

History for a fresh client (no ``Last-Event-ID`` header, no ``?after=``) is the
compacted replay view; with ``Last-Event-ID: N`` or ``?after=N`` it is exactly
the stored events after N (0: all of them, uncompacted).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from agui_gateway.server.auth import AuthError, Authorizer
from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.fanout import Batcher, LogFollower, slices
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.requests import (
    ApiError,
    error_response,
    json_response,
    read_run_input,
    thread_param,
)
from agui_gateway.server.runs import NoOpenRun, RunConflict, RunManager
from agui_gateway.server.sse import HEARTBEAT, STREAM_PREAMBLE, InvalidResumePosition, parse_resume_position
from agui_gateway.server.threads import ThreadRegistry, ThreadRuntime
from agui_gateway.store.base import InvalidThreadId, ThreadStore
from agui_gateway.upstream.client import UpstreamTimeouts

log = logging.getLogger("agui_gateway")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DEMO_AGENT = "demo"
DEMO_PATH = "/demo/agent"


@dataclass
class Gateway:
    """The state of one gateway app."""

    config: GatewayConfig
    store: ThreadStore
    agents: dict[str, str]
    metrics: GatewayMetrics
    threads: ThreadRegistry
    runs: RunManager
    auth: Authorizer
    http: httpx.AsyncClient

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.runs.shutdown()
        await self.http.aclose()
        await self.store.close()


def default_store(config: GatewayConfig) -> ThreadStore:
    if config.redis_url:
        from agui_gateway.store.redis import RedisStore

        return RedisStore(config.redis_url)
    from agui_gateway.store.file import FileStore

    return FileStore(config.data_dir, fsync=config.fsync, fsync_interval_ms=config.fsync_interval_ms)


def demo_agent_url(config: GatewayConfig) -> str:
    """Where the gateway reaches the demo agent it serves itself (over real HTTP)."""
    host = config.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    # The trailing slash: Starlette redirects a mount's bare path with a 307.
    return f"http://{host}:{config.port}{DEMO_PATH}/"


def create_app(config: GatewayConfig, store: ThreadStore | None = None) -> Starlette:
    store = store if store is not None else default_store(config)
    metrics = GatewayMetrics()
    agents = dict(config.agents)
    if config.demo:
        agents.setdefault(DEMO_AGENT, demo_agent_url(config))
    t = config.timeouts
    # The upstream client: no pool limit (each open run holds one streaming connection).
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))
    gateway = Gateway(
        config=config,
        store=store,
        agents=agents,
        metrics=metrics,
        threads=ThreadRegistry(
            store,
            metrics,
            cached_threads=config.cached_threads,
            cache_bytes=config.cache_bytes,
            recover_open_runs=config.recover_open_runs,
        ),
        runs=RunManager(http, metrics, UpstreamTimeouts(connect=t.connect, read=t.read, total=t.total)),
        auth=Authorizer.from_config(config),
        http=http,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    api = _Handlers(gateway)
    routes: list[BaseRoute] = [
        Route("/agents/{agent}/run", api.run, methods=["POST"]),
        Route("/agents/{agent}/connect", api.connect, methods=["POST"]),
        Route("/threads", api.list_threads, methods=["GET"]),
        Route("/threads/{thread}/events", api.events, methods=["GET"]),
        Route("/threads/{thread}/snapshot", api.snapshot, methods=["GET"]),
        Route("/threads/{thread}/log.jsonl", api.log_jsonl, methods=["GET"]),
        Route("/threads/{thread}/stop", api.stop, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    if config.demo:
        from agui_gateway.upstream.demo import create_demo_app

        routes.append(Mount(DEMO_PATH, app=create_demo_app(config.demo_pace)))
    app = Starlette(
        routes=routes,
        middleware=_cors(config),
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            AuthError: _auth_error,
            InvalidThreadId: _invalid_thread,
            404: _not_found,
            405: _method_not_allowed,
            Exception: _internal_error,
        },
    )
    app.state.gateway = gateway
    return app


# What a browser page on another origin needs to call the API: the methods of the
# routes, and the request headers they read (bearer tokens, JSON bodies, resume
# positions). No response header is exposed beyond the CORS-safelisted ones.
CORS_METHODS = ("GET", "POST")
CORS_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")


def _cors(config: GatewayConfig) -> list[Middleware]:
    """Starlette's CORS middleware for the configured origins; none when there are none.

    It sits outside the routes and their error handlers, so a 401 or 404 carries the
    CORS headers too and the page can read the JSON error; preflight requests are
    answered by the middleware itself, before authentication (a browser sends them
    without the Authorization header).
    """
    if not config.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
        )
    ]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.details)


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.message, headers=headers)


async def _invalid_thread(request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, f"no such endpoint: {request.method} {request.url.path}")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(405, f"method {request.method} is not allowed on {request.url.path}")


def _sse(body: AsyncIterator[bytes | memoryview]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


class _Handlers:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # -- runs ------------------------------------------------------------------------

    def _agent_url(self, request: Request) -> tuple[str, str]:
        name = request.path_params["agent"]
        url = self.gw.agents.get(name)
        if url is None:
            raise ApiError(404, f"unknown agent {name!r}")
        return name, url

    async def run(self, request: Request) -> Response:
        agent, url = self._agent_url(request)
        run_input = await read_run_input(request, self.gw.config.max_body_bytes)
        thread_id = run_input["threadId"]
        self.gw.auth.require(request, thread_id, "write")
        runtime = self.gw.threads.get(thread_id)
        try:
            run = await self.gw.runs.start(runtime, agent, url, run_input)
        except RunConflict as exc:
            return error_response(409, str(exc))
        # The caller gets the log from just before the run to the run's last event;
        # the bound keeps a next run (started the moment this one ended) out of it.
        return _sse(
            self._stream(
                runtime,
                run.start_after,
                wait=runtime.wait_activity,
                stop=lambda cursor: run.done and cursor >= (run.final_seq or 0),
                bound=lambda: run.final_seq,
            )
        )

    async def stop(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "write")
        runtime = self.gw.threads.get(thread_id)
        try:
            run = await self.gw.runs.stop(runtime, "the run was stopped by a client (POST /stop)")
        except NoOpenRun as exc:
            return error_response(409, str(exc))
        return json_response({"stopped": True, "runId": run.run_id, "seq": run.final_seq})

    # -- streams -----------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        position = await self._resume_position_within(request, thread_id)
        runtime = self.gw.threads.get(thread_id)
        store = self.gw.store

        def wait(after: int, timeout: float) -> Awaitable[int]:
            return store.wait_for(thread_id, after, timeout)

        return _sse(self._stream(runtime, position, wait=wait))

    async def connect(self, request: Request) -> Response:
        self._agent_url(request)
        run_input = await read_run_input(request, self.gw.config.max_body_bytes)
        thread_id = run_input["threadId"]
        self.gw.auth.require(request, thread_id, "read")
        position = await self._resume_position_within(request, thread_id)
        runtime = self.gw.threads.get(thread_id)

        def settled(cursor: int) -> bool:
            return not runtime.running and not runtime.log_run_open and cursor >= runtime.last_seq

        return _sse(self._stream(runtime, position, wait=runtime.wait_activity, stop=settled))

    async def _resume_position_within(self, request: Request, thread_id: str) -> int | None:
        """The client's resume position, refused when the thread never had that event.

        An id beyond the latest seq comes from another store (wiped, or another
        deployment): waiting for the thread to get there would silently skip
        every event up to it.
        """
        position = _resume_position(request)
        if position:
            latest = await self.gw.store.last_seq(thread_id)
            if position > latest:
                raise ApiError(
                    400,
                    f"cannot resume after event {position}: thread {thread_id!r} has "
                    f"{latest} event(s); reconnect without Last-Event-ID for a fresh replay",
                )
        return position

    async def _stream(
        self,
        runtime: ThreadRuntime,
        position: int | None,
        *,
        wait: Callable[[int, float], Awaitable[int]],
        stop: Callable[[int], bool] | None = None,
        bound: Callable[[], int | None] | None = None,
    ) -> AsyncIterator[bytes | memoryview]:
        """History (the replay view when ``position`` is None), then the log after it."""
        metrics = self.gw.metrics
        runtime.subscribers += 1
        metrics.subscribers.inc()
        follower: LogFollower | None = None
        try:
            yield STREAM_PREAMBLE
            if position is None:
                view = await runtime.replay_view()
                metrics.replays.labels("fresh").inc()
                metrics.replay_bytes.labels("fresh").inc(view.nbytes)
                for chunk in view.chunks():
                    yield chunk
                cursor = view.seq
            else:
                # Opening the thread also closes a run a crash left open (its RUN_ERROR
                # then reaches this client like any stored event).
                await runtime.compactor()
                metrics.replays.labels("resume").inc()
                cursor = position
            follower = LogFollower(
                self.gw.store,
                runtime.thread_id,
                runtime.recent,
                cursor,
                heartbeat_s=self.gw.config.heartbeat_s,
                heartbeat=HEARTBEAT,
                wait=wait,
                stop=stop,
                bound=bound,
            )
            async for chunk in follower.follow():
                yield chunk
        finally:
            runtime.subscribers -= 1
            metrics.subscribers.dec()
            if position is not None and follower is not None:
                metrics.replay_bytes.labels("resume").inc(follower.bytes_before_caught_up)

    # -- reads ---------------------------------------------------------------------------

    async def snapshot(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        runtime = self.gw.threads.get(thread_id)
        messages, state, seq = await runtime.snapshot()
        return json_response({"messages": messages, "state": state, "seq": seq, "running": runtime.running})

    async def list_threads(self, request: Request) -> Response:
        grant = self.gw.auth.require_any(request)
        threads = []
        for info in await self.gw.store.list_threads():
            if not self.gw.auth.may_read(grant, info.thread_id):
                continue
            runtime = self.gw.threads.peek(info.thread_id)
            threads.append(
                {
                    "threadId": info.thread_id,
                    "events": info.events,
                    "bytes": info.bytes,
                    "lastActivity": info.last_activity_ms,
                    "running": runtime is not None and runtime.running,
                }
            )
        return json_response({"threads": threads})

    async def log_jsonl(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        after = _resume_position(request, header=False) or 0
        return StreamingResponse(
            _batched(self.gw.store.read_lines(thread_id, after)), media_type="application/x-ndjson"
        )

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "runs": len(self.gw.threads.active_runs())})

    async def metrics(self, request: Request) -> Response:
        self.gw.auth.require_any(request)
        return Response(self.gw.metrics.render(), media_type=self.gw.metrics.content_type)


def _resume_position(request: Request, header: bool = True) -> int | None:
    try:
        return parse_resume_position(
            request.headers.get("last-event-id") if header else None, request.query_params.get("after")
        )
    except InvalidResumePosition as exc:
        raise ApiError(400, str(exc)) from None


async def _batched(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes | memoryview]:
    batcher = Batcher()
    try:
        async for line in lines:
            full = batcher.add(line)
            if full is not None:
                for piece in slices(full):
                    yield piece
        rest = batcher.flush()
        if rest is not None:
            yield rest
    finally:
        aclose: Any = getattr(lines, "aclose", None)
        if aclose is not None:
            await aclose()
