"""One ``XREAD BLOCK`` per watched thread per process, shared by all its waiters.

A gateway calls ``wait_for`` once per live subscriber, and cancels it whenever
something else wakes the subscriber first. One blocking XREAD (and Redis
connection) per call would not scale, and cancelling a blocked XREAD costs a
reconnect. So each thread with waiters gets one watcher task that follows the
stream from the latest seq it knows and wakes every local waiter when the
stream grows - whichever replica appended. Appends from this process advance
the watch directly. The watcher stops once nobody waits (after its current
block, at most ``BLOCK_MS``).

Deletes: a blocked XREAD does not wake when its stream is deleted, so a delete also
adds an entry to the thread's deletion notice (``P:{T}:deleted``, a stream in the
thread's slot that expires a minute later), which the same XREAD follows. On a notice,
or on new records, the watch reads the thread's head (epoch and last seq) again; every
such read is made after the one before it returned (one at a time), so the watch never
goes back to an older state. A new epoch (the thread deleted, or deleted and created
again) replaces the watch's position, even by a lower seq, and wakes every waiter:
those that follow the old epoch learn that their thread is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis

from agui_gateway.store.base import StoreError, StoreUnavailable
from agui_gateway.store.redis.connect import RedisClient

BLOCK_MS = 2000
_RETRY_S = (0.05, 0.2, 1.0)
logger = logging.getLogger(__name__)

# The thread's head as the watch knows it: (epoch or None when it has no records, last seq).
Head = tuple[str | None, int]


class StreamWatch:
    def __init__(
        self,
        client: RedisClient,
        stream_key: str,
        notice_key: str,
        read_head: Callable[[], Awaitable[Head]],
        on_idle: Callable[[StreamWatch], None],
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.latest = 0  # highest seq known to exist (in the current epoch)
        self.epoch: str | None = None  # the thread's epoch as of the last head read
        self.known = False  # whether a head was read yet
        self.waiters = 0
        self.failure: str | None = None  # why the last XREAD failed, until one succeeds
        self.failures = 0  # XREAD failures so far: a waiter is told only of those during its wait
        self._client = client
        self._stream_key = stream_key
        self._notice_key = notice_key
        self._notice_cursor = "0-0"  # the last deletion notice seen
        self._read_head = read_head
        self._on_idle = on_idle
        self._on_failure = on_failure  # told of every failed XREAD (the store's outage clock)
        self._reading = asyncio.Lock()  # head reads one after the other: never an older state
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refreshes: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    def advance(self, seq: int, epoch: str | None) -> None:
        """An append of this process stored up to ``seq`` in ``epoch``."""
        if self.known and epoch == self.epoch:
            if seq > self.latest:
                self.latest = seq
                self._wake()
        else:  # created again meanwhile, or not read yet: ask Redis rather than guess
            self._refresh_soon()

    def forget_epoch(self) -> None:
        """This process deleted the thread: read the head again (after the delete)."""
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh_quietly())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def refresh(self) -> None:
        async with self._reading:
            epoch, seq = await self._read_head()
        self.known = True
        if epoch != self.epoch:
            self.epoch, self.latest = epoch, seq
            self._wake()
        elif seq > self.latest:
            self.latest = seq
            self._wake()

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except (aioredis.RedisError, OSError, StoreError) as exc:  # the follower retries and reports
            logger.debug("reading the head of %s failed: %s", self._stream_key, exc)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, after: int, timeout: float, epoch: str | None = None) -> Head:
        """Wait until a seq > ``after`` exists, or ``timeout``; returns the head then.

        With ``epoch``, returns as soon as the thread's epoch is another (the caller checks).
        Raises :class:`StoreError` when the watch lost Redis: a waiter must not take
        the silence of a dead connection for a quiet thread.
        """
        if not self.known or (epoch is not None and epoch != self.epoch):
            await self.refresh()
        failures = self.failures
        self.waiters += 1
        try:
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._follow())
            async with asyncio.timeout(timeout):
                while self.latest <= after and self.failures == failures and (epoch is None or epoch == self.epoch):
                    await self._changed.wait()
        except TimeoutError:
            pass
        finally:
            self.waiters -= 1
        if self.failures != failures and self.failure is not None and self.latest <= after:
            raise StoreUnavailable(f"watching the thread in Redis failed: {self.failure}")
        return self.epoch, self.latest

    def stop(self) -> None:
        for task in self._refreshes:
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _follow(self) -> None:
        failures = 0
        try:
            while self.waiters > 0:
                try:
                    if failures:  # what happened while the connection was down
                        await self.refresh()
                    found = await self._client.xread(
                        {self._stream_key: f"0-{self.latest}", self._notice_key: self._notice_cursor},
                        count=1,
                        block=BLOCK_MS,
                    )
                    for key, entries in cast(list[Any], found or []):
                        if _text(key) == self._notice_key and entries:
                            self._notice_cursor = _text(entries[-1][0])
                    if found:
                        await self.refresh()
                    failures = 0
                    self.failure = None
                except (aioredis.RedisError, OSError, StoreError) as exc:
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    if self.failure is None:
                        logger.warning("watching %s failed (%s); retrying every %ss", self._stream_key, exc, delay)
                    self.failure = str(exc) or type(exc).__name__
                    self.failures += 1
                    if self._on_failure is not None:
                        self._on_failure()
                    self._wake()  # the waiters learn it now, not at their timeout
                    await asyncio.sleep(delay)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self._on_idle(self)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
