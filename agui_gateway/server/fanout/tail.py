"""One follower of a thread's log per gateway process, waking that process's subscribers.

Before, every live subscriber waited on the store itself (``store.wait_for``) and woke
on every append: a thread with 1,000 subscribers at 200 events/s meant 200,000 wake-ups
a second, each with its own timer (and, on Redis, a round trip per wake-up), and the
event loop fell behind by hundreds of milliseconds.

Now a :class:`ThreadTail` task is the only waiter on the store for its thread. When
the log grows (an append by this process or, on Redis, by any replica through the
store's single ``XREAD BLOCK`` per thread), it first takes the new records into the
thread's replay state and recent frames (``follow``: read once from the store, for all
subscribers), then wakes every local subscriber at once: a *round*. Each woken
subscriber sends what is new as one write (``LogFollower``) and waits again.

Rounds are paced by what they cost. The tail measures how long its subscribers took to
run their round (they all run before the tail's own next step) and then pauses for half
as long again (:data:`WINDOW_PER_ROUND`), at least :data:`MIN_WINDOW_S` and at most
:data:`MAX_WINDOW_S`. Appends during the pause are picked up by the next round, so a busy
thread wakes each subscriber once per batch of events, its fan-out takes at most about
two thirds of the process's time, and an event waits for at most about one and a half
rounds. A fixed window either wasted CPU (too short for many subscribers: rounds back to
back) or added latency (too long for few). When the process is busy with other work,
rounds take longer and the pauses grow with them. A subscriber that falls behind the
recent frames reads from the store by its own cursor: nothing is lost, and a stalled
client holds no backlog in memory.

Waiting costs a subscriber no timer of its own: the tail also ends a round every
:data:`TICK_S` while the thread is quiet, so a waiter whose timeout (its heartbeat) falls
after the tail's next round needs no timer; only a waiter whose deadline comes sooner
sets one.

The tail follows one incarnation of the thread: the epoch it finds when the thread has
records (``store.head``). When the thread is deleted, by this process (:meth:`ThreadTail.deleted`)
or, on a shared store, by any replica (``wait_for(..., epoch=)`` raises
:class:`~agui_gateway.store.base.ThreadDeleted`), every waiter gets ``ThreadDeleted`` and
the tail ends for good: its subscribers' streams end with a ``thread_deleted`` frame.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Protocol, TypeVar

from agui_gateway.store.base import StoreError, ThreadDeleted, ThreadStore

log = logging.getLogger("agui_gateway.server.tail")

_R = TypeVar("_R")

# The longest store wait: a quiet thread's round at least this often (its waiters check
# their deadlines); a tail whose waiters have all gone ends after one such wait.
TICK_S = 5.0
# The pause after a round, as a multiple of what the round cost, and its bounds: at 0.5,
# fan-out takes at most two thirds of the event loop (measured with bench/replicas_bench.py,
# 1,000 subscribers at 200 events/s: p99 60-66 ms at 0.5, 80-87 ms at 1.0, gateway 72% vs
# 58% of a core); the floor lets a few appends gather even with few subscribers, the
# ceiling bounds the delay a huge round can add.
WINDOW_PER_ROUND = 0.5
MIN_WINDOW_S = 0.002
MAX_WINDOW_S = 0.05
_RETRY_S = (0.05, 0.2, 1.0)


class LogState(Protocol):
    """The log as the runtime has taken it in (its replay state's compactor)."""

    @property
    def last_seq(self) -> int: ...

    @property
    def run_open(self) -> bool: ...


class TakenIn(Protocol):
    """What the runtime has taken in of the log: None until its replay state is ready
    (``follower.py``'s ``ThreadState``, which the runtime keeps current)."""

    log: LogState | None


class ThreadTail:
    def __init__(
        self,
        store: ThreadStore,
        thread_id: str,
        follow: Callable[[int], Awaitable[None]],
        on_deleted: Callable[[], None] | None = None,
        taken_in: TakenIn | None = None,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.seq = 0  # the latest seq taken in and announced
        self.error: StoreError | None = None  # the store failed under the tail (until it recovers)
        self.failures = 0  # store failures so far: a waiter is told only of those during its wait
        self.interrupts = 0  # interrupt() calls so far: every waiter then returns, to look again
        self.waiters = 0
        self.rounds = 0  # rounds so far (a round wakes every waiter once)
        self.epoch: str | None = None  # the incarnation followed, once the thread has records
        self.gone: ThreadDeleted | None = None  # the thread was deleted: final
        # Held weakly when they are its owner's methods (the thread runtime's, which holds the
        # tail): see _weakly. The task resolves them while it runs, so they hold then.
        # ``follow`` takes in records other writers stored (runtime/thread.py's take_in).
        self._follow = _weakly(follow)
        self._on_deleted = _weakly(on_deleted) if on_deleted is not None else None
        self._taken_in = taken_in
        # One future per waiting subscriber (cheap, and one waiter's cancellation is its own).
        self._waiting: list[asyncio.Future[None]] = []
        self._round_by = 0.0  # loop time by which the tail ends the current round, at the latest
        self._task: asyncio.Task[None] | None = None

    async def wait(self, after: int, timeout: float) -> int:
        """Until the tail announced a seq > ``after``, or ``timeout``; returns the latest seq.

        Raises :class:`StoreError` when the store fails under the tail, :class:`ThreadDeleted`
        once the thread was deleted.
        """
        if self.gone is not None:
            raise self.gone
        if self.seq > after:
            return self.seq
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        failures, interrupts = self.failures, self.interrupts
        self.waiters += 1
        try:
            while (
                self.seq <= after and self.failures == failures and self.interrupts == interrupts and self.gone is None
            ):
                if self._task is None:
                    self._round_by = loop.time() + TICK_S
                    self._task = loop.create_task(self._run(), name=f"tail-{self.thread_id}")
                woken = loop.create_future()
                self._waiting.append(woken)
                if deadline >= self._round_by:
                    await woken  # the tail ends this round before the deadline
                    if loop.time() >= deadline:
                        break
                else:
                    # Sooner than the tail's next round: a timer of this waiter's own.
                    try:
                        async with asyncio.timeout_at(deadline):
                            await woken
                    except TimeoutError:
                        break
        finally:
            self.waiters -= 1
        if self.gone is not None:
            raise self.gone
        if self.failures != failures and self.error is not None and self.seq <= after:
            raise self.error
        return self.seq

    async def take_in(self, latest: int) -> None:
        """Have the records up to ``latest`` taken in now, as a round would (a stream woken
        by something else than the tail, a run's start or end, looks at the thread)."""
        follow = self._follow()
        if follow is not None and self._news(latest):
            await follow(latest)

    def _news(self, latest: int) -> bool:
        """Whether the log up to ``latest`` may hold records the runtime has not taken in
        (another writer's): this process's own appends went in as they were stored, so a
        round after them asks the runtime nothing. (With nothing taken in yet there is
        nothing to add to; a ``latest`` of 0 may mean the thread was deleted: asked.)"""
        if self._taken_in is None:
            return True
        log = self._taken_in.log
        return log is not None and (latest == 0 or latest > log.last_seq)

    def interrupt(self) -> None:
        """Make every waiter return now, with what is stored so far: something else its stream
        depends on changed (the process began to drain)."""
        self.interrupts += 1
        self._end_round()

    def deleted(self, message: str) -> None:
        """The thread was deleted: every waiter, now and later, gets :class:`ThreadDeleted`."""
        if self.gone is None:
            self.gone = ThreadDeleted(message)
        self.stop()
        self._end_round()

    def stop(self) -> None:
        """End the tail task; anyone still waiting is woken (and would start a new one)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._end_round()

    def _end_round(self) -> None:
        """Wake every waiter: they find the new seq, a failure, or their deadline."""
        self.rounds += 1
        waiting, self._waiting = self._waiting, []
        for woken in waiting:
            if not woken.done():  # a waiter that went away cancelled its own
                woken.set_result(None)

    async def _run_round(self) -> float:
        """End the round and let every waiter run it; returns what that took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._end_round()
        # The waiters' wake-ups were scheduled first, so by the time this task runs again
        # each of them has sent its batch (or blocked on a slow socket) and waits again.
        await asyncio.sleep(0)
        return loop.time() - started

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        # Strong while the task runs: its waiters hold the owner anyway.
        follow = self._follow()
        on_deleted = self._on_deleted() if self._on_deleted is not None else None
        try:
            if follow is None:  # the owner is gone, and with it whoever would wait
                return
            while self.waiters > 0:
                try:
                    now = loop.time()
                    if self._round_by <= now:
                        # The round the waiters were promised (a quiet thread's tick, or
                        # the end of a retry pause): those past their deadline return.
                        self._end_round()
                        self._round_by = now + TICK_S
                    if self.epoch is None:
                        head = await self.store.head(self.thread_id)
                        self.epoch = head.epoch if head is not None else None
                    latest = await self.store.wait_for(self.thread_id, self.seq, self._round_by - now, epoch=self.epoch)
                    if self._news(latest):
                        await follow(latest)
                except ThreadDeleted as exc:  # before StoreError, its base: final, no retry
                    if self.gone is None:  # not told already (by deleted())
                        self.gone = exc
                        if on_deleted is not None:
                            on_deleted()
                    return
                except StoreError as exc:
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    self.error = exc
                    self.failures += 1
                    self._round_by = loop.time() + delay
                    self._end_round()  # the waiters learn it now, not at their timeout
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.error = None
                if latest <= self.seq:
                    continue  # nothing new: a tick (when the promised round is due)
                self.seq = latest
                cost = await self._run_round()
                window = min(MAX_WINDOW_S, max(MIN_WINDOW_S, cost * WINDOW_PER_ROUND))
                self._round_by = loop.time() + window + TICK_S
                await asyncio.sleep(window)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self._end_round()  # nobody may wait on a round no tail will end


def _weakly(callback: Callable[..., _R]) -> Callable[[], Callable[..., _R] | None]:
    """A reference to ``callback`` that is weak when it is a bound method.

    The tail's owner (the thread runtime) holds the tail and hands it its own methods: held
    strongly, they made every runtime a reference cycle, which only the cyclic garbage
    collector frees, and the gateway runs that one rarely (see ``cli/process.py``): the
    runtimes the registry had dropped piled up with the threads read. Held weakly, a
    runtime no one uses any more is freed at once.
    """
    if isinstance(callback, MethodType):
        return weakref.WeakMethod(callback)
    return lambda: callback
