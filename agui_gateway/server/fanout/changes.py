"""Which threads changed: the hub behind ``GET /threads/changes``.

The thread runtimes call :meth:`ThreadChanges.touch` when they store records or
a run starts or ends. Each feed subscriber holds the set of thread ids touched
since it last looked, so a burst of 36,000 deltas on one thread is one entry,
and a subscriber costs one set insertion per touch. The feed (see
:mod:`.ui.routes`) turns that set into one ``thread`` frame per changed thread
at most a few times a second, instead of every page polling every thread. A thread
deleted (:meth:`ThreadChanges.deleted`) is one ``thread_deleted`` frame, unless it has
records again by the time the feed looks.

A subscriber holds at most :data:`PENDING_MAX` thread ids between two looks: one whose
client stopped reading (its feed blocked on a full socket) would otherwise hold the id of
every thread touched meanwhile. Beyond that it forgets them and is marked overflowed; the
feed then sends ``ready`` again, on which the page reloads the whole list.

The hub sees this process's writes only: with the Redis store and several
replicas, a thread written by another replica shows up here when this process
next touches it (or when a page reloads the list).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NamedTuple

# Thread ids (touched and deleted) one subscriber holds at most: some 300 KiB.
PENDING_MAX = 4096


class Changed(NamedTuple):
    """What a feed subscriber takes: the threads touched, and those deleted, since it last looked;
    ``overflowed``: more than :data:`PENDING_MAX` were, and which is forgotten (reload the list)."""

    touched: set[str]
    deleted: set[str]
    overflowed: bool = False


class ChangeSubscription:
    """The thread ids touched since the last :meth:`take`, and a wake-up signal."""

    def __init__(self) -> None:
        self._pending: set[str] = set()
        self._deleted: set[str] = set()
        self._overflowed = False
        self._signal = asyncio.Event()

    def add(self, thread_id: str) -> None:
        if not self._overflowed:
            self._pending.add(thread_id)
            self._bound()
        self._signal.set()

    def add_deleted(self, thread_id: str) -> None:
        if not self._overflowed:
            self._deleted.add(thread_id)
            self._bound()
        self._signal.set()

    @property
    def pending(self) -> int:
        """Thread ids held until the next :meth:`take`."""
        return len(self._pending) + len(self._deleted)

    def _bound(self) -> None:
        if self.pending > PENDING_MAX:
            self._pending, self._deleted = set(), set()
            self._overflowed = True

    async def wait(self, timeout: float) -> bool:
        """Wait until something is pending or ``timeout`` passes; whether something is."""
        if not self._pending and not self._deleted and not self._overflowed:
            with suppress(TimeoutError):  # a quiet feed sends a heartbeat instead
                await asyncio.wait_for(self._signal.wait(), timeout)
        return bool(self._pending or self._deleted or self._overflowed)

    def take(self) -> Changed:
        taken = Changed(self._pending, self._deleted, self._overflowed)
        self._pending, self._deleted = set(), set()
        self._overflowed = False
        self._signal.clear()
        return taken


class ThreadChanges:
    def __init__(self) -> None:
        self._subscriptions: set[ChangeSubscription] = set()

    def touch(self, thread_id: str) -> None:
        for subscription in self._subscriptions:
            subscription.add(thread_id)

    def deleted(self, thread_id: str) -> None:
        for subscription in self._subscriptions:
            subscription.add_deleted(thread_id)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self) -> Iterator[ChangeSubscription]:
        subscription = ChangeSubscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
