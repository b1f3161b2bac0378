"""Threads over HTTP: ``GET /threads``, and ``/threads/{thread}/events``, ``/snapshot``,
``/messages``, ``/log.jsonl`` and ``/runs``; ``DELETE /threads/{thread}``.

``DELETE /threads/{thread}`` (a token with ``delete`` access) removes every record of
the thread from the store: 204; 409 ``run_in_progress`` while a run is in progress,
unless ``?stop=1`` (the run is stopped first, its end stored, then the thread deleted);
404 ``thread_not_found`` when the store holds none of it. Open streams on the thread end
with an ``event: thread_deleted`` frame. Afterwards the reads below answer 404
``thread_not_found`` until the id is written again (a thread never written reads as
empty: a watcher may open ``/events`` before the first run).

``/events?turns=N`` is a fresh replay windowed to the messages of the last N runs,
preceded by the CUSTOM event ``agui_gateway.history_window`` (how many messages are
older, the cursor of their page); with a resume position it is ignored (the client
holds its history already). ``/messages?before=M&limit=K`` is the page of messages
older than message M, oldest first, with the cursor of the page before it: pages and
window together are ``/snapshot``'s messages exactly.

``/runs`` lists the runs of the log (see ``protocol.lineage.RunIndex``) with their
parent, status, first and last sequence numbers and figures (start, duration, time to its
first event, records, bytes). ``/events?run=R`` replays the
branch that ends at run R (time travel), compacted as a fresh replay is; its
frames carry no ids (the events after R in the log may belong to another branch,
so a resume position would mean nothing) and the stream ends after it.
``/log.jsonl?compact=1`` is the log compacted as a fresh replay sends it (bare events,
one JSON line each: the form ``agui-gateway compact`` writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.server.errors import BadRequest, ThreadRecreated
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.http.listing import page, parse_list_query, thread_row
from agui_gateway.server.http.requests import (
    page_query,
    requested_run,
    resume_position,
    resume_within,
    stop_flag,
    thread_param,
    window_turns,
)
from agui_gateway.server.http.responses import json_response, ndjson_response, sse_response
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.http.streams import batched, stream_slot
from agui_gateway.server.runtime.branches import branch_events, run_index
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.server.sse import STREAM_PREAMBLE, event_frame


class ThreadHandlers:
    def __init__(self, services: ApiServices) -> None:
        self.services = services

    async def events(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "read")
        await services.threads.refuse_deleted(thread_id)
        branch = requested_run(request)
        turns = window_turns(request)
        if branch is not None:
            if turns is not None:
                raise BadRequest("?run= replays a whole branch: it takes no 'turns'")
            return await _branch_stream(services, await services.threads.current(thread_id), branch)
        resume = await resume_within(request, services.store, thread_id)
        thread = services.threads.of_epoch(thread_id, resume.epoch)
        slot = stream_slot(services, request)
        # A watcher follows forever, except while the process drains (fanout/follower.py: WatcherFollower).
        patience = StorePatience(services.config.store_outage_budget_s)
        body = thread.stream(
            resume.seq,
            services.config.heartbeat_s,
            patience,
            epoch=resume.epoch,
            turns=turns,
            process=services.readiness,
        )
        return sse_response(body, slot.release)

    async def messages(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "read")
        before, limit = page_query(request)
        await services.threads.refuse_deleted(thread_id)
        page = await (await services.threads.current(thread_id)).message_page(before, limit)
        return json_response(page.to_json())

    async def snapshot(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "read")
        await services.threads.refuse_deleted(thread_id)
        thread = await services.threads.current(thread_id)
        messages, state, seq = await thread.conversation()
        # ``seq`` is a position of the incarnation ``epoch``: "EPOCH:SEQ" resumes from it.
        epoch = await thread.current_epoch()
        return json_response(
            {"messages": messages, "state": state, "seq": seq, "epoch": epoch, "running": thread.running}
        )

    async def list_threads(self, request: Request) -> Response:
        services = self.services
        grant = services.auth.require_any(request)
        query = parse_list_query(dict(request.query_params))
        rows = []
        for info in await services.store.list_threads():
            if not services.auth.may_read(grant, info.thread_id):
                continue
            thread = services.threads.peek(info.thread_id)
            if not services.config.recover_open_runs:  # other replicas' runs: only the log tells
                thread = services.threads.get(info.thread_id)
                await thread.ready()
            rows.append(thread_row(info, thread))
        return json_response(page(rows, query))

    async def log_jsonl(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "read")
        position = resume_position(request, header=False)
        await services.threads.refuse_deleted(thread_id)
        if position is not None and position.epoch is not None:  # an id handed out: of this thread?
            head = await services.store.head(thread_id)
            if head is None or head.epoch != position.epoch:
                raise ThreadRecreated.of(thread_id, position.epoch, head.epoch if head is not None else None)
        after = position.seq if position is not None else 0
        thread = await services.threads.current(thread_id)
        await thread.ready()  # recovery before the export
        if request.query_params.get("compact") in ("1", "true"):
            if after:
                raise BadRequest("compact=1 compacts the whole log; it takes no 'after'")
            events = await thread.replay_events()
            lines = [orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in events]
            return Response(b"".join(lines), media_type="application/x-ndjson")
        return ndjson_response(batched(services.store.read_lines(thread_id, after)))

    async def runs(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "read")
        await services.threads.refuse_deleted(thread_id)
        thread = await services.threads.current(thread_id)
        # Recovery first: a run a crash left open is closed before the log is read, so a
        # run listed as running is one in progress (here, or on another replica).
        await thread.ready()
        index = await run_index(services.store, thread_id, figures=True)
        # The runs' seqs are positions of the incarnation ``epoch``.
        epoch = await thread.current_epoch()
        return json_response({"threadId": thread_id, "epoch": epoch, "runs": [info.to_json() for info in index.runs]})

    async def delete(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        services.auth.require(request, thread_id, "delete")
        await services.deletions.delete(thread_id, stop=stop_flag(request))
        return Response(status_code=204)


async def _branch_stream(services: ApiServices, thread: ThreadRuntime, run_id: str) -> Response:
    await thread.ready()
    events = await branch_events(services.store, thread.thread_id, run_id)

    async def body() -> AsyncIterator[bytes | memoryview]:
        yield STREAM_PREAMBLE
        for event in events:
            yield event_frame(event)

    return sse_response(body())
