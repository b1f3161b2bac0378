"""Agent runs: start one per thread at most, drive it to the end, stop it on request.

A run is a task (:class:`~.run_task.RunTask`) owned by the run manager, not by the
HTTP request that started it: the caller may disconnect, the run goes on and every
event is stored. At most one run is open per thread (a second gets
:class:`~agui_gateway.server.errors.RunInProgress`). The manager works on the thread
only through :class:`~.thread.ThreadRuntime`'s run operations.

Recording what the caller holds
-------------------------------
A client sends its whole conversation (and its state) in ``RunAgentInput``; the
new user message (or a frontend tool's result, or a state the caller set) is
only there. Most agents do not echo it, so a replay of the log alone would lose
it. When the run is accepted the gateway plans what to record
(:func:`agui_gateway.protocol.lineage.plan_run`: the new messages, whether the
run continues the thread or branches, and from which run) and records it with
the run's own first RUN_STARTED, whoever sends it (the agent, or the upstream
client that synthesizes one for an agent that fails or never sends one):

* the RUN_STARTED record carries the annotation (envelope field ``gateway``)
  that every served stream merges into the event: ``input`` with the new
  messages (and ``resume``), ``parentRunId`` on a branch; the stored event
  itself stays exactly as the agent sent it;
* gateway events right after it: a MESSAGES_SNAPSHOT of the caller's messages
  on a branch or a run resuming interrupts, a STATE_SNAPSHOT of the caller's state when it differs from the
  thread's (or on a branch). The caller already holds both: they change
  nothing for it, and bring every other client to where the caller is.

A caller holding a *window* (it opened the thread with its latest turns, ``?turns=N``,
and sends only those messages, maybe with some older pages) continues the thread:
:func:`~agui_gateway.protocol.lineage.window_conversation` puts the stored messages
before its first one back in front, and that full conversation is what the agent gets
and what the run is planned from (so it is no branch, as long as the suffix is
unchanged). A caller's history that no frame of the official client can record is
refused (:class:`~agui_gateway.protocol.lineage.HistoryTooLarge`, 413).

So a run is one run in every stream: ``RUN_STARTED(input) ... terminal``, the
caller's POST stream included. Logs written before (the gateway's own
``RUN_STARTED(input) · RUN_FINISHED`` run ahead of the agent's) replay as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from agui_gateway.protocol.history import HistoryConflict, merge_history
from agui_gateway.protocol.lineage import HistoryTooLarge, RunPlan, continues, plan_run, window_conversation
from agui_gateway.server.config import GatewayConfig, HistoryMode
from agui_gateway.server.errors import Draining, NoRunInProgress, NotTheOpenRun, RunInProgress
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.bad_input import BadInputLog
from agui_gateway.server.runtime.outage_buffer import OutageLimits, OutagePool
from agui_gateway.server.runtime.run_slot import Conversation
from agui_gateway.server.runtime.run_task import CODE_STOPPED, RunTask
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.upstream.agent_http import UpstreamTimeouts
from agui_gateway.upstream.agents import AgentEndpoint
from agui_gateway.upstream.run import UpstreamRun

CODE_SHUTDOWN = "gateway_shutdown"
CODE_LEASE_LOST = "lease_lost"


class RunManager:
    def __init__(
        self,
        metrics: GatewayMetrics,
        timeouts: UpstreamTimeouts,
        bad_input: BadInputLog | None = None,
        outage_limits: OutageLimits | None = None,
    ) -> None:
        self._metrics = metrics
        # What the runs of this process hold during a store outage, all together (run_task.py).
        self._outage_pool = OutagePool(outage_limits or OutageLimits.of(GatewayConfig()), metrics)
        self._bad_input = bad_input if bad_input is not None else BadInputLog(metrics)
        self._timeouts = timeouts
        self._runs: set[ActiveRun] = set()
        self._shutting_down = False
        self._draining = False  # the process is shutting down: no new run starts here

    async def start(
        self,
        thread: ThreadRuntime,
        agent: AgentEndpoint,
        run_input: dict[str, Any],
        history: HistoryMode = "client",
    ) -> ActiveRun:
        """Open a run on the thread and start driving it; :class:`RunInProgress` if one is open,
        :class:`HistoryConflict` when server-side history meets a rewritten message.

        Shielded: once the run is admitted it must get its driver (which stores its
        RUN_STARTED and its end), even if the caller disconnects while it opens.
        """
        if self._draining:
            raise Draining("the gateway is shutting down; start the run again (another replica takes it)")
        opening = asyncio.ensure_future(self._open(thread, agent, run_input, history))
        opening.add_done_callback(_consume_exception)  # the caller may be gone by then
        return await asyncio.shield(opening)

    async def _open(
        self, thread: ThreadRuntime, agent: AgentEndpoint, run_input: dict[str, Any], history: HistoryMode
    ) -> ActiveRun:
        run_id = run_input["runId"]
        run = ActiveRun(thread.thread_id, run_id, agent.name, current_run_id=run_id)

        async def prepare(conversation: Conversation) -> Callable[[], Awaitable[None]]:
            """The admitted run's driver, from the conversation it continues."""
            try:
                if history == "gateway":
                    # The thread is the source of truth: the agent gets what a replaying
                    # client holds plus the caller's new messages (HistoryConflict: 409).
                    merged = merge_history(conversation.messages, run_input["messages"])
                    upstream_input = {**run_input, "messages": merged}
                else:
                    # A caller holding a window gets the older messages put back in front.
                    full = window_conversation(conversation.messages, run_input["messages"])
                    windowed = len(full) != len(run_input["messages"])
                    upstream_input = {**run_input, "messages": full} if windowed else run_input
                # Recorded from what the agent gets: with server-side history, the merge
                # continues the thread by construction, so only the new messages are recorded.
                run.plan = await self._plan(thread, conversation, upstream_input)
            except (HistoryConflict, HistoryTooLarge):
                self._metrics.runs_rejected.inc()
                raise
            # A RUN_STARTED the upstream side synthesizes gets the run's annotation like the
            # agent's own would (see RunTask.records_of).
            upstream = UpstreamRun(
                agent.client, agent.url, upstream_input, timeouts=self._timeouts, run_started_input=None
            )
            task = RunTask(
                thread,
                run,
                upstream,
                self._metrics,
                self._bad_input,
                shutting_down=lambda: self._shutting_down,
                outage_pool=self._outage_pool,
            )
            self._runs.add(run)
            self._metrics.runs_started.labels(agent.name).inc()
            self._metrics.runs_active.inc()
            return task.drive

        try:
            await thread.open_run(
                run,
                prepare,
                on_wait=self._metrics.run_starts_waited.inc,
                on_stop=lambda message: self._cancel(run, message, CODE_STOPPED, cancelled=True),
                on_lost=lambda message: self._cancel(run, message, CODE_LEASE_LOST),
                on_released=self._released,
            )
        except RunInProgress:
            self._metrics.runs_rejected.inc()
            raise
        return run

    def _released(self, run: ActiveRun) -> None:
        self._runs.discard(run)
        self._metrics.runs_active.dec()

    async def _plan(self, thread: ThreadRuntime, conversation: Conversation, run_input: dict[str, Any]) -> RunPlan:
        """What the run records beside the agent's events (see the module docstring)."""
        caller = run_input.get("messages") or []
        parent = None
        if not continues(conversation.messages, caller):
            parent = await thread.branch_parent(caller)
            self._metrics.branches.inc()
        return plan_run(run_input, conversation.messages, conversation.state, parent)

    async def stop(self, thread: ThreadRuntime, message: str, run_id: str | None = None) -> ActiveRun:
        """Stop the thread's run (only if it is ``run_id``, when given); returns once its
        end is stored: what it left open closed, then RUN_FINISHED with the cancelled outcome.

        A run another replica drives (stores with leases) is asked to stop through its
        lease; this returns once this replica sees the run's end in the log.
        """
        run = thread.run
        if run is None and thread.shared_by_replicas:
            return await thread.stop_remote_run(message, run_id)
        if run is None:
            raise NoRunInProgress(f"thread {thread.thread_id!r} has no run in progress")
        if run_id is not None and run_id not in (run.run_id, run.current_run_id):
            raise NotTheOpenRun.of(thread.thread_id, run_id, run.run_id)
        if run.task is None:
            raise NoRunInProgress(f"the run on thread {thread.thread_id!r} is still starting; retry")
        self._cancel(run, message, CODE_STOPPED, cancelled=True)
        await asyncio.shield(run.released.wait())
        return run

    def refuse_new_runs(self) -> None:
        """From now on a run start is refused with :class:`Draining` (a 503 with Retry-After)."""
        self._draining = True

    async def wait_for_runs(self, timeout: float, give_up: asyncio.Event) -> bool:
        """Until every run of this process has ended, ``timeout`` passed or ``give_up`` is set;
        whether they all ended."""
        runs = list(self._runs)

        async def all_released() -> None:
            for run in runs:
                await run.released.wait()

        # One task rather than a gather: a gather cancelled before its waits end logs
        # "exception was never retrieved" (its CancelledError) at every timed-out drain.
        ending = asyncio.ensure_future(all_released())
        giving_up = asyncio.ensure_future(give_up.wait())
        try:
            await asyncio.wait((ending, giving_up), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            giving_up.cancel()
        ended = ending.done()
        ending.cancel()
        return ended and not self._runs

    async def shutdown(self) -> None:
        """Stop every run (each gets a stored RUN_ERROR) and wait for them."""
        self._shutting_down = True
        runs = list(self._runs)
        for run in runs:
            self._cancel(run, "the gateway shut down during the run", CODE_SHUTDOWN)
        await asyncio.gather(*(run.released.wait() for run in runs))

    @staticmethod
    def _cancel(run: ActiveRun, message: str, code: str, *, cancelled: bool = False) -> None:
        """Close the upstream connection; the run task stores what came and the run's end
        (``cancelled``: a client's stop, AG-UI's cancelled outcome; otherwise a RUN_ERROR)."""
        if run.stop_reason is None and not run.is_released:
            run.stop_reason = (message, code)
            run.cancelled = cancelled
            if run.reader is not None:
                run.reader.cancel()


def _consume_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
