"""One ``XREAD BLOCK`` per watched thread per process, shared by all its waiters.

A gateway calls ``wait_for`` once per live subscriber, and cancels it whenever
something else wakes the subscriber first. One blocking XREAD (and Redis
connection) per call would not scale, and cancelling a blocked XREAD costs a
reconnect. So each thread with waiters gets one watcher task that follows the
stream from the latest seq it knows and wakes every local waiter when the
stream grows - whichever replica appended. Appends from this process advance
the watch directly. The watcher stops once nobody waits (after its current
block, at most ``BLOCK_MS``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from agui_gateway.store.base import StoreError
from agui_gateway.store.redis.connect import RedisClient

BLOCK_MS = 2000
_RETRY_S = (0.05, 0.2, 1.0)
logger = logging.getLogger(__name__)


class StreamWatch:
    def __init__(
        self,
        client: RedisClient,
        stream_key: str,
        last_seq: Callable[[], Awaitable[int]],
        on_idle: Callable[[StreamWatch], None],
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.latest = 0  # highest seq known to exist
        self.waiters = 0
        self.failure: str | None = None  # why the last XREAD failed, until one succeeds
        self.failures = 0  # XREAD failures so far: a waiter is told only of those during its wait
        self._client = client
        self._stream_key = stream_key
        self._last_seq = last_seq
        self._on_idle = on_idle
        self._on_failure = on_failure  # told of every failed XREAD (the store's outage clock)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def advance(self, seq: int) -> None:
        if seq > self.latest:
            self.latest = seq
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, after: int, known: int, timeout: float) -> int:
        """Wait until a seq > ``after`` exists (``known`` was read just before) or timeout.

        Raises :class:`StoreError` when the watch lost Redis: a waiter must not take
        the silence of a dead connection for a quiet thread.
        """
        self.advance(known)
        failures = self.failures
        self.waiters += 1
        try:
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._follow())
            async with asyncio.timeout(timeout):
                while self.latest <= after and self.failures == failures:
                    await self._changed.wait()
        except TimeoutError:
            pass
        finally:
            self.waiters -= 1
        if self.failures != failures and self.failure is not None and self.latest <= after:
            raise StoreError(f"watching the thread in Redis failed: {self.failure}")
        return self.latest

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _follow(self) -> None:
        failures = 0
        try:
            while self.waiters > 0:
                try:
                    found = await self._client.xread({self._stream_key: f"0-{self.latest}"}, count=1, block=BLOCK_MS)
                    if found:
                        self.advance(await self._last_seq())
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
