"""A thread's replay state in one process: the compactor, its checkpoint and its encoded replay.

:class:`ReplayState` holds, for one thread:

* the :class:`SnapshotCompactor`, built once (checkpoint + the log after it, see
  :meth:`ReplayState.build`) and then fed every record this process stores or reads,
  so a run end updates it with that run's events only and never re-reads the history;
* the checkpoint: written after each run ends (and after a build that found it
  stale), from the in-memory compactor, never by rewriting the raw log;
* the replay bytes: the encoded SSE frames of the compacted block, cached per
  compactor position, so 200 clients connecting at once share one copy; and those of
  the history windows asked for (``?turns=N``), cached per (folded seq, turns, position);
* the recent frames of the live tail (:class:`RecentFrames`), pushed with every record
  taken in;
* the thread's epoch (:attr:`ReplayState.epoch`), which every id it encodes carries: read
  with the build, or after the first record stored or taken in when the thread had none.

Every change of the compactor happens under :attr:`ReplayState.lock`: the store append
and the compactor update of this process's appends, and the catch-up with records other
writers (replicas) stored. The compactor is *published* (:meth:`ReplayState.publish`)
only once the thread's runtime has recovered it (``runtime/recovery.py``), so no reader
sees a run a crash left open.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.server.fanout.batches import slices
from agui_gateway.server.fanout.recent import RecentFrames
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.sse import event_frame, frames
from agui_gateway.store.base import Checkpoint, NewEvent, StoredRecord, StoreError, ThreadDeleted, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.replay")

_YIELD_EVERY = 2000  # records fed between two event-loop yields while building
_WINDOWS_KEPT = 8  # window sizes whose encoded replay is kept (clients mostly ask one or two)


@dataclass(frozen=True, slots=True)
class ReplayView:
    """A fresh client's history: SSE bytes covering the log up to ``seq``, shared by every
    client that connects while the thread stays at ``seq``."""

    seq: int
    parts: tuple[bytes, ...]  # the finished runs' block, the open run's frames
    run_open: bool
    nbytes: int
    chunks: tuple[bytes | memoryview, ...]  # the bytes in send-sized slices (views, no copies)

    @classmethod
    def of(cls, seq: int, parts: tuple[bytes, ...], run_open: bool) -> ReplayView:
        chunks = tuple(piece for part in parts for piece in slices(part))
        return cls(seq, parts, run_open, sum(len(p) for p in parts), chunks)


class ReplayBytes:
    """A rough size of what the replay states of one process hold (see
    :meth:`ReplayState._size`), kept current by each state as its caches change and when it
    is freed: the registry's byte cap reads one number instead of asking every runtime on
    every insertion, and a runtime the cap dropped while something still holds it (its
    memory is not freed) still counts."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0


def _give_back(meter: ReplayBytes, counted: list[int]) -> None:
    """A replay state was freed: what it held no longer counts."""
    meter.total -= counted[0]


class ReplayState:
    def __init__(
        self, thread_id: str, store: ThreadStore, metrics: GatewayMetrics, meter: ReplayBytes | None = None
    ) -> None:
        self.thread_id = thread_id
        self.store = store
        self._metrics = metrics
        self.lock = asyncio.Lock()  # this process's appends and compactor updates
        self._checkpoint_lock = asyncio.Lock()
        self._compactor: SnapshotCompactor | None = None
        self._saved_seq = 0
        self._finished_bytes: tuple[int, bytes] | None = None  # (folded seq, frames)
        self._view: ReplayView | None = None
        self._windows: dict[tuple[int, int, int], ReplayView] = {}  # (folded seq, turns, seq)
        self.recent = RecentFrames()
        # The incarnation of the thread this state describes (None: no records seen yet).
        self.epoch: str | None = None
        self._meter = meter if meter is not None else ReplayBytes()
        # What this state added to the meter, in a cell the finalizer shares (it must not
        # refer to the state itself, or the state would never be freed).
        self._counted = [0]
        weakref.finalize(self, _give_back, self._meter, self._counted)

    # -- building -------------------------------------------------------------------

    async def build(self, settle: Callable[[SnapshotCompactor], Awaitable[None]]) -> SnapshotCompactor:
        """A compactor of the whole log: the checkpoint, then the log after it; ``settle``d by
        the runtime (a run a crash left open closed first), then published."""
        head = await self.store.head(self.thread_id)
        if head is not None:
            self._set_epoch(head.epoch)
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
        await settle(compactor)
        await self.publish(compactor)
        return compactor

    async def publish(self, compactor: SnapshotCompactor) -> None:
        """Make a built (and recovered) compactor the thread's, and save its checkpoint when
        the stored one is behind it."""
        self._compactor = compactor
        if compactor.folded_seq > self._saved_seq:
            try:
                await self.save_checkpoint()
            except StoreError as exc:  # only a shortcut for the next build: the log is the truth
                log.warning("thread %s: %s", self.thread_id, exc)

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

    # -- taking records in ----------------------------------------------------------------

    async def append(
        self,
        events: Sequence[NewEvent],
        compactor: SnapshotCompactor,
        fence: int | None = None,
        *,
        repeat: bool = False,
    ) -> list[StoredRecord]:
        """Store events and feed them to ``compactor`` and the recent frames, as one step.
        ``repeat``: a batch tried before with an unknown outcome, stored once whatever it was."""
        async with self.lock:
            expect_seq = compactor.last_seq + 1 if repeat else None
            records = await self.store.append(self.thread_id, events, fence=fence, expect_seq=expect_seq)
            if records and self.epoch is None:  # the thread's first records: it has an epoch now
                await self.learn_epoch()
            if records and records[0].seq != compactor.last_seq + 1:
                await self.catch_up_locked(compactor)  # foreign records came in between
                encoded = 0
            else:
                for record in records:
                    compactor.feed(record.served, record.seq)
                encoded = self.recent.push(records)
        for record in records:
            self._metrics.events_stored.labels(record.source).inc()
        self._metrics.bytes_stored.inc(encoded)
        return records

    async def catch_up(self, compactor: SnapshotCompactor, latest: int | None = None) -> bool:
        """Take in the records other writers stored (up to at least ``latest`` when given,
        else whatever the store has); whether there were any. :class:`ThreadDeleted` when the
        store has no record left of those taken in: the thread was deleted meanwhile (by
        another replica, the CLI, or on Redis its keys' expiry)."""
        if latest is None:
            latest = await self.store.last_seq(self.thread_id)
        if latest == 0 and compactor.last_seq > 0:
            # A ``latest`` read before this process's first append is 0 too: asked again under
            # the lock its appends hold, the store is behind none of them.
            async with self.lock:
                if await self.store.head(self.thread_id) is None:
                    raise ThreadDeleted(f"thread {self.thread_id!r} was deleted")
            return False
        if latest <= compactor.last_seq:
            return False
        async with self.lock:
            if latest <= compactor.last_seq:
                return False
            await self.catch_up_locked(compactor)
            return True

    async def catch_up_locked(self, compactor: SnapshotCompactor) -> None:
        async with aclosing(self.store.read(self.thread_id, after=compactor.last_seq)) as records:
            async for record in records:
                if self.epoch is None:  # another writer created the thread
                    await self.learn_epoch()
                compactor.feed(record.served, record.seq)
                self.recent.push((record,))

    async def learn_epoch(self) -> None:
        """Read the thread's epoch from the store, once it has records."""
        head = await self.store.head(self.thread_id)
        if head is not None:
            self._set_epoch(head.epoch)

    def _set_epoch(self, epoch: str) -> None:
        if epoch != self.epoch:
            self.epoch = self.recent.epoch = epoch
            # Anything encoded before had no epoch to put in its ids (there were none to give).
            self.recent.clear()
            self._finished_bytes = None
            self._view = None
            self._windows.clear()
            self._count()

    # -- reading ---------------------------------------------------------------------------

    async def current_view(
        self, compactor: SnapshotCompactor, turns: int | None, on_caught_up: Callable[[], None]
    ) -> ReplayView:
        """:meth:`view` (with ``turns``, :meth:`window_view`) after taking in what other
        writers stored (``on_caught_up`` then, when there was any)."""
        if await self.catch_up(compactor):
            on_caught_up()
        return self.view(compactor) if turns is None else self.window_view(compactor, turns)

    def view(self, compactor: SnapshotCompactor) -> ReplayView:
        """What a fresh client gets before the live tail (see ``docs/compaction-api.md``).

        The finished runs as one compacted block whose last frame (the terminal
        event) carries ``id: <folded seq>``, then the open run delta-compacted with
        the ids ``compact_sequenced`` allows; the last frame carries ``seq``.
        """
        view = self._view
        if view is not None and view.seq == compactor.last_seq:
            return view
        view = ReplayView.of(
            compactor.last_seq,
            (self._finished_frames(compactor), frames(compactor.open_run_events(), self.epoch)),
            compactor.run_open,
        )
        self._view = view
        self._count()
        return view

    def window_view(self, compactor: SnapshotCompactor, turns: int) -> ReplayView:
        """:meth:`view` with only the messages of the last ``turns`` runs (see
        ``protocol/compaction/window.py``): the window's block, its last frame carrying
        ``id: <folded seq>`` as the full block's does, then the open run as in :meth:`view`."""
        key = (compactor.folded_seq, turns, compactor.last_seq)
        view = self._windows.get(key)
        if view is not None:
            return view
        block = compactor.history_window(turns).events
        finished = b"".join(
            [event_frame(event) for event in block[:-1]]
            + [event_frame(event, compactor.folded_seq, self.epoch) for event in block[-1:]]
        )
        view = ReplayView.of(compactor.last_seq, (finished, self._open_frames(compactor)), compactor.run_open)
        # Views of an older position are never asked again: drop them with the surplus.
        self._windows = {k: v for k, v in self._windows.items() if k[0] == key[0] and k[2] == key[2]}
        if len(self._windows) >= _WINDOWS_KEPT:
            self._windows.clear()
        self._windows[key] = view
        self._count()
        return view

    def _open_frames(self, compactor: SnapshotCompactor) -> bytes:
        """The open run's frames, shared with the full view when it is current."""
        view = self._view
        if view is not None and view.seq == compactor.last_seq:
            return view.parts[1]
        return frames(compactor.open_run_events(), self.epoch)

    def _finished_frames(self, compactor: SnapshotCompactor) -> bytes:
        cached = self._finished_bytes
        if cached is not None and cached[0] == compactor.folded_seq:
            return cached[1]
        block = compactor.finished_block()
        data = b"".join(
            [event_frame(event) for event in block[:-1]]
            + [event_frame(event, compactor.folded_seq, self.epoch) for event in block[-1:]]
        )
        self._finished_bytes = (compactor.folded_seq, data)
        return data

    def _size(self) -> int:
        """A rough size of the replay state held: the encoded replay, and about twice
        that for the compactor's messages and state as Python objects."""
        finished = len(self._finished_bytes[1]) if self._finished_bytes is not None else 0
        open_part = len(self._view.parts[1]) if self._view is not None else 0
        windows = sum(view.nbytes for view in self._windows.values())
        return 3 * finished + 2 * open_part + windows

    def _count(self) -> None:
        """Bring the meter up to date after the caches changed."""
        size = self._size()
        self._meter.total += size - self._counted[0]
        self._counted[0] = size
