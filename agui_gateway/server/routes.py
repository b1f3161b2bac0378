"""The HTTP API's endpoints.

Handlers are thin: they parse and authorise, then hand over to the thread
runtimes (:mod:`.threads`), the run manager (:mod:`.runs`) and the stream
bodies (:mod:`.streams`). A refusal is raised as an :mod:`.errors` exception;
the app turns it into the JSON response.

Streams (``text/event-stream``, see :mod:`.streams` for the id rule):

* ``POST /agents/{agent}/run``: the run's own events (the log after the seq
  before the run), ending with the run; what an ``HttpAgent`` expects.
* ``GET /threads/{thread}/events``: history, then the live tail, forever;
  with ``?run=R``, the branch that ends at run R and nothing else
  (:mod:`.history_routes`).
* ``POST /agents/{agent}/connect``: history, then the live tail until the
  thread has no run in progress (a connect must complete, or the official
  client's ``connectAgent`` never resolves and shows the agent as running).

History for a fresh client (no ``Last-Event-ID`` header, no ``?after=``) is the
compacted replay view; with ``Last-Event-ID: N`` or ``?after=N`` it is exactly
the stored events after N (0: all of them, uncompacted).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agui_gateway.protocol.history import HistoryConflict
from agui_gateway.server.agents import AgentEndpoint
from agui_gateway.server.capabilities import gateway_capabilities
from agui_gateway.server.compacted_log import compacted_lines
from agui_gateway.server.errors import BadRequest, BadResumePosition, Conflict, HistoryMismatch, NotFound
from agui_gateway.server.gateway import Gateway
from agui_gateway.server.history_routes import branch_stream, list_runs, requested_run
from agui_gateway.server.listing import InvalidListQuery, page, parse_list_query, thread_row
from agui_gateway.server.requests import read_run_input, resume_position, thread_param
from agui_gateway.server.responses import json_response, ndjson_response, sse_response
from agui_gateway.server.runs import NoOpenRun, RunConflict
from agui_gateway.server.streamcap import StreamsExhausted, StreamSlot
from agui_gateway.server.streams import batched, history_then_live
from agui_gateway.store.base import StoreError

HEALTH_TIMEOUT_S = 2.0  # a store that does not answer a ping within it is reported down


def api_routes(gateway: Gateway) -> list[BaseRoute]:
    api = _Handlers(gateway)
    return [
        Route("/agents/{agent}/run", api.run, methods=["POST"]),
        Route("/agents/{agent}/connect", api.connect, methods=["POST"]),
        Route("/agents/{agent}/capabilities", api.capabilities, methods=["GET"]),
        Route("/threads", api.list_threads, methods=["GET"]),
        Route("/threads/{thread}/events", api.events, methods=["GET"]),
        Route("/threads/{thread}/runs", api.runs_list, methods=["GET"]),
        Route("/threads/{thread}/snapshot", api.snapshot, methods=["GET"]),
        Route("/threads/{thread}/log.jsonl", api.log_jsonl, methods=["GET"]),
        Route("/threads/{thread}/stop", api.stop, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]


class _Handlers:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # -- runs ------------------------------------------------------------------------

    def _agent(self, request: Request) -> AgentEndpoint:
        name = request.path_params["agent"]
        endpoint = self.gw.agents.get(name)
        if endpoint is None:
            raise NotFound(f"unknown agent {name!r}")
        return endpoint

    def _stream_slot(self, request: Request) -> StreamSlot:
        """The token is checked before a body is read or an agent name is looked up (no
        enumeration of agent names without a token); then a stream slot, or a 503."""
        grant = self.gw.auth.require_any(request)
        try:
            return self.gw.streams.acquire(grant.token if grant is not None else None)
        except StreamsExhausted as exc:
            self.gw.metrics.streams_refused.labels(exc.cap).inc()
            raise

    async def run(self, request: Request) -> Response:
        slot = self._stream_slot(request)
        try:
            agent = self._agent(request)
            run_input = await read_run_input(request, self.gw.config.max_body_bytes)
            thread_id = run_input["threadId"]
            self.gw.auth.require(request, thread_id, "write")
            runtime = self.gw.threads.get(thread_id)
            try:
                run = await self.gw.runs.start(runtime, agent, run_input, self.gw.config.options_of(agent.name).history)
            except RunConflict as exc:
                raise Conflict(str(exc)) from exc
            except HistoryConflict as exc:
                raise HistoryMismatch(
                    str(exc), details={"messageId": exc.message_id, "fields": list(exc.fields)}
                ) from exc
        except BaseException:
            slot.release()
            raise
        # The caller gets the log from just before the run to the run's last event;
        # the bound keeps a next run (started the moment this one ended) out of it.
        return sse_response(
            history_then_live(
                self.gw,
                runtime,
                run.start_after,
                wait=runtime.wait_activity,
                stop=lambda cursor: run.done and cursor >= (run.final_seq or 0),
                bound=lambda: run.final_seq,
            ),
            slot.release,
        )

    async def stop(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "write")
        runtime = self.gw.threads.get(thread_id)
        try:
            run = await self.gw.runs.stop(runtime, "the run was stopped by a client (POST /stop)")
        except NoOpenRun as exc:
            raise Conflict(str(exc)) from exc
        return json_response({"stopped": True, "runId": run.run_id, "seq": run.final_seq})

    # -- streams -----------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        branch = requested_run(request)
        if branch is not None:
            return await branch_stream(self.gw.threads.get(thread_id), branch)
        position = await self._resume_position_within(request, thread_id)
        runtime = self.gw.threads.get(thread_id)
        slot = self._stream_slot(request)
        return sse_response(history_then_live(self.gw, runtime, position, wait=runtime.wait_records), slot.release)

    async def connect(self, request: Request) -> Response:
        slot = self._stream_slot(request)
        try:
            self._agent(request)
            run_input = await read_run_input(request, self.gw.config.max_body_bytes)
            thread_id = run_input["threadId"]
            self.gw.auth.require(request, thread_id, "read")
            position = await self._resume_position_within(request, thread_id)
            runtime = self.gw.threads.get(thread_id)
        except BaseException:
            slot.release()
            raise

        def settled(cursor: int) -> bool:
            return not runtime.running and not runtime.log_run_open and cursor >= runtime.last_seq

        return sse_response(
            history_then_live(self.gw, runtime, position, wait=runtime.wait_activity, stop=settled), slot.release
        )

    async def _resume_position_within(self, request: Request, thread_id: str) -> int | None:
        """The client's resume position, refused when the thread never had that event.

        An id beyond the latest seq comes from another store (wiped, or another
        deployment): waiting for the thread to get there would silently skip
        every event up to it.
        """
        position = resume_position(request)
        if position:
            latest = await self.gw.store.last_seq(thread_id)
            if position > latest:
                raise BadResumePosition(
                    f"cannot resume after event {position}: thread {thread_id!r} has "
                    f"{latest} event(s); reconnect without Last-Event-ID for a fresh replay",
                )
        return position

    # -- reads ---------------------------------------------------------------------------

    async def snapshot(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        runtime = self.gw.threads.get(thread_id)
        messages, state, seq = await runtime.snapshot()
        return json_response({"messages": messages, "state": state, "seq": seq, "running": runtime.running})

    async def list_threads(self, request: Request) -> Response:
        grant = self.gw.auth.require_any(request)
        try:
            query = parse_list_query(dict(request.query_params))
        except InvalidListQuery as exc:
            raise BadRequest(str(exc)) from exc
        rows = []
        for info in await self.gw.store.list_threads():
            if not self.gw.auth.may_read(grant, info.thread_id):
                continue
            runtime = self.gw.threads.peek(info.thread_id)
            if not self.gw.config.recover_open_runs:  # other replicas' runs: only the log tells
                runtime = self.gw.threads.get(info.thread_id)
                await runtime.compactor()
            rows.append(thread_row(info, runtime))
        return json_response(page(rows, query))

    async def log_jsonl(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        after = resume_position(request, header=False) or 0
        await self.gw.threads.get(thread_id).compactor()  # recovery before the export
        if request.query_params.get("compact") in ("1", "true"):
            if after:
                raise BadRequest("compact=1 compacts the whole log; it takes no 'after'")
            lines = await compacted_lines(self.gw.threads.get(thread_id))
            return Response(b"".join(lines), media_type="application/x-ndjson")
        return ndjson_response(batched(self.gw.store.read_lines(thread_id, after)))

    async def capabilities(self, request: Request) -> Response:
        self.gw.auth.require_any(request)
        agent = self._agent(request)
        return json_response(gateway_capabilities(agent, self.gw.config.options_of(agent.name)))

    async def runs_list(self, request: Request) -> Response:
        thread_id = thread_param(request)
        self.gw.auth.require(request, thread_id, "read")
        return await list_runs(self.gw.threads.get(thread_id))

    async def healthz(self, request: Request) -> Response:
        runs = len(self.gw.threads.active_runs())
        try:
            await asyncio.wait_for(self.gw.store.ping(), HEALTH_TIMEOUT_S)
        except (StoreError, TimeoutError) as exc:
            body = {"status": "degraded", "store": "down", "error": str(exc) or "timeout", "runs": runs}
            return json_response(body, status=503)
        return json_response({"status": "ok", "store": "up", "runs": runs})

    async def metrics(self, request: Request) -> Response:
        self.gw.auth.require_any(request)
        return Response(self.gw.metrics.render(), media_type=self.gw.metrics.content_type)
