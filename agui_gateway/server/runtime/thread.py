"""One thread in one gateway process: :class:`ThreadRuntime`, the seam between runs and reads.

A :class:`ThreadRuntime` owns, for one thread:

* its replay state (:class:`~.replay.ReplayState`: the compactor, the checkpoint, the
  encoded replay and the recent frames), made ready once per process by
  :meth:`ThreadRuntime.ready` (single flight: concurrent first readers share one
  build) which also closes a run a crash left open (:class:`~.recovery.Recovery`)
  before anyone can read the thread;
* its run slot (:class:`~.run_slot.RunSlot`: the run this process has open on the thread,
  one at most, and its lease) and the count of open streams;
* the live tail (:class:`~agui_gateway.server.fanout.tail.ThreadTail`): the one waiter
  on the store for the thread, which takes other replicas' records in
  (:meth:`ThreadRuntime.take_in`) before it wakes the subscribers.

Runs meet the thread in a handful of named operations (the "runs" section below, carried
out by the run slot, ``run_slot.py``): the manager opens a run
(:meth:`~ThreadRuntime.open_run`), the run task stores its events
(:meth:`~ThreadRuntime.append`: the store append and the compactor update as one task that a
cancelled caller cannot interrupt halfway), and a run another replica drives is stopped with
:meth:`~ThreadRuntime.stop_remote_run`. Reads meet it in one operation per stream,
:meth:`~ThreadRuntime.stream` (``stream.py``: history from the client's position, then the
follower, ``fanout/follower.py``, which reads :attr:`~ThreadRuntime.state` and never calls
back). Neither touches the store or the runtime's fields; the parts hold no reference to the
runtime (it is handed to them per call), so a runtime is never a reference cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from agui_gateway.protocol.compaction import MessagePage, SnapshotCompactor
from agui_gateway.protocol.lineage import Parent
from agui_gateway.server.fanout.follower import Draining, ThreadState
from agui_gateway.server.fanout.recent import RecentFrames
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.branches import branch_parent
from agui_gateway.server.runtime.recovery import Recovery
from agui_gateway.server.runtime.replay import ReplayBytes, ReplayState, ReplayView
from agui_gateway.server.runtime.run_slot import Conversation, RunSlot
from agui_gateway.server.runtime.stream import thread_stream
from agui_gateway.store.base import NewEvent, StoredRecord, ThreadDeleted, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.thread")
_T = TypeVar("_T")


class ThreadRuntime:
    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        metrics: GatewayMetrics,
        *,
        recover_open_runs: bool = True,
        on_change: Callable[[str], None] | None = None,
        on_deleted: Callable[[ThreadRuntime], None] | None = None,
        replay_bytes: ReplayBytes | None = None,
    ) -> None:
        self.thread_id = thread_id
        self._on_deleted = on_deleted  # told when the tail sees the thread deleted elsewhere
        self.store = store
        self._on_change = on_change  # told of every append and run start/end (the thread list feed)
        self._metrics = metrics
        self._recover_open_runs = recover_open_runs
        self._replay = ReplayState(thread_id, store, metrics, replay_bytes)
        self._compactor: SnapshotCompactor | None = None  # the replay state's, once ready
        # The encoded frames of the latest records, shared by the live subscribers.
        self.recent: RecentFrames = self._replay.recent
        # Told through a function of its own, not this runtime's method: a runtime that its parts
        # point back to is a reference cycle, freed only by the rare cyclic collection.
        self._stored = _stored_notice(thread_id, on_change)
        self._recovery = Recovery(self._replay, store.leases, metrics, on_stored=self._stored)
        self._building: asyncio.Task[SnapshotCompactor] | None = None
        # What the thread's streams read to know when they are complete (see fanout/follower.py).
        self.state = ThreadState()
        # Set by the registry while the thread is being deleted: no run is admitted meanwhile
        # (its first append would create the thread again under the delete).
        self.deleting = False
        # The run this process has open on the thread, and its lease (see run_slot.py).
        self._slot = RunSlot(
            thread_id,
            store,
            self._replay,
            self.state,
            self._recovery,
            recover_open_runs=recover_open_runs,
            on_change=on_change,
        )
        self._announce_run_change = self._slot.announce
        self._subscribers = 0
        # The one waiter on the store for this thread in this process (see fanout/tail.py).
        self.tail = ThreadTail(store, thread_id, self.take_in, on_deleted=self._deleted_elsewhere, taken_in=self.state)

    # -- readiness -----------------------------------------------------------------------

    async def ready(self) -> SnapshotCompactor:
        """Build the replay state and close a run a crash left open, once per process; the
        compactor, readable from then on."""
        if self._compactor is not None:
            return self._compactor
        if self._building is None:
            self._building = asyncio.create_task(self._build(), name=f"build-{self.thread_id}")
            self._building.add_done_callback(self._build_done)
        # Shielded: a reader that goes away must not cancel the build others wait on.
        return await asyncio.shield(self._building)

    def _build_done(self, task: asyncio.Task[SnapshotCompactor]) -> None:
        self._building = None
        if not task.cancelled() and task.exception() is not None:
            log.error("building the replay state of thread %s failed", self.thread_id, exc_info=task.exception())

    async def _build(self) -> SnapshotCompactor:
        return await self._replay.build(settle=self._settle)

    async def _settle(self, compactor: SnapshotCompactor) -> None:
        """A built compactor, before it is published: a run a crash left open is closed."""
        if self._recover_open_runs:
            await self._recovery.settle(compactor, self._slot.running)
        self._compactor = compactor  # readable only once complete and recovered
        self.state.log = compactor

    # -- recovery (see recovery.py): the run slot's, as it must not cut off a run of its own ------

    async def recover_after_restart(self) -> bool:
        """Close the run this replica's previous process left open (:meth:`RunSlot.recover_after_restart`)."""
        return await self._slot.recover_after_restart(self)

    async def close_abandoned_run(self) -> bool:
        """Close a run the log shows open that no live replica drives (:meth:`RunSlot.close_abandoned_run`)."""
        return await self._slot.close_abandoned_run(self)

    # -- reads -------------------------------------------------------------------------------

    async def replay_view(self, turns: int | None = None) -> ReplayView:
        """What a fresh client gets before the live tail (see :meth:`ReplayState.view`);
        with ``turns``, only the messages of the last ``turns`` runs
        (:meth:`ReplayState.window_view`)."""
        compactor = await self.ready()
        # _changed when another writer (a replica) stored records
        return await self._caught_up(self._replay.current_view(compactor, turns, self._changed))

    async def message_page(self, before: str, limit: int) -> MessagePage:
        """Up to ``limit`` messages older than the message ``before``, and the next cursor
        (``UnknownCursor`` when the conversation has no such message); after taking in
        what other writers stored, as :meth:`conversation` does."""
        compactor = await self.ready()
        await self.take_in(await self.store.last_seq(self.thread_id))
        return compactor.messages_before(before, limit)

    async def conversation(self) -> Conversation:
        """Current messages and state (the open run included) and the seq they cover."""
        compactor = await self.ready()
        await self.take_in(await self.store.last_seq(self.thread_id))  # another replica's writes
        messages, state = compactor.snapshot()
        return Conversation(messages, state, compactor.last_seq)

    async def replay_events(self) -> list[dict[str, Any]]:
        """The thread's log compacted as a fresh replay sends it, as bare events."""
        await self.replay_view()  # takes in records another writer stored
        compactor = await self.ready()
        return compactor.replay_events()

    # -- streams ---------------------------------------------------------------------------------

    async def stream(
        self,
        position: int | None,
        heartbeat_s: float,
        patience: StorePatience,
        *,
        epoch: str | None = None,
        turns: int | None = None,
        caller_of: ActiveRun | None = None,
        until_settled: bool = False,
        process: Draining | None = None,
        lost: Callable[[str], bytes] | None = None,
    ) -> AsyncGenerator[bytes | memoryview, None]:
        """A stream of the thread, counted as a subscriber while it is open: history from the
        client's position, then the log after it, ended by its follower's rule, by the thread's
        deletion or by a store outage longer than ``patience`` (:func:`~.stream.thread_stream`)."""
        self.add_subscriber()
        try:
            stream = thread_stream(
                self,
                self._metrics,
                position,
                heartbeat_s,
                patience,
                epoch=epoch,
                turns=turns,
                caller_of=caller_of,
                until_settled=until_settled,
                process=process,
                lost=lost,
            )
            # Run from here, so that what it reads of this runtime never leaves it and comes back.
            async with aclosing(stream) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self.remove_subscriber()

    @property
    def log_run_open(self) -> bool:
        """Whether the log, as this process knows it, has a run without a terminal event."""
        compactor = self._compactor
        return compactor is not None and compactor.run_open

    @property
    def last_seq(self) -> int:
        compactor = self._compactor
        return 0 if compactor is None else compactor.last_seq

    @property
    def epoch(self) -> str | None:
        """The epoch of the incarnation of the thread this runtime serves (None: it has seen
        no records yet). Every id its streams hand out carries it."""
        return self._replay.epoch

    async def current_epoch(self) -> str | None:
        """:attr:`epoch`, read from the store when not known yet (the thread was empty when
        this runtime was built, and its first records were not taken in yet)."""
        await self.ready()
        if self._replay.epoch is None:
            await self._replay.learn_epoch()
        return self._replay.epoch

    def wake_subscribers(self) -> None:
        """Every stream waiting on this thread returns to look at it again, whether or not
        anything was stored (their stop rules changed: the process drains)."""
        self.tail.interrupt()
        self._announce_run_change()

    def deleted(self) -> None:
        """The thread was deleted (its runtime is dropped from the registry): every stream on
        it ends, with a ``thread_deleted`` frame."""
        self.tail.deleted(f"thread {self.thread_id!r} was deleted")
        self._announce_run_change()

    def superseded(self) -> None:
        """The store holds another incarnation of the thread than this runtime serves (it was
        deleted and written again, and this runtime never heard of it): treated as deleted."""
        if self.tail.gone is None:
            self.tail.deleted(f"thread {self.thread_id!r} was deleted")
            self._deleted_elsewhere()

    def _deleted_elsewhere(self) -> None:
        """The thread was found deleted by someone else (another replica, the CLI, a Redis
        expiry): the tail ends its streams, the registry drops this runtime."""
        self._announce_run_change()
        if self._on_deleted is not None:
            self._on_deleted(self)

    async def take_in(self, latest: int) -> None:
        """Take records another replica stored (up to at least ``latest``) into the replay state.

        One caller reads them from the store, under the lock, and puts their frames into
        :attr:`recent`; the other subscribers woken by the same append find them there.
        Without it a replica's view of a thread that another replica writes (its run
        state, its replay) would stay where it was first built.
        """
        compactor = self._compactor
        if compactor is not None and await self._caught_up(self._replay.catch_up(compactor, latest)):
            self._changed()

    async def _caught_up(self, catching_up: Awaitable[_T]) -> _T:
        """A catch-up; when it finds the thread deleted (fewer records than taken in), this
        runtime's streams end and the registry drops it before :class:`ThreadDeleted` goes on."""
        try:
            return await catching_up
        except ThreadDeleted:
            self.superseded()
            raise  # the thread list's live feed, for another replica's appends

    # -- subscribers -------------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """Open streams on this thread."""
        return self._subscribers

    def add_subscriber(self) -> None:
        self._subscribers += 1
        self._metrics.subscribers.inc()

    def remove_subscriber(self) -> None:
        self._subscribers -= 1
        self._metrics.subscribers.dec()

    @property
    def idle(self) -> bool:
        """Nothing depends on this runtime staying in memory."""
        return (
            self._slot.run is None
            and not self.deleting
            and self._subscribers == 0
            and self._building is None
            and not self._replay.lock.locked()
            and not self._recovery.lock.locked()
        )

    # -- runs: the run manager's operations (the run slot's, see run_slot.py) -----------------------

    @property
    def run(self) -> ActiveRun | None:
        """The run this process has open on the thread (at most one)."""
        return self._slot.run

    @property
    def running(self) -> bool:
        return self._slot.run is not None

    @property
    def shared_by_replicas(self) -> bool:
        """Whether other gateway replicas may run this thread (a store with run leases)."""
        return self.store.leases is not None

    async def open_run(
        self,
        run: ActiveRun,
        prepare: Callable[[Conversation], Awaitable[Callable[[], Awaitable[None]]]],
        *,
        on_wait: Callable[[], None],
        on_stop: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_released: Callable[[ActiveRun], None],
    ) -> None:
        """The run manager's one way in (:meth:`RunSlot.open_run`): ``run`` admitted, its driver
        made by ``prepare`` from the conversation it continues, then driven as the run's task
        (:meth:`driven`); the thread is given up again when admitting or preparing fails."""
        await self._slot.open_run(
            self, run, prepare, on_wait=on_wait, on_stop=on_stop, on_lost=on_lost, on_released=on_released
        )

    async def branch_parent(self, caller_messages: Sequence[Any]) -> Parent:
        """The run whose outcome a branching caller's messages continue."""
        return await branch_parent(self.store, self.thread_id, caller_messages)

    async def reclaim_lease(self, run: ActiveRun) -> None:
        """After a store outage, before the run appends what it held back: its lease held again
        (:meth:`RunSlot.reclaim_lease`)."""
        await self._slot.reclaim_lease(run)

    def append_task(
        self, events: Sequence[NewEvent], fence: int | None = None, *, repeat: bool = False
    ) -> asyncio.Task[list[StoredRecord]]:
        """Store events and take them into the replay state, as a task of its own.

        Await it shielded: the append completes even if the awaiting caller is
        cancelled, so the log, the compactor and the recent frames never diverge.
        ``fence`` is the token of the run lease the caller holds (stores with leases).
        ``repeat``: the same batch again after a try whose outcome is unknown (a store
        outage); if that try landed, its records are taken, not stored twice.
        """
        return asyncio.create_task(self._append(list(events), fence, repeat))

    async def append(
        self, events: Sequence[NewEvent], fence: int | None = None, *, repeat: bool = False
    ) -> list[StoredRecord]:
        return await asyncio.shield(self.append_task(events, fence, repeat=repeat))

    async def _append(self, events: list[NewEvent], fence: int | None, repeat: bool = False) -> list[StoredRecord]:
        compactor = await self.ready()
        records = await self._replay.append(events, compactor, fence, repeat=repeat)
        self._stored(records)  # the thread list's live feed
        return records

    async def driven(
        self, run: ActiveRun, drive: Callable[[], Awaitable[None]], on_released: Callable[[ActiveRun], None]
    ) -> None:
        """The run's task: the run task stores the run's events and its end, then the run
        lets go of the thread (:meth:`RunSlot.run_ended`), even when its end could not be
        stored (the log keeps the run open; the next start of the gateway, or another
        replica's sweep, closes it)."""
        try:
            await drive()
        finally:
            await self._slot.run_ended(self, run, on_released)

    async def stop_remote_run(self, message: str, only_run: str | None = None) -> ActiveRun:
        """Stop the run another replica drives on the thread (:meth:`RunSlot.stop_remote_run`)."""
        return await self._slot.stop_remote_run(self, message, only_run)

    # -- notifications ------------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.thread_id)


def _stored_notice(thread_id: str, on_change: Callable[[str], None] | None) -> Callable[[list[StoredRecord]], None]:
    """Records were stored: the thread list is told (a function holding no runtime)."""

    def stored(records: list[StoredRecord]) -> None:
        if records and on_change is not None:
            on_change(thread_id)

    return stored
