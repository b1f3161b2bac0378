"""Driving one run: read the agent, store its events in batches, store the run's end.

Two tasks per run. The reader pulls items from the agent into a bounded queue
(``outage_buffer.py``: backpressure on the agent's socket when the disk is slower). The
writer (the run task, :meth:`RunTask.drive`) stores whatever has accumulated as one
append: one write and, with fsync="always", one fsync per batch, so a burst from the
agent is stored at disk speed rather than one fsync per event.

A store outage (``StoreUnavailable``) does not end the run: the writer retries its batch
with backoff (as a repeat, ``expect_seq``: a try that landed is not stored twice, and
the run's lease is taken back first if it lapsed), while the reader goes on filling the
buffer within the run's outage limits. Once the store answers, everything is stored in
order and the subscribers get it. When the outage outlasts the budget (time or bytes)
the run stops reading its agent and ends with a RUN_ERROR ``gateway_store_outage``,
stored after what it holds once the store answers.

A stop cancels only the reader: no append is ever interrupted, and the writer then
stores the run's end: for a client's stop, the events closing what the run left open
(``protocol/closing.py``) and RUN_FINISHED with AG-UI 1.0's cancelled outcome; for a
fault, a RUN_ERROR.

The run task asks the thread's runtime for two things: :meth:`ThreadRuntime.append`,
and after a store outage :meth:`ThreadRuntime.reclaim_lease`. It runs inside the run's
task, which is the runtime's (:meth:`ThreadRuntime.run_started`): once
:meth:`RunTask.drive` returns, the runtime lets the thread go.

What the run records beside the agent's events (the caller's input on the run's
first RUN_STARTED, the caller's snapshots after it) is planned when the run is
admitted (``manager.py``) and put in place here (:meth:`RunTask.records_of`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import (
    REJECTED_EVENT_NAME,
    STOPPED_CODE,
    rejected_event,
    run_error_event,
    run_started_event,
)
from agui_gateway.protocol.closing import OpenParts
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.bad_input import BadInputLog
from agui_gateway.server.runtime.outage_buffer import OutageBuffer, OutagePool
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.store.base import LeaseLost, NewEvent, Source, StoreError, StoreUnavailable, UnencodableEvent
from agui_gateway.store.records import encode_unsequenced
from agui_gateway.upstream.agent_http import CODE_INCOMPLETE
from agui_gateway.upstream.run import AgentEvent, GatewayEvent, UpstreamRun
from agui_gateway.upstream.sse_parser import Malformed

log = logging.getLogger("agui_gateway.server.runs")

CODE_STOPPED = STOPPED_CODE  # a stop's code (RUN_ERROR of a cancellation that was no client's stop)
CODE_GATEWAY_ERROR = "gateway_error"
CODE_STORAGE_ERROR = "gateway_storage_error"  # the store refused the run's events (disk full, I/O error)
CODE_STORE_OUTAGE = "gateway_store_outage"  # the store was away longer than the run's outage budget
# Storing a run's end is retried (the thread's run stays open meanwhile) with these pauses, so
# the gateway recovers by itself once space returns.
STORE_RETRY_FIRST_S = 0.1
STORE_RETRY_MAX_S = 5.0
QUEUE_ITEMS = 128  # upstream items read ahead of the disk, at most, outside a store outage
# A batch is tried again during a store outage after these pauses (short: the run's
# subscribers wait for it; a few tries a second cost Redis nothing once it is back).
OUTAGE_RETRY_FIRST_S = 0.05
OUTAGE_RETRY_MAX_S = 0.5
BATCH_ITEMS = 64  # items stored by one append (one fsync), at most

UpstreamItem = AgentEvent | GatewayEvent


class RunTask:
    """The writer and reader of one run (see the module docstring)."""

    def __init__(
        self,
        thread: ThreadRuntime,
        run: ActiveRun,
        upstream: UpstreamRun,
        metrics: GatewayMetrics,
        bad_input: BadInputLog,
        shutting_down: Callable[[], bool],
        outage_pool: OutagePool,
    ) -> None:
        self.thread = thread
        self.run = run
        self.upstream = upstream
        self._metrics = metrics
        self._bad_input = bad_input
        self._shutting_down = shutting_down  # then a failing store is not waited for
        self._open_parts = OpenParts()  # what the run's stored events left open
        self._buffer = OutageBuffer(outage_pool, QUEUE_ITEMS)

    async def drive(self) -> None:
        run = self.run
        buffer = self._buffer
        # Malformed items never enter the buffer (the reader counts and skips them).
        run.reader = asyncio.create_task(self._read(), name=f"read-{run.run_id}")
        try:
            while batch := await buffer.next_batch(BATCH_ITEMS):
                await self._store(batch)
                buffer.stored(len(batch))
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
        buffer.discard()  # what a failed store left held (nothing after a clean end)
        await self._finish()

    async def _read(self) -> None:
        run = self.run
        try:
            async with self.upstream:  # closes the agent's connection on any exit, a stop included
                async for item in self.upstream:
                    if isinstance(item, Malformed):
                        self._metrics.upstream_malformed.inc()
                        self._bad_input.report(
                            "upstream_malformed", "thread %s run %s: skipped %s", run.thread_id, run.run_id, item.reason
                        )
                        continue
                    if isinstance(item, GatewayEvent) and item.event.get("name") == REJECTED_EVENT_NAME:
                        self._note_rejected(item.event)
                    if not await self._buffer.put(item):
                        self._outage_outlasted(self._buffer.refused or "the outage buffer is full")
                        return
        except asyncio.CancelledError:
            if run.stop_reason is None:  # not a stop of ours (loop shutdown): still end the run
                run.stop_reason = ("the run was cancelled", CODE_STOPPED)
        except Exception as exc:
            log.exception("thread %s run %s: reading the agent failed", run.thread_id, run.run_id)
            if run.stop_reason is None:
                run.stop_reason = (f"the gateway failed reading the agent: {exc!r}", CODE_GATEWAY_ERROR)
        finally:
            self._buffer.close()

    def _outage_outlasted(self, why: str) -> None:
        """The store outage outlasted the run's budget: it stops reading its agent and ends
        with a RUN_ERROR, stored after what it holds once the store answers."""
        run = self.run
        if run.stop_reason is not None:
            return
        log.error("thread %s run %s: the store outage outlasted the run's budget (%s)", run.thread_id, run.run_id, why)
        self._metrics.store_outage_runs_ended.inc()
        message = f"the store was unavailable for longer than the gateway could wait: {why}"
        run.stop_reason = (message, CODE_STORE_OUTAGE)
        if run.reader is not None and run.reader is not asyncio.current_task():
            run.reader.cancel()

    async def _finish(self) -> None:
        run = self.run
        try:
            delay = STORE_RETRY_FIRST_S
            while True:
                try:
                    await self._store_end()
                    break
                except LeaseLost:
                    raise  # another replica (the lease sweep) closes the run now: never ours again
                except StoreError as exc:
                    if self._shutting_down():
                        raise
                    # The run stays the thread's run until its end is stored: subscribers get
                    # that RUN_ERROR, and the thread takes runs again, as soon as space returns.
                    log.warning(
                        "thread %s run %s: its end is not stored yet (%s); retrying", run.thread_id, run.run_id, exc
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, STORE_RETRY_MAX_S)
            if self.upstream.stats.error_code is not None:
                self._metrics.upstream_errors.labels(self.upstream.stats.error_code).inc()
        except Exception:
            # The log keeps the run open; the next start of the gateway closes it (with
            # run leases: whichever replica's sweep finds the lease lapsed).
            log.exception("thread %s run %s: could not store the run's end", run.thread_id, run.run_id)

    async def _store_end(self) -> None:
        run = self.run
        if run.stop_reason is not None:
            message, code = run.stop_reason
            if run.cancelled:  # a client's stop: what the run left open closed, then the cancelled outcome
                open_parts = self._open_parts.closing_events(message)
                closing = self.upstream.cancelling_events(open_parts, run.current_run_id, code)
            else:
                closing = self.upstream.closing_events(message, code)
            await self._store([GatewayEvent(e) for e in closing])
        # Never leave the thread unable to take runs, nor a run unrecorded: one whose
        # RUN_STARTED never got stored (the batch holding it failed) is stored whole,
        # the gateway's RUN_STARTED with the caller's input then this RUN_ERROR. (The run
        # holds the thread: its log has a run open exactly while the run stored no end.)
        if not run.end_stored or run.plan is not None:
            message, code = run.stop_reason or ("the run ended still open", CODE_INCOMPLETE)
            await self._store([GatewayEvent(run_error_event(message, code))])

    async def _store(self, items: list[UpstreamItem]) -> None:
        run = self.run
        plan = run.plan
        batch: list[NewEvent] = []
        for item in items:
            batch.extend(self.records_of(item))
        if not batch:
            return
        try:
            batch = await self._append(batch)
        except BaseException:
            run.plan = plan  # nothing of the batch is stored: the run's RUN_STARTED is still to come
            raise
        for new in batch:  # what is stored, as stored: a stop closes what of it is open
            self._open_parts.feed(new.event)
        if any(new.event.get("type") in ev.TERMINAL_TYPES for new in batch):
            run.end_stored = True  # nothing follows a terminal event (upstream/run.py): the run only ends now

    async def _append(self, batch: list[NewEvent]) -> list[NewEvent]:
        """Store ``batch`` (returns it as stored), riding out a store outage (see the module
        docstring): raises only once the batch is stored, or for another failure, or when the
        process stops with the store still away."""
        buffer = self._buffer
        delay = OUTAGE_RETRY_FIRST_S
        repeat = replaced = False
        while True:
            try:
                if repeat:
                    await self.thread.reclaim_lease(self.run)
                await self.thread.append(batch, self.run.fence, repeat=repeat)
                break
            except UnencodableEvent:
                if replaced:
                    raise
                # Nothing of the batch was stored: store it again with each event that
                # cannot be stored replaced by a record saying so, so no good event is lost.
                batch = [self._storable(new) for new in batch]
                replaced = True
            except StoreUnavailable as exc:
                if self._shutting_down():
                    raise
                self._outage(buffer, exc)
                repeat = True  # the try may have landed, its reply lost: a repeat is recognised
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_RETRY_MAX_S)
        if buffer.outage_since is not None:
            buffer.outage_ended()
            run = self.run
            log.warning("thread %s run %s: the store answers again; storing what it held", run.thread_id, run.run_id)
        return batch

    def _outage(self, buffer: OutageBuffer, exc: StoreUnavailable) -> None:
        run = self.run
        if buffer.outage_began():
            self._metrics.store_outages.inc()
            log.warning(
                "thread %s run %s: the store is unavailable (%s); holding the agent's events for up to %ss",
                run.thread_id,
                run.run_id,
                exc,
                buffer.limits.budget_s,
            )
        if buffer.over_time() and not buffer.closed:  # an agent that is done holds nothing more
            self._outage_outlasted(f"it lasted over {buffer.limits.budget_s} s")

    def _storable(self, new: NewEvent) -> NewEvent:
        try:
            encode_unsequenced(new, 0)
        except UnencodableEvent as exc:
            replacement = rejected_event(f"the event cannot be stored: {exc}", new.event.get("type"))
            self._note_rejected(replacement)
            return NewEvent(replacement, new.run_id, "gateway")
        return new

    def _note_rejected(self, record: dict[str, Any]) -> None:
        run = self.run
        self._metrics.events_rejected.inc()
        self._bad_input.report(
            "event_rejected", "thread %s run %s: agent event rejected: %s", run.thread_id, run.run_id, record["value"]
        )

    def records_of(self, item: UpstreamItem) -> list[NewEvent]:
        """The records one upstream item becomes (see ``manager.py``'s docstring)."""
        run = self.run
        event = item.event
        kind = event.get("type")
        source: Source = "agent" if isinstance(item, AgentEvent) else "gateway"
        if kind == ev.RUN_STARTED and isinstance(event.get("runId"), str) and event["runId"]:
            run.current_run_id = event["runId"]
        plan = run.plan
        if plan is None or kind not in (ev.RUN_STARTED, *ev.TERMINAL_TYPES):
            return [NewEvent(event, run.current_run_id, source)]
        run.plan = None
        snapshots = [NewEvent(extra, run.current_run_id, "gateway") for extra in plan.caller_snapshots]
        if kind == ev.RUN_STARTED:
            return [NewEvent(event, run.current_run_id, source, annotation=plan.annotation), *snapshots]
        # The run ends and its RUN_STARTED was never stored (the batch holding it failed):
        # the gateway's RUN_STARTED keeps the run whole, and the caller's input with it.
        started = run_started_event(run.thread_id, run.run_id)
        return [
            NewEvent(started, run.current_run_id, "gateway", annotation=plan.annotation),
            *snapshots,
            NewEvent(event, run.current_run_id, source),
        ]
