"""One follower of a thread's log per gateway process, waking that process's subscribers.

Before, every live subscriber waited on the store itself (``store.wait_for``) and woke
on every append: a thread with 1,000 subscribers at 200 events/s meant 200,000 wake-ups
a second, each with its own timer (and, on Redis, a round trip per wake-up), and the
event loop fell behind by hundreds of milliseconds.

Now a :class:`ThreadTail` task is the only waiter on the store for its thread. When
the log grows (an append by this process or, on Redis, by any replica through the
store's single ``XREAD BLOCK`` per thread), it first takes the new records into the
thread's replay state and recent frames (``follow``: read once from the store, for all
subscribers), then wakes every local subscriber at once, and then pauses for a short
coalescing window that grows with the number of subscribers. Appends during the window
are picked up by the next wake-up, so a busy thread wakes each subscriber once per batch
of events, and each subscriber sends that batch as one write (``LogFollower``). A
subscriber that falls behind the recent frames reads from the store by its own cursor,
as before: nothing is lost, and a stalled client holds no backlog in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agui_gateway.store.base import StoreError, ThreadStore

log = logging.getLogger("agui_gateway.server.tail")

IDLE_WAIT_S = 5.0  # one store wait while nobody needs the tail; then the task ends
# The coalescing window: about 20 us per subscriber (the cost of one wake-up and send),
# at most 20 ms, so that waking everyone takes a fraction of the window.
WINDOW_PER_SUBSCRIBER_S = 20e-6
MAX_WINDOW_S = 0.02
_RETRY_S = (0.05, 0.2, 1.0)


class ThreadTail:
    def __init__(
        self,
        store: ThreadStore,
        thread_id: str,
        follow: Callable[[int], Awaitable[None]],
        subscribers: Callable[[], int],
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.seq = 0  # the latest seq taken in and announced
        self.error: StoreError | None = None  # the store failed under the tail (until it recovers)
        self.failures = 0  # store failures so far: a waiter is told only of those during its wait
        self.waiters = 0
        self._follow = follow
        self._subscribers = subscribers
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def wait(self, after: int, timeout: float) -> int:
        """Until the tail announced a seq > ``after``, or ``timeout``; returns the latest seq.

        Raises :class:`StoreError` when the store fails under the tail.
        """
        if self.seq > after:
            return self.seq
        failures = self.failures
        self.waiters += 1
        try:
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name=f"tail-{self.thread_id}")
            async with asyncio.timeout(timeout):
                while self.seq <= after and self.failures == failures:
                    await self._changed.wait()
        except TimeoutError:
            pass
        finally:
            self.waiters -= 1
        if self.failures != failures and self.error is not None and self.seq <= after:
            raise self.error
        return self.seq

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _window(self) -> float:
        return min(MAX_WINDOW_S, WINDOW_PER_SUBSCRIBER_S * self._subscribers())

    async def _run(self) -> None:
        failures = 0
        try:
            while self.waiters > 0:
                try:
                    latest = await self.store.wait_for(self.thread_id, self.seq, IDLE_WAIT_S)
                    await self._follow(latest)
                except StoreError as exc:
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    self.error = exc
                    self.failures += 1
                    self._wake()  # the waiters learn it now, not at their timeout
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.error = None
                if latest > self.seq:
                    self.seq = latest
                    self._wake()
                    await asyncio.sleep(self._window())
        finally:
            if self._task is asyncio.current_task():
                self._task = None
