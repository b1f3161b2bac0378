"""Agent runs: start one per thread at most, drive it to the end, stop it on request.

A run is a task owned by the thread's runtime, not by the HTTP request that
started it: the caller may disconnect, the run goes on and every event is
stored. At most one run is open per thread (a second gets :class:`RunConflict`).

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

So a run is one run in every stream: ``RUN_STARTED(input) ... terminal``, the
caller's POST stream included. Logs written before (the gateway's own
``RUN_STARTED(input) · RUN_FINISHED`` run ahead of the agent's) replay as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import REJECTED_EVENT_NAME, rejected_event, run_error_event, run_started_event
from agui_gateway.protocol.history import HistoryConflict, merge_history
from agui_gateway.protocol.lineage import RunPlan, continues, plan_run
from agui_gateway.server.active_run import ActiveRun
from agui_gateway.server.agents import AgentEndpoint
from agui_gateway.server.badinput import BadInputLog
from agui_gateway.server.branches import branch_parent
from agui_gateway.server.config import HistoryMode
from agui_gateway.server.leases import HANDOVER_WAIT_S, acquire_for_run, keep_lease
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.threads import ThreadRuntime
from agui_gateway.store.base import LeaseLost, NewEvent, Source, StoreError, UnencodableEvent
from agui_gateway.store.records import encode_unsequenced
from agui_gateway.upstream.agent_http import CODE_INCOMPLETE, UpstreamTimeouts
from agui_gateway.upstream.run import AgentEvent, GatewayEvent, UpstreamRun
from agui_gateway.upstream.sse_parser import Malformed

log = logging.getLogger("agui_gateway.server.runs")

CODE_STOPPED = "stopped"
CODE_SHUTDOWN = "gateway_shutdown"
CODE_GATEWAY_ERROR = "gateway_error"
CODE_STORAGE_ERROR = "gateway_storage_error"  # the store refused the run's events (disk full, I/O error)
CODE_LEASE_LOST = "lease_lost"
# Storing a run's end is retried (the thread's run stays open meanwhile) with these pauses, so
# the gateway recovers by itself once space returns.
STORE_RETRY_FIRST_S = 0.1
STORE_RETRY_MAX_S = 5.0
QUEUE_ITEMS = 128  # upstream items read ahead of the disk, at most (bounds a run's memory)
BATCH_ITEMS = 64  # items stored by one append (one fsync), at most


class RunConflict(Exception):
    """The thread already has an open run."""


class NoOpenRun(Exception):
    """A stop for a thread without an open run."""


class RunManager:
    def __init__(
        self, metrics: GatewayMetrics, timeouts: UpstreamTimeouts, bad_input: BadInputLog | None = None
    ) -> None:
        self._metrics = metrics
        self._bad_input = bad_input if bad_input is not None else BadInputLog(metrics)
        self._timeouts = timeouts
        self._runs: set[ActiveRun] = set()
        self._shutting_down = False

    async def start(
        self,
        runtime: ThreadRuntime,
        agent: AgentEndpoint,
        run_input: dict[str, Any],
        history: HistoryMode = "client",
    ) -> ActiveRun:
        """Open a run on the thread and start driving it; raise :class:`RunConflict` if one is open.

        Shielded: once the run is claimed it must get its driver (which stores its
        RUN_STARTED and its end), even if the caller disconnects while it opens.
        """
        opening = asyncio.ensure_future(self._open(runtime, agent, run_input, history))
        opening.add_done_callback(_consume_exception)  # the caller may be gone by then
        return await asyncio.shield(opening)

    async def _open(
        self, runtime: ThreadRuntime, agent: AgentEndpoint, run_input: dict[str, Any], history: HistoryMode
    ) -> ActiveRun:
        compactor = await runtime.compactor()
        thread_id, run_id = runtime.thread_id, run_input["runId"]
        run = ActiveRun(thread_id, run_id, agent.name, start_after=compactor.last_seq, current_run_id=run_id)
        await self._claim(runtime, run)
        try:
            if runtime.store.leases is not None:
                await self._take_lease(runtime, run)
            if runtime.log_run_open:  # another replica's run (recovery is off), still open
                raise RunConflict(f"thread {thread_id!r} has a run open in its log")
            if history == "gateway":
                # The thread is the source of truth: the agent gets what a replaying
                # client holds plus the caller's new messages (HistoryConflict: 409).
                stored_messages, _state, _seq = await runtime.snapshot()
                upstream_input = {**run_input, "messages": merge_history(stored_messages, run_input["messages"])}
            else:
                upstream_input = run_input
            # Recorded from what the agent gets: with server-side history, the merge
            # continues the thread by construction, so only the new messages are recorded.
            run.plan = await self._plan(runtime, upstream_input)
            run.start_after = runtime.last_seq
        except (RunConflict, HistoryConflict):
            await _release(runtime, run)
            runtime.release_run(run)
            self._metrics.runs_rejected.inc()
            raise
        except BaseException:
            await _release(runtime, run)
            runtime.release_run(run)
            raise
        upstream = UpstreamRun(
            agent.client,
            agent.url,
            upstream_input,
            timeouts=self._timeouts,
            # A RUN_STARTED the upstream side synthesizes gets the run's annotation
            # like the agent's own would (see _translate).
            run_started_input=None,
        )
        run.task = asyncio.create_task(self._drive(runtime, run, upstream), name=f"run-{thread_id}-{run_id}")
        if run.lease is not None and runtime.store.leases is not None:
            run.keeper = asyncio.create_task(
                keep_lease(
                    runtime.store.leases,
                    run.lease,
                    on_stop=lambda message: self._cancel(run, message, CODE_STOPPED),
                    on_lost=lambda message: self._cancel(run, message, CODE_LEASE_LOST),
                ),
                name=f"lease-{thread_id}-{run_id}",
            )
        self._runs.add(run)
        self._metrics.runs_started.labels(agent.name).inc()
        self._metrics.runs_active.inc()
        runtime.notify_run_changed()
        return run

    async def _claim(self, runtime: ThreadRuntime, run: ActiveRun) -> None:
        """Take the thread for ``run`` in this process, or :class:`RunConflict` while a run holds it.

        A run of this process whose end is stored already only gives the thread (and its
        lease) up still; a client that saw that end may start the next run right then, so
        the start waits for it (:data:`HANDOVER_WAIT_S` at most) instead of refusing.
        """
        waited = False
        while not runtime.claim_run(run):  # claimed before any await that follows: a racing start sees it
            current = runtime.run
            if current is not None and current.ended and not waited:
                waited = True
                self._metrics.run_starts_waited.inc()
                try:
                    await asyncio.wait_for(current.finished.wait(), HANDOVER_WAIT_S)
                except TimeoutError:
                    pass
                else:
                    continue
            self._metrics.runs_rejected.inc()
            raise RunConflict(f"thread {run.thread_id!r} already has a run in progress")

    async def _take_lease(self, runtime: ThreadRuntime, run: ActiveRun) -> None:
        """The thread's run lease for ``run``, or :class:`RunConflict` while another replica's run
        holds it (a lease that is only being given up is waited for: see :func:`acquire_for_run`).

        Holding it, no other replica writes the thread: a run the log still shows open
        was abandoned by a dead replica and is closed first (when recovery is on).
        """
        leases = runtime.store.leases
        assert leases is not None
        run.lease = await acquire_for_run(
            leases, run.thread_id, run.run_id, runtime.recovery_lock, on_wait=self._metrics.run_starts_waited.inc
        )
        if run.lease is None:
            raise RunConflict(f"thread {run.thread_id!r} has a run in progress on another gateway replica")
        await runtime.follow_store(await runtime.store.last_seq(run.thread_id))
        if runtime.log_run_open and runtime.recovers_open_runs:
            await runtime.close_abandoned_run(run.fence)

    async def stop(self, runtime: ThreadRuntime, message: str, code: str = CODE_STOPPED) -> ActiveRun:
        """Cancel the thread's run; returns once its RUN_ERROR is stored.

        A run another replica drives (stores with leases) is asked to stop through its
        lease; this returns once this replica sees the run's end in the log.
        """
        run = runtime.run
        if run is None and runtime.store.leases is not None:
            return await self._stop_remote(runtime, message)
        if run is None:
            raise NoOpenRun(f"thread {runtime.thread_id!r} has no run in progress")
        if run.task is None:
            raise NoOpenRun(f"the run on thread {runtime.thread_id!r} is still starting; retry")
        self._cancel(run, message, code)
        await asyncio.shield(run.finished.wait())
        return run

    async def _stop_remote(self, runtime: ThreadRuntime, message: str) -> ActiveRun:
        leases = runtime.store.leases
        assert leases is not None
        run_id = await leases.request_stop(runtime.thread_id, message)
        if run_id is None:
            raise NoOpenRun(f"thread {runtime.thread_id!r} has no run in progress")
        await runtime.compactor()
        loop = asyncio.get_running_loop()
        # The holder ends the run within a renewal; a dead holder's lease lapses within its ttl.
        deadline = loop.time() + 2 * leases.ttl_s + 5
        await runtime.follow_store(await runtime.store.last_seq(runtime.thread_id))
        while runtime.log_run_open and loop.time() < deadline:
            await runtime.wait_records(runtime.last_seq, min(1.0, max(0.0, deadline - loop.time())))
        if runtime.log_run_open:
            raise NoOpenRun(f"the run on thread {runtime.thread_id!r} did not end in time; retry")
        return ActiveRun(runtime.thread_id, run_id, "", start_after=0, final_seq=runtime.last_seq)

    async def shutdown(self) -> None:
        """Stop every run (each gets a stored RUN_ERROR) and wait for them."""
        self._shutting_down = True
        runs = list(self._runs)
        for run in runs:
            self._cancel(run, "the gateway shut down during the run", CODE_SHUTDOWN)
        await asyncio.gather(*(run.finished.wait() for run in runs))

    @staticmethod
    def _cancel(run: ActiveRun, message: str, code: str) -> None:
        """Close the upstream connection; the run task stores what came and the RUN_ERROR."""
        if run.stop_reason is None and not run.done:
            run.stop_reason = (message, code)
            if run.reader is not None:
                run.reader.cancel()

    # -- the run task ------------------------------------------------------------------
    #
    # Two tasks per run. The reader pulls items from the agent into a bounded queue
    # (backpressure on the agent's socket when the disk is slower). The writer (the run
    # task) stores whatever has accumulated as one append: one write and, with
    # fsync="always", one fsync per batch, so a burst from the agent is stored at disk
    # speed rather than one fsync per event. A stop cancels only the reader: no append is
    # ever interrupted, and the writer then stores the run's end.

    async def _drive(self, runtime: ThreadRuntime, run: ActiveRun, upstream: UpstreamRun) -> None:
        # Malformed items never enter the queue (the reader counts and skips them); None: the reader is done.
        queue: asyncio.Queue[AgentEvent | GatewayEvent | None] = asyncio.Queue()
        space = asyncio.Semaphore(QUEUE_ITEMS)
        run.reader = asyncio.create_task(self._read(run, upstream, queue, space), name=f"read-{run.run_id}")
        try:
            reading = True
            while reading:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < BATCH_ITEMS:
                    batch.append(queue.get_nowait())
                if batch[-1] is None:
                    reading = False
                items = [item for item in batch if item is not None]
                for _ in items:
                    space.release()
                await self._store(runtime, run, items)
        except StoreError as exc:  # disk full, I/O error: nothing of the failed batch is stored
            log.error("thread %s run %s: storing its events failed: %s", run.thread_id, run.run_id, exc)
            if run.stop_reason is None:
                run.stop_reason = (f"storing the run's events failed: {exc}", CODE_STORAGE_ERROR)
            run.reader.cancel()
        except Exception as exc:  # a bug: end the run, keep the gateway up
            log.exception("thread %s run %s failed", run.thread_id, run.run_id)
            if run.stop_reason is None:
                run.stop_reason = (f"the gateway failed during the run: {exc!r}", CODE_GATEWAY_ERROR)
            run.reader.cancel()
        await asyncio.gather(run.reader, return_exceptions=True)
        await self._finish(runtime, run, upstream)

    async def _read(
        self,
        run: ActiveRun,
        upstream: UpstreamRun,
        queue: asyncio.Queue[AgentEvent | GatewayEvent | None],
        space: asyncio.Semaphore,
    ) -> None:
        try:
            async with upstream:  # closes the agent's connection on any exit, a stop included
                async for item in upstream:
                    if isinstance(item, Malformed):
                        self._metrics.upstream_malformed.inc()
                        self._bad_input.report(
                            "upstream_malformed", "thread %s run %s: skipped %s", run.thread_id, run.run_id, item.reason
                        )
                        continue
                    if isinstance(item, GatewayEvent) and item.event.get("name") == REJECTED_EVENT_NAME:
                        self._note_rejected(run, item.event)
                    await space.acquire()
                    queue.put_nowait(item)
        except asyncio.CancelledError:
            if run.stop_reason is None:  # not a stop of ours (loop shutdown): still end the run
                run.stop_reason = ("the run was cancelled", CODE_STOPPED)
        except Exception as exc:
            log.exception("thread %s run %s: reading the agent failed", run.thread_id, run.run_id)
            if run.stop_reason is None:
                run.stop_reason = (f"the gateway failed reading the agent: {exc!r}", CODE_GATEWAY_ERROR)
        finally:
            queue.put_nowait(None)

    async def _finish(self, runtime: ThreadRuntime, run: ActiveRun, upstream: UpstreamRun) -> None:
        try:
            delay = STORE_RETRY_FIRST_S
            while True:
                try:
                    await self._store_end(runtime, run, upstream)
                    break
                except LeaseLost:
                    raise  # another replica (the lease sweep) closes the run now: never ours again
                except StoreError as exc:
                    if self._shutting_down:
                        raise
                    # The run stays the thread's run until its end is stored: subscribers get
                    # that RUN_ERROR, and the thread takes runs again, as soon as space returns.
                    log.warning(
                        "thread %s run %s: its end is not stored yet (%s); retrying", run.thread_id, run.run_id, exc
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, STORE_RETRY_MAX_S)
            if upstream.stats.error_code is not None:
                self._metrics.upstream_errors.labels(upstream.stats.error_code).inc()
        except Exception:
            # The log keeps the run open; the next start of the gateway closes it (with
            # run leases: whichever replica's sweep finds the lease lapsed).
            log.exception("thread %s run %s: could not store the run's end", run.thread_id, run.run_id)
        finally:
            run.final_seq = runtime.last_seq
            await _release(runtime, run)
            runtime.release_run(run)
            run.finished.set()
            self._runs.discard(run)
            self._metrics.runs_active.dec()
            runtime.notify_run_changed()
        try:
            await runtime.save_checkpoint()
        except Exception:
            log.exception("thread %s: writing the checkpoint failed", run.thread_id)

    async def _store_end(self, runtime: ThreadRuntime, run: ActiveRun, upstream: UpstreamRun) -> None:
        if run.stop_reason is not None:
            message, code = run.stop_reason
            closing = upstream.closing_events(message, code)
            await self._store(runtime, run, [GatewayEvent(e) for e in closing])
        # Never leave the thread unable to take runs, nor a run unrecorded: one whose
        # RUN_STARTED never got stored (the batch holding it failed) is stored whole,
        # the gateway's RUN_STARTED with the caller's input then this RUN_ERROR.
        if runtime.log_run_open or run.plan is not None:
            message, code = run.stop_reason or ("the run ended still open", CODE_INCOMPLETE)
            await self._store(runtime, run, [GatewayEvent(run_error_event(message, code))])

    async def _store(self, runtime: ThreadRuntime, run: ActiveRun, items: list[AgentEvent | GatewayEvent]) -> None:
        plan = run.plan
        batch: list[NewEvent] = []
        for item in items:
            batch.extend(self._translate(run, item))
        if not batch:
            return
        try:
            try:
                await runtime.append(batch, run.fence)
            except UnencodableEvent:
                # Nothing of the batch was stored: store it again with each event that
                # cannot be stored replaced by a record saying so, so no good event is lost.
                await runtime.append([self._storable(run, new) for new in batch], run.fence)
        except BaseException:
            run.plan = plan  # nothing of the batch is stored: the run's RUN_STARTED is still to come
            raise
        if any(new.event.get("type") in ev.TERMINAL_TYPES for new in batch):
            run.ended = True  # nothing follows a terminal event (upstream/run.py): the run only ends now

    def _storable(self, run: ActiveRun, new: NewEvent) -> NewEvent:
        try:
            encode_unsequenced(new, 0)
        except UnencodableEvent as exc:
            replacement = rejected_event(f"the event cannot be stored: {exc}", new.event.get("type"))
            self._note_rejected(run, replacement)
            return NewEvent(replacement, new.run_id, "gateway")
        return new

    def _note_rejected(self, run: ActiveRun, record: dict[str, Any]) -> None:
        self._metrics.events_rejected.inc()
        self._bad_input.report(
            "event_rejected", "thread %s run %s: agent event rejected: %s", run.thread_id, run.run_id, record["value"]
        )

    def _translate(self, run: ActiveRun, item: AgentEvent | GatewayEvent) -> list[NewEvent]:
        """The records one upstream item becomes (see the module docstring)."""
        event = item.event
        kind = event.get("type")
        source: Source = "agent" if isinstance(item, AgentEvent) else "gateway"
        if kind == ev.RUN_STARTED and isinstance(event.get("runId"), str) and event["runId"]:
            run.current_run_id = event["runId"]
        plan = run.plan
        if plan is None or kind not in (ev.RUN_STARTED, *ev.TERMINAL_TYPES):
            return [NewEvent(event, run.current_run_id, source)]
        run.plan = None
        extras = [NewEvent(extra, run.current_run_id, "gateway") for extra in plan.extras]
        if kind == ev.RUN_STARTED:
            return [NewEvent(event, run.current_run_id, source, note=plan.note), *extras]
        # The run ends and its RUN_STARTED was never stored (the batch holding it failed):
        # the gateway's RUN_STARTED keeps the run whole, and the caller's input with it.
        started = run_started_event(run.thread_id, run.run_id)
        return [
            NewEvent(started, run.current_run_id, "gateway", note=plan.note),
            *extras,
            NewEvent(event, run.current_run_id, source),
        ]

    async def _plan(self, runtime: ThreadRuntime, run_input: dict[str, Any]) -> RunPlan:
        """What the run records beside the agent's events (see the module docstring)."""
        messages, state, _ = await runtime.snapshot()
        caller = run_input.get("messages") or []
        parent = None
        if not continues(messages, caller):
            parent = await branch_parent(runtime.store, runtime.thread_id, caller)
            self._metrics.branches.inc()
        return plan_run(run_input, messages, state, parent)


async def _release(runtime: ThreadRuntime, run: ActiveRun) -> None:
    """Stop renewing the run's lease and give it up (it lapses by itself if Redis is away)."""
    if run.keeper is not None:
        run.keeper.cancel()
        await asyncio.gather(run.keeper, return_exceptions=True)
    leases, lease = runtime.store.leases, run.lease
    run.lease = None
    if leases is not None and lease is not None:
        try:
            await leases.release(lease)
        except StoreError as exc:
            log.warning("thread %s: releasing the run lease failed (%s); it lapses by itself", run.thread_id, exc)


def _consume_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
