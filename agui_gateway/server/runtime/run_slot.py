"""The run slot of one thread in one process: :class:`RunSlot`, at most one run open at a time.

A :class:`~.thread.ThreadRuntime` owns one and hands it the run manager's operations (see the
runtime's "runs" and "recovery" sections). The slot holds its own state: the run this process
has open on the thread and, on a store shared by replicas, the run's lease; it closes runs
the log shows open that no one drives (through :class:`~.recovery.Recovery`), never one of
its own. What it needs of the thread's log (readiness, the conversation a run continues,
other replicas' records, the run state the log shows, whether the thread is being deleted)
it asks of the :class:`RunLog` it is given per call, the runtime itself, which it never
keeps: a runtime that its parts point back to is a reference cycle
(``tests/server/runtime/test_bounded_memory.py``).

The runtime calls in, the slot answers through that argument while the runtime's call is
still on the stack; the run's task (:meth:`RunLog.driven`) is the runtime's too, so that the
run task's appends do not leave the runtime and come back (``scripts/module_path.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple, Protocol

from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.server.errors import NoRunInProgress, NotTheOpenRun, RunInProgress
from agui_gateway.server.fanout.follower import ThreadState, wait_for_records
from agui_gateway.server.fanout.recent import RecentFrames
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.leases import HANDOVER_WAIT_S, acquire_for_run, keep_lease, release_run_lease
from agui_gateway.server.runtime.recovery import Recovery
from agui_gateway.server.runtime.replay import ReplayState
from agui_gateway.store.base import LeaseLost, ThreadStore
from agui_gateway.store.lease import RunLeases

logger = logging.getLogger("agui_gateway.server.runtime.thread")  # the runtime's logger, as before the split

Drive = Callable[[], Awaitable[None]]
Released = Callable[[ActiveRun], None]


class Conversation(NamedTuple):
    """What a client replaying the thread holds: its messages and state, up to ``seq``."""

    messages: list[dict[str, Any]]
    state: Any
    seq: int


class RunLog(Protocol):
    """What the run slot reads of its thread's log, as this process knows it (the runtime)."""

    deleting: bool  # no run is admitted while the thread is being deleted
    recent: RecentFrames  # the frames of the latest records, and the tail that waits for more
    tail: ThreadTail

    @property
    def last_seq(self) -> int: ...

    @property
    def log_run_open(self) -> bool: ...

    async def ready(self) -> SnapshotCompactor: ...

    async def conversation(self) -> Conversation: ...

    async def take_in(self, latest: int) -> None: ...

    def driven(self, run: ActiveRun, drive: Drive, on_released: Released) -> Coroutine[Any, Any, None]: ...


class RunSlot:
    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        replay: ReplayState,
        state: ThreadState,
        recovery: Recovery,
        *,
        recover_open_runs: bool,
        on_change: Callable[[str], None] | None,
    ) -> None:
        self.thread_id = thread_id
        self._store = store
        self._replay = replay
        self._state = state  # its run_here follows :attr:`run`
        self._recovery = recovery  # closes runs a crash left open, never one of this slot's
        self._recover_open_runs = recover_open_runs
        # The run state changed: waiting streams look again, the thread list is told (the
        # runtime announces through it too).
        self.announce = _run_change_notice(state, thread_id, on_change)
        self.run: ActiveRun | None = None

    def running(self) -> bool:
        """Whether a run of this process holds the thread (what a recovery must not cut off)."""
        return self.run is not None

    async def open_run(
        self,
        log: RunLog,
        run: ActiveRun,
        prepare: Callable[[Conversation], Awaitable[Drive]],
        *,
        on_wait: Callable[[], None],
        on_stop: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_released: Released,
    ) -> None:
        """:meth:`admit` ``run``, have ``prepare`` make its driver from the conversation it
        continues, then drive it (:meth:`run_started`). When admitting or preparing fails
        (:class:`RunInProgress`, a history conflict), the thread is given up again
        (:meth:`dismiss`) before the error goes on."""
        conversation = await self.admit(log, run, on_wait)
        try:
            drive = await prepare(conversation)
        except BaseException:
            await self.dismiss(run)
            raise
        self.run_started(log, run, drive, on_stop=on_stop, on_lost=on_lost, on_released=on_released)

    async def admit(self, log: RunLog, run: ActiveRun, on_wait: Callable[[], None]) -> Conversation:
        """Make ``run`` the thread's run and return the conversation it continues, or raise
        :class:`RunInProgress`.

        The thread is claimed in this process first (a run of ours whose end is stored
        only gives the thread up still: waited for, :data:`HANDOVER_WAIT_S` at most);
        on a store shared by replicas the run then takes the thread's lease (see
        :func:`~.leases.acquire_for_run`), and a run the log still shows open was
        abandoned by a dead replica and is closed first (when recovery is on).
        ``on_wait`` is called when the start had to wait. The caller's stream starts
        after the conversation's seq (``run.start_after``).
        """
        compactor = await log.ready()
        run.start_after = compactor.last_seq
        await self._claim(run, on_wait, log.deleting)
        try:
            if self._store.leases is not None:
                await self._take_lease(log, self._store.leases, run, on_wait)
            if log.log_run_open:  # another replica's run (recovery is off), still open
                raise RunInProgress(f"thread {self.thread_id!r} has a run open in its log")
            conversation = await log.conversation()
        except BaseException:
            await self.dismiss(run)
            raise
        run.start_after = conversation.seq
        return conversation

    async def _claim(self, run: ActiveRun, on_wait: Callable[[], None], deleting: bool) -> None:
        waited = False
        # Claimed before any await that follows (no await between the check and the
        # claim): of two racing starts exactly one gets the thread.
        while self.run is not None:
            current = self.run
            if current.end_stored and not waited:
                waited = True
                on_wait()
                try:
                    await asyncio.wait_for(current.released.wait(), HANDOVER_WAIT_S)
                except TimeoutError:
                    pass
                else:
                    continue
            raise RunInProgress(f"thread {run.thread_id!r} already has a run in progress")
        if deleting:
            raise RunInProgress(f"thread {run.thread_id!r} is being deleted")
        self.run = run
        self._state.run_here = True

    async def _take_lease(self, log: RunLog, leases: RunLeases, run: ActiveRun, on_wait: Callable[[], None]) -> None:
        run.lease = await acquire_for_run(leases, run.thread_id, run.run_id, self._recovery.lock, on_wait=on_wait)
        if run.lease is None:
            raise RunInProgress(f"thread {run.thread_id!r} has a run in progress on another gateway replica")
        await log.take_in(await self._store.last_seq(run.thread_id))
        if log.log_run_open and self._recover_open_runs:
            await self.close_abandoned_run(log, run.fence)

    async def recover_after_restart(self, log: RunLog) -> bool:
        """Close the run this replica's previous process left open on the thread.

        Its lease is still live, recorded under this replica's id: taken over, not waited
        for, as the process that held it is gone (this one is that replica, restarted).
        Returns whether a RUN_ERROR was stored.
        """
        compactor = await log.ready()
        return await self._recovery.close_leased(compactor, self.running, take_over=True)

    async def close_abandoned_run(self, log: RunLog, fence: int | None = None) -> bool:
        """Close a run the log shows open that no live replica drives (the sweep, a new run:
        :meth:`Recovery.close_abandoned`, ``fence`` the new run's lease)."""
        compactor = await log.ready()
        return await self._recovery.close_abandoned(compactor, self.running, fence)

    async def reclaim_lease(self, run: ActiveRun) -> None:
        """After a store outage, before the run appends what it held back: its lease held
        again, though it may have lapsed meanwhile (:class:`LeaseLost`: the thread was
        taken since, by a recovery or another run)."""
        leases, lease = self._store.leases, run.lease
        if leases is not None and lease is not None and not await leases.reclaim(lease):
            raise LeaseLost(f"the run lease of thread {self.thread_id!r} was taken during the store outage")

    def run_started(
        self,
        log: RunLog,
        run: ActiveRun,
        drive: Drive,
        *,
        on_stop: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_released: Released,
    ) -> None:
        """The admitted run is driven now: ``drive`` (its :class:`~.run_task.RunTask`'s, which
        appends through the runtime's ``append``) runs as the run's task (:meth:`RunLog.driven`),
        which lets the thread go after it (:meth:`run_ended`, ``on_released`` then). Its lease
        is renewed while it streams (``on_stop``: another replica asked it to stop;
        ``on_lost``: the lease is gone), and subscribers waiting on the run state wake."""
        run.task = asyncio.create_task(log.driven(run, drive, on_released), name=f"run-{run.thread_id}-{run.run_id}")
        leases = self._store.leases
        if run.lease is not None and leases is not None:
            run.keeper = asyncio.create_task(
                keep_lease(leases, run.lease, on_stop=on_stop, on_lost=on_lost),
                name=f"lease-{run.thread_id}-{run.run_id}",
            )
        self.announce()

    async def dismiss(self, run: ActiveRun) -> None:
        """Give the thread up: the run's lease (no longer renewed) and its claim here."""
        await release_run_lease(self._store.leases, run)
        if self.run is run:
            self.run = None
            self._state.run_here = False

    async def run_ended(self, log: RunLog, run: ActiveRun, on_released: Released) -> None:
        """After the run's end is stored (or given up on): let the thread go (``on_released``
        then), wake whoever waits on the run state, and save the checkpoint of what the run
        folded."""
        try:
            run.final_seq = log.last_seq
            await self.dismiss(run)
            run.released.set()
        finally:
            on_released(run)
            self.announce()
        try:
            await self._replay.save_checkpoint()
        except Exception:
            logger.exception("thread %s: writing the checkpoint failed", run.thread_id)

    async def stop_remote_run(self, log: RunLog, message: str, only_run: str | None = None) -> ActiveRun:
        """Ask the replica whose lease holds the thread to stop its run (only if it is
        ``only_run``, when given); returns once this replica sees the run's end in the log
        (:class:`NoRunInProgress` when there is none, :class:`NotTheOpenRun` for another)."""
        leases = self._store.leases
        assert leases is not None
        run_id = await leases.request_stop(self.thread_id, message, only_run)
        if run_id is None:
            raise NoRunInProgress(f"thread {self.thread_id!r} has no run in progress")
        if only_run is not None and run_id != only_run:
            raise NotTheOpenRun.of(self.thread_id, only_run, run_id)
        await log.ready()
        loop = asyncio.get_running_loop()
        # The holder ends the run within a renewal; a dead holder's lease lapses within its ttl.
        deadline = loop.time() + 2 * leases.ttl_s + 5
        await log.take_in(await self._store.last_seq(self.thread_id))
        while log.log_run_open and loop.time() < deadline:
            await wait_for_records(log.tail, log.recent, log.last_seq, min(1.0, max(0.0, deadline - loop.time())))
        if log.log_run_open:
            raise NoRunInProgress(f"the run on thread {self.thread_id!r} did not end in time; retry")
        stopped = ActiveRun(self.thread_id, run_id, "", start_after=0, final_seq=log.last_seq)
        stopped.released.set()
        return stopped


def _run_change_notice(
    state: ThreadState, thread_id: str, on_change: Callable[[str], None] | None
) -> Callable[[], None]:
    """:attr:`RunSlot.announce`: a function of its own, holding neither the slot nor the runtime."""

    def announce() -> None:
        state.announce_run_change()
        if on_change is not None:
            on_change(thread_id)

    return announce
