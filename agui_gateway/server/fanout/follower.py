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
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing

from agui_gateway.server.fanout.recent import FRAME_ROOM, RecentFrames, oversized_frames
from agui_gateway.server.sse import frame, frame_around
from agui_gateway.store.base import StoreError, ThreadStore

# Bytes handed to one ASGI send: small enough that a stalled client's transport
# buffers little beyond it, big enough that a replay is not a flood of tiny writes.
BATCH_BYTES = 32 * 1024


def slices(data: bytes | memoryview, size: int = BATCH_BYTES) -> Iterable[bytes | memoryview]:
    """``data`` in pieces of at most ``size`` bytes, without copying."""
    if len(data) <= size:
        yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield view[start : start + size]


class Batcher:
    """Groups small frames into sends of about :data:`BATCH_BYTES`."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._size = 0

    def add(self, data: bytes | memoryview) -> bytes | memoryview | None:
        """Add a frame; returns a full batch to send, or None."""
        self._parts.append(data)
        self._size += len(data)
        return self.flush() if self._size >= BATCH_BYTES else None

    def flush(self) -> bytes | memoryview | None:
        if not self._parts:
            return None
        out = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return out


class LogFollower:
    """Yields the SSE bytes of every record stored after a cursor, then follows the tail.

    ``wait`` is how the follower sleeps when caught up: it must return once the
    store has a record after the cursor, or something else the caller's ``stop``
    rule depends on changed, or ``timeout`` passed (then a heartbeat is sent).
    ``bound`` (when it returns a seq) is the last seq this stream may send.
    """

    def __init__(
        self,
        store: ThreadStore,
        thread_id: str,
        recent: RecentFrames,
        cursor: int,
        *,
        heartbeat_s: float,
        heartbeat: bytes,
        wait: Callable[[int, float], Awaitable[int]],
        stop: Callable[[int], bool] | None = None,
        bound: Callable[[], int | None] | None = None,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.recent = recent
        self.cursor = cursor
        self._heartbeat_s = heartbeat_s
        self._heartbeat = heartbeat
        self._wait = wait
        self._stop = stop
        self._bound = bound
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
            if self._stop is not None and self._stop(self.cursor):
                return
            latest = await self._wait(self.cursor, self._heartbeat_s)
            if latest <= self.cursor and (self._stop is None or not self._stop(self.cursor)):
                # Nothing new and not done: a timeout (the heartbeat keeps proxies
                # from closing an idle stream) or a run-state change not yet final.
                self.bytes_sent += len(self._heartbeat)
                yield self._heartbeat

    def _shared_batch(self, latest: int) -> bytes | None:
        """Everything up to ``latest`` as one buffer shared with the other subscribers at
        this cursor, when the recent frames hold it all and no bound cuts it; else None."""
        if self._bound is not None or self.recent.last_seq < latest:
            return None
        shared = self.recent.joined_after(self.cursor)
        if shared is not None:
            self.cursor = self.recent.last_seq
            self.bytes_sent += len(shared)
        return shared

    async def _send_stored(self, latest: int) -> AsyncGenerator[bytes | memoryview, None]:
        # Frames are gathered into sends of about BATCH_BYTES (a Batcher, inlined: the
        # loop below runs once per event per subscriber, 36,000 x 200 for a raw replay).
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
            bound_of = self._bound
            stored = _until_failure(self.store.read_event_json(self.thread_id, after=self.cursor), failed)
            async with aclosing(stored) as events:
                async for seq, event_json in events:
                    if bound_of is not None and (bound := bound_of()) is not None and seq > bound:
                        break
                    self.cursor = seq
                    split = oversized_frames(event_json, seq) if len(event_json) > FRAME_ROOM else None
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
                        for piece in self._big_frame(event_json, seq):
                            yield piece
                        continue
                    data = frame(event_json, seq)
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

    def _big_frame(self, event_json: bytes | memoryview, seq: int) -> Iterable[bytes | memoryview]:
        """``frame(event_json, seq)`` as pieces: the head, slices of the event, the tail."""
        head, tail = frame_around(seq)
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
        bound = self._bound() if self._bound is not None else None
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
