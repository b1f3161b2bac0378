"""One thread in one gateway process: :class:`ThreadRuntime`, the seam between runs and reads.

A :class:`ThreadRuntime` owns, for one thread:

* its replay state (:class:`~.replay.ReplayState`: the compactor, the checkpoint, the
  encoded replay and the recent frames), made ready once per process by
  :meth:`ThreadRuntime.ready` (single flight: concurrent first readers share one
  build) which also closes a run a crash left open (:class:`~.recovery.Recovery`)
  before anyone can read the thread;
* the run this process has open on the thread (one at most) and the count of open
  streams;
* the live tail (:class:`~agui_gateway.server.fanout.tail.ThreadTail`): the one waiter
  on the store for the thread, which takes other replicas' records in
  (:meth:`ThreadRuntime.take_in`) before it wakes the subscribers.

Runs meet the thread in a handful of named operations (the "runs" section below): the
manager opens a run (:meth:`~ThreadRuntime.open_run`: admitted, then prepared by the manager
from the conversation it continues, finding its :meth:`~ThreadRuntime.branch_parent` when
it branches, then driven: the runtime runs the run task and lets the thread go after it),
the run task stores its events (:meth:`~ThreadRuntime.append`), and a run another replica
drives is stopped with :meth:`~ThreadRuntime.stop_remote_run`. Neither touches the store
or the runtime's fields. Reads meet it in one operation per stream,
:meth:`~ThreadRuntime.stream` (history from the client's position, then the follower:
``fanout/follower.py``, which reads :attr:`~ThreadRuntime.state` and never calls back).

Appends of this process go through :meth:`ThreadRuntime.append`, which runs the store
append and the compactor update as one task that a cancelled caller cannot interrupt
halfway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any, NamedTuple, TypeVar

from agui_gateway.protocol.compaction import MessagePage, SnapshotCompactor
from agui_gateway.protocol.lineage import Parent
from agui_gateway.server.errors import NoRunInProgress, NotTheOpenRun, RunInProgress
from agui_gateway.server.fanout.follower import Draining, LogFollower, ThreadState, follower_for, wait_for_records
from agui_gateway.server.fanout.recent import RecentFrames
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.branches import branch_parent
from agui_gateway.server.runtime.leases import HANDOVER_WAIT_S, acquire_for_run, keep_lease, release_run_lease
from agui_gateway.server.runtime.recovery import Recovery
from agui_gateway.server.runtime.replay import ReplayState, ReplayView
from agui_gateway.server.sse import HEARTBEAT, STREAM_PREAMBLE, store_error_frame, thread_deleted_frame
from agui_gateway.store.base import (
    LeaseLost,
    NewEvent,
    StoredRecord,
    StoreError,
    StoreUnavailable,
    ThreadDeleted,
    ThreadStore,
)

log = logging.getLogger("agui_gateway.server.runtime.thread")
_T = TypeVar("_T")


class Conversation(NamedTuple):
    """What a client replaying the thread holds: its messages and state, up to ``seq``."""

    messages: list[dict[str, Any]]
    state: Any
    seq: int


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
    ) -> None:
        self.thread_id = thread_id
        self._on_deleted = on_deleted  # told when the tail sees the thread deleted elsewhere
        self.store = store
        self._on_change = on_change  # told of every append and run start/end (the thread list feed)
        self._metrics = metrics
        self._recover_open_runs = recover_open_runs
        self._replay = ReplayState(thread_id, store, metrics)
        self._compactor: SnapshotCompactor | None = None  # the replay state's, once ready
        # The encoded frames of the latest records, shared by the live subscribers.
        self.recent: RecentFrames = self._replay.recent
        # Told through a function of its own, not this runtime's method: a runtime that its parts
        # point back to is a reference cycle, freed only by the rare cyclic collection.
        self._recovery = Recovery(self._replay, store.leases, metrics, on_stored=_stored_notice(thread_id, on_change))
        self._building: asyncio.Task[SnapshotCompactor] | None = None
        # What the thread's streams read to know when they are complete (see fanout/follower.py).
        self.state = ThreadState()
        self._run: ActiveRun | None = None
        # Set by the registry while the thread is being deleted: no run is admitted meanwhile
        # (its first append would create the thread again under the delete).
        self.deleting = False
        self._subscribers = 0
        # The one waiter on the store for this thread in this process (see fanout/tail.py).
        self.tail = ThreadTail(store, thread_id, self.take_in, on_deleted=self._deleted_elsewhere, taken_in=self.state)

    # -- readiness -----------------------------------------------------------------------

    async def ready(self) -> None:
        """Build the replay state and close a run a crash left open, once per process."""
        await self._ready()

    async def _ready(self) -> SnapshotCompactor:
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
        if self._recover_open_runs and compactor.run_open and self._run is None:
            if self.store.leases is None:
                await self._recovery.close_crashed_run(compactor)
            else:  # a live replica may be running it: only a lease tells
                await self._recovery.close_leased(compactor, lambda: self._run is not None)
        self._compactor = compactor  # readable only once complete and recovered
        self.state.log = compactor

    # -- recovery --------------------------------------------------------------------------

    async def recover_after_restart(self) -> bool:
        """Close the run this replica's previous process left open on the thread.

        Its lease is still live, recorded under this replica's id: taken over, not waited
        for, as the process that held it is gone (this one is that replica, restarted).
        Returns whether a RUN_ERROR was stored.
        """
        compactor = await self._ready()
        return await self._recovery.close_leased(compactor, lambda: self._run is not None, take_over=True)

    async def close_abandoned_run(self, fence: int | None = None) -> bool:
        """Close a run the log shows open that no live replica drives (the sweep, a new run).

        ``fence``: the token of a lease the caller holds on the thread (a run being
        opened); without one, a lease is taken for the recovery. Returns whether a
        RUN_ERROR was stored.
        """
        compactor = await self._ready()
        if self.store.leases is not None and fence is None:
            return await self._recovery.close_leased(compactor, lambda: self._run is not None)
        await self._replay.catch_up(compactor)
        if not compactor.run_open:
            return False
        await self._recovery.close_crashed_run(compactor, fence)
        return True

    # -- reads -------------------------------------------------------------------------------

    async def replay_view(self, turns: int | None = None) -> ReplayView:
        """What a fresh client gets before the live tail (see :meth:`ReplayState.view`);
        with ``turns``, only the messages of the last ``turns`` runs
        (:meth:`ReplayState.window_view`)."""
        compactor = await self._ready()
        # _changed when another writer (a replica) stored records
        return await self._caught_up(self._replay.current_view(compactor, turns, self._changed))

    async def message_page(self, before: str, limit: int) -> MessagePage:
        """Up to ``limit`` messages older than the message ``before``, and the next cursor
        (``UnknownCursor`` when the conversation has no such message); after taking in
        what other writers stored, as :meth:`conversation` does."""
        compactor = await self._ready()
        await self.take_in(await self.store.last_seq(self.thread_id))
        return compactor.messages_before(before, limit)

    async def conversation(self) -> Conversation:
        """Current messages and state (the open run included) and the seq they cover."""
        compactor = await self._ready()
        await self.take_in(await self.store.last_seq(self.thread_id))  # another replica's writes
        messages, state = compactor.snapshot()
        return Conversation(messages, state, compactor.last_seq)

    async def replay_events(self) -> list[dict[str, Any]]:
        """The thread's log compacted as a fresh replay sends it, as bare events."""
        await self.replay_view()  # takes in records another writer stored
        compactor = await self._ready()
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
        """A stream of the thread: history (the replay view when ``position`` is None,
        windowed to ``turns`` runs when given; else exactly the stored events after
        ``position``), then the log after it (:class:`LogFollower`).

        Where it ends is its follower's rule (``fanout/follower.py``):
        with ``caller_of``, when the run's caller has the run's last event; with
        ``until_settled`` (a connect) once the thread is settled; else (a watcher) only
        once ``process`` drains and the thread has no run open. Every stream ends when
        its thread is deleted, with a ``thread_deleted`` frame. Through a store outage it
        waits as ``patience`` allows (``fanout/store_patience.py``), then ends with an
        ``error`` frame, or ``lost``'s (the client resumes by its last id).

        ``epoch``: the incarnation of the thread the position was checked against; should the
        thread be another by the time the stream starts (deleted and written again meanwhile),
        the stream ends with the ``thread_deleted`` frame instead of serving those positions.
        """
        metrics = self._metrics
        self.add_subscriber()
        follower: LogFollower | None = None
        try:
            yield STREAM_PREAMBLE
            if position is None:
                view = await self.replay_view(turns)
                kind = "fresh" if turns is None else "window"
                metrics.replays.labels(kind).inc()
                metrics.replay_bytes.labels(kind).inc(view.nbytes)
                for chunk in view.chunks:
                    yield chunk
                cursor = view.seq
            else:
                # Opening the thread also closes a run a crash left open (its RUN_ERROR
                # then reaches this client like any stored event).
                await self.ready()
                metrics.replays.labels("resume").inc()
                cursor = position
            # Still the incarnation the position was checked against? (The ids carry this
            # runtime's epoch; one not known yet is read by the follower when it needs it.)
            if epoch is not None and await self.current_epoch() != epoch:
                raise ThreadDeleted(f"thread {self.thread_id!r} was deleted")
            follower = follower_for(
                self.store,
                self.thread_id,
                self.recent,
                cursor,
                heartbeat_s=heartbeat_s,
                tail=self.tail,
                state=self.state,
                caller_of=caller_of,
                until_settled=until_settled,
                process=process,
            )
            while True:
                try:
                    # Closed with the stream, not when the garbage collector finds it: it holds
                    # the log's file descriptor while it reads.
                    async with aclosing(follower.follow()) as chunks:
                        async for chunk in chunks:
                            patience.answered()
                            yield chunk
                    break
                except StoreUnavailable as exc:
                    # A store outage (a Redis failover): wait it out as the patience allows,
                    # heartbeats going out, then go on from the follower's cursor.
                    if not patience.waits():
                        raise
                    # Debug only: every stream of the process meets the same outage (the runs log it).
                    log.debug("thread %s: the store is unavailable (%s); the stream waits", self.thread_id, exc)
                    yield HEARTBEAT
                    await patience.pause()
        except ThreadDeleted:
            # Before StoreError, its base: the thread is gone (here or on another replica), and
            # so is this stream; the client learns why instead of reconnecting in a loop. A
            # stream complete by its own rule (a run's caller holding the run's end, stopped
            # for the delete) just ends, as it would have.
            if follower is None or not follower.complete(follower.cursor):
                yield thread_deleted_frame(self.thread_id)
        except StoreError as exc:
            # The store went away (Redis down) for longer than the stream waits for it: tell the
            # client and close (a run's caller: its run's RUN_ERROR, ``lost``); it resumes by
            # its last id once the gateway answers again. Nothing is lost: the log has it all.
            log.warning("thread %s: stream closed, the store failed: %s", self.thread_id, exc)
            yield store_error_frame(str(exc)) if lost is None else lost(str(exc))
        finally:
            self.remove_subscriber()
            if position is not None and follower is not None:
                metrics.replay_bytes.labels("resume").inc(follower.bytes_before_caught_up)

    @property
    def approx_bytes(self) -> int:
        return self._replay.approx_bytes

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
        await self._ready()
        if self._replay.epoch is None:
            await self._replay.learn_epoch()
        return self._replay.epoch

    def wake_subscribers(self) -> None:
        """Every stream waiting on this thread returns to look at it again, whether or not
        anything was stored (their stop rules changed: the process drains)."""
        self.tail.interrupt()
        self._notify_run_changed()

    def deleted(self) -> None:
        """The thread was deleted (its runtime is dropped from the registry): every stream on
        it ends, with a ``thread_deleted`` frame."""
        self.tail.deleted(f"thread {self.thread_id!r} was deleted")
        self._notify_run_changed()

    def superseded(self) -> None:
        """The store holds another incarnation of the thread than this runtime serves (it was
        deleted and written again, and this runtime never heard of it): treated as deleted."""
        if self.tail.gone is None:
            self.tail.deleted(f"thread {self.thread_id!r} was deleted")
            self._deleted_elsewhere()

    def _deleted_elsewhere(self) -> None:
        """The thread was found deleted by someone else (another replica, the CLI, a Redis
        expiry): the tail ends its streams, the registry drops this runtime."""
        self._notify_run_changed()
        if self._on_deleted is not None:
            self._on_deleted(self)

    async def wait_for_records(self, after: int, timeout: float) -> int:
        """Until the thread has a record after ``after`` (taken into :attr:`recent` already), or
        ``timeout``; returns the latest seq. Shared by all subscribers through :attr:`tail`."""
        return await wait_for_records(self.tail, self.recent, after, timeout)

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
            self._run is None
            and not self.deleting
            and self._subscribers == 0
            and self._building is None
            and not self._replay.lock.locked()
            and not self._recovery.lock.locked()
        )

    # -- runs: the run manager's operations -----------------------------------------------------

    @property
    def run(self) -> ActiveRun | None:
        """The run this process has open on the thread (at most one)."""
        return self._run

    @property
    def running(self) -> bool:
        return self._run is not None

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
        """The run manager's one way in: :meth:`admit` ``run``, have ``prepare`` make its
        driver from the conversation it continues, then drive it (:meth:`run_started`).
        When admitting or preparing fails (:class:`RunInProgress`, a history conflict),
        the thread is given up again (:meth:`dismiss`) before the error goes on."""
        conversation = await self.admit(run, on_wait)
        try:
            drive = await prepare(conversation)
        except BaseException:
            await self.dismiss(run)
            raise
        self.run_started(run, drive, on_stop=on_stop, on_lost=on_lost, on_released=on_released)

    async def admit(self, run: ActiveRun, on_wait: Callable[[], None]) -> Conversation:
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
        compactor = await self._ready()
        run.start_after = compactor.last_seq
        await self._claim(run, on_wait)
        try:
            if self.store.leases is not None:
                await self._take_lease(run, on_wait)
            if self.log_run_open:  # another replica's run (recovery is off), still open
                raise RunInProgress(f"thread {self.thread_id!r} has a run open in its log")
            conversation = await self.conversation()
        except BaseException:
            await self.dismiss(run)
            raise
        run.start_after = conversation.seq
        return conversation

    async def _claim(self, run: ActiveRun, on_wait: Callable[[], None]) -> None:
        waited = False
        # Claimed before any await that follows (no await between the check and the
        # claim): of two racing starts exactly one gets the thread.
        while self._run is not None:
            current = self._run
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
        if self.deleting:
            raise RunInProgress(f"thread {run.thread_id!r} is being deleted")
        self._run = run
        self.state.run_here = True

    async def _take_lease(self, run: ActiveRun, on_wait: Callable[[], None]) -> None:
        leases = self.store.leases
        assert leases is not None
        run.lease = await acquire_for_run(leases, run.thread_id, run.run_id, self._recovery.lock, on_wait=on_wait)
        if run.lease is None:
            raise RunInProgress(f"thread {run.thread_id!r} has a run in progress on another gateway replica")
        await self.take_in(await self.store.last_seq(run.thread_id))
        if self.log_run_open and self._recover_open_runs:
            await self.close_abandoned_run(run.fence)

    async def branch_parent(self, caller_messages: Sequence[Any]) -> Parent:
        """The run whose outcome a branching caller's messages continue."""
        return await branch_parent(self.store, self.thread_id, caller_messages)

    async def reclaim_lease(self, run: ActiveRun) -> None:
        """After a store outage, before the run appends what it held back: its lease held
        again, though it may have lapsed meanwhile (:class:`LeaseLost`: the thread was
        taken since, by a recovery or another run)."""
        leases, lease = self.store.leases, run.lease
        if leases is not None and lease is not None and not await leases.reclaim(lease):
            raise LeaseLost(f"the run lease of thread {self.thread_id!r} was taken during the store outage")

    def run_started(
        self,
        run: ActiveRun,
        drive: Callable[[], Awaitable[None]],
        *,
        on_stop: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_released: Callable[[ActiveRun], None],
    ) -> None:
        """The admitted run is driven now: ``drive`` (its :class:`~.run_task.RunTask`'s, which
        appends through :meth:`append`) runs as the run's task, and once it returns the
        thread is let go (:meth:`run_ended`, ``on_released`` then). Its lease is renewed
        while it streams (``on_stop``: another replica asked it to stop; ``on_lost``: the
        lease is gone), and subscribers waiting on the run state wake."""
        run.task = asyncio.create_task(self._driven(run, drive, on_released), name=f"run-{run.thread_id}-{run.run_id}")
        leases = self.store.leases
        if run.lease is not None and leases is not None:
            run.keeper = asyncio.create_task(
                keep_lease(leases, run.lease, on_stop=on_stop, on_lost=on_lost),
                name=f"lease-{run.thread_id}-{run.run_id}",
            )
        self._notify_run_changed()

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
        compactor = await self._ready()
        records = await self._replay.append(events, compactor, fence, repeat=repeat)
        self._stored(records)
        return records

    async def _driven(
        self, run: ActiveRun, drive: Callable[[], Awaitable[None]], on_released: Callable[[ActiveRun], None]
    ) -> None:
        """The run's task: the run task stores the run's events and its end, then the run
        lets go of the thread, even when its end could not be stored (the log keeps the
        run open; the next start of the gateway, or another replica's sweep, closes it)."""
        try:
            await drive()
        finally:
            await self.run_ended(run, on_released)

    async def dismiss(self, run: ActiveRun) -> None:
        """Give the thread up: the run's lease (no longer renewed) and its claim here."""
        await release_run_lease(self.store.leases, run)
        if self._run is run:
            self._run = None
            self.state.run_here = False

    async def run_ended(self, run: ActiveRun, on_released: Callable[[ActiveRun], None]) -> None:
        """After the run's end is stored (or given up on): let the thread go (``on_released``
        then), wake whoever waits on the run state, and save the checkpoint of what the run
        folded."""
        try:
            run.final_seq = self.last_seq
            await self.dismiss(run)
            run.released.set()
        finally:
            on_released(run)
            self._notify_run_changed()
        try:
            await self._replay.save_checkpoint()
        except Exception:
            log.exception("thread %s: writing the checkpoint failed", run.thread_id)

    async def stop_remote_run(self, message: str, only_run: str | None = None) -> ActiveRun:
        """Ask the replica whose lease holds the thread to stop its run (only if it is
        ``only_run``, when given); returns once this replica sees the run's end in the log
        (:class:`NoRunInProgress` when there is none, :class:`NotTheOpenRun` for another)."""
        leases = self.store.leases
        assert leases is not None
        run_id = await leases.request_stop(self.thread_id, message, only_run)
        if run_id is None:
            raise NoRunInProgress(f"thread {self.thread_id!r} has no run in progress")
        if only_run is not None and run_id != only_run:
            raise NotTheOpenRun.of(self.thread_id, only_run, run_id)
        await self._ready()
        loop = asyncio.get_running_loop()
        # The holder ends the run within a renewal; a dead holder's lease lapses within its ttl.
        deadline = loop.time() + 2 * leases.ttl_s + 5
        await self.take_in(await self.store.last_seq(self.thread_id))
        while self.log_run_open and loop.time() < deadline:
            await self.wait_for_records(self.last_seq, min(1.0, max(0.0, deadline - loop.time())))
        if self.log_run_open:
            raise NoRunInProgress(f"the run on thread {self.thread_id!r} did not end in time; retry")
        stopped = ActiveRun(self.thread_id, run_id, "", start_after=0, final_seq=self.last_seq)
        stopped.released.set()
        return stopped

    # -- notifications ------------------------------------------------------------------------------

    def _stored(self, records: list[StoredRecord]) -> None:
        if records:
            self._changed()

    def _notify_run_changed(self) -> None:
        self.state.announce_run_change()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.thread_id)


def _stored_notice(thread_id: str, on_change: Callable[[str], None] | None) -> Callable[[list[StoredRecord]], None]:
    """What :meth:`ThreadRuntime._stored` does, without a reference to the runtime."""

    def stored(records: list[StoredRecord]) -> None:
        if records and on_change is not None:
            on_change(thread_id)

    return stored
