"""What a run read from its agent and has not stored yet: the queue between a run's reader
and its writer, which also carries the run through a store outage.

Normally it holds at most ``max_items`` items, and the reader waits while it is full
(backpressure on the agent's socket when the store is slower). While the store is
unavailable (``StoreUnavailable``: a Redis restart or failover) the writer keeps its
batch and retries it, and the buffer takes whatever the agent sends, in order, counting
its bytes, within the run's :class:`OutageLimits`: its own bytes, the bytes of every run
of the process together (:class:`OutagePool`, so memory stays bounded whatever the
number of runs caught in an outage) and the time since the outage began (the writer
checks it, :meth:`OutageBuffer.over_time`). When the bytes run out, :meth:`~OutageBuffer.put`
refuses the item and the run stops reading its agent; it then ends with a RUN_ERROR
stored after what it holds, once the store answers (``run_task.py``).

Bytes are counted only during an outage (from its start, for what the buffer held then):
outside one the item bound keeps the buffer small, and encoding every event once more
to measure it would cost the hot path for nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

import orjson

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.upstream.run import AgentEvent, GatewayEvent

BufferedItem = AgentEvent | GatewayEvent


@dataclass(frozen=True, slots=True)
class OutageLimits:
    """How much of a store outage a run rides out (``GatewayConfig.store_outage_*``, where
    the defaults and their reasons are)."""

    budget_s: float
    run_bytes: int
    total_bytes: int

    @classmethod
    def of(cls, config: GatewayConfig) -> OutageLimits:
        return cls(config.store_outage_budget_s, config.store_outage_buffer_bytes, config.store_outage_total_bytes)


class OutagePool:
    """The bytes and events every run of the process holds during store outages, against
    :attr:`OutageLimits.total_bytes`; mirrored in the metrics."""

    def __init__(self, limits: OutageLimits, metrics: GatewayMetrics) -> None:
        self.limits = limits
        self._metrics = metrics
        self.bytes = 0
        self.events = 0

    def take(self, size: int, *, force: bool = False) -> bool:
        """Count ``size`` bytes of one event; False (nothing counted) when that would pass
        the process's total, unless ``force`` (an event held already)."""
        if not force and self.bytes + size > self.limits.total_bytes:
            return False
        self.bytes += size
        self.events += 1
        self._publish()
        return True

    def give(self, size: int, events: int) -> None:
        self.bytes -= size
        self.events -= events
        self._publish()

    def _publish(self) -> None:
        self._metrics.outage_buffered_bytes.set(self.bytes)
        self._metrics.outage_buffered_events.set(self.events)


def event_bytes(item: BufferedItem) -> int:
    """About what the event costs held in memory: its JSON's length."""
    return len(orjson.dumps(item.event))


class OutageBuffer:
    """One run's items between its reader and its writer (see the module docstring)."""

    def __init__(self, pool: OutagePool, max_items: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._max_items = max_items
        self._clock = clock
        self._items: deque[tuple[BufferedItem, int]] = deque()  # (item, bytes counted for it)
        self._changed = asyncio.Event()
        self.closed = False  # the reader is done: nothing more comes
        self.outage_since: float | None = None  # when the current outage began (the clock's time)
        self.bytes = 0  # bytes counted for the items held (during and since an outage)
        self.refused: str | None = None  # why an item was refused (the bytes ran out)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def limits(self) -> OutageLimits:
        return self._pool.limits

    # -- the reader's side ---------------------------------------------------------------

    async def put(self, item: BufferedItem) -> bool:
        """Add the reader's next item, waiting while the buffer is full outside an outage.

        False: an outage's byte limits ran out; the item is not kept (it was never stored
        nor sent to anyone) and the run stops reading its agent.
        """
        while self.outage_since is None and len(self._items) >= self._max_items:
            await self._wait()
        size = 0
        if self.outage_since is not None:
            size = event_bytes(item)
            if self.bytes + size > self.limits.run_bytes:
                self.refused = f"the run's outage buffer ({self.limits.run_bytes} bytes) is full"
                return False
            if not self._pool.take(size):
                self.refused = f"the outage buffers of all runs ({self.limits.total_bytes} bytes) are full"
                return False
            self.bytes += size
        self._items.append((item, size))
        self._wake()
        return True

    def close(self) -> None:
        """The reader is done."""
        self.closed = True
        self._wake()

    # -- the writer's side ---------------------------------------------------------------

    async def next_batch(self, limit: int) -> list[BufferedItem]:
        """The oldest items (``limit`` at most), kept until :meth:`stored`; waits for one.
        Empty: the reader is done and everything was stored."""
        while not self._items and not self.closed:
            await self._wait()
        return [item for item, _ in islice(self._items, limit)]

    def stored(self, count: int) -> None:
        """The oldest ``count`` items are stored: let them go."""
        freed = counted = 0
        for _ in range(count):
            _, size = self._items.popleft()
            if size:
                freed += size
                counted += 1
        if counted:
            self.bytes -= freed
            self._pool.give(freed, counted)
        self._wake()

    def outage_began(self) -> bool:
        """The store is unavailable: the reader goes on within the limits. Whether this began
        an outage (False: one is going on already). What the buffer holds counts from now."""
        if self.outage_since is not None:
            return False
        self.outage_since = self._clock()
        held = list(self._items)
        self._items.clear()
        for item, size in held:
            if not size:
                size = event_bytes(item)
                self._pool.take(size, force=True)
                self.bytes += size
            self._items.append((item, size))
        self._wake()
        return True

    def outage_ended(self) -> None:
        """The store answers again: the item bound applies again (what is held above it goes
        out first; it stays counted until stored)."""
        self.outage_since = None

    def over_time(self) -> bool:
        """Whether the current outage has lasted the run's whole budget."""
        since = self.outage_since
        return since is not None and self._clock() - since >= self.limits.budget_s

    def discard(self) -> None:
        """The run gives up what it holds (the process stops with the store still away)."""
        self.stored(len(self._items))

    # -- waking ------------------------------------------------------------------------------

    async def _wait(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
