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

BLOCK_MS = 2000
_RETRY_S = (0.05, 0.2, 1.0)
logger = logging.getLogger(__name__)


class StreamWatch:
    def __init__(
        self,
        client: aioredis.Redis,
        stream_key: str,
        last_seq: Callable[[], Awaitable[int]],
        on_idle: Callable[[StreamWatch], None],
    ) -> None:
        self.latest = 0  # highest seq known to exist
        self.waiters = 0
        self._client = client
        self._stream_key = stream_key
        self._last_seq = last_seq
        self._on_idle = on_idle
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def advance(self, seq: int) -> None:
        if seq > self.latest:
            self.latest = seq
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait(self, after: int, known: int, timeout: float) -> int:
        """Wait until a seq > ``after`` exists (``known`` was read just before) or timeout."""
        self.advance(known)
        self.waiters += 1
        try:
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._follow())
            async with asyncio.timeout(timeout):
                while self.latest <= after:
                    await self._changed.wait()
        except TimeoutError:
            pass
        finally:
            self.waiters -= 1
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
                except (aioredis.RedisError, OSError) as exc:
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    logger.warning("watching %s failed (%s); retrying in %ss", self._stream_key, exc, delay)
                    await asyncio.sleep(delay)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self._on_idle(self)
