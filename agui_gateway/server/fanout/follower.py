"""Live fan-out without loss: each subscriber follows the durable log by its own cursor.

There is no per-subscriber queue. A subscriber remembers the last seq it sent
and, whenever it is woken (``store.wait_for``), reads what was stored after it.
The live path only wakes; it never hands an event to a subscriber. So:

* a slow or stalled client never makes the gateway drop an event for it: the
  event is in the log, and the client's cursor simply lags;
* a stalled client never makes the gateway's memory grow: its generator is
  suspended in ``send`` by the socket's backpressure (uvicorn pauses writing
  above the transport's high-water mark), holding at most one batch of
  :data:`BATCH_BYTES`; its backlog stays on disk.

The subscribers near the tail share the encoded frames of the thread's recent
records (:class:`~.recent.RecentFrames`); the others read the store by their cursor.

When a stream is complete, the last seq it may send and how it waits when caught up
are its kind's: a watcher (:class:`WatcherFollower`), a connect (:class:`ConnectFollower`),
a run's caller (:class:`CallerFollower`). They read state, never ask the runtime: the
thread's :class:`ThreadState` (what the runtime has taken in of the log, whether a run
of this process holds the thread), which the runtime keeps current, and a run's own record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from agui_gateway.server.fanout.batches import BATCH_BYTES, slices
from agui_gateway.server.fanout.recent import FRAME_ROOM, RecentFrames, oversized_frames
from agui_gateway.server.fanout.tail import LogState, ThreadTail
from agui_gateway.server.sse import HEARTBEAT, frame, frame_around
from agui_gateway.store.base import StoreError, ThreadDeleted, ThreadStore


@dataclass(frozen=True, slots=True)
class LogSource:
    """Where a thread's followers read its log: the store, the encoded frames of its latest
    records (shared), and the tail they wait on."""

    store: ThreadStore
    thread_id: str
    recent: RecentFrames
    tail: ThreadTail


class LogFollower:
    """Yields the SSE bytes of every record stored after a cursor, then follows the tail.

    This one follows until the client goes (or the thread is deleted); its subclasses
    end by their own rule (:meth:`complete`), may be cut at a seq (:meth:`bound`), and
    say how they sleep when caught up (:meth:`wait`: until the store has a record after
    the cursor, or something else the rule depends on changed, or ``timeout`` passed;
    then a heartbeat is sent).
    """

    bounded = False  # whether :meth:`bound` may cut the stream

    def __init__(self, source: LogSource, cursor: int, *, heartbeat_s: float) -> None:
        self.store = source.store
        self.thread_id = source.thread_id
        self.recent = source.recent
        self.tail = source.tail
        self.cursor = cursor
        self._heartbeat_s = heartbeat_s
        self.bytes_sent = 0
        self.caught_up_once = False
        self.bytes_before_caught_up = 0

    async def follow(self) -> AsyncGenerator[bytes | memoryview, None]:
        latest = await self.store.last_seq(self.thread_id)
        while True:
            if latest > self.cursor:
                shared = self._shared_batch(latest)
                if shared is not None:
                    # The live case, inline: this runs once per subscriber per round.
                    if len(shared) <= BATCH_BYTES:
                        yield shared
                    else:
                        for piece in slices(shared):
                            yield piece
                else:
                    async with aclosing(self._send_stored(latest)) as chunks:
                        async for chunk in chunks:
                            yield chunk
            if not self.caught_up_once:
                self.caught_up_once = True
                self.bytes_before_caught_up = self.bytes_sent
            if self.complete(self.cursor):
                return
            latest = await self.wait(self.cursor, self._heartbeat_s)
            if latest <= self.cursor and not self.complete(self.cursor):
                # Nothing new and not done: a timeout (the heartbeat keeps proxies
                # from closing an idle stream) or a run-state change not yet final.
                self.bytes_sent += len(HEARTBEAT)
                yield HEARTBEAT

    def complete(self, cursor: int) -> bool:
        """Whether the stream, at ``cursor``, is complete: where it ends."""
        return False

    def bound(self) -> int | None:
        """The last seq the stream may send (None: no bound yet); asked only when :attr:`bounded`."""
        return None

    async def wait(self, after: int, timeout: float) -> int:
        """Until a record after ``after`` (or a change :meth:`complete` depends on), or
        ``timeout``; returns the thread's latest seq."""
        return await wait_for_records(self.tail, self.recent, after, timeout)

    async def _wait_for_change(self, state: ThreadState, after: int, timeout: float) -> int:
        """Until a record after ``after``, a run of this process starting or ending, or the
        timeout; the records up to the latest seq taken in (by the tail) before it returns."""
        store_wait = asyncio.ensure_future(wait_for_records(self.tail, self.recent, after, timeout))
        run_wait = asyncio.ensure_future(state.run_changed.wait())
        try:
            await asyncio.wait((store_wait, run_wait), return_when=asyncio.FIRST_COMPLETED)
        finally:
            store_wait.cancel()
            run_wait.cancel()
        if self.tail.gone is not None:  # deleted: what this process holds goes out, then it ends
            return await wait_for_records(self.tail, self.recent, after, 0)
        if store_wait.done() and not store_wait.cancelled() and store_wait.exception() is None:
            latest: int = store_wait.result()
        else:
            latest = await self.store.last_seq(self.thread_id)
        await self.tail.take_in(latest)
        return latest

    def _shared_batch(self, latest: int) -> bytes | None:
        """Everything up to ``latest`` as one buffer shared with the other subscribers at
        this cursor, when the recent frames hold it all and no bound cuts it; else None."""
        if self.bounded or self.recent.last_seq < latest:
            return None
        shared = self.recent.joined_after(self.cursor)
        if shared is not None:
            self.cursor = self.recent.last_seq
            self.bytes_sent += len(shared)
        return shared

    async def _send_stored(self, latest: int) -> AsyncGenerator[bytes | memoryview, None]:
        # Frames are gathered into sends of about BATCH_BYTES (a Batcher, inlined: the
        # loop below runs once per event per subscriber, 36,000 x 200 for a raw replay).
        # First, before anything is taken from the cache: a store failure here loses nothing.
        epoch = await self._epoch()
        parts: list[bytes] = []
        size = 0
        failed: list[StoreError] = []
        for data in self._cached_frames():
            parts.append(data)
            size += len(data)
            if size >= BATCH_BYTES:
                for piece in self._flush(parts):
                    yield piece
                size = 0
        if self.cursor < latest:  # whatever the cache did not hold comes from the log itself
            # The events' stored bytes, never decoded: a replay of a long thread to many
            # clients costs each of them a slice per event, not a parse and an encode.
            bound_of = self.bound if self.bounded else None
            stored = _until_failure(self.store.read_event_json(self.thread_id, after=self.cursor), failed)
            async with aclosing(stored) as events:
                async for seq, event_json in events:
                    if bound_of is not None and (bound := bound_of()) is not None and seq > bound:
                        break
                    self.cursor = seq
                    split = oversized_frames(event_json, seq, epoch) if len(event_json) > FRAME_ROOM else None
                    if split is not None:
                        # Too big for one frame of the client: split (see oversized_frames).
                        parts.append(split)
                        for piece in self._flush(parts):
                            yield piece
                        size = 0
                        continue
                    if len(event_json) > BATCH_BYTES:
                        # A big event goes out in slices of its own bytes, never copied
                        # into a frame: a stalled client holds one event, not three.
                        if parts:
                            for piece in self._flush(parts):
                                yield piece
                            size = 0
                        for piece in self._big_frame(event_json, seq, epoch):
                            yield piece
                        continue
                    data = frame(event_json, seq, epoch=epoch)
                    parts.append(data)
                    size += len(data)
                    if size >= BATCH_BYTES:
                        for piece in self._flush(parts):
                            yield piece
                        size = 0
        if parts:
            for piece in self._flush(parts):
                yield piece
        if failed:  # after what was read went out: the cursor is exactly what was sent
            raise failed[0]

    async def _epoch(self) -> str | None:
        """The thread's epoch for the ids: the replay state's; read from the store when the
        records read are ahead of it (a new thread's first append, not taken in yet)."""
        if self.recent.epoch is not None:
            return self.recent.epoch
        head = await self.store.head(self.thread_id)
        return head.epoch if head is not None else None

    def _big_frame(self, event_json: bytes | memoryview, seq: int, epoch: str | None) -> Iterable[bytes | memoryview]:
        """``frame(event_json, seq)`` as pieces: the head, slices of the event, the tail."""
        head, tail = frame_around(seq, epoch)
        self.bytes_sent += len(head) + len(event_json) + len(tail)
        yield head
        yield from slices(event_json)
        yield tail

    def _flush(self, parts: list[bytes]) -> Iterable[bytes | memoryview]:
        """The gathered frames as send-sized pieces; empties ``parts``."""
        batch = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self.bytes_sent += len(batch)
        return slices(batch)

    def _cached_frames(self) -> list[bytes]:
        frames = self.recent.after(self.cursor)
        if not frames:
            return []
        bound = self.bound() if self.bounded else None
        if bound is not None:
            frames = frames[: max(0, bound - self.cursor)]
        self.cursor += len(frames)
        return frames


async def _until_failure(
    events: AsyncGenerator[tuple[int, bytes | memoryview], None], failed: list[StoreError]
) -> AsyncGenerator[tuple[int, bytes | memoryview], None]:
    """``events`` until the store fails under them (the failure put in ``failed``), so the
    frames gathered before it are sent before it is raised: a stream that waits out a
    store outage goes on from its cursor without a gap."""
    async with aclosing(events):
        try:
            async for item in events:
                yield item
        except StoreError as exc:
            failed.append(exc)


async def wait_for_records(tail: ThreadTail, recent: RecentFrames, after: int, timeout: float) -> int:
    """Until the thread has a record after ``after`` (taken into ``recent`` already), or
    ``timeout``; returns the latest seq. Once the thread was deleted, :class:`ThreadDeleted`
    only after the records this process took in before were sent: a run's caller gets its
    run's end, stored before the delete."""
    try:
        return await tail.wait(after, timeout)
    except ThreadDeleted:
        if recent.after(after):
            return recent.last_seq
        raise


class ThreadState:
    """What the streams of one thread read to know when they are complete, kept current by
    the thread's runtime (``runtime/thread.py``): the log it has taken in, whether a run of
    this process holds the thread, and an event set (then replaced) when such a run starts
    or ends, or the process begins to drain."""

    def __init__(self) -> None:
        self.log: LogState | None = None  # set once the replay state is ready
        self.run_here = False
        self.run_changed = asyncio.Event()

    def announce_run_change(self) -> None:
        changed, self.run_changed = self.run_changed, asyncio.Event()
        changed.set()

    @property
    def log_run_open(self) -> bool:
        """Whether the log, as this process knows it, has a run without a terminal event."""
        log = self.log
        return log is not None and log.run_open

    @property
    def last_seq(self) -> int:
        log = self.log
        return 0 if log is None else log.last_seq

    def log_settled(self, cursor: int) -> bool:
        """The log has no run open and nothing after ``cursor``: a stream at ``cursor`` holds
        every run's end."""
        return not self.log_run_open and cursor >= self.last_seq


class RunOutcome(Protocol):
    """What a run's caller stream reads of its run (``runtime/active_run.py``'s ``ActiveRun``):
    set by the runtime when the run lets go of the thread."""

    released: asyncio.Event
    final_seq: int | None  # the seq of the run's last event, once released


class Draining(Protocol):
    """Whether the process drains (``runtime/readiness.py``)."""

    @property
    def draining(self) -> bool: ...


class WatcherFollower(LogFollower):
    """A watcher (``GET /threads/{t}/events``) follows forever, except while the process
    drains: then it ends once the thread has no run open (it resumes on another replica
    by its last id)."""

    def __init__(
        self, source: LogSource, cursor: int, *, heartbeat_s: float, state: ThreadState, process: Draining
    ) -> None:
        super().__init__(source, cursor, heartbeat_s=heartbeat_s)
        self.state = state
        self.process = process

    def complete(self, cursor: int) -> bool:
        return self.process.draining and self.state.log_settled(cursor)


class ConnectFollower(LogFollower):
    """A connect's stream ends once the thread is settled: no run in progress (here or in
    the log) and nothing after the cursor."""

    def __init__(self, source: LogSource, cursor: int, *, heartbeat_s: float, state: ThreadState) -> None:
        super().__init__(source, cursor, heartbeat_s=heartbeat_s)
        self.state = state

    def complete(self, cursor: int) -> bool:
        state = self.state
        return not state.run_here and state.log_settled(cursor)

    async def wait(self, after: int, timeout: float) -> int:
        return await self._wait_for_change(self.state, after, timeout)


class CallerFollower(LogFollower):
    """A run's caller gets the log from just before the run to the run's last event; the
    bound keeps a next run (started the moment this one ended) out of it."""

    bounded = True

    def __init__(
        self, source: LogSource, cursor: int, *, heartbeat_s: float, state: ThreadState, run: RunOutcome
    ) -> None:
        super().__init__(source, cursor, heartbeat_s=heartbeat_s)
        self.state = state
        self.run = run

    def complete(self, cursor: int) -> bool:
        run = self.run
        return run.released.is_set() and cursor >= (run.final_seq or 0)

    def bound(self) -> int | None:
        return self.run.final_seq

    async def wait(self, after: int, timeout: float) -> int:
        return await self._wait_for_change(self.state, after, timeout)


def follower_for(
    store: ThreadStore,
    thread_id: str,
    recent: RecentFrames,
    cursor: int,
    *,
    heartbeat_s: float,
    tail: ThreadTail,
    state: ThreadState,
    caller_of: RunOutcome | None = None,
    until_settled: bool = False,
    process: Draining | None = None,
) -> LogFollower:
    """The follower of a stream at ``cursor``, of the kind its rule asks for: a run's
    caller (``caller_of``), a connect (``until_settled``), a watcher (``process``), else
    one that follows until the client goes."""
    source = LogSource(store, thread_id, recent, tail)
    if caller_of is not None:
        return CallerFollower(source, cursor, heartbeat_s=heartbeat_s, state=state, run=caller_of)
    if until_settled:
        return ConnectFollower(source, cursor, heartbeat_s=heartbeat_s, state=state)
    if process is not None:
        return WatcherFollower(source, cursor, heartbeat_s=heartbeat_s, state=state, process=process)
    return LogFollower(source, cursor, heartbeat_s=heartbeat_s)
