"""Runs over HTTP: ``POST /agents/{agent}/run``, ``POST /agents/{agent}/connect``,
``POST /threads/{thread}/stop`` (``?runId=R``: only if R is the open run, else 409)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.protocol.builders import run_error_event
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.http.agents import agent_of
from agui_gateway.server.http.requests import (
    connect_turns,
    read_run_input,
    resume_within,
    stop_run_id,
    thread_param,
)
from agui_gateway.server.http.responses import json_response, sse_response
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.http.stream_slots import StreamSlot
from agui_gateway.server.http.streams import stream_slot
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.run_task import CODE_STORE_OUTAGE
from agui_gateway.server.sse import event_frame


def caller_lost_frame(run: ActiveRun, message: str) -> bytes:
    """What a run's caller gets when the store stays away longer than its stream waits: a
    RUN_ERROR (the one the run could not store, when it has one), without an id as it is
    not in the log, so an unmodified AG-UI client never sees its stream end without a
    terminal event."""
    reason, code = run.stop_reason or (f"the store is unavailable: {message}", CODE_STORE_OUTAGE)
    return event_frame(run_error_event(reason, code))


class RunHandlers:
    def __init__(self, services: ApiServices) -> None:
        self.services = services

    async def run(self, request: Request) -> Response:
        services = self.services
        slot = stream_slot(services, request)
        try:
            agent = agent_of(services, request)
            run_input = await read_run_input(request, services.config.max_body_bytes)
            thread_id = run_input["threadId"]
            services.auth.require(request, thread_id, "write")
            # The run continues the incarnation the store holds (not one deleted elsewhere).
            thread = await services.threads.current(thread_id, writing=True)
            history = services.config.options_of(agent.name).history
            run = await services.runs.start(thread, agent, run_input, history)
        except BaseException:
            slot.release()
            raise
        # The caller gets the log from just before the run to the run's last event. Through
        # a store outage it waits while the run goes on (see fanout/store_patience.py).
        patience = StorePatience(
            services.config.store_outage_budget_s,
            holding=lambda: not run.is_released,
            budget=lambda: run.end_stored,
        )
        body = thread.stream(
            run.start_after,
            services.config.heartbeat_s,
            patience,
            caller_of=run,
            lost=lambda message: caller_lost_frame(run, message),
        )
        return sse_response(body, slot.release)

    async def stop(self, request: Request) -> Response:
        services = self.services
        thread_id = thread_param(request)
        run_id = stop_run_id(request)
        services.auth.require(request, thread_id, "write")
        thread = await services.threads.current(thread_id, writing=True)
        run = await services.runs.stop(thread, "the run was stopped by a client (POST /stop)", run_id)
        return json_response({"stopped": True, "runId": run.run_id, "seq": run.final_seq, "epoch": thread.epoch})

    async def connect(self, request: Request) -> Response:
        services = self.services
        slot: StreamSlot = stream_slot(services, request)
        try:
            agent_of(services, request)
            run_input = await read_run_input(request, services.config.max_body_bytes)
            thread_id = run_input["threadId"]
            services.auth.require(request, thread_id, "read")
            turns = connect_turns(run_input)  # forwardedProps.aguiGateway.turns: a windowed replay
            resume = await resume_within(request, services.store, thread_id)
            thread = services.threads.of_epoch(thread_id, resume.epoch)
        except BaseException:
            slot.release()
            raise
        patience = StorePatience(services.config.store_outage_budget_s)
        body = thread.stream(
            resume.seq,
            services.config.heartbeat_s,
            patience,
            epoch=resume.epoch,
            turns=turns,
            until_settled=True,
        )
        return sse_response(body, slot.release)
