"""Per-thread runtime state of one gateway process.

A :class:`ThreadRuntime` owns, for one thread:

* the replay state: a :class:`SnapshotCompactor` loaded once (checkpoint + the
  log after it) and then fed every record this process stores, so a run end
  updates it with that run's events only and never re-reads the history;
  concurrent first readers share one build (single flight);
* the checkpoint: written after each run ends (and after a build that found it
  stale), from the in-memory compactor, never by rewriting the raw log;
* the replay bytes: the encoded SSE frames of the compacted block, cached per
  compactor position, so 200 clients connecting at once share one copy;
* the recent frames of the live tail (:class:`RecentFrames`) and a run-state
  signal for subscribers;
* the run this process has open on the thread (one at most: the run manager
  claims and releases it through :meth:`ThreadRuntime.claim_run` and
  :meth:`ThreadRuntime.release_run`) and the count of open streams
  (:meth:`ThreadRuntime.add_subscriber` / :meth:`ThreadRuntime.remove_subscriber`);
* crash recovery: a run the log shows open that no task of this process owns
  was cut off by a crash; the first open stores and broadcasts a RUN_ERROR
  (source "gateway") so the thread accepts runs again. On a store shared by
  replicas (leases), only a run whose lease lapsed is cut off, and the recovery
  holds the thread's lease while it stores the RUN_ERROR (exactly once); that lease
  is marked as a recovery's, and a run start waits for it rather than refusing. A
  replica restarted under its stable id takes over the leases its previous process
  left instead of waiting for them to lapse (:meth:`ThreadRuntime.recover_after_restart`);
* the live tail (:class:`~agui_gateway.server.tail.ThreadTail`): the one waiter on
  the store for the thread, which takes other replicas' records in (``follow_store``).

Appends of this process go through :meth:`ThreadRuntime.append`, which runs the
store append and the compactor update as one task that a cancelled caller
cannot interrupt halfway.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from agui_gateway.protocol.builders import run_error_event
from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.server.active_run import ActiveRun
from agui_gateway.server.fanout import RecentFrames, slices
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.sse import event_frame, frames
from agui_gateway.server.tail import ThreadTail
from agui_gateway.store.base import Checkpoint, NewEvent, StoredRecord, StoreError, ThreadStore

log = logging.getLogger("agui_gateway.server.threads")

CODE_GATEWAY_RESTARTED = "gateway_restarted"
RECOVERY_RUN_ID = "gateway-recovery"  # the run id a recovery's lease names
_YIELD_EVERY = 2000  # records fed between two event-loop yields while building


@dataclass(frozen=True, slots=True)
class ReplayView:
    """A fresh client's history: SSE bytes covering the log up to ``seq``."""

    seq: int
    parts: tuple[bytes, ...]
    run_open: bool

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.parts)

    def chunks(self) -> list[bytes | memoryview]:
        """The bytes in send-sized slices (views into the shared buffers, no copies)."""
        return [piece for part in self.parts for piece in slices(part)]


class ThreadRuntime:
    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        metrics: GatewayMetrics,
        *,
        recover_open_runs: bool = True,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.thread_id = thread_id
        self._on_change = on_change  # told of every append and run start/end (the thread list feed)
        self.store = store
        self._metrics = metrics
        self._recover_open_runs = recover_open_runs
        self._lock = asyncio.Lock()  # this process's appends and compactor updates
        # Held by this process's recoveries of the thread (one at a time), and by a run
        # start while it asks for the lease, so a start never meets a recovery of ours.
        self.recovery_lock = asyncio.Lock()
        self._checkpoint_lock = asyncio.Lock()
        self._compactor: SnapshotCompactor | None = None
        self._building: asyncio.Task[SnapshotCompactor] | None = None
        self._saved_seq = 0
        self._finished_bytes: tuple[int, bytes] | None = None  # (folded seq, frames)
        self._view: ReplayView | None = None
        self._run_changed = asyncio.Event()
        self.recent = RecentFrames()
        self._run: ActiveRun | None = None
        self._subscribers = 0
        # The one waiter on the store for this thread in this process (see tail.py).
        self.tail = ThreadTail(store, thread_id, self.follow_store)

    # -- run state ----------------------------------------------------------------

    @property
    def run(self) -> ActiveRun | None:
        """The run this process has open on the thread (at most one)."""
        return self._run

    @property
    def recovers_open_runs(self) -> bool:
        return self._recover_open_runs

    @property
    def running(self) -> bool:
        return self._run is not None

    def claim_run(self, run: ActiveRun) -> bool:
        """Take the thread for ``run``; False when another run holds it.

        Synchronous on purpose: the check and the claim happen without an await in
        between, so of two racing starts exactly one gets the thread.
        """
        if self._run is not None:
            return False
        self._run = run
        return True

    def release_run(self, run: ActiveRun) -> None:
        """Give the thread back; only the run that holds it can."""
        if self._run is run:
            self._run = None

    # -- subscribers ----------------------------------------------------------------

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
            and self._subscribers == 0
            and self._building is None
            and not self._lock.locked()
            and not self.recovery_lock.locked()
        )

    def notify_run_changed(self) -> None:
        changed, self._run_changed = self._run_changed, asyncio.Event()
        changed.set()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.thread_id)

    async def wait_activity(self, after: int, timeout: float) -> int:
        """Wait for a record after ``after``, a run starting or ending, or the timeout.

        Returns the thread's latest seq.
        """
        store_wait = asyncio.ensure_future(self.tail.wait(after, timeout))
        run_wait = asyncio.ensure_future(self._run_changed.wait())
        try:
            await asyncio.wait((store_wait, run_wait), return_when=asyncio.FIRST_COMPLETED)
        finally:
            store_wait.cancel()
            run_wait.cancel()
        if store_wait.done() and not store_wait.cancelled() and store_wait.exception() is None:
            latest: int = store_wait.result()
        else:
            latest = await self.store.last_seq(self.thread_id)
        await self.follow_store(latest)
        return latest

    async def wait_records(self, after: int, timeout: float) -> int:
        """Until the thread has a record after ``after`` (taken into :attr:`recent` already), or
        ``timeout``; returns the latest seq. Shared by all subscribers through :attr:`tail`."""
        return await self.tail.wait(after, timeout)

    async def follow_store(self, latest: int) -> None:
        """Take records another replica stored (up to at least ``latest``) into the replay state.

        One caller reads them from the store, under the lock, and puts their frames into
        :attr:`recent`; the other subscribers woken by the same append find them there.
        Without it a replica's view of a thread that another replica writes (its run
        state, its replay) would stay where it was first built.
        """
        compactor = self._compactor
        if compactor is None or latest <= compactor.last_seq:
            return
        async with self._lock:
            if latest > compactor.last_seq:
                await self._catch_up_locked(compactor)
                self._changed()  # the thread list's live feed, for another replica's appends

    # -- replay state ---------------------------------------------------------------

    async def compactor(self) -> SnapshotCompactor:
        """The thread's replay state, built once per process (single flight)."""
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
        compactor, saved = await self._load_checkpoint()
        fed = 0
        async with aclosing(self.store.read(self.thread_id, after=compactor.last_seq)) as records:
            async for record in records:
                compactor.feed(record.served, record.seq)
                fed += 1
                if fed % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let other threads' streams run during a long build
        self._metrics.checkpoint_builds.inc()
        self._saved_seq = saved
        if self._recover_open_runs and compactor.run_open and self._run is None:
            if self.store.leases is None:
                await self._close_crashed_run(compactor)
            else:  # a live replica may be running it: only a lease tells
                await self._recover_leased(compactor)
        self._compactor = compactor  # published only once complete and recovered
        if compactor.folded_seq > self._saved_seq:
            try:
                await self.save_checkpoint()
            except StoreError as exc:  # only a shortcut for the next build: the log is the truth
                log.warning("thread %s: %s", self.thread_id, exc)
        return compactor

    async def _load_checkpoint(self) -> tuple[SnapshotCompactor, int]:
        checkpoint = await self.store.load_checkpoint(self.thread_id)
        if checkpoint is None:
            return SnapshotCompactor(), 0
        latest = await self.store.last_seq(self.thread_id)
        try:
            compactor = SnapshotCompactor.loads(checkpoint.data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("thread %s: unreadable checkpoint (%s); rebuilding from the log", self.thread_id, exc)
            return SnapshotCompactor(), 0
        if compactor.folded_seq != checkpoint.seq or checkpoint.seq > latest:
            # A checkpoint ahead of the log (the log lost an unsynced tail) describes
            # events that no longer exist: the log is the truth.
            log.warning(
                "thread %s: checkpoint covers seq %d but the log ends at %d; rebuilding from the log",
                self.thread_id,
                checkpoint.seq,
                latest,
            )
            return SnapshotCompactor(), 0
        return compactor, checkpoint.seq

    async def _recover_leased(self, compactor: SnapshotCompactor, take_over: bool = False) -> bool:
        """Close a run whose replica died, holding the thread's lease while doing it.

        No lease granted: a live replica runs the thread, nothing to do. Granted: no one
        else can append now, so the run still open in the log (read again under the lease)
        gets exactly one RUN_ERROR. ``take_over``: the lease replaces one recorded under
        this replica's id (its previous process's, see :meth:`recover_after_restart`).
        """
        leases = self.store.leases
        assert leases is not None
        async with self.recovery_lock:
            if take_over:
                lease = await leases.take_over(self.thread_id, RECOVERY_RUN_ID)
            else:
                lease = await leases.acquire(self.thread_id, RECOVERY_RUN_ID, recovery=True)
            if lease is None:
                return False
            try:
                async with self._lock:
                    await self._catch_up_locked(compactor)
                closed = compactor.run_open and self.run is None
                if closed:
                    await self._close_crashed_run(compactor, lease.token)
                await leases.forget(self.thread_id)
                return closed
            finally:
                await leases.release(lease)

    async def recover_after_restart(self) -> bool:
        """Close the run this replica's previous process left open on the thread.

        Its lease is still live, recorded under this replica's id: taken over, not waited
        for, as the process that held it is gone (this one is that replica, restarted).
        Returns whether a RUN_ERROR was stored.
        """
        compactor = await self.compactor()
        return await self._recover_leased(compactor, take_over=True)

    async def close_abandoned_run(self, fence: int | None = None) -> bool:
        """Close a run the log shows open that no live replica drives (the sweep, a new run).

        ``fence``: the token of a lease the caller holds on the thread (a run being
        opened); without one, a lease is taken for the recovery. Returns whether a
        RUN_ERROR was stored.
        """
        compactor = await self.compactor()
        if self.store.leases is not None and fence is None:
            return await self._recover_leased(compactor)
        async with self._lock:
            await self._catch_up_locked(compactor)
        if not compactor.run_open:
            return False
        await self._close_crashed_run(compactor, fence)
        return True

    async def _close_crashed_run(self, compactor: SnapshotCompactor, fence: int | None = None) -> None:
        run_id = compactor.open_run_id
        event = run_error_event(
            "the gateway stopped before this run ended (crash or restart); the run was cut off",
            CODE_GATEWAY_RESTARTED,
        )
        await self._append_and_absorb([NewEvent(event, run_id or None, "gateway")], compactor, fence)
        self._metrics.recovered_runs.inc()
        log.warning("thread %s: closed run %s left open by a crash", self.thread_id, run_id)

    async def replay_view(self) -> ReplayView:
        """What a fresh client gets before the live tail (see ``docs/compaction-api.md``).

        The finished runs as one compacted block whose last frame (the terminal
        event) carries ``id: <folded seq>``, then the open run delta-compacted with
        the ids ``compact_sequenced`` allows; the last frame carries ``seq``.
        """
        compactor = await self.compactor()
        if await self.store.last_seq(self.thread_id) > compactor.last_seq:
            async with self._lock:  # another writer (a replica) stored records: take them in
                await self._catch_up_locked(compactor)
        view = self._view
        if view is not None and view.seq == compactor.last_seq:
            return view
        view = ReplayView(
            seq=compactor.last_seq,
            parts=(self._finished_frames(compactor), frames(compactor.open_run_events())),
            run_open=compactor.run_open,
        )
        self._view = view
        return view

    def _finished_frames(self, compactor: SnapshotCompactor) -> bytes:
        cached = self._finished_bytes
        if cached is not None and cached[0] == compactor.folded_seq:
            return cached[1]
        block = compactor.finished_block()
        data = b"".join(
            [event_frame(event) for event in block[:-1]]
            + [event_frame(event, compactor.folded_seq) for event in block[-1:]]
        )
        self._finished_bytes = (compactor.folded_seq, data)
        return data

    async def snapshot(self) -> tuple[list[dict[str, Any]], Any, int]:
        """Current messages and state (the open run included) and the seq they cover."""
        compactor = await self.compactor()
        await self.follow_store(await self.store.last_seq(self.thread_id))  # another replica's writes
        messages, state = compactor.snapshot()
        return messages, state, compactor.last_seq

    async def message_ids(self) -> set[str]:
        compactor = await self.compactor()
        return {mid for mid in compactor.message_ids() if isinstance(mid, str)}

    @property
    def approx_bytes(self) -> int:
        """A rough size of the replay state held: the encoded replay, and about twice
        that for the compactor's messages and state as Python objects."""
        finished = len(self._finished_bytes[1]) if self._finished_bytes is not None else 0
        open_part = len(self._view.parts[1]) if self._view is not None else 0
        return 3 * finished + 2 * open_part

    @property
    def log_run_open(self) -> bool:
        """Whether the log, as this process knows it, has a run without a terminal event."""
        return self._compactor is not None and self._compactor.run_open

    @property
    def last_seq(self) -> int:
        return 0 if self._compactor is None else self._compactor.last_seq

    # -- appends ----------------------------------------------------------------------

    def append_task(self, events: Sequence[NewEvent], fence: int | None = None) -> asyncio.Task[list[StoredRecord]]:
        """Store events and take them into the replay state, as a task of its own.

        Await it shielded: the append completes even if the awaiting caller is
        cancelled, so the log, the compactor and the recent frames never diverge.
        ``fence`` is the token of the run lease the caller holds (stores with leases).
        """
        return asyncio.create_task(self._append(list(events), fence))

    async def append(self, events: Sequence[NewEvent], fence: int | None = None) -> list[StoredRecord]:
        return await asyncio.shield(self.append_task(events, fence))

    async def _append(self, events: list[NewEvent], fence: int | None) -> list[StoredRecord]:
        await self.compactor()
        return await self._append_and_absorb(events, fence=fence)

    async def _append_and_absorb(
        self, events: list[NewEvent], compactor: SnapshotCompactor | None = None, fence: int | None = None
    ) -> list[StoredRecord]:
        if compactor is None:
            compactor = self._compactor
        assert compactor is not None, "append before the replay state was built"
        async with self._lock:
            records = await self.store.append(self.thread_id, events, fence=fence)
            if records and records[0].seq != compactor.last_seq + 1:
                await self._catch_up_locked(compactor)  # foreign records came in between
                encoded = 0
            else:
                for record in records:
                    compactor.feed(record.served, record.seq)
                encoded = self.recent.push(records)
        if records:
            self._changed()
        for record in records:
            self._metrics.events_stored.labels(record.source).inc()
        self._metrics.bytes_stored.inc(encoded)
        return records

    async def _catch_up_locked(self, compactor: SnapshotCompactor) -> None:
        async with aclosing(self.store.read(self.thread_id, after=compactor.last_seq)) as records:
            async for record in records:
                compactor.feed(record.served, record.seq)
                self.recent.push((record,))

    async def save_checkpoint(self) -> None:
        """Write the checkpoint if the compactor folded runs since the last one."""
        async with self._checkpoint_lock:
            compactor = self._compactor
            if compactor is None or compactor.folded_seq <= self._saved_seq:
                return
            seq, data = compactor.folded_seq, compactor.dumps()
            await self.store.save_checkpoint(self.thread_id, Checkpoint(seq=seq, data=data))
            self._saved_seq = seq
            self._metrics.checkpoint_writes.inc()


class ThreadRegistry:
    """The runtimes of the threads this process touches; idle ones beyond a cap are dropped."""

    def __init__(
        self,
        store: ThreadStore,
        metrics: GatewayMetrics,
        *,
        cached_threads: int = 256,
        cache_bytes: int = 256 * 1024 * 1024,
        recover_open_runs: bool = True,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._on_change = on_change
        self._metrics = metrics
        self._cap = cached_threads
        self._cap_bytes = cache_bytes
        self._recover = recover_open_runs
        self._runtimes: OrderedDict[str, ThreadRuntime] = OrderedDict()  # LRU, capped
        # Every runtime still referenced anywhere (a stream, a run): one per thread,
        # even after the LRU let go of it, so two never serve the same thread.
        self._alive: weakref.WeakValueDictionary[str, ThreadRuntime] = weakref.WeakValueDictionary()

    def get(self, thread_id: str) -> ThreadRuntime:
        """The runtime of a (validated) thread id, created on first use."""
        runtime = self._runtimes.get(thread_id)
        if runtime is not None:
            self._runtimes.move_to_end(thread_id)
            return runtime
        runtime = self._alive.get(thread_id)
        if runtime is None:
            runtime = ThreadRuntime(
                thread_id, self.store, self._metrics, recover_open_runs=self._recover, on_change=self._on_change
            )
            self._alive[thread_id] = runtime
        self._runtimes[thread_id] = runtime
        self._evict()
        return runtime

    def peek(self, thread_id: str) -> ThreadRuntime | None:
        return self._runtimes.get(thread_id) or self._alive.get(thread_id)

    def active_runs(self) -> list[ThreadRuntime]:
        return [rt for rt in self._runtimes.values() if rt.running]

    def _evict(self) -> None:
        """Drop least recently used idle runtimes beyond the caps (count and bytes).

        An evicted thread's replay state is rebuilt from its checkpoint when needed.
        """
        count = len(self._runtimes)
        total = sum(rt.approx_bytes for rt in self._runtimes.values())
        for thread_id, runtime in list(self._runtimes.items()):
            if count <= self._cap and total <= self._cap_bytes:
                break
            if runtime.idle:
                del self._runtimes[thread_id]
                count -= 1
                total -= runtime.approx_bytes
